//! What every receiver's configuration shares: the `global:` defaults they
//! fall back on, secrets (inline, `*_file`, or `${ENV}`), durations, URLs,
//! and the collector of problems with their field paths. Each receiver's own
//! fields are in its folder (`slack/config.rs`, ...).
//!
//! Field names and defaults are Alertmanager's; Vigil additions are marked
//! "(Vigil)". Secrets are resolved when the config is loaded, so a missing
//! file or variable is a config error at load time, not a failed delivery at
//! 3 a.m.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use vigil_common::problem::Problem;

use super::http::HttpSettings;
use super::template::TemplateEnv;
use super::{Receiver, Secret};

/// Per-attempt HTTP timeout when the config sets none (Vigil default;
/// Alertmanager has none, but retries need every attempt to end).
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

/// The `global:` settings that receivers fall back on. Deserializes from the
/// `global:` section directly (unknown keys are ignored, so the loader can
/// parse the same mapping for its own keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GlobalReceiverDefaults {
    pub slack_api_url: Option<Secret>,
    pub slack_api_url_file: Option<PathBuf>,
    pub smtp_from: Option<String>,
    /// Name sent in `EHLO`; Alertmanager's default is `localhost`.
    pub smtp_hello: String,
    pub smtp_smarthost: Option<String>,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<Secret>,
    pub smtp_auth_password_file: Option<PathBuf>,
    pub smtp_auth_identity: Option<String>,
    /// Alertmanager's default: STARTTLS is required.
    pub smtp_require_tls: bool,
    /// The Events API v2 endpoint of `pagerduty_configs` without `url`.
    pub pagerduty_url: String,
    /// The Bot API of `telegram_configs` without `api_url`.
    pub telegram_api_url: String,
    /// The messages API of `webex_configs` without `api_url`.
    pub webex_api_url: String,
    /// The REST integration of `victorops_configs` without `api_url`.
    pub victorops_api_url: String,
    pub victorops_api_key: Option<Secret>,
    pub victorops_api_key_file: Option<PathBuf>,
    /// The Alert API of `opsgenie_configs` without `api_url`.
    pub opsgenie_api_url: String,
    pub opsgenie_api_key: Option<Secret>,
    pub opsgenie_api_key_file: Option<PathBuf>,
    /// The API base of `wechat_configs` without `api_url`.
    pub wechat_api_url: String,
    pub wechat_api_secret: Option<Secret>,
    pub wechat_api_corp_id: Option<String>,
    /// The notification templates receivers parse their text fields
    /// against (not a `global:` key: the config's `templates:`).
    #[serde(skip)]
    pub templates: Arc<TemplateEnv>,
    /// `global.http_config`, validated: the `http_config` of every
    /// integration without one.
    #[serde(skip)]
    pub http_config: Option<HttpSettings>,
}

impl Default for GlobalReceiverDefaults {
    fn default() -> Self {
        GlobalReceiverDefaults {
            slack_api_url: None,
            slack_api_url_file: None,
            smtp_from: None,
            smtp_hello: "localhost".into(),
            smtp_smarthost: None,
            smtp_auth_username: None,
            smtp_auth_password: None,
            smtp_auth_password_file: None,
            smtp_auth_identity: None,
            smtp_require_tls: true,
            pagerduty_url: super::pagerduty::DEFAULT_URL.to_string(),
            telegram_api_url: super::telegram::DEFAULT_API_URL.to_string(),
            webex_api_url: super::webex::DEFAULT_API_URL.to_string(),
            victorops_api_url: super::victorops::DEFAULT_API_URL.to_string(),
            victorops_api_key: None,
            victorops_api_key_file: None,
            opsgenie_api_url: super::opsgenie::DEFAULT_API_URL.to_string(),
            opsgenie_api_key: None,
            opsgenie_api_key_file: None,
            wechat_api_url: super::wechat::DEFAULT_API_URL.to_string(),
            wechat_api_secret: None,
            wechat_api_corp_id: None,
            templates: TemplateEnv::defaults(),
            http_config: None,
        }
    }
}

/// Collects the problems of one integration entry while validating it;
/// fields are relative to the entry (`api_url` in `receivers[0].slack_configs[1]`).
pub struct Problems<'a> {
    pub(super) problems: &'a mut Vec<Problem>,
    pub(super) path: String,
}

impl<'a> Problems<'a> {
    /// Problems of the entry at `path`, collected into `problems`.
    pub fn new(problems: &'a mut Vec<Problem>, path: String) -> Problems<'a> {
        Problems { problems, path }
    }
}

impl Problems<'_> {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        let path = if field.is_empty() {
            self.path.clone()
        } else {
            format!("{}.{field}", self.path)
        };
        self.problems.push(Problem::at_field(path, message));
    }

    /// A warning about `field`: the entry is built all the same.
    pub fn warn(&mut self, field: &str, message: impl Into<String>) {
        let path = format!("{}.{field}", self.path);
        self.problems
            .push(Problem::at_field(path, message).warning());
    }

    /// Problems of the `global:` section met while validating this entry
    /// (a global default it falls back on).
    pub fn global(&mut self) -> Problems<'_> {
        Problems {
            problems: &mut *self.problems,
            path: "global".into(),
        }
    }

    /// How many errors have been found so far (to tell whether an entry
    /// added any); warnings do not count.
    pub fn count(&self) -> usize {
        self.problems.iter().filter(|p| !p.is_warning()).count()
    }

    /// The receiver, or `None` with the reason it could not be set up (a
    /// TLS backend problem) as a problem of the whole entry.
    pub fn receiver<R: Receiver + 'static>(
        &mut self,
        built: Result<R, impl std::fmt::Display>,
    ) -> Option<Arc<dyn Receiver>> {
        match built {
            Ok(receiver) => Some(Arc::new(receiver)),
            Err(error) => {
                self.add("", error.to_string());
                None
            }
        }
    }
}

/// A secret as written inline or in a file: one `(value, file)` pair.
pub type SecretSource<'a> = (Option<&'a Secret>, Option<&'a Path>);

/// A secret from the entry's `field` (or its `_file`), else from the
/// `global:` default `global_field`; `missing` is the problem when neither
/// is set.
pub fn entry_or_global_secret(
    own: SecretSource<'_>,
    global: SecretSource<'_>,
    [field, global_field]: [&str; 2],
    missing: &str,
    p: &mut Problems<'_>,
) -> Option<Secret> {
    let set = |(inline, file): SecretSource<'_>| inline.is_some() || file.is_some();
    if set(own) {
        resolve_secret(own.0, own.1, field, true, p)
    } else if set(global) {
        resolve_secret(global.0, global.1, global_field, true, &mut p.global())
    } else {
        p.add(field, missing);
        None
    }
}

/// Resolves a secret from its inline value (or `${ENV}`) or its `_file`.
/// `required` adds a problem when neither is set.
pub fn resolve_secret(
    inline: Option<&Secret>,
    file: Option<&Path>,
    field: &str,
    required: bool,
    p: &mut Problems<'_>,
) -> Option<Secret> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            p.add(
                field,
                format!("at most one of {field} and {field}_file may be set"),
            );
            None
        }
        (Some(value), None) => {
            let raw = value.expose();
            if let Some(name) = raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                match std::env::var(name) {
                    Ok(v) if !v.is_empty() => Some(Secret::new(v)),
                    _ => {
                        p.add(
                            field,
                            format!("environment variable {name} is not set or empty; export it or use {field}_file"),
                        );
                        None
                    }
                }
            } else if raw.is_empty() {
                if required {
                    p.add(field, "must not be empty");
                }
                None
            } else {
                Some(value.clone())
            }
        }
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(content) => {
                let content = content.trim_end_matches(['\n', '\r']).to_string();
                if content.is_empty() {
                    p.add(
                        &format!("{field}_file"),
                        format!("file {} is empty", path.display()),
                    );
                    None
                } else {
                    Some(Secret::new(content))
                }
            }
            Err(error) => {
                p.add(
                    &format!("{field}_file"),
                    format!("cannot read {}: {error}", path.display()),
                );
                None
            }
        },
        (None, None) => {
            if required {
                p.add(field, format!("{field} or {field}_file is required"));
            }
            None
        }
    }
}

/// Parses a Prometheus duration (`500ms`, `10s`, `1m30s`, `2h`, `1d`),
/// ignoring surrounding blanks; `None` when it is not one.
pub fn parse_duration(value: &str) -> Option<Duration> {
    vigil_common::duration::parse_duration(value.trim()).ok()
}

pub fn parse_timeout(value: Option<&str>, p: &mut Problems<'_>) -> Duration {
    match value {
        None => DEFAULT_HTTP_TIMEOUT,
        Some(text) => match parse_duration(text) {
            Some(d) if !d.is_zero() => d,
            _ => {
                p.add(
                    "timeout",
                    format!("`{text}` is not a positive duration; write e.g. `10s` or `1m`"),
                );
                DEFAULT_HTTP_TIMEOUT
            }
        },
    }
}

pub fn check_url(value: &str, field: &str, p: &mut Problems<'_>) {
    match reqwest::Url::parse(value) {
        Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {}
        // The URL may be a secret: never echo it.
        _ => p.add(field, "is not an absolute http(s) URL"),
    }
}

/// Unit tests' settings of one entry, from its YAML, validated against the
/// default `global:`; a problem fails the test.
#[cfg(test)]
pub(crate) fn validated<Raw: serde::de::DeserializeOwned, Settings>(
    yaml: &str,
    validate: impl FnOnce(Raw, &GlobalReceiverDefaults, &mut Problems<'_>) -> Option<Settings>,
) -> Settings {
    let raw: Raw = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    let mut problems = Vec::new();
    let mut p = Problems {
        problems: &mut problems,
        path: "entry".into(),
    };
    let settings = validate(raw, &GlobalReceiverDefaults::default(), &mut p);
    assert!(problems.iter().all(Problem::is_warning), "{problems:?}");
    settings.unwrap_or_else(|| panic!("{yaml}: not valid"))
}

/// Unit tests' problems (errors, not warnings) of one entry at `path`,
/// from its YAML, validated against `global`, as they print.
#[cfg(test)]
pub(crate) fn problems_of<Raw: serde::de::DeserializeOwned, Settings>(
    yaml: &str,
    path: &str,
    global: &GlobalReceiverDefaults,
    validate: impl FnOnce(Raw, &GlobalReceiverDefaults, &mut Problems<'_>) -> Option<Settings>,
) -> Vec<String> {
    let raw: Raw = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    let mut problems = Vec::new();
    let _ = validate(raw, global, &mut Problems::new(&mut problems, path.into()));
    problems
        .iter()
        .filter(|p| !p.is_warning())
        .map(Problem::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_prometheus_format() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
    }
}
