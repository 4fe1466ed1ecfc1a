//! The config's `templates:` list: globs of notification template files,
//! relative to the config file's folder, read and parsed into one set with
//! Vigil's defaults. As in Alertmanager, a glob that matches nothing is not
//! an error (Vigil warns), a file that does not parse is, and a call of an
//! undefined template is found here but only warned about (Alertmanager
//! finds it when it renders).

use serde_yaml::Value;

use vigil_common::yaml_positions::child_index;

use super::validate::Validator;
use super::{resolve_relative, Severity};
use crate::notify::templates::{LoadError, NotifyTemplates};

impl Validator<'_> {
    /// Loads the `templates:` files; on a problem, the defaults alone.
    pub(super) fn templates(&mut self, value: Option<&Value>) -> NotifyTemplates {
        let Some(value) = value else {
            return NotifyTemplates::defaults();
        };
        let mut files = Vec::new();
        for (i, item) in self.sequence(value, "templates").iter().enumerate() {
            let path = child_index("templates", i);
            let Some(pattern) = item.as_str() else {
                self.error(&path, "expected a file path or glob (a string)");
                continue;
            };
            let full = resolve_relative(self.file, pattern);
            let paths = match glob::glob(&full.to_string_lossy()) {
                Ok(paths) => paths,
                Err(e) => {
                    self.error(&path, format!("{pattern:?} is not a valid glob: {e}"));
                    continue;
                }
            };
            let before = files.len();
            for entry in paths {
                match entry.map_err(|e| e.to_string()).and_then(|file| {
                    let text = std::fs::read_to_string(&file)
                        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                    Ok((file.display().to_string(), text))
                }) {
                    Ok(file) => files.push(file),
                    Err(message) => self.error(&path, message),
                }
            }
            if files.len() == before {
                self.report(
                    Severity::Warning,
                    &path,
                    format!(
                        "{} matches no file; no templates loaded from it",
                        full.display()
                    ),
                );
            }
        }
        match NotifyTemplates::with_files(&files) {
            Ok(templates) => {
                if let Err(e) = templates.undefined_calls() {
                    self.report(
                        Severity::Warning,
                        "templates",
                        format!("{e}; a field that calls it will carry Vigil's plain text instead"),
                    );
                }
                templates
            }
            Err(LoadError::Template(e)) => {
                self.error("templates", format!("{e}; fix the template file"));
                NotifyTemplates::defaults()
            }
            Err(e) => {
                self.error("templates", e.to_string());
                NotifyTemplates::defaults()
            }
        }
    }
}
