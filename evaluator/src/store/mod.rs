//! The in-memory sample window: float samples per series, indexed by label
//! pairs so selectors touch only the series they can match. Scrapes append
//! here; the PromQL engine reads through [`crate::promql::SeriesSource`].

pub(crate) mod fxhash;
mod postings;

use promql_parser::label::{MatchOp, Matcher};

use std::hash::{Hash, Hasher};

use hashbrown::HashTable;

use crate::labels::Labels;
use crate::promql::{SeriesSource, SeriesView};
use fxhash::FxHasher;
use postings::Postings;

/// Prometheus' staleness marker: a NaN with a fixed bit pattern, written when
/// a series disappears from a scrape so queries stop looking back past it.
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// Whether `v` is the staleness marker (and not an ordinary NaN).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN.to_bits()
}

/// Default cap on the number of series, high enough for a typical sidecar.
pub const DEFAULT_SERIES_LIMIT: usize = 1_000_000;

/// One float sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    pub v: f64,
}

/// Why an append was rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("out-of-order sample for {labels}: timestamp {t} is older than the newest stored sample at {newest}")]
    OutOfOrder { labels: String, t: i64, newest: i64 },
    #[error(
        "duplicate sample for {labels} at timestamp {t}: stored value {stored}, new value {new}"
    )]
    DuplicateTimestamp {
        labels: String,
        t: i64,
        stored: f64,
        new: f64,
    },
    #[error("series limit of {limit} reached: the new series is dropped; raise the store's series limit or reduce label cardinality")]
    SeriesLimit { limit: usize },
    #[error("series without labels cannot be stored: every series needs at least a metric name")]
    EmptyLabels,
}

/// Internal series identifier; ids are never reused, so postings lists stay
/// sorted by appending.
pub(crate) type SeriesId = u32;

struct MemSeries {
    labels: Labels,
    samples: Vec<Sample>,
}

/// The in-memory window of series.
pub struct Store {
    /// Indexed by id; removed series leave a hole until the next compaction.
    /// Dense storage keeps a selector's series close together in memory.
    series: Vec<Option<MemSeries>>,
    live: usize,
    /// Series ids by the hash of their labels; the labels themselves live
    /// in `series` only, so the index costs a few bytes per series.
    by_labels: HashTable<SeriesId>,
    postings: Postings,
    series_limit: usize,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(DEFAULT_SERIES_LIMIT)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("series", &self.live)
            .field("series_limit", &self.series_limit)
            .finish()
    }
}

impl Store {
    /// An empty store holding at most `series_limit` series.
    pub fn new(series_limit: usize) -> Store {
        Store {
            series: Vec::new(),
            live: 0,
            by_labels: HashTable::new(),
            postings: Postings::default(),
            series_limit,
        }
    }

    /// Number of series currently held.
    pub fn series_count(&self) -> usize {
        self.live
    }

    /// Every label name of the stored series, sorted (`/api/v1/labels`).
    pub fn label_names(&self) -> Vec<String> {
        self.postings.names()
    }

    /// Every value of label `name` among the stored series, sorted
    /// (`/api/v1/label/<name>/values`).
    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.postings.values(name)
    }

    /// Total number of samples currently held.
    pub fn sample_count(&self) -> usize {
        self.series.iter().flatten().map(|s| s.samples.len()).sum()
    }

    /// Appends one sample. Like Prometheus, a sample older than the newest
    /// one of its series is rejected, and so is a different value at the
    /// newest timestamp; the same value again is accepted and ignored.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), StoreError> {
        if labels.is_empty() {
            return Err(StoreError::EmptyLabels);
        }
        let hash = labels_hash(labels);
        let found = self.by_labels.find(hash, |&id| {
            self.get(id).is_some_and(|series| series.labels == *labels)
        });
        let id = match found {
            Some(id) => *id,
            None => {
                if self.live >= self.series_limit {
                    return Err(StoreError::SeriesLimit {
                        limit: self.series_limit,
                    });
                }
                let id = self.series.len() as SeriesId;
                self.postings.add(labels, id);
                if self.series.len() == self.series.capacity() {
                    // Grow by an eighth, not double: the series table is
                    // the store's largest single allocation.
                    let extra = (self.series.len() / 8).max(1024);
                    self.series.reserve_exact(extra);
                }
                self.series.push(Some(MemSeries {
                    labels: labels.clone(),
                    samples: Vec::new(),
                }));
                let series = &self.series;
                self.by_labels
                    .insert_unique(hash, id, |&id| rehash(series, id));
                self.live += 1;
                id
            }
        };
        let Some(Some(series)) = self.series.get_mut(id as usize) else {
            return Ok(());
        };
        if let Some(last) = series.samples.last() {
            if t < last.t {
                return Err(StoreError::OutOfOrder {
                    labels: labels.to_string(),
                    t,
                    newest: last.t,
                });
            }
            if t == last.t {
                if last.v.to_bits() == v.to_bits() {
                    return Ok(());
                }
                return Err(StoreError::DuplicateTimestamp {
                    labels: labels.to_string(),
                    t,
                    stored: last.v,
                    new: v,
                });
            }
        }
        if series.samples.len() == series.samples.capacity() {
            // Grow by a quarter instead of doubling: a series' window is
            // long-lived and roughly constant, so doubling would waste up to
            // half of the largest allocation in the store.
            let extra = (series.samples.len() / 4).max(4);
            series.samples.reserve_exact(extra);
        }
        series.samples.push(Sample { t, v });
        Ok(())
    }

    /// Drops every sample older than `t` and every series left empty.
    pub fn truncate_before(&mut self, t: i64) {
        let mut removed: Vec<(SeriesId, Labels)> = Vec::new();
        for (id, slot) in self.series.iter_mut().enumerate() {
            let Some(series) = slot else { continue };
            let keep_from = series.samples.partition_point(|s| s.t < t);
            if keep_from > 0 {
                series.samples.drain(..keep_from);
                // Give memory back after a burst (e.g. a shortened window).
                if series.samples.capacity() > 4 * series.samples.len().max(8) {
                    series.samples.shrink_to_fit();
                }
            }
            if series.samples.is_empty() {
                let hash = labels_hash(&series.labels);
                if let Ok(entry) = self.by_labels.find_entry(hash, |&i| i == id as SeriesId) {
                    entry.remove();
                }
                removed.push((id as SeriesId, series.labels.clone()));
                *slot = None;
                self.live -= 1;
            }
        }
        let holes = self.series.len() - self.live;
        if holes > (self.live / 4).max(1024) {
            self.compact();
        } else {
            for (id, labels) in removed {
                self.postings.remove(&labels, id);
            }
        }
    }

    /// Renumbers the live series densely (keeping their order) and rebuilds
    /// the label index.
    fn compact(&mut self) {
        let old = std::mem::replace(&mut self.series, Vec::with_capacity(self.live));
        self.postings = Postings::default();
        self.by_labels.clear();
        for series in old.into_iter().flatten() {
            let id = self.series.len() as SeriesId;
            self.postings.add(&series.labels, id);
            let hash = labels_hash(&series.labels);
            self.series.push(Some(series));
            let series = &self.series;
            self.by_labels
                .insert_unique(hash, id, |&id| rehash(series, id));
        }
        self.live = self.series.len();
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        self.series.clear();
        self.live = 0;
        self.by_labels.clear();
        self.postings = Postings::default();
    }

    fn get(&self, id: SeriesId) -> Option<&MemSeries> {
        self.series.get(id as usize).and_then(Option::as_ref)
    }

    /// Ids of the series matching all `matchers`, in id order.
    fn matching_ids(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let mut candidates: Option<Vec<SeriesId>> = None;
        let mut filters: Vec<&Matcher> = Vec::new();
        for m in matchers {
            if m.is_match("") {
                // Matches series lacking the label too, so postings cannot
                // enumerate them; check it per candidate instead.
                filters.push(m);
                continue;
            }
            let ids = match m.op {
                MatchOp::Equal => self.postings.exact(&m.name, &m.value),
                _ => self.postings.matching(&m.name, |value| m.is_match(value)),
            };
            candidates = Some(match candidates {
                None => ids,
                Some(prev) => postings::intersect(&prev, &ids),
            });
            if candidates.as_ref().is_some_and(|c| c.is_empty()) {
                return Vec::new();
            }
        }
        let mut ids = match candidates {
            Some(ids) => ids,
            None => self
                .series
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_some())
                .map(|(i, _)| i as SeriesId)
                .collect(),
        };
        if !filters.is_empty() {
            ids.retain(|id| {
                self.get(*id).is_some_and(|s| {
                    filters
                        .iter()
                        .all(|m| m.is_match(s.labels.get(&m.name).unwrap_or("")))
                })
            });
        }
        ids
    }
}

fn labels_hash(labels: &Labels) -> u64 {
    let mut hasher = FxHasher::default();
    labels.hash(&mut hasher);
    hasher.finish()
}

/// The hash of series `id` when the index grows (every indexed id is live).
fn rehash(series: &[Option<MemSeries>], id: SeriesId) -> u64 {
    series
        .get(id as usize)
        .and_then(Option::as_ref)
        .map_or(0, |s| labels_hash(&s.labels))
}

impl SeriesSource for Store {
    fn select(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Vec<SeriesView<'_>> {
        self.matching_ids(matchers)
            .into_iter()
            .filter_map(|id| self.get(id))
            .filter_map(|s| {
                if min_t == i64::MIN && max_t == i64::MAX {
                    // Whole series: no need to touch the samples yet.
                    return (!s.samples.is_empty()).then(|| SeriesView {
                        labels: &s.labels,
                        samples: &s.samples,
                    });
                }
                let from = s.samples.partition_point(|x| x.t < min_t);
                let to = s.samples.partition_point(|x| x.t <= max_t);
                (from < to).then(|| SeriesView {
                    labels: &s.labels,
                    samples: &s.samples[from..to],
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
