//! The history's lifecycle in the running evaluator: connecting and
//! migrating at start (without ever blocking evaluation on a database that
//! is down), the batched writer and the retention pruner, the leader
//! election that decides who sends, the stored silences, and stopping all
//! of it in order.
//!
//! Why: without it the history tables stay empty, and a restart would
//! forget what was firing and what receivers were told.

use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::db::Pooling;
use super::leader::{LeaderConfig, LeaderElector, Ticks};
use super::silences::SqlSilences;
use super::store::run_pruner;
use super::writer::{HistoryWriter, WriterConfig, WriterSummary};
use super::{Database, HistoryError, HistoryStore};
use crate::clock::{Clock, ShutdownGrace};
use crate::notify::silence::DEFAULT_RETENTION;

/// How often closed history older than `storage.retention` is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long start-up waits for saved state before evaluating without it.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What the history needs of the validated `storage:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct HistorySettings {
    /// The URL to connect to, a relative SQLite file already anchored.
    pub database_url: String,
    /// `storage.transaction_pooling` (Postgres only).
    pub pooling: Pooling,
    /// How long closed history is kept.
    pub retention: Duration,
    pub lease_duration: Duration,
    pub lease_renew_interval: Duration,
}

/// Why the history could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DurabilityError {
    #[error("history storage (storage.database_url): {0}")]
    History(#[from] HistoryError),
}

/// The running history: the store, the writer the evaluation records into,
/// the pruner and the leader election.
#[derive(Debug)]
pub struct Durability {
    pub store: HistoryStore,
    pub writer: HistoryWriter,
    pub leader: LeaderElector,
    writer_task: JoinHandle<WriterSummary>,
    pruner_task: JoinHandle<()>,
    stop: CancellationToken,
}

impl Durability {
    /// Opens the database lazily (a database that is down is logged and
    /// retried by the writer; evaluation does not wait for it), migrates it
    /// in the background, and starts the writer, the pruner and the leader
    /// election. `grace` bounds the writer's flush at [`Durability::stop`]
    /// (its value then, not now).
    /// All of them read time from `clock`.
    pub fn start(
        storage: &HistorySettings,
        registry: &Registry,
        grace: ShutdownGrace,
        clock: Arc<dyn Clock>,
    ) -> Result<Durability, DurabilityError> {
        let db = Database::connect_lazy_with(&storage.database_url, storage.pooling)?;
        let store = HistoryStore::new(db.clone()).with_metrics(registry)?;
        let stop = CancellationToken::new();
        tokio::spawn(async move {
            match db.ensure_schema().await {
                Ok(()) => tracing::info!(database = %db.url(), "history database ready"),
                Err(e) => {
                    tracing::error!(error = %e, "history database unavailable; history is buffered and written once it answers")
                }
            }
        });
        let config = WriterConfig {
            shutdown_grace: grace,
            clock: Arc::clone(&clock),
            ..WriterConfig::default()
        };
        let (writer, writer_task) =
            HistoryWriter::spawn(store.clone(), config, registry, stop.clone())?;
        let pruner_task = tokio::spawn(run_pruner(
            store.clone(),
            storage.retention,
            PRUNE_EVERY,
            Arc::clone(&clock),
            stop.clone(),
        ));
        let leader = LeaderElector::start(
            &storage.database_url,
            store.database(),
            LeaderConfig::new(storage.lease_duration, storage.lease_renew_interval),
            Ticks::Every(storage.lease_renew_interval),
            clock,
            stop.clone(),
        )?;
        Ok(Durability {
            store,
            writer,
            leader,
            writer_task,
            pruner_task,
            stop,
        })
    }

    /// The stored silences, written through to the history from now on;
    /// none yet when the database does not answer (the periodic merge of
    /// [`crate::history::sync::run_sync`] brings them in later).
    pub async fn load_silences(&self) -> SqlSilences {
        let writer = self.writer.clone();
        let load = SqlSilences::load(&self.store, writer.clone(), DEFAULT_RETENTION);
        match tokio::time::timeout(LOAD_TIMEOUT, load).await {
            Ok(Ok(silences)) => silences,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot load silences; they are merged in once the database answers");
                SqlSilences::empty(writer, DEFAULT_RETENTION)
            }
            Err(_) => {
                tracing::error!("the history database did not answer in time; silences are merged in once it does");
                SqlSilences::empty(writer, DEFAULT_RETENTION)
            }
        }
    }

    /// Silences for a start without the database: none yet, written
    /// through from now on; the periodic sync merges the stored ones in.
    pub fn silences_without_database(&self) -> SqlSilences {
        SqlSilences::empty(self.writer.clone(), DEFAULT_RETENTION)
    }

    /// Stops the pruner and the election and flushes the writer (bounded by
    /// the grace handed to [`Durability::start`], as it reads now).
    pub async fn stop(self) {
        self.stop.cancel();
        drop(self.writer);
        match self.writer_task.await {
            Ok(summary) if summary.lost > 0 => {
                tracing::warn!(lost = summary.lost, "history writes lost at shutdown");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "the history writer failed"),
        }
        let _ = self.pruner_task.await;
        self.leader.join().await;
        self.store.database().close().await;
    }
}
