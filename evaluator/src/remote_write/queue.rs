//! One remote-write destination: its samples spread over a fixed number of
//! shards by series (each series stays in time order), each shard sending
//! batches of up to `max_samples_per_send` samples, or what it has after
//! `batch_send_deadline`. A batch that fails for a reason that can pass
//! (5xx, 429 unless `retry_on_http_429: false`, a connection problem) is
//! retried with backoff from `min_backoff` doubling to `max_backoff`, or
//! after the receiver's `Retry-After`; one the receiver refuses (another
//! 4xx) is dropped and counted. New samples wait in the shard's bounded
//! queue meanwhile; when it is full they are dropped and counted. Each
//! shard counts what it was given and what it is done with (sent or given
//! up), so a caller can wait for what it queued ([`ShardProgress`]).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::config::RemoteWriteSettings;
use super::proto::encode_write_request;
use super::RemoteWriteMetrics;
use crate::clock::Clock;
use crate::hash::StableHasher;
use crate::inline_http::with_headers;
use crate::notify::receivers::http::{
    check_http_response, http_client, token_send_error, transport_error,
};
use crate::notify::receivers::SendError;
use crate::sample::Sample;

/// The remote-write protocol version sent with every request.
pub const PROTOCOL_VERSION: &str = "0.1.0";

/// Counters of one destination.
#[derive(Clone)]
struct Counters {
    sent: IntCounter,
    retried: IntCounter,
    dropped_queue_full: IntCounter,
    dropped_rejected: IntCounter,
    dropped_shutdown: IntCounter,
    queue_length: IntGauge,
}

impl Counters {
    fn of(metrics: &RemoteWriteMetrics, name: &str) -> Counters {
        Counters {
            sent: metrics.samples_sent.with_label_values(&[name]),
            retried: metrics.samples_retried.with_label_values(&[name]),
            dropped_queue_full: metrics
                .samples_dropped
                .with_label_values(&[name, "queue_full"]),
            dropped_rejected: metrics
                .samples_dropped
                .with_label_values(&[name, "rejected"]),
            dropped_shutdown: metrics
                .samples_dropped
                .with_label_values(&[name, "shutdown"]),
            queue_length: metrics.queue_length.with_label_values(&[name]),
        }
    }
}

/// How far one shard got: samples given to it, samples it is done with
/// (the receiver took them, refused them, or they were given up), both
/// counted from the start in queue order, and whether it is waiting to
/// retry a failed send.
#[derive(Debug, Default)]
pub struct ShardProgress {
    queued: AtomicU64,
    done: AtomicU64,
    retrying: AtomicBool,
}

impl ShardProgress {
    /// How many samples were given to the shard so far.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }

    /// Whether every sample among the first `queued` is done with, or the
    /// shard is retrying a failed send (the receiver is down or refuses
    /// for now: waiting for it would hold the caller for as long).
    pub fn settled(&self, queued: u64) -> bool {
        self.done.load(Ordering::Acquire) >= queued || self.retrying.load(Ordering::Acquire)
    }
}

/// A running destination: the senders of its shards and how far each got.
pub struct Destination {
    shards: Vec<mpsc::Sender<Sample>>,
    progress: Vec<Arc<ShardProgress>>,
    counters: Counters,
}

impl Destination {
    /// Starts the shards of `settings`; they stop when `cancel` fires,
    /// after one last attempt to send what they hold. `progressed` is
    /// notified whenever a shard gets done with a batch or starts retrying.
    pub fn start(
        settings: RemoteWriteSettings,
        metrics: &RemoteWriteMetrics,
        clock: Arc<dyn Clock>,
        cancel: &CancellationToken,
        progressed: &Arc<Notify>,
    ) -> Result<(Destination, Vec<tokio::task::JoinHandle<()>>), reqwest::Error> {
        let client = http_client(settings.timeout, &settings.http)?;
        let counters = Counters::of(metrics, &settings.name);
        let settings = Arc::new(settings);
        let mut shards = Vec::with_capacity(settings.queue.shards);
        let mut handles = Vec::with_capacity(settings.queue.shards);
        let mut progress = Vec::with_capacity(settings.queue.shards);
        for _ in 0..settings.queue.shards {
            let (tx, rx) = mpsc::channel(settings.queue.capacity);
            shards.push(tx);
            let shard = Shard {
                settings: Arc::clone(&settings),
                client: client.clone(),
                counters: counters.clone(),
                clock: Arc::clone(&clock),
                cancel: cancel.clone(),
                progress: Arc::default(),
                progressed: Arc::clone(progressed),
            };
            progress.push(Arc::clone(&shard.progress));
            handles.push(tokio::spawn(shard.run(rx)));
        }
        let destination = Destination {
            shards,
            progress,
            counters,
        };
        Ok((destination, handles))
    }

    /// How far each shard got, in shard order.
    pub fn progress(&self) -> &[Arc<ShardProgress>] {
        &self.progress
    }

    /// Queues `samples` without waiting; a full shard drops (and counts)
    /// the sample.
    pub fn enqueue(&self, samples: impl Iterator<Item = Sample>) {
        for sample in samples {
            let mut hasher = StableHasher::default();
            sample.labels.hash(&mut hasher);
            let shard = (hasher.finish() % self.shards.len() as u64) as usize;
            // Counted before it is queued: a count read afterwards covers
            // it even when another thread queues on the same shard at once.
            let progress = &self.progress[shard];
            progress.queued.fetch_add(1, Ordering::AcqRel);
            match self.shards[shard].try_send(sample) {
                Ok(()) => self.counters.queue_length.inc(),
                Err(_) => {
                    progress.queued.fetch_sub(1, Ordering::AcqRel);
                    self.counters.dropped_queue_full.inc();
                }
            }
        }
    }
}

struct Shard {
    settings: Arc<RemoteWriteSettings>,
    client: reqwest::Client,
    counters: Counters,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
    progress: Arc<ShardProgress>,
    progressed: Arc<Notify>,
}

impl Shard {
    /// Notes that the shard is done with `n` more samples and wakes whoever
    /// waits for it.
    fn note_done(&self, n: usize) {
        self.progress.done.fetch_add(n as u64, Ordering::AcqRel);
        self.progressed.notify_waiters();
    }

    /// Notes that the shard started or stopped retrying a failed send and
    /// wakes whoever waits for it.
    fn note_retrying(&self, retrying: bool) {
        self.progress.retrying.store(retrying, Ordering::Release);
        self.progressed.notify_waiters();
    }

    async fn run(self, mut rx: mpsc::Receiver<Sample>) {
        let q = self.settings.queue;
        let mut batch = Vec::with_capacity(q.max_samples_per_send);
        loop {
            tokio::select! {
                sample = rx.recv() => match sample {
                    Some(sample) => batch.push(sample),
                    None => break,
                },
                () = self.cancel.cancelled() => break,
            }
            let deadline = self.clock.now()
                + chrono::Duration::from_std(q.batch_send_deadline).unwrap_or_default();
            while batch.len() < q.max_samples_per_send {
                tokio::select! {
                    sample = rx.recv() => match sample {
                        Some(sample) => batch.push(sample),
                        None => break,
                    },
                    () = self.clock.sleep_until(deadline) => break,
                    () = self.cancel.cancelled() => break,
                }
            }
            self.counters.queue_length.sub(batch.len() as i64);
            self.send_with_retries(&batch).await;
            self.note_done(batch.len());
            batch.clear();
            if self.cancel.is_cancelled() {
                break;
            }
        }
        // Shutting down: one attempt for what is still queued.
        rx.close();
        while let Ok(sample) = rx.try_recv() {
            batch.push(sample);
        }
        self.counters.queue_length.sub(batch.len() as i64);
        for chunk in batch.chunks(q.max_samples_per_send) {
            if let Err(e) = self.send_once(&encode_write_request(chunk)).await {
                self.counters.dropped_shutdown.inc_by(chunk.len() as u64);
                tracing::warn!(remote = %self.settings.name, samples = chunk.len(), error = %e, "remote write: samples not sent before shutdown");
            } else {
                self.counters.sent.inc_by(chunk.len() as u64);
            }
            self.note_done(chunk.len());
        }
    }

    async fn send_with_retries(&self, batch: &[Sample]) {
        self.send_or_give_up(batch).await;
        if self.progress.retrying.load(Ordering::Acquire) {
            self.note_retrying(false);
        }
    }

    async fn send_or_give_up(&self, batch: &[Sample]) {
        let q = self.settings.queue;
        let body = encode_write_request(batch);
        let n = batch.len() as u64;
        let mut backoff = q.min_backoff;
        loop {
            let error = match self.send_once(&body).await {
                Ok(()) => {
                    self.counters.sent.inc_by(n);
                    return;
                }
                Err(e) => e,
            };
            let retry = match &error {
                SendError::HttpStatus { status: 429, .. } => q.retry_on_http_429,
                other => other.is_retryable(),
            };
            if !retry {
                self.counters.dropped_rejected.inc_by(n);
                tracing::error!(remote = %self.settings.name, samples = n, error = %error, "remote write: the receiver refused the samples; they are dropped (check the receiver's log and the series)");
                return;
            }
            self.counters.retried.inc_by(n);
            let wait = error.retry_after(self.clock.now()).unwrap_or(backoff);
            tracing::warn!(remote = %self.settings.name, samples = n, error = %error, retry_in = ?wait, "remote write failed; retrying");
            let until = self.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
            self.note_retrying(true);
            tokio::select! {
                () = self.clock.sleep_until(until) => {}
                () = self.cancel.cancelled() => {
                    // One last try at shutdown, then it is lost.
                    if self.send_once(&body).await.is_ok() {
                        self.counters.sent.inc_by(n);
                    } else {
                        self.counters.dropped_shutdown.inc_by(n);
                    }
                    return;
                }
            }
            backoff = (backoff * 2).min(q.max_backoff);
        }
    }

    async fn send_once(&self, body: &[u8]) -> Result<(), SendError> {
        let mut request = self
            .client
            .post(&self.settings.url)
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", PROTOCOL_VERSION)
            .body(body.to_vec());
        request = with_headers(request, &self.settings.headers, &self.settings.http)
            .await
            .map_err(|e| token_send_error("remote_write", e))?;
        let response = request
            .send()
            .await
            .map_err(|e| transport_error("remote_write", e))?;
        check_http_response("remote_write", response)
            .await
            .map(|_| ())
    }
}
