//! Real time-series databases started by tests: Prometheus (with its
//! remote-write receiver on) and VictoriaMetrics single-node, each with an
//! optional scrape config, restartable on the same port and data folder
//! (an outage), and a query helper for their Prometheus API.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use vigil_testkit::{external_tool, free_port, wait_for_http, ChildGuard};

use super::wait::poll;

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prometheus,
    VictoriaMetrics,
}

/// A database's binary, folder, port and scrape config; [`Tsdb::start`]
/// runs it.
pub struct Tsdb {
    pub kind: Kind,
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    binary: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Tsdb {
    /// `None` when the binary is not installed (the test is skipped).
    /// `scrape_configs` is a YAML list (`- job_name: ...`), or empty; the
    /// scrape interval is 1s.
    pub fn new(kind: Kind, scrape_configs: &str) -> Option<Tsdb> {
        let binary = external_tool(match kind {
            Kind::Prometheus => "prometheus",
            Kind::VictoriaMetrics => "victoria-metrics",
        })?;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let scrape = if scrape_configs.is_empty() {
            "[]".to_string()
        } else {
            format!("\n{scrape_configs}")
        };
        std::fs::write(
            dir.path().join("scrape.yml"),
            format!("global: {{scrape_interval: 1s, scrape_timeout: 900ms}}\nscrape_configs: {scrape}\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let port = free_port();
        Some(Tsdb {
            kind,
            port,
            base: format!("http://127.0.0.1:{port}"),
            binary,
            dir,
        })
    }

    /// Starts it (again, after the previous process is gone: same port,
    /// same data) and waits until it answers queries.
    pub async fn start(&self) -> ChildGuard {
        self.start_with(&[]).await
    }

    /// [`Tsdb::start`] with more command-line flags (e.g.
    /// `-retentionPeriod=100y` to keep old samples).
    pub async fn start_with(&self, extra: &[&str]) -> ChildGuard {
        let dir = self.dir.path();
        let mut args: Vec<String> = match self.kind {
            Kind::Prometheus => vec![
                format!("--config.file={}", dir.join("scrape.yml").display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{}", self.port),
                "--web.enable-remote-write-receiver".into(),
            ],
            Kind::VictoriaMetrics => vec![
                format!("-storageDataPath={}", dir.join("data").display()),
                format!("-httpListenAddr=127.0.0.1:{}", self.port),
                format!("-promscrape.config={}", dir.join("scrape.yml").display()),
                "-search.latencyOffset=0s".into(),
                // Look back 5m as Prometheus does, so an outage's gap
                // (and the seconds a killed process had not flushed) does
                // not read as "no series".
                "-search.maxStalenessInterval=5m".into(),
                "-search.disableCache".into(),
                "-loggerLevel=ERROR".into(),
            ],
        };
        args.extend(extra.iter().map(ToString::to_string));
        let process = ChildGuard::spawn(
            Command::new(&self.binary)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        wait_for_http(
            &format!("{}/api/v1/query?query=1", self.base),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", self.kind));
        process
    }

    /// Prometheus only: its own rule manager also evaluates `rule_file`
    /// (takes effect at the next [`Tsdb::start`]).
    pub fn evaluate_rules(&self, rule_file: &std::path::Path) {
        let config = self.dir.path().join("scrape.yml");
        let mut text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
        text.push_str(&format!("rule_files: ['{}']\n", rule_file.display()));
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Appends top-level YAML (e.g. an `alerting:` section) to its config
    /// (takes effect at the next [`Tsdb::start`]).
    pub fn append_config(&self, yaml: &str) {
        let config = self.dir.path().join("scrape.yml");
        let mut text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
        text.push_str(yaml);
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops `process` (a run of this database) as an operator does,
    /// SIGTERM and wait, so it writes out what it holds: a killed
    /// VictoriaMetrics loses its last seconds and comes back answering
    /// "no data" for a moment, which is not the outage a test means.
    pub fn stop(&self, mut process: ChildGuard) {
        super::process::signal(&process, "TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if matches!(process.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// VictoriaMetrics only: makes what it took in so far searchable now
    /// (`/internal/force_flush`).
    pub async fn flush(&self) {
        reqwest::Client::new()
            .get(format!("{}/internal/force_flush", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("VictoriaMetrics force_flush: {e}"));
    }

    /// Its remote-write endpoint.
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.base)
    }
}

/// vmalert evaluating `rule_file` against `datasource` (VictoriaMetrics)
/// and writing its results back there, with its HTTP API's base URL;
/// `None` when vmalert is not installed. Its notifier points at a closed
/// port: the alerts are read from its API.
pub async fn start_vmalert(
    datasource: &Tsdb,
    rule_file: &std::path::Path,
) -> Option<(ChildGuard, String)> {
    let binary = external_tool("vmalert")?;
    let port = free_port();
    let process = ChildGuard::spawn(
        Command::new(binary)
            .args([
                format!("-rule={}", rule_file.display()),
                format!("-datasource.url={}", datasource.base),
                format!("-remoteWrite.url={}", datasource.base),
                "-remoteWrite.flushInterval=1s".into(),
                format!("-notifier.url=http://127.0.0.1:{}", free_port()),
                format!("-httpListenAddr=127.0.0.1:{port}"),
                "-disableAlertgroupLabel".into(),
                "-loggerLevel=ERROR".into(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http(&format!("{base}/api/v1/alerts"), Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("vmalert: {e}"));
    Some((process, base))
}

/// How long the outage tests keep a database down: a few seconds in the
/// suite; `benches/outage.sh` runs them with `VIGIL_OUTAGE_SECS=60`.
pub fn outage() -> Duration {
    let seconds = std::env::var("VIGIL_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    Duration::from_secs(seconds)
}

/// The first series `query` returns at `time_s` (seconds; `None`: now)
/// on the Prometheus API at `base`, within 30 s.
pub async fn first_result(base: &str, query: &str, time_s: Option<i64>) -> Option<Value> {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/query");
    poll(
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let mut params = vec![("query", query.to_string())];
            if let Some(t) = time_s {
                params.push(("time", t.to_string()));
            }
            let answer: Value = client
                .get(&url)
                .query(&params)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            answer["data"]["result"].as_array()?.first().cloned()
        },
    )
    .await
}
