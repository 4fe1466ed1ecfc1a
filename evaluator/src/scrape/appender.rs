//! The interface through which scraped samples reach the store: one batch
//! per scrape, so the store takes its lock once per scrape, not per sample.

use crate::labels::Labels;

/// One sample to store. Labels are shared with the scrape loop's series
/// cache, so handing them over costs a reference count, not a copy.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendSample {
    pub labels: Labels,
    /// Milliseconds since the Unix epoch.
    pub t_ms: i64,
    /// The value; [`super::STALE_NAN`] marks the series stale at `t_ms`.
    pub value: f64,
}

/// Why a batch could not be stored as a whole.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppendError {
    /// The store refused the batch (for instance it is shutting down).
    #[error("store rejected the scrape: {0}")]
    Rejected(String),
}

/// Implemented by the store. `commit` stores every sample of one scrape.
/// Per-sample problems Prometheus only counts (out-of-order or duplicate
/// timestamps) should be skipped by the store, not fail the batch.
pub trait SampleAppender: Send + Sync {
    fn commit(&self, batch: &[AppendSample]) -> Result<(), AppendError>;
}
