//! Remote write: recording-rule output and `ALERTS`/`ALERTS_FOR_STATE`
//! sent to Prometheus-compatible receivers (Prometheus with
//! `--web.enable-remote-write-receiver`, VictoriaMetrics, Mimir) with the
//! remote-write 1.0 protocol, external labels added. Rule evaluation never
//! waits for it: samples go into bounded per-destination queues
//! ([`queue`]), and what cannot be sent is counted, never blocking. A
//! caller that needs its samples out before going on (a sharded replica,
//! before it claims a group's next slot) takes a [`QueuedMark`] and waits
//! for it, a bounded time, with [`RemoteWrite::settled`].
//! Configured by `remote_write:` in `vigil.yaml` ([`config`]); a change
//! takes effect at the next start.

pub mod config;
mod proto;
pub mod queue;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use config::RemoteWriteSettings;
pub use proto::encode_write_request;
use queue::Destination;

use crate::clock::Clock;
use crate::labels::Labels;
use crate::rules::engine::{AppendError, SampleAppender};
use crate::sample::Sample;

/// The remote-write metrics, by destination name.
#[derive(Debug, Clone)]
pub struct RemoteWriteMetrics {
    pub samples_sent: IntCounterVec,
    pub samples_retried: IntCounterVec,
    pub samples_dropped: IntCounterVec,
    pub queue_length: IntGaugeVec,
}

impl RemoteWriteMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<RemoteWriteMetrics, prometheus::Error> {
        let metrics = RemoteWriteMetrics {
            samples_sent: IntCounterVec::new(
                Opts::new("vigil_remote_write_samples_sent_total", "Samples the remote-write receiver accepted."),
                &["remote_name"],
            )?,
            samples_retried: IntCounterVec::new(
                Opts::new("vigil_remote_write_samples_retried_total", "Samples whose send failed for a reason that can pass and was retried."),
                &["remote_name"],
            )?,
            samples_dropped: IntCounterVec::new(
                Opts::new("vigil_remote_write_samples_dropped_total", "Samples never sent: the queue was full, the receiver refused them, or the process stopped first."),
                &["remote_name", "reason"],
            )?,
            queue_length: IntGaugeVec::new(
                Opts::new("vigil_remote_write_queue_length", "Samples waiting to be sent."),
                &["remote_name"],
            )?,
        };
        registry.register(Box::new(metrics.samples_sent.clone()))?;
        registry.register(Box::new(metrics.samples_retried.clone()))?;
        registry.register(Box::new(metrics.samples_dropped.clone()))?;
        registry.register(Box::new(metrics.queue_length.clone()))?;
        Ok(metrics)
    }
}

/// The running destinations; cheap to share.
#[derive(Clone, Default)]
pub struct RemoteWrite {
    destinations: Arc<Vec<Destination>>,
    external_labels: Labels,
    /// Notified when a shard gets done with a batch or starts retrying.
    progressed: Arc<Notify>,
}

/// How many samples each shard of each destination had been given when the
/// mark was taken (see [`RemoteWrite::mark`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuedMark(Vec<u64>);

impl RemoteWrite {
    /// Starts every destination; their shards stop when `cancel` fires
    /// (the returned handles end then, after a last send).
    pub fn start(
        settings: &[RemoteWriteSettings],
        external_labels: &Labels,
        metrics: &RemoteWriteMetrics,
        clock: &Arc<dyn Clock>,
        cancel: &CancellationToken,
    ) -> Result<(RemoteWrite, Vec<tokio::task::JoinHandle<()>>), reqwest::Error> {
        let mut destinations = Vec::with_capacity(settings.len());
        let mut handles = Vec::new();
        let progressed = Arc::new(Notify::new());
        for s in settings {
            let (destination, shards) =
                Destination::start(s.clone(), metrics, Arc::clone(clock), cancel, &progressed)?;
            destinations.push(destination);
            handles.extend(shards);
        }
        let remote = RemoteWrite {
            destinations: Arc::new(destinations),
            external_labels: external_labels.clone(),
            progressed,
        };
        Ok((remote, handles))
    }

    /// Marks what was queued so far, to wait for it with
    /// [`RemoteWrite::settled`].
    pub fn mark(&self) -> QueuedMark {
        QueuedMark(self.shard_progress().map(|p| p.queued()).collect())
    }

    /// Waits until every sample queued before `mark` is sent or given up,
    /// or a destination holding some of them retries a failed send (the
    /// receiver is down: its queue holds them, no caller should wait for
    /// it), or `deadline` passes on `clock`. True when settled.
    pub async fn settled(
        &self,
        mark: &QueuedMark,
        clock: &dyn Clock,
        deadline: DateTime<Utc>,
    ) -> bool {
        loop {
            let progressed = self.progressed.notified();
            tokio::pin!(progressed);
            // Registered before checking, so no progress in between is missed.
            progressed.as_mut().enable();
            let settled = self
                .shard_progress()
                .zip(&mark.0)
                .all(|(progress, &queued)| progress.settled(queued));
            if settled {
                return true;
            }
            if clock.now() >= deadline {
                return false;
            }
            tokio::select! {
                () = progressed => {}
                () = clock.sleep_until(deadline) => return false,
            }
        }
    }

    fn shard_progress(&self) -> impl Iterator<Item = &Arc<queue::ShardProgress>> {
        self.destinations.iter().flat_map(|d| d.progress())
    }

    /// Whether any destination is configured.
    pub fn is_enabled(&self) -> bool {
        !self.destinations.is_empty()
    }

    /// Queues `samples` for every destination, each with the external
    /// labels it does not have.
    pub fn enqueue(&self, samples: &[Sample]) {
        for destination in self.destinations.iter() {
            destination.enqueue(samples.iter().map(|s| Sample {
                labels: with_external(&s.labels, &self.external_labels),
                t_ms: s.t_ms,
                value: s.value,
            }));
        }
    }
}

fn with_external(labels: &Labels, external: &Labels) -> Labels {
    if external.iter().all(|l| labels.get(l.name).is_some()) {
        return labels.clone();
    }
    let mut out = labels.clone();
    for l in external.iter() {
        if labels.get(l.name).is_none() {
            out.set(l.name, l.value);
        }
    }
    out
}

/// The rule output's appender with remote write: samples go to `store`
/// (where the next query sees them), then into the remote-write queues.
pub struct WithRemoteWrite<'a> {
    pub store: &'a dyn SampleAppender,
    pub remote: &'a RemoteWrite,
}

impl SampleAppender for WithRemoteWrite<'_> {
    fn append(&self, samples: &[Sample]) -> Result<(), AppendError> {
        let stored = self.store.append(samples);
        self.remote.enqueue(samples);
        stored
    }
}
