//! `ProbeTarget`: one URL to probe and how, the runtime form of a `probes:`
//! entry in `exporter.yaml`. The config loader fills it and calls
//! [`ProbeTarget::validate`]; the prober trusts a validated target.

use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use reqwest::Url;

use super::expect::Expectation;

/// Default time between the starts of two probes of one target.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Default limit for one whole probe (connect, TLS, request, body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// One target of the prober.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeTarget {
    /// The `target` label of every metric of this probe.
    pub name: String,
    /// What to request; the `url` label. Only `http` and `https`.
    pub url: Url,
    /// Request method (default GET).
    pub method: Method,
    /// Request headers, in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// Request body; `None` sends none.
    pub body: Option<String>,
    /// Time between probe starts (default 30s).
    pub interval: Duration,
    /// Limit for one whole probe (default 5s).
    pub timeout: Duration,
    /// Follow up to 10 redirects (default true); off, a 3xx is the result.
    pub follow_redirects: bool,
    /// Verify the server certificate and host name (default true).
    pub tls_verify: bool,
    /// What makes the probe a success (default `status >= 200 && status < 400`).
    pub expect: Expectation,
}

/// A problem with one target, found by [`ProbeTarget::new`] or
/// [`ProbeTarget::validate`]. Each names the target and the field; the
/// config loader uses [`TargetError::field`] and [`TargetError::reason`] to
/// report it at the field's line in `exporter.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetError {
    /// `name` is empty.
    EmptyName {
        /// The target's URL, to find it in the file.
        url: String,
    },
    /// `url` does not parse.
    InvalidUrl {
        /// Target name.
        target: String,
        /// The URL as written.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// `url` is not http or https.
    UnsupportedScheme {
        /// Target name.
        target: String,
        /// The rejected scheme.
        scheme: String,
    },
    /// `interval` is zero.
    ZeroInterval {
        /// Target name.
        target: String,
    },
    /// `timeout` is zero.
    ZeroTimeout {
        /// Target name.
        target: String,
    },
    /// A header name is not a valid HTTP header name.
    InvalidHeaderName {
        /// Target name.
        target: String,
        /// The header name as written.
        name: String,
    },
    /// A header value contains characters HTTP does not allow (e.g. a newline).
    InvalidHeaderValue {
        /// Target name.
        target: String,
        /// The header name.
        name: String,
    },
    /// Two targets share name and URL, so their metrics would collide.
    Duplicate {
        /// Target name.
        target: String,
        /// Target URL.
        url: String,
    },
}

impl TargetError {
    /// The `probes[]` field the problem is in: `name`, `url`, `interval`,
    /// `timeout` or `headers`.
    pub fn field(&self) -> &'static str {
        match self {
            TargetError::EmptyName { .. } | TargetError::Duplicate { .. } => "name",
            TargetError::InvalidUrl { .. } | TargetError::UnsupportedScheme { .. } => "url",
            TargetError::ZeroInterval { .. } => "interval",
            TargetError::ZeroTimeout { .. } => "timeout",
            TargetError::InvalidHeaderName { .. } | TargetError::InvalidHeaderValue { .. } => {
                "headers"
            }
        }
    }

    /// The header a header problem is about.
    pub fn header(&self) -> Option<&str> {
        match self {
            TargetError::InvalidHeaderName { name, .. }
            | TargetError::InvalidHeaderValue { name, .. } => Some(name),
            _ => None,
        }
    }

    /// What is wrong and what to write instead, without naming the target
    /// or the field (the config loader reports those as a position).
    pub fn reason(&self) -> String {
        match self {
            TargetError::EmptyName { .. } => {
                "is empty; give every probe a short unique name, it becomes the `target` label"
                    .to_owned()
            }
            TargetError::InvalidUrl { url, reason, .. } => format!(
                "has value `{url}`, which is not a valid URL ({reason}); write an absolute http:// or https:// URL such as https://shop.example/healthz"
            ),
            TargetError::UnsupportedScheme { scheme, .. } => format!(
                "has scheme `{scheme}`, which is not supported; only http:// and https:// URLs can be probed"
            ),
            TargetError::ZeroInterval { .. } => "must be greater than 0s, e.g. 30s".to_owned(),
            TargetError::ZeroTimeout { .. } => "must be greater than 0s, e.g. 5s".to_owned(),
            TargetError::InvalidHeaderName { name, .. } => format!(
                "has invalid header name `{name}`; names are letters, digits and `-`"
            ),
            TargetError::InvalidHeaderValue { name, .. } => format!(
                "has an invalid value for `{name}`; values must be visible ASCII without line breaks"
            ),
            TargetError::Duplicate { url, .. } => format!(
                "is configured twice with url `{url}`; the pair (name, url) must be unique because it labels the metrics"
            ),
        }
    }
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TargetError::EmptyName { url } => write!(f, "probe with url `{url}`")?,
            TargetError::InvalidUrl { target, .. }
            | TargetError::UnsupportedScheme { target, .. }
            | TargetError::ZeroInterval { target }
            | TargetError::ZeroTimeout { target }
            | TargetError::InvalidHeaderName { target, .. }
            | TargetError::InvalidHeaderValue { target, .. }
            | TargetError::Duplicate { target, .. } => write!(f, "probe `{target}`")?,
        }
        write!(f, ": field `{}` {}", self.field(), self.reason())
    }
}

impl std::error::Error for TargetError {}

impl ProbeTarget {
    /// A target with every optional field at its default.
    pub fn new(name: impl Into<String>, url: &str) -> Result<Self, TargetError> {
        let name = name.into();
        let parsed = Url::parse(url).map_err(|error| TargetError::InvalidUrl {
            target: name.clone(),
            url: url.to_string(),
            reason: error.to_string(),
        })?;
        Ok(Self {
            name,
            url: parsed,
            method: Method::GET,
            headers: Vec::new(),
            body: None,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            follow_redirects: true,
            tls_verify: true,
            expect: Expectation::default(),
        })
    }

    /// Every problem with this target (empty when it is fine), so a config
    /// loader can report them all at once.
    pub fn validate(&self) -> Vec<TargetError> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push(TargetError::EmptyName {
                url: self.url.to_string(),
            });
        }
        if !matches!(self.url.scheme(), "http" | "https") {
            problems.push(TargetError::UnsupportedScheme {
                target: self.name.clone(),
                scheme: self.url.scheme().to_string(),
            });
        }
        if self.interval.is_zero() {
            problems.push(TargetError::ZeroInterval {
                target: self.name.clone(),
            });
        }
        if self.timeout.is_zero() {
            problems.push(TargetError::ZeroTimeout {
                target: self.name.clone(),
            });
        }
        problems.extend(self.header_problems());
        problems
    }

    /// True when the URL uses TLS, i.e. a certificate expiry is expected.
    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// The configured headers that are valid HTTP (all of them, once the
    /// target passed [`ProbeTarget::validate`]).
    pub(crate) fn valid_headers(&self) -> HeaderMap {
        self.parse_headers().0
    }

    /// Every header problem of this target.
    fn header_problems(&self) -> Vec<TargetError> {
        self.parse_headers().1
    }

    fn parse_headers(&self) -> (HeaderMap, Vec<TargetError>) {
        let mut map = HeaderMap::new();
        let mut problems = Vec::new();
        for (name, value) in &self.headers {
            let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
                problems.push(TargetError::InvalidHeaderName {
                    target: self.name.clone(),
                    name: name.clone(),
                });
                continue;
            };
            let Ok(header_value) = HeaderValue::from_str(value) else {
                problems.push(TargetError::InvalidHeaderValue {
                    target: self.name.clone(),
                    name: name.clone(),
                });
                continue;
            };
            map.append(header_name, header_value);
        }
        (map, problems)
    }
}

/// Validates a whole target list: each target, plus uniqueness of
/// (name, url). Returns every problem found.
pub fn validate_targets(targets: &[ProbeTarget]) -> Vec<TargetError> {
    let mut problems: Vec<TargetError> = targets.iter().flat_map(ProbeTarget::validate).collect();
    let mut seen = std::collections::HashSet::new();
    for target in targets {
        if !seen.insert((target.name.as_str(), target.url.as_str())) {
            problems.push(TargetError::Duplicate {
                target: target.name.clone(),
                url: target.url.to_string(),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ProbeTarget {
        ProbeTarget::new("shop", "https://shop.example/healthz").expect("valid url")
    }

    #[test]
    fn new_target_has_documented_defaults() {
        let target = target();
        assert_eq!(target.method, Method::GET);
        assert_eq!(target.interval, Duration::from_secs(30));
        assert_eq!(target.timeout, Duration::from_secs(5));
        assert!(target.follow_redirects && target.tls_verify);
        assert!(target.expect.is_default());
        assert!(target.validate().is_empty());
    }

    #[test]
    fn unparsable_url_is_rejected_with_the_target_name() {
        let error = ProbeTarget::new("shop", "not a url").expect_err("invalid");
        assert!(
            error.to_string().starts_with("probe `shop`: field `url`"),
            "{error}"
        );
    }

    #[test]
    fn validate_reports_every_problem_at_once() {
        let mut target = ProbeTarget::new("", "ftp://files.example/").expect("parses");
        target.interval = Duration::ZERO;
        target.timeout = Duration::ZERO;
        target.headers = vec![
            ("bad name".into(), "v".into()),
            ("x-ok".into(), "line\nbreak".into()),
        ];
        assert_eq!(target.validate().len(), 6, "{:#?}", target.validate());
    }

    #[test]
    fn same_name_and_url_twice_is_a_duplicate_but_same_name_other_url_is_not() {
        let first = target();
        let mut other_url = target();
        other_url.url = Url::parse("https://shop.example/other").expect("valid");
        assert!(validate_targets(&[first.clone(), other_url]).is_empty());
        let problems = validate_targets(&[first.clone(), first]);
        assert!(
            matches!(problems.as_slice(), [TargetError::Duplicate { .. }]),
            "{problems:?}"
        );
    }
}
