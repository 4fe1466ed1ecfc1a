//! Label sets: the identity of a series, shared by every stage of the
//! evaluator. Kept sorted by label name so that equality, hashing and
//! printing are canonical.

use std::fmt;
use std::sync::Arc;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A set of labels, sorted by name, names unique, no empty values.
///
/// Shared behind an `Arc` so that cloning (every selected sample carries
/// its series' labels) is a reference-count bump; mutation copies on write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<[Label]>);

impl Labels {
    /// Builds a label set from pairs; later duplicates win, empty values are dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut labels: Vec<Label> = Vec::new();
        for (name, value) in pairs {
            let (name, value) = (name.into(), value.into());
            labels.retain(|l| l.name != name);
            if !value.is_empty() {
                labels.push(Label { name, value });
            }
        }
        labels.sort();
        Labels(labels.into())
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name, if set.
    pub fn metric_name(&self) -> Option<&str> {
        // `__name__` sorts before lower-case names, so it is nearly always first.
        match self.0.first() {
            Some(l) if l.name == METRIC_NAME => Some(&l.value),
            _ => self.get(METRIC_NAME),
        }
    }

    /// Sets (or, with an empty value, removes) a label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.edit(|v| {
                    v.remove(i);
                });
            }
            Ok(i) if self.0[i].value == value => {}
            Ok(i) => self.edit(|v| v[i].value = value.to_string()),
            Err(_) if value.is_empty() => {}
            Err(i) => self.edit(|v| {
                v.insert(
                    i,
                    Label {
                        name: name.to_string(),
                        value: value.to_string(),
                    },
                )
            }),
        }
    }

    /// Applies a change to a private copy (label sets are shared, and a
    /// slice behind an `Arc` keeps the labels next to the reference count,
    /// which saves a pointer chase on every read).
    fn edit(&mut self, change: impl FnOnce(&mut Vec<Label>)) {
        let mut v = self.0.to_vec();
        change(&mut v);
        self.0 = v.into();
    }

    /// Removes a label.
    pub fn remove(&mut self, name: &str) {
        self.set(name, "");
    }

    /// Iterates over the labels in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps only the labels whose name satisfies `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) {
        if self.0.iter().all(&mut keep) {
            return;
        }
        self.edit(|v| v.retain(|l| keep(l)));
    }

    /// A copy holding only the labels named in `names` (PromQL `by`/`on`).
    pub fn keep_names(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }

    /// A copy without the labels named in `names` (PromQL `without`/`ignoring`).
    pub fn drop_names(&self, names: &[String]) -> Labels {
        if !self.0.iter().any(|l| names.contains(&l.name)) {
            return self.clone();
        }
        Labels(
            self.0
                .iter()
                .filter(|l| !names.contains(&l.name))
                .cloned()
                .collect(),
        )
    }
}

impl fmt::Display for Labels {
    /// Prometheus notation: `name{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for label in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", label.name, label.value)?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_deduplicated() {
        let labels = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(labels.get("b"), Some("3"));
    }

    #[test]
    fn display_uses_prometheus_notation() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
        assert_eq!(labels.to_string(), r#"up{job="x"}"#);
    }
}
