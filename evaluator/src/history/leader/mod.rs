//! Leader election for high availability: several evaluator replicas share
//! one Postgres database and exactly one of them — the leader — sends
//! notifications; when it dies or freezes another takes over within two
//! lease periods, and the old one stops sending before that. On SQLite
//! there is one replica, and it always leads.
//!
//! # How
//!
//! Leadership is a named lease ([`super::lease`], default
//! [`DEFAULT_LEASE`]) with a fencing epoch. Every `renew_every` (1 s by
//! default) each elector runs one round: a standby tries to take the lease,
//! which succeeds once its expiry has passed on the database's clock and
//! bumps the epoch; the leader renews it for `lease_duration` (5 s) past
//! the database's now. Expiry is only ever compared on the database's
//! clock, so replicas' clocks may disagree freely.
//!
//! Stopping in time: the leader measures, on its own monotonic clock, when
//! it *sent* its last successful renewal; the database cannot have set the
//! expiry earlier than `lease_duration` after that moment, so nobody else
//! can take the lease before then. The leader's [`Term`] is valid until
//! that moment minus `safety_margin` (1 s), and delivery checks
//! [`Term::is_valid`] right before it sends and abandons a delivery
//! ([`Term::lost`]) the moment the term runs out. A leader that cannot
//! renew (database down, network cut, or the process frozen with
//! `SIGSTOP`) therefore stops sending at least `safety_margin` before the
//! lease can pass, and when it wakes up its term is over whatever its
//! tasks were doing.
//!
//! Fencing: the term carries the epoch, and every outbox claim, outbox
//! outcome and notification-log write of the leader carries it as a
//! [`crate::history::lease::Fence`]; the database refuses such a write once the lease has a newer
//! epoch (a take-over happened), so even a write that was already on its
//! way when the process froze does not land.
//!
//! No session state: each round is one statement on a pooled connection of
//! a pool of its own (so a busy history pool cannot starve renewals); a
//! connection that drops loses nothing, and a pooler can sit in between.
//! Through PgBouncer in session mode nothing needs setting. Through
//! PgBouncer in transaction mode (`pool_mode = transaction`) set
//! `storage.transaction_pooling: true`: the lease pool, like the history's,
//! then runs every statement unnamed inside a transaction, so each round is
//! one BEGIN…COMMIT on whichever server connection the pooler lends, and the
//! schema is migrated under a transaction-level lock ([`super::db`]).
//! `evaluator/tests/evaluator/history/pgbouncer.rs` runs two replicas through a real
//! PgBouncer in transaction mode with two server connections, and kills the
//! leader.
//!
//! A crashed leader's lease is taken over when it expires: within
//! `lease_duration` + `renew_every` (6 s by default) of the last renewal. A
//! leader that shuts down releases its lease, so a standby takes over at
//! its next round.
//!
//! SQLite has a single replica: it leads from the start (an unfenced
//! term, so a database that is not there yet does not stop it), takes the
//! lease by force at its first round (bumping the epoch, which fences off
//! whatever a previous run of the process left in flight) and keeps it —
//! the same code path, with the expiry never enforced.
//!
//! Rounds are driven by [`Ticks`] and the term's validity by the monotonic
//! time of a [`Clock`]: real ones in production, [`ManualTicks`] and a
//! [`crate::clock::SimClock`] in tests, which step the election and the
//! clock explicitly.
//!
//! Parts: [`election`] (one replica's rounds; the term and the published
//! [`Leadership`] it creates are declared by delivery, which acts on them); this file holds the configuration
//! and the [`LeaderElector`] that runs them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::history::db::Backend;
use crate::history::lease::Leases;
use crate::history::{Database, HistoryError};

mod election;
pub(crate) use election::next_tick;

/// The lease the notification leader holds.
pub use crate::notify::delivery::DEFAULT_LEASE;
pub use crate::notify::delivery::{Leadership, Term};
use election::Election;
/// How long a lease lasts after each renewal, by default.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(5);
/// How often the leader renews (and a standby tries), by default.
pub const DEFAULT_RENEW_EVERY: Duration = Duration::from_secs(1);

/// Settings of the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    /// The lease every replica of one deployment competes for.
    pub lease: String,
    /// Who this replica is, as stored in the lease row: unique per process
    /// start ([`holder_id`]).
    pub holder: String,
    /// How long past the database's now each renewal extends the lease.
    pub lease_duration: Duration,
    /// How often a round runs.
    pub renew_every: Duration,
    /// How long before the lease could expire the leader stops sending.
    pub safety_margin: Duration,
    /// How long one round may wait for the database.
    pub timeout: Duration,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        LeaderConfig::new(DEFAULT_LEASE_DURATION, DEFAULT_RENEW_EVERY)
    }
}

impl LeaderConfig {
    /// The election of [`DEFAULT_LEASE`] with `lease_duration` and
    /// `renew_every`; the safety margin is a fifth of the lease, and a
    /// round waits at most `renew_every` for the database.
    pub fn new(lease_duration: Duration, renew_every: Duration) -> LeaderConfig {
        LeaderConfig {
            lease: DEFAULT_LEASE.to_string(),
            holder: holder_id(),
            lease_duration,
            renew_every,
            safety_margin: lease_duration / 5,
            timeout: renew_every,
        }
    }

    /// How long after a renewal was sent the leader may still send.
    pub fn valid_for(&self) -> Duration {
        self.lease_duration.saturating_sub(self.safety_margin)
    }

    /// Why these settings cannot keep a lease, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.safety_margin.is_zero() || self.safety_margin >= self.lease_duration {
            return Err(format!(
                "the safety margin ({:?}) must be above zero and below the lease duration ({:?})",
                self.safety_margin, self.lease_duration
            ));
        }
        if self.renew_every.is_zero() || self.renew_every >= self.valid_for() {
            return Err(format!(
                "the renew interval ({:?}) must be above zero and below the lease duration minus the safety margin ({:?}), or the leader steps down between renewals",
                self.renew_every,
                self.valid_for()
            ));
        }
        Ok(())
    }
}

/// A holder id unique to this process start: host, process id and a
/// random part (a restarted process does not inherit its predecessor's
/// lease).
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    // Only the random part of the id is used, not its time.
    let random = crate::history::new_id(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    format!("{host}/{}/{}", std::process::id(), &random[12..])
}

/// How a replica holds its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseMode {
    /// Competes with other replicas (Postgres).
    Compete,
    /// The only replica (SQLite): leads from the start and takes the lease
    /// by force.
    Sole,
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

/// Runs the election and publishes this replica's [`Leadership`].
#[derive(Debug)]
pub struct LeaderElector {
    leadership: watch::Receiver<Leadership>,
    task: Option<JoinHandle<()>>,
}

impl LeaderElector {
    /// A single node without a database: always the leader, unfenced.
    pub fn single_node() -> LeaderElector {
        let (_tx, rx) = watch::channel(Leadership::Leading(Term::unfenced()));
        LeaderElector {
            leadership: rx,
            task: None,
        }
    }

    /// The election for `history`, the history database at `url`:
    /// competing for the lease on Postgres, on a pool of its own (so a busy
    /// history pool cannot starve renewals); the sole holder on SQLite, on
    /// the history's pool (SQLite has one writer anyway, and one pool
    /// migrates the file once). Runs on the current tokio runtime until
    /// `shutdown` is cancelled (then the lease is released, so a standby
    /// takes over at its next round). The term's validity is measured on
    /// `clock`'s monotonic time.
    pub fn start(
        url: &str,
        history: &Database,
        config: LeaderConfig,
        ticks: Ticks,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> Result<LeaderElector, HistoryError> {
        let (db, mode) = match Backend::of(url)? {
            Backend::Sqlite => (history.clone(), LeaseMode::Sole),
            // Its migration waits for the history's on Postgres' migration
            // lock, then finds nothing to do. Same pooling as the history.
            Backend::Postgres => (
                Database::connect_lazy_with(url, history.pooling())?,
                LeaseMode::Compete,
            ),
        };
        Ok(LeaderElector::run(
            Leases::new(db),
            config,
            mode,
            ticks,
            clock,
            shutdown,
        ))
    }

    /// The election over `leases`, its term's validity measured on `clock`.
    pub fn run(
        leases: Leases,
        config: LeaderConfig,
        mode: LeaseMode,
        ticks: Ticks,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> LeaderElector {
        let initial = match mode {
            LeaseMode::Sole => Leadership::Leading(Term::unfenced()),
            LeaseMode::Compete => Leadership::Standby,
        };
        let (tx, rx) = watch::channel(initial);
        let election = Election {
            leases,
            config,
            mode,
            clock,
            held: None,
            renew_failing: false,
            failed_rounds: 0,
            leadership: tx,
        };
        let task = tokio::spawn(election.run(ticks, shutdown));
        LeaderElector {
            leadership: rx,
            task: Some(task),
        }
    }

    /// Follows leadership changes.
    pub fn subscribe(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// This replica's leadership now.
    pub fn leadership(&self) -> Leadership {
        self.leadership.borrow().clone()
    }

    /// Whether this replica leads now with a valid term.
    pub fn is_leader(&self) -> bool {
        self.leadership.borrow().term().is_some_and(Term::is_valid)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;
    use crate::clock::SimClock;
    use crate::history::lease::Fence;
    use crate::notify::delivery::Until;

    struct Replica {
        elector: LeaderElector,
        step: ManualTicks,
        clock: Arc<SimClock>,
        stop: CancellationToken,
    }

    impl Replica {
        fn start(leases: &Leases, holder: &str, mode: LeaseMode) -> Replica {
            let (ticks, step) = Ticks::manual();
            let clock = Arc::new(SimClock::new(chrono::DateTime::UNIX_EPOCH));
            let stop = CancellationToken::new();
            let config = LeaderConfig {
                holder: holder.to_string(),
                ..LeaderConfig::default()
            };
            let elector = LeaderElector::run(
                leases.clone(),
                config,
                mode,
                ticks,
                clock.clone(),
                stop.clone(),
            );
            Replica {
                elector,
                step,
                clock,
                stop,
            }
        }

        fn epoch(&self) -> Option<i64> {
            self.elector.leadership().term().and_then(Term::epoch)
        }
    }

    async fn leases() -> (tempfile::TempDir, Leases) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("l.db").display());
        (dir, Leases::new(Database::connect(&url).await.unwrap()))
    }

    /// Moves the database's clock forward by `by` (the lease rows' times
    /// back).
    async fn db_time_passes(leases: &Leases, by: Duration) {
        sqlx::query("UPDATE leases SET expires_at = expires_at - $1")
            .bind(i64::try_from(by.as_millis()).unwrap())
            .execute(leases.database().pool())
            .await
            .unwrap();
    }

    #[test]
    fn the_default_settings_renew_every_second_a_5_s_lease_and_stop_1_s_early() {
        let c = LeaderConfig::default();
        assert_eq!(
            (c.lease_duration, c.renew_every, c.safety_margin),
            (
                Duration::from_secs(5),
                Duration::from_secs(1),
                Duration::from_secs(1)
            )
        );
        assert_eq!(c.check(), Ok(()));
        assert!(
            LeaderConfig::new(Duration::from_secs(5), Duration::from_secs(4))
                .check()
                .is_err_and(|e| e.contains("renew interval"))
        );
    }

    #[tokio::test]
    async fn a_leader_that_cannot_renew_stops_before_its_lease_can_pass() {
        let (_dir, leases) = leases().await;
        let a = Replica::start(&leases, "a", LeaseMode::Compete);
        assert!(!a.elector.is_leader(), "nobody leads before a round");
        assert!(a.step.step().await);
        assert!(a.elector.is_leader());
        let term = a.elector.leadership().term().cloned().unwrap();
        assert_eq!(term.epoch(), Some(1));

        // The database goes away; the monotonic clock runs on.
        leases.database().close().await;
        a.clock.advance(Duration::from_secs(3));
        a.step.step().await;
        assert!(
            term.is_valid(),
            "3 s after the renewal: still within 5 s - 1 s"
        );
        assert!(a.elector.is_leader());
        a.clock.advance(Duration::from_secs(1));
        assert!(
            !term.is_valid(),
            "4 s: the term ends on its own, before any round"
        );
        tokio::time::timeout(Duration::from_secs(1), term.lost())
            .await
            .unwrap();
        a.step.step().await;
        assert_eq!(a.elector.leadership(), Leadership::Standby);
        a.stop.cancel();
    }

    #[tokio::test]
    async fn a_standby_takes_an_expired_lease_with_a_new_epoch_and_the_old_leader_steps_down() {
        let (_dir, leases) = leases().await;
        let a = Replica::start(&leases, "a", LeaseMode::Compete);
        let b = Replica::start(&leases, "b", LeaseMode::Compete);
        a.step.step().await;
        b.step.step().await;
        assert_eq!((a.epoch(), b.epoch()), (Some(1), None));
        for _ in 0..3 {
            a.clock.advance(Duration::from_secs(1));
            a.step.step().await;
            b.step.step().await;
            assert!(a.elector.is_leader() && !b.elector.is_leader());
        }
        let old = a.elector.leadership().term().cloned().unwrap();

        // a freezes: no rounds, while the database's clock passes its expiry.
        db_time_passes(&leases, Duration::from_secs(6)).await;
        b.step.step().await;
        assert_eq!(b.epoch(), Some(2), "taken over with the epoch bumped");

        // a wakes up: its term ran out on its own clock, and the database
        // refuses its renewal.
        a.clock.advance(Duration::from_secs(60));
        assert!(!old.is_valid());
        a.step.step().await;
        assert_eq!(a.elector.leadership(), Leadership::Standby);
        assert!(b.elector.is_leader());
        a.stop.cancel();
        b.stop.cancel();
    }

    #[tokio::test]
    async fn a_leader_that_shuts_down_hands_over_at_the_next_round() {
        let (_dir, leases) = leases().await;
        let a = Replica::start(&leases, "a", LeaseMode::Compete);
        let b = Replica::start(&leases, "b", LeaseMode::Compete);
        a.step.step().await;
        b.step.step().await;
        let term = a.elector.leadership().term().cloned().unwrap();
        a.stop.cancel();
        a.elector.join().await;
        assert!(!term.is_valid(), "revoked at shutdown");
        b.step.step().await;
        assert_eq!(b.epoch(), Some(2));
        b.stop.cancel();
    }

    #[tokio::test]
    async fn a_sole_replica_leads_before_the_database_answers_then_under_a_forced_epoch() {
        let (_dir, leases) = leases().await;
        leases
            .acquire(
                DEFAULT_LEASE,
                "previous-run",
                Duration::from_secs(60),
                false,
            )
            .await
            .unwrap();
        let a = Replica::start(&leases, "a", LeaseMode::Sole);
        assert!(a.elector.is_leader(), "leads from the start");
        assert_eq!(a.epoch(), None, "unfenced until the first round");
        a.step.step().await;
        assert_eq!(a.epoch(), Some(2), "the previous run's live lease is taken");
        leases.database().close().await;
        a.clock.advance(Duration::from_secs(3600));
        a.step.step().await;
        assert!(a.elector.is_leader(), "a sole replica always leads");
        a.stop.cancel();
    }

    #[test]
    fn a_term_is_extended_forward_only_and_never_after_a_revocation() {
        let clock = Arc::new(SimClock::new(chrono::DateTime::UNIX_EPOCH));
        let term = Term::new(
            "l",
            Some(1),
            Until::At(Duration::from_secs(4)),
            clock.clone(),
        );
        term.extend(Duration::from_secs(3));
        clock.advance(Duration::from_secs(4));
        assert!(!term.is_valid(), "not moved back");
        term.extend(Duration::from_secs(5));
        assert!(term.is_valid());
        term.revoke();
        term.extend(Duration::from_secs(50));
        assert!(!term.is_valid());
        assert_eq!(
            Fence::of(&term),
            Some(Fence {
                lease: "l".into(),
                epoch: 1
            })
        );
        assert_eq!(Fence::of(&Term::unfenced()), None);
    }
}
