//! [`TextMap`]: a rule's labels or annotations (name → text), kept as one
//! sorted boxed slice. A rule usually has one to three of each, and a
//! `BTreeMap<String, String>` allocates a whole 544-byte node for even one
//! entry; with thousands of rules held that was about 1 MiB (BENCHMARKS.md,
//! "Fleet").

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Names and texts sorted by name, each name once; iterates, compares,
/// prints and serialises like the `BTreeMap` it replaces.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextMap(Box<[(String, String)]>);

impl TextMap {
    pub fn new() -> TextMap {
        TextMap::default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&String> {
        self.position(name).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &String)> + Clone + '_ {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> + Clone + '_ {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = &String> + Clone + '_ {
        self.0.iter().map(|(_, v)| v)
    }

    /// Sets `name` (replacing its text if present).
    pub fn insert(&mut self, name: String, value: String) {
        match self.position(&name) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => {
                let mut v = std::mem::take(&mut self.0).into_vec();
                v.insert(i, (name, value));
                self.0 = v.into_boxed_slice();
            }
        }
    }

    pub fn clear(&mut self) {
        self.0 = Box::default();
    }

    /// A `BTreeMap` copy, for code that wants one.
    pub fn to_btree(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }
}

/// Later pairs win over earlier ones with the same name, as in a map.
impl FromIterator<(String, String)> for TextMap {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> TextMap {
        let mut v: Vec<(String, String)> = iter.into_iter().collect();
        // Stable: among equal names the last one given stays last.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, String)> = Vec::with_capacity(v.len());
        for (k, val) in v {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = val,
                _ => out.push((k, val)),
            }
        }
        TextMap(out.into_boxed_slice())
    }
}

impl From<BTreeMap<String, String>> for TextMap {
    fn from(m: BTreeMap<String, String>) -> TextMap {
        // Already sorted and unique.
        TextMap(m.into_iter().collect::<Vec<_>>().into_boxed_slice())
    }
}

impl<const N: usize> From<[(String, String); N]> for TextMap {
    fn from(pairs: [(String, String); N]) -> TextMap {
        pairs.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a TextMap {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl std::ops::Index<&str> for TextMap {
    type Output = String;

    fn index(&self, name: &str) -> &String {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no entry {name:?} in the map"),
        }
    }
}

impl fmt::Debug for TextMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for TextMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    #[test]
    fn behaves_like_the_btreemap_it_replaces() {
        let pairs = [(s("b"), s("2")), (s("a"), s("1")), (s("b"), s("3"))];
        let m: TextMap = pairs.clone().into_iter().collect();
        let b: BTreeMap<String, String> = pairs.into_iter().collect();
        assert_eq!(m.len(), 2);
        assert_eq!(m.to_btree(), b);
        assert_eq!(format!("{m:?}"), format!("{b:?}"));
        assert_eq!(
            serde_json::to_string(&m).expect("json"),
            serde_json::to_string(&b).expect("json")
        );
        assert_eq!(m.get("b").map(String::as_str), Some("3"));
        assert_eq!(&m["a"], "1");
        assert!(m.get("c").is_none() && !m.contains_key("c") && m.contains_key("a"));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m, TextMap::from(b));
    }

    #[test]
    fn insert_keeps_order_and_replaces() {
        let mut m = TextMap::new();
        assert!(m.is_empty());
        m.insert(s("z"), s("1"));
        m.insert(s("a"), s("2"));
        m.insert(s("m"), s("3"));
        m.insert(s("a"), s("4"));
        assert_eq!(
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            ["a=4", "m=3", "z=1"]
        );
        m.clear();
        assert!(m.is_empty());
    }
}
