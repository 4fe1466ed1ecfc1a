//! One replica's election rounds: take the lease as a standby, renew it as
//! the leader, extend the term by what the database granted, and step down
//! (revoking the term) when a renewal fails or the lease is lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::{LeaderConfig, LeaseMode, Ticks};
use crate::clock::Clock;
use crate::history::lease::Leases;
use crate::notify::delivery::{Leadership, Term, Until};

pub(super) struct Election {
    pub(super) leases: Leases,
    pub(super) config: LeaderConfig,
    pub(super) mode: LeaseMode,
    pub(super) clock: Arc<dyn Clock>,
    /// The term of the lease this replica holds (fenced terms only).
    pub(super) held: Option<Term>,
    pub(super) renew_failing: bool,
    /// Rounds in a row whose statement failed or timed out.
    pub(super) failed_rounds: u32,
    pub(super) leadership: watch::Sender<Leadership>,
}

/// Failed rounds in a row after which the election's pool is replaced.
const RECONNECT_AFTER: u32 = 3;

impl Election {
    pub(super) async fn run(mut self, mut ticks: Ticks, shutdown: CancellationToken) {
        if let Err(problem) = self.config.check() {
            tracing::error!(lease = %self.config.lease, "leader election settings: {problem}");
        }
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

    /// One round: the holder renews; anyone else tries to take the lease.
    async fn round(&mut self) {
        // Measured before the statement is sent: the database's expiry is
        // at least `lease_duration` after this.
        let sent = self.clock.monotonic();
        match self.held.clone() {
            Some(term) => self.renew(term, sent).await,
            None => self.acquire(sent).await,
        }
        // A round cut short by its timeout cancels the pool's connection
        // attempt; after a database restart such a pool can stay without
        // usable connections. Failing rounds in a row get a fresh pool.
        if self.failed_rounds >= RECONNECT_AFTER {
            tracing::info!(lease = %self.config.lease, rounds = self.failed_rounds, "the lease database keeps failing; reconnecting");
            self.leases = self.leases.reconnected();
            self.failed_rounds = 0;
        }
    }

    async fn renew(&mut self, term: Term, sent: Duration) {
        let Some(epoch) = term.epoch() else {
            return self.acquire(sent).await;
        };
        let c = &self.config;
        let renewal = self
            .leases
            .renew(&c.lease, &c.holder, epoch, c.lease_duration);
        let result = match tokio::time::timeout(c.timeout, renewal).await {
            Ok(Ok(renewed)) => Ok(renewed),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the database did not answer within {:?}",
                c.timeout
            )),
        };
        self.failed_rounds = if result.is_err() {
            self.failed_rounds + 1
        } else {
            0
        };
        match result {
            Ok(true) => {
                term.extend(sent + self.config.valid_for());
                if self.renew_failing {
                    tracing::info!(lease = %self.config.lease, epoch, "the lease is renewed again");
                    self.renew_failing = false;
                }
            }
            Ok(false) if self.mode == LeaseMode::Sole => {
                tracing::warn!(lease = %self.config.lease, epoch, "the lease of this sole replica was taken by another process (two evaluators on one SQLite file?); taking it back");
                self.acquire(sent).await;
            }
            Ok(false) => self.step_down(
                "the lease expired on the database's clock or passed to another replica",
            ),
            Err(error) if self.mode == LeaseMode::Sole => {
                tracing::debug!(lease = %self.config.lease, %error, "cannot renew the lease of this sole replica; it leads anyway");
            }
            Err(error) => {
                if !term.is_valid() {
                    self.step_down(&format!(
                        "no renewal for {:?} (the lease minus the safety margin): {error}",
                        self.config.valid_for()
                    ));
                } else if !self.renew_failing {
                    tracing::warn!(lease = %self.config.lease, epoch, %error, "cannot renew the lease; still leading while the last renewal lasts");
                    self.renew_failing = true;
                }
            }
        }
    }

    async fn acquire(&mut self, sent: Duration) {
        let c = &self.config;
        let force = self.mode == LeaseMode::Sole;
        let attempt = self
            .leases
            .acquire(&c.lease, &c.holder, c.lease_duration, force);
        let epoch = match tokio::time::timeout(c.timeout, attempt).await {
            Ok(Ok(Some(epoch))) => epoch,
            Ok(Ok(None)) => {
                self.failed_rounds = 0;
                return;
            }
            Ok(Err(error)) => {
                tracing::debug!(lease = %c.lease, %error, "cannot take the lease");
                self.failed_rounds += 1;
                return;
            }
            Err(_) => {
                tracing::debug!(lease = %c.lease, "taking the lease: the database did not answer in time");
                self.failed_rounds += 1;
                return;
            }
        };
        self.failed_rounds = 0;
        let until = match self.mode {
            LeaseMode::Sole => Until::Forever,
            LeaseMode::Compete => Until::At(sent + c.valid_for()),
        };
        let term = Term::new(&c.lease, Some(epoch), until, Arc::clone(&self.clock));
        if let Some(old) = self.held.replace(term.clone()) {
            old.revoke();
        }
        self.renew_failing = false;
        tracing::info!(lease = %c.lease, epoch, holder = %c.holder, "became the leader");
        self.leadership.send_replace(Leadership::Leading(term));
    }

    fn step_down(&mut self, reason: &str) {
        let epoch = self.held.take().map(|term| {
            term.revoke();
            term.epoch()
        });
        self.renew_failing = false;
        let was_leading = self
            .leadership
            .send_replace(Leadership::Standby)
            .is_leading();
        if was_leading {
            tracing::warn!(lease = %self.config.lease, epoch = ?epoch.flatten(), reason, "lost the leadership: stopped sending");
        }
    }

    /// Gives the lease back so a standby takes over at its next round.
    async fn release(&mut self) {
        if let Some(term) = self.held.take() {
            term.revoke();
            if let Some(epoch) = term.epoch() {
                let c = &self.config;
                let release = self.leases.release(&c.lease, &c.holder, epoch);
                match tokio::time::timeout(c.timeout, release).await {
                    Ok(Ok(true)) => {
                        tracing::info!(lease = %c.lease, epoch, "released the lease")
                    }
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(lease = %c.lease, %error, "cannot release the lease; a standby takes over when it expires")
                    }
                    Err(_) => {
                        tracing::warn!(lease = %c.lease, "releasing the lease timed out; a standby takes over when it expires")
                    }
                }
            }
        }
        self.leadership.send_replace(Leadership::Standby);
    }
}

pub(crate) async fn next_tick(
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
