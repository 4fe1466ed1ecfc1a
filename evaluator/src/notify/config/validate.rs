//! The validation pass over the [`raw`](super::raw) sections: every value
//! read and checked, each problem reported at its entry with its field path
//! (all of them, not the first), producing the validated types; the checks
//! that span sections are in [`checks`](super::checks).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use vigil_common::yaml_positions::{
    child_index as index_path, child_key as key_path, PositionIndex as Positions,
};

use super::raw::{self, RawDocument, RawGlobal, RawInhibitRule, RawReceiver, RawRoute};
use super::{
    parse_duration, resolve_relative, GlobalConfig, GroupBy, InhibitRuleConfig, IntegrationConfig,
    Problem, ReceiverConfig, RouteConfig, Severity,
};
use crate::notify::matcher::{self, is_valid_label_name, MatchOp, Matcher};
use crate::notify::receivers::registry::sections;

/// Alertmanager receiver kinds Vigil cannot deliver to.
const UNSUPPORTED_INTEGRATIONS: [&str; 4] = [
    "incidentio_configs",
    "jira_configs",
    "mattermost_configs",
    "rocketchat_configs",
];

/// Global settings of receiver kinds Vigil does not have.
const IGNORED_GLOBALS: [&str; 6] = [
    "jira_api_url",
    "rocketchat_api_url",
    "rocketchat_token",
    "rocketchat_token_file",
    "rocketchat_token_id",
    "rocketchat_token_id_file",
];

const YAML11_TRUE: [&str; 8] = ["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"];
const YAML11_FALSE: [&str; 8] = ["n", "N", "no", "No", "NO", "off", "Off", "OFF"];

pub(super) type Document = (
    GlobalConfig,
    RouteConfig,
    Vec<InhibitRuleConfig>,
    Vec<ReceiverConfig>,
    crate::notify::templates::NotifyTemplates,
);

pub(super) struct Validator<'a> {
    pub(super) file: &'a Path,
    pub(super) positions: &'a Positions,
    pub(super) problems: Vec<Problem>,
    /// The time intervals routes may name (read before the routes).
    pub(super) defined_intervals: super::time_intervals::Defined,
}

impl Validator<'_> {
    pub(super) fn report(&mut self, severity: Severity, path: &str, message: impl Into<String>) {
        let problem = Problem::new(self.file, self.positions.entry(path), path, message);
        self.problems.push(match severity {
            Severity::Error => problem,
            Severity::Warning => problem.warning(),
        });
    }

    pub(super) fn error(&mut self, path: &str, message: impl Into<String>) {
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

    /// The section at `path` as its raw struct `T` (`null` counts as
    /// absent). Keys `T` does not declare are reported, except the `open`
    /// ones, which are returned in file order for the caller to read.
    fn section<T: DeserializeOwned>(
        &mut self,
        value: &Value,
        path: &str,
        open: &[&str],
    ) -> Option<(T, Mapping)> {
        let map = self.mapping(value, path)?;
        let fields = raw::fields::<T>();
        let mut declared = Mapping::new();
        let mut rest = Mapping::new();
        for (key, value) in self.string_keys(map, path, "field names") {
            if fields.contains(&key.as_str()) {
                declared.insert(Value::String(key), value.clone());
            } else if open.contains(&key.as_str()) {
                rest.insert(Value::String(key), value.clone());
            } else {
                let expected: Vec<&str> = fields.iter().chain(open).copied().collect();
                self.error(
                    &key_path(path, &key),
                    format!(
                        "unknown field `{key}`; expected one of: {}",
                        expected.join(", ")
                    ),
                );
            }
        }
        match serde_yaml::from_value(Value::Mapping(declared)) {
            Ok(raw) => Some((raw, rest)),
            Err(err) => {
                self.error(path, err.to_string());
                None
            }
        }
    }

    /// The entries of `map` with their keys as text; a key that is not a
    /// scalar is reported as not being `what` (field names, label names).
    fn string_keys<'v>(
        &mut self,
        map: &'v Mapping,
        path: &str,
        what: &str,
    ) -> Vec<(String, &'v Value)> {
        let mut out = Vec::new();
        for (key, value) in map {
            match scalar_string(key) {
                Some(key) => out.push((key, value)),
                None => self.error(path, format!("expected {what}, found a {} key", kind(key))),
            }
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

    pub(super) fn sequence<'v>(&mut self, value: &'v Value, path: &str) -> &'v [Value] {
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
        for (name, value) in self.string_keys(map, path, "label names") {
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
        let raw: RawDocument = self.raw(document, "");
        let global = match &raw.global {
            Some(value) => self.global(value),
            None => GlobalConfig::default(),
        };
        let inhibit_rules = match &raw.inhibit_rules {
            Some(value) => self
                .sequence(value, "inhibit_rules")
                .iter()
                .enumerate()
                .map(|(i, item)| self.inhibit_rule(item, &index_path("inhibit_rules", i)))
                .collect(),
            None => Vec::new(),
        };
        let receivers: Vec<ReceiverConfig> = match &raw.receivers {
            Some(value) => self
                .sequence(value, "receivers")
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.receiver(item, &index_path("receivers", i)))
                .collect(),
            None => Vec::new(),
        };
        self.defined_intervals = self.time_intervals([
            ("time_intervals", raw.time_intervals.as_ref()),
            ("mute_time_intervals", raw.mute_time_intervals.as_ref()),
        ]);
        let templates = self.templates(raw.templates.as_ref());
        self.check_receiver_defaults(&global, &receivers);
        let names = self.check_receiver_names(&receivers);
        let Some(route_value) = &raw.route else {
            self.error(
                "route",
                "no route provided; add a `route:` with at least a `receiver:`",
            );
            return None;
        };
        let root: RawRoute = self.raw(route_value, "route");
        let route = self.route_from(&root, "route");
        self.check_root(&route, &root);
        self.check_route_receivers(&route, &names);
        Some((global, route, inhibit_rules, receivers, templates))
    }

    /// A section with no open keys, empty when absent or unreadable.
    fn raw<T: DeserializeOwned + Default>(&mut self, value: &Value, path: &str) -> T {
        self.section(value, path, &[])
            .map(|(raw, _)| raw)
            .unwrap_or_default()
    }

    fn global(&mut self, value: &Value) -> GlobalConfig {
        let mut global = GlobalConfig::default();
        let Some((raw, ignored)) = self.section::<RawGlobal>(value, "global", &IGNORED_GLOBALS)
        else {
            return global;
        };
        let field = |key: &str| key_path("global", key);
        if let Some(d) = raw
            .resolve_timeout
            .and_then(|v| self.duration(&v, &field("resolve_timeout")))
        {
            global.resolve_timeout = d;
        }
        global.http_config = raw.http_config;
        global.smtp_tls_config = raw.smtp_tls_config;
        if let Some(value) = &raw.slack_api_url {
            let path = field("slack_api_url");
            global.slack_api_url = self.string(value, &path);
            if let Some(url) = &global.slack_api_url {
                if let Err(message) = check_http_url(url) {
                    self.error(&path, message);
                }
            }
        }
        global.slack_api_url_file = self.file_path(raw.slack_api_url_file, "slack_api_url_file");
        for (value, key, target) in [
            (
                &raw.pagerduty_url,
                "pagerduty_url",
                &mut global.pagerduty_url,
            ),
            (
                &raw.telegram_api_url,
                "telegram_api_url",
                &mut global.telegram_api_url,
            ),
            (
                &raw.webex_api_url,
                "webex_api_url",
                &mut global.webex_api_url,
            ),
            (
                &raw.victorops_api_url,
                "victorops_api_url",
                &mut global.victorops_api_url,
            ),
            (
                &raw.opsgenie_api_url,
                "opsgenie_api_url",
                &mut global.opsgenie_api_url,
            ),
            (
                &raw.wechat_api_url,
                "wechat_api_url",
                &mut global.wechat_api_url,
            ),
        ] {
            let path = field(key);
            if let Some(url) = value.as_ref().and_then(|v| self.string(v, &path)) {
                match check_http_url(&url) {
                    Ok(()) => *target = url,
                    Err(message) => self.error(&path, message),
                }
            }
        }
        global.victorops_api_key = self.global_string(raw.victorops_api_key, "victorops_api_key");
        global.victorops_api_key_file =
            self.file_path(raw.victorops_api_key_file, "victorops_api_key_file");
        global.opsgenie_api_key = self.global_string(raw.opsgenie_api_key, "opsgenie_api_key");
        global.opsgenie_api_key_file =
            self.file_path(raw.opsgenie_api_key_file, "opsgenie_api_key_file");
        global.wechat_api_secret = self.global_string(raw.wechat_api_secret, "wechat_api_secret");
        global.wechat_api_corp_id =
            self.global_string(raw.wechat_api_corp_id, "wechat_api_corp_id");
        global.smtp_from = self.global_string(raw.smtp_from, "smtp_from");
        if let Some(hello) = self.global_string(raw.smtp_hello, "smtp_hello") {
            global.smtp_hello = hello;
        }
        if let Some(value) = &raw.smtp_smarthost {
            let path = field("smtp_smarthost");
            global.smtp_smarthost = self.string(value, &path).filter(|s| !s.is_empty());
            if let Some(host) = &global.smtp_smarthost {
                if let Err(message) = check_host_port(host) {
                    self.error(&path, message);
                }
            }
        }
        global.smtp_auth_username =
            self.global_string(raw.smtp_auth_username, "smtp_auth_username");
        global.smtp_auth_password =
            self.global_string(raw.smtp_auth_password, "smtp_auth_password");
        global.smtp_auth_password_file =
            self.file_path(raw.smtp_auth_password_file, "smtp_auth_password_file");
        global.smtp_auth_identity =
            self.global_string(raw.smtp_auth_identity, "smtp_auth_identity");
        global.smtp_auth_secret = self.global_string(raw.smtp_auth_secret, "smtp_auth_secret");
        global.smtp_auth_secret_file =
            self.file_path(raw.smtp_auth_secret_file, "smtp_auth_secret_file");
        if let Some(b) = raw
            .smtp_require_tls
            .and_then(|v| self.bool(&v, &field("smtp_require_tls")))
        {
            global.smtp_require_tls = b;
        }
        for key in ignored.keys().filter_map(Value::as_str) {
            self.report(
                Severity::Warning,
                &field(key),
                format!("`{key}` is ignored: Vigil has no receiver that uses it"),
            );
        }
        self.check_secret_pairs(&global);
        global
    }

    /// A string setting of `global`.
    fn global_string(&mut self, value: Option<Value>, key: &str) -> Option<String> {
        self.string(&value?, &key_path("global", key))
    }

    /// A `*_file` setting of `global`, resolved against the config's folder.
    fn file_path(&mut self, value: Option<Value>, key: &str) -> Option<PathBuf> {
        let path = self.global_string(value, key)?;
        Some(resolve_relative(self.file, &path))
    }

    fn route(&mut self, value: &Value, path: &str) -> RouteConfig {
        let raw: RawRoute = self.raw(value, path);
        self.route_from(&raw, path)
    }

    fn route_from(&mut self, raw: &RawRoute, path: &str) -> RouteConfig {
        let field = |key: &str| key_path(path, key);
        let mut route = RouteConfig {
            receiver: None,
            group_by: None,
            matchers: Vec::new(),
            continue_matching: false,
            group_wait: None,
            group_interval: None,
            repeat_interval: None,
            routes: Vec::new(),
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            path: path.to_string(),
        };
        if let Some(value) = &raw.receiver {
            route.receiver = self
                .string(value, &field("receiver"))
                .filter(|r| !r.is_empty());
        }
        if let Some(value) = &raw.group_by {
            route.group_by = self.group_by(value, &field("group_by"));
        }
        route.matchers = self.matchers([&raw.match_equal, &raw.match_re, &raw.matchers], path, "");
        if let Some(value) = &raw.continue_matching {
            route.continue_matching = self.bool(value, &field("continue")).unwrap_or(false);
        }
        if let Some(value) = &raw.routes {
            let routes_path = field("routes");
            route.routes = self
                .sequence(value, &routes_path)
                .iter()
                .enumerate()
                .map(|(i, item)| self.route(item, &index_path(&routes_path, i)))
                .collect();
        }
        if let Some(value) = &raw.group_wait {
            route.group_wait = self.duration(value, &field("group_wait"));
        }
        route.group_interval = self.interval(raw.group_interval.as_ref(), path, "group_interval");
        route.repeat_interval =
            self.interval(raw.repeat_interval.as_ref(), path, "repeat_interval");
        let defined = std::mem::take(&mut self.defined_intervals);
        route.mute_time_intervals = self.route_time_intervals(
            raw.mute_time_intervals.as_ref(),
            path,
            "mute_time_intervals",
            &defined,
        );
        route.active_time_intervals = self.route_time_intervals(
            raw.active_time_intervals.as_ref(),
            path,
            "active_time_intervals",
            &defined,
        );
        self.defined_intervals = defined;
        // Alertmanager's order (name, value, operator); it shows in route keys.
        route
            .matchers
            .sort_by(|a, b| (&a.name, &a.value, a.op).cmp(&(&b.name, &b.value, b.op)));
        route
    }

    /// A route's `group_interval` or `repeat_interval`: a duration that is
    /// not zero.
    fn interval(&mut self, value: Option<&Value>, path: &str, key: &str) -> Option<Duration> {
        let field = key_path(path, key);
        let interval = self.duration(value?, &field)?;
        if interval.is_zero() {
            self.error(&field, format!("{key} cannot be zero; use at least 1s"));
        }
        Some(interval)
    }

    /// The matchers of a route or one side of an inhibit rule, from its
    /// `match`-style map, its `match_re`-style map and its `matchers` list
    /// (each key behind `prefix`: `source_`, `target_` in inhibit rules),
    /// combined in the order they are written (the order the inhibitor
    /// compares rules' matchers in).
    fn matchers(
        &mut self,
        [equal, regex, list]: [&Option<Value>; 3],
        path: &str,
        prefix: &str,
    ) -> Vec<Matcher> {
        let keys = ["match", "match_re", "matchers"].map(|key| format!("{prefix}{key}"));
        let mut written: Vec<(String, &Value, Option<MatchOp>)> = [
            (equal, Some(MatchOp::Equal)),
            (regex, Some(MatchOp::Regex)),
            (list, None),
        ]
        .into_iter()
        .zip(keys)
        .filter_map(|((value, op), key)| Some((key_path(path, &key), value.as_ref()?, op)))
        .collect();
        written.sort_by_key(|(field, ..)| self.positions.key(field).map(|at| (at.line, at.column)));
        let mut out = Vec::new();
        for (field, value, op) in written {
            match op {
                Some(op) => out.extend(self.legacy_matchers(value, &field, op)),
                None => out.extend(self.matcher_list(value, &field)),
            }
        }
        out
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
        let raw: RawInhibitRule = self.raw(value, path);
        let name = raw
            .name
            .as_ref()
            .and_then(|value| self.string(value, &key_path(path, "name")));
        let source_matchers = self.matchers(
            [
                &raw.source_match,
                &raw.source_match_re,
                &raw.source_matchers,
            ],
            path,
            "source_",
        );
        let target_matchers = self.matchers(
            [
                &raw.target_match,
                &raw.target_match_re,
                &raw.target_matchers,
            ],
            path,
            "target_",
        );
        let equal = match &raw.equal {
            Some(value) => self.label_name_list(value, &key_path(path, "equal")),
            None => Vec::new(),
        };
        InhibitRuleConfig {
            name,
            source_matchers,
            target_matchers,
            equal,
        }
    }

    fn receiver(&mut self, value: &Value, path: &str) -> Option<ReceiverConfig> {
        let supported = sections();
        let mut open = supported.to_vec();
        open.extend(UNSUPPORTED_INTEGRATIONS);
        let (raw, kinds) = self.section::<RawReceiver>(value, path, &open)?;
        let mut receiver = ReceiverConfig {
            name: String::new(),
            integrations: Vec::new(),
            location: self.positions.entry(path),
        };
        if let Some(value) = &raw.name {
            receiver.name = self
                .string(value, &key_path(path, "name"))
                .unwrap_or_default();
        }
        for (key, value) in &kinds {
            let key = key.as_str().unwrap_or_default();
            let field = key_path(path, key);
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
