//! `POST /api/v2/alerts` (admission, see the module above) and
//! `GET /api/v2/alerts` (Alertmanager's listing with its filters and
//! status).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::error::AmError;
use super::params::{bool_param, filter_param, format_time, parse_time, query_pairs};
use super::{ADMIT_WAIT, MAX_ALERTS, MAX_LAG};
use crate::api::prometheus::LabelsJson;
use crate::api::{authorized, AppState};
use crate::clock::add;
use crate::labels::Labels;
use crate::notify::alert::{Alert, Fingerprint};
use crate::notify::matcher::{is_valid_label_name, Matcher};
use crate::notify::notifier::{off_worker, AlertsSnapshot};
use crate::notify::silence::Silence;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

/// One posted alert after Alertmanager's defaults and checks.
fn to_alert(posted: PostableAlert, now: DateTime<Utc>) -> Result<Alert, String> {
    let labels = posted.labels.unwrap_or_default();
    let starts_at = parse_time("startsAt", posted.starts_at.as_deref().unwrap_or(""))?;
    let ends_at = parse_time("endsAt", posted.ends_at.as_deref().unwrap_or(""))?;
    let starts_at = starts_at.or(ends_at).unwrap_or(now);
    if let Some(end) = ends_at {
        if end < starts_at {
            return Err("start time must be before end time".into());
        }
    }
    // As Alertmanager: empty label values mean "no such label".
    let labels: BTreeMap<String, String> =
        labels.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    if let Some(bad) = labels.keys().find(|n| !is_valid_label_name(n)) {
        return Err(format!("invalid label set: invalid name {bad:?}"));
    }
    if labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    let annotations = posted.annotations.unwrap_or_default();
    if let Some(bad) = annotations.keys().find(|n| !is_valid_label_name(n)) {
        return Err(format!("invalid annotations: invalid name {bad:?}"));
    }
    Ok(Alert {
        labels: Labels::from_pairs(labels),
        annotations,
        starts_at,
        ends_at,
        generator_url: posted.generator_url.unwrap_or_default(),
        cooldown: None,
    })
}

/// A `POST /api/v2/alerts` body decoded and checked as the handler does
/// before admission: each alert, or why it is refused; the whole body
/// refused (with why) when it is not a JSON list of alerts with labels and
/// readable times. For the fuzzer and tests of untrusted input.
pub fn decode_posted_alerts(
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Vec<Result<Alert, String>>, String> {
    let posted: Vec<PostableAlert> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if let Some(i) = posted.iter().position(|a| a.labels.is_none()) {
        return Err(format!("{i}.labels in body is required"));
    }
    Ok(posted.into_iter().map(|a| to_alert(a, now)).collect())
}
/// The history group of posted alerts: `api/` and the sender's product
/// name from its User-Agent (`api/Prometheus`), or `api`.
fn sender_group(headers: &HeaderMap) -> String {
    let product = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split_whitespace().next())
        .and_then(|token| token.split('/').next())
        .filter(|p| !p.is_empty());
    match product {
        Some(p) => format!("api/{p}"),
        None => "api".to_string(),
    }
}

/// `POST /api/v2/alerts`.
pub async fn post_alerts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AmError> {
    if !authorized(&state, &headers) {
        return Err(AmError::unauthorized());
    }
    let body = body.map_err(|e| AmError::body(&e))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AmError::required(&["alerts".to_string()]));
    }
    // Up to 2 MiB of JSON: parsed with the worker marked busy.
    let posted: Vec<PostableAlert> =
        off_worker(|| serde_json::from_slice(&body)).map_err(|e| AmError::parse("alerts", e))?;
    let missing: Vec<String> = posted
        .iter()
        .enumerate()
        .filter(|(_, a)| a.labels.is_none())
        .map(|(i, _)| format!("{i}.labels"))
        .collect();
    if !missing.is_empty() {
        return Err(AmError::required(&missing));
    }
    // Unreadable times fail the whole request, as JSON decoding does in
    // Alertmanager.
    for a in &posted {
        parse_time("startsAt", a.starts_at.as_deref().unwrap_or(""))
            .and_then(|_| parse_time("endsAt", a.ends_at.as_deref().unwrap_or("")))
            .map_err(|e| AmError::parse("alerts", e))?;
    }
    let api = &state.alertmanager;
    let now = api.clock.now();
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for alert in posted {
        match to_alert(alert, now) {
            Ok(a) => valid.push(a),
            Err(e) => errors.push(e),
        }
    }
    let group = sender_group(&headers);
    if let Some(writer) = api.history.as_ref().filter(|w| w.congested()) {
        return Err(api.refuse(format!(
            "the history database is behind ({} writes waiting, capacity {})",
            writer.backlog(),
            writer.capacity()
        )));
    }
    {
        let Ok(mut notifier) = tokio::time::timeout(ADMIT_WAIT, api.notifier.lock()).await else {
            return Err(api.refuse(format!(
                "the notification pipeline is busy (not free within {} s)",
                ADMIT_WAIT.as_secs()
            )));
        };
        let lag = notifier.lag(now);
        if lag > MAX_LAG {
            return Err(api.refuse(format!(
                "the notification pipeline is {} s behind",
                lag.as_secs()
            )));
        }
        let new = valid
            .iter()
            .filter(|a| !notifier.holds(a.fingerprint()))
            .count();
        if new > 0 && notifier.alert_count() + new > MAX_ALERTS {
            return Err(api.refuse(format!(
                "the notifier holds {} alerts, at most {MAX_ALERTS}",
                notifier.alert_count()
            )));
        }
        api.admitted();
        let resolve_timeout = notifier.config().global.resolve_timeout;
        off_worker(|| {
            api.record_posted(|posted| {
                valid
                    .iter()
                    .flat_map(|a| {
                        let ends_at = a.ends_at.unwrap_or_else(|| add(now, resolve_timeout));
                        posted.observe(a, ends_at, &group, now)
                    })
                    .collect()
            });
            notifier.ingest(valid, now);
        });
    }
    if !errors.is_empty() {
        tracing::warn!(errors = %errors.join("; "), "posted alerts refused");
        return Err(AmError::bad_request(errors.join("; ")));
    }
    Ok(StatusCode::OK.into_response())
}

#[derive(Serialize)]
struct ReceiverName<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertStatusJson {
    inhibited_by: Vec<String>,
    silenced_by: Vec<String>,
    /// The time intervals holding its notifications back now (as
    /// Alertmanager 0.27 reports them); left out when none, as
    /// Alertmanager 0.25 has no such field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    muted_by: Vec<String>,
    state: &'static str,
}

/// One entry of `GET /api/v2/alerts` (Alertmanager's `gettableAlert`),
/// borrowing the labels and annotations from the notifier's snapshot (a
/// listing of many alerts copies none of them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlert<'a> {
    annotations: &'a BTreeMap<String, String>,
    ends_at: String,
    #[serde(serialize_with = "fingerprint_hex")]
    fingerprint: Fingerprint,
    receivers: Vec<ReceiverName<'a>>,
    starts_at: String,
    status: AlertStatusJson,
    updated_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
    generator_url: &'a str,
    labels: LabelsJson<'a>,
}

/// A fingerprint as Alertmanager writes it: 16 hex digits.
fn fingerprint_hex<S: serde::Serializer>(f: &Fingerprint, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(f)
}

/// `GET /api/v2/alerts`. Works on a snapshot of the notifier (taken in
/// pointer copies under its lock) on the blocking pool, so neither the
/// pipeline nor the async workers wait for a listing of many alerts.
pub async fn get_alerts(State(state): State<Arc<AppState>>, uri: Uri) -> Result<Response, AmError> {
    let pairs = query_pairs(&uri)?;
    let matchers = filter_param(&pairs)?;
    let receiver =
        match pairs.iter().find(|(k, _)| k == "receiver") {
            Some((_, pattern)) => Some(Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                AmError::bad_request(format!("failed to parse receiver param: {e}"))
            })?),
            None => None,
        };
    let filter = AlertFilter {
        matchers,
        receiver,
        active: bool_param(&pairs, "active")?,
        silenced: bool_param(&pairs, "silenced")?,
        inhibited: bool_param(&pairs, "inhibited")?,
    };
    // Every alert is processed as soon as it is ingested.
    let _unprocessed = bool_param(&pairs, "unprocessed")?;

    let api = &state.alertmanager;
    let snapshot = {
        let mut notifier = api.notifier.lock().await;
        off_worker(|| notifier.snapshot())
    };
    let now = api.clock.now();
    let body = tokio::task::spawn_blocking(move || {
        serde_json::to_vec(&list_alerts(&snapshot, &filter, now))
    })
    .await
    .map_err(|e| AmError::Payload {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("listing the alerts failed: {e}"),
    })?
    .map_err(|e| AmError::Payload {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("cannot encode the alerts: {e}"),
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The query parameters of `GET /api/v2/alerts`.
struct AlertFilter {
    matchers: Vec<Matcher>,
    receiver: Option<Regex>,
    active: bool,
    silenced: bool,
    inhibited: bool,
}

/// The alerts of `snapshot` that pass `filter` at `now`, by fingerprint.
fn list_alerts<'a>(
    snapshot: &'a AlertsSnapshot,
    filter: &AlertFilter,
    now: DateTime<Utc>,
) -> Vec<GettableAlert<'a>> {
    let sources = snapshot.sources_at(now);
    let silences: Vec<&Silence> = snapshot
        .silences
        .iter()
        .filter(|s| s.is_active(now))
        .collect();
    let mut out = Vec::new();
    for entry in &snapshot.alerts {
        let alert = entry.alert.as_ref();
        if alert.ends_at.is_some_and(|end| end < now) {
            continue;
        }
        if !filter.matchers.iter().all(|m| m.matches(&alert.labels)) {
            continue;
        }
        let receivers = snapshot.routes.receivers(&alert.labels);
        if let Some(re) = &filter.receiver {
            if !receivers.iter().any(|r| re.is_match(r)) {
                continue;
            }
        }
        let silenced_by: Vec<String> = silences
            .iter()
            .filter(|s| s.mutes(&alert.labels, now))
            .map(|s| s.id.clone())
            .collect();
        let inhibited_by: Vec<String> = sources
            .inhibited_by(&snapshot.inhibitor, &alert.labels)
            .into_iter()
            .map(|f| f.to_string())
            .collect();
        // Muted when every route it takes is muted by a time interval.
        let routes = snapshot.routes.matching(&alert.labels);
        let route_mutes: Vec<Vec<String>> = routes.iter().map(|r| r.opts.muted_by(now)).collect();
        let muted_by: Vec<String> = if route_mutes.iter().all(|m| !m.is_empty()) {
            let mut names: Vec<String> = route_mutes.into_iter().flatten().collect();
            names.sort();
            names.dedup();
            names
        } else {
            Vec::new()
        };
        let suppressed =
            !silenced_by.is_empty() || !inhibited_by.is_empty() || !muted_by.is_empty();
        if (!filter.active && !suppressed)
            || (!filter.silenced && !silenced_by.is_empty())
            || (!filter.inhibited && !inhibited_by.is_empty())
        {
            continue;
        }
        out.push(GettableAlert {
            annotations: &alert.annotations,
            ends_at: format_time(alert.ends_at.unwrap_or(now)),
            fingerprint: entry.fingerprint,
            receivers: receivers
                .into_iter()
                .map(|name| ReceiverName { name })
                .collect(),
            starts_at: format_time(alert.starts_at),
            status: AlertStatusJson {
                inhibited_by,
                silenced_by,
                muted_by,
                state: if suppressed { "suppressed" } else { "active" },
            },
            updated_at: format_time(entry.updated_at),
            generator_url: &alert.generator_url,
            labels: LabelsJson(&alert.labels),
        });
    }
    // Fixed-width hex: the order of the numbers is the order of the text.
    out.sort_unstable_by_key(|a| a.fingerprint);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::super::params::tests::t;
    use super::*;
    use crate::notify::notifier::Notifier;

    /// The Alertmanager side-by-side bench at a tenth of its size: one
    /// inhibit rule per team, all muting the same warnings. Every listed
    /// alert carries its own labels and names exactly the critical alert
    /// of its instance as its inhibitor, in fingerprint order.
    #[test]
    fn a_listing_under_one_inhibit_rule_per_team_names_each_source() {
        let teams = 10;
        let mut text = String::from(
            "route: {receiver: hook, group_by: [team]}\nreceivers: [{name: hook}]\ninhibit_rules:\n",
        );
        for team in 0..teams {
            text.push_str(&format!(
                "  - source_matchers: ['severity=\"critical\"', 'team=\"t{team}\"']\n    \
                 target_matchers: ['severity=\"warning\"']\n    equal: [instance]\n"
            ));
        }
        let config =
            crate::notify::config::parse(&text, std::path::Path::new("notify.yaml")).unwrap();
        let mut notifier = Notifier::new(std::sync::Arc::new(config));
        let labels = |i: usize| {
            let critical = i % 2 == 0;
            let instance = if i % 4 < 2 {
                format!("shared{}", i / 2)
            } else {
                format!("own{i}")
            };
            Labels::from_pairs([
                (
                    "alertname",
                    if critical { "Critical" } else { "Warning" }.to_string(),
                ),
                (
                    "severity",
                    if critical { "critical" } else { "warning" }.to_string(),
                ),
                ("team", format!("t{}", (i / 2) % teams)),
                ("instance", instance),
                ("series", format!("s{i}")),
            ])
        };
        let n = 1_000;
        let alerts = (0..n)
            .map(|i| Alert {
                labels: labels(i),
                annotations: BTreeMap::from([("summary".to_string(), format!("alert {i}"))]),
                starts_at: t(0),
                ends_at: None,
                generator_url: String::new(),
                cooldown: None,
            })
            .collect();
        notifier.ingest(alerts, t(0));
        let snapshot = notifier.snapshot();
        let filter = AlertFilter {
            matchers: Vec::new(),
            receiver: None,
            active: true,
            silenced: true,
            inhibited: true,
        };
        let listed: serde_json::Value =
            serde_json::to_value(list_alerts(&snapshot, &filter, t(1))).unwrap();
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), n);
        let fingerprints: Vec<&str> = listed
            .iter()
            .map(|a| a["fingerprint"].as_str().unwrap())
            .collect();
        assert!(
            fingerprints.windows(2).all(|w| w[0] < w[1]),
            "sorted, each once"
        );
        let mut inhibited = 0;
        for i in 0..n {
            let fingerprint = Fingerprint::of(&labels(i)).to_string();
            let entry = listed
                .iter()
                .find(|a| a["fingerprint"] == fingerprint.as_str())
                .unwrap();
            let want_labels: serde_json::Map<String, serde_json::Value> = labels(i)
                .iter()
                .map(|l| (l.name.to_string(), l.value.into()))
                .collect();
            assert_eq!(entry["labels"], serde_json::Value::Object(want_labels));
            assert_eq!(entry["annotations"]["summary"], format!("alert {i}"));
            assert_eq!(entry["receivers"], serde_json::json!([{"name": "hook"}]));
            // Warning i (i % 4 == 1) shares its instance with critical i - 1.
            let want: Vec<String> = if i % 4 == 1 {
                vec![Fingerprint::of(&labels(i - 1)).to_string()]
            } else {
                Vec::new()
            };
            assert_eq!(
                entry["status"]["inhibitedBy"],
                serde_json::json!(want),
                "alert {i}"
            );
            let state = if want.is_empty() {
                "active"
            } else {
                "suppressed"
            };
            assert_eq!(entry["status"]["state"], state);
            inhibited += usize::from(!want.is_empty());
        }
        assert_eq!(inhibited, n / 4);
    }
}
