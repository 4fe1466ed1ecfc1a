//! Retention: pruning closed history older than `storage.retention`, once
//! and then periodically.

use chrono::{DateTime, Utc};

use super::{HistoryStore, PruneReport};
use crate::history::db::DbConn;
use crate::history::{to_millis, HistoryError};

impl HistoryStore {
    /// Deletes closed history older than `cutoff`: episodes that ended before
    /// it (with their events), delivered or failed notifications created
    /// before it, silences that ended before it, and notification-log
    /// entries last sent before it. Open episodes, pending notifications and
    /// alert-state snapshots are kept whatever their age.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> Result<PruneReport, HistoryError> {
        let cutoff = to_millis(cutoff);
        let mut tx = self.db.begin().await?;
        let report = PruneReport {
            events: prune_rows(
                &mut tx,
                cutoff,
                "DELETE FROM alert_events WHERE alert_id IN \
                 (SELECT id FROM alerts WHERE ends_at IS NOT NULL AND ends_at < $1)",
            )
            .await?,
            episodes: prune_rows(
                &mut tx,
                cutoff,
                "DELETE FROM alerts WHERE ends_at IS NOT NULL AND ends_at < $1",
            )
            .await?,
            notifications: {
                prune_rows(
                    &mut tx,
                    cutoff,
                    "DELETE FROM notification_alerts WHERE notification_id IN \
                     (SELECT id FROM notifications WHERE status <> 'pending' AND created_at < $1)",
                )
                .await?;
                prune_rows(
                    &mut tx,
                    cutoff,
                    "DELETE FROM notifications WHERE status <> 'pending' AND created_at < $1",
                )
                .await?
            },
            silences: prune_rows(&mut tx, cutoff, "DELETE FROM silences WHERE ends_at < $1")
                .await?,
            notify_log: {
                prune_rows(
                    &mut tx,
                    cutoff,
                    "DELETE FROM cooldowns WHERE awaiting_resolve = 0 AND last_firing_sent < $1",
                )
                .await?;
                prune_rows(&mut tx, cutoff, "DELETE FROM notify_log WHERE sent_at < $1").await?
            },
        };
        tx.commit()
            .await
            .map_err(HistoryError::db("committing the prune"))?;
        Ok(report)
    }
}

/// Prunes history older than `retention` (see [`HistoryStore::prune`]) now
/// and then every `every` (on `clock`) until `shutdown`, reading "now" from
/// `clock`.
/// A failed round is logged and retried at the next one.
pub async fn run_pruner(
    store: HistoryStore,
    retention: std::time::Duration,
    every: std::time::Duration,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let now = clock.now();
        let cutoff = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| now.checked_sub_signed(r))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        match store.prune(cutoff).await {
            Ok(report) if report != PruneReport::default() => {
                tracing::info!(?report, %cutoff, "pruned old history");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "pruning old history failed; retrying later"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = clock.sleep(every) => {}
        }
    }
}

pub(super) async fn prune_rows(
    conn: &mut DbConn,
    cutoff: i64,
    sql: &str,
) -> Result<u64, HistoryError> {
    sqlx::query(sql)
        .bind(cutoff)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        .map_err(HistoryError::db("pruning old history"))
}
