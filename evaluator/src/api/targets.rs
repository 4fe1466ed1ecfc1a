//! `/api/v1/targets`: the scrape targets' state in Prometheus' shape, so
//! "is my exporter being scraped, and why not" is answered the same way
//! as on Prometheus.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use super::prometheus::{success, LabelsJson};
use super::AppState;
use crate::labels::Labels;
use crate::scrape::TargetState;
use vigil_common::duration::format_duration;

/// Go's zero `time.Time`, which Prometheus shows for "never".
pub const NEVER: &str = "0001-01-01T00:00:00Z";

/// RFC 3339 with the sub-second digits Prometheus shows.
pub fn format_system_time(t: Option<SystemTime>) -> String {
    match t {
        None => NEVER.to_string(),
        Some(t) => chrono::DateTime::<chrono::Utc>::from(t)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActiveTarget<'a> {
    discovered_labels: LabelsJson<'a>,
    labels: LabelsJson<'a>,
    scrape_pool: &'a str,
    scrape_url: &'a str,
    global_url: &'a str,
    last_error: &'a str,
    last_scrape: String,
    last_scrape_duration: f64,
    health: &'static str,
    scrape_interval: String,
    scrape_timeout: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetsData<'a> {
    active_targets: Vec<ActiveTarget<'a>>,
    dropped_targets: Vec<()>,
}

/// The labels service discovery would have produced for a static target:
/// address, scheme and path from the URL, the job, and the static labels.
pub fn discovered_labels(t: &TargetState) -> Labels {
    let mut pairs: Vec<(String, String)> = t
        .labels
        .iter()
        .filter(|l| l.name != "instance")
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    if let Ok(url) = reqwest::Url::parse(&t.scrape_url) {
        let host = url.host_str().unwrap_or_default();
        let address = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        pairs.push(("__address__".into(), address));
        pairs.push(("__scheme__".into(), url.scheme().to_string()));
        pairs.push(("__metrics_path__".into(), url.path().to_string()));
    }
    pairs.push(("job".into(), t.job.clone()));
    pairs.push((
        "__scrape_interval__".into(),
        format_duration(t.scrape_interval),
    ));
    pairs.push((
        "__scrape_timeout__".into(),
        format_duration(t.scrape_timeout),
    ));
    Labels::from_pairs(pairs)
}

/// `GET /api/v1/targets`.
pub async fn targets(State(state): State<Arc<AppState>>) -> Response {
    let snapshots: Vec<TargetState> = {
        let handles = state.targets.read().unwrap_or_else(|e| e.into_inner());
        handles.iter().map(|h| h.snapshot()).collect()
    };
    let discovered: Vec<Labels> = snapshots.iter().map(discovered_labels).collect();
    let active_targets = snapshots
        .iter()
        .zip(&discovered)
        .map(|(t, d)| ActiveTarget {
            discovered_labels: LabelsJson(d),
            labels: LabelsJson(&t.labels),
            scrape_pool: &t.job,
            scrape_url: &t.scrape_url,
            global_url: &t.scrape_url,
            last_error: t.last_error.as_deref().unwrap_or_default(),
            last_scrape: format_system_time(t.last_scrape),
            last_scrape_duration: t
                .last_scrape_duration
                .unwrap_or(Duration::ZERO)
                .as_secs_f64(),
            health: t.health.as_str(),
            scrape_interval: format_duration(t.scrape_interval),
            scrape_timeout: format_duration(t.scrape_timeout),
        })
        .collect();
    success(TargetsData {
        active_targets,
        dropped_targets: Vec::new(),
    })
}
