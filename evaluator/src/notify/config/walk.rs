//! The walk over the notification config's YAML: every section read by
//! hand over its list of known keys, each problem reported at its entry with
//! its field path, and the checks that span sections (receiver names, the
//! root route, routes naming receivers).

use std::path::Path;
use std::time::Duration;

use serde_yaml::{Mapping, Value};
use vigil_common::yaml_positions::{
    child_index as index_path, child_key as key_path, PositionIndex as Positions,
};

use super::{
    parse_duration, resolve_relative, GlobalConfig, GroupBy, InhibitRuleConfig, IntegrationConfig,
    Problem, ReceiverConfig, RouteConfig, Severity,
};
use crate::notify::matcher::{self, is_valid_label_name, MatchOp, Matcher};
use crate::notify::receivers::registry::sections;

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

pub(super) type Document = (
    GlobalConfig,
    RouteConfig,
    Vec<InhibitRuleConfig>,
    Vec<ReceiverConfig>,
);

pub(super) struct Walker<'a> {
    pub(super) file: &'a Path,
    pub(super) positions: &'a Positions,
    pub(super) problems: Vec<Problem>,
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

    pub(super) fn document(&mut self, document: &Value) -> Option<Document> {
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
        let supported = sections();
        known.extend(supported);
        known.extend(UNSUPPORTED_INTEGRATIONS);
        let mut receiver = ReceiverConfig {
            name: String::new(),
            integrations: Vec::new(),
            location: self.positions.entry(path),
        };
        for (key, value) in self.entries(map, path, &known) {
            let field = key_path(path, &key);
            if key == "name" {
                receiver.name = self.string(value, &field).unwrap_or_default();
                continue;
            }
            let Some(section_kind) = supported.iter().find(|k| **k == key) else {
                self.error(
                    &field,
                    format!(
                        "receiver kind `{key}` is not supported by Vigil; use one of {}",
                        supported.join(", ")
                    ),
                );
                continue;
            };
            let items = self.sequence(value, &field);
            for (i, item) in items.iter().enumerate() {
                let item_path = index_path(&field, i);
                match item {
                    Value::Mapping(_) | Value::Null => {
                        receiver.integrations.push(IntegrationConfig {
                            kind: section_kind,
                            value: if item.is_null() {
                                Value::Mapping(Mapping::new())
                            } else {
                                item.clone()
                            },
                            location: self.positions.entry(&item_path),
                            path: item_path,
                        })
                    }
                    other => self.error(
                        &item_path,
                        format!("expected a mapping, found {}", kind(other)),
                    ),
                }
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
            for email in receiver.section("email_configs") {
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
            for slack in receiver.section("slack_configs") {
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
