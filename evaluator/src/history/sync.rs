//! Keeps the history and the running notifier in step with what other
//! replicas and time did meanwhile: silences other replicas wrote to the
//! shared database are merged into the notifier's silence store, posted
//! alerts that timed out (no `endsAt` refresh) are recorded as resolved,
//! and after a restart the still-open episodes of posted alerts are loaded
//! back, so a sender re-posting them continues them.
//!
//! The rounds act on a [`SyncTarget`] (the Alertmanager API implements it),
//! so the history does not depend on the HTTP layer that holds the posted
//! alerts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::store::{HistoryQuery, HistoryState};
use super::tracker::OpenEpisode;
use super::HistoryStore;
use crate::clock::{add, Clock};
use crate::notify::alert::Fingerprint;
use crate::notify::notifier::Notifier;
use crate::notify::silence::DEFAULT_RETENTION;

/// How often [`run_sync`] runs by default.
pub const SYNC_EVERY: Duration = Duration::from_secs(10);

/// What the sync rounds keep in step with the database: the notifier whose
/// silence store takes other replicas' silences, and the posted alerts
/// whose timed-out episodes are recorded as resolved.
pub trait SyncTarget: Send + Sync {
    /// The clock "now" is read from.
    fn clock(&self) -> &Arc<dyn Clock>;
    /// The notifier whose silences the database's are merged into.
    fn notifier(&self) -> &Arc<tokio::sync::Mutex<Notifier>>;
    /// Records as resolved the posted alerts that timed out by `now`.
    fn sweep_posted(&self, now: DateTime<Utc>);
}

/// Every `every` until `stop`: merges the silences in `store` (written by
/// other replicas) into the notifier's silence store, and records posted
/// alerts that timed out as resolved. A database that does not answer is
/// logged and tried again at the next round.
pub async fn run_sync(
    api: Arc<dyn SyncTarget>,
    store: HistoryStore,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = api.clock().sleep(every) => {}
        }
        // A database that hangs must not hold up a shutdown.
        tokio::select! {
            () = stop.cancelled() => return,
            () = sync_once(api.as_ref(), &store) => {}
        }
    }
}

/// One round of [`run_sync`].
pub async fn sync_once(api: &dyn SyncTarget, store: &HistoryStore) {
    let now = api.clock().now();
    api.sweep_posted(now);
    match tokio::time::timeout(Duration::from_secs(10), store.load_silences()).await {
        Ok(Ok(rows)) => {
            // Silences the cache already forgot stay forgotten.
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|(s, _)| add(s.ends_at, DEFAULT_RETENTION) > now)
                .collect();
            let changed = api
                .notifier()
                .lock()
                .await
                .silences_mut()
                .merge_stored(rows);
            if changed > 0 {
                tracing::info!(silences = changed, "silences merged from the database");
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot read silences from the database"),
        Err(_) => tracing::warn!("the database did not answer the silence merge in time"),
    }
}

/// The still-firing episodes of alerts posted before a restart (history
/// groups `api` and `api/...`), for
/// the Alertmanager API's `restore_open_episodes`. Each resolves five minutes
/// after `now` unless its sender posts it again (Prometheus re-sends every
/// minute). A database that does not answer gives none.
pub async fn load_open_episodes(store: &HistoryStore, now: DateTime<Utc>) -> Vec<OpenEpisode> {
    let query = HistoryQuery {
        state: Some(HistoryState::Firing),
        limit: 10_000,
        ..HistoryQuery::default()
    };
    match tokio::time::timeout(Duration::from_secs(10), store.query(&query)).await {
        Ok(Ok(page)) => page
            .items
            .into_iter()
            .filter(|e| e.group_name == "api" || e.group_name.starts_with("api/"))
            .map(|e| OpenEpisode {
                fingerprint: Fingerprint::of(&e.labels),
                rule: e.rule,
                group_name: e.group_name,
                labels: e.labels,
                annotations: e.annotations,
                starts_at: e.starts_at,
                ends_at: now + chrono::Duration::minutes(5),
            })
            .collect(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot load the open episodes of posted alerts");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}
