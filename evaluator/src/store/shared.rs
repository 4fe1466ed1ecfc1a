//! The store as the scrape loops, the rules and the API share it, behind
//! one lock, and the scrape loops' appender over it ([`ScrapeToStore`]: the
//! store implements [`crate::scrape::SampleAppender`], as
//! `scrape/appender.rs` says).

use std::sync::{Arc, RwLock};

use super::{Owner, Store, StoreError, UNOWNED};
use crate::scrape::{AppendError, Sample, SampleAppender, TargetId};

/// The store shared by the scrape loops, the rules and the API.
pub type SharedStore = Arc<RwLock<Store>>;

/// Locks for reading, ignoring poisoning: a panic elsewhere must not stop
/// evaluation, and the store stays consistent per append.
pub fn read_store(store: &SharedStore) -> std::sync::RwLockReadGuard<'_, Store> {
    store.read().unwrap_or_else(|e| e.into_inner())
}

/// Locks for writing, ignoring poisoning (see [`read_store`]).
pub fn write_store(store: &SharedStore) -> std::sync::RwLockWriteGuard<'_, Store> {
    store.write().unwrap_or_else(|e| e.into_inner())
}

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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::promql::SeriesSource;

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
