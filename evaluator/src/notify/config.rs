//! The notification config: Alertmanager's configuration file format
//! (`global`, `route`, `inhibit_rules`, `receivers`), read and validated in
//! one pass that reports every problem with file, line, column and field.
//!
//! # Supported
//!
//! - `global`: `resolve_timeout` (default `5m`), `slack_api_url` /
//!   `slack_api_url_file`, `smtp_from`, `smtp_smarthost`, `smtp_hello`
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
//! - `receivers`: `name` plus `slack_configs`, `email_configs`,
//!   `webhook_configs` and (a Vigil addition) `console_configs`; the sections'
//!   contents are read by the receivers themselves (`notify::receivers`).
//!
//! # Not supported (reported as errors, never silently ignored)
//!
//! `templates`, `time_intervals`, `mute_time_intervals`, a route's
//! `mute_time_intervals` / `active_time_intervals`, and every other receiver
//! kind (`pagerduty_configs`, `opsgenie_configs`, ...). Global settings that
//! only those receivers use (`pagerduty_url`, `opsgenie_api_key`, ...) are
//! accepted with a warning, because they change nothing.
//!
//! Relative `*_file` paths in `global` are resolved against the config
//! file's folder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::matcher::{self, is_valid_label_name, MatchOp, Matcher};
pub use vigil_common::problem::{Problem, Severity};
// Field positions come from the shared index; an entry's position is its
// key (or, for a list item, its first token).
use vigil_common::yaml_positions::{
    child_index as index_path, child_key as key_path, yaml_error, Position as Location,
    PositionIndex as Positions,
};

/// Default `global.resolve_timeout`.
pub const DEFAULT_RESOLVE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Default `group_wait` of the root route.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// Default `group_interval` of the root route.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Default `repeat_interval` of the root route.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 60 * 60);

/// Receiver kinds Vigil delivers to.
pub const SUPPORTED_INTEGRATIONS: [&str; 4] = [
    "slack_configs",
    "email_configs",
    "webhook_configs",
    "console_configs",
];

/// Alertmanager receiver kinds Vigil cannot deliver to.
const UNSUPPORTED_INTEGRATIONS: [&str; 15] = [
    "discord_configs",
    "incidentio_configs",
    "jira_configs",
    "mattermost_configs",
    "msteams_configs",
    "msteamsv2_configs",
    "opsgenie_configs",
    "pagerduty_configs",
    "pushover_configs",
    "rocketchat_configs",
    "sns_configs",
    "telegram_configs",
    "victorops_configs",
    "webex_configs",
    "wechat_configs",
];

/// Global settings of receiver kinds Vigil does not have.
const IGNORED_GLOBALS: [&str; 17] = [
    "jira_api_url",
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "opsgenie_api_url",
    "pagerduty_url",
    "rocketchat_api_url",
    "rocketchat_token",
    "rocketchat_token_file",
    "rocketchat_token_id",
    "rocketchat_token_id_file",
    "telegram_api_url",
    "victorops_api_key",
    "victorops_api_key_file",
    "victorops_api_url",
    "webex_api_url",
    "wechat_api_corp_id",
    "wechat_api_secret",
];

const YAML11_TRUE: [&str; 8] = ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"];
const YAML11_FALSE: [&str; 8] = ["n", "N", "no", "No", "NO", "off", "Off", "OFF"];

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
    pub slack_configs: Vec<IntegrationConfig>,
    pub email_configs: Vec<IntegrationConfig>,
    pub webhook_configs: Vec<IntegrationConfig>,
    pub console_configs: Vec<IntegrationConfig>,
    pub location: Option<Location>,
}

impl ReceiverConfig {
    /// Every integration section, in kind order.
    pub fn integrations(&self) -> impl Iterator<Item = &IntegrationConfig> {
        self.slack_configs
            .iter()
            .chain(&self.email_configs)
            .chain(&self.webhook_configs)
            .chain(&self.console_configs)
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
    /// `send_resolved`, with Alertmanager's per-kind default (webhook and
    /// console: true; Slack and e-mail: false).
    pub fn send_resolved(&self) -> bool {
        match self.value.get("send_resolved").and_then(Value::as_bool) {
            Some(explicit) => explicit,
            None => matches!(self.kind, "webhook_configs" | "console_configs"),
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
    let mut walker = Walker {
        file,
        positions: &positions,
        problems: Vec::new(),
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
    let config = walker.document(&document);
    let mut problems = walker.problems;
    // In file order, so the list reads top to bottom alongside the file.
    problems.sort_by_key(Problem::file_order);
    if problems.iter().any(|p| !p.is_warning()) {
        return Err(ConfigError::Invalid(problems));
    }
    match config {
        Some((global, route, inhibit_rules, receivers)) => Ok(NotifyConfig {
            global,
            route,
            inhibit_rules,
            receivers,
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

type Document = (
    GlobalConfig,
    RouteConfig,
    Vec<InhibitRuleConfig>,
    Vec<ReceiverConfig>,
);

struct Walker<'a> {
    file: &'a Path,
    positions: &'a Positions,
    problems: Vec<Problem>,
}

impl Walker<'_> {
    fn report(&mut self, severity: Severity, path: &str, message: impl Into<String>) {
        let problem = Problem::new(self.file, self.positions.entry(path), path, message);
        self.problems.push(match severity {
            Severity::Error => problem,
            Severity::Warning => problem.warning(),
        });
    }

    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.report(Severity::Error, path, message);
    }

    /// A mapping at `path`; `null` (an empty section) counts as empty.
    fn mapping<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Mapping> {
        match value {
            Value::Mapping(map) => Some(map),
            Value::Null => None,
            other => {
                self.error(path, format!("expected a mapping, found {}", kind(other)));
                None
            }
        }
    }

    /// Entries of a mapping with string keys; reports keys not in `known`.
    fn entries<'v>(
        &mut self,
        map: &'v Mapping,
        path: &str,
        known: &[&str],
    ) -> Vec<(String, &'v Value)> {
        let mut out = Vec::new();
        for (key, value) in map {
            let Some(key) = scalar_string(key) else {
                self.error(
                    path,
                    format!("expected field names, found a {} key", kind(key)),
                );
                continue;
            };
            if !known.contains(&key.as_str()) {
                self.error(
                    &key_path(path, &key),
                    format!(
                        "unknown field `{key}`; expected one of: {}",
                        known.join(", ")
                    ),
                );
                continue;
            }
            out.push((key, value));
        }
        out
    }

    fn string(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::Null => None,
            other => match scalar_string(other) {
                Some(s) => Some(s),
                None => {
                    self.error(path, format!("expected a string, found {}", kind(other)));
                    None
                }
            },
        }
    }

    fn bool(&mut self, value: &Value, path: &str) -> Option<bool> {
        match value {
            Value::Bool(b) => Some(*b),
            Value::Null => None,
            // Alertmanager reads YAML 1.1, where these words are booleans too.
            Value::String(s) if YAML11_TRUE.contains(&s.as_str()) => Some(true),
            Value::String(s) if YAML11_FALSE.contains(&s.as_str()) => Some(false),
            other => {
                self.error(
                    path,
                    format!("expected true or false, found {}", kind(other)),
                );
                None
            }
        }
    }

    fn duration(&mut self, value: &Value, path: &str) -> Option<Duration> {
        let text = self.string(value, path)?;
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(path, message);
                None
            }
        }
    }

    fn sequence<'v>(&mut self, value: &'v Value, path: &str) -> &'v [Value] {
        match value {
            Value::Sequence(items) => items,
            Value::Null => &[],
            other => {
                self.error(path, format!("expected a list, found {}", kind(other)));
                &[]
            }
        }
    }

    fn string_list(&mut self, value: &Value, path: &str) -> Vec<String> {
        let items = self.sequence(value, path);
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.string(item, &index_path(path, i)))
            .collect()
    }

    fn label_name_list(&mut self, value: &Value, path: &str) -> Vec<String> {
        let names = self.string_list(value, path);
        for (i, name) in names.iter().enumerate() {
            if !is_valid_label_name(name) {
                self.error(
                    &index_path(path, i),
                    format!(
                        "invalid label name {name:?}; label names match [a-zA-Z_][a-zA-Z0-9_]*"
                    ),
                );
            }
        }
        names
    }

    /// `match:` / `match_re:` style maps of label name → value.
    fn legacy_matchers(&mut self, value: &Value, path: &str, op: MatchOp) -> Vec<Matcher> {
        let Some(map) = self.mapping(value, path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in map {
            let Some(name) = scalar_string(key) else {
                self.error(
                    path,
                    format!("expected label names, found a {} key", kind(key)),
                );
                continue;
            };
            let field = key_path(path, &name);
            if !is_valid_label_name(&name) {
                self.error(
                    &field,
                    format!(
                        "invalid label name {name:?}; label names match [a-zA-Z_][a-zA-Z0-9_]*"
                    ),
                );
                continue;
            }
            let Some(text) = self.string(value, &field) else {
                continue;
            };
            match Matcher::new(name, op, text) {
                Ok(m) => out.push(m),
                Err(err) => self.error(&field, err.to_string()),
            }
        }
        out
    }

    /// A `matchers:` list: each entry holds one or more matchers.
    fn matcher_list(&mut self, value: &Value, path: &str) -> Vec<Matcher> {
        let items = self.sequence(value, path);
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = index_path(path, i);
            let Some(text) = self.string(item, &item_path) else {
                continue;
            };
            match matcher::parse_matchers(&text) {
                Ok(ms) => out.extend(ms),
                Err(err) => self.error(&item_path, err.to_string()),
            }
        }
        out
    }

    fn document(&mut self, document: &Value) -> Option<Document> {
        let known = [
            "global",
            "route",
            "inhibit_rules",
            "receivers",
            "templates",
            "mute_time_intervals",
            "time_intervals",
        ];
        let empty = Mapping::new();
        let map = self.mapping(document, "").unwrap_or(&empty);
        let mut global = GlobalConfig::default();
        let mut route = None;
        let mut inhibit_rules = Vec::new();
        let mut receivers = Vec::new();
        for (key, value) in self.entries(map, "", &known) {
            match key.as_str() {
                "global" => global = self.global(value),
                "route" => route = Some(value),
                "inhibit_rules" => {
                    let items = self.sequence(value, "inhibit_rules");
                    inhibit_rules = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.inhibit_rule(item, &index_path("inhibit_rules", i)))
                        .collect();
                }
                "receivers" => {
                    let items = self.sequence(value, "receivers");
                    receivers = items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, item)| self.receiver(item, &index_path("receivers", i)))
                        .collect();
                }
                "templates" => {
                    if !self.sequence(value, "templates").is_empty() {
                        self.error("templates", "notification templates are not supported by Vigil; remove `templates` (receivers format messages themselves)");
                    }
                }
                other => {
                    if !self.sequence(value, other).is_empty() {
                        self.error(other, format!("`{other}` is not supported by Vigil; remove it (use silences to mute alerts for a time)"));
                    }
                }
            }
        }
        self.check_receiver_defaults(&global, &receivers);
        let names = self.check_receiver_names(&receivers);
        let Some(route_value) = route else {
            self.error(
                "route",
                "no route provided; add a `route:` with at least a `receiver:`",
            );
            return None;
        };
        let route = self.route(route_value, "route");
        self.check_root(&route, route_value);
        self.check_route_receivers(&route, &names);
        Some((global, route, inhibit_rules, receivers))
    }

    fn global(&mut self, value: &Value) -> GlobalConfig {
        let mut global = GlobalConfig::default();
        let Some(map) = self.mapping(value, "global") else {
            return global;
        };
        let mut known = vec![
            "resolve_timeout",
            "http_config",
            "slack_api_url",
            "slack_api_url_file",
            "smtp_from",
            "smtp_hello",
            "smtp_smarthost",
            "smtp_auth_username",
            "smtp_auth_password",
            "smtp_auth_password_file",
            "smtp_auth_identity",
            "smtp_auth_secret",
            "smtp_auth_secret_file",
            "smtp_require_tls",
            "smtp_tls_config",
        ];
        known.extend(IGNORED_GLOBALS);
        for (key, value) in self.entries(map, "global", &known) {
            let path = key_path("global", &key);
            match key.as_str() {
                "resolve_timeout" => {
                    if let Some(d) = self.duration(value, &path) {
                        global.resolve_timeout = d;
                    }
                }
                "http_config" => global.http_config = Some(value.clone()),
                "smtp_tls_config" => global.smtp_tls_config = Some(value.clone()),
                "slack_api_url" => {
                    global.slack_api_url = self.string(value, &path);
                    if let Some(url) = &global.slack_api_url {
                        if let Err(message) = check_http_url(url) {
                            self.error(&path, message);
                        }
                    }
                }
                "slack_api_url_file" => {
                    global.slack_api_url_file = self
                        .string(value, &path)
                        .map(|p| resolve_relative(self.file, &p));
                }
                "smtp_from" => global.smtp_from = self.string(value, &path),
                "smtp_hello" => {
                    if let Some(hello) = self.string(value, &path) {
                        global.smtp_hello = hello;
                    }
                }
                "smtp_smarthost" => {
                    global.smtp_smarthost = self.string(value, &path).filter(|s| !s.is_empty());
                    if let Some(host) = &global.smtp_smarthost {
                        if let Err(message) = check_host_port(host) {
                            self.error(&path, message);
                        }
                    }
                }
                "smtp_auth_username" => global.smtp_auth_username = self.string(value, &path),
                "smtp_auth_password" => global.smtp_auth_password = self.string(value, &path),
                "smtp_auth_password_file" => {
                    global.smtp_auth_password_file = self
                        .string(value, &path)
                        .map(|p| resolve_relative(self.file, &p));
                }
                "smtp_auth_identity" => global.smtp_auth_identity = self.string(value, &path),
                "smtp_auth_secret" => global.smtp_auth_secret = self.string(value, &path),
                "smtp_auth_secret_file" => {
                    global.smtp_auth_secret_file = self
                        .string(value, &path)
                        .map(|p| resolve_relative(self.file, &p));
                }
                "smtp_require_tls" => {
                    if let Some(b) = self.bool(value, &path) {
                        global.smtp_require_tls = b;
                    }
                }
                ignored => self.report(
                    Severity::Warning,
                    &path,
                    format!("`{ignored}` is ignored: Vigil has no receiver that uses it"),
                ),
            }
        }
        let pairs = [
            (
                "slack_api_url",
                global.slack_api_url.is_some(),
                global.slack_api_url_file.is_some(),
            ),
            (
                "smtp_auth_password",
                global.smtp_auth_password.is_some(),
                global.smtp_auth_password_file.is_some(),
            ),
            (
                "smtp_auth_secret",
                global.smtp_auth_secret.is_some(),
                global.smtp_auth_secret_file.is_some(),
            ),
        ];
        for (name, inline, file) in pairs {
            if inline && file {
                self.error(
                    &key_path("global", name),
                    format!("at most one of {name} and {name}_file may be set; keep the _file one so the secret stays out of the config"),
                );
            }
        }
        global
    }

    fn route(&mut self, value: &Value, path: &str) -> RouteConfig {
        let mut route = RouteConfig {
            receiver: None,
            group_by: None,
            matchers: Vec::new(),
            continue_matching: false,
            group_wait: None,
            group_interval: None,
            repeat_interval: None,
            routes: Vec::new(),
            path: path.to_string(),
        };
        let Some(map) = self.mapping(value, path) else {
            return route;
        };
        let known = [
            "receiver",
            "group_by",
            "match",
            "match_re",
            "matchers",
            "continue",
            "routes",
            "group_wait",
            "group_interval",
            "repeat_interval",
            "mute_time_intervals",
            "active_time_intervals",
        ];
        for (key, value) in self.entries(map, path, &known) {
            let field = key_path(path, &key);
            match key.as_str() {
                "receiver" => route.receiver = self.string(value, &field).filter(|r| !r.is_empty()),
                "group_by" => route.group_by = self.group_by(value, &field),
                "match" => {
                    let ms = self.legacy_matchers(value, &field, MatchOp::Equal);
                    route.matchers.extend(ms);
                }
                "match_re" => {
                    let ms = self.legacy_matchers(value, &field, MatchOp::Regex);
                    route.matchers.extend(ms);
                }
                "matchers" => {
                    let ms = self.matcher_list(value, &field);
                    route.matchers.extend(ms);
                }
                "continue" => route.continue_matching = self.bool(value, &field).unwrap_or(false),
                "routes" => {
                    let items = self.sequence(value, &field);
                    route.routes = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.route(item, &index_path(&field, i)))
                        .collect();
                }
                "group_wait" => route.group_wait = self.duration(value, &field),
                "group_interval" => {
                    route.group_interval = self.duration(value, &field);
                    if route.group_interval == Some(Duration::ZERO) {
                        self.error(&field, "group_interval cannot be zero; use at least 1s");
                    }
                }
                "repeat_interval" => {
                    route.repeat_interval = self.duration(value, &field);
                    if route.repeat_interval == Some(Duration::ZERO) {
                        self.error(&field, "repeat_interval cannot be zero; use at least 1s");
                    }
                }
                other => {
                    if !self.sequence(value, &field).is_empty() {
                        self.error(&field, format!("`{other}` is not supported by Vigil; remove it (use silences to mute alerts for a time)"));
                    }
                }
            }
        }
        // Alertmanager's order (name, value, operator); it shows in route keys.
        route
            .matchers
            .sort_by(|a, b| (&a.name, &a.value, a.op).cmp(&(&b.name, &b.value, b.op)));
        route
    }

    fn group_by(&mut self, value: &Value, path: &str) -> Option<GroupBy> {
        let names = self.string_list(value, path);
        let all = names.iter().any(|n| n == "...");
        let mut seen: Vec<&str> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if name == "..." {
                continue;
            }
            let item = index_path(path, i);
            if !is_valid_label_name(name) {
                self.error(&item, format!("invalid label name {name:?} in group_by; label names match [a-zA-Z_][a-zA-Z0-9_]*, or use '...' for all labels"));
            } else if seen.contains(&name.as_str()) {
                self.error(
                    &item,
                    format!("duplicated label {name:?} in group_by; list each label once"),
                );
            }
            seen.push(name);
        }
        let labels: Vec<String> = names.iter().filter(|n| *n != "...").cloned().collect();
        if all && !labels.is_empty() {
            self.error(path, "cannot have wildcard group_by ('...') and other labels at the same time; use either ['...'] or a list of labels");
        }
        match (all, labels.is_empty()) {
            (true, _) => Some(GroupBy::All),
            // An empty list means unset, as in Alertmanager.
            (false, true) => None,
            (false, false) => Some(GroupBy::Labels(labels)),
        }
    }

    fn inhibit_rule(&mut self, value: &Value, path: &str) -> InhibitRuleConfig {
        let mut rule = InhibitRuleConfig {
            name: None,
            source_matchers: Vec::new(),
            target_matchers: Vec::new(),
            equal: Vec::new(),
        };
        let Some(map) = self.mapping(value, path) else {
            return rule;
        };
        let known = [
            "name",
            "source_match",
            "source_match_re",
            "source_matchers",
            "target_match",
            "target_match_re",
            "target_matchers",
            "equal",
        ];
        for (key, value) in self.entries(map, path, &known) {
            let field = key_path(path, &key);
            match key.as_str() {
                "name" => rule.name = self.string(value, &field),
                "source_match" => {
                    let ms = self.legacy_matchers(value, &field, MatchOp::Equal);
                    rule.source_matchers.extend(ms);
                }
                "source_match_re" => {
                    let ms = self.legacy_matchers(value, &field, MatchOp::Regex);
                    rule.source_matchers.extend(ms);
                }
                "source_matchers" => {
                    let ms = self.matcher_list(value, &field);
                    rule.source_matchers.extend(ms);
                }
                "target_match" => {
                    let ms = self.legacy_matchers(value, &field, MatchOp::Equal);
                    rule.target_matchers.extend(ms);
                }
                "target_match_re" => {
                    let ms = self.legacy_matchers(value, &field, MatchOp::Regex);
                    rule.target_matchers.extend(ms);
                }
                "target_matchers" => {
                    let ms = self.matcher_list(value, &field);
                    rule.target_matchers.extend(ms);
                }
                _ => rule.equal = self.label_name_list(value, &field),
            }
        }
        rule
    }

    fn receiver(&mut self, value: &Value, path: &str) -> Option<ReceiverConfig> {
        let map = self.mapping(value, path)?;
        let mut known = vec!["name"];
        known.extend(SUPPORTED_INTEGRATIONS);
        known.extend(UNSUPPORTED_INTEGRATIONS);
        let mut receiver = ReceiverConfig {
            name: String::new(),
            slack_configs: Vec::new(),
            email_configs: Vec::new(),
            webhook_configs: Vec::new(),
            console_configs: Vec::new(),
            location: self.positions.entry(path),
        };
        for (key, value) in self.entries(map, path, &known) {
            let field = key_path(path, &key);
            if key == "name" {
                receiver.name = self.string(value, &field).unwrap_or_default();
                continue;
            }
            let Some(section_kind) = SUPPORTED_INTEGRATIONS.iter().find(|k| **k == key) else {
                self.error(
                    &field,
                    format!(
                        "receiver kind `{key}` is not supported by Vigil; use one of {}",
                        SUPPORTED_INTEGRATIONS.join(", ")
                    ),
                );
                continue;
            };
            let items = self.sequence(value, &field);
            let mut sections = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let item_path = index_path(&field, i);
                match item {
                    Value::Mapping(_) | Value::Null => sections.push(IntegrationConfig {
                        kind: section_kind,
                        value: if item.is_null() {
                            Value::Mapping(Mapping::new())
                        } else {
                            item.clone()
                        },
                        location: self.positions.entry(&item_path),
                        path: item_path,
                    }),
                    other => self.error(
                        &item_path,
                        format!("expected a mapping, found {}", kind(other)),
                    ),
                }
            }
            match *section_kind {
                "slack_configs" => receiver.slack_configs = sections,
                "email_configs" => receiver.email_configs = sections,
                "webhook_configs" => receiver.webhook_configs = sections,
                _ => receiver.console_configs = sections,
            }
        }
        if receiver.name.is_empty() {
            self.error(path, "receiver has no name; add `name:`");
            return None;
        }
        Some(receiver)
    }

    /// Alertmanager refuses e-mail and Slack integrations that get no
    /// server, sender or URL from either themselves or `global`.
    fn check_receiver_defaults(&mut self, global: &GlobalConfig, receivers: &[ReceiverConfig]) {
        for receiver in receivers {
            for email in &receiver.email_configs {
                if !has_field(&email.value, "smarthost") && global.smtp_smarthost.is_none() {
                    self.error(
                        &email.path,
                        "no SMTP smarthost: set `smarthost` here or `global.smtp_smarthost`",
                    );
                }
                if !has_field(&email.value, "from") && global.smtp_from.is_none() {
                    self.error(
                        &email.path,
                        "no sender: set `from` here or `global.smtp_from`",
                    );
                }
            }
            for slack in &receiver.slack_configs {
                let own =
                    has_field(&slack.value, "api_url") || has_field(&slack.value, "api_url_file");
                if !own && global.slack_api_url.is_none() && global.slack_api_url_file.is_none() {
                    self.error(&slack.path, "no Slack API URL: set `api_url`/`api_url_file` here or `global.slack_api_url`/`global.slack_api_url_file`");
                }
            }
        }
    }

    fn check_receiver_names(&mut self, receivers: &[ReceiverConfig]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (i, receiver) in receivers.iter().enumerate() {
            if names.contains(&receiver.name) {
                self.error(
                    &key_path(&index_path("receivers", i), "name"),
                    format!(
                        "receiver name {:?} is not unique; rename one of them",
                        receiver.name
                    ),
                );
            } else {
                names.push(receiver.name.clone());
            }
        }
        names
    }

    fn check_root(&mut self, root: &RouteConfig, value: &Value) {
        if root.receiver.is_none() {
            self.error("route", "the root route must name a default `receiver`");
        }
        let has = |key: &str| value.get(key).is_some_and(|v| !v.is_null());
        for key in ["match", "match_re", "matchers"] {
            if has(key) {
                self.error(
                    &key_path("route", key),
                    "the root route must not have matchers: it receives every alert; move them to a child route",
                );
            }
        }
        if root.continue_matching {
            self.error("route.continue", "the root route cannot have `continue`");
        }
    }

    fn check_route_receivers(&mut self, route: &RouteConfig, names: &[String]) {
        if let Some(receiver) = &route.receiver {
            if !names.contains(receiver) {
                self.error(
                    &key_path(&route.path, "receiver"),
                    format!("undefined receiver {receiver:?} used in route; define it under `receivers:`"),
                );
            }
        }
        for child in &route.routes {
            self.check_route_receivers(child, names);
        }
    }
}

fn has_field(value: &Value, key: &str) -> bool {
    value
        .get(key)
        .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
}

fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("URL {url:?} must start with http:// or https://"))?;
    if rest.split(['/', '?', '#']).next().unwrap_or("").is_empty() {
        return Err(format!("URL {url:?} has no host"));
    }
    Ok(())
}

fn check_host_port(value: &str) -> Result<(), String> {
    match value.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !port.is_empty() && port.parse::<u16>().is_ok() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{value:?} is not host:port; write e.g. smtp.example.org:587"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> NotifyConfig {
        match parse(text, Path::new("notify.yaml")) {
            Ok(config) => config,
            Err(err) => panic!("config rejected: {err}"),
        }
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text, Path::new("notify.yaml")) {
            Ok(_) => panic!("config accepted"),
            Err(ConfigError::Invalid(problems)) => problems,
            Err(err) => panic!("unexpected error {err}"),
        }
    }

    #[test]
    fn durations_use_prometheus_notation() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86400)));
        assert!(parse_duration("30m1h").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn minimal_config_gets_alertmanager_defaults() {
        let config = parse_ok("route: {receiver: r}\nreceivers: [{name: r}]\n");
        assert_eq!(config.global.resolve_timeout, DEFAULT_RESOLVE_TIMEOUT);
        assert_eq!(config.global.smtp_hello, "localhost");
        assert!(config.global.smtp_require_tls);
        assert_eq!(config.route.receiver.as_deref(), Some("r"));
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_line_and_field() {
        let text = "\
route:
  receiver: missing
  group_wait: soon
  routes:
    - matchers: ['a=~\"(\"']
      receiver: r
      colour: blue
receivers:
  - name: r
  - name: r
    pagerduty_configs: [{routing_key: x}]
";
        let problems = problems(text);
        let rendered: Vec<String> = problems.iter().map(Problem::to_string).collect();
        let expect = [
            "notify.yaml:3:3: route.group_wait: invalid duration \"soon\"",
            "notify.yaml:5:18: route.routes[0].matchers[0]: invalid regular expression",
            "notify.yaml:7:7: route.routes[0].colour: unknown field `colour`",
            "notify.yaml:10:5: receivers[1].name: receiver name \"r\" is not unique",
            "notify.yaml:11:5: receivers[1].pagerduty_configs: receiver kind `pagerduty_configs` is not supported",
            "notify.yaml:2:3: route.receiver: undefined receiver \"missing\"",
        ];
        for want in expect {
            assert!(
                rendered.iter().any(|r| r.starts_with(want)),
                "missing {want:?} in {rendered:#?}"
            );
        }
        assert_eq!(problems.len(), expect.len(), "{rendered:#?}");
    }

    #[test]
    fn root_route_with_matchers_or_continue_is_rejected() {
        let problems = problems(
            "route: {receiver: r, match: {a: b}, continue: true}\nreceivers: [{name: r}]\n",
        );
        assert_eq!(problems.len(), 2);
        assert!(problems[0].message.contains("must not have matchers"));
        assert!(problems[1].message.contains("continue"));
    }

    #[test]
    fn group_by_wildcard_cannot_be_mixed_with_labels() {
        let problems =
            problems("route: {receiver: r, group_by: ['...', a, b, b]}\nreceivers: [{name: r}]\n");
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages
            .iter()
            .any(|m| m.contains("duplicated label \"b\"")));
        assert!(messages.iter().any(|m| m.contains("wildcard")));
    }

    #[test]
    fn unsupported_sections_are_errors_and_foreign_globals_are_warnings() {
        let problems = problems("global: {pagerduty_url: 'https://x'}\ntemplates: [a.tmpl]\nroute: {receiver: r, routes: [{receiver: r, mute_time_intervals: [night]}]}\nreceivers: [{name: r}]\n");
        let errors: Vec<&Problem> = problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .collect();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "templates");
        assert_eq!(errors[1].field, "route.routes[0].mute_time_intervals");
        let config = parse_ok(
            "global: {pagerduty_url: 'https://x'}\nroute: {receiver: r}\nreceivers: [{name: r}]\n",
        );
        assert_eq!(config.warnings.len(), 1);
        assert_eq!(config.warnings[0].field, "global.pagerduty_url");
    }

    #[test]
    fn legacy_match_and_matchers_combine_and_accept_numbers() {
        let config = parse_ok("route:\n  receiver: r\n  routes:\n    - receiver: r\n      match: {code: 500}\n      match_re: {sev: 'crit|warn'}\n      matchers: ['team=\"a\", env!=prod']\nreceivers: [{name: r}]\n");
        let names: Vec<(&str, MatchOp, &str)> = config.route.routes[0]
            .matchers
            .iter()
            .map(|m| (m.name.as_str(), m.op, m.value.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("code", MatchOp::Equal, "500"),
                ("env", MatchOp::NotEqual, "prod"),
                ("sev", MatchOp::Regex, "crit|warn"),
                ("team", MatchOp::Equal, "a"),
            ]
        );
    }

    #[test]
    fn email_and_slack_need_a_server_from_themselves_or_global() {
        let problems = problems("route: {receiver: r}\nreceivers:\n  - name: r\n    email_configs: [{to: a@b.c}]\n    slack_configs: [{channel: '#x'}]\n");
        assert_eq!(problems.len(), 3, "{problems:#?}");
        let config = parse_ok("global: {smtp_smarthost: 'mail:25', smtp_from: a@b.c, slack_api_url_file: secrets/slack}\nroute: {receiver: r}\nreceivers:\n  - name: r\n    email_configs: [{to: a@b.c}]\n    slack_configs: [{channel: '#x'}]\n");
        assert_eq!(
            config.global.slack_api_url_file,
            Some(PathBuf::from("secrets/slack"))
        );
        let receiver = config.receiver("r").unwrap();
        assert_eq!(
            receiver.email_configs[0].path,
            "receivers[0].email_configs[0]"
        );
        assert!(!receiver.sends_resolved());
    }

    #[test]
    fn secret_files_are_resolved_against_the_config_folder() {
        let config = parse(
            "global: {smtp_auth_password_file: pw}\nroute: {receiver: r}\nreceivers: [{name: r}]\n",
            Path::new("/etc/vigil/notify.yaml"),
        )
        .unwrap();
        assert_eq!(
            config.global.smtp_auth_password_file,
            Some(PathBuf::from("/etc/vigil/pw"))
        );
    }

    #[test]
    fn anchors_and_merge_keys_are_applied() {
        let config = parse_ok("route:\n  receiver: r\n  routes:\n    - &team {receiver: r, group_wait: 1m, matchers: [a=c]}\n    - <<: *team\n      matchers: [a=b]\nreceivers: [{name: r}]\n");
        let merged = &config.route.routes[1];
        assert_eq!(merged.group_wait, Some(Duration::from_secs(60)));
        assert_eq!(
            merged.matchers[0].value, "b",
            "own keys win over merged ones"
        );
    }

    #[test]
    fn missing_route_is_reported() {
        let problems = problems("receivers: [{name: r}]\n");
        assert_eq!(problems[0].field, "route");
    }

    #[test]
    fn yaml_syntax_errors_carry_a_location() {
        let problems = problems("route:\n  receiver: [\n");
        assert!(problems[0].position().is_some());
        assert!(problems[0].message.starts_with("invalid YAML"));
    }
}
