//! The dashboard in a real browser: headless Chromium, driven through
//! chromedriver's W3C WebDriver HTTP API, against a running
//! `vigil-evaluator` whose rule fires at once. The page must load without
//! console errors, show the firing alert, its rule and the scrape target;
//! a silence created from the page (after a refused attempt without the
//! API token) must appear in `GET /api/v2/silences`; a receiver test sent
//! from the page must report its integration OK.
//!
//! Skipped (with a note) when `chromium` or `chromedriver` is missing,
//! unless `VIGIL_REQUIRE_EXTERNAL_TOOLS=1`.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::process::evaluator_command;
use crate::support::wait;
use serde_json::{json, Value};
use vigil_testkit::{external_tool, free_port, wait_for_http, ChildGuard};

const DEADLINE: Duration = Duration::from_secs(60);

/// The W3C name of the key holding an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process with one headless Chromium session.
struct Browser {
    client: reqwest::Client,
    port: u16,
    session: String,
    _driver: ChildGuard,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session that records
    /// every console message; `None` when the tools are not installed.
    async fn start(log: &Path) -> Option<Browser> {
        let chromium = external_tool("chromium")?;
        let chromedriver = external_tool("chromedriver")?;
        let port = free_port();
        let driver = ChildGuard::spawn(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log).unwrap()),
        );
        wait_for_http(&format!("http://127.0.0.1:{port}/status"), DEADLINE)
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run",
                         "--window-size=1280,1024"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let response: Value = client
            .post(format!("http://127.0.0.1:{port}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver did not start a session: {response}"))
            .to_string();
        Some(Browser {
            client,
            port,
            session,
            _driver: driver,
        })
    }

    /// Sends one WebDriver command and returns its `value`.
    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!(
            "http://127.0.0.1:{}/session/{}{path}",
            self.port, self.session
        );
        let mut request = self.client.request(method, &url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(status.is_success(), "WebDriver {path}: {status}: {answer}");
        answer["value"].clone()
    }

    async fn navigate(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    /// Runs `script` (a function body) in the page and returns its result.
    async fn execute(&self, script: &str) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT_KEY].as_str().unwrap().to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Replaces the text of the input `css` as a user typing it would.
    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            json!({}),
        )
        .await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// The console messages logged since the last call, at level SEVERE
    /// (console errors, uncaught exceptions, failed loads).
    async fn console_errors(&self) -> Vec<Value> {
        let entries = self
            .command(
                reqwest::Method::POST,
                "/se/log",
                json!({ "type": "browser" }),
            )
            .await;
        entries
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .cloned()
            .collect()
    }

    /// Polls `script` until it returns `true`.
    async fn wait_for(&self, what: &str, script: &str) {
        let shown = wait::until(DEADLINE, Duration::from_millis(200), || async {
            self.execute(script).await == Value::Bool(true)
        })
        .await;
        if !shown {
            let page = self
                .execute("return document.querySelector('main').innerText")
                .await;
            panic!(
                "timed out waiting for {what}; the page shows:\n{}",
                page.as_str().unwrap_or_default()
            );
        }
    }
}

impl Drop for Browser {
    /// Ends the session so chromedriver closes Chromium before it is
    /// killed (a killed chromedriver would leave Chromium running).
    fn drop(&mut self) {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                self.session, self.port
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

/// Writes a config whose rule fires at once and that scrapes the evaluator
/// itself, so the targets panel has an `up` target.
fn write_config(dir: &Path, listen: u16) -> PathBuf {
    std::fs::write(
        dir.join("rules.yaml"),
        "groups:\n- name: dashboard\n  rules:\n  - alert: AlwaysFiring\n    expr: vector(1)\n    for: 0s\n    labels: {severity: page}\n    annotations: {summary: 'fires at once'}\n",
    )
    .unwrap();
    let config = dir.join("vigil.yaml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}}\nscrape_configs:\n- job_name: self\n  static_configs: [{{targets: ['127.0.0.1:{listen}']}}]\nrule_files: [rules.yaml]\nweb: {{listen: '127.0.0.1:{listen}'}}\n"
        ),
    )
    .unwrap();
    config
}

fn start_evaluator(config: &Path, dir: &Path, token: Option<&str>) -> ChildGuard {
    let log = std::fs::File::create(dir.join("evaluator.log")).unwrap();
    let mut command = evaluator_command(config, dir, log);
    if let Some(token) = token {
        command.env("VIGIL_API_TOKEN", token);
    }
    ChildGuard::spawn(&mut command)
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("evaluator.log")).unwrap_or_default()
}

/// A running evaluator and a browser showing its dashboard.
struct Setup {
    dir: tempfile::TempDir,
    listen: u16,
    browser: Browser,
    _evaluator: ChildGuard,
}

async fn open_dashboard(token: Option<&str>) -> Option<Setup> {
    let dir = tempfile::tempdir().unwrap();
    let browser = Browser::start(&dir.path().join("chromedriver.log")).await?;
    let listen = free_port();
    let config = write_config(dir.path(), listen);
    let evaluator = start_evaluator(&config, dir.path(), token);
    wait_for_http(&format!("http://127.0.0.1:{listen}/-/ready"), DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", log_of(dir.path())));
    // Refresh every second so the test does not wait for the default 5s.
    browser
        .navigate(&format!("http://127.0.0.1:{listen}/?refresh=1"))
        .await;
    Some(Setup {
        dir,
        listen,
        browser,
        _evaluator: evaluator,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_firing_alert_rules_and_targets_without_console_errors() {
    let Some(setup) = open_dashboard(None).await else {
        return;
    };
    let browser = &setup.browser;
    browser
        .wait_for(
            "the firing alert",
            "return !!document.querySelector('#alerts-table tbody tr[data-alertname=\"AlwaysFiring\"][data-state=\"firing\"]')",
        )
        .await;
    browser
        .wait_for(
            "the rule with health ok",
            "const r = document.querySelector('#rules-table tbody tr[data-rule=\"AlwaysFiring\"]'); return !!r && r.textContent.includes('ok')",
        )
        .await;
    browser
        .wait_for(
            "the evaluator's own target up",
            "return !!document.querySelector('#targets-table tbody tr[data-health=\"up\"]')",
        )
        .await;
    let row = browser
        .execute("return document.querySelector('#alerts-table tbody tr[data-alertname=\"AlwaysFiring\"]').innerText")
        .await;
    let row = row.as_str().unwrap();
    assert!(row.contains("severity=page"), "{row}");
    assert!(row.contains("firing"), "{row}");

    // A few more refreshes, then nothing may have gone to the console.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_no_console_errors(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_test_from_the_dashboard_reports_each_integration() {
    let Some(setup) = open_dashboard(None).await else {
        return;
    };
    let browser = &setup.browser;
    // Without notify_config_file every alert goes to receiver `console`.
    browser
        .wait_for(
            "the console receiver in the receivers panel",
            "return !!document.querySelector('#receivers-table tbody tr[data-receiver=\"console\"] button.test-receiver')",
        )
        .await;
    browser
        .click("#receivers-table tbody tr[data-receiver=\"console\"] button.test-receiver")
        .await;
    browser
        .wait_for(
            "the test result of the console integration",
            "const r = document.querySelector('#receivers-table tbody tr[data-receiver=\"console\"]'); return !!r && r.innerText.includes('console[0]: OK')",
        )
        .await;
    // The result stays through the next refreshes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let row = browser
        .execute("return document.querySelector('#receivers-table tbody tr[data-receiver=\"console\"]').innerText")
        .await;
    assert!(row.as_str().unwrap().contains("console[0]: OK"), "{row}");
    assert_no_console_errors(&setup).await;
}

/// Whether the evaluator lacks `path` (an empty 404 from the router: an
/// API not built into this version).
async fn lacks(listen: u16, path: &str) -> bool {
    let response = reqwest::get(format!("http://127.0.0.1:{listen}{path}"))
        .await
        .unwrap();
    response.status() == 404 && response.bytes().await.unwrap().is_empty()
}

const TOKEN: &str = "dashboard-test-token";
const COMMENT: &str = "silenced from the dashboard test";

/// The silences `GET /api/v2/silences` lists with our comment.
async fn our_silences(listen: u16) -> Vec<Value> {
    let all: Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{listen}/api/v2/silences"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all.as_array()
        .unwrap_or_else(|| panic!("not a list of silences: {all}"))
        .iter()
        .filter(|s| s["comment"] == COMMENT)
        .cloned()
        .collect()
}

/// Opens the silence dialog of the firing alert, fills it and submits it.
async fn silence_from_the_page(browser: &Browser) {
    browser
        .click("#alerts-table tbody tr[data-alertname=\"AlwaysFiring\"] button.silence")
        .await;
    browser.type_into("#silence-by", "dashboard-test").await;
    browser.type_into("#silence-comment", COMMENT).await;
    browser.click("#silence-submit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_created_from_the_dashboard_appears_in_the_api() {
    let Some(setup) = open_dashboard(Some(TOKEN)).await else {
        return;
    };
    let browser = &setup.browser;
    browser
        .wait_for(
            "the firing alert",
            "return !!document.querySelector('#alerts-table tbody tr[data-alertname=\"AlwaysFiring\"][data-state=\"firing\"]')",
        )
        .await;
    if lacks(setup.listen, "/api/v2/silences").await {
        // An evaluator without the Alertmanager API: the panel says so.
        browser
            .wait_for(
                "the silences panel saying it is not available",
                "return document.getElementById('silences-status').textContent === 'Not available on this evaluator.'",
            )
            .await;
        println!("NOTE: /api/v2/silences is not served; only the panel's fallback was checked");
        return;
    }

    // Without the token the evaluator refuses, and the dialog says why.
    silence_from_the_page(browser).await;
    browser
        .wait_for(
            "the message on the refused silence",
            "return document.getElementById('silence-error').textContent.includes('API token')",
        )
        .await;
    assert!(our_silences(setup.listen).await.is_empty());
    browser.click("#silence-cancel").await;
    // The refused POST is the browser's one expected console entry.
    let refused = unexpected_console_errors(&setup).await;
    assert!(
        refused.len() == 1 && refused[0]["message"].as_str().unwrap().contains("401"),
        "{refused:#?}"
    );

    browser.type_into("#token", TOKEN).await;
    browser.click("#token-save").await;
    silence_from_the_page(browser).await;
    let deadline = Instant::now() + DEADLINE;
    let silence = loop {
        if let Some(s) = our_silences(setup.listen).await.pop() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the silence never reached the API; log:\n{}",
            log_of(setup.dir.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(silence["createdBy"], "dashboard-test");
    assert_eq!(silence["status"]["state"], "active", "{silence}");
    let matchers = silence["matchers"].as_array().unwrap();
    assert!(
        matchers.contains(&json!({"name": "alertname", "value": "AlwaysFiring", "isRegex": false, "isEqual": true})),
        "{silence}"
    );
    assert!(
        matchers.contains(
            &json!({"name": "severity", "value": "page", "isRegex": false, "isEqual": true})
        ),
        "{silence}"
    );

    // The page lists the silence and marks the alert silenced.
    let id = silence["id"].as_str().unwrap();
    browser
        .wait_for(
            "the silence in the silences panel",
            &format!("return !!document.querySelector('#silences-table tbody tr[data-silence-id=\"{id}\"]')"),
        )
        .await;
    browser
        .wait_for(
            "the alert marked silenced",
            "const r = document.querySelector('#alerts-table tbody tr[data-alertname=\"AlwaysFiring\"]'); return !!r && r.querySelector('.badge-silenced') !== null",
        )
        .await;
    assert_no_console_errors(&setup).await;
}

async fn assert_no_console_errors(setup: &Setup) {
    let errors = unexpected_console_errors(setup).await;
    assert!(
        errors.is_empty(),
        "console errors: {}; evaluator log:\n{}",
        serde_json::to_string_pretty(&errors).unwrap(),
        log_of(setup.dir.path())
    );
}

/// The console errors since the last call, but for Chromium's note on a
/// 404 from an API endpoint this evaluator does not have (the page shows
/// "not available" there).
async fn unexpected_console_errors(setup: &Setup) -> Vec<Value> {
    let mut errors = Vec::new();
    for entry in setup.browser.console_errors().await {
        let message = entry["message"].as_str().unwrap_or_default();
        let missing = match message
            .split_once(" - Failed to load resource: the server responded with a status of 404")
        {
            Some((url, _)) if entry["source"] == "network" => {
                let path = url
                    .split_once(&format!("127.0.0.1:{}", setup.listen))
                    .map_or("", |(_, p)| p);
                let path = path.split('?').next().unwrap_or_default();
                (path.starts_with("/api/v2/") || path.starts_with("/api/vigil/"))
                    && lacks(setup.listen, path).await
            }
            _ => false,
        };
        if !missing {
            errors.push(entry);
        }
    }
    errors
}
