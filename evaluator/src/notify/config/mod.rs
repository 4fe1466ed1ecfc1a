//! The notification config: Alertmanager's configuration file format
//! (`global`, `route`, `inhibit_rules`, `receivers`), deserialised into the
//! [`raw`] serde types (unknown keys denied) and turned into the validated
//! types below by a separate [`validate`] pass that reports every problem
//! with file, line, column and field.
//!
//! # Supported
//!
//! - `global`: `resolve_timeout` (default `5m`), `slack_api_url` /
//!   `slack_api_url_file`, `pagerduty_url`, `telegram_api_url`, `webex_api_url`,
//!   `victorops_api_url`, `victorops_api_key(_file)`, `opsgenie_api_url`,
//!   `opsgenie_api_key(_file)`, `wechat_api_url`, `wechat_api_secret`,
//!   `wechat_api_corp_id`, `smtp_from`, `smtp_smarthost`, `smtp_hello`
//!   (default `localhost`), `smtp_auth_username`, `smtp_auth_password` /
//!   `smtp_auth_password_file`, `smtp_auth_identity`, `smtp_auth_secret` /
//!   `smtp_auth_secret_file`, `smtp_require_tls` (default `true`),
//!   `smtp_tls_config`, `http_config` (the last two handed to receivers).
//! - `route`: `receiver`, `group_by` (label names, or `['...']` for all
//!   labels), `matchers` (Alertmanager matcher syntax), the older `match` and
//!   `match_re`, `continue`, `group_wait` (default `30s`), `group_interval`
//!   (`5m`), `repeat_interval` (`4h`) and nested `routes`, which inherit every
//!   unset option from their parent as in Alertmanager.
//! - `inhibit_rules`: `source_matchers`, `target_matchers`, `source_match`,
//!   `source_match_re`, `target_match`, `target_match_re`, `equal`, `name`.
//! - `templates`: globs of notification template files (`templates.rs`).
//! - `time_intervals` and the older `mute_time_intervals`, named by a
//!   route's `mute_time_intervals` and `active_time_intervals`, which (as
//!   in Alertmanager) are not inherited (`time_intervals.rs`,
//!   [`crate::notify::time_interval`]).
//! - `receivers`: `name` plus `slack_configs`, `email_configs`,
//!   `webhook_configs`, `pagerduty_configs`, `telegram_configs`,
//!   `discord_configs`, `webex_configs`, `victorops_configs`,
//!   `opsgenie_configs`, `pushover_configs`, `wechat_configs`,
//!   `sns_configs`, `msteams_configs`, `msteamsv2_configs` (the last two
//!   from Alertmanager 0.26 and 0.28) and (a Vigil addition)
//!   `console_configs`; the sections' contents are read by the receivers
//!   themselves (`notify::receivers`).
//!
//! # Not supported (reported as errors, never silently ignored)
//!
//! Every other receiver kind (`rocketchat_configs`, `jira_configs`, ...).
//! Global settings that only those receivers use (`rocketchat_api_url`,
//! `jira_api_url`, ...) are accepted with a warning, because they change
//! nothing.
//!
//! Relative `*_file` paths in `global` are resolved against the config
//! file's folder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_yaml::Value;

use super::matcher::Matcher;
use super::receivers::registry::send_resolved_default;
use super::templates::NotifyTemplates;
use super::time_interval::NamedTimeInterval;
use validate::Validator;
pub use vigil_common::problem::{Problem, Severity};

mod checks;
mod raw;
mod receivers;
mod templates;
mod time_intervals;
mod validate;

pub use receivers::{build_receivers, ReceiverIntegrations};
// Field positions come from the shared index; an entry's position is its
// key (or, for a list item, its first token).
use vigil_common::yaml_positions::{yaml_error, Position as Location, PositionIndex as Positions};

/// Default `global.resolve_timeout`.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Default `group_wait` of the root route.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// Default `group_interval` of the root route.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Default `repeat_interval` of the root route.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 60 * 60);

/// Errors loading a notification config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read notification config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.0.iter().filter(|p| !p.is_warning()).count();
        write!(f, "notification config has {errors} error(s):")?;
        for problem in self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// The validated notification config.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub global: GlobalConfig,
    pub route: RouteConfig,
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    pub receivers: Vec<ReceiverConfig>,
    /// The notification templates: Vigil's defaults and the `templates:`
    /// files.
    pub templates: Arc<NotifyTemplates>,
    /// The file it was read from (for error messages of later stages).
    pub file: PathBuf,
    /// Settings that were accepted but have no effect.
    pub warnings: Vec<Problem>,
    positions: Positions,
}

impl NotifyConfig {
    /// Where a field path sits in the file (or its nearest located parent).
    pub fn locate(&self, path: &str) -> Option<Location> {
        self.positions.entry(path)
    }

    /// Places a problem found by a later stage (receivers) that validates
    /// the raw sections it owns: in this file, at its field's entry.
    pub fn place(&self, problem: Problem) -> Problem {
        let position = self.locate(&problem.field);
        problem.placed(&self.file, position)
    }

    /// Resolves a path from the config against the config file's folder.
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        resolve_relative(&self.file, path)
    }

    /// The receiver with this name.
    pub fn receiver(&self, name: &str) -> Option<&ReceiverConfig> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

/// `global`: defaults shared by receivers.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalConfig {
    /// How long an alert posted without `ends_at` stays firing unless re-sent.
    pub resolve_timeout: Duration,
    pub slack_api_url: Option<String>,
    /// Resolved against the config file's folder.
    pub slack_api_url_file: Option<PathBuf>,
    /// Default `https://events.pagerduty.com/v2/enqueue`.
    pub pagerduty_url: String,
    /// Default `https://api.telegram.org`.
    pub telegram_api_url: String,
    /// Default `https://webexapis.com/v1/messages`.
    pub webex_api_url: String,
    pub victorops_api_url: String,
    pub victorops_api_key: Option<String>,
    /// Resolved against the config file's folder.
    pub victorops_api_key_file: Option<PathBuf>,
    pub opsgenie_api_url: String,
    pub opsgenie_api_key: Option<String>,
    /// Resolved against the config file's folder.
    pub opsgenie_api_key_file: Option<PathBuf>,
    /// Default `https://qyapi.weixin.qq.com/cgi-bin/`.
    pub wechat_api_url: String,
    pub wechat_api_secret: Option<String>,
    pub wechat_api_corp_id: Option<String>,
    pub smtp_from: Option<String>,
    /// `host:port`.
    pub smtp_smarthost: Option<String>,
    pub smtp_hello: String,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<String>,
    pub smtp_auth_password_file: Option<PathBuf>,
    pub smtp_auth_identity: Option<String>,
    pub smtp_auth_secret: Option<String>,
    pub smtp_auth_secret_file: Option<PathBuf>,
    pub smtp_require_tls: bool,
    /// Raw `smtp_tls_config`, for the e-mail receiver.
    pub smtp_tls_config: Option<Value>,
    /// Raw `http_config`, for the HTTP receivers.
    pub http_config: Option<Value>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            resolve_timeout: DEFAULT_RESOLVE_TIMEOUT,
            slack_api_url: None,
            slack_api_url_file: None,
            pagerduty_url: crate::notify::receivers::pagerduty::DEFAULT_URL.to_string(),
            telegram_api_url: crate::notify::receivers::telegram::DEFAULT_API_URL.to_string(),
            webex_api_url: crate::notify::receivers::webex::DEFAULT_API_URL.to_string(),
            victorops_api_url: crate::notify::receivers::victorops::DEFAULT_API_URL.to_string(),
            victorops_api_key: None,
            victorops_api_key_file: None,
            opsgenie_api_url: crate::notify::receivers::opsgenie::DEFAULT_API_URL.to_string(),
            opsgenie_api_key: None,
            opsgenie_api_key_file: None,
            wechat_api_url: crate::notify::receivers::wechat::DEFAULT_API_URL.to_string(),
            wechat_api_secret: None,
            wechat_api_corp_id: None,
            smtp_from: None,
            smtp_smarthost: None,
            smtp_hello: "localhost".to_string(),
            smtp_auth_username: None,
            smtp_auth_password: None,
            smtp_auth_password_file: None,
            smtp_auth_identity: None,
            smtp_auth_secret: None,
            smtp_auth_secret_file: None,
            smtp_require_tls: true,
            smtp_tls_config: None,
            http_config: None,
        }
    }
}

/// How a route groups alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// Group by these labels (empty: one group for all alerts).
    Labels(Vec<String>),
    /// `['...']`: group by every label, i.e. one group per alert.
    All,
}

/// One node of the `route` tree as written (options not yet inherited; see
/// `notify::route::RouteTree` for the effective values).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub receiver: Option<String>,
    /// `None` when unset (inherited).
    pub group_by: Option<GroupBy>,
    /// `match`, `match_re` and `matchers` combined.
    pub matchers: Vec<Matcher>,
    pub continue_matching: bool,
    pub group_wait: Option<Duration>,
    pub group_interval: Option<Duration>,
    pub repeat_interval: Option<Duration>,
    pub routes: Vec<RouteConfig>,
    /// No notifications while one of these matches (not inherited).
    pub mute_time_intervals: Vec<Arc<NamedTimeInterval>>,
    /// Notifications only while one of these matches, when set (not
    /// inherited).
    pub active_time_intervals: Vec<Arc<NamedTimeInterval>>,
    /// Field path of this node, e.g. `route.routes[1]`.
    pub path: String,
}

/// One inhibit rule.
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitRuleConfig {
    pub name: Option<String>,
    pub source_matchers: Vec<Matcher>,
    pub target_matchers: Vec<Matcher>,
    pub equal: Vec<String>,
}

/// One receiver: its name and its integration sections, kept raw for the
/// receivers module, which owns their format.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    pub name: String,
    /// Every entry of every `*_configs` list, in file order.
    pub integrations: Vec<IntegrationConfig>,
    pub location: Option<Location>,
}

impl ReceiverConfig {
    /// Every integration section.
    pub fn integrations(&self) -> impl Iterator<Item = &IntegrationConfig> {
        self.integrations.iter()
    }

    /// The entries of one `*_configs` list (`email_configs`, ...).
    pub fn section(&self, kind: &str) -> Vec<&IntegrationConfig> {
        self.integrations().filter(|c| c.kind == kind).collect()
    }

    /// A receiver without integrations discards everything routed to it.
    pub fn is_blackhole(&self) -> bool {
        self.integrations().next().is_none()
    }

    /// Whether any integration wants resolved notifications.
    pub fn sends_resolved(&self) -> bool {
        self.integrations().any(IntegrationConfig::send_resolved)
    }
}

/// One entry of a `*_configs` list, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationConfig {
    /// `slack_configs`, `email_configs`, `webhook_configs` or `console_configs`.
    pub kind: &'static str,
    /// The mapping exactly as in the file.
    pub value: Value,
    /// Field path, e.g. `receivers[2].slack_configs[0]`.
    pub path: String,
    pub location: Option<Location>,
}

impl IntegrationConfig {
    /// `send_resolved`, with the kind's default (Alertmanager's: webhook
    /// and console true, Slack and e-mail false).
    pub fn send_resolved(&self) -> bool {
        match self.value.get("send_resolved").and_then(Value::as_bool) {
            Some(explicit) => explicit,
            None => send_resolved_default(self.kind),
        }
    }
}

/// Reads and validates a notification config file.
pub fn load_file(path: &Path) -> Result<NotifyConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates a notification config; `file` names it in errors
/// and anchors relative paths.
pub fn parse(text: &str, file: &Path) -> Result<NotifyConfig, ConfigError> {
    let positions = Positions::build(text);
    let mut validator = Validator {
        file,
        positions: &positions,
        problems: Vec::new(),
        defined_intervals: Default::default(),
    };
    let parsed = serde_yaml::from_str::<Value>(text).and_then(|mut value| {
        // Alertmanager's YAML reader applies `<<: *anchor` merge keys.
        value.apply_merge().map(|()| value)
    });
    let document = match parsed {
        Ok(value) => value,
        Err(err) => {
            let (position, _) = yaml_error(&err);
            let message = format!("invalid YAML: {err}");
            return Err(ConfigError::Invalid(vec![Problem::new(
                file, position, "", message,
            )]));
        }
    };
    let config = validator.document(&document);
    let mut problems = validator.problems;
    // In file order, so the list reads top to bottom alongside the file.
    problems.sort_by_key(Problem::file_order);
    if problems.iter().any(|p| !p.is_warning()) {
        return Err(ConfigError::Invalid(problems));
    }
    match config {
        Some((global, route, inhibit_rules, receivers, templates)) => Ok(NotifyConfig {
            global,
            route,
            inhibit_rules,
            receivers,
            templates: Arc::new(templates),
            file: file.to_path_buf(),
            warnings: problems,
            positions,
        }),
        // Unreachable in practice: a missing route is an error above.
        None => Err(ConfigError::Invalid(problems)),
    }
}

fn resolve_relative(file: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    file.parent()
        .map_or_else(|| p.to_path_buf(), |dir| dir.join(p))
}

/// Parses a duration in Prometheus notation (`1d2h30m`, `90s`, `500ms`, `0`);
/// the error is the message to report.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    vigil_common::duration::parse_duration(text).map_err(|error| error.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests;
