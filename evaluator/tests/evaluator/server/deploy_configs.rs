//! The evaluator configs the repository ships validate: `examples/` and the
//! Kubernetes config in `deploy/kubernetes/base/`, laid out as the pods
//! mount it (`/etc/vigil/{config,rules,storage,secrets}`, here under a
//! temporary directory) — so a broken shipped config fails here, not at
//! `kubectl apply`.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::path::{Path, PathBuf};
use std::time::Duration;

use vigil_evaluator::server::config;
use vigil_testkit::workspace_root;

fn no_env(_: &str) -> Option<String> {
    None
}

/// Copies `from` to `to`, replacing the absolute `/etc/vigil/` prefix with
/// `root`.
fn copy_rewritten(from: &Path, to: &Path, root: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let text = std::fs::read_to_string(from).unwrap();
    let root = format!("{}/", root.display());
    std::fs::write(to, text.replace("/etc/vigil/", &root)).unwrap();
}

fn secret(root: &Path, name: &str, value: &str) -> PathBuf {
    let path = root.join("secrets").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, value).unwrap();
    path
}

/// Lays out `base/`'s config, rules and secrets under `root` as the pods
/// mount them, with `database_url` as the storage URL; returns the number
/// of rule files.
fn mount_base(root: &Path, database_url: &str) -> usize {
    let base = workspace_root().join("deploy/kubernetes/base");
    for name in ["vigil.yaml", "notify.yaml"] {
        copy_rewritten(
            &base.join("config").join(name),
            &root.join("config").join(name),
            root,
        );
    }
    let mut rules = 0;
    for entry in std::fs::read_dir(base.join("rules")).unwrap() {
        let path = entry.unwrap().path();
        copy_rewritten(
            &path,
            &root.join("rules").join(path.file_name().unwrap()),
            root,
        );
        rules += 1;
    }
    std::fs::create_dir_all(root.join("storage")).unwrap();
    std::fs::write(root.join("storage/database-url"), database_url).unwrap();
    secret(
        root,
        "slack-webhook-url",
        "https://hooks.slack.example/services/T/B/X\n",
    );
    secret(root, "smtp-password", "pw\n");
    rules
}

#[test]
fn the_kubernetes_config_validates_as_mounted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("etc/vigil");
    let rules = mount_base(&root, "sqlite:///var/lib/vigil/vigil.db\n");

    let cfg =
        config::load(&root.join("config/vigil.yaml"), &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.rule_files.len(),
        rules,
        "every mounted rule file is loaded"
    );
    assert!(!cfg.rule_groups.is_empty());
    assert_eq!(cfg.storage.database_url, "sqlite:///var/lib/vigil/vigil.db");
    assert_eq!(cfg.watch_interval, Some(Duration::from_secs(10)));
    assert_eq!(cfg.web.listen.to_string(), "0.0.0.0:9320");
    for receiver in ["console", "oncall", "team"] {
        assert!(cfg.receivers.contains_key(receiver), "receiver {receiver}");
    }
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn the_examples_validate_with_their_secrets_in_files() {
    let examples = workspace_root().join("examples");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("etc/vigil");
    let dir = tmp.path().join("examples");
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        copy_rewritten(&path, &dir.join(path.file_name().unwrap()), &root);
    }
    // The shipped rules, where the examples' `../rules/*.yaml` looks.
    for entry in std::fs::read_dir(workspace_root().join("rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            copy_rewritten(
                &path,
                &tmp.path().join("rules").join(path.file_name().unwrap()),
                &root,
            );
        }
    }
    secret(
        &root,
        "slack-webhook-url",
        "https://hooks.slack.example/services/T/B/X\n",
    );
    secret(
        &root,
        "shop-slack-webhook-url",
        "https://hooks.slack.example/services/T/B/Y\n",
    );
    secret(&root, "smtp-password", "pw\n");
    secret(&root, "api-token", "token\n");
    secret(
        &root,
        "database-url",
        "postgres://vigil:pw@db.internal:5432/vigil\n",
    );

    let demo = config::load(&dir.join("vigil.yaml"), &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        demo.receivers.contains_key("console"),
        "the demo prints to the console"
    );

    let prod =
        config::load(&dir.join("vigil-postgres.yaml"), &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        prod.storage.database_url,
        "postgres://vigil:pw@db.internal:5432/vigil"
    );
    assert_eq!(prod.web.token.as_ref().map(|t| t.expose()), Some("token"));
    for receiver in ["console", "archive", "oncall", "shop-team"] {
        assert!(prod.receivers.contains_key(receiver), "receiver {receiver}");
    }
    // Without the secret files the problems name the file and the key.
    std::fs::remove_file(root.join("secrets/database-url")).unwrap();
    let text = config::load(&dir.join("vigil-postgres.yaml"), &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("vigil-postgres.yaml:21:22: storage.database_url_file: cannot read"),
        "{text}"
    );
}

#[test]
fn the_fleet_overlay_config_validates_as_mounted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("etc/vigil");
    let rules = mount_base(&root, "postgres://vigil:pw@postgres.vigil.svc:5432/vigil\n");
    // The overlay's vigil.yaml replaces the base's in the ConfigMap.
    copy_rewritten(
        &workspace_root().join("deploy/kubernetes/overlays/fleet/vigil.yaml"),
        &root.join("config/vigil.yaml"),
        &root,
    );
    let cfg =
        config::load(&root.join("config/vigil.yaml"), &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.rule_files.len(), rules);
    assert!(cfg.scrape_configs.is_empty(), "the datasource scrapes");
    assert!(cfg.fleet.is_some(), "sharding is on");
    assert_eq!(cfg.remote_write.len(), 1);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}
