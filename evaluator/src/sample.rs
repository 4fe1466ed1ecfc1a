//! One sample: a series' labels with its value at a time. Every stage hands
//! samples on in this one shape: scrape to the store, the store through
//! PromQL to the rules and the API, the rules back to the store.

use crate::labels::Labels;

/// A series' value at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels, `__name__` included where it has one. Shared
    /// (a reference count, not a copy) with whoever caches the series.
    pub labels: Labels,
    /// Milliseconds since the Unix epoch.
    pub t_ms: i64,
    /// The value; [`crate::stale::STALE_NAN`] marks the series stale at
    /// `t_ms`.
    pub value: f64,
}
