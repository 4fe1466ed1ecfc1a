//! `scrape_configs` entries: the Prometheus scrape_config subset Vigil
//! understands, and its validation into a [`ValidScrapeConfig`].
//!
//! Deserialisation only checks shapes (`deny_unknown_fields`); everything
//! else (durations, sizes, names, regexes) is checked in one pass by
//! [`ScrapeConfig::validate`], which reports every problem with its field
//! path instead of stopping at the first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::parser::is_valid_label_name;
use super::relabel::{RelabelConfig, Relabeler};
use crate::labels::Labels;
use vigil_common::problem::Problem;

/// One `scrape_configs` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Becomes the `job` label of every target.
    pub job_name: String,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Default: the `global` section's scrape_interval.
    pub scrape_interval: Option<String>,
    /// Default: the global scrape_timeout, capped at scrape_interval.
    pub scrape_timeout: Option<String>,
    /// Default `/metrics`.
    pub metrics_path: Option<String>,
    /// `http` (default) or `https`.
    pub scheme: Option<String>,
    /// When true, labels from the target win over the job's `job`,
    /// `instance` and static labels; otherwise clashing target labels are
    /// renamed `exported_<name>`.
    #[serde(default)]
    pub honor_labels: bool,
    pub authorization: Option<Authorization>,
    /// Legacy form of `authorization: {credentials: ...}`.
    pub bearer_token: Option<String>,
    /// Legacy form of `authorization: {credentials_file: ...}`.
    pub bearer_token_file: Option<String>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// More samples than this after relabelling fail the scrape; 0 = no
    /// limit. Default [`DEFAULT_SAMPLE_LIMIT`].
    pub sample_limit: Option<u64>,
    /// Bigger (uncompressed) bodies fail the scrape: bytes or `10MB`,
    /// `512KiB`...; 0 = no limit. Default [`DEFAULT_BODY_SIZE_LIMIT`].
    pub body_size_limit: Option<ByteSize>,
    /// A series with more labels than this after relabelling (counting
    /// `__name__`, as Prometheus does) fails the scrape; 0 = no limit.
    /// Default [`DEFAULT_LABEL_LIMIT`]. The parser also stops reading a
    /// line as soon as it exposes more labels than this.
    pub label_limit: Option<u64>,
    /// A label name longer than this (bytes) fails the scrape; 0 = no limit.
    /// Default [`DEFAULT_LABEL_NAME_LENGTH_LIMIT`].
    pub label_name_length_limit: Option<u64>,
    /// A label value longer than this (bytes) fails the scrape; 0 = no
    /// limit. Default [`DEFAULT_LABEL_VALUE_LENGTH_LIMIT`].
    pub label_value_length_limit: Option<u64>,
}

/// Default `sample_limit`. Prometheus has none (0); Vigil keeps one so a
/// single target cannot fill the process: well above a big exporter
/// (the benchmark's 76,000 series), well below `storage.series_limit`.
pub const DEFAULT_SAMPLE_LIMIT: u64 = 200_000;
/// Default `body_size_limit` (64 MiB of uncompressed exposition, about
/// 400,000 typical series).
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 64 << 20;
/// Default `label_limit`: real series carry a few dozen labels.
pub const DEFAULT_LABEL_LIMIT: u64 = 128;
/// Default `label_name_length_limit` in bytes.
pub const DEFAULT_LABEL_NAME_LENGTH_LIMIT: u64 = 1024;
/// Default `label_value_length_limit` in bytes.
pub const DEFAULT_LABEL_VALUE_LENGTH_LIMIT: u64 = 16 * 1024;

/// A `static_configs` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `authorization:` as in Prometheus 2.42.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Default `Bearer`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

/// A size in bytes, or a string with a unit (Prometheus reads the units as
/// powers of two: `KB` = `KiB` = 1024).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(String),
}

/// Defaults taken from the `global` section, and where relative paths start.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeDefaults {
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    /// The directory of the config file; relative credential files are
    /// resolved against it.
    pub config_dir: PathBuf,
}

impl Default for ScrapeDefaults {
    /// Prometheus' own defaults: 1m interval, 10s timeout.
    fn default() -> Self {
        ScrapeDefaults {
            scrape_interval: Duration::from_secs(60),
            scrape_timeout: Duration::from_secs(10),
            config_dir: PathBuf::from("."),
        }
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// Where the bearer token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Written in the config.
    Inline { kind: String, secret: String },
    /// Read from this file before every scrape, so rotated tokens apply.
    File { kind: String, path: PathBuf },
}

/// One static target with its labels before `job`/`instance` are added.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticTarget {
    pub address: String,
    pub labels: BTreeMap<String, String>,
}

/// A checked scrape config, with every default filled in.
#[derive(Debug, Clone)]
pub struct ValidScrapeConfig {
    pub job_name: String,
    pub targets: Vec<StaticTarget>,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub metrics_path: String,
    pub scheme: Scheme,
    pub honor_labels: bool,
    pub credentials: Option<Credentials>,
    pub metric_relabel: Vec<Relabeler>,
    /// 0 = no limit.
    pub sample_limit: usize,
    /// 0 = no limit.
    pub body_size_limit: u64,
    /// Most labels per series (with `__name__`); 0 = no limit.
    pub label_limit: usize,
    /// Longest label name in bytes; 0 = no limit.
    pub label_name_length_limit: usize,
    /// Longest label value in bytes; 0 = no limit.
    pub label_value_length_limit: usize,
}

impl ValidScrapeConfig {
    /// The URL of a target of this job.
    pub fn url_for(&self, address: &str) -> String {
        format!("{}://{}{}", self.scheme, address, self.metrics_path)
    }

    /// The labels a target of this job attaches to its series: the static
    /// labels, then `job` and `instance` unless static labels set them.
    pub fn target_labels(&self, target: &StaticTarget) -> Labels {
        let mut labels =
            Labels::from_pairs(target.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if labels.get("job").is_none() {
            labels.set("job", &self.job_name);
        }
        if labels.get("instance").is_none() {
            labels.set("instance", &target.address);
        }
        labels
    }
}

impl ScrapeConfig {
    /// Checks every field and fills in defaults. `path` prefixes field paths
    /// in errors (e.g. `scrape_configs[2]`).
    pub fn validate(
        &self,
        defaults: &ScrapeDefaults,
        path: &str,
    ) -> Result<ValidScrapeConfig, Vec<Problem>> {
        let mut errors = Vec::new();
        let mut err = |field: &str, message: String| {
            errors.push(Problem::at_field(format!("{path}.{field}"), message))
        };

        if self.job_name.is_empty() {
            err("job_name", "must not be empty".into());
        }

        let mut targets = Vec::new();
        for (i, sc) in self.static_configs.iter().enumerate() {
            for (j, address) in sc.targets.iter().enumerate() {
                if let Some(problem) = address_problem(address) {
                    err(&format!("static_configs[{i}].targets[{j}]"), problem);
                }
            }
            for name in sc.labels.keys() {
                if !is_valid_label_name(name) {
                    err(
                        &format!("static_configs[{i}].labels.{name}"),
                        "is not a valid label name (must match [a-zA-Z_][a-zA-Z0-9_]*)".into(),
                    );
                }
            }
            targets.extend(sc.targets.iter().map(|address| StaticTarget {
                address: address.clone(),
                labels: sc.labels.clone(),
            }));
        }

        let interval = match self
            .scrape_interval
            .as_deref()
            .map(parse_prometheus_duration)
        {
            None => Some(defaults.scrape_interval),
            Some(Ok(d)) if d.is_zero() => {
                err("scrape_interval", "must be greater than 0".into());
                None
            }
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                err("scrape_interval", e.to_string());
                None
            }
        };
        let timeout = match self
            .scrape_timeout
            .as_deref()
            .map(parse_prometheus_duration)
        {
            None => interval.map(|i| defaults.scrape_timeout.min(i)),
            Some(Ok(d)) if d.is_zero() => {
                err("scrape_timeout", "must be greater than 0".into());
                None
            }
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                err("scrape_timeout", e.to_string());
                None
            }
        };
        if let (Some(i), Some(t)) = (interval, timeout) {
            if t > i {
                err(
                    "scrape_timeout",
                    format!(
                        "{} is greater than scrape_interval {}; lower it or raise the interval",
                        format_duration(t),
                        format_duration(i)
                    ),
                );
            }
        }

        let metrics_path = self
            .metrics_path
            .clone()
            .unwrap_or_else(|| "/metrics".into());
        if !metrics_path.starts_with('/') {
            err(
                "metrics_path",
                format!("{metrics_path:?} must start with \"/\""),
            );
        }
        let scheme = match self.scheme.as_deref() {
            None | Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => {
                err(
                    "scheme",
                    format!("{other:?} is not supported; use http or https"),
                );
                Scheme::Http
            }
        };

        let credentials = self.credentials(defaults, &mut err);

        let mut metric_relabel = Vec::new();
        for (i, rule) in self.metric_relabel_configs.iter().enumerate() {
            match rule.compile() {
                Ok(r) => metric_relabel.push(r),
                Err(problems) => {
                    for (field, message) in problems {
                        err(&format!("metric_relabel_configs[{i}].{field}"), message);
                    }
                }
            }
        }

        let body_size_limit = match &self.body_size_limit {
            None => DEFAULT_BODY_SIZE_LIMIT,
            Some(ByteSize::Bytes(n)) => *n,
            Some(ByteSize::Text(text)) => parse_byte_size(text).unwrap_or_else(|message| {
                err("body_size_limit", message);
                0
            }),
        };
        let limit = |value: Option<u64>, default: u64| {
            usize::try_from(value.unwrap_or(default)).unwrap_or(usize::MAX)
        };
        let sample_limit = limit(self.sample_limit, DEFAULT_SAMPLE_LIMIT);
        let label_limit = limit(self.label_limit, DEFAULT_LABEL_LIMIT);
        let label_name_length_limit = limit(
            self.label_name_length_limit,
            DEFAULT_LABEL_NAME_LENGTH_LIMIT,
        );
        let label_value_length_limit = limit(
            self.label_value_length_limit,
            DEFAULT_LABEL_VALUE_LENGTH_LIMIT,
        );

        match (interval, timeout) {
            (Some(scrape_interval), Some(scrape_timeout)) if errors.is_empty() => {
                Ok(ValidScrapeConfig {
                    job_name: self.job_name.clone(),
                    targets,
                    scrape_interval,
                    scrape_timeout,
                    metrics_path,
                    scheme,
                    honor_labels: self.honor_labels,
                    credentials,
                    metric_relabel,
                    sample_limit,
                    body_size_limit,
                    label_limit,
                    label_name_length_limit,
                    label_value_length_limit,
                })
            }
            _ => Err(errors),
        }
    }

    fn credentials(
        &self,
        defaults: &ScrapeDefaults,
        err: &mut impl FnMut(&str, String),
    ) -> Option<Credentials> {
        let set = [
            self.authorization.is_some(),
            self.bearer_token.is_some(),
            self.bearer_token_file.is_some(),
        ];
        if set.iter().filter(|s| **s).count() > 1 {
            err(
                "authorization",
                "at most one of authorization, bearer_token and bearer_token_file may be set"
                    .into(),
            );
            return None;
        }
        let resolve = |file: &str| {
            let p = Path::new(file);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                defaults.config_dir.join(p)
            }
        };
        if let Some(token) = &self.bearer_token {
            return Some(Credentials::Inline {
                kind: "Bearer".into(),
                secret: token.clone(),
            });
        }
        if let Some(file) = &self.bearer_token_file {
            return Some(Credentials::File {
                kind: "Bearer".into(),
                path: resolve(file),
            });
        }
        let auth = self.authorization.as_ref()?;
        let kind = auth.kind.clone().unwrap_or_else(|| "Bearer".into());
        if kind.eq_ignore_ascii_case("basic") {
            err(
                "authorization.type",
                "cannot be Basic (use basic_auth instead, which Vigil does not support yet)".into(),
            );
            return None;
        }
        if kind.is_empty() || kind.contains(|c: char| c.is_whitespace()) {
            err(
                "authorization.type",
                format!("{kind:?} is not a valid authorization type"),
            );
            return None;
        }
        match (&auth.credentials, &auth.credentials_file) {
            (Some(_), Some(_)) => {
                err(
                    "authorization",
                    "set credentials or credentials_file, not both".into(),
                );
                None
            }
            (Some(secret), None) => Some(Credentials::Inline {
                kind,
                secret: secret.clone(),
            }),
            (None, Some(file)) => Some(Credentials::File {
                kind,
                path: resolve(file),
            }),
            (None, None) => {
                err(
                    "authorization",
                    "needs credentials or credentials_file".into(),
                );
                None
            }
        }
    }
}

/// Validates all scrape configs (paths `scrape_configs[i]...`) and checks
/// that job names are unique.
pub fn validate_scrape_configs(
    configs: &[ScrapeConfig],
    defaults: &ScrapeDefaults,
) -> Result<Vec<ValidScrapeConfig>, Vec<Problem>> {
    let mut errors = Vec::new();
    let mut valid = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        if let Some(first) = configs[..i]
            .iter()
            .position(|c| c.job_name == config.job_name)
        {
            errors.push(Problem::at_field(
                format!("scrape_configs[{i}].job_name"),
                format!(
                    "{:?} is already used by scrape_configs[{first}]; job names must be unique",
                    config.job_name
                ),
            ));
        }
        match config.validate(defaults, &format!("scrape_configs[{i}]")) {
            Ok(v) => valid.push(v),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(errors)
    }
}

fn address_problem(address: &str) -> Option<String> {
    if address.is_empty() {
        return Some("must not be empty".into());
    }
    if address.contains("://") || address.contains('/') {
        return Some(format!(
            "{address:?} must be host:port without scheme or path (use scheme and metrics_path)"
        ));
    }
    if address.chars().any(char::is_whitespace) {
        return Some(format!("{address:?} contains whitespace"));
    }
    None
}

// Durations are parsed and formatted by the shared crate, under the names
// this module has always exported.
pub use vigil_common::duration::{
    format_duration, parse_duration as parse_prometheus_duration, DurationError,
};

fn parse_byte_size(text: &str) -> Result<u64, String> {
    let fail = || {
        format!(
            "invalid size {text:?}: expected bytes or a number with B, KB, MB, GB, KiB, MiB, GiB"
        )
    };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(fail());
    }
    let n: u64 = text[..digits].parse().map_err(|_| fail())?;
    let factor: u64 = match &text[digits..] {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        "TB" | "TiB" => 1 << 40,
        _ => return Err(fail()),
    };
    n.checked_mul(factor).ok_or_else(fail)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
