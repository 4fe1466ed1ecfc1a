//! Inverted index from label pair to the sorted ids of the series carrying
//! it, so a selector intersects short lists instead of scanning all series.

use super::SeriesId;
use crate::hash::fx::FxHashMap;
use crate::labels::Labels;

/// label name → label value → sorted series ids.
#[derive(Default)]
pub(crate) struct Postings {
    by_name: FxHashMap<String, FxHashMap<String, Vec<SeriesId>>>,
}

impl Postings {
    /// Indexes a new series; ids grow monotonically so pushing keeps lists sorted.
    pub(crate) fn add(&mut self, labels: &Labels, id: SeriesId) {
        for l in labels.iter() {
            // Look up before inserting: the pair nearly always exists, and
            // `entry` would need an owned key every time.
            let values = match self.by_name.get_mut(l.name) {
                Some(values) => values,
                None => self.by_name.entry(l.name.to_string()).or_default(),
            };
            match values.get_mut(l.value) {
                Some(ids) => ids.push(id),
                None => {
                    values.insert(l.value.to_string(), vec![id]);
                }
            }
        }
    }

    /// Unindexes a removed series.
    pub(crate) fn remove(&mut self, labels: &Labels, id: SeriesId) {
        for l in labels.iter() {
            if let Some(values) = self.by_name.get_mut(l.name) {
                if let Some(ids) = values.get_mut(l.value) {
                    if let Ok(i) = ids.binary_search(&id) {
                        ids.remove(i);
                    }
                    if ids.is_empty() {
                        values.remove(l.value);
                    }
                }
                if values.is_empty() {
                    self.by_name.remove(l.name);
                }
            }
        }
    }

    /// Every label name in use, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().cloned().collect();
        names.sort();
        names
    }

    /// Every value of label `name` in use, sorted.
    pub(crate) fn values(&self, name: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .by_name
            .get(name)
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        values.sort();
        values
    }

    /// Sorted ids of series with label `name` equal to `value`.
    pub(crate) fn exact(&self, name: &str, value: &str) -> Vec<SeriesId> {
        self.by_name
            .get(name)
            .and_then(|values| values.get(value))
            .cloned()
            .unwrap_or_default()
    }

    /// Sorted ids of series whose label `name` has a value accepted by
    /// `accept`; only the values of that one label are tested.
    pub(crate) fn matching(&self, name: &str, accept: impl Fn(&str) -> bool) -> Vec<SeriesId> {
        let Some(values) = self.by_name.get(name) else {
            return Vec::new();
        };
        let mut lists: Vec<&Vec<SeriesId>> = values
            .iter()
            .filter(|(v, _)| accept(v))
            .map(|(_, ids)| ids)
            .collect();
        match lists.len() {
            0 => Vec::new(),
            1 => lists[0].clone(),
            _ => {
                lists.sort_by_key(|l| std::cmp::Reverse(l.len()));
                let mut out: Vec<SeriesId> = lists.iter().flat_map(|l| l.iter().copied()).collect();
                out.sort_unstable();
                out.dedup();
                out
            }
        }
    }
}

/// Intersection of two sorted id lists.
pub(crate) fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}
