//! Per-target series bookkeeping: caches what each raw exposed series turns
//! into after target labels and relabelling (so that work is done once per
//! series, not once per scrape), and remembers which series the previous
//! scrape wrote, so series that vanish get a staleness marker.
//!
//! Semantics follow Prometheus: a series present in the previous successful
//! scrape and absent from this one is marked stale; a failed scrape marks
//! every series of the previous scrape stale; samples with explicit
//! timestamps are never tracked.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use crate::labels::Labels;

/// A final label set with its hash computed once.
#[derive(Debug, Clone)]
pub struct SeriesKey {
    hash: u64,
    labels: Arc<Labels>,
}

impl SeriesKey {
    pub fn new(labels: Labels) -> SeriesKey {
        let mut hasher = DefaultHasher::new();
        labels.hash(&mut hasher);
        SeriesKey {
            hash: hasher.finish(),
            labels: Arc::new(labels),
        }
    }

    pub fn labels(&self) -> &Arc<Labels> {
        &self.labels
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && (Arc::ptr_eq(&self.labels, &other.labels) || self.labels == other.labels)
    }
}

impl Eq for SeriesKey {}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Passes the precomputed hash through instead of hashing the labels again.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeySet = HashSet<SeriesKey, BuildHasherDefault<PassThrough>>;

#[derive(Debug)]
struct Cached {
    /// `None`: relabelling dropped the series.
    key: Option<SeriesKey>,
    last_scrape: u64,
}

/// The series state of one target.
#[derive(Debug, Default)]
pub struct SeriesTracker {
    cache: HashMap<String, Cached>,
    previous: KeySet,
    current: KeySet,
    scrape: u64,
}

/// What the cache knows about a raw series.
#[derive(Debug, Clone)]
pub enum Lookup {
    Miss,
    Dropped,
    Kept(SeriesKey),
}

impl SeriesTracker {
    pub fn new() -> SeriesTracker {
        SeriesTracker::default()
    }

    /// Starts a scrape.
    pub fn begin(&mut self) {
        self.scrape += 1;
        self.current.clear();
    }

    /// Looks up a raw series (as exposed) and marks it seen.
    pub fn lookup(&mut self, raw: &str) -> Lookup {
        match self.cache.get_mut(raw) {
            None => Lookup::Miss,
            Some(c) => {
                c.last_scrape = self.scrape;
                match &c.key {
                    None => Lookup::Dropped,
                    Some(k) => Lookup::Kept(k.clone()),
                }
            }
        }
    }

    /// Caches what a raw series became.
    pub fn insert(&mut self, raw: &str, key: Option<SeriesKey>) {
        self.cache.insert(
            raw.to_string(),
            Cached {
                key,
                last_scrape: self.scrape,
            },
        );
    }

    /// Records that this scrape writes `key`; false when it already did
    /// (a duplicate series in one exposition, which is skipped).
    pub fn track(&mut self, key: &SeriesKey) -> bool {
        self.current.insert(key.clone())
    }

    /// Whether the previous scrape wrote `key` (so it is not a new series).
    pub fn seen_before(&self, key: &SeriesKey) -> bool {
        self.previous.contains(key)
    }

    /// Ends a successful scrape: returns the series to mark stale and
    /// forgets cache entries this scrape did not see.
    pub fn finish_success(&mut self) -> Vec<Arc<Labels>> {
        let stale = self
            .previous
            .iter()
            .filter(|k| !self.current.contains(*k))
            .map(|k| Arc::clone(&k.labels))
            .collect();
        std::mem::swap(&mut self.previous, &mut self.current);
        self.current.clear();
        let scrape = self.scrape;
        self.cache.retain(|_, c| c.last_scrape == scrape);
        stale
    }

    /// Ends a failed scrape, or the target's life: every series of the
    /// previous scrape goes stale and nothing is remembered as written.
    pub fn finish_failure(&mut self) -> Vec<Arc<Labels>> {
        let stale = self.previous.drain().map(|k| k.labels).collect();
        self.current.clear();
        stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> SeriesKey {
        SeriesKey::new(Labels::from_pairs([("__name__", name)]))
    }

    fn names(list: Vec<Arc<Labels>>) -> Vec<String> {
        let mut out: Vec<String> = list
            .iter()
            .filter_map(|l| l.metric_name().map(str::to_string))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn series_missing_from_the_next_scrape_go_stale() {
        let mut t = SeriesTracker::new();
        t.begin();
        t.track(&key("a"));
        t.track(&key("b"));
        assert!(t.finish_success().is_empty());
        t.begin();
        t.track(&key("a"));
        assert_eq!(names(t.finish_success()), ["b"]);
        t.begin();
        t.track(&key("a"));
        assert!(t.finish_success().is_empty(), "b is only marked stale once");
    }

    #[test]
    fn failed_scrape_stales_everything_once() {
        let mut t = SeriesTracker::new();
        t.begin();
        t.track(&key("a"));
        t.track(&key("b"));
        t.finish_success();
        t.begin();
        t.track(&key("a"));
        assert_eq!(names(t.finish_failure()), ["a", "b"]);
        t.begin();
        assert!(t.finish_failure().is_empty());
    }

    #[test]
    fn duplicate_series_in_one_scrape_are_reported() {
        let mut t = SeriesTracker::new();
        t.begin();
        assert!(t.track(&key("a")));
        assert!(!t.track(&key("a")));
    }

    #[test]
    fn cache_forgets_series_not_seen_in_the_last_scrape() {
        let mut t = SeriesTracker::new();
        t.begin();
        t.insert("a", Some(key("a")));
        t.insert("dropped", None);
        t.finish_success();
        t.begin();
        assert!(matches!(t.lookup("a"), Lookup::Kept(_)));
        t.finish_success();
        t.begin();
        assert!(matches!(t.lookup("a"), Lookup::Kept(_)));
        assert!(matches!(t.lookup("dropped"), Lookup::Miss));
    }
}
