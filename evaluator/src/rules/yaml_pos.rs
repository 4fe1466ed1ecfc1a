//! Line and column of every field in a YAML document, keyed by field path
//! (`groups[0].rules[2].expr`), so that semantic validation (which runs on
//! already-deserialised structs) can still say where a problem is.
//! serde_yaml only reports positions for its own errors; this walks the
//! document once more with `yaml-rust2`'s event parser, which reports marks.
//! It knows nothing about rule files and can serve any config format.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based position in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Positions of the values of all fields of the first document.
#[derive(Debug, Default, Clone)]
pub struct YamlPositions {
    values: HashMap<String, Position>,
}

impl YamlPositions {
    /// Collects positions; a document that does not scan yields no
    /// positions (the deserialiser reports that error with its own position).
    pub fn collect(src: &str) -> YamlPositions {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(src);
        // Scan errors are reported by serde_yaml; keep what was collected.
        let _ = parser.load(&mut walker, false);
        YamlPositions {
            values: walker.values,
        }
    }

    /// Position of the value at `path`.
    pub fn get(&self, path: &str) -> Option<Position> {
        self.values.get(path).copied()
    }

    /// Position of `path`, or of its closest ancestor that has one (a
    /// missing field is reported at the object that lacks it).
    pub fn nearest(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.get(p) {
                return Some(pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

enum Frame {
    /// A mapping; `key` is the pending key when the next event is its value.
    Map {
        path: String,
        key: Option<String>,
        keys_seen: usize,
    },
    Seq {
        path: String,
        index: usize,
    },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    values: HashMap<String, Position>,
    done: bool,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Walker {
    /// The path of the node that starts now, if it is a value (not a key).
    fn next_value_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key, .. }) => key.take().map(|k| join(path, &k)),
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}[{index}]");
                *index += 1;
                Some(p)
            }
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        let pos = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        match ev {
            Event::Scalar(value, ..) => {
                // A scalar in key position of a mapping is a key.
                if let Some(Frame::Map {
                    path,
                    key,
                    keys_seen,
                }) = self.stack.last_mut()
                {
                    if key.is_none() {
                        // The parser marks a mapping's start late; its
                        // first key is where a reader sees it begin.
                        if *keys_seen == 0 {
                            self.values.insert(path.clone(), pos);
                        }
                        *keys_seen += 1;
                        *key = Some(value);
                        return;
                    }
                }
                if let Some(p) = self.next_value_path() {
                    self.values.insert(p, pos);
                }
            }
            Event::Alias(_) => {
                self.next_value_path();
            }
            Event::MappingStart(..) => {
                let path = self
                    .next_value_path()
                    .unwrap_or_else(|| "<complex key>".into());
                self.values.insert(path.clone(), pos);
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    keys_seen: 0,
                });
            }
            Event::SequenceStart(..) => {
                let path = self
                    .next_value_path()
                    .unwrap_or_else(|| "<complex key>".into());
                self.values.insert(path.clone(), pos);
                self.stack.push(Frame::Seq { path, index: 0 });
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

    const DOC: &str = "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up == 0\n      - record: y\n        expr: |\n          sum(z)\n";

    #[test]
    fn scalar_values_have_their_line_and_column() {
        let pos = YamlPositions::collect(DOC);
        assert_eq!(
            pos.get("groups[0].name"),
            Some(Position {
                line: 2,
                column: 11
            })
        );
        assert_eq!(
            pos.get("groups[0].rules[0].expr"),
            Some(Position {
                line: 5,
                column: 15
            })
        );
        assert_eq!(
            pos.get("groups[0].rules[1].record"),
            Some(Position {
                line: 6,
                column: 17
            })
        );
    }

    #[test]
    fn missing_fields_fall_back_to_the_enclosing_object() {
        let pos = YamlPositions::collect(DOC);
        let rule = pos.get("groups[0].rules[1]").expect("rule position");
        assert_eq!(pos.nearest("groups[0].rules[1].for"), Some(rule));
        assert_eq!(rule.line, 6);
    }
}
