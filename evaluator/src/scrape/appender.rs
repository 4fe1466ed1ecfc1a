//! The interface through which scraped samples reach the store: one batch
//! per scrape, so the store takes its lock once per scrape, not per sample,
//! and can accept or refuse a target's scrape as a whole.

pub use crate::sample::Sample;

/// Identifies one scrape target to the store, which keeps each target's
/// series within its share of the series limit. Handed out by
/// [`SampleAppender::register_target`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId(pub u32);

/// Why a batch could not be stored as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppendError {
    /// The store refused the batch (for instance it is shutting down).
    #[error("store rejected the scrape: {0}")]
    Rejected(String),
    /// Storing the scrape would take the target past its share of the
    /// store's series limit; nothing of it was stored.
    #[error("series_limit exceeded: this scrape would make the target hold {would_hold} series, but its share of storage.series_limit ({limit} series over {targets} targets) leaves room for {allowed}; the scrape is refused whole; expose fewer series, drop some with metric_relabel_configs, or raise storage.series_limit")]
    SeriesLimit {
        would_hold: usize,
        allowed: usize,
        limit: usize,
        targets: usize,
    },
}

/// Implemented by the store. `commit` stores every sample of one scrape.
/// Per-sample problems Prometheus only counts (out-of-order or duplicate
/// timestamps) should be skipped by the store, not fail the batch.
///
/// A store that shares its series limit between targets overrides the
/// three target methods; the defaults treat every batch alike.
pub trait SampleAppender: Send + Sync {
    fn commit(&self, batch: &[Sample]) -> Result<(), AppendError>;

    /// A scrape loop calls this once when it starts; the id goes with each
    /// of its batches to [`SampleAppender::commit_target`].
    fn register_target(&self) -> TargetId {
        TargetId(0)
    }

    /// The loop of `target` has ended (its series are marked stale): its
    /// share goes back to the other targets.
    fn unregister_target(&self, _target: TargetId) {}

    /// Stores one scrape of `target` whole, or refuses it whole with
    /// [`AppendError::SeriesLimit`] when it would exceed the target's share.
    fn commit_target(&self, _target: TargetId, batch: &[Sample]) -> Result<(), AppendError> {
        self.commit(batch)
    }
}
