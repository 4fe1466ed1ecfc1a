//! Grouping of samples by a subset of their labels (`by`/`without` for
//! aggregations, `on`/`ignoring` for vector matching) without building a
//! label set per sample: keys are hashed straight from the labels and
//! compared against one representative per group.

use std::hash::Hasher;

use crate::hash::fx::{FxHashMap, FxHasher};
use crate::labels::{Label, Labels, METRIC_NAME};

/// Which labels form the key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Grouping<'m> {
    /// Only these labels (`by`, `on`).
    By(&'m [String]),
    /// All labels but these and the metric name (`without`, `ignoring`,
    /// and plain vector matching with an empty list).
    Without(&'m [String]),
}

impl Grouping<'_> {
    fn includes(&self, label: &Label<'_>) -> bool {
        let named = |names: &[String]| names.iter().any(|n| n == label.name);
        match self {
            Grouping::By(names) => named(names),
            Grouping::Without(names) => label.name != METRIC_NAME && !named(names),
        }
    }

    fn key<'l>(&self, labels: &'l Labels) -> impl Iterator<Item = Label<'l>> + use<'l, '_> {
        labels.iter().filter(move |l| self.includes(l))
    }

    pub(crate) fn hash(&self, labels: &Labels) -> u64 {
        let mut h = FxHasher::default();
        for l in self.key(labels) {
            h.write(l.name.as_bytes());
            h.write_u8(0xff);
            h.write(l.value.as_bytes());
            h.write_u8(0xff);
        }
        h.finish()
    }

    /// Whether two label sets have the same key.
    pub(crate) fn same_key(&self, a: &Labels, b: &Labels) -> bool {
        self.key(a).eq(self.key(b))
    }

    /// The key as a label set (the labels of an aggregation result).
    pub(crate) fn key_labels(&self, labels: &Labels) -> Labels {
        Labels::from_sorted(self.key(labels))
    }
}

/// Groups in first-seen order, each with its representative labels.
///
/// Lookups go through the key's hash to the first group with that hash and
/// on along a chain of groups sharing it (`same_hash`), so adding a group
/// allocates nothing of its own.
pub(crate) struct GroupIndex<'g, T> {
    grouping: Grouping<'g>,
    by_hash: FxHashMap<u64, usize>,
    /// Per group: the next group with the same hash, or `NO_GROUP`.
    same_hash: Vec<usize>,
    pub(crate) groups: Vec<(Labels, T)>,
}

const NO_GROUP: usize = usize::MAX;

impl<'g, T> GroupIndex<'g, T> {
    pub(crate) fn new(grouping: Grouping<'g>) -> Self {
        GroupIndex {
            grouping,
            by_hash: FxHashMap::default(),
            same_hash: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// The group with hash `h` whose key equals that of `labels`.
    fn find_hashed(&self, h: u64, labels: &Labels) -> Option<usize> {
        let mut i = *self.by_hash.get(&h)?;
        while i != NO_GROUP {
            if self.grouping.same_key(&self.groups[i].0, labels) {
                return Some(i);
            }
            i = self.same_hash[i];
        }
        None
    }

    /// Index of the group of `labels`, if it exists.
    pub(crate) fn find(&self, labels: &Labels) -> Option<usize> {
        self.find_hashed(self.grouping.hash(labels), labels)
    }

    /// The index of the group of `labels`, created with `init` if new; the
    /// bool says whether it was created.
    pub(crate) fn entry_index(
        &mut self,
        labels: &Labels,
        init: impl FnOnce() -> T,
    ) -> (usize, bool) {
        let h = self.grouping.hash(labels);
        if let Some(i) = self.find_hashed(h, labels) {
            return (i, false);
        }
        let new = self.groups.len();
        let chain = self.by_hash.insert(h, new).unwrap_or(NO_GROUP);
        self.same_hash.push(chain);
        self.groups.push((labels.clone(), init()));
        (new, true)
    }

    /// The group of `labels`, created with `init` if new; the bool says
    /// whether it was created.
    pub(crate) fn entry(&mut self, labels: &Labels, init: impl FnOnce() -> T) -> (&mut T, bool) {
        let (i, created) = self.entry_index(labels, init);
        (&mut self.groups[i].1, created)
    }

    pub(crate) fn grouping(&self) -> Grouping<'g> {
        self.grouping
    }
}
