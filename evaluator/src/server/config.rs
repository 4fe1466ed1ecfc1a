//! `vigil.yaml`, the evaluator's main configuration file: its format (the
//! doc comments below are the user reference) and the one validation pass
//! that turns it into a [`ValidatedConfig`].
//!
//! Validation goes all the way: it expands the rule-file globs and loads
//! every rule file, loads the notification config and builds its receivers,
//! so a config that validates can be started (or reloaded) without any
//! later surprise. Every problem found anywhere is reported, each with its
//! file, line and column where known, and field path.
//!
//! Relative paths are relative to the directory of the config file.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::database_location::{anchor_sqlite_url, DatabaseUrlSource};
use crate::history::lifecycle::HistorySettings;
use crate::labels::Labels;
pub use crate::notify::config::ReceiverIntegrations;
use crate::notify::config::{build_receivers, NotifyConfig};
use crate::notify::receivers::Secret;
use crate::rules::file::{is_valid_label_name, load_rule_files, GroupSpec};
use crate::scrape::{
    parse_prometheus_duration, validate_scrape_configs, ScrapeConfig, ScrapeDefaults,
    ValidScrapeConfig,
};
use vigil_common::http_server::{self, HttpLimits};
use vigil_common::problem::Problem;
use vigil_common::yaml_positions::{yaml_error, PositionIndex};

/// Default `web.listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9320";
/// Default `storage.database_url`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://vigil.db";
/// Default `storage.retention` of the history.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default `global.scrape_interval` (Prometheus' default).
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
/// Default `global.scrape_timeout` (Prometheus' default).
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `global.evaluation_interval` (Prometheus' default).
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(60);

/// The whole `vigil.yaml`, as written. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub global: GlobalSection,
    /// Prometheus `scrape_config` subset; see [`ScrapeConfig`].
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Rule files, as paths or globs (`rules/*.yaml`).
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// Alertmanager-format notification config; absent means every alert
    /// is printed on the console.
    pub notify_config_file: Option<String>,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub web: WebSection,
    #[serde(default)]
    pub reload: ReloadSection,
    /// Receivers of recording-rule output and `ALERTS`
    /// ([`crate::remote_write::config`]); none by default.
    #[serde(default)]
    pub remote_write: Vec<serde_yaml::Value>,
    /// The query API rule groups evaluate against
    /// ([`crate::datasource::config`]); none: the local window.
    pub datasource: Option<serde_yaml::Value>,
    /// Another datasource (or `local`) for the rule files a glob matches.
    #[serde(default)]
    pub rule_file_datasources: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub fleet: FleetSection,
}

/// `fleet:` — several replicas on one Postgres database sharing the rule
/// groups ([`crate::history::fleet`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// Shard the rule groups across the replicas sharing the history
    /// database: each group is evaluated by one live replica only. Needs
    /// Postgres. Default false (every replica evaluates every group).
    pub sharding: Option<bool>,
    /// How often a replica renews its membership and group leases and
    /// re-checks which groups it owns (default 1s); below the lease
    /// duration minus a fifth.
    pub heartbeat: Option<String>,
    /// How long each renewal keeps a lease (default 5s): a replica that
    /// dies loses its groups this long after its last renewal, and stops
    /// evaluating them a fifth of it before. Keep it plus the heartbeat
    /// below two evaluation intervals.
    pub lease_duration: Option<String>,
}

/// `global:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalSection {
    /// Default 1m.
    pub scrape_interval: Option<String>,
    /// Default 10s (capped at the scrape interval).
    pub scrape_timeout: Option<String>,
    /// How often rule groups run unless a group sets `interval`; default 1m.
    pub evaluation_interval: Option<String>,
    /// Added to every alert (unless the alert has the label already).
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
}

/// `storage:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// `sqlite://vigil.db` (default; a relative SQLite file is next to this
    /// config file) or `postgres://user@host/db`; the `DATABASE_URL`
    /// environment variable overrides it, taken as given (a relative SQLite
    /// file there is relative to the working directory).
    pub database_url: Option<String>,
    /// File holding the database URL (it carries the password), instead of
    /// `database_url`; `DATABASE_URL` still overrides it.
    pub database_url_file: Option<String>,
    /// How long the history keeps alerts and notifications; default 30d.
    pub retention: Option<String>,
    /// Most series the in-memory sample window holds; new series beyond it
    /// are dropped (and the scrape counts them). Default 1,000,000.
    pub series_limit: Option<usize>,
    /// High availability on Postgres: how long the notification leader's
    /// lease lasts after each renewal (default 5s). The leader stops
    /// sending a fifth of it before it could expire; a dead or frozen
    /// leader is replaced within it plus one renew interval.
    pub lease_duration: Option<String>,
    /// How often the leader renews its lease and a standby tries to take
    /// it (default 1s); below the lease duration minus a fifth.
    pub lease_renew_interval: Option<String>,
    /// Postgres behind a connection pooler in transaction mode (PgBouncer's
    /// `pool_mode = transaction`): keep no state on a server connection
    /// between transactions (unnamed statements, each in a transaction;
    /// migrations under a transaction-level lock). Default false.
    pub transaction_pooling: Option<bool>,
}

/// `web:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSection {
    /// `host:port` to serve the HTTP API on; default `127.0.0.1:9320`.
    pub listen: Option<String>,
    /// File holding the bearer token that mutating endpoints require; the
    /// `VIGIL_API_TOKEN` environment variable is used when unset.
    pub token_file: Option<String>,
    /// The URL users reach the evaluator at (links in notifications);
    /// default `http://<listen>`.
    pub external_url: Option<String>,
    /// When true, every read endpoint under `/api/` needs the bearer token
    /// too (`/-/healthy`, `/-/ready`, `/metrics` and the dashboard page stay
    /// open); default false. Needs a token (`token_file` or
    /// `VIGIL_API_TOKEN`).
    #[serde(default)]
    pub read_requires_token: bool,
    /// Time a client has to send a request's headers; default 10s.
    pub header_read_timeout: Option<String>,
    /// Time an idle keep-alive connection stays open; default 60s.
    pub idle_timeout: Option<String>,
    /// Most connections served at once; default 512.
    pub max_connections: Option<usize>,
}

/// `reload:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReloadSection {
    /// How often the config file, the rule files (globs re-expanded, so new
    /// files count) and the notification config are checked for changed
    /// content, which triggers a reload; `0s` turns watching off. Default
    /// 10s. Takes effect at start (a change needs a restart).
    pub watch_interval: Option<String>,
}

/// Default `reload.watch_interval`.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// Why a configuration was rejected: every problem found (errors, and the
/// warnings seen on the way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct ConfigErrors {
    pub problems: Vec<Problem>,
}

fn render(problems: &[Problem]) -> String {
    let errors = problems.iter().filter(|p| !p.is_warning()).count();
    let mut text = format!("configuration has {errors} error(s):");
    for p in problems {
        text.push_str("\n  ");
        text.push_str(&p.to_string());
    }
    text
}

/// A configuration that passed validation, with everything it refers to
/// loaded.
#[derive(Debug, Clone)]
pub struct ValidatedConfig {
    /// The config file.
    pub file: PathBuf,
    /// The file as written (to tell on reload which parts changed).
    pub raw: ConfigFile,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub evaluation_interval: Duration,
    pub external_labels: Labels,
    pub scrape_configs: Vec<ValidScrapeConfig>,
    /// The rule files the globs matched, sorted, without duplicates.
    pub rule_files: Vec<PathBuf>,
    /// The rule groups as written. The server empties this once it has
    /// built its rule groups from it ([`ValidatedConfig::forget_rule_specs`]).
    pub rule_groups: Vec<GroupSpec>,
    /// The notification config; `None` means console only.
    pub notify: Arc<NotifyConfig>,
    /// Whether `notify` is the built-in console-only config.
    pub console_only: bool,
    /// The notification config as written (Alertmanager's status API shows
    /// it, secrets masked).
    pub notify_text: String,
    pub receivers: Arc<ReceiverIntegrations>,
    pub storage: StorageSettings,
    pub web: WebSettings,
    /// How often the watched files are checked; `None`: not watched.
    pub watch_interval: Option<Duration>,
    /// Where recording-rule output and `ALERTS` are remote-written.
    pub remote_write: Vec<crate::remote_write::RemoteWriteSettings>,
    /// Which datasource each rule file's groups query.
    pub datasources: crate::datasource::DatasourceChoice,
    /// `fleet:`: rule-group sharding; `None` when off.
    pub fleet: Option<FleetSettings>,
    /// Warnings that did not reject the config (printed by `check config`,
    /// logged by the server).
    pub warnings: Vec<Problem>,
}

impl ValidatedConfig {
    /// Drops the rule specs: for the server's copy of the running
    /// configuration once the rule groups are built. The groups hold what
    /// they evaluate, and nothing reads the specs of the running
    /// configuration afterwards (a reload compares against the groups), so
    /// keeping them would hold every rule's labels, annotations and
    /// expression twice.
    pub fn forget_rule_specs(&mut self) {
        self.rule_groups = Vec::new();
    }
}

/// `fleet:` after validation, with sharding on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetSettings {
    pub heartbeat: Duration,
    pub lease_duration: Duration,
}

/// `storage:` after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageSettings {
    /// The URL to connect to, a relative SQLite file already anchored.
    pub database_url: String,
    /// Where `database_url` came from (printed by `check config`).
    pub database_url_source: DatabaseUrlSource,
    pub retention: Duration,
    pub series_limit: usize,
    pub lease_duration: Duration,
    pub lease_renew_interval: Duration,
    /// `storage.transaction_pooling` (Postgres only).
    pub pooling: crate::history::db::Pooling,
}

impl StorageSettings {
    /// What the history needs of these settings.
    pub fn history(&self) -> HistorySettings {
        HistorySettings {
            database_url: self.database_url.clone(),
            pooling: self.pooling,
            retention: self.retention,
            lease_duration: self.lease_duration,
            lease_renew_interval: self.lease_renew_interval,
        }
    }
}

/// `web:` after validation.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub listen: SocketAddr,
    /// Bearer token for mutating endpoints; `None` leaves them open.
    pub token: Option<Secret>,
    pub external_url: String,
    /// Whether reads under `/api/` need the token too.
    pub read_requires_token: bool,
    /// Header-read and idle timeouts, connection cap.
    pub http_limits: HttpLimits,
}

/// Checks the port of every host of a `postgres://` URL (a bad one would
/// only fail at the first connection, after `check config` said OK). The
/// message names the host and port only, never the URL: it may hold a
/// password.
fn postgres_port_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    for host in hosts.split(',') {
        let port = match host.strip_prefix('[') {
            // [IPv6]:port
            Some(v6) => v6.split_once(']').and_then(|(_, p)| p.strip_prefix(':')),
            None => host.split_once(':').map(|(_, p)| p),
        };
        let Some(port) = port else { continue };
        if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Some(format!(
                "port {port:?} of host {host:?} is not a TCP port (a number from 1 to 65535); fix it in storage.database_url (or DATABASE_URL)"
            ));
        }
    }
    None
}

/// Where environment overrides come from; a function so tests need not
/// touch the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The notification config used when `notify_config_file` is absent: every
/// alert goes to the console.
const CONSOLE_ONLY: &str =
    "route:\n  receiver: console\nreceivers:\n  - name: console\n    console_configs: [{}]\n";

/// Reads and validates `path` with everything it refers to.
pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<ValidatedConfig, ConfigErrors> {
    let src = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        problems: vec![Problem::new(
            path,
            None,
            "",
            format!("cannot read the configuration file: {e}; pass its path with --config"),
        )],
    })?;
    parse(&src, path, env)
}

/// Collects problems positioned in one file.
struct Problems<'a> {
    file: &'a Path,
    positions: &'a PositionIndex,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn at(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let field = field.into();
        let pos = self.positions.value(&field);
        self.list.push(Problem::new(self.file, pos, field, message));
    }
}

/// Validates `src`, the content of the config file `path`.
pub fn parse(src: &str, path: &Path, env: EnvLookup<'_>) -> Result<ValidatedConfig, ConfigErrors> {
    let raw: ConfigFile = if src.trim().is_empty() {
        ConfigFile::default()
    } else {
        serde_yaml::from_str(src).map_err(|e| {
            let (position, message) = yaml_error(&e);
            let message = format!("{message}; see the evaluator configuration reference");
            ConfigErrors {
                problems: vec![Problem::new(path, position, "", message)],
            }
        })?
    };
    let positions = PositionIndex::build(src);
    let mut problems = Problems {
        file: path,
        positions: &positions,
        list: Vec::new(),
    };
    let dir = config_dir(path);

    let mut duration = |field: &str, value: &Option<String>, default: Duration| match value {
        None => default,
        Some(text) => match parse_prometheus_duration(text) {
            Ok(d) if d.is_zero() => {
                problems.at(field, "must be greater than zero");
                default
            }
            Ok(d) => d,
            Err(e) => {
                problems.at(field, e.to_string());
                default
            }
        },
    };
    let scrape_interval = duration(
        "global.scrape_interval",
        &raw.global.scrape_interval,
        DEFAULT_SCRAPE_INTERVAL,
    );
    let scrape_timeout = duration(
        "global.scrape_timeout",
        &raw.global.scrape_timeout,
        DEFAULT_SCRAPE_TIMEOUT,
    );
    let evaluation_interval = duration(
        "global.evaluation_interval",
        &raw.global.evaluation_interval,
        DEFAULT_EVALUATION_INTERVAL,
    );
    let retention = duration(
        "storage.retention",
        &raw.storage.retention,
        DEFAULT_RETENTION,
    );
    let http_limits = HttpLimits {
        header_read_timeout: duration(
            "web.header_read_timeout",
            &raw.web.header_read_timeout,
            http_server::DEFAULT_HEADER_READ_TIMEOUT,
        ),
        idle_timeout: duration(
            "web.idle_timeout",
            &raw.web.idle_timeout,
            http_server::DEFAULT_IDLE_TIMEOUT,
        ),
        max_connections: raw
            .web
            .max_connections
            .unwrap_or(http_server::DEFAULT_MAX_CONNECTIONS),
    };
    let lease_duration = duration(
        "storage.lease_duration",
        &raw.storage.lease_duration,
        crate::history::leader::DEFAULT_LEASE_DURATION,
    );
    let lease_renew_interval = duration(
        "storage.lease_renew_interval",
        &raw.storage.lease_renew_interval,
        crate::history::leader::DEFAULT_RENEW_EVERY,
    );
    let fleet_heartbeat = duration(
        "fleet.heartbeat",
        &raw.fleet.heartbeat,
        crate::history::fleet::DEFAULT_HEARTBEAT,
    );
    let fleet_lease = duration(
        "fleet.lease_duration",
        &raw.fleet.lease_duration,
        crate::history::fleet::DEFAULT_LEASE_DURATION,
    );
    let watch_interval = match &raw.reload.watch_interval {
        None => Some(DEFAULT_WATCH_INTERVAL),
        Some(text) => match parse_prometheus_duration(text) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(e) => {
                problems.at(
                    "reload.watch_interval",
                    format!("{e}; use a duration like 10s, or 0s to turn watching off"),
                );
                None
            }
        },
    };
    if raw.global.scrape_timeout.is_some() && scrape_timeout > scrape_interval {
        problems.at(
            "global.scrape_timeout",
            format!(
                "must not be longer than global.scrape_interval ({})",
                crate::scrape::config::format_duration(scrape_interval)
            ),
        );
    }
    for name in raw.global.external_labels.keys() {
        if !is_valid_label_name(name) {
            problems.at(
                format!("global.external_labels.{name}"),
                format!("{name:?} is not a valid label name; use letters, digits and _, not starting with a digit"),
            );
        }
    }
    let external_labels = Labels::from_pairs(
        raw.global
            .external_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );

    let scrape_configs = match validate_scrape_configs(
        &raw.scrape_configs,
        &ScrapeDefaults {
            scrape_interval,
            scrape_timeout: scrape_timeout.min(scrape_interval),
            config_dir: dir.clone(),
        },
    ) {
        Ok(valid) => valid,
        Err(errors) => {
            for e in errors {
                problems.at(e.field, e.message);
            }
            Vec::new()
        }
    };

    if raw.storage.database_url.is_some() && raw.storage.database_url_file.is_some() {
        problems.at(
            "storage.database_url_file",
            "set either storage.database_url or storage.database_url_file, not both",
        );
    }
    let url_from_file = match &raw.storage.database_url_file {
        None => None,
        Some(file) => match std::fs::read_to_string(dir.join(file)) {
            Ok(text) if text.trim().is_empty() => {
                problems.at(
                    "storage.database_url_file",
                    format!(
                        "{}: the file is empty; write the database URL into it",
                        dir.join(file).display()
                    ),
                );
                None
            }
            Ok(text) => Some(text.trim().to_string()),
            Err(e) => {
                problems.at(
                    "storage.database_url_file",
                    format!(
                        "cannot read {}: {e}; create it or fix the path (relative paths are relative to the config file)",
                        dir.join(file).display()
                    ),
                );
                None
            }
        },
    };
    // A relative SQLite file in the config (or its URL file) is next to the
    // config file; DATABASE_URL is taken as given (working directory).
    let (database_url, database_url_source) = match (
        env("DATABASE_URL"),
        url_from_file,
        &raw.storage.database_url,
    ) {
        (Some(url), _, _) => (url, DatabaseUrlSource::Environment),
        (None, Some(url), _) => {
            let file = dir.join(raw.storage.database_url_file.as_deref().unwrap_or_default());
            (anchor_sqlite_url(&url, &dir), DatabaseUrlSource::File(file))
        }
        (None, None, Some(url)) => (anchor_sqlite_url(url, &dir), DatabaseUrlSource::Config),
        (None, None, None) => (
            anchor_sqlite_url(DEFAULT_DATABASE_URL, &dir),
            DatabaseUrlSource::Default,
        ),
    };
    let storage = StorageSettings {
        database_url,
        database_url_source,
        retention,
        series_limit: raw
            .storage
            .series_limit
            .unwrap_or(crate::store::DEFAULT_SERIES_LIMIT),
        lease_duration,
        lease_renew_interval,
        pooling: if raw.storage.transaction_pooling == Some(true) {
            crate::history::db::Pooling::Transaction
        } else {
            crate::history::db::Pooling::Session
        },
    };
    if let Err(problem) =
        crate::history::leader::LeaderConfig::new(lease_duration, lease_renew_interval).check()
    {
        problems.at("storage.lease_renew_interval", problem);
    }
    let fleet = (raw.fleet.sharding == Some(true)).then_some(FleetSettings {
        heartbeat: fleet_heartbeat,
        lease_duration: fleet_lease,
    });
    if let Err(problem) =
        crate::history::leader::LeaderConfig::new(fleet_lease, fleet_heartbeat).check()
    {
        problems.at("fleet.heartbeat", problem);
    }
    if fleet.is_some() && storage.database_url.starts_with("sqlite:") {
        problems.at(
            "fleet.sharding",
            format!(
                "true, but the history database {} is SQLite, which one replica uses alone; sharding splits the rule groups between replicas sharing a Postgres database: set storage.database_url (or DATABASE_URL) to a postgres:// URL, or remove fleet.sharding",
                storage.database_url
            ),
        );
    }
    let url = &storage.database_url;
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        problems.at(
            "storage.database_url",
            "expected sqlite://FILE or postgres://USER@HOST/DB (from storage.database_url or DATABASE_URL)",
        );
    }
    if let Some(problem) = postgres_port_problem(url) {
        problems.at("storage.database_url", problem);
    }
    if raw.storage.transaction_pooling == Some(true) && url.starts_with("sqlite:") {
        problems.at(
            "storage.transaction_pooling",
            format!(
                "true, but the history database {url} is SQLite; the setting is for Postgres behind a connection pooler in transaction mode (PgBouncer's pool_mode = transaction): remove it, or set storage.database_url (or DATABASE_URL) to the pooler's postgres:// URL"
            ),
        );
    }
    if storage.series_limit == 0 {
        problems.at("storage.series_limit", "must be at least 1");
    }
    if http_limits.max_connections == 0 {
        problems.at("web.max_connections", "must be at least 1");
    }

    let listen_text = raw.web.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            problems.at(
                "web.listen",
                format!("{listen_text:?} is not an address; expected IP:PORT like 127.0.0.1:9320"),
            );
            SocketAddr::from(([127, 0, 0, 1], 9320))
        }
    };
    let token = match &raw.web.token_file {
        Some(file) => match std::fs::read_to_string(dir.join(file)) {
            Ok(text) if text.trim().is_empty() => {
                problems.at("web.token_file", format!("{file}: the token file is empty"));
                None
            }
            Ok(text) => Some(Secret::new(text.trim_end_matches(['\r', '\n']))),
            Err(e) => {
                problems.at(
                    "web.token_file",
                    format!("cannot read token file {}: {e}", dir.join(file).display()),
                );
                None
            }
        },
        None => env("VIGIL_API_TOKEN").map(Secret::new),
    };
    let read_requires_token = raw.web.read_requires_token;
    if read_requires_token && token.is_none() && raw.web.token_file.is_none() {
        problems.at(
            "web.read_requires_token",
            "true, but no token is configured: set web.token_file or VIGIL_API_TOKEN, or set read_requires_token to false",
        );
    }
    let external_url = match &raw.web.external_url {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            u.trim_end_matches('/').to_string()
        }
        Some(u) => {
            problems.at(
                "web.external_url",
                format!("{u:?} must be an http:// or https:// URL"),
            );
            String::new()
        }
        None => format!("http://{listen}"),
    };

    let remote_write =
        crate::remote_write::config::validate(&raw.remote_write).unwrap_or_else(|found| {
            for p in found {
                problems.at(p.field, p.message);
            }
            Vec::new()
        });

    let datasources = crate::datasource::config::validate(
        raw.datasource.as_ref(),
        &raw.rule_file_datasources,
        &dir,
    )
    .unwrap_or_else(|found| {
        for p in found {
            problems.at(p.field, p.message);
        }
        crate::datasource::DatasourceChoice::default()
    });

    let (rule_files, rule_file_problems) = expand_rule_files(&dir, &raw.rule_files);
    for (i, message) in rule_file_problems {
        problems.at(format!("rule_files[{i}]"), message);
    }

    let mut list = problems.list;
    let mut warnings = Vec::new();
    let rule_groups = match load_rule_files(&rule_files) {
        Ok(groups) => groups,
        Err(e) => {
            list.extend(e.problems);
            Vec::new()
        }
    };
    check_group_names(&rule_groups, &mut list);

    let (notify_text, notify_path, console_only) = match &raw.notify_config_file {
        Some(file) => {
            let p = dir.join(file);
            match std::fs::read_to_string(&p) {
                Ok(text) => (text, p, false),
                Err(e) => {
                    let pos = positions.value("notify_config_file");
                    let message = format!("cannot read notification config {}: {e}", p.display());
                    list.push(Problem::new(path, pos, "notify_config_file", message));
                    (CONSOLE_ONLY.to_string(), PathBuf::from("<console>"), true)
                }
            }
        }
        None => (CONSOLE_ONLY.to_string(), PathBuf::from("<console>"), true),
    };
    let notify = match crate::notify::config::parse(&notify_text, &notify_path) {
        Ok(config) => {
            warnings.extend(config.warnings.iter().cloned());
            Some(config)
        }
        Err(crate::notify::config::ConfigError::Invalid(ps)) => {
            split_problems(ps, &mut warnings, &mut list);
            None
        }
        Err(e) => {
            list.push(Problem::new(&notify_path, None, "", e.to_string()));
            None
        }
    };
    let receivers = match &notify {
        Some(config) => match build_receivers(config) {
            Ok((receivers, warned)) => {
                warnings.extend(warned);
                receivers
            }
            Err(ps) => {
                split_problems(ps, &mut warnings, &mut list);
                HashMap::new()
            }
        },
        None => HashMap::new(),
    };

    match notify {
        Some(notify) if list.is_empty() => Ok(ValidatedConfig {
            file: path.to_path_buf(),
            raw,
            scrape_interval,
            scrape_timeout,
            evaluation_interval,
            external_labels,
            scrape_configs,
            rule_files,
            rule_groups,
            notify: Arc::new(notify),
            console_only,
            notify_text,
            receivers: Arc::new(receivers),
            storage,
            web: WebSettings {
                listen,
                token,
                external_url,
                read_requires_token,
                http_limits,
            },
            watch_interval,
            remote_write,
            datasources,
            fleet,
            warnings,
        }),
        _ => {
            list.extend(warnings);
            Err(ConfigErrors { problems: list })
        }
    }
}

/// Sorts problems into the warnings and the errors.
fn split_problems(problems: Vec<Problem>, warnings: &mut Vec<Problem>, errors: &mut Vec<Problem>) {
    for problem in problems {
        if problem.is_warning() {
            warnings.push(problem);
        } else {
            errors.push(problem);
        }
    }
}

/// The directory relative paths in the config file `path` are resolved
/// against (its own directory).
pub fn config_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Expands `rule_files` (paths or globs, relative to `dir`) into the files
/// they match, sorted and without duplicates, and the problems found as
/// (index into `patterns`, message): a bad glob, an unreadable directory,
/// a plain path that does not exist.
pub fn expand_rule_files(dir: &Path, patterns: &[String]) -> (Vec<PathBuf>, Vec<(usize, String)>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let full = dir.join(pattern);
        let is_glob = pattern.contains(['*', '?', '[']);
        match glob::glob(&full.to_string_lossy()) {
            Err(e) => problems.push((i, format!("{pattern:?} is not a valid glob: {e}"))),
            Ok(paths) => {
                let before = files.len();
                for entry in paths {
                    match entry {
                        Ok(p) if p.is_file() => files.push(p),
                        Ok(_) => {}
                        Err(e) => problems.push((i, e.to_string())),
                    }
                }
                if !is_glob && files.len() == before {
                    problems.push((i, format!("rule file {} does not exist", full.display())));
                }
            }
        }
    }
    files.sort();
    files.dedup();
    (files, problems)
}

/// Two groups with the same name in the same file would share evaluation
/// state on reload, so Prometheus rejects them; so does Vigil.
fn check_group_names(groups: &[GroupSpec], list: &mut Vec<Problem>) {
    for (i, g) in groups.iter().enumerate() {
        if groups[..i]
            .iter()
            .any(|o| o.file == g.file && o.name == g.name)
        {
            let message = format!(
                "group name {:?} is used twice in this file; group names must be unique per file",
                g.name
            );
            list.push(Problem::new(&g.file, None, "groups", message));
        }
    }
}

#[cfg(test)]
mod tests;
