//! The batched history writer: the evaluation loop records transitions,
//! episodes, snapshots and silences with [`HistoryWriter::record`], which
//! never waits for the database; a background task writes them in
//! transactions of up to `max_batch` rows, at least every `flush_interval`.
//!
//! When the database is slow or down the writes wait in memory, the failed
//! batch is retried with exponential backoff, and once the database answers
//! again the backlog is written in full batches until it is gone.
//!
//! # Nothing is dropped: a spill to memory, with backpressure
//!
//! A write is never refused for lack of room: an episode's close lost to a
//! full queue would leave the history saying "firing" forever. Instead the
//! queue spills past `capacity` (in memory, unbounded) and the writer
//! reports itself congested ([`HistoryWriter::congested`]) while the
//! backlog is at or above `capacity`. Producers driven from outside take
//! that as backpressure: `POST /api/v2/alerts` answers 429 with
//! `Retry-After` while the writer is congested, so a flood of posted alerts
//! cannot grow the spill. The other producers — rule evaluation (one write
//! per alert state change, snapshots only on change), the delivery outbox
//! and silences — are never held up, so a database outage never stops
//! evaluation or notifications (firings are not held hostage by the
//! database); what they write meanwhile is bounded by how many alerts
//! change state, about 1 KiB per write, and is caught up in order once the
//! database answers. A spill file was not chosen: the database being down
//! is the case to ride out, and memory for a few hundred thousand writes
//! (`capacity` defaults to 200,000) is cheaper than a second durable store
//! to keep consistent.
//!
//! Log lines mark state changes only (writes started failing, writes
//! recovered, backlog above `capacity`, backlog drained), never one per row.
//!
//! Metrics (registered into the registry passed to [`HistoryWriter::spawn`]):
//! `vigil_history_backlog` (writes queued or in flight),
//! `vigil_history_write_failures_total` (failed batch attempts),
//! `vigil_history_writes_total` (rows written),
//! `vigil_history_dropped_writes_total` (rows recorded after the writer
//! stopped, or still unwritten when the shutdown grace ran out; never
//! because of a full queue).
//!
//! On shutdown (the cancellation token) the queue is closed and flushed for
//! up to `shutdown_grace`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntGauge, Registry};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::store::HistoryWrite;
use super::{HistoryError, HistoryStore};
use crate::clock::{Clock, ShutdownGrace, SystemClock};

/// Tuning of the writer; the defaults suit production.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Backlog (about 1 KiB per write) at which the writer reports itself
    /// congested, so posted alerts are refused until it drains; writes
    /// beyond it are kept, never dropped.
    pub capacity: usize,
    /// Rows per transaction at most.
    pub max_batch: usize,
    /// How long a write may wait for more to batch with.
    pub flush_interval: Duration,
    /// First retry delay after a failed batch; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A batch taking longer than this counts as failed and is retried
    /// (every write is idempotent, so a batch that did commit is harmless to
    /// replay).
    pub write_timeout: Duration,
    /// How long shutdown may take to flush the queue (read when the
    /// shutdown reaches the writer).
    pub shutdown_grace: ShutdownGrace,
    /// The clock the flush interval, back-off and shutdown grace run on.
    pub clock: Arc<dyn Clock>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            capacity: 200_000,
            max_batch: 500,
            flush_interval: Duration::from_millis(250),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: ShutdownGrace::new(Duration::from_secs(5)),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Why a write was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriterError {
    #[error(
        "the history writer has stopped (the evaluator is shutting down); this write is dropped"
    )]
    Stopped,
}

/// What the writer task did, returned when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterSummary {
    pub written: u64,
    /// Writes still queued when the shutdown grace ran out.
    pub lost: u64,
}

#[derive(Debug)]
struct Metrics {
    backlog: IntGauge,
    failures: IntCounter,
    written: IntCounter,
    dropped: IntCounter,
    /// The backlog reached `capacity` and has not drained since (logged
    /// once each way).
    congested: AtomicBool,
}

impl Metrics {
    fn register(registry: &Registry) -> Result<Metrics, HistoryError> {
        let metrics = Metrics {
            backlog: IntGauge::new(
                "vigil_history_backlog",
                "History writes queued or in flight, not yet in the database.",
            )?,
            failures: IntCounter::new(
                "vigil_history_write_failures_total",
                "Failed attempts to write a batch of history rows.",
            )?,
            written: IntCounter::new(
                "vigil_history_writes_total",
                "History rows written to the database.",
            )?,
            dropped: IntCounter::new(
                "vigil_history_dropped_writes_total",
                "History writes dropped: recorded after the writer stopped, or unwritten at shutdown.",
            )?,
            congested: AtomicBool::new(false),
        };
        registry.register(Box::new(metrics.backlog.clone()))?;
        registry.register(Box::new(metrics.failures.clone()))?;
        registry.register(Box::new(metrics.written.clone()))?;
        registry.register(Box::new(metrics.dropped.clone()))?;
        Ok(metrics)
    }
}

/// The handle the evaluation loop records into. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HistoryWriter {
    tx: mpsc::UnboundedSender<HistoryWrite>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl HistoryWriter {
    /// Starts the writer task on the current tokio runtime. The task ends
    /// when `shutdown` is cancelled (after flushing) or when every handle is
    /// dropped (after writing everything).
    pub fn spawn(
        store: HistoryStore,
        config: WriterConfig,
        registry: &Registry,
        shutdown: CancellationToken,
    ) -> Result<(HistoryWriter, JoinHandle<WriterSummary>), HistoryError> {
        let metrics = Arc::new(Metrics::register(registry)?);
        let capacity = config.capacity.max(1);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(rx, store, config, metrics.clone(), shutdown));
        Ok((
            HistoryWriter {
                tx,
                capacity,
                metrics,
            },
            task,
        ))
    }

    /// Queues a write without waiting; beyond `capacity` it spills (see
    /// the module docs), so only a stopped writer refuses it.
    pub fn record(&self, write: HistoryWrite) -> Result<(), WriterError> {
        // Counted before sending, so the writer never subtracts a write the
        // gauge has not counted yet.
        let backlog = self.metrics.backlog.get() + 1;
        self.metrics.backlog.inc();
        if self.tx.send(write).is_err() {
            self.metrics.backlog.dec();
            self.metrics.dropped.inc();
            return Err(WriterError::Stopped);
        }
        if backlog >= self.capacity as i64 && !self.metrics.congested.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                capacity = self.capacity,
                "history backlog reached its capacity (database slow or down): further writes are kept in memory, none dropped; posted alerts are refused with 429 until it drains"
            );
        }
        Ok(())
    }

    /// Writes queued or in flight (the `vigil_history_backlog` gauge).
    pub fn backlog(&self) -> i64 {
        self.metrics.backlog.get()
    }

    /// Whether the backlog is at or above `capacity`: producers that can
    /// be told to come back later (the posting API) should refuse work.
    pub fn congested(&self) -> bool {
        self.metrics.backlog.get() >= self.capacity as i64
    }

    /// The backlog at which the writer is congested.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Tracks healthy/failing so that only changes are logged.
struct Flusher {
    store: HistoryStore,
    capacity: usize,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    /// When writes started failing, on the clock's monotonic time.
    failing_since: Option<Duration>,
    failed_attempts: u64,
    backoff: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    write_timeout: Duration,
    written: u64,
}

impl Flusher {
    /// Tries to write `batch` once, within `timeout`; true when it landed.
    async fn write(&mut self, batch: &[HistoryWrite], timeout: Duration) -> bool {
        let result = match tokio::time::timeout(timeout, self.store.apply(batch)).await {
            Ok(result) => result.map_err(|err| err.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        match result {
            Ok(()) => {
                let rows = batch.len() as u64;
                self.written += rows;
                self.metrics.written.inc_by(rows);
                self.metrics.backlog.sub(batch.len() as i64);
                let backlog = self.metrics.backlog.get();
                if backlog < self.capacity as i64
                    && self.metrics.congested.swap(false, Ordering::Relaxed)
                {
                    tracing::info!(backlog, "history backlog back under its capacity");
                }
                if let Some(since) = self.failing_since.take() {
                    tracing::info!(
                        database = %self.store.database().url(),
                        down_for = ?self.clock.monotonic().saturating_sub(since),
                        failed_attempts = self.failed_attempts,
                        backlog = self.metrics.backlog.get(),
                        "history writes recovered; catching up"
                    );
                }
                self.failed_attempts = 0;
                self.backoff = self.initial_backoff;
                true
            }
            Err(error) => {
                self.metrics.failures.inc();
                self.failed_attempts += 1;
                if self.failing_since.is_none() {
                    self.failing_since = Some(self.clock.monotonic());
                    tracing::warn!(
                        database = %self.store.database().url(),
                        %error,
                        backlog = self.metrics.backlog.get(),
                        "history writes failing; buffering in memory and retrying with backoff"
                    );
                }
                false
            }
        }
    }

    /// The delay before the next retry, doubling each time.
    fn next_backoff(&mut self) -> Duration {
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(self.max_backoff);
        delay
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<HistoryWrite>,
    store: HistoryStore,
    config: WriterConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> WriterSummary {
    let max_batch = config.max_batch.max(1);
    let mut flusher = Flusher {
        store,
        capacity: config.capacity.max(1),
        metrics: metrics.clone(),
        clock: Arc::clone(&config.clock),
        failing_since: None,
        failed_attempts: 0,
        backoff: config.initial_backoff,
        initial_backoff: config.initial_backoff,
        max_backoff: config.max_backoff,
        write_timeout: config.write_timeout,
        written: 0,
    };
    let mut batch: Vec<HistoryWrite> = Vec::with_capacity(max_batch);
    'run: loop {
        if batch.is_empty() {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break 'run,
                n = rx.recv_many(&mut batch, max_batch) => if n == 0 { break 'run },
            }
            let flush = config.clock.sleep(config.flush_interval);
            tokio::pin!(flush);
            while batch.len() < max_batch {
                let room = max_batch - batch.len();
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    () = &mut flush => break,
                    n = rx.recv_many(&mut batch, room) => if n == 0 { break },
                }
            }
        }
        let timeout = flusher.write_timeout;
        if flusher.write(&batch, timeout).await {
            batch.clear();
            continue;
        }
        let delay = flusher.next_backoff();
        tokio::select! {
            () = shutdown.cancelled() => break 'run,
            () = config.clock.sleep(delay) => {}
        }
    }

    // Shutdown (or every handle dropped): flush what is queued, within the grace.
    rx.close();
    let grace = config.shutdown_grace.get();
    let deadline = config.clock.monotonic() + grace;
    loop {
        if batch.is_empty() && rx.recv_many(&mut batch, max_batch).await == 0 {
            break;
        }
        let remaining = deadline.saturating_sub(config.clock.monotonic());
        if remaining.is_zero() {
            break;
        }
        if flusher
            .write(&batch, remaining.min(flusher.write_timeout))
            .await
        {
            batch.clear();
        } else {
            let delay = flusher.next_backoff().min(remaining);
            config.clock.sleep(delay).await;
        }
    }
    let mut lost = batch.len() as u64;
    while rx.try_recv().is_ok() {
        lost += 1;
    }
    if lost > 0 {
        metrics.dropped.inc_by(lost);
        metrics.backlog.sub(lost as i64);
        tracing::error!(
            lost,
            grace = ?grace,
            "history writes still unwritten when the shutdown grace ran out"
        );
    }
    WriterSummary {
        written: flusher.written,
        lost,
    }
}
