//! Glue between stages that were built without knowing each other: scraped
//! batches into the store, and the rules engine's alerts into the
//! notifier's alert model (Prometheus' "send alerts" step).

use chrono::{DateTime, TimeZone, Utc};

use super::query_adapter::{write_store, SharedStore};
use crate::alerts;
use crate::notify::alert::Alert;
use crate::rules::group::{Rule, RuleGroup};
use crate::scrape::{AppendError, Sample, SampleAppender, TargetId};
use crate::store::{Owner, StoreError, UNOWNED};

/// Stores each scrape under one write lock. As in Prometheus, samples the
/// store refuses one by one (out of order, duplicate timestamp) are skipped
/// and counted in the log, never failing the scrape. A registered target's
/// scrape that would take it past its share of the series limit is refused
/// whole (see [`crate::store`]), which fails that scrape.
#[derive(Debug, Clone)]
pub struct ScrapeToStore {
    store: SharedStore,
}

impl ScrapeToStore {
    pub fn new(store: SharedStore) -> ScrapeToStore {
        ScrapeToStore { store }
    }

    fn store_batch(&self, owner: Owner, batch: &[Sample]) -> Result<(), AppendError> {
        let mut store = write_store(&self.store);
        let stats = store
            .append_owned(owner, batch.iter().map(|s| (&s.labels, s.t_ms, s.value)))
            .map_err(|e| match e {
                StoreError::ShareExceeded {
                    would_hold,
                    allowed,
                    limit,
                    owners,
                } => AppendError::SeriesLimit {
                    would_hold,
                    allowed,
                    limit,
                    targets: owners,
                },
                other => AppendError::Rejected(other.to_string()),
            })?;
        drop(store);
        if stats.out_of_order > 0 {
            tracing::debug!(
                samples = stats.out_of_order,
                "scraped samples skipped: out of order or duplicate timestamp"
            );
        }
        if stats.over_limit > 0 {
            tracing::warn!(
                samples = stats.over_limit,
                "scraped samples dropped: the store's series limit is reached; raise storage.series_limit"
            );
        }
        Ok(())
    }
}

impl SampleAppender for ScrapeToStore {
    fn commit(&self, batch: &[Sample]) -> Result<(), AppendError> {
        self.store_batch(UNOWNED, batch)
    }

    fn register_target(&self) -> TargetId {
        TargetId(write_store(&self.store).register_owner())
    }

    fn unregister_target(&self, target: TargetId) {
        write_store(&self.store).unregister_owner(target.0);
    }

    fn commit_target(&self, target: TargetId, batch: &[Sample]) -> Result<(), AppendError> {
        self.store_batch(target.0, batch)
    }
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters
/// stay as they are).
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link back to the expression, as Prometheus builds it.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    format!(
        "{}/graph?g0.expr={}&g0.tab=1",
        external_url.trim_end_matches('/'),
        query_escape(expr)
    )
}

/// Converts the alerts a group evaluation wants sent into notifier alerts:
/// `starts_at` is when the alert fired (its activation time before that),
/// `ends_at` the resolve time or the validity of this send.
pub fn to_notifier_alerts(
    group: &RuleGroup,
    alerts: Vec<alerts::Alert>,
    external_url: &str,
) -> Vec<Alert> {
    alerts
        .into_iter()
        .map(|a| {
            let expr = group
                .rules
                .iter()
                .find_map(|entry| match &entry.rule {
                    Rule::Alerting(rule) if rule.name() == a.name() => {
                        Some(rule.spec().expr.clone())
                    }
                    _ => None,
                })
                .unwrap_or_default();
            to_notifier_alert(a, &expr, external_url)
        })
        .collect()
}

/// The notifier's view of alert `a` of a rule with expression `expr`.
pub fn to_notifier_alert(a: alerts::Alert, expr: &str, external_url: &str) -> Alert {
    Alert {
        starts_at: time(a.fired_at_ms.unwrap_or(a.active_at_ms)),
        ends_at: a.ends_at_ms().map(time),
        generator_url: generator_url(external_url, expr),
        cooldown: a.cooldown,
        labels: a.labels,
        annotations: a.annotations,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::sync::{Arc, RwLock};

    use super::*;
    use crate::labels::Labels;
    use crate::promql::SeriesSource;
    use crate::store::Store;

    #[test]
    fn generator_url_escapes_the_expression() {
        assert_eq!(
            generator_url("http://h:9320/", "up{job=\"a b\"} == 0"),
            "http://h:9320/graph?g0.expr=up%7Bjob%3D%22a%20b%22%7D%20%3D%3D%200&g0.tab=1"
        );
    }

    #[test]
    fn a_scrape_keeps_its_good_samples_when_some_are_out_of_order() {
        let store: SharedStore = Arc::new(RwLock::new(Store::new(100)));
        let appender = ScrapeToStore::new(store.clone());
        let labels = Labels::from_pairs([("__name__", "up")]);
        let other = Labels::from_pairs([("__name__", "other")]);
        let sample = |labels: &Labels, t_ms| Sample {
            labels: labels.clone(),
            t_ms,
            value: 1.0,
        };
        appender.commit(&[sample(&labels, 2_000)]).unwrap();
        appender
            .commit(&[sample(&labels, 1_000), sample(&other, 1_000)])
            .unwrap();
        let store = store.read().unwrap();
        assert_eq!(store.series_count(), 2);
        assert_eq!(store.select(&[], i64::MIN, i64::MAX).len(), 2);
    }
}
