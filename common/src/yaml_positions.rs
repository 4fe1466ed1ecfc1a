//! Line and column of every key and value in a YAML document, by field path
//! (`groups[0].rules[2].expr`, `probes[1].timeout`), so that semantic errors
//! found after deserialisation can still point at the offending line.
//! serde_yaml only reports a location for its own first error; this index is
//! built from the marked events of a second, independent YAML parser
//! (`yaml-rust2`). It knows nothing about any config format.
//!
//! Three lookups, for three kinds of message: [`PositionIndex::value`] (a
//! bad value), [`PositionIndex::key`] (an unknown key), and
//! [`PositionIndex::entry`] (where an entry starts as a reader sees it).

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Positions of keys and values of the first document, by field path.
#[derive(Debug, Default, Clone)]
pub struct PositionIndex {
    keys: HashMap<String, Position>,
    values: HashMap<String, Position>,
}

impl PositionIndex {
    /// Indexes `text`. Where the event parser fails, what came before the
    /// error is kept: positions are a convenience, and the syntax error
    /// itself is reported by the deserialiser with its own position.
    pub fn build(text: &str) -> PositionIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        // See above: a scan error is the deserialiser's to report.
        let _ = parser.load(&mut builder, false);
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

    /// Where the value at `path` starts, only if `path` itself exists.
    pub fn value_exact(&self, path: &str) -> Option<Position> {
        self.values.get(path).copied()
    }

    /// Where the key at `path` is written (for unknown fields), falling back
    /// to [`PositionIndex::value`].
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied().or_else(|| self.value(path))
    }

    /// Where the entry at `path` starts as a reader sees it: the key of a
    /// mapping entry, the first token of a sequence item; a missing path
    /// falls back to its nearest ancestor's entry.
    pub fn entry(&self, path: &str) -> Option<Position> {
        let mut current = path;
        loop {
            let found = if current.ends_with(']') {
                self.values.get(current)
            } else {
                self.keys.get(current)
            };
            if let Some(found) = found {
                return Some(*found);
            }
            current = parent(current)?;
            if current.is_empty() {
                return self.values.get(current).copied();
            }
        }
    }
}

/// Where a serde_yaml error points, and its message without the
/// " at line L column C" it ends in (a problem shows the position in front).
pub fn yaml_error(error: &serde_yaml::Error) -> (Option<Position>, String) {
    let position = error.location().map(|at| Position {
        line: at.line(),
        column: at.column(),
    });
    let text = error.to_string();
    let message = match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    };
    (position, message)
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
    /// Set at the end of the first document; later ones are not indexed.
    done: bool,
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
        if self.done {
            return;
        }
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
            Event::DocumentEnd => self.done = true,
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

    #[test]
    fn entries_are_keys_for_mapping_fields_and_first_tokens_for_items() {
        let index = PositionIndex::build(DOC);
        assert_eq!(
            index.entry("probes[0].timeout"),
            Some(Position { line: 4, column: 5 })
        );
        assert_eq!(
            index.entry("business.counters[0].labels[1]"),
            Some(Position {
                line: 9,
                column: 25
            })
        );
        assert_eq!(
            index.entry("probes[0]"),
            Some(Position { line: 3, column: 5 })
        );
        // A missing field is reported at the entry that lacks it.
        assert_eq!(index.entry("business.gauges"), index.entry("business"));
        assert_eq!(
            index.entry("business"),
            Some(Position { line: 6, column: 1 })
        );
    }

    #[test]
    fn exact_lookup_does_not_fall_back() {
        let index = PositionIndex::build(DOC);
        assert_eq!(index.value_exact("probes[0].url"), None);
        assert_eq!(index.value_exact("listen"), index.value("listen"));
    }

    #[test]
    fn only_the_first_document_is_indexed() {
        let index = PositionIndex::build("a: 1\n---\na: 2\nb: 3\n");
        assert_eq!(index.value("a"), Some(Position { line: 1, column: 4 }));
        assert_eq!(index.value_exact("b"), None);
    }

    #[test]
    fn positions_before_a_syntax_error_are_kept() {
        let index = PositionIndex::build("a: 1\nb: [\n");
        assert_eq!(index.value("a"), Some(Position { line: 1, column: 4 }));
    }

    #[test]
    fn yaml_errors_keep_the_position_apart_from_the_message() {
        let error = serde_yaml::from_str::<Vec<u8>>("[1,\n  x]\n").err();
        let (position, message) = error.as_ref().map(yaml_error).unwrap_or_default();
        assert_eq!(position, Some(Position { line: 2, column: 3 }));
        assert!(!message.contains(" at line "), "{message}");
    }

    #[test]
    fn position_displays_as_line_colon_column() {
        assert_eq!(Position { line: 3, column: 7 }.to_string(), "3:7");
    }
}
