//! Per-target series bookkeeping: caches what each raw exposed series turns
//! into after target labels and relabelling (so that work is done once per
//! series, not once per scrape), and remembers which series the previous
//! scrape wrote, so series that vanish get a staleness marker.
//!
//! Semantics follow Prometheus: a series present in the previous successful
//! scrape and absent from this one is marked stale; a failed scrape marks
//! every series of the previous scrape stale; samples with explicit
//! timestamps are never tracked.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use crate::hash::fx::{FxHashMap, FxHasher};
use crate::labels::Labels;

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

type PassThroughState = BuildHasherDefault<PassThrough>;

/// A raw series as exposed (`name{labels}` text), identified by two
/// independent 64-bit hashes instead of its text: the text of every series
/// would be the largest part of a target's bookkeeping. One hash is keyed
/// with a random per-tracker key, so a target cannot aim for a collision;
/// two different raw series of one target share both hashes with a
/// probability around 2^-128 per pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawKey {
    keyed: u64,
    unkeyed: u64,
}

impl Hash for RawKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.keyed);
    }
}

#[derive(Debug)]
struct Cached {
    /// `None`: relabelling dropped the series.
    labels: Option<Labels>,
    last_scrape: u32,
}

/// Which scrapes wrote a final series.
#[derive(Debug, Clone, Copy)]
struct Written {
    /// The scrape that first wrote it (since it was last forgotten).
    first: u32,
    /// The scrape that wrote it last.
    last: u32,
}

/// The series state of one target.
#[derive(Debug)]
pub struct SeriesTracker {
    raw_hasher: RandomState,
    cache: HashMap<RawKey, Cached, PassThroughState>,
    /// Final series written by the last successful scrape and the current
    /// one; after a successful scrape only its own series remain.
    written: FxHashMap<Labels, Written>,
    scrape: u32,
    /// Between `begin` and `finish_*`: series first written in `scrape`
    /// belong to the unfinished scrape, not to the last successful one.
    in_progress: bool,
}

impl Default for SeriesTracker {
    fn default() -> Self {
        SeriesTracker::new()
    }
}

/// What the cache knows about a raw series.
#[derive(Debug, Clone)]
pub enum Lookup {
    Miss,
    Dropped,
    Kept(Labels),
}

impl SeriesTracker {
    pub fn new() -> SeriesTracker {
        SeriesTracker {
            raw_hasher: RandomState::new(),
            cache: HashMap::default(),
            written: HashMap::default(),
            scrape: 0,
            in_progress: false,
        }
    }

    /// Starts a scrape.
    pub fn begin(&mut self) {
        // Wraps after 2^32 scrapes (centuries at any sane interval); only
        // equality with the current and previous numbers matters.
        self.scrape = self.scrape.wrapping_add(1);
        self.in_progress = true;
    }

    fn raw_key(&self, raw: &str) -> RawKey {
        let mut unkeyed = FxHasher::default();
        unkeyed.write(raw.as_bytes());
        RawKey {
            keyed: self.raw_hasher.hash_one(raw),
            unkeyed: unkeyed.finish(),
        }
    }

    /// Looks up a raw series (as exposed) and marks it seen.
    pub fn lookup(&mut self, raw: &str) -> Lookup {
        let raw = self.raw_key(raw);
        match self.cache.get_mut(&raw) {
            None => Lookup::Miss,
            Some(c) => {
                c.last_scrape = self.scrape;
                match &c.labels {
                    None => Lookup::Dropped,
                    Some(labels) => Lookup::Kept(labels.clone()),
                }
            }
        }
    }

    /// Caches what a raw series became.
    pub fn insert(&mut self, raw: &str, labels: Option<Labels>) {
        let raw = self.raw_key(raw);
        self.cache.insert(
            raw,
            Cached {
                labels,
                last_scrape: self.scrape,
            },
        );
    }

    /// Records that this scrape writes `key`; false when it already did
    /// (a duplicate series in one exposition, which is skipped).
    pub fn track(&mut self, key: &Labels) -> bool {
        let scrape = self.scrape;
        match self.written.get_mut(key) {
            Some(w) if w.last == scrape => false,
            Some(w) => {
                w.last = scrape;
                true
            }
            None => {
                self.written.insert(
                    key.clone(),
                    Written {
                        first: scrape,
                        last: scrape,
                    },
                );
                true
            }
        }
    }

    /// Whether the previous scrape wrote `key` (so it is not a new series).
    pub fn seen_before(&self, key: &Labels) -> bool {
        self.written
            .get(key)
            .is_some_and(|w| w.first != self.scrape)
    }

    /// Ends a successful scrape: returns the series to mark stale and
    /// forgets cache entries this scrape did not see.
    pub fn finish_success(&mut self) -> Vec<Labels> {
        self.in_progress = false;
        let scrape = self.scrape;
        let mut stale = Vec::new();
        self.written.retain(|key, w| {
            let keep = w.last == scrape;
            if !keep {
                stale.push(key.clone());
            }
            keep
        });
        self.cache.retain(|_, c| c.last_scrape == scrape);
        shrink_if_sparse(&mut self.written);
        shrink_if_sparse(&mut self.cache);
        stale
    }

    /// Ends a failed scrape, or the target's life: every series of the
    /// previous scrape goes stale and nothing is remembered as written.
    pub fn finish_failure(&mut self) -> Vec<Labels> {
        let unfinished = self.in_progress.then_some(self.scrape);
        self.in_progress = false;
        let stale = self
            .written
            .drain()
            .filter(|(_, w)| Some(w.first) != unfinished)
            .map(|(key, _)| key)
            .collect();
        shrink_if_sparse(&mut self.written);
        stale
    }
}

/// Gives memory back after a target shrank a lot.
fn shrink_if_sparse<K: Eq + Hash, V, S: BuildHasher>(map: &mut HashMap<K, V, S>) {
    if map.capacity() > 4 * map.len().max(1024) {
        map.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Labels {
        Labels::from_pairs([("__name__", name)])
    }

    fn names(list: Vec<Labels>) -> Vec<String> {
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
    fn end_of_run_after_a_good_scrape_stales_its_series_but_not_an_unfinished_ones() {
        let mut t = SeriesTracker::new();
        t.begin();
        t.track(&key("a"));
        t.finish_success();
        assert_eq!(names(t.finish_failure()), ["a"], "between scrapes");

        t.begin();
        t.track(&key("a"));
        t.finish_success();
        t.begin();
        t.track(&key("a"));
        t.track(&key("new"));
        assert_eq!(names(t.finish_failure()), ["a"], "during a scrape");
    }

    #[test]
    fn a_series_written_again_is_not_new_and_a_new_one_is() {
        let mut t = SeriesTracker::new();
        t.begin();
        t.track(&key("a"));
        assert!(!t.seen_before(&key("a")));
        t.finish_success();
        t.begin();
        assert!(t.seen_before(&key("a")));
        t.track(&key("a"));
        assert!(t.seen_before(&key("a")));
        t.track(&key("b"));
        assert!(!t.seen_before(&key("b")));
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
