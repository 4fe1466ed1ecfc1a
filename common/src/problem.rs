//! One problem found in a config file, the same type for every config loader
//! of both binaries (`exporter.yaml`, `vigil.yaml`, rule files, the
//! notification config), so that every message reads
//! `file:line:column: field: what is wrong` and is collected, sorted and
//! printed the same way.

use std::fmt;
use std::path::PathBuf;

use crate::yaml_positions::Position;

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The config is rejected.
    Error,
    /// The config is accepted; the setting has no effect.
    Warning,
}

/// One thing wrong in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known (only shown with a line).
    pub column: Option<usize>,
    /// Field path such as `groups[0].rules[2].expr`; empty for the file.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
    pub severity: Severity,
}

impl Problem {
    /// An error at `position` (when known) in `file`.
    pub fn new(
        file: impl Into<PathBuf>,
        position: Option<Position>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            file: file.into(),
            line: position.map(|p| p.line),
            column: position.map(|p| p.column),
            field: field.into(),
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// A problem with `field` found by a validator that sees one section
    /// and not the file (scrape configs, receivers); the loader of the file
    /// places it with [`Problem::placed`]. Until then it shows as
    /// `field: message`.
    pub fn at_field(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem::new(PathBuf::new(), None, field, message)
    }

    /// The same problem, placed in `file` at `position`.
    pub fn placed(self, file: impl Into<PathBuf>, position: Option<Position>) -> Problem {
        Problem {
            file: file.into(),
            line: position.map(|p| p.line),
            column: position.map(|p| p.column),
            ..self
        }
    }

    /// The same problem, demoted to a warning.
    pub fn warning(self) -> Problem {
        Problem {
            severity: Severity::Warning,
            ..self
        }
    }

    /// Whether this problem only warns (the config is still accepted).
    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }

    /// Where in the file, when both line and column are known.
    pub fn position(&self) -> Option<Position> {
        Some(Position {
            line: self.line?,
            column: self.column?,
        })
    }

    /// Sort key putting problems in file order, unlocated ones last.
    pub fn file_order(&self) -> (usize, usize) {
        (
            self.line.unwrap_or(usize::MAX),
            self.column.unwrap_or(usize::MAX),
        )
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = self.file.display().to_string();
        if let Some(line) = self.line {
            place.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                place.push_str(&format!(":{column}"));
            }
        }
        let mut parts = Vec::with_capacity(4);
        if !place.is_empty() {
            parts.push(place.as_str());
        }
        if self.is_warning() {
            parts.push("warning");
        }
        if !self.field.is_empty() {
            parts.push(&self.field);
        }
        parts.push(&self.message);
        f.write_str(&parts.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_line_column_field_and_message() {
        let at = Some(Position { line: 3, column: 7 });
        let problem = Problem::new("vigil.yaml", at, "web.listen", "not an address");
        assert_eq!(
            problem.to_string(),
            "vigil.yaml:3:7: web.listen: not an address"
        );
    }

    #[test]
    fn unknown_position_and_empty_field_are_left_out() {
        let problem = Problem::new("rules.yaml", None, "", "cannot read the file");
        assert_eq!(problem.to_string(), "rules.yaml: cannot read the file");
    }

    #[test]
    fn a_problem_not_yet_placed_shows_field_and_message() {
        let problem = Problem::at_field("scrape_configs[1].job_name", "already used");
        assert_eq!(
            problem.to_string(),
            "scrape_configs[1].job_name: already used"
        );
        let at = Some(Position { line: 9, column: 5 });
        assert_eq!(
            problem.placed("vigil.yaml", at).to_string(),
            "vigil.yaml:9:5: scrape_configs[1].job_name: already used"
        );
    }

    #[test]
    fn warnings_say_so_after_the_position() {
        let at = Some(Position { line: 2, column: 3 });
        let problem = Problem::new("notify.yaml", at, "global.pagerduty_url", "ignored").warning();
        assert!(problem.is_warning());
        assert_eq!(
            problem.to_string(),
            "notify.yaml:2:3: warning: global.pagerduty_url: ignored"
        );
    }
}
