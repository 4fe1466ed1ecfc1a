//! The `exporter.yaml` schema: loading, defaults and validation.
//!
//! Loading runs in three phases so that one run reports every problem:
//! 1. serde deserialises the file into loose `raw` structs (every key
//!    optional, unknown keys rejected); each probe and metric is deserialised
//!    on its own, so a typo in one does not hide problems in the others;
//! 2. `validate` checks everything (names, URLs, durations, collisions) and
//!    applies the defaults from [`defaults`], collecting [`Problem`]s;
//! 3. the result is a [`Config`]: plain, validated data that the server, the
//!    business counters and the prober consume without further checks.
//!
//! Every problem carries the file, line and column (from
//! [`vigil_common::yaml_positions`]), the
//! field path (`probes[1].timeout`) and what was expected.

pub mod defaults;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use vigil_common::duration::{format_duration, parse_duration, DurationError};
pub use vigil_common::http_server::HttpLimits;
pub use vigil_common::problem::Problem;
pub use vigil_common::yaml_positions::Position;

use crate::probe::{validate_targets, Expectation, ProbeTarget, TargetError};

/// Environment variable holding the ingest token when `business.token_file`
/// is not set.
pub const INGEST_TOKEN_ENV: &str = "VIGIL_INGEST_TOKEN";

/// A validated exporter configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address of the exporter's HTTP server (`--listen` overrides it).
    pub listen: SocketAddr,
    /// `http:` header-read and idle timeouts and connection cap of that
    /// server (defaults 10s, 60s, 512).
    pub http: HttpLimits,
    /// Serve `/demo/ok`, `/demo/error` and `/demo/slow`.
    pub demo: bool,
    /// URLs to probe, in file order; names are unique.
    pub probes: Vec<ProbeConfig>,
    /// Most probes in flight at once (`probe_concurrency`, default 64).
    pub probe_concurrency: usize,
    /// Counters and gauges fed through `POST /api/v1/events`.
    pub business: BusinessConfig,
}

impl Default for Config {
    /// The configuration of an empty `exporter.yaml`.
    fn default() -> Config {
        Config {
            listen: defaults::listen(),
            http: HttpLimits::default(),
            demo: false,
            probes: Vec::new(),
            probe_concurrency: defaults::PROBE_CONCURRENCY,
            business: BusinessConfig::default(),
        }
    }
}

/// One URL to probe on a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// Unique name; becomes the `target` label together with the URL.
    pub name: String,
    /// An absolute `http://` or `https://` URL.
    pub url: String,
    /// Request method, upper case (`GET`, `HEAD`, `POST`, ...).
    pub method: http::Method,
    /// Extra request headers; names and values are valid HTTP.
    pub headers: BTreeMap<String, String>,
    /// Request body (empty: none).
    pub body: String,
    /// Time between two probes (default 30s).
    pub interval: Duration,
    /// Time limit of one probe (default 5s); never more than `interval`.
    pub timeout: Duration,
    /// Follow 3xx redirects (default true).
    pub follow_redirects: bool,
    /// Verify the server's TLS certificate (default true).
    pub tls_verify: bool,
    /// The compiled `expect` expression deciding success (default
    /// [`Expectation::default`]: `status >= 200 && status < 400`).
    pub expect: Expectation,
}

impl ProbeConfig {
    /// The prober's form of this probe, field for field. A validated config
    /// always converts; the error is there for hand-built values.
    pub fn to_target(&self) -> Result<ProbeTarget, TargetError> {
        let mut target = ProbeTarget::new(self.name.clone(), &self.url)?;
        target.method = self.method.clone();
        target.headers = self
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        target.body = (!self.body.is_empty()).then(|| self.body.clone());
        target.interval = self.interval;
        target.timeout = self.timeout;
        target.follow_redirects = self.follow_redirects;
        target.tls_verify = self.tls_verify;
        target.expect = self.expect.clone();
        Ok(target)
    }
}

impl Config {
    /// Every probe as a [`ProbeTarget`], in file order, with every problem
    /// the prober's own checks find ([`validate_targets`]).
    pub fn probe_targets(&self) -> Result<Vec<ProbeTarget>, Vec<TargetError>> {
        let mut targets = Vec::new();
        let mut problems = Vec::new();
        for probe in &self.probes {
            match probe.to_target() {
                Ok(target) => targets.push(target),
                Err(error) => problems.push(error),
            }
        }
        problems.extend(validate_targets(&targets));
        if problems.is_empty() {
            Ok(targets)
        } else {
            Err(problems)
        }
    }
}

/// The `business` section.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessConfig {
    /// Bearer token that `POST /api/v1/events` requires; `None` disables
    /// ingest (every post is refused with 403).
    pub token: Option<IngestToken>,
    /// Most label sets one metric may hold (default 1000).
    pub max_label_sets: usize,
    pub counters: Vec<MetricConfig>,
    pub gauges: Vec<MetricConfig>,
}

impl Default for BusinessConfig {
    fn default() -> BusinessConfig {
        BusinessConfig {
            token: None,
            max_label_sets: defaults::MAX_LABEL_SETS,
            counters: Vec::new(),
            gauges: Vec::new(),
        }
    }
}

/// A declared business counter or gauge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricConfig {
    /// Prometheus metric name (counters end in `_total`, gauges do not).
    pub name: String,
    /// HELP text.
    pub help: String,
    /// Label names every event for this metric must carry, no more, no less.
    pub labels: Vec<String>,
}

/// The ingest bearer token. Its `Debug` form hides the secret so that it
/// never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct IngestToken(String);

impl IngestToken {
    /// Wraps a token; surrounding whitespace (a trailing newline in a token
    /// file) is not part of it.
    pub fn new(token: &str) -> Option<IngestToken> {
        let token = token.trim();
        (!token.is_empty()).then(|| IngestToken(token.to_owned()))
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IngestToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IngestToken(<redacted>)")
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}; check the path", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The problems found in the file (empty when it could not be read).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(problems) => problems,
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    let count = problems.len();
    let noun = if count == 1 { "problem" } else { "problems" };
    let mut text = format!("invalid configuration ({count} {noun}):");
    for problem in problems {
        text.push_str("\n  ");
        text.push_str(&problem.to_string());
    }
    text
}

impl Config {
    /// Reads and validates `path`; the ingest token falls back to the
    /// `VIGIL_INGEST_TOKEN` environment variable.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let env_token = std::env::var(INGEST_TOKEN_ENV).ok();
        Config::parse(&text, path, env_token.as_deref())
    }

    /// Validates `text` as if read from `file` (used in messages and to
    /// resolve a relative `token_file`). `env_token` is the value of
    /// `VIGIL_INGEST_TOKEN`, used when `business.token_file` is not set.
    pub fn parse(text: &str, file: &Path, env_token: Option<&str>) -> Result<Config, ConfigError> {
        validate::validate(text, file, env_token).map_err(ConfigError::Invalid)
    }
}
