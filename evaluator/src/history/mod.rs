//! Alert history in SQL: every alert episode and state transition, the
//! notification outbox and delivery log, silences, and the state a restart
//! or a fail-over needs (alert `for` timers, notification log, cooldowns).
//! It exists so that no alert is lost or sent twice across restarts, and so
//! that MTTA, MTTR and the noisiest rules are a query away.
//!
//! # Configuration
//!
//! The `storage:` section of `vigil.yaml`:
//!
//! ```yaml
//! storage:
//!   database_url: sqlite://vigil.db   # default; or postgres://user@host/db
//!   retention: 30d                    # default; closed history older than this is pruned
//! ```
//!
//! - `database_url`: `sqlite://PATH` (created on first start; a relative
//!   PATH in `vigil.yaml` is relative to its directory, one in `DATABASE_URL`
//!   to the working directory) for a single node, or `postgres://…` (also
//!   `postgresql://`) for production and for high availability. The
//!   environment variable `DATABASE_URL`, when set and not empty, overrides
//!   the file ([`StorageConfig::effective_database_url`]).
//! - `retention`: how long closed alert episodes (and their events), sent or
//!   failed notifications, expired silences and notification-log entries are
//!   kept. Open episodes, pending notifications and active silences are
//!   never pruned.
//!
//! Behind a connection pooler in transaction mode (PgBouncer's
//! `pool_mode = transaction`) the server config's
//! `storage.transaction_pooling: true` makes every statement unnamed and
//! transactional and migrates under a transaction-level lock
//! ([`db::Pooling::Transaction`]; see [`db`]).
//!
//! The schema is created and upgraded automatically at start (numbered
//! migrations in `evaluator/migrations/`, the same files for both
//! databases). Several evaluators may share one Postgres database: one of
//! them leads and sends notifications ([`leader`], by a lease with a
//! fencing epoch: [`lease`]); all may write history, and every write is
//! idempotent, so the same transition recorded twice is stored once. The
//! leader's outbox claims and notification-log writes carry its epoch and
//! are refused once another replica has taken the lease.
//!
//! # What is stored
//!
//! | table | one row per | notes |
//! | --- | --- | --- |
//! | `alerts` | alert episode (active → resolved) | labels and annotations as JSON text, severity (the `severity` label), state, start, first firing, end, last value, acknowledgement (who, when, comment) |
//! | `alert_events` | state transition | from, to, when, value |
//! | `notifications` | notification per receiver integration | outbox and log: idempotency key, payload (JSON text), status `pending`/`sent`/`failed`, attempts, last error, response code, message id, created/next attempt/sent times |
//! | `notification_alerts` | alert in a notification | links notifications to episodes and rules |
//! | `silences` | silence | matchers as JSON, window, author, comment |
//! | `alert_state` | alert the state machine tracks | restores `for` timers after a restart |
//! | `notify_log`, `cooldowns` | receiver × group / receiver × alert | the notifier's dedup and cooldown memory |
//! | `leases` | named lease | holder, fencing epoch, expiry on the database's clock ([`lease`]) |
//!
//! Timestamps are integer unix milliseconds (UTC); JSON is stored as text,
//! so both databases hold the same bytes.
//!
//! # Parts
//!
//! - [`db`]: connecting (SQLite or Postgres behind sqlx's `Any` driver, one
//!   code path), migrating, and [`db::DbConn`], the connection every query
//!   runs on (it applies [`db::Pooling`]).
//! - [`store`]: [`store::HistoryStore`], the async API: episodes, events,
//!   acknowledgements, queries, stats, alert-state snapshots, retention.
//! - [`outbox`]: the durable notification outbox on the same store.
//! - [`notification_log`]: [`notification_log::Outbox`], the outbox and
//!   notification log behind the notification pipeline's
//!   [`crate::notify::delivery::NotificationOutbox`].
//! - [`payload`]: the stored form of a notification and its cooldown rows.
//! - [`tracker`]: [`tracker::AlertTracker`], rule-group evaluations into
//!   episodes, transitions and state snapshots, and
//!   [`tracker::PostedAlerts`], alerts posted to the Alertmanager API into
//!   episodes and transitions.
//! - [`sync`]: the API's open posted episodes kept in step with the
//!   database that other replicas write too.
//! - [`restore`]: the saved state put back into the rules and the notifier
//!   at start.
//! - [`lifecycle`]: [`lifecycle::Durability`], starting and stopping the
//!   history's tasks in the running evaluator.
//! - [`silences`]: [`silences::SqlSilences`], the notifier's silence store
//!   backed by the database.
//! - [`writer`]: [`writer::HistoryWriter`], the batched background writer the
//!   evaluation loop records into without waiting for the database.
//! - [`lease`]: [`lease::Leases`], named leases with fencing epochs.
//! - [`leader`]: [`leader::LeaderElector`], which replica sends.

pub mod db;
pub mod fleet;
pub mod leader;
pub mod lease;
pub mod lifecycle;
pub mod notification_log;
pub mod outbox;
pub mod payload;
pub mod restore;
pub mod silences;
pub mod store;
pub mod sync;
pub mod tracker;
pub mod writer;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

pub use db::{Backend, Database};
pub use store::HistoryStore;

/// The default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://vigil.db";
/// The default retention of closed history: 30 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The environment variable that overrides `storage.database_url`.
pub const DATABASE_URL_ENV: &str = "DATABASE_URL";

/// Why a history operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("unsupported database URL {url:?}: expected sqlite://PATH or postgres://USER@HOST/DB (storage.database_url or DATABASE_URL)")]
    UnsupportedUrl { url: String },
    #[error("cannot reach the history database {url}: {source}; check storage.database_url (or DATABASE_URL) and that the database is running")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the history database {url}: {source}; the database user needs the right to create tables, and a schema written by a newer Vigil cannot be migrated back (use a new database or upgrade)")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("storage.transaction_pooling is on but the history database {url} is SQLite: the setting is for Postgres behind a connection pooler in transaction mode; remove it, or point storage.database_url (or DATABASE_URL) at Postgres")]
    TransactionPoolingOnSqlite { url: String },
    /// A failure with a known cause in a connection pooler between Vigil
    /// and Postgres ([`db::pooler_hint`]).
    #[error("history database error while {action}: {message}; {hint}")]
    Pooler {
        action: &'static str,
        message: String,
        hint: &'static str,
    },
    #[error("history database error while {action}: {source}")]
    Database {
        action: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("corrupt history row in {table} (id {id:?}): {reason}")]
    Corrupt {
        table: &'static str,
        id: String,
        reason: String,
    },
    #[error("bad page cursor {0:?}: pass back the `next` value of the previous page unchanged")]
    BadCursor(String),
    #[error("cannot register history metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl HistoryError {
    pub(crate) fn db(action: &'static str) -> impl FnOnce(sqlx::Error) -> HistoryError {
        move |source| match db::pooler_hint(&source) {
            Some(hint) => HistoryError::Pooler {
                action,
                message: source.to_string(),
                hint,
            },
            None => HistoryError::Database { action, source },
        }
    }
}

/// The `storage:` section of the evaluator config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://PATH` or `postgres://…`; `DATABASE_URL` overrides it.
    pub database_url: String,
    /// How long closed history is kept, in Prometheus duration notation
    /// (`30d`, `12h`, `1w`, `1d12h`).
    #[serde(deserialize_with = "deserialize_retention")]
    pub retention: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            database_url: DEFAULT_DATABASE_URL.to_string(),
            retention: DEFAULT_RETENTION,
        }
    }
}

impl StorageConfig {
    /// The URL to use: `DATABASE_URL` from `env` when set and not empty,
    /// else the configured one. `env` is passed in so tests do not depend on
    /// the process environment; production passes
    /// `|name| std::env::var(name).ok()`.
    pub fn effective_database_url(&self, env: impl Fn(&str) -> Option<String>) -> String {
        env(DATABASE_URL_ENV)
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| self.database_url.clone())
    }
}

fn deserialize_retention<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "retention: {text:?} is not a duration; write it like 30d, 12h or 1w"
        ))
    })
}

/// Prometheus duration notation (`1y2w3d4h5m6s7ms`), none of it negative.
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(millis)?)?;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_millis(total))
}

/// Unix milliseconds, the stored form of every timestamp.
pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The inverse of [`to_millis`]; `None` for values out of chrono's range.
pub fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

/// [`from_millis`], with the epoch for values out of range.
pub fn from_millis_or_epoch(ms: i64) -> DateTime<Utc> {
    from_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A new unique id: the time in milliseconds (so ids sort by creation)
/// followed by 64 random bits. Unique across processes and replicas without
/// asking the database, which keeps the schema portable and lets a batched
/// write refer to a row that is not written yet.
pub fn new_id(now: DateTime<Utc>) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS once per process; mixing in a counter
    // makes every call differ.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("{:012x}{:016x}", to_millis(now).max(0), hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_env_overrides_the_config() {
        let config = StorageConfig::default();
        assert_eq!(
            config.effective_database_url(|_| None),
            DEFAULT_DATABASE_URL
        );
        assert_eq!(
            config.effective_database_url(|_| Some("postgres://db/x".into())),
            "postgres://db/x"
        );
        assert_eq!(
            config.effective_database_url(|_| Some(" ".into())),
            DEFAULT_DATABASE_URL
        );
    }

    #[test]
    fn retention_is_parsed_in_prometheus_notation() {
        let config: Result<StorageConfig, _> = serde_yaml::from_str("retention: 1d12h");
        assert_eq!(
            config.map(|c| c.retention).ok(),
            Some(Duration::from_secs(36 * 3600))
        );
        let bad = serde_yaml::from_str::<StorageConfig>("retention: soon");
        let message = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("write it like 30d"), "{message}");
        let empty: Result<StorageConfig, _> = serde_yaml::from_str("{}");
        assert_eq!(empty.ok(), Some(StorageConfig::default()));
        assert_eq!(StorageConfig::default().retention, DEFAULT_RETENTION);
    }

    #[test]
    fn unknown_storage_keys_are_rejected() {
        assert!(serde_yaml::from_str::<StorageConfig>("database: x").is_err());
    }

    #[test]
    fn ids_are_unique_and_sort_by_time() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(5);
        let (a, b) = (new_id(t0), new_id(t0));
        assert_ne!(a, b);
        assert!(new_id(t0 + chrono::Duration::milliseconds(1)) > a.max(b));
    }
}
