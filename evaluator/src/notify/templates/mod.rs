//! Alertmanager-style notification templates: Vigil's default templates
//! (`default.tmpl`, under Alertmanager 0.25's names) plus the notify
//! config's `templates:` files in one set, receiver text fields parsed
//! against it, and rendering over Alertmanager's notification data with
//! Alertmanager's functions. A field that fails to render falls back to a
//! plain message, counted and logged: a notification is never lost to a
//! template.

pub mod data;
pub mod funcs;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::notify::alert::Notification;
use crate::template::{TemplateError, TemplateSet, Text};

pub use data::Data;
pub use funcs::AlertmanagerFuncs;

/// Vigil's default templates.
pub const DEFAULT_TEMPLATES: &str = include_str!("default.tmpl");

/// The default templates' file name in error messages.
const DEFAULT_FILE: &str = "default.tmpl";

/// The default templates (`default.tmpl`, under Alertmanager 0.25's names)
/// that render a whole notification (`.`); besides them, `__text_alert_list`
/// and `pagerduty.default.instances` render a list of alerts, and
/// `email.default.html` a whole e-mail.
pub const DEFAULT_NAMES: &[&str] = &[
    "__alertmanager",
    "__alertmanagerURL",
    "__subject",
    "__description",
    "slack.default.title",
    "slack.default.username",
    "slack.default.fallback",
    "slack.default.callbackid",
    "slack.default.pretext",
    "slack.default.titlelink",
    "slack.default.iconemoji",
    "slack.default.iconurl",
    "slack.default.text",
    "slack.default.footer",
    "pagerduty.default.description",
    "pagerduty.default.client",
    "pagerduty.default.clientURL",
    "opsgenie.default.message",
    "opsgenie.default.description",
    "opsgenie.default.source",
    "wechat.default.message",
    "wechat.default.to_user",
    "wechat.default.to_party",
    "wechat.default.to_tag",
    "wechat.default.agent_id",
    "victorops.default.state_message",
    "victorops.default.entity_display_name",
    "victorops.default.monitoring_tool",
    "pushover.default.title",
    "pushover.default.message",
    "pushover.default.url",
    "sns.default.subject",
    "sns.default.message",
    "telegram.default.message",
    "discord.default.title",
    "discord.default.message",
    "webex.default.message",
    "email.default.subject",
];

/// The notification template set: defaults, then the user's files.
#[derive(Debug, Clone)]
pub struct NotifyTemplates {
    set: TemplateSet,
}

/// A template file that failed to load: which file, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read template file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0}")]
    Template(#[from] TemplateError),
}

impl NotifyTemplates {
    /// The default templates alone.
    pub fn defaults() -> NotifyTemplates {
        let mut set = TemplateSet::new(Arc::new(funcs::is_function));
        // The defaults are compiled in and covered by tests; a failure here
        // is a build defect, reported by `with_files` for user files.
        if let Err(e) = set.add_file(DEFAULT_FILE, DEFAULT_FILE, DEFAULT_TEMPLATES) {
            tracing::error!(error = %e, "Vigil's default notification templates do not parse");
        }
        NotifyTemplates { set }
    }

    /// The defaults plus the given template files, in order (later
    /// definitions replace earlier ones, as in Alertmanager). A file that
    /// does not parse is an error; calls of undefined templates are found
    /// by [`Self::undefined_calls`].
    pub fn with_files(files: &[(String, String)]) -> Result<NotifyTemplates, LoadError> {
        let mut t = NotifyTemplates::defaults();
        for (path, src) in files {
            let base = Path::new(path)
                .file_name()
                .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
            t.set.add_file(path, &base, src)?;
        }
        Ok(t)
    }

    /// The first `{{template "x"}}` call in the set whose `x` is not
    /// defined (Alertmanager finds it only when it renders).
    pub fn undefined_calls(&self) -> Result<(), TemplateError> {
        self.set.check_calls()
    }

    /// Reads and loads template files from disk.
    pub fn load(paths: &[std::path::PathBuf]) -> Result<NotifyTemplates, LoadError> {
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let src = std::fs::read_to_string(path).map_err(|e| LoadError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            files.push((path.display().to_string(), src));
        }
        NotifyTemplates::with_files(&files)
    }

    /// Whether a template `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }

    /// Parses a receiver's text field; `field` names it in errors.
    pub fn parse(&self, field: &str, text: &str) -> Result<Text, TemplateError> {
        self.set.parse_text(field, text)
    }

    /// A parsed field's calls of undefined templates, as an error.
    pub fn check(&self, text: &Text) -> Result<(), TemplateError> {
        self.set.check_text(text)
    }

    /// Renders a parsed field for a notification as Alertmanager's
    /// `ExecuteTextString` (`html` as `ExecuteHTMLString`).
    pub fn render(
        &self,
        text: &Text,
        notification: &Notification,
        now: DateTime<Utc>,
        html: bool,
    ) -> Result<String, TemplateError> {
        let data = Data::of(notification).value();
        self.set
            .execute(text, &data, &AlertmanagerFuncs { now }, html)
    }

    /// Parses and renders `text` (empty text renders empty, as in
    /// Alertmanager).
    pub fn render_str(
        &self,
        field: &str,
        text: &str,
        notification: &Notification,
        now: DateTime<Utc>,
    ) -> Result<String, TemplateError> {
        if text.is_empty() {
            return Ok(String::new());
        }
        let parsed = self.parse(field, text)?;
        self.check(&parsed)?;
        self.render(&parsed, notification, now, false)
    }
}

/// Where render-time template failures are counted (the evaluator's
/// `/metrics`).
pub trait TemplateFailures: Send + Sync {
    /// Counts one failed render of `field` for `receiver`'s `integration`.
    fn record_template_failure(&self, receiver: &str, integration: &str, field: &str);
}

/// A Prometheus counter of render failures, labelled by receiver,
/// integration and field.
pub fn failure_counter() -> prometheus::IntCounterVec {
    prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "vigil_notification_template_failures_total",
            "Notification fields whose template failed to render; the plain fallback text was sent instead.",
        ),
        &["receiver", "integration", "field"],
    )
    .unwrap_or_else(|e| unreachable!("constant metric definition is valid: {e}"))
}

/// The process's counter of render failures: receivers count into it, and
/// the evaluator registers it on its `/metrics`.
pub fn shared_failure_counter() -> &'static prometheus::IntCounterVec {
    static COUNTER: std::sync::OnceLock<prometheus::IntCounterVec> = std::sync::OnceLock::new();
    COUNTER.get_or_init(failure_counter)
}

impl TemplateFailures for prometheus::IntCounterVec {
    fn record_template_failure(&self, receiver: &str, integration: &str, field: &str) {
        self.with_label_values(&[receiver, integration, field])
            .inc();
    }
}

/// Where a rendered field goes: to name it in the log line and the metric.
#[derive(Debug, Clone, Copy)]
pub struct FieldRef<'a> {
    pub integration: &'a str,
    pub field: &'a str,
    /// Escape as `html/template` (e-mail HTML bodies).
    pub html: bool,
}

/// The rendered field, or on a render failure `fallback()` (a plain text
/// Vigil builds without templates), with the failure counted in `failures`
/// and logged with the receiver, integration, field and Go's error text.
pub fn render_or_fallback(
    templates: &NotifyTemplates,
    text: &Text,
    notification: &Notification,
    now: DateTime<Utc>,
    at: FieldRef<'_>,
    failures: &dyn TemplateFailures,
    fallback: impl FnOnce() -> String,
) -> String {
    match templates.render(text, notification, now, at.html) {
        Ok(s) => s,
        Err(e) => {
            report_failure(notification, at, failures, &e);
            fallback()
        }
    }
}

/// Counts and logs one field that could not be rendered (it failed, or
/// never parsed).
pub fn report_failure(
    notification: &Notification,
    at: FieldRef<'_>,
    failures: &dyn TemplateFailures,
    error: &TemplateError,
) {
    failures.record_template_failure(&notification.receiver, at.integration, at.field);
    tracing::error!(
        receiver = %notification.receiver,
        integration = at.integration,
        field = at.field,
        error = %error,
        "notification template failed; sending the plain fallback text instead (fix the template)"
    );
}

#[cfg(test)]
mod tests;
