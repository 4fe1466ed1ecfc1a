//! Label sets: the identity of a series, shared by every stage of the
//! evaluator. Kept sorted by label name so that equality, hashing and
//! printing are canonical.
//!
//! A label set is one shared string that holds every name and value with
//! their lengths in front (Prometheus' "stringlabels" idea): one allocation
//! per set instead of one per name and value, which is most of what a
//! stored series costs. Frequent label names (`__name__`, `job`, `le`, ...)
//! take two bytes. Lengths are written in an ASCII-only variable-length
//! code, so the encoding is valid UTF-8 and decoding needs no unsafe code.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Label names stored as an index instead of their text. Only ever append
/// to this list: the position is the encoding.
const COMMON_NAMES: [&str; 24] = [
    METRIC_NAME,
    "job",
    "instance",
    "le",
    "quantile",
    "method",
    "code",
    "status",
    "status_code",
    "route",
    "handler",
    "path",
    "alertname",
    "alertstate",
    "severity",
    "service",
    "namespace",
    "pod",
    "container",
    "node",
    "reason",
    "target",
    "env",
    "team",
];

/// Marks a name given by its index in [`COMMON_NAMES`]; a name given as
/// text starts with its length plus one, which is never zero.
const COMMON_NAME_MARK: u8 = 0;

/// Low bits of one length byte; the next bit says another byte follows.
/// Both stay below 0x80, so every length byte is ASCII.
const LENGTH_BITS: u32 = 6;
const LENGTH_MORE: u8 = 1 << LENGTH_BITS;
const LENGTH_MASK: usize = (1 << LENGTH_BITS) - 1;

thread_local! {
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// One label pair, borrowed from its label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// A set of labels, sorted by name, names unique, no empty values.
///
/// Cloning (every selected sample carries its series' labels) is a
/// reference-count bump; changes build a new set.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Arc<str>);

impl Labels {
    /// Builds a label set from pairs; later duplicates win, empty values are dropped.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut owned: Vec<(N, V)> = pairs.into_iter().collect();
        // A stable sort keeps duplicates in input order, so the last of
        // each run of equal names is the one that wins; O(n log n) however
        // many labels come in.
        owned.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let last_of_run = |i: usize| {
            owned
                .get(i + 1)
                .is_none_or(|next: &(N, V)| next.0.as_ref() != owned[i].0.as_ref())
        };
        Labels::from_sorted((0..owned.len()).filter(|&i| last_of_run(i)).map(|i| Label {
            name: owned[i].0.as_ref(),
            value: owned[i].1.as_ref(),
        }))
    }

    /// Builds a label set from labels already sorted by name with unique
    /// names (the order [`Labels::iter`] yields); empty values are dropped.
    pub fn from_sorted<'a>(labels: impl IntoIterator<Item = Label<'a>>) -> Labels {
        let encode = |encoded: &mut String| {
            encoded.clear();
            let mut previous: Option<&str> = None;
            for label in labels {
                debug_assert!(
                    previous.is_none_or(|p| p < label.name),
                    "labels out of order: {previous:?} before {:?}",
                    label.name
                );
                previous = Some(label.name);
                if !label.value.is_empty() {
                    encode_label(encoded, label);
                }
            }
            Labels(Arc::from(encoded.as_str()))
        };
        // Encode into a per-thread buffer, so the shared string is the only
        // allocation (queries build label sets for every output series).
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buffer) => encode(&mut buffer),
            Err(_) => encode(&mut String::new()),
        })
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        for label in self.iter() {
            match label.name.cmp(name) {
                Ordering::Less => {}
                Ordering::Equal => return Some(label.value),
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// The metric name, if set.
    pub fn metric_name(&self) -> Option<&str> {
        // `__name__` sorts before lower-case names, so it is nearly always first.
        match self.iter().next() {
            Some(l) if l.name == METRIC_NAME => Some(l.value),
            _ => self.get(METRIC_NAME),
        }
    }

    /// Sets (or, with an empty value, removes) a label.
    pub fn set(&mut self, name: &str, value: &str) {
        if self.get(name).unwrap_or("") == value {
            return;
        }
        let mut inserted = value.is_empty();
        let mut labels: Vec<Label<'_>> = Vec::with_capacity(self.len() + 1);
        for label in self.iter() {
            if !inserted && label.name >= name {
                labels.push(Label { name, value });
                inserted = true;
            }
            if label.name != name {
                labels.push(label);
            }
        }
        if !inserted {
            labels.push(Label { name, value });
        }
        *self = Labels::from_sorted(labels);
    }

    /// Removes a label.
    pub fn remove(&mut self, name: &str) {
        self.set(name, "");
    }

    /// Iterates over the labels in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            encoded: &self.0,
            at: 0,
        }
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keeps only the labels for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label<'_>) -> bool) {
        if self.iter().all(|l| keep(&l)) {
            return;
        }
        *self = Labels::from_sorted(self.iter().filter(|l| keep(l)));
    }

    /// A copy holding only the labels named in `names` (PromQL `by`/`on`).
    pub fn keep_names(&self, names: &[String]) -> Labels {
        Labels::from_sorted(self.iter().filter(|l| names.iter().any(|n| n == l.name)))
    }

    /// A copy without the labels named in `names` (PromQL `without`/`ignoring`).
    pub fn drop_names(&self, names: &[String]) -> Labels {
        if !self.iter().any(|l| names.iter().any(|n| n == l.name)) {
            return self.clone();
        }
        Labels::from_sorted(self.iter().filter(|l| !names.iter().any(|n| n == l.name)))
    }
}

/// The labels of a [`Labels`], in name order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    encoded: &'a str,
    at: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Label<'a>;

    fn next(&mut self) -> Option<Label<'a>> {
        if self.at >= self.encoded.len() {
            return None;
        }
        let bytes = self.encoded.as_bytes();
        let name = if bytes[self.at] == COMMON_NAME_MARK {
            let index = usize::from(bytes[self.at + 1]);
            self.at += 2;
            COMMON_NAMES[index]
        } else {
            let len = read_length(bytes, &mut self.at) - 1;
            let name = &self.encoded[self.at..self.at + len];
            self.at += len;
            name
        };
        let len = read_length(bytes, &mut self.at);
        let value = &self.encoded[self.at..self.at + len];
        self.at += len;
        Some(Label { name, value })
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = Label<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

fn encode_label(out: &mut String, label: Label<'_>) {
    match COMMON_NAMES.iter().position(|n| *n == label.name) {
        Some(index) => {
            out.push(char::from(COMMON_NAME_MARK));
            // COMMON_NAMES has fewer than 128 entries: an ASCII byte.
            out.push(char::from(index as u8));
        }
        None => {
            write_length(out, label.name.len() + 1);
            out.push_str(label.name);
        }
    }
    write_length(out, label.value.len());
    out.push_str(label.value);
}

fn write_length(out: &mut String, mut len: usize) {
    loop {
        let low = (len & LENGTH_MASK) as u8;
        len >>= LENGTH_BITS;
        if len == 0 {
            out.push(char::from(low));
            return;
        }
        out.push(char::from(low | LENGTH_MORE));
    }
}

fn read_length(bytes: &[u8], at: &mut usize) -> usize {
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let byte = bytes[*at];
        *at += 1;
        len |= usize::from(byte & !LENGTH_MORE) << shift;
        if byte & LENGTH_MORE == 0 {
            return len;
        }
        shift += LENGTH_BITS;
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    /// Label by label, name first, then value: the order of sorted output.
    fn cmp(&self, other: &Self) -> Ordering {
        self.iter().cmp(other.iter())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|l| (l.name, l.value)))
            .finish()
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
        for label in self.iter().filter(|l| l.name != METRIC_NAME) {
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
        let names: Vec<&str> = labels.iter().map(|l| l.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(labels.get("b"), Some("3"));
        assert_eq!(labels.get("c"), None);
        assert_eq!(labels.len(), 2);
    }

    #[test]
    fn display_uses_prometheus_notation() {
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "x")]);
        assert_eq!(labels.to_string(), r#"up{job="x"}"#);
    }

    #[test]
    fn long_names_and_values_and_every_common_name_round_trip() {
        let long_value = "v".repeat(70_000);
        let mut pairs: Vec<(String, String)> = COMMON_NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), format!("value {i} ü")))
            .collect();
        pairs.push(("x".repeat(64), long_value.clone()));
        pairs.push(("A_upper".into(), "63 bytes".repeat(8)[..63].to_string()));
        pairs.push(("ünïcode".into(), "✓".into()));
        let labels = Labels::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        pairs.sort();
        let decoded: Vec<(String, String)> = labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        assert_eq!(decoded, pairs);
        assert_eq!(labels.get(&"x".repeat(64)), Some(long_value.as_str()));
    }

    #[test]
    fn equal_sets_are_equal_however_built() {
        let mut built = Labels::from_pairs([("job", "a"), ("zone", "z")]);
        built.set("instance", "i");
        built.set("zone", "");
        built.set(METRIC_NAME, "up");
        let direct = Labels::from_pairs([(METRIC_NAME, "up"), ("instance", "i"), ("job", "a")]);
        assert_eq!(built, direct);
        assert_eq!(built.metric_name(), Some("up"));
        let mut kept = direct.clone();
        kept.retain(|l| l.name != "instance");
        assert_eq!(
            kept,
            Labels::from_pairs([(METRIC_NAME, "up"), ("job", "a")])
        );
        assert_eq!(
            direct.drop_names(&["instance".into()]),
            direct.keep_names(&[METRIC_NAME.into(), "job".into()])
        );
    }

    #[test]
    fn order_is_by_name_then_value_not_by_encoding() {
        // "le" is stored by index and "a" as text; the order must still be by name.
        let a = Labels::from_pairs([("a", "2")]);
        let le = Labels::from_pairs([("le", "1")]);
        assert!(a < le);
        let short = Labels::from_pairs([("a", "1")]);
        let long = Labels::from_pairs([("a", "1"), ("b", "1")]);
        assert!(short < long);
        assert!(Labels::from_pairs([("a", "10")]) < Labels::from_pairs([("a", "9")]));
    }
}
