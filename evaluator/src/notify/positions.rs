//! Where each field of a YAML document sits (line and column), keyed by its
//! field path (`route.routes[0].matchers[1]`). serde_yaml drops positions
//! once a document is parsed, but every config error must name its line, so
//! the document is scanned once more with an event parser that keeps them.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Field path → location of the field (the key of a mapping entry, or the
/// first token of a sequence item).
#[derive(Debug, Clone, Default)]
pub struct Positions {
    by_path: HashMap<String, Location>,
}

impl Positions {
    /// Scans `text`; a document the event parser rejects yields no positions
    /// (serde_yaml reports the syntax error itself, with its location).
    pub fn scan(text: &str) -> Positions {
        let mut recorder = Recorder::default();
        // Errors are deliberately ignored: see above.
        let _ = Parser::new_from_str(text).load(&mut recorder, false);
        Positions {
            by_path: recorder.by_path,
        }
    }

    /// The location of `path`, or of its nearest ancestor that has one.
    pub fn locate(&self, path: &str) -> Option<Location> {
        let mut path = path;
        loop {
            if let Some(location) = self.by_path.get(path) {
                return Some(*location);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

/// Joins a parent path and a mapping key.
pub fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Joins a parent path and a sequence index.
pub fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

enum Frame {
    Map {
        path: String,
        /// The key whose value comes next, or `None` when a key comes next.
        key: Option<String>,
        /// Set until the first key of a mapping that is a sequence item is
        /// seen: block mappings report a start mark after their first key.
        pending_item: Option<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    by_path: HashMap<String, Location>,
}

impl Recorder {
    fn location(mark: Marker) -> Location {
        // yaml-rust2 lines are 1-based, columns 0-based.
        Location {
            line: mark.line(),
            column: mark.col() + 1,
        }
    }

    /// Path of the node that starts now, and whether it is a sequence item.
    fn node_path(&mut self) -> Option<(String, bool)> {
        match self.stack.last_mut()? {
            Frame::Map { path, key, .. } => key.take().map(|k| (key_path(path, &k), false)),
            Frame::Seq { path, next } => {
                let p = index_path(path, *next);
                *next += 1;
                Some((p, true))
            }
        }
    }

    fn start_container(&mut self, mark: Marker, is_map: bool) {
        let (path, item) = self.node_path().unwrap_or_default();
        if item && is_map {
            self.stack.push(Frame::Map {
                path,
                key: None,
                pending_item: None,
            });
            if let Some(Frame::Map {
                pending_item, path, ..
            }) = self.stack.last_mut()
            {
                *pending_item = Some(path.clone());
            }
            return;
        }
        if item {
            self.by_path
                .entry(path.clone())
                .or_insert(Self::location(mark));
        }
        self.stack.push(if is_map {
            Frame::Map {
                path,
                key: None,
                pending_item: None,
            }
        } else {
            Frame::Seq { path, next: 0 }
        });
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(value, ..) => {
                let location = Self::location(mark);
                if let Some(Frame::Map {
                    path,
                    key,
                    pending_item,
                }) = self.stack.last_mut()
                {
                    if key.is_none() {
                        if let Some(item) = pending_item.take() {
                            self.by_path.entry(item).or_insert(location);
                        }
                        self.by_path
                            .entry(key_path(path, &value))
                            .or_insert(location);
                        *key = Some(value);
                        return;
                    }
                }
                if let Some((path, true)) = self.node_path() {
                    self.by_path.entry(path).or_insert(location);
                }
            }
            Event::Alias(_) => {
                let _ = self.node_path();
            }
            Event::MappingStart(..) => self.start_container(mark, true),
            Event::SequenceStart(..) => self.start_container(mark, false),
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(Frame::Map {
                    pending_item: Some(item),
                    ..
                }) = self.stack.pop()
                {
                    self.by_path.entry(item).or_insert(Self::location(mark));
                }
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    const DOC: &str = "route:\n  receiver: x\n  routes:\n    - receiver: y\n      matchers:\n        - a=b\n        - c=d\n";

    #[test]
    fn keys_are_located_at_their_line_and_column() {
        let positions = Positions::scan(DOC);
        assert_eq!(
            positions.locate("route.receiver"),
            Some(Location { line: 2, column: 3 })
        );
        assert_eq!(
            positions.locate("route.routes[0].matchers[1]"),
            Some(Location {
                line: 7,
                column: 11
            })
        );
    }

    #[test]
    fn sequence_items_that_are_mappings_point_at_their_first_key() {
        let positions = Positions::scan(DOC);
        assert_eq!(
            positions.locate("route.routes[0]"),
            Some(Location { line: 4, column: 7 })
        );
    }

    #[test]
    fn unknown_paths_fall_back_to_the_nearest_ancestor() {
        let positions = Positions::scan(DOC);
        assert_eq!(
            positions.locate("route.routes[0].group_wait"),
            Some(Location { line: 4, column: 7 })
        );
    }
}
