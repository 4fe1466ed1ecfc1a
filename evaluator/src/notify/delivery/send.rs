//! One delivery of one notification to one receiver integration, at the
//! end of the pipeline: may this replica send (its leader term, and the
//! outbox claim under it), the retrying [`crate::notify::deliver::DeliveryStage`], then counting,
//! logging and recording the outcome (the outbox entry marked sent, kept
//! for a later retry, or failed; the notification-log and cooldown rows of
//! a delivered notification).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::lanes::Turn;
use super::outbox::{Claim, NotificationOutbox, Outcome};
use super::shared::Shared;
use super::term::Term;
use super::OUTBOX_TIMEOUT;
use crate::clock::Clock;
use crate::notify::alert::Notification;
use crate::notify::failure_log::FailureKind;
use crate::notify::receivers::Integration;

/// An outbox entry older than this is not retried any more: marked failed.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(6 * 3600);

/// The wait after a failed outbox entry of age `age` before its next
/// attempt: half its age, between 10 s and 10 min.
pub fn retry_delay(age: Duration) -> Duration {
    (age / 2).clamp(Duration::from_secs(10), Duration::from_secs(600))
}

/// Whether a delivery went through the stage (whatever its outcome), or
/// was not sent at all because this replica may not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    Made,
    NotSent,
}

/// One delivery through the stage, counted, logged and (with an outbox id)
/// recorded in the outbox. `turn` is the lane's turn, released once the
/// stage is done (before the outcome is recorded).
pub(super) async fn deliver_one(
    shared: &Shared,
    integration: &Integration,
    notification: &Notification,
    id: Option<&str>,
    created_at: DateTime<Utc>,
    turn: Turn<'_>,
) -> Attempt {
    let Some(term) = may_send(shared, integration, id).await else {
        return Attempt::NotSent;
    };
    let outcome = tokio::select! {
        outcome = shared
            .stage
            .deliver(
                shared.failures.watch(
                    &integration.receiver_name,
                    Arc::clone(&integration.receiver),
                ),
                notification,
            ) => outcome,
        () = term.lost() => {
            tracing::warn!(
                receiver = %integration.receiver_name,
                integration = integration.integration,
                epoch = term.epoch(),
                "delivery abandoned: this replica's leader lease ran out; the notification is left to the next leader"
            );
            return Attempt::NotSent;
        }
    };
    drop(turn);
    let result = match outcome {
        // `send_resolved: false`: nothing to send, and nothing left to do.
        None => Outcome::Sent {
            code: None,
            message_id: None,
        },
        Some(outcome) => match outcome.last_error() {
            None => {
                shared.metrics.record_delivery(
                    &integration.receiver_name,
                    integration.integration,
                    outcome.attempts,
                    true,
                );
                tracing::info!(
                    receiver = %integration.receiver_name,
                    integration = integration.integration,
                    status = notification.status.as_str(),
                    alerts = notification.alerts.len(),
                    attempts = outcome.attempts,
                    "notification delivered"
                );
                Outcome::Sent {
                    code: outcome.response_code(),
                    message_id: outcome.message_id().map(str::to_string),
                }
            }
            Some(error) => {
                shared.metrics.record_delivery(
                    &integration.receiver_name,
                    integration.integration,
                    outcome.attempts,
                    false,
                );
                let age = (shared.clock.now() - created_at)
                    .to_std()
                    .unwrap_or_default();
                if error.is_retryable() && id.is_some() && age < GIVE_UP_AFTER {
                    let at = shared.clock.now()
                        + chrono::Duration::from_std(retry_delay(age))
                            .unwrap_or(chrono::Duration::zero());
                    shared.failures.log_failure(
                        &integration.receiver_name,
                        integration.integration,
                        error,
                        FailureKind::Kept(at),
                    );
                    Outcome::Retry {
                        error: error.to_string(),
                        code: outcome.response_code(),
                        at,
                    }
                } else {
                    shared.failures.log_failure(
                        &integration.receiver_name,
                        integration.integration,
                        error,
                        FailureKind::GivenUp,
                    );
                    Outcome::Failed {
                        error: error.to_string(),
                        code: outcome.response_code(),
                    }
                }
            }
        },
    };
    let Some(outbox) = &shared.outbox else {
        return Attempt::Made;
    };
    let now = shared.clock.now();
    if matches!(result, Outcome::Sent { .. }) {
        // Buffered while the store does not answer: even a notification
        // sent without an outbox row is logged. Under the term: refused if
        // the lease has moved on.
        outbox.log_delivered(notification, now, Some(&term));
    }
    let Some(id) = id else {
        outbox.log_without_entry(notification, &integration.name(), created_at, &result, now);
        return Attempt::Made;
    };
    record_outcome(
        outbox.as_ref(),
        id,
        &result,
        now,
        Some(&term),
        shared.clock.as_ref(),
    )
    .await;
    if !matches!(result, Outcome::Retry { .. }) {
        shared.own(id, false);
    }
    Attempt::Made
}

/// The term under which this delivery may be sent, or `None` (logged) when
/// it must not be: this replica's term lapsed, or the database refused the
/// claim of outbox entry `id` for a stale epoch, or the entry is no longer
/// pending. A claim the database cannot answer does not stop a delivery
/// while the term is valid.
pub(super) async fn may_send(
    shared: &Shared,
    integration: &Integration,
    id: Option<&str>,
) -> Option<Term> {
    let receiver = integration.receiver_name.as_str();
    let lapsed = |term: &Option<Term>| !term.as_ref().is_some_and(Term::is_valid);
    let term = shared.term();
    if lapsed(&term) {
        tracing::warn!(receiver, integration = integration.integration, "not sending: this replica does not hold a valid leader lease; the notification waits for a leader (in the outbox, or held by this replica)");
        return None;
    }
    if let (Some(outbox), Some(id), Some(t)) = (&shared.outbox, id, &term) {
        let claim = outbox.claim(id, t, shared.clock.now());
        match tokio::time::timeout(OUTBOX_TIMEOUT, claim).await {
            Ok(Ok(Claim::Claimed)) => {}
            Ok(Ok(Claim::StaleEpoch { current })) => {
                tracing::error!(id, receiver, epoch = t.epoch(), current_epoch = current, "not sending: the database refused the claim for a stale lease epoch (another replica leads now)");
                return None;
            }
            Ok(Ok(Claim::NotPending)) => {
                tracing::info!(id, receiver, "not sending: the outbox entry is no longer pending (delivered or given up by another leader)");
                return None;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, id, receiver, "cannot claim the outbox entry; sending while this replica's lease term is valid");
            }
            Err(_) => {
                tracing::warn!(id, receiver, "the outbox did not answer the claim in time; sending while this replica's lease term is valid");
            }
        }
        // The claim took a round trip: the term may have run out meanwhile.
        if lapsed(&term) {
            tracing::warn!(
                id,
                receiver,
                "not sending: the leader lease term ran out while claiming"
            );
            return None;
        }
    }
    term
}

/// Records `result` for outbox entry `id` under `term`, retrying (with a
/// back-off on `clock`) until the outbox answers: an entry left pending
/// after it was sent would be sent again. A refusal (stale epoch, or
/// already recorded) is final.
async fn record_outcome(
    outbox: &dyn NotificationOutbox,
    id: &str,
    result: &Outcome,
    now: DateTime<Utc>,
    term: Option<&Term>,
    clock: &dyn Clock,
) {
    let mut wait = Duration::from_millis(500);
    let mut logged = false;
    loop {
        match outbox.record(id, result, now, term).await {
            Ok(recorded) => {
                if !recorded {
                    if let Some(epoch) = term.and_then(Term::epoch) {
                        tracing::warn!(id, lease = term.map(Term::lease), epoch, "the database did not take the delivery outcome: the entry is no longer pending, or the lease has a newer epoch (the current leader keeps the record)");
                    }
                } else if logged {
                    tracing::info!(id, "delivery outcome recorded in the outbox");
                }
                return;
            }
            Err(e) => {
                if !logged {
                    tracing::error!(error = %e, id, "cannot record the delivery outcome in the outbox; retrying until the database answers");
                    logged = true;
                }
                clock.sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;
    use tokio::sync::watch;

    use super::*;
    use crate::clock::SimClock;
    use crate::notify::delivery::outbox::{NotifyLogRow, OutboxError, PendingEntry};
    use crate::notify::delivery::Leadership;

    /// An outbox whose `record` fails `failures` times, then takes it.
    struct Flaky {
        failures: u32,
        calls: AtomicU32,
    }

    #[async_trait]
    impl NotificationOutbox for Flaky {
        fn leadership(&self) -> watch::Receiver<Leadership> {
            watch::channel(Leadership::Standby).1
        }
        async fn enqueue(
            &self,
            _: &Notification,
            _: &str,
            _: &str,
            _: DateTime<Utc>,
        ) -> Result<String, OutboxError> {
            Err("not used".into())
        }
        async fn claim(&self, _: &str, _: &Term, _: DateTime<Utc>) -> Result<Claim, OutboxError> {
            Err("not used".into())
        }
        async fn record(
            &self,
            _: &str,
            _: &Outcome,
            _: DateTime<Utc>,
            _: Option<&Term>,
        ) -> Result<bool, OutboxError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if call < self.failures {
                Err("the database is down".into())
            } else {
                Ok(true)
            }
        }
        async fn due(&self, _: DateTime<Utc>, _: usize) -> Result<Vec<PendingEntry>, OutboxError> {
            Ok(Vec::new())
        }
        async fn sent_since(
            &self,
            _: DateTime<Utc>,
            _: usize,
        ) -> Result<Vec<(Notification, DateTime<Utc>)>, OutboxError> {
            Ok(Vec::new())
        }
        async fn notify_log(&self) -> Result<Vec<NotifyLogRow>, OutboxError> {
            Ok(Vec::new())
        }
        fn log_delivered(&self, _: &Notification, _: DateTime<Utc>, _: Option<&Term>) {}
        fn log_without_entry(
            &self,
            _: &Notification,
            _: &str,
            _: DateTime<Utc>,
            _: &Outcome,
            _: DateTime<Utc>,
        ) {
        }
    }

    #[tokio::test]
    async fn an_outcome_the_outbox_does_not_take_is_recorded_again_with_backoff_until_it_does() {
        let clock = SimClock::new(DateTime::<Utc>::UNIX_EPOCH).advancing_on_sleep();
        let outbox = Flaky {
            failures: 3,
            calls: AtomicU32::new(0),
        };
        let sent = Outcome::Sent {
            code: Some(200),
            message_id: None,
        };
        record_outcome(&outbox, "id", &sent, clock.now(), None, &clock).await;
        assert_eq!(outbox.calls.load(Ordering::SeqCst), 4);
        assert_eq!(
            clock.sleeps(),
            [500, 1000, 2000].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn the_retry_delay_is_half_the_age_between_10_s_and_10_min() {
        assert_eq!(retry_delay(Duration::ZERO), Duration::from_secs(10));
        assert_eq!(
            retry_delay(Duration::from_secs(120)),
            Duration::from_secs(60)
        );
        assert_eq!(
            retry_delay(Duration::from_secs(7200)),
            Duration::from_secs(600)
        );
    }
}
