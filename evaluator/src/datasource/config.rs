//! `datasource:` in `vigil.yaml`: the Prometheus-compatible query API
//! (Prometheus, VictoriaMetrics, Mimir, Thanos) rule groups evaluate
//! against instead of the local window, and `rule_file_datasources:`, which
//! picks another datasource (or `local`) for the rule files a glob matches.
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `url` | *required* | the API's base URL; Vigil calls `<url>/api/v1/query` |
//! | `headers` | none | extra request headers, e.g. `X-Scope-OrgID: tenant` for Mimir |
//! | `query_timeout` | `30s` | one query's timeout (also sent as the query's `timeout`) |
//! | `query_offset` | `0s` | evaluate at the tick minus this (ingestion delay), for groups without their own `query_offset` |
//! | `retries` | `2` | more attempts after a failure that can pass (connection, 5xx, 429), with backoff, within the group's interval |
//! | `authorization`, `basic_auth`, `bearer_token(_file)`, `oauth2`, `tls_config`, `proxy_url`, `no_proxy`, `proxy_from_environment`, `proxy_connect_header`, `follow_redirects` | none | the HTTP client keys of the receivers' `http_config` (docs/receivers.md), written inline as in Prometheus |
//!
//! ```yaml
//! datasource: {url: 'http://prometheus:9090', query_offset: 30s}
//! rule_file_datasources:
//!   - files: 'rules/local/*.yaml'   # relative to vigil.yaml
//!     datasource: local             # these groups use the local window
//!   - files: 'rules/tenant-b/*.yaml'
//!     datasource: {url: 'http://mimir/prometheus', headers: {X-Scope-OrgID: b}}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;
use vigil_common::problem::Problem;

use crate::notify::receivers::http::HttpSettings;
use crate::scrape::parse_prometheus_duration;

/// Default `query_timeout`.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `retries`.
pub const DEFAULT_RETRIES: u32 = 2;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatasourceRaw {
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    query_timeout: Option<String>,
    query_offset: Option<String>,
    retries: Option<u32>,
}

const DATASOURCE_KEYS: [&str; 5] = ["url", "headers", "query_timeout", "query_offset", "retries"];

/// A validated datasource.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasourceSettings {
    /// The base URL, without a trailing slash.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub query_timeout: Duration,
    pub query_offset: Option<Duration>,
    pub retries: u32,
    pub http: HttpSettings,
}

/// Which datasource each rule file uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasourceChoice {
    /// `datasource:`; `None`: the local window.
    pub default: Option<DatasourceSettings>,
    /// `rule_file_datasources:` in order: the files each glob matched
    /// (absolute), and their datasource (`None`: local).
    pub overrides: Vec<(Vec<PathBuf>, Option<DatasourceSettings>)>,
}

impl DatasourceChoice {
    /// The datasource of the groups in rule file `file` (`None`: local):
    /// the first override whose glob matched it, else the default.
    pub fn for_file(&self, file: &Path) -> Option<&DatasourceSettings> {
        self.overrides
            .iter()
            .find(|(files, _)| files.iter().any(|f| f == file))
            .map_or(self.default.as_ref(), |(_, d)| d.as_ref())
    }
}

/// Validates `datasource` and `rule_file_datasources` (globs relative to
/// `dir`).
pub fn validate(
    default: Option<&Value>,
    overrides: &[Value],
    dir: &Path,
) -> Result<DatasourceChoice, Vec<Problem>> {
    let mut problems = Vec::new();
    let default = default.and_then(|v| validate_one(v, "datasource", &mut problems));
    let mut out = Vec::new();
    for (i, entry) in overrides.iter().enumerate() {
        let path = format!("rule_file_datasources[{i}]");
        let files = entry.get("files").and_then(Value::as_str);
        let keys_ok = entry.as_mapping().is_some_and(|m| {
            m.keys()
                .all(|k| matches!(k.as_str(), Some("files" | "datasource")))
        });
        let (Some(files), true) = (files, keys_ok) else {
            problems.push(Problem::at_field(
                &path,
                "expected `files` (a glob of rule files, relative to vigil.yaml) and `datasource` (`local` or a datasource mapping)",
            ));
            continue;
        };
        let matched = match glob::glob(&dir.join(files).to_string_lossy()) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(e) => {
                problems.push(Problem::at_field(
                    format!("{path}.files"),
                    format!("{files:?} is not a valid glob: {e}"),
                ));
                continue;
            }
        };
        let datasource = match entry.get("datasource") {
            Some(Value::String(s)) if s == "local" => None,
            Some(v @ Value::Mapping(_)) => {
                match validate_one(v, &format!("{path}.datasource"), &mut problems) {
                    Some(d) => Some(d),
                    None => continue,
                }
            }
            _ => {
                problems.push(Problem::at_field(
                    format!("{path}.datasource"),
                    "expected `local` or a datasource mapping with `url`",
                ));
                continue;
            }
        };
        out.push((matched, datasource));
    }
    if problems.is_empty() {
        Ok(DatasourceChoice {
            default,
            overrides: out,
        })
    } else {
        Err(problems)
    }
}

fn validate_one(
    value: &Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<DatasourceSettings> {
    let before = problems.len();
    let (raw, http) =
        crate::inline_http::split::<DatasourceRaw>(value, path, &DATASOURCE_KEYS, problems)?;
    let mut at = |field: &str, message: String| {
        problems.push(Problem::at_field(format!("{path}.{field}"), message));
    };
    let url = raw
        .url
        .clone()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    match reqwest::Url::parse(&url) {
        _ if url.is_empty() => at(
            "url",
            "missing `url`: the query API's base URL, e.g. http://prometheus:9090".into(),
        ),
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        Ok(u) => at(
            "url",
            format!(
                "scheme {:?} is not supported; use http or https",
                u.scheme()
            ),
        ),
        Err(e) => at("url", format!("{url:?} is not a URL: {e}")),
    }
    let mut duration = |field: &str, text: &Option<String>| -> Option<Duration> {
        let text = text.as_ref()?;
        match parse_prometheus_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                at(field, e.to_string());
                None
            }
        }
    };
    let query_timeout =
        duration("query_timeout", &raw.query_timeout).unwrap_or(DEFAULT_QUERY_TIMEOUT);
    let query_offset = duration("query_offset", &raw.query_offset);
    if query_timeout.is_zero() {
        at("query_timeout", "must be greater than zero".into());
    }
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            || reqwest::header::HeaderValue::from_str(value).is_err()
        {
            at(
                &format!("headers.{name}"),
                "is not a valid HTTP header".into(),
            );
        } else {
            headers.push((name.clone(), value.clone()));
        }
    }
    (problems.len() == before).then(|| DatasourceSettings {
        url,
        headers,
        query_timeout,
        query_offset,
        retries: raw.retries.unwrap_or(DEFAULT_RETRIES),
        http,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn overrides_pick_the_datasource_of_each_rule_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(dir.path().join("local")).unwrap_or_else(|e| panic!("{e}"));
        for f in ["local/a.yaml", "b.yaml"] {
            std::fs::write(dir.path().join(f), "groups: []").unwrap_or_else(|e| panic!("{e}"));
        }
        let overrides = yaml("- {files: 'local/*.yaml', datasource: local}\n- {files: 'b.yaml', datasource: {url: 'http://mimir/prometheus/', headers: {X-Scope-OrgID: b}}}\n");
        let choice = validate(
            Some(&yaml(
                "{url: 'http://prom:9090', query_offset: 30s, bearer_token: t}",
            )),
            overrides
                .as_sequence()
                .map(Vec::as_slice)
                .unwrap_or_default(),
            dir.path(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let default = choice
            .for_file(&dir.path().join("c.yaml"))
            .map(|d| d.url.as_str());
        assert_eq!(default, Some("http://prom:9090"));
        assert_eq!(
            choice.default.as_ref().and_then(|d| d.query_offset),
            Some(Duration::from_secs(30))
        );
        assert!(choice.for_file(&dir.path().join("local/a.yaml")).is_none());
        let b = choice.for_file(&dir.path().join("b.yaml"));
        assert_eq!(b.map(|d| d.url.as_str()), Some("http://mimir/prometheus"));
        assert_eq!(
            b.map(|d| d.headers.clone()),
            Some(vec![("X-Scope-OrgID".into(), "b".into())])
        );
    }

    #[test]
    fn problems_name_their_field() {
        let problems = validate(
            Some(&yaml("{url: 'ftp://x', query_timeout: 0s, retries: -1}")),
            &[
                yaml("{files: x, datasource: elsewhere}"),
                yaml("{datasource: local}"),
            ],
            Path::new("."),
        )
        .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "datasource",
                "rule_file_datasources[0].datasource",
                "rule_file_datasources[1]"
            ]
        );
        let problems = validate(
            Some(&yaml("{url: 'ftp://x', query_timeout: 0s}")),
            &[],
            Path::new("."),
        )
        .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["datasource.url", "datasource.query_timeout"]);
    }

    #[test]
    fn tls_oauth2_and_proxy_keys_are_taken_inline_with_their_problems_placed() {
        let choice = validate(
            Some(&yaml(
                "{url: 'https://prom:9090', tls_config: {insecure_skip_verify: true}, proxy_url: 'http://proxy:3128'}",
            )),
            &[],
            Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let settings = choice.default.as_ref().map(|d| &d.http.transport);
        assert!(settings.is_some_and(|t| t.tls.is_some()));
        let problems = validate(
            Some(&yaml(
                "{url: 'https://prom:9090', tls_config: {ca_file: /nonexistent/ca.pem}, oauth2: {client_id: x}}",
            )),
            &[],
            Path::new("."),
        )
        .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "datasource.oauth2.token_url",
                "datasource.oauth2.client_secret",
                "datasource.tls_config.ca_file"
            ]
        );
    }
}
