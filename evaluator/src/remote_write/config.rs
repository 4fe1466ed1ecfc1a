//! `remote_write:` in `vigil.yaml`: the receivers of recording-rule output
//! and `ALERTS`/`ALERTS_FOR_STATE`, with Prometheus' `remote_write` keys
//! where they apply. Each entry:
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `url` | *required* | the receiver's write endpoint (`http(s)://`) |
//! | `name` | `url`'s host and path | names the queue in metrics and logs; unique |
//! | `remote_timeout` | `30s` | one request's timeout |
//! | `headers` | none | extra request headers (not the ones remote write sets itself) |
//! | `queue_config` | see below | the queue and its shards |
//! | `authorization`, `basic_auth`, `bearer_token(_file)`, `oauth2`, `tls_config`, `proxy_url`, `no_proxy`, `proxy_from_environment`, `proxy_connect_header`, `follow_redirects` | none | the HTTP client keys of the receivers' `http_config` (docs/receivers.md), written inline as in Prometheus |
//!
//! `queue_config`: `capacity` (samples buffered per shard, default 10000;
//! beyond it new samples are dropped and counted), `max_shards` (parallel
//! senders, default 4: Vigil runs this many, it does not reshard),
//! `min_shards` (accepted, at most `max_shards`), `max_samples_per_send`
//! (default 2000), `batch_send_deadline` (default 5s), `min_backoff`
//! (default 30ms), `max_backoff` (default 5s), `retry_on_http_429`
//! (default `true`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;
use vigil_common::problem::Problem;

use crate::notify::receivers::http::HttpSettings;
use crate::scrape::parse_prometheus_duration;

/// Default `remote_timeout`.
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers remote write sets itself; an entry may not override them.
const RESERVED_HEADERS: [&str; 5] = [
    "host",
    "authorization",
    "content-encoding",
    "content-type",
    "x-prometheus-remote-write-version",
];

/// The remote-write keys of one entry (the HTTP client keys are read
/// apart, into [`HttpConfigRaw`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteWriteRaw {
    url: Option<String>,
    name: Option<String>,
    remote_timeout: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    queue_config: Option<QueueConfigRaw>,
}

const REMOTE_WRITE_KEYS: [&str; 5] = ["url", "name", "remote_timeout", "headers", "queue_config"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueConfigRaw {
    capacity: Option<usize>,
    max_shards: Option<usize>,
    min_shards: Option<usize>,
    max_samples_per_send: Option<usize>,
    batch_send_deadline: Option<String>,
    min_backoff: Option<String>,
    max_backoff: Option<String>,
    retry_on_http_429: Option<bool>,
}

/// One validated `remote_write` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteSettings {
    pub name: String,
    pub url: String,
    pub timeout: Duration,
    pub headers: Vec<(String, String)>,
    pub queue: QueueSettings,
    pub http: HttpSettings,
}

/// `queue_config`, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSettings {
    pub capacity: usize,
    pub shards: usize,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub retry_on_http_429: bool,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            capacity: 10_000,
            shards: 4,
            max_samples_per_send: 2_000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: true,
        }
    }
}

/// Validates the `remote_write` list; every problem has its field path
/// (`remote_write[1].queue_config.capacity`).
pub fn validate(entries: &[Value]) -> Result<Vec<RemoteWriteSettings>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut out: Vec<RemoteWriteSettings> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("remote_write[{i}]");
        if let Some(settings) = validate_entry(entry, &path, &mut problems) {
            if out.iter().any(|o| o.name == settings.name) {
                problems.push(Problem::at_field(
                    format!("{path}.name"),
                    format!(
                        "duplicate remote write name {:?}; give each entry its own `name`",
                        settings.name
                    ),
                ));
            }
            out.push(settings);
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn validate_entry(
    entry: &Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<RemoteWriteSettings> {
    let before = problems.len();
    let (raw, http) =
        crate::inline_http::split::<RemoteWriteRaw>(entry, path, &REMOTE_WRITE_KEYS, problems)?;
    let mut at = |field: &str, message: String| {
        let at = if field.is_empty() {
            path.to_string()
        } else {
            format!("{path}.{field}")
        };
        problems.push(Problem::at_field(at, message));
    };
    let url = raw.url.clone().unwrap_or_default();
    match reqwest::Url::parse(&url) {
        _ if url.is_empty() => at("url", "missing `url`: the receiver's write endpoint, e.g. http://prometheus:9090/api/v1/write".into()),
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        Ok(u) => at("url", format!("scheme {:?} is not supported; use http or https", u.scheme())),
        Err(e) => at("url", format!("{url:?} is not a URL: {e}")),
    }
    let mut duration = |field: &str, value: &Option<String>, default: Duration| match value {
        None => default,
        Some(text) => match parse_prometheus_duration(text) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                at(field, "must be greater than zero".into());
                default
            }
            Err(e) => {
                at(field, e.to_string());
                default
            }
        },
    };
    let timeout = duration(
        "remote_timeout",
        &raw.remote_timeout,
        DEFAULT_REMOTE_TIMEOUT,
    );
    let defaults = QueueSettings::default();
    let q = raw.queue_config.clone().unwrap_or_default();
    let queue = QueueSettings {
        capacity: q.capacity.unwrap_or(defaults.capacity),
        shards: q.max_shards.unwrap_or(defaults.shards),
        max_samples_per_send: q
            .max_samples_per_send
            .unwrap_or(defaults.max_samples_per_send),
        batch_send_deadline: duration(
            "queue_config.batch_send_deadline",
            &q.batch_send_deadline,
            defaults.batch_send_deadline,
        ),
        min_backoff: duration(
            "queue_config.min_backoff",
            &q.min_backoff,
            defaults.min_backoff,
        ),
        max_backoff: duration(
            "queue_config.max_backoff",
            &q.max_backoff,
            defaults.max_backoff,
        ),
        retry_on_http_429: q.retry_on_http_429.unwrap_or(defaults.retry_on_http_429),
    };
    for (field, value) in [
        ("capacity", queue.capacity),
        ("max_shards", queue.shards),
        ("max_samples_per_send", queue.max_samples_per_send),
    ] {
        if value == 0 {
            at(
                &format!("queue_config.{field}"),
                "must be at least 1".into(),
            );
        }
    }
    if q.min_shards.is_some_and(|min| min > queue.shards) {
        at(
            "queue_config.min_shards",
            format!("must not exceed max_shards ({})", queue.shards),
        );
    }
    if queue.min_backoff > queue.max_backoff {
        at(
            "queue_config.min_backoff",
            "must not exceed max_backoff".into(),
        );
    }
    let mut headers = Vec::new();
    for (name, value) in &raw.headers {
        let field = format!("headers.{name}");
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            at(&field, format!("{name} is set by remote write itself; remove it (use basic_auth or authorization for credentials)"));
        } else if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            || reqwest::header::HeaderValue::from_str(value).is_err()
        {
            at(&field, "is not a valid HTTP header".into());
        } else {
            headers.push((name.clone(), value.clone()));
        }
    }
    let name = raw.name.clone().unwrap_or_else(|| default_name(&url));
    (problems.len() == before).then_some(RemoteWriteSettings {
        name,
        url,
        timeout,
        headers,
        queue,
        http,
    })
}

/// `host:port/path` of the URL: a readable default name.
fn default_name(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(
        |_| url.to_string(),
        |u| {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}{port}{}", u.host_str().unwrap_or(""), u.path())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(yaml: &str) -> Vec<Value> {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults_and_inline_http_keys() {
        let settings = validate(&entries(
            "- url: http://127.0.0.1:9090/api/v1/write\n  basic_auth: {username: u, password: p}\n  headers: {X-Scope-OrgID: team-a}\n",
        ))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let s = &settings[0];
        assert_eq!(s.name, "127.0.0.1:9090/api/v1/write");
        assert_eq!(s.timeout, DEFAULT_REMOTE_TIMEOUT);
        assert_eq!(s.queue, QueueSettings::default());
        assert_eq!(
            s.headers,
            [("X-Scope-OrgID".to_string(), "team-a".to_string())]
        );
        assert_eq!(
            s.http
                .authorization
                .as_ref()
                .map(|a| a.expose().to_string()),
            Some("Basic dTpw".to_string())
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let problems = validate(&entries(
            "- url: ftp://x\n  remote_timeout: soon\n  queue_config: {capacity: 0, min_shards: 9, max_shards: 2}\n  headers: {Content-Type: x}\n  bearer_token: a\n  basic_auth: {username: u}\n- {url: 'http://a/w', name: n}\n- {url: 'http://b/w', name: n, nope: 1}\n- {url: 'http://c/w', name: n}\n",
        ))
        .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "remote_write[0]",
                "remote_write[0].url",
                "remote_write[0].remote_timeout",
                "remote_write[0].queue_config.capacity",
                "remote_write[0].queue_config.min_shards",
                "remote_write[0].headers.Content-Type",
                "remote_write[2]",
                "remote_write[3].name",
            ]
        );
        assert!(
            problems[0].message.contains("at most one of"),
            "{}",
            problems[0]
        );
        assert!(problems[6].message.contains("nope"), "{}", problems[6]);
    }
}
