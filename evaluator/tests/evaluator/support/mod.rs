//! What the evaluator's integration tests share, in one place so each stage
//! module holds only its tests: builders for notifications with realistic
//! labels and annotations and for receivers built through the same config
//! path users go through; [`db`]: a database per test; [`process`]: running
//! the evaluator binary against an in-test target and webhook; [`api_state`]:
//! the idle parts of an API state.

#![allow(dead_code)]

pub mod alertmanager;
pub mod api_state;
#[macro_use]
pub mod db;
pub mod faults;
pub mod ha;
pub mod pgbouncer;
pub mod process;
pub mod rng;
pub mod tsdb;
pub mod wait;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use vigil_evaluator::labels::Labels;
use vigil_evaluator::notify::alert::{
    Alert, AlertStatus, Fingerprint, Notification, NotifiedAlert,
};
use vigil_evaluator::notify::receivers::{
    build_integrations, GlobalReceiverDefaults, IntegrationSections, Receiver,
};

/// The path of a workspace binary. The evaluator's is the one Cargo built
/// for this test target, so no test starts a `cargo build --workspace
/// --tests` (the test kit's way) while the others run; other binaries come
/// from the test kit.
pub fn cargo_bin(name: &str) -> PathBuf {
    if name == "vigil-evaluator" {
        PathBuf::from(env!("CARGO_BIN_EXE_vigil-evaluator"))
    } else {
        vigil_testkit::cargo_bin(name)
    }
}

/// Serialises the tests that must not share the machine with each other:
/// they time the evaluator's answers (health within 100 ms, fail-over
/// within two lease periods) or run several evaluator processes through
/// kills and outages. When each file was its own test binary, tests of
/// different files never overlapped; now these take this lock first (the
/// timing ones also run in the `alone` binary, away from every other
/// test). Tokio's mutex: it is held across awaits, and a test that panics
/// while holding it does not poison it.
pub async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
    static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ALONE.lock().await
}

/// One alert of the `HighErrorRate` group on route `/x`.
pub fn alert(pod: &str, severity: &str, status: AlertStatus) -> NotifiedAlert {
    let labels = Labels::from_pairs([
        ("alertname", "HighErrorRate"),
        ("route", "/x"),
        ("pod", pod),
        ("severity", severity),
    ]);
    let starts_at = Utc
        .with_ymd_and_hms(2026, 3, 4, 5, 6, 7)
        .single()
        .unwrap_or_default();
    let ends_at = match status {
        AlertStatus::Firing => None,
        AlertStatus::Resolved => Utc.with_ymd_and_hms(2026, 3, 4, 6, 0, 0).single(),
    };
    NotifiedAlert {
        status,
        fingerprint: Fingerprint::of(&labels),
        alert: Alert {
            labels,
            annotations: BTreeMap::from([
                (
                    "summary".to_string(),
                    format!("Error rate above 5% on {pod}"),
                ),
                (
                    "runbook_url".to_string(),
                    "https://runbooks.example/high-error-rate".to_string(),
                ),
            ]),
            starts_at,
            ends_at,
            generator_url: "http://vigil:9096/graph?g0.expr=rate".into(),
            cooldown: None,
        },
    }
}

/// A notification for `alerts`, grouped by `alertname`.
pub fn notification(alerts: Vec<NotifiedAlert>) -> Notification {
    let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
        AlertStatus::Firing
    } else {
        AlertStatus::Resolved
    };
    // Common labels: those equal on every alert.
    let mut common: Vec<(String, String)> = Vec::new();
    if let Some(first) = alerts.first() {
        for label in first.alert.labels.iter() {
            if alerts
                .iter()
                .all(|a| a.alert.labels.get(label.name) == Some(label.value))
            {
                common.push((label.name.to_string(), label.value.to_string()));
            }
        }
    }
    Notification {
        receiver: "team-a".into(),
        group_key: "{}:{alertname=\"HighErrorRate\"}".into(),
        status,
        group_labels: Labels::from_pairs([("alertname", "HighErrorRate")]),
        common_labels: Labels::from_pairs(common),
        common_annotations: BTreeMap::from([(
            "runbook_url".to_string(),
            "https://runbooks.example/high-error-rate".to_string(),
        )]),
        external_url: "http://vigil:9096".into(),
        truncated_alerts: 0,
        redelivery: false,
        alerts,
    }
}

/// Builds the integrations of one receiver from YAML sections.
pub fn build(
    yaml_sections: &str,
    global: &GlobalReceiverDefaults,
) -> Result<Vec<Arc<dyn Receiver>>, String> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(yaml_sections).map_err(|e| e.to_string())?;
    let mapping = value
        .as_mapping()
        .ok_or_else(|| "receiver YAML is not a mapping".to_string())?;
    let sections = IntegrationSections::from_receiver(mapping);
    build_integrations("team-a", "receivers[0]", &sections, global)
        .map(|built| built.integrations.into_iter().map(|i| i.receiver).collect())
        .map_err(|e| e.to_string())
}

/// The receivers of a delivery task: `team-a` (the receiver of
/// [`notification`]) with one webhook integration posting to `url`.
pub fn webhook_team_a(url: &str) -> vigil_evaluator::server::config::ReceiverIntegrations {
    let integration = vigil_evaluator::notify::receivers::Integration {
        receiver_name: "team-a".into(),
        integration: "webhook",
        index: 0,
        receiver: build_one(&format!("webhook_configs: [{{url: '{url}'}}]")),
    };
    [("team-a".to_string(), vec![integration])]
        .into_iter()
        .collect()
}

/// Builds exactly one integration, panicking with the config errors otherwise.
pub fn build_one(yaml_sections: &str) -> Arc<dyn Receiver> {
    match build(yaml_sections, &GlobalReceiverDefaults::default()) {
        Ok(mut receivers) if receivers.len() == 1 => receivers.remove(0),
        Ok(receivers) => panic!("expected one integration, got {}", receivers.len()),
        Err(e) => panic!("{e}"),
    }
}

/// Writes `test` as `test.yaml` in `dir` and runs `promtool test rules` on
/// it; panics with `disagreement` and promtool's output when it fails.
pub fn promtool_test_rules(
    promtool: &std::path::Path,
    dir: &std::path::Path,
    test: &str,
    disagreement: &str,
) {
    let test_file = dir.join("test.yaml");
    std::fs::write(&test_file, test).expect("write test");
    let out = std::process::Command::new(promtool)
        .arg("test")
        .arg("rules")
        .arg(&test_file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "{disagreement}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `s` percent-encoded for a query string (unreserved characters kept).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A history writer with the default settings on `store`, its metrics in
/// `registry`, stopping on `stop`.
pub fn default_writer(
    store: &vigil_evaluator::history::HistoryStore,
    registry: &prometheus::Registry,
    stop: &tokio_util::sync::CancellationToken,
) -> vigil_evaluator::history::writer::HistoryWriter {
    let (writer, _task) = vigil_evaluator::history::writer::HistoryWriter::spawn(
        store.clone(),
        vigil_evaluator::history::writer::WriterConfig::default(),
        registry,
        stop.clone(),
    )
    .unwrap_or_else(|e| panic!("cannot start the history writer: {e}"));
    writer
}
