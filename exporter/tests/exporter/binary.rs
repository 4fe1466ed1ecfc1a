//! The `vigil-exporter` binary as users run it: `check`, refusing bad
//! configs, graceful SIGTERM, and its `/metrics` checked by the real
//! Prometheus tools (`promtool check metrics`, a scraping `prometheus`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use vigil_testkit::{
    assert_version_line, cargo_bin, external_tool, free_port, wait_for_http, ChildGuard,
};

use crate::support::{assert_contains, assert_contains_all, promtool_check_metrics};

const TOKEN: &str = "binary-test-token";

const DEMO_CONFIG: &str = "
demo: true
business:
  counters:
    - {name: orders_created_total, help: Orders created., labels: [channel]}
  gauges:
    - {name: queue_depth, help: Jobs waiting., labels: [queue]}
";

fn write_config(dir: &Path, yaml: &str) -> Result<PathBuf> {
    let path = dir.join("exporter.yaml");
    std::fs::write(&path, yaml)?;
    Ok(path)
}

fn run_exporter(args: &[&str]) -> Result<Output> {
    Ok(Command::new(cargo_bin("vigil-exporter"))
        .args(args)
        .env_remove("VIGIL_INGEST_TOKEN")
        .output()?)
}

/// Runs `vigil-exporter check` on `yaml` written to a config file; returns
/// its output and the path of the file it checked.
fn check(yaml: &str) -> Result<(Output, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), yaml)?;
    let output = run_exporter(&["check", &config.to_string_lossy()])?;
    Ok((output, config))
}

/// Runs `check` on `yaml` and asserts that it exits 1 and names each of
/// `problems` (made from the config file's path) on stderr; returns stderr.
fn check_rejects(yaml: &str, problems: impl FnOnce(&str) -> Vec<String>) -> Result<String> {
    let (output, config) = check(yaml)?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_contains_all(&stderr, problems(&config.display().to_string()));
    Ok(stderr)
}

/// All that `child` wrote to its piped stderr.
fn read_stderr(child: &mut Child) -> Result<String> {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr)?;
    }
    Ok(stderr)
}

/// Waits (bounded) for `child` to exit.
fn wait_exit(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(None)
}

/// A running exporter on a free loopback port.
struct Exporter {
    process: ChildGuard,
    base: String,
    _dir: tempfile::TempDir,
}

async fn start_exporter(yaml: &str) -> Result<Exporter> {
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), yaml)?;
    start_exporter_with(&config, &[], Stdio::null(), dir).await
}

/// Starts the exporter on `config` with extra arguments; `--listen` is
/// always a free loopback port, whatever the config says.
async fn start_exporter_with(
    config: &Path,
    args: &[&str],
    stderr: Stdio,
    dir: tempfile::TempDir,
) -> Result<Exporter> {
    start_exporter_on(free_port(), config, args, stderr, dir).await
}

/// Starts the exporter on `config`, listening on loopback `port`.
async fn start_exporter_on(
    port: u16,
    config: &Path,
    args: &[&str],
    stderr: Stdio,
    dir: tempfile::TempDir,
) -> Result<Exporter> {
    let process = ChildGuard::spawn(
        Command::new(cargo_bin("vigil-exporter"))
            .arg("--config")
            .arg(config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("VIGIL_INGEST_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(stderr),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http(&format!("{base}/readyz"), Duration::from_secs(20)).await?;
    Ok(Exporter {
        process,
        base,
        _dir: dir,
    })
}

impl Exporter {
    /// Stops the exporter with SIGTERM and returns its piped stderr.
    fn stop_and_read_stderr(&mut self) -> Result<String> {
        Command::new("kill")
            .args(["-TERM", &self.process.0.id().to_string()])
            .status()?;
        wait_exit(&mut self.process.0, Duration::from_secs(5))?;
        read_stderr(&mut self.process.0)
    }

    /// The text of its `/metrics`.
    async fn metrics(&self, client: &reqwest::Client) -> Result<String> {
        Ok(client
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?)
    }

    async fn post_event(&self, client: &reqwest::Client, body: serde_json::Value) -> Result<()> {
        let response = client
            .post(format!("{}/api/v1/events", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "event {body} refused: {} {}",
                response.status(),
                response.text().await?
            );
        }
        Ok(())
    }
}

#[test]
fn check_accepts_a_good_config_and_says_so() -> Result<()> {
    let (output, _) = check(DEMO_CONFIG)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_contains(
        &stdout,
        "config OK (0 probes, 1 counter, 1 gauge, event ingest disabled: no token)",
    );
    Ok(())
}

#[test]
fn check_prints_every_problem_with_its_position_and_exits_1() -> Result<()> {
    let stderr = check_rejects(
        "probes:\n  - {name: a, url: 'http://a/', timeout: 1m}\n  - {name: a, url: 'gopher://b/'}\n",
        |file| {
            vec![
                format!("{file}:2:42: probes[0].timeout: timeout 1m must not exceed interval 30s"),
                format!("{file}:3:12: probes[1].name: duplicate probe name \"a\""),
                format!("{file}:3:20: probes[1].url: has scheme `gopher`, which is not supported"),
            ]
        },
    )?;
    assert_contains(&stderr, "invalid configuration (3 problems):");
    Ok(())
}

#[test]
fn check_refuses_an_expectation_missing_its_operand() -> Result<()> {
    check_rejects(
        "probes:\n  - name: shop\n    url: http://127.0.0.1:1/\n    expect: \"status ==\"\n",
        |file| {
            vec![format!(
                "{file}:4:23: probes[0].expect: probe \"shop\": the expectation `status ==` is incomplete: `==` at character 8 is missing its right-hand operand"
            )]
        },
    )?;
    Ok(())
}

#[test]
fn check_of_a_missing_file_names_it_and_exits_1() -> Result<()> {
    let output = run_exporter(&["check", "/nonexistent/exporter.yaml"])?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert_contains(
        &stderr,
        "cannot read config file /nonexistent/exporter.yaml",
    );
    Ok(())
}

#[test]
fn server_refuses_to_start_on_a_bad_config() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_config(
        dir.path(),
        "demo: yes please\nbusiness:\n  counters: [{name: Orders}]\n",
    )?;
    let mut child = Command::new(cargo_bin("vigil-exporter"))
        .arg("--config")
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let status = wait_exit(&mut child, Duration::from_secs(20))?;
    if status.is_none() {
        let _ = child.kill();
    }
    let stderr = read_stderr(&mut child)?;
    assert_eq!(
        status.map(|s| s.success()),
        Some(false),
        "it started: {stderr}"
    );
    assert_contains(&stderr, "invalid configuration (2 problems):");
    assert_contains(
        &stderr,
        "demo: invalid type: string \"yes please\", expected a boolean",
    );
    Ok(())
}

#[test]
fn version_names_the_package_version_and_commit() -> Result<()> {
    let output = run_exporter(&["--version"])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_version_line("vigil-exporter", env!("CARGO_PKG_VERSION"), &stdout);
    Ok(())
}

#[test]
fn help_documents_every_flag() -> Result<()> {
    let output = run_exporter(&["--help"])?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--config",
        "--listen",
        "--log-format",
        "--version",
        "check",
        "RUST_LOG",
        "VIGIL_INGEST_TOKEN",
    ] {
        assert!(
            stdout.contains(flag),
            "--help does not mention {flag}:\n{stdout}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn sigterm_and_ctrl_c_stop_the_server_promptly_with_exit_0() -> Result<()> {
    for signal in ["-TERM", "-INT"] {
        let mut exporter = start_exporter(DEMO_CONFIG).await?;
        let pid = exporter.process.0.id().to_string();
        let kill = Command::new("kill").args([signal, &pid]).status()?;
        assert!(kill.success());
        let status = wait_exit(&mut exporter.process.0, Duration::from_secs(5))?;
        assert_eq!(
            status.map(|s| s.code()),
            Some(Some(0)),
            "no exit 0 within 5 s of kill {signal}"
        );
    }
    Ok(())
}

/// What the exporter logs on stderr, started on the demo config with
/// `args` and stopped with SIGTERM.
async fn log_of_a_run(args: &[&str]) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), DEMO_CONFIG)?;
    let mut exporter = start_exporter_with(&config, args, Stdio::piped(), dir).await?;
    exporter.stop_and_read_stderr()
}

#[tokio::test]
async fn json_log_format_writes_one_json_object_per_line() -> Result<()> {
    let stderr = log_of_a_run(&["--log-format", "json"]).await?;
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|line| line["fields"]["message"].as_str())
        .collect();
    assert!(messages.contains(&"vigil-exporter listening"), "{stderr}");
    assert!(
        messages.contains(&"SIGTERM received; shutting down"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn text_log_has_no_colour_codes_when_stderr_is_not_a_terminal() -> Result<()> {
    let stderr = log_of_a_run(&[]).await?;
    assert_contains(&stderr, "vigil-exporter listening");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escape codes in a piped log: {stderr:?}"
    );
    Ok(())
}

#[tokio::test]
async fn shipped_demo_example_serves_its_demo_endpoints() -> Result<()> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/exporter-demo.yaml");
    let exporter = start_exporter_with(&example, &[], Stdio::null(), tempfile::tempdir()?).await?;
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("{}/demo/ok", exporter.base))
        .send()
        .await?
        .status();
    let error = client
        .get(format!("{}/demo/error", exporter.base))
        .send()
        .await?
        .status();
    assert_eq!((ok.as_u16(), error.as_u16()), (200, 500));
    exporter
        .post_event(
            &client,
            serde_json::json!({"metric": "orders_created_total", "labels": {"channel": "web"}}),
        )
        .await
}

/// Demo traffic and events of every kind, so `/metrics` shows them all.
async fn produce_traffic(exporter: &Exporter, client: &reqwest::Client) -> Result<()> {
    for path in ["/demo/ok", "/demo/error", "/demo/slow?ms=10", "/healthz"] {
        client
            .get(format!("{}{path}", exporter.base))
            .send()
            .await?;
    }
    exporter
        .post_event(
            client,
            serde_json::json!({"metric": "orders_created_total", "labels": {"channel": "web"}}),
        )
        .await?;
    exporter
        .post_event(
            client,
            serde_json::json!({"metric": "queue_depth", "labels": {"queue": "mail"}, "value": 3}),
        )
        .await
}

#[tokio::test]
async fn promtool_finds_nothing_to_complain_about_in_metrics() -> Result<()> {
    let Some(promtool) = external_tool("promtool") else {
        return Ok(());
    };
    let exporter = start_exporter(DEMO_CONFIG).await?;
    let client = reqwest::Client::new();
    produce_traffic(&exporter, &client).await?;
    let metrics = exporter.metrics(&client).await?;
    assert_contains(&metrics, "orders_created_total{channel=\"web\"} 1");

    assert_promtool_accepts(&promtool, &metrics)
}

/// Asserts that `promtool check metrics` exits 0 and says nothing about
/// `metrics`.
fn assert_promtool_accepts(promtool: &Path, metrics: &str) -> Result<()> {
    let (status, said) = promtool_check_metrics(promtool, metrics.as_bytes())?;
    if !status.success() {
        bail!("promtool check metrics failed ({status}): {said}\n{metrics}");
    }
    assert_eq!(
        said, "",
        "promtool check metrics complained about:\n{metrics}"
    );
    Ok(())
}

/// The value of the one sample whose line starts with `series_prefix`
/// (metric name and its first labels), if `/metrics` has it.
fn sample(metrics: &str, series_prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series_prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_example_probes_show_the_failing_target_down_and_the_healthy_one_up() -> Result<()> {
    // The example probes its own demo endpoints on 127.0.0.1:9310; point
    // them at the free port this test listens on instead.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/exporter-demo.yaml");
    let port = free_port();
    let yaml =
        std::fs::read_to_string(&example)?.replace("127.0.0.1:9310", &format!("127.0.0.1:{port}"));
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), &yaml)?;
    let exporter = start_exporter_on(port, &config, &[], Stdio::null(), dir).await?;
    let client = reqwest::Client::new();

    let up = format!("probe_success{{target=\"demo-ok\",url=\"http://127.0.0.1:{port}/demo/ok\"}}");
    let down = format!(
        "probe_success{{target=\"demo-flaky\",url=\"http://127.0.0.1:{port}/demo/flaky\"}}"
    );
    let probed = format!("probe_http_status_code{{target=\"demo-flaky\",url=\"http://127.0.0.1:{port}/demo/flaky\"}}");
    // Both are probed as soon as the exporter starts; wait (bounded) for
    // the first results.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut metrics = String::new();
    while Instant::now() < deadline {
        metrics = exporter.metrics(&client).await?;
        if sample(&metrics, &up) == Some(1.0) && sample(&metrics, &probed) == Some(500.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sample(&metrics, &up), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, &probed), Some(500.0), "{metrics}");
    assert_eq!(sample(&metrics, &down), Some(0.0), "{metrics}");
    let failures = "probe_failures_total{reason=\"expectation\",target=\"demo-flaky\"";
    assert!(
        sample(&metrics, failures).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    // The probes' requests are counted by the HTTP metrics layer too.
    assert_contains(
        &metrics,
        "http_requests_total{method=\"GET\",route=\"/demo/flaky\",status=\"500\"}",
    );

    if let Some(promtool) = external_tool("promtool") {
        assert_promtool_accepts(&promtool, &metrics)?;
    }
    Ok(())
}

/// A real Prometheus scraping `targets` every second.
struct Prometheus {
    _process: ChildGuard,
    base: String,
    _dir: tempfile::TempDir,
}

async fn start_prometheus(binary: &Path, target: &str) -> Result<Prometheus> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: exporter\n    static_configs: [{{targets: ['{target}']}}]\n"
        ),
    )?;
    let port = free_port();
    let process = ChildGuard::spawn(
        Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http(&format!("{base}/-/ready"), Duration::from_secs(30)).await?;
    Ok(Prometheus {
        _process: process,
        base,
        _dir: dir,
    })
}

impl Prometheus {
    /// The value of a single-series instant query, if it has one yet.
    async fn query(&self, client: &reqwest::Client, query: &str) -> Result<Option<f64>> {
        let reply: serde_json::Value = client
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", query)])
            .send()
            .await?
            .json()
            .await?;
        let value = reply["data"]["result"][0]["value"][1].as_str();
        Ok(value.map(str::parse).transpose()?)
    }

    /// Polls `query` (bounded) until it returns `expected`; returns the last value seen.
    async fn wait_for(
        &self,
        client: &reqwest::Client,
        query: &str,
        expected: f64,
    ) -> Result<Option<f64>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(client, query).await?;
            if last == Some(expected) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(last)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_exactly_the_events_that_were_posted() -> Result<()> {
    let Some(binary) = external_tool("prometheus") else {
        return Ok(());
    };
    let exporter = start_exporter(DEMO_CONFIG).await?;
    let prometheus = start_prometheus(&binary, exporter.base.trim_start_matches("http://")).await?;
    let client = reqwest::Client::new();

    let posted = [("web", 4), ("app", 3)];
    for (channel, count) in posted {
        for _ in 0..count {
            exporter
                .post_event(&client, serde_json::json!({"metric": "orders_created_total", "labels": {"channel": channel}}))
                .await?;
        }
    }
    exporter
        .post_event(
            &client,
            serde_json::json!({"metric": "queue_depth", "labels": {"queue": "mail"}, "value": 42}),
        )
        .await?;
    // Known demo traffic, for checks on the HTTP request metrics.
    for (path, times) in [("/demo/ok", 5), ("/demo/error", 2)] {
        for _ in 0..times {
            client
                .get(format!("{}{path}", exporter.base))
                .send()
                .await?;
        }
    }

    let checks = [
        ("sum(orders_created_total)", 7.0),
        ("orders_created_total{channel=\"app\"}", 3.0),
        ("queue_depth{queue=\"mail\"}", 42.0),
        // Prometheus' own scrapes of /metrics count too: filter by route.
        (
            "http_requests_total{route=\"/demo/ok\",status=\"200\"}",
            5.0,
        ),
        (
            "http_requests_total{route=\"/demo/error\",status=\"500\"}",
            2.0,
        ),
    ];
    for (query, expected) in checks {
        let seen = prometheus.wait_for(&client, query, expected).await?;
        assert_eq!(seen, Some(expected), "Prometheus query {query}");
    }
    Ok(())
}
