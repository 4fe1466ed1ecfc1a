//! The validation pass: turns the [`raw`](super::raw) file into a
//! [`Config`], applying [`defaults`](super::defaults) and collecting every
//! problem instead of stopping at the first.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use super::raw::{
    check, unknown_field, Checked, RawBusiness, RawConfig, RawHttp, RawMetric, RawProbe,
};
use super::{
    defaults, BusinessConfig, Config, HttpLimits, IngestToken, MetricConfig, ProbeConfig, Problem,
};
use crate::probe::{ExpectError, Expectation, ProbeTarget, TargetError};
use vigil_common::duration::{format_duration, parse_duration};
use vigil_common::yaml_positions::{child_index, child_key, yaml_error, PositionIndex};

/// Methods a probe may use.
const PROBE_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Metric names, and name prefixes, that the exporter itself or the
/// Prometheus server produce; a business metric with such a name would
/// collide with (or be mistaken for) a built-in one.
const RESERVED_METRIC_NAMES: [&str; 1] = ["up"];
const RESERVED_METRIC_PREFIXES: [&str; 6] = [
    "http_request",
    "http_response",
    "probe_",
    "process_",
    "scrape_",
    "vigil_",
];

/// Label names a business metric may not declare: Prometheus attaches `job`
/// and `instance` at scrape time, `le` and `quantile` belong to histograms
/// and summaries, and names starting with `__` are reserved for internal use.
const RESERVED_LABEL_NAMES: [&str; 4] = ["job", "instance", "le", "quantile"];

pub(super) fn validate(
    text: &str,
    file: &Path,
    env_token: Option<&str>,
) -> Result<Config, Vec<Problem>> {
    let mut validator = Validator {
        file,
        text,
        index: PositionIndex::build(text),
        problems: Vec::new(),
    };
    let config = validator.config(text, env_token);
    // Report in file order, the order a reader fixes them in.
    validator.problems.sort_by_key(Problem::file_order);
    match config {
        Some(config) if validator.problems.is_empty() => Ok(config),
        _ => Err(validator.problems),
    }
}

struct Validator<'a> {
    file: &'a Path,
    text: &'a str,
    index: PositionIndex,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    /// Records a problem with the value at `field`.
    fn problem(&mut self, field: &str, message: impl Into<String>) {
        let position = self.index.value(field);
        self.problems
            .push(Problem::new(self.file, position, field, message));
    }

    /// Records a problem with the `expect` expression at `field` of the
    /// probe `name`. A malformed expression is pointed at the column of the
    /// offending token when the YAML scalar is written on one line without
    /// escapes (the usual case); otherwise at the start of the value, and the
    /// message's "at character N" still locates it.
    fn expect_problem(&mut self, field: &str, name: Option<&str>, error: &ExpectError) {
        let start = self.index.value_exact(field);
        let position = match (error, start) {
            (
                ExpectError::Malformed {
                    source_text, at, ..
                },
                Some(start),
            ) => column_in_scalar(self.text, start, source_text, *at).or(Some(start)),
            (_, start) => start.or_else(|| self.index.value(field)),
        };
        let probe = name.map_or_else(|| "this probe".to_owned(), |name| format!("probe {name:?}"));
        let message = format!("{probe}: {error}");
        self.problems
            .push(Problem::new(self.file, position, field, message));
    }

    /// Records a problem with the key at `field` (a bad map key).
    fn key_problem(&mut self, field: &str, message: impl Into<String>) {
        let position = self.index.key(field);
        self.problems
            .push(Problem::new(self.file, position, field, message));
    }

    /// Records a deserialisation error found at `inner` below `base`.
    fn serde_problem(&mut self, base: &str, inner: &str, message: &str) {
        let mut field = format!("{base}{inner}");
        if field.starts_with('.') {
            field.remove(0);
        }
        // For an unknown key, point at the key itself, where the typo is.
        // serde_path_to_error usually ends the path with the key already.
        let unknown = unknown_field(message);
        let (field, position) = match unknown {
            Some(key) => {
                let suffix = format!(".{key}");
                let field = if field == key || field.ends_with(&suffix) {
                    field
                } else {
                    child_key(&field, key)
                };
                let position = self.index.key(&field);
                (field, position)
            }
            None => {
                let position = self.index.value(&field);
                (field, position)
            }
        };
        self.problems
            .push(Problem::new(self.file, position, field, message));
    }

    /// The value of a [`Checked`] field, after recording its errors.
    fn take<T>(&mut self, checked: Option<Checked<T>>, field: &str) -> Option<T> {
        let checked = checked?;
        for error in &checked.errors {
            self.serde_problem(field, &error.path, &error.message);
        }
        checked.value
    }

    /// `count` of the value taken from `checked` at `field`.
    fn count_at(
        &mut self,
        checked: Option<Checked<i64>>,
        field: &str,
        default: usize,
        names_default: bool,
    ) -> usize {
        let value = self.take(checked, field);
        self.count(value, field, default, names_default)
    }

    /// The count `value` at `field`, or `default` when it is absent or
    /// below 1; the latter is a problem, whose message names the default
    /// when `names_default`.
    fn count(
        &mut self,
        value: Option<i64>,
        field: &str,
        default: usize,
        names_default: bool,
    ) -> usize {
        match value {
            None => default,
            Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            Some(n) => {
                let named = if names_default {
                    format!(" (default {default})")
                } else {
                    String::new()
                };
                self.problem(
                    field,
                    format!("{n} is too small; expected a whole number of at least 1{named}"),
                );
                default
            }
        }
    }

    fn config(&mut self, text: &str, env_token: Option<&str>) -> Option<Config> {
        let document: serde_yaml::Value = match serde_yaml::from_str(text) {
            Ok(document) => document,
            Err(error) => {
                let (position, message) = yaml_error(&error);
                let message = format!("not valid YAML: {message}");
                self.problems
                    .push(Problem::new(self.file, position, "", message));
                return None;
            }
        };
        let raw: RawConfig = if document.is_null() {
            RawConfig::default()
        } else {
            self.take(Some(check(document)), "")?
        };

        let listen = self.take(raw.listen, "listen").and_then(|listen| {
            listen.parse().map_err(|_| {
                self.problem("listen", format!("{listen:?} is not a listen address; expected IP:PORT such as 0.0.0.0:9310 or 127.0.0.1:9310"));
            }).ok()
        });
        let http = self.http(raw.http);
        let demo = self.take(raw.demo, "demo").unwrap_or(false);
        let probes = self.probes(raw.probes);
        let probe_concurrency = self.count_at(
            raw.probe_concurrency,
            "probe_concurrency",
            defaults::PROBE_CONCURRENCY,
            true,
        );
        let business = self.business(raw.business, env_token);
        Some(Config {
            listen: listen.unwrap_or_else(defaults::listen),
            http,
            demo,
            probes,
            probe_concurrency,
            business,
        })
    }

    fn probes(&mut self, raw: Option<Checked<Vec<Checked<RawProbe>>>>) -> Vec<ProbeConfig> {
        let items = self.take(raw, "probes").unwrap_or_default();
        let mut probes = Vec::new();
        let mut first_use: HashMap<String, String> = HashMap::new();
        for (i, item) in items.into_iter().enumerate() {
            let path = child_index("probes", i);
            let Some(raw) = self.take(Some(item), &path) else {
                continue;
            };
            let name_path = child_key(&path, "name");
            if let Some(name) = &raw.name {
                if let Some(first) = first_use.get(name) {
                    let message = format!("duplicate probe name {name:?} (already used by {first}); probe names must be unique");
                    self.problem(&name_path, message);
                } else {
                    first_use.insert(name.clone(), path.clone());
                }
            }
            if let Some(probe) = self.probe(raw, &path) {
                probes.push(probe);
            }
        }
        probes
    }

    fn probe(&mut self, raw: RawProbe, path: &str) -> Option<ProbeConfig> {
        let field = |name: &str| child_key(path, name);
        // An empty name is the prober's check (below); a missing one is ours.
        let name = raw.name.or_else(|| {
            self.problem(
                &field("name"),
                "missing; every probe needs a unique name (it becomes the `target` label)",
            );
            None
        });
        let url = raw.url.or_else(|| {
            self.problem(
                &field("url"),
                "missing; expected the http:// or https:// URL to probe",
            );
            None
        });
        let method_text = raw
            .method
            .unwrap_or_else(|| defaults::PROBE_METHOD.to_owned());
        let upper = method_text.to_ascii_uppercase();
        let method = if PROBE_METHODS.contains(&upper.as_str()) {
            http::Method::from_bytes(upper.as_bytes()).ok()
        } else {
            let message = format!(
                "{method_text:?} is not a supported method; expected one of {}",
                PROBE_METHODS.join(", ")
            );
            self.problem(&field("method"), message);
            None
        };
        let headers = raw.headers.unwrap_or_default();
        let headers_unique = self.headers_unique(&headers, &field("headers"));
        let interval = self.duration(raw.interval, defaults::PROBE_INTERVAL, &field("interval"));
        let timeout = self.duration(raw.timeout, defaults::PROBE_TIMEOUT, &field("timeout"));
        if let (Some(interval), Some(timeout)) = (interval, timeout) {
            if timeout > interval && !interval.is_zero() {
                let message = format!(
                    "timeout {} must not exceed interval {}; lower the timeout or raise the interval",
                    format_duration(timeout),
                    format_duration(interval)
                );
                self.problem(&field("timeout"), message);
            }
        }
        // The probe module owns the expectation language: compiling here is
        // the one check, and the compiled form is what the prober runs.
        let expect = match raw.expect {
            None => Some(Expectation::default()),
            Some(source) => Expectation::compile(&source)
                .map_err(|error| self.expect_problem(&field("expect"), name.as_deref(), &error))
                .ok(),
        };
        let candidate = Candidate {
            name: name.as_deref(),
            url: url.as_deref(),
            headers: &headers,
            interval,
            timeout,
        };
        let target_ok = self.target_checks(&candidate, path);
        let probe = ProbeConfig {
            name: name?,
            url: url?,
            method: method?,
            headers: (headers_unique && target_ok).then_some(headers)?,
            body: raw.body.unwrap_or_default(),
            interval: interval?,
            timeout: timeout?,
            follow_redirects: raw.follow_redirects.unwrap_or(defaults::FOLLOW_REDIRECTS),
            tls_verify: raw.tls_verify.unwrap_or(defaults::TLS_VERIFY),
            expect: expect?,
        };
        Some(probe)
    }

    /// Runs the prober's own checks ([`ProbeTarget::new`] and
    /// [`ProbeTarget::validate`]) on what parsed, reporting each problem at
    /// its field; returns whether there were none. Missing or unparsable
    /// fields were reported already and are replaced by placeholders, so
    /// that they do not hide the other problems.
    fn target_checks(&mut self, candidate: &Candidate<'_>, path: &str) -> bool {
        let name = candidate.name.unwrap_or("(unnamed)");
        let url = candidate.url.unwrap_or("http://placeholder.invalid/");
        let mut target = match ProbeTarget::new(name, url) {
            Ok(target) => target,
            Err(error) => {
                self.target_problem(&error, path);
                return false;
            }
        };
        target.headers = candidate
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        target.interval = candidate.interval.unwrap_or(defaults::PROBE_INTERVAL);
        target.timeout = candidate.timeout.unwrap_or(defaults::PROBE_TIMEOUT);
        let problems = target.validate();
        for error in &problems {
            self.target_problem(error, path);
        }
        problems.is_empty()
    }

    /// Reports a [`TargetError`] of the probe at `path` at its field: a bad
    /// header name at the key, everything else at the value.
    fn target_problem(&mut self, error: &TargetError, path: &str) {
        let field = child_key(path, error.field());
        match error {
            TargetError::InvalidHeaderName { name, .. } => {
                self.key_problem(&child_key(&field, name), error.reason());
            }
            TargetError::InvalidHeaderValue { name, .. } => {
                self.problem(&child_key(&field, name), error.reason());
            }
            _ => self.problem(&field, error.reason()),
        }
    }

    /// Header names are case-insensitive: `Accept` and `accept` would
    /// silently send the header twice. Returns whether all are distinct.
    fn headers_unique(&mut self, headers: &BTreeMap<String, String>, field: &str) -> bool {
        let mut ok = true;
        let mut seen: HashMap<String, &str> = HashMap::new();
        for name in headers.keys() {
            if let Some(first) = seen.insert(name.to_ascii_lowercase(), name) {
                self.key_problem(&child_key(field, name), format!("header {name:?} is also given as {first:?}; header names are case-insensitive, keep one"));
                ok = false;
            }
        }
        ok
    }

    /// The `http:` section: durations above zero, a cap of at least 1.
    fn http(&mut self, raw: Option<Checked<RawHttp>>) -> HttpLimits {
        let mut limits = HttpLimits::default();
        let Some(raw) = self.take(raw, "http") else {
            return limits;
        };
        for (text, slot, field) in [
            (
                raw.header_read_timeout,
                &mut limits.header_read_timeout,
                "http.header_read_timeout",
            ),
            (
                raw.idle_timeout,
                &mut limits.idle_timeout,
                "http.idle_timeout",
            ),
        ] {
            match self.duration(text, *slot, field) {
                Some(d) if d.is_zero() => {
                    self.problem(field, "must be greater than 0 (e.g. 10s)".to_string());
                }
                Some(d) => *slot = d,
                None => {}
            }
        }
        limits.max_connections = self.count(
            raw.max_connections,
            "http.max_connections",
            limits.max_connections,
            true,
        );
        limits
    }

    /// Parses a duration (zero is allowed here; the prober's checks reject
    /// a zero interval or timeout).
    fn duration(
        &mut self,
        text: Option<String>,
        default: Duration,
        field: &str,
    ) -> Option<Duration> {
        let Some(text) = text else {
            return Some(default);
        };
        parse_duration(&text)
            .map_err(|error| self.problem(field, error.to_string()))
            .ok()
    }

    fn business(
        &mut self,
        raw: Option<Checked<RawBusiness>>,
        env_token: Option<&str>,
    ) -> BusinessConfig {
        let Some(raw) = self.take(raw, "business") else {
            return BusinessConfig {
                token: env_token.and_then(IngestToken::new),
                ..BusinessConfig::default()
            };
        };
        let token = match raw.token_file {
            Some(token_file) => self.token_file(&token_file),
            None => env_token.and_then(IngestToken::new),
        };
        let max_label_sets = self.count_at(
            raw.max_label_sets,
            "business.max_label_sets",
            defaults::MAX_LABEL_SETS,
            false,
        );
        let mut first_use: HashMap<String, String> = HashMap::new();
        let counters = self.metrics(raw.counters, MetricKind::Counter, &mut first_use);
        let gauges = self.metrics(raw.gauges, MetricKind::Gauge, &mut first_use);
        BusinessConfig {
            token,
            max_label_sets,
            counters,
            gauges,
        }
    }

    fn token_file(&mut self, token_file: &str) -> Option<IngestToken> {
        let field = "business.token_file";
        let path = self.file.parent().unwrap_or(Path::new("")).join(token_file);
        match std::fs::read_to_string(&path) {
            Err(error) => {
                self.problem(field, format!("cannot read token file {}: {error}; create it or fix the path (relative paths are relative to the config file)", path.display()));
                None
            }
            Ok(contents) => {
                let token = IngestToken::new(&contents);
                if token.is_none() {
                    self.problem(
                        field,
                        format!(
                            "token file {} is empty; write the ingest token into it",
                            path.display()
                        ),
                    );
                }
                token
            }
        }
    }

    fn metrics(
        &mut self,
        raw: Option<Checked<Vec<Checked<RawMetric>>>>,
        kind: MetricKind,
        first_use: &mut HashMap<String, String>,
    ) -> Vec<MetricConfig> {
        let section = format!("business.{}", kind.section());
        let items = self.take(raw, &section).unwrap_or_default();
        let mut metrics = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let path = child_index(&section, i);
            let Some(raw) = self.take(Some(item), &path) else {
                continue;
            };
            if let Some(metric) = self.metric(raw, kind, &path, first_use) {
                metrics.push(metric);
            }
        }
        metrics
    }

    fn metric(
        &mut self,
        raw: RawMetric,
        kind: MetricKind,
        path: &str,
        first_use: &mut HashMap<String, String>,
    ) -> Option<MetricConfig> {
        let name_field = child_key(path, "name");
        let name = match raw.name {
            None => {
                self.problem(
                    &name_field,
                    format!("missing; every {} needs a metric name", kind.noun()),
                );
                None
            }
            Some(name) => self.metric_name(name, kind, &name_field, path, first_use),
        };
        let help = match raw.help {
            Some(help) if help.trim().is_empty() => {
                self.problem(
                    &child_key(path, "help"),
                    "help is empty; describe the metric in a sentence, or leave the key out",
                );
                None
            }
            Some(help) => Some(help),
            None => name
                .as_deref()
                .map(|name| defaults::metric_help(kind.noun(), name)),
        };
        let labels = self.label_names(raw.labels.unwrap_or_default(), &child_key(path, "labels"));
        Some(MetricConfig {
            name: name?,
            help: help?,
            labels: labels?,
        })
    }

    fn metric_name(
        &mut self,
        name: String,
        kind: MetricKind,
        field: &str,
        path: &str,
        first_use: &mut HashMap<String, String>,
    ) -> Option<String> {
        let problem = if !is_snake_case_name(&name) {
            Some(format!(
                "{name:?} is not a valid metric name; expected lower-case snake_case matching [a-z_][a-z0-9_]* (promtool rejects camelCase, colons are for recording rules)"
            ))
        } else if RESERVED_METRIC_NAMES.contains(&name.as_str())
            || RESERVED_METRIC_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
        {
            Some(format!(
                "{name:?} collides with a built-in metric; names starting with {} are reserved, choose another name",
                RESERVED_METRIC_PREFIXES.join(", ")
            ))
        } else if kind == MetricKind::Counter && !name.ends_with("_total") {
            Some(format!("counter {name:?} must end in _total (Prometheus naming convention); rename it to {name}_total"))
        } else if kind == MetricKind::Gauge && name.ends_with("_total") {
            Some(format!(
                "gauge {name:?} must not end in _total, which Prometheus reserves for counters"
            ))
        } else {
            first_use.get(&name).map(|first| {
                format!("duplicate metric name {name:?} (already declared by {first}); metric names must be unique")
            })
        };
        match problem {
            Some(message) => {
                self.problem(field, message);
                None
            }
            None => {
                first_use.insert(name.clone(), path.to_owned());
                Some(name)
            }
        }
    }

    fn label_names(&mut self, labels: Vec<String>, field: &str) -> Option<Vec<String>> {
        let mut ok = true;
        for (i, label) in labels.iter().enumerate() {
            let path = child_index(field, i);
            let message = if !is_label_name(label) {
                Some(format!(
                    "{label:?} is not a valid label name; expected [a-zA-Z_][a-zA-Z0-9_]*"
                ))
            } else if label.starts_with("__") {
                Some(format!("label name {label:?} is reserved: names starting with __ are internal to Prometheus"))
            } else if RESERVED_LABEL_NAMES.contains(&label.as_str()) {
                Some(format!(
                    "label name {label:?} is reserved ({} are set by Prometheus or used by histograms); choose another name",
                    RESERVED_LABEL_NAMES.join(", ")
                ))
            } else if labels[..i].contains(label) {
                Some(format!(
                    "duplicate label name {label:?}; list each label once"
                ))
            } else {
                None
            };
            if let Some(message) = message {
                self.problem(&path, message);
                ok = false;
            }
        }
        ok.then_some(labels)
    }
}

/// The fields of one probe that the prober's checks look at, as far as they
/// parsed.
struct Candidate<'a> {
    name: Option<&'a str>,
    url: Option<&'a str>,
    headers: &'a BTreeMap<String, String>,
    interval: Option<Duration>,
    timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricKind {
    Counter,
    Gauge,
}

impl MetricKind {
    fn section(self) -> &'static str {
        match self {
            MetricKind::Counter => "counters",
            MetricKind::Gauge => "gauges",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// Metric names as promtool's lint accepts them: the Prometheus grammar
/// without upper case and without the colons reserved for recording rules.
fn is_snake_case_name(name: &str) -> bool {
    is_name(
        name,
        |c| c.is_ascii_lowercase() || c == '_',
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
    )
}

/// Prometheus label-name grammar: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    is_name(
        name,
        |c| c.is_ascii_alphabetic() || c == '_',
        |c| c.is_ascii_alphanumeric() || c == '_',
    )
}

/// True when `name` is not empty, its first character passes `first` and
/// every other character passes `rest`.
fn is_name(name: &str, first: impl Fn(char) -> bool, rest: impl Fn(char) -> bool) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(first) && chars.all(rest)
}

/// The position of character `at` of `source`, a scalar whose value starts
/// at `start` in `text`, when the scalar is written verbatim on that line
/// (plain, or quoted without escapes); `None` otherwise.
fn column_in_scalar(
    text: &str,
    start: super::Position,
    source: &str,
    at: usize,
) -> Option<super::Position> {
    let line = text.lines().nth(start.line.checked_sub(1)?)?;
    let written: String = line.chars().skip(start.column.checked_sub(1)?).collect();
    let quote = match written.chars().next() {
        Some(quote @ ('\'' | '"')) => written[quote.len_utf8()..].starts_with(source).then_some(1),
        _ => written.starts_with(source).then_some(0),
    }?;
    Some(super::Position {
        line: start.line,
        column: start.column + quote + at,
    })
}
