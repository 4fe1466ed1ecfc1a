//! `amtool check-config` and Vigil agree on every file of
//! `tests/fixtures/alertmanager-configs/` (see its README): a file named
//! `valid-*` is accepted by both, `invalid-*` refused by both; a
//! `stricter-*` file is one amtool accepts and Vigil refuses on purpose
//! (a file that Alertmanager would only fail to read when sending); an
//! `extension-*` file (receiver kinds of later Alertmanagers) is accepted
//! by Vigil and refused by amtool 0.25.

use std::path::Path;
use std::process::Command;

/// Vigil's verdict, as `check config` reaches it: the notification config
/// loads and every receiver builds.
fn vigil_accepts(path: &Path) -> Result<(), String> {
    let config = vigil_evaluator::notify::config::load_file(path).map_err(|e| e.to_string())?;
    vigil_evaluator::notify::config::build_receivers(&config)
        .map(|_| ())
        .map_err(|problems| format!("{problems:?}"))
}

#[test]
fn amtool_and_vigil_accept_and_refuse_the_same_configs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alertmanager-configs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 60, "the corpus has {} configs", files.len());
    let amtool = vigil_testkit::external_tool("amtool");
    let mut disagreements = Vec::new();
    for path in &files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let extension = name.starts_with("extension-");
        let valid = name.starts_with("valid-");
        let stricter = name.starts_with("stricter-");
        if let Some(amtool) = &amtool {
            let accepted = Command::new(amtool)
                .arg("check-config")
                .arg(path)
                .output()
                .unwrap_or_else(|e| panic!("amtool: {e}"))
                .status
                .success();
            assert_eq!(
                accepted,
                valid || stricter,
                "{name}: amtool check-config no longer says what the file name says"
            );
        }
        let ours = vigil_accepts(path);
        if ours.is_ok() != (valid || extension) {
            disagreements.push(format!(
                "{name}: Vigil {}",
                ours.err().unwrap_or_else(|| "accepts it".into())
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "Vigil disagrees with amtool on:\n{}",
        disagreements.join("\n")
    );
}

/// A config shaped like Alertmanager's `doc/examples/simple.yml`
/// (templates, PagerDuty, e-mail, inhibition) loads, and `routes test`
/// routes as `amtool config routes test` does.
#[test]
fn the_simple_example_loads_and_routes_like_amtool() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alertmanager-simple.yml");
    vigil_accepts(&path).unwrap_or_else(|e| panic!("{e}"));
    let config =
        vigil_evaluator::notify::config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        config.templates.contains("team.subject"),
        "the templates glob is read"
    );
    let Some(amtool) = vigil_testkit::external_tool("amtool") else {
        return;
    };
    let label_sets: [&[&str]; 7] = [
        &["service=foo1", "severity=critical"],
        &["service=baz", "severity=warning"],
        &["service=files", "severity=critical"],
        &["service=database", "owner=team-X"],
        &["service=database", "owner=team-Y"],
        &["service=database"],
        &["service=other"],
    ];
    for labels in label_sets {
        let first_line = |command: &mut Command| {
            let out = command
                .args(labels)
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        };
        let ours = first_line(
            Command::new(env!("CARGO_BIN_EXE_vigil-evaluator"))
                .args(["routes", "test", "--notify-config"])
                .arg(&path),
        );
        let theirs = first_line(
            Command::new(&amtool)
                .args(["config", "routes", "test", "--config.file"])
                .arg(&path),
        );
        assert_eq!(ours, theirs, "{labels:?}");
    }
}
