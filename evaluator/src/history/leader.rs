//! Leader election for high availability: several evaluator replicas share
//! one Postgres database and exactly one of them — the leader — sends
//! notifications; when it dies another takes over within seconds. On SQLite
//! there is one node, and it always leads.
//!
//! # How
//!
//! A session-level Postgres advisory lock (`pg_try_advisory_lock`), held on
//! a dedicated connection opened for nothing else. Chosen over a lease row
//! with an expiry because:
//!
//! - the database itself releases the lock the moment the holder's session
//!   ends (process crash, kill, closed socket), so a crashed leader is
//!   replaced at the standby's next attempt, not after a lease timeout;
//! - no clock comparison between replicas or with the database, and no
//!   writes every few seconds;
//! - two sessions can never both hold it.
//!
//! Every `interval` (2 s by default) each elector runs one round: a standby
//! tries to take the lock; the leader checks its session is alive with a
//! query bounded by `check_timeout`. If that check fails or times out (the
//! connection dropped, the database restarted, the network is cut) the
//! leader steps down at once — before the database has necessarily noticed
//! — so two replicas never both believe they lead for longer than one
//! round. The session asks the server for TCP keepalives (idle 5 s, every
//! 2 s, 3 probes), so that after a network cut the server also ends the dead
//! session and frees the lock within about 11 s.
//!
//! The lock needs the session to stay on one server connection: connect
//! directly to Postgres, or through a pooler in session mode (not
//! PgBouncer's transaction mode).
//!
//! Rounds are driven by [`Ticks`]: a real interval in production,
//! [`ManualTicks`] in tests, which step the election one round at a time.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::db::{redact, Backend};
use super::HistoryError;

/// The default advisory-lock key: a fixed number derived from
/// "vigil-evaluator-leader". Deployments sharing a database but electing
/// separately set their own.
pub const DEFAULT_LOCK_KEY: i64 = 0x5649_4749_4c4c_4541; // "VIGILLEA"

/// Settings of the election.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// The advisory-lock key every replica of one deployment shares.
    pub lock_key: i64,
    /// How long a round may wait for the database before the leader steps
    /// down (or the standby gives up this round).
    pub check_timeout: Duration,
    /// The `application_name` of the election's connection, as shown in
    /// `pg_stat_activity`.
    pub application_name: String,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig {
            lock_key: DEFAULT_LOCK_KEY,
            check_timeout: Duration::from_secs(2),
            application_name: "vigil-evaluator-leader".to_string(),
        }
    }
}

/// What drives election rounds.
#[derive(Debug)]
pub enum Ticks {
    /// A round every so often (the first at once).
    Every(Duration),
    /// A round per [`ManualTicks::step`].
    Manual(mpsc::Receiver<oneshot::Sender<()>>),
}

impl Ticks {
    /// Manual ticks and the handle that steps them.
    pub fn manual() -> (Ticks, ManualTicks) {
        let (tx, rx) = mpsc::channel(1);
        (Ticks::Manual(rx), ManualTicks { tx })
    }
}

/// Steps an elector created with [`Ticks::manual`].
#[derive(Debug, Clone)]
pub struct ManualTicks {
    tx: mpsc::Sender<oneshot::Sender<()>>,
}

impl ManualTicks {
    /// Runs one round and waits until it is done; false when the elector
    /// has stopped.
    pub async fn step(&self) -> bool {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(done_tx).await.is_err() {
            return false;
        }
        done_rx.await.is_ok()
    }
}

/// Runs the election and publishes whether this replica leads.
#[derive(Debug)]
pub struct LeaderElector {
    is_leader: watch::Receiver<bool>,
    task: Option<JoinHandle<()>>,
}

impl LeaderElector {
    /// A single node: always the leader (SQLite).
    pub fn single_node() -> LeaderElector {
        let (_tx, rx) = watch::channel(true);
        LeaderElector {
            is_leader: rx,
            task: None,
        }
    }

    /// The election for the history database at `url`: on SQLite a single
    /// node, on Postgres the advisory-lock election, run on the current
    /// tokio runtime until `shutdown` is cancelled (then the lock is
    /// released, so a standby takes over at its next round).
    pub fn start(
        url: &str,
        config: LeaderConfig,
        ticks: Ticks,
        shutdown: CancellationToken,
    ) -> Result<LeaderElector, HistoryError> {
        match Backend::of(url)? {
            Backend::Sqlite => Ok(LeaderElector::single_node()),
            Backend::Postgres => LeaderElector::postgres(url, config, ticks, shutdown),
        }
    }

    /// The advisory-lock election against Postgres.
    pub fn postgres(
        url: &str,
        config: LeaderConfig,
        ticks: Ticks,
        shutdown: CancellationToken,
    ) -> Result<LeaderElector, HistoryError> {
        if Backend::of(url)? != Backend::Postgres {
            return Err(HistoryError::NotPostgres(redact(url)));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|source| HistoryError::Connect {
                url: redact(url),
                source,
            })?
            .application_name(&config.application_name)
            .options([
                ("tcp_keepalives_idle", "5"),
                ("tcp_keepalives_interval", "2"),
                ("tcp_keepalives_count", "3"),
            ])
            .disable_statement_logging();
        let (tx, rx) = watch::channel(false);
        let election = Election {
            options,
            config,
            url: redact(url),
            conn: None,
            leading: tx,
        };
        let task = tokio::spawn(election.run(ticks, shutdown));
        Ok(LeaderElector {
            is_leader: rx,
            task: Some(task),
        })
    }

    /// Follows leadership changes.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.is_leader.clone()
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.is_leader.borrow()
    }

    /// Waits for the election task to end (after its shutdown token fired).
    pub async fn join(mut self) {
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "the leader election task failed");
            }
        }
    }
}

struct Election {
    options: PgConnectOptions,
    config: LeaderConfig,
    url: String,
    conn: Option<PgConnection>,
    leading: watch::Sender<bool>,
}

impl Election {
    async fn run(mut self, mut ticks: Ticks, shutdown: CancellationToken) {
        let mut interval = match &ticks {
            Ticks::Every(every) => {
                let mut interval = tokio::time::interval(*every);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Some(interval)
            }
            Ticks::Manual(_) => None,
        };
        loop {
            let done = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                done = next_tick(&mut ticks, interval.as_mut()) => match done {
                    Some(done) => done,
                    None => break,
                },
            };
            self.round().await;
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
        self.release().await;
    }

    /// One round: the leader checks its session; a standby tries the lock.
    async fn round(&mut self) {
        let timeout = self.config.check_timeout;
        if self.conn.is_none() {
            match tokio::time::timeout(timeout, self.options.connect()).await {
                Ok(Ok(conn)) => self.conn = Some(conn),
                Ok(Err(err)) => {
                    tracing::debug!(database = %self.url, error = %err, "leader election cannot connect");
                    return self.set_leading(false, "cannot connect");
                }
                Err(_) => return self.set_leading(false, "connect timed out"),
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let leading = *self.leading.borrow();
        let result = if leading {
            let check = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&mut *conn);
            tokio::time::timeout(timeout, check)
                .await
                .map(|r| r.map(|_| true))
        } else {
            let attempt = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                .bind(self.config.lock_key)
                .fetch_one(&mut *conn);
            tokio::time::timeout(timeout, attempt).await
        };
        match result {
            Ok(Ok(holds)) => self.set_leading(holds, "lock"),
            Ok(Err(err)) => {
                tracing::debug!(database = %self.url, error = %err, "leader election query failed");
                // The session (and with it any lock) is gone or unusable.
                self.conn = None;
                self.set_leading(false, "connection lost");
            }
            Err(_) => {
                self.conn = None;
                self.set_leading(false, "database did not answer in time");
            }
        }
    }

    fn set_leading(&self, leading: bool, reason: &str) {
        let changed = self.leading.send_if_modified(|current| {
            let changed = *current != leading;
            *current = leading;
            changed
        });
        if changed {
            if leading {
                tracing::info!(database = %self.url, lock_key = self.config.lock_key, "became the leader");
            } else {
                tracing::warn!(database = %self.url, reason, "lost the leadership");
            }
        }
    }

    /// Gives the lock back so a standby takes over at its next round.
    async fn release(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if *self.leading.borrow() {
                let unlock = sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1)")
                    .bind(self.config.lock_key)
                    .fetch_one(&mut conn);
                let _ = tokio::time::timeout(self.config.check_timeout, unlock).await;
            }
            let _ = tokio::time::timeout(self.config.check_timeout, conn.close()).await;
        }
        self.set_leading(false, "shutting down");
    }
}

async fn next_tick(
    ticks: &mut Ticks,
    interval: Option<&mut tokio::time::Interval>,
) -> Option<Option<oneshot::Sender<()>>> {
    match (ticks, interval) {
        (Ticks::Manual(rx), _) => rx.recv().await.map(Some),
        (Ticks::Every(_), Some(interval)) => {
            interval.tick().await;
            Some(None)
        }
        (Ticks::Every(every), None) => {
            tokio::time::sleep(*every).await;
            Some(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_is_always_the_leader() {
        let elector = LeaderElector::start(
            "sqlite://vigil.db",
            LeaderConfig::default(),
            Ticks::Every(Duration::from_secs(1)),
            CancellationToken::new(),
        );
        assert!(elector.is_ok_and(|e| e.is_leader() && *e.subscribe().borrow()));
    }

    #[test]
    fn election_refuses_non_postgres_urls() {
        let result = LeaderElector::postgres(
            "sqlite://x.db",
            LeaderConfig::default(),
            Ticks::Every(Duration::from_secs(1)),
            CancellationToken::new(),
        );
        assert!(matches!(result, Err(HistoryError::NotPostgres(_))));
    }
}
