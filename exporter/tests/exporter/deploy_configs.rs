//! The exporter configs the repository ships validate: `examples/` and the
//! ones in `deploy/kubernetes/` (the standalone probing exporter and the
//! example application's sidecar), so a broken one fails here rather than
//! in a pod's crash loop.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use vigil_exporter::config::Config;
use vigil_testkit::workspace_root;

#[test]
fn every_shipped_exporter_config_validates() {
    let root = workspace_root();
    let files = [
        "deploy/kubernetes/exporter/exporter.yaml",
        "deploy/kubernetes/example-app/exporter.yaml",
        "examples/exporter-demo.yaml",
        "examples/exporter-full.yaml",
    ];
    for file in files {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let config =
            Config::parse(&text, &path, Some("token")).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            !config.probes.is_empty(),
            "{file}: every shipped config probes something"
        );
        config
            .probe_targets()
            .unwrap_or_else(|e| panic!("{file}: {e:?}"));
    }
}
