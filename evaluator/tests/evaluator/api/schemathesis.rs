//! Property-based check of `evaluator/openapi.yaml` against a running
//! evaluator with `schemathesis` (PyPI): it generates valid and invalid
//! requests for every documented operation and fails on a server error, an
//! undocumented status code or content type, a response that does not match
//! its documented schema, or invalid input that is accepted.
//!
//! `positive_data_acceptance` is left out: matchers, times and label sets
//! have a syntax JSON Schema cannot state, so some schema-valid strings are
//! rightly rejected with 400. Bounded in examples and time; skipped (or, with
//! `VIGIL_REQUIRE_EXTERNAL_TOOLS=1`, failed) when `schemathesis` is missing.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cargo_bin;
use vigil_testkit::{external_tool, free_port, wait_for_http, ChildGuard};

const DEADLINE: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_holds_for_generated_requests() {
    let Some(schemathesis) = external_tool("schemathesis") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("vigil.yaml");
    std::fs::write(
        &config,
        format!(
            "storage: {{database_url: 'sqlite://{}'}}\nweb: {{listen: '127.0.0.1:{port}'}}\n",
            dir.path().join("vigil.db").display()
        ),
    )
    .unwrap();
    let _evaluator = ChildGuard::spawn(
        Command::new(cargo_bin("vigil-evaluator"))
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("VIGIL_API_TOKEN")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("evaluator.log")).unwrap()),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http(&format!("{base}/-/ready"), DEADLINE)
        .await
        .unwrap();

    let output = dir.path().join("schemathesis.log");
    let mut run = ChildGuard::spawn(
        Command::new(schemathesis)
            .arg("run")
            .arg(format!("{base}/api/vigil/v1/openapi.yaml"))
            .args(["--url", &base])
            .args(["--checks", "all"])
            .args(["--exclude-checks", "positive_data_acceptance"])
            .args(["--max-examples", "30", "--workers", "1", "--seed", "1"])
            .arg("--no-color")
            .current_dir(dir.path())
            .stdout(std::fs::File::create(&output).unwrap())
            .stderr(Stdio::inherit()),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "schemathesis did not finish in {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let report = std::fs::read_to_string(&output).unwrap();
    assert!(status.success(), "schemathesis failed:\n{report}");
    assert!(report.contains(" passed"), "{report}");
}
