//! Line and column of every key and value in a YAML document, by field path
//! (`probes[1].timeout`), so that semantic errors found after deserialisation
//! can still point at the offending line. serde_yaml only reports a location
//! for the first deserialisation error; this index is built from the marked
//! events of a second, independent YAML parser (`yaml-rust2`).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Positions of keys and values, by field path.
#[derive(Debug, Default)]
pub struct PositionIndex {
    keys: HashMap<String, Position>,
    values: HashMap<String, Position>,
}

impl PositionIndex {
    /// Indexes `text`. A document the event parser cannot read yields an
    /// empty index: positions are a convenience, and the syntax error itself
    /// is reported by the deserialiser.
    pub fn build(text: &str) -> PositionIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return PositionIndex::default();
        }
        builder.index
    }

    /// Where the value at `path` starts, or failing that the nearest
    /// enclosing value that exists (a missing field points at its parent).
    pub fn value(&self, path: &str) -> Option<Position> {
        let mut current = path;
        loop {
            if let Some(found) = self.values.get(current) {
                return Some(*found);
            }
            current = parent(current)?;
        }
    }

    /// Where the key at `path` is written (for unknown fields), falling back
    /// to [`PositionIndex::value`].
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }
}

/// The enclosing path: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → `` (the root).
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Joins a map key onto a path.
pub fn child_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Joins a sequence index onto a path.
pub fn child_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

enum Frame {
    /// `start` is the char index of the mapping's mark, until its first key.
    Map {
        path: String,
        key: Option<String>,
        start: Option<usize>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    index: PositionIndex,
}

impl Builder {
    /// Path of the node that starts now, or `None` when the node is a map key.
    fn next_value_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let child = child_index(path, *next);
                *next += 1;
                Some(child)
            }
            Some(Frame::Map { path, key, .. }) => key.take().map(|key| child_key(path, &key)),
        }
    }

    fn at(mark: Marker) -> Position {
        Position {
            line: mark.line(),
            column: mark.col() + 1,
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) => match self.next_value_path() {
                Some(path) => {
                    self.index.values.insert(path, Self::at(mark));
                }
                None => {
                    if let Some(Frame::Map { path, key, start }) = self.stack.last_mut() {
                        // yaml-rust2 marks a block mapping after its first
                        // key; the key itself is where the mapping starts.
                        if start.take().is_some_and(|start| mark.index() < start) {
                            self.index.values.insert(path.clone(), Self::at(mark));
                        }
                        self.index
                            .keys
                            .insert(child_key(path, &text), Self::at(mark));
                        *key = Some(text);
                    }
                }
            },
            Event::Alias(_) => {
                if let Some(path) = self.next_value_path() {
                    self.index.values.insert(path, Self::at(mark));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                // A collection used as a map key has no field path; index its
                // contents under a placeholder so the walk stays balanced.
                let path = self.next_value_path().unwrap_or_else(|| "?".to_owned());
                self.index.values.insert(path.clone(), Self::at(mark));
                self.stack.push(match event {
                    Event::MappingStart(..) => Frame::Map {
                        path,
                        key: None,
                        start: Some(mark.index()),
                    },
                    _ => Frame::Seq { path, next: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "listen: 0.0.0.0:9310\nprobes:\n  - name: a\n    timeout: 5s\n  - {name: b, interval: 1m}\nbusiness:\n  counters:\n    - name: x_total\n      labels: [channel, region]\n";

    #[test]
    fn indexes_values_by_field_path_with_one_based_positions() {
        let index = PositionIndex::build(DOC);
        assert_eq!(index.value("listen"), Some(Position { line: 1, column: 9 }));
        assert_eq!(
            index.value("probes[0].timeout"),
            Some(Position {
                line: 4,
                column: 14
            })
        );
        assert_eq!(
            index.value("probes[1].interval"),
            Some(Position {
                line: 5,
                column: 25
            })
        );
        assert_eq!(
            index.value("business.counters[0].labels[1]"),
            Some(Position {
                line: 9,
                column: 25
            })
        );
    }

    #[test]
    fn keys_are_indexed_separately_from_values() {
        let index = PositionIndex::build(DOC);
        assert_eq!(
            index.key("probes[0].timeout"),
            Some(Position { line: 4, column: 5 })
        );
    }

    #[test]
    fn missing_field_falls_back_to_its_parent() {
        let index = PositionIndex::build(DOC);
        assert_eq!(index.value("probes[1].url"), index.value("probes[1]"));
        assert_eq!(
            index.value("probes[1]"),
            Some(Position { line: 5, column: 5 })
        );
    }
}
