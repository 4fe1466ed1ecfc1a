//! The in-memory sample window: float samples per series, indexed by label
//! pairs so selectors touch only the series they can match. Scrapes append
//! here; the PromQL engine reads through [`crate::promql::SeriesSource`].
//!
//! The series limit is shared fairly between scrape targets, so one target
//! can never starve another:
//!
//! - every scrape target registers as an owner ([`Store::register_owner`]);
//!   with `N` owners each has a *reserved share* of `limit / N` series;
//! - a target's scrape is stored only if the target then holds at most
//!   `limit - rules - Σ over the other targets of max(their series, share)`
//!   series: its own share plus whatever no other target holds or has
//!   reserved ("rules" being series written outside any scrape: recording
//!   rules, `ALERTS`). Otherwise it is refused whole
//!   ([`StoreError::ShareExceeded`]) and the scrape fails with that reason.
//!   So a small target can always add series up to its share, and a big
//!   one may use whatever the others leave unused;
//! - only *active* series count: a series whose last sample is a staleness
//!   marker (its target dropped it, failed or went away) counts as free at
//!   once. Its samples stay queryable while there is room; when a new series
//!   needs the space, the series stale for longest is dropped first.
mod postings;
pub mod shared;

use promql_parser::label::{MatchOp, Matcher};

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use hashbrown::HashTable;

use crate::hash::fx::{FxHashMap, FxHasher};
use crate::labels::Labels;
use crate::promql::{SeriesSource, SeriesView};
use postings::Postings;

pub use crate::stale::{is_stale, STALE_NAN};

/// Default cap on the number of series, high enough for a typical sidecar.
pub const DEFAULT_SERIES_LIMIT: usize = 1_000_000;

/// One float sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
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
    #[error("series limit share exceeded: the target would hold {would_hold} series but may hold {allowed} (series limit {limit} shared by {owners} targets); the batch is refused whole")]
    ShareExceeded {
        would_hold: usize,
        allowed: usize,
        limit: usize,
        owners: usize,
    },
}

/// What [`Store::append_owned`] stored of a batch it accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Samples skipped: out of order or a different value at the same
    /// timestamp (Prometheus counts these and goes on).
    pub out_of_order: usize,
    /// New series refused because the store was full.
    pub over_limit: usize,
}

/// Internal series identifier; ids are never reused, so postings lists stay
/// sorted by appending.
pub(crate) type SeriesId = u32;

struct MemSeries {
    labels: Labels,
    samples: Vec<Point>,
    /// The scrape target that wrote it last ([`UNOWNED`] for rules).
    owner: Owner,
    /// When its last sample became a staleness marker; [`ACTIVE`] while
    /// its last sample is a value.
    stale_at: i64,
}

impl MemSeries {
    fn is_active(&self) -> bool {
        self.stale_at == ACTIVE
    }
}

/// A scrape target as the store knows it, from [`Store::register_owner`].
pub type Owner = u32;

/// The owner of series written outside any scrape (rules).
pub const UNOWNED: Owner = 0;

/// `stale_at` of a series whose last sample is a value.
const ACTIVE: i64 = i64::MIN;

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
    /// Series whose last sample is a value (the rest are stale).
    active: usize,
    /// Registered scrape targets and how many active series each owns.
    owners: FxHashMap<Owner, usize>,
    next_owner: Owner,
    /// Stale series in the order they went stale, with their `stale_at`:
    /// the first valid entry is the next to drop when room is needed.
    /// Entries of series that came back or were removed are skipped.
    stale_queue: VecDeque<(SeriesId, i64)>,
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
            active: 0,
            owners: FxHashMap::default(),
            next_owner: UNOWNED + 1,
            stale_queue: VecDeque::new(),
        }
    }

    /// Registers a scrape target; its batches go to
    /// [`Store::append_owned`] with the returned owner.
    pub fn register_owner(&mut self) -> Owner {
        let owner = self.next_owner;
        self.next_owner = self.next_owner.wrapping_add(1).max(UNOWNED + 1);
        self.owners.insert(owner, 0);
        owner
    }

    /// Forgets a target (its loop ended): its share returns to the others.
    /// Its remaining active series (normally none: a stopping loop marks
    /// them stale first) count as unowned until they go stale or away.
    pub fn unregister_owner(&mut self, owner: Owner) {
        self.owners.remove(&owner);
    }

    /// Series whose last sample is a value, not a staleness marker.
    pub fn active_series_count(&self) -> usize {
        self.active
    }

    /// Active series owned by `owner`.
    pub fn owned_series_count(&self, owner: Owner) -> usize {
        self.owners.get(&owner).copied().unwrap_or(0)
    }

    /// The most series `owner` may hold: its share (`limit / owners`) plus
    /// what neither rules nor the other targets hold or have reserved.
    pub fn allowance(&self, owner: Owner) -> usize {
        let owners = self.owners.len().max(1);
        let share = self.series_limit / owners;
        let owned: usize = self.owners.values().sum();
        let rules = self.active.saturating_sub(owned);
        let others: usize = self
            .owners
            .iter()
            .filter(|(o, _)| **o != owner)
            .map(|(_, n)| (*n).max(share))
            .sum();
        self.series_limit
            .saturating_sub(rules)
            .saturating_sub(others)
    }

    /// Stores one scrape of target `owner` as a whole, or refuses it whole
    /// with [`StoreError::ShareExceeded`] when the target would then hold
    /// more than its [`Store::allowance`]. Staleness markers for series the
    /// store does not hold are ignored; per-sample problems are counted in
    /// the returned stats, as [`Store::append`] would report them.
    pub fn append_owned<'a, I>(
        &mut self,
        owner: Owner,
        samples: I,
    ) -> Result<BatchStats, StoreError>
    where
        I: IntoIterator<Item = (&'a Labels, i64, f64)>,
        I::IntoIter: Clone,
    {
        let samples = samples.into_iter();
        if self.owners.contains_key(&owner) {
            let (mut gained, mut lost) = (0usize, 0usize);
            for (labels, _, v) in samples.clone() {
                let held = self.find(labels).and_then(|id| self.get(id));
                let ours = held.is_some_and(|s| s.is_active() && s.owner == owner);
                if is_stale(v) {
                    // A marker frees a slot only of a series this target
                    // holds now.
                    lost += usize::from(ours);
                } else {
                    // A value takes one unless the target holds it already.
                    gained += usize::from(!ours);
                }
            }
            let would_hold = (self.owned_series_count(owner) + gained).saturating_sub(lost);
            let allowed = self.allowance(owner);
            if would_hold > allowed {
                return Err(StoreError::ShareExceeded {
                    would_hold,
                    allowed,
                    limit: self.series_limit,
                    owners: self.owners.len(),
                });
            }
        }
        // Staleness markers first: the slots they free may be the ones the
        // batch's new series need.
        let mut stats = BatchStats::default();
        let mut record = |r: Result<(), StoreError>| match r {
            Ok(()) => {}
            Err(StoreError::SeriesLimit { .. }) => stats.over_limit += 1,
            Err(_) => stats.out_of_order += 1,
        };
        for (labels, t, v) in samples.clone().filter(|(_, _, v)| is_stale(*v)) {
            if self.find(labels).is_some() {
                record(self.append_as(owner, labels, t, v));
            }
        }
        for (labels, t, v) in samples.filter(|(_, _, v)| !is_stale(*v)) {
            record(self.append_as(owner, labels, t, v));
        }
        Ok(stats)
    }

    fn find(&self, labels: &Labels) -> Option<SeriesId> {
        let hash = labels_hash(labels);
        self.by_labels
            .find(hash, |&id| {
                self.get(id).is_some_and(|series| series.labels == *labels)
            })
            .copied()
    }

    fn count_owned(&mut self, owner: Owner, gained: bool) {
        if let Some(n) = self.owners.get_mut(&owner) {
            if gained {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        }
        if gained {
            self.active += 1;
        } else {
            self.active = self.active.saturating_sub(1);
        }
    }

    /// Drops the series that has been stale for longest; false when no
    /// series is stale.
    fn evict_stale(&mut self) -> bool {
        while let Some((id, stale_at)) = self.stale_queue.pop_front() {
            let still = self
                .get(id)
                .is_some_and(|s| !s.is_active() && s.stale_at == stale_at);
            if !still {
                continue;
            }
            let Some(series) = self.series.get_mut(id as usize).and_then(Option::take) else {
                continue;
            };
            let hash = labels_hash(&series.labels);
            if let Ok(entry) = self.by_labels.find_entry(hash, |&i| i == id) {
                entry.remove();
            }
            self.postings.remove(&series.labels, id);
            self.live -= 1;
            return true;
        }
        false
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
    /// A new series takes the slot of the longest-stale series when the
    /// store is full.
    pub fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), StoreError> {
        self.append_as(UNOWNED, labels, t, v)
    }

    fn append_as(
        &mut self,
        owner: Owner,
        labels: &Labels,
        t: i64,
        v: f64,
    ) -> Result<(), StoreError> {
        if labels.is_empty() {
            return Err(StoreError::EmptyLabels);
        }
        let id = match self.find(labels) {
            Some(id) => id,
            None => {
                if self.live >= self.series_limit && !self.evict_stale() {
                    return Err(StoreError::SeriesLimit {
                        limit: self.series_limit,
                    });
                }
                let hash = labels_hash(labels);
                let id = self.series.len() as SeriesId;
                self.postings.add(labels, id);
                if self.series.len() == self.series.capacity() {
                    // Grow by an eighth, not double: the series table is
                    // the store's largest single allocation.
                    let extra = (self.series.len() / 8).max(1024);
                    self.series.reserve_exact(extra);
                }
                // Born stale: becomes active with its first value below.
                self.series.push(Some(MemSeries {
                    labels: labels.clone(),
                    samples: Vec::new(),
                    owner,
                    stale_at: t,
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
        series.samples.push(Point { t, v });

        // Staleness and ownership: a value makes the series active (and
        // the writing target its owner); a marker makes it stale.
        let was = series.is_active().then_some(series.owner);
        let stale = is_stale(v);
        if !stale && owner != UNOWNED {
            series.owner = owner;
        }
        let now = (!stale).then_some(series.owner);
        if stale {
            if was.is_some() || series.samples.len() == 1 {
                series.stale_at = t;
                self.stale_queue.push_back((id, t));
            }
        } else {
            series.stale_at = ACTIVE;
        }
        if was != now {
            if let Some(old) = was {
                self.count_owned(old, false);
            }
            if let Some(new) = now {
                self.count_owned(new, true);
            }
        }
        if self.stale_queue.len() > 2 * self.live + 1024 {
            self.rebuild_stale_queue();
        }
        Ok(())
    }

    /// The queue again from the stale series, oldest staleness first.
    fn rebuild_stale_queue(&mut self) {
        let mut stale: Vec<(SeriesId, i64)> = self
            .series
            .iter()
            .enumerate()
            .filter_map(|(id, s)| {
                s.as_ref()
                    .filter(|s| !s.is_active())
                    .map(|s| (id as SeriesId, s.stale_at))
            })
            .collect();
        stale.sort_by_key(|&(id, at)| (at, id));
        self.stale_queue = stale.into();
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
                if series.is_active() {
                    if let Some(n) = self.owners.get_mut(&series.owner) {
                        *n = n.saturating_sub(1);
                    }
                    self.active = self.active.saturating_sub(1);
                }
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
        self.rebuild_stale_queue();
    }

    /// Removes every series.
    pub fn clear(&mut self) {
        self.series.clear();
        self.live = 0;
        self.active = 0;
        self.owners.values_mut().for_each(|n| *n = 0);
        self.stale_queue.clear();
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
