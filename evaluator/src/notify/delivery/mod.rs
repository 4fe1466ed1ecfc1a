//! The delivery tail of the notification pipeline (retry and record): takes
//! the notifier's notifications off a channel and delivers each to every
//! integration of its receiver through the [`DeliveryStage`] (retries,
//! Slack pacing), counting the outcome per receiver and integration.
//!
//! - [`outbox`]: what the tail needs from durable storage
//!   ([`NotificationOutbox`]), declared here and implemented by the history.
//! - [`queue`]: what the leader sends: new notifications, due outbox
//!   entries, held notifications at a take-over.
//! - [`send`]: one delivery: may this replica send, the stage, the record.
//! - [`lanes`], [`held`], [`key`], [`shared`]: per-group order, what a
//!   standby holds, the idempotency key, the state the tasks share.
//! - [`term`]: the leadership term a delivery acts under.
//!
//! Durable delivery (with a [`NotificationOutbox`]): each notification is written to
//! the SQL outbox for each integration, under its idempotency key, before
//! it is sent, and marked sent or failed after the delivery stage's
//! outcome; a delivered one also leaves its notification-log and cooldown
//! rows, so a restart neither repeats it nor forgets to send its
//! resolution. A mark the database does not take is retried until it does
//! (the entry counts as in flight meanwhile, so it is not sent again).
//!
//! Order: deliveries of one lane (receiver, integration, group) go out one
//! at a time, in the order the notifier produced them, so a receiver never
//! sees an alert's resolution before its firing notification, even while
//! the stage retries a receiver that is down.
//!
//! Retries while running: when the stage gives up on a retryable error
//! (receiver down longer than its deadline), the outbox entry stays pending
//! with a backed-off `next_attempt_at`; every [`RETRY_EVERY`] the leader
//! delivers the entries that are due and not in flight (its own retries,
//! and whatever an old leader left pending), until [`GIVE_UP_AFTER`].
//!
//! Leadership: only the leader sends. A standby (or a replica that lost the
//! database, which makes it step down) holds its notifications in memory,
//! in order, and drops those the leader's notification log shows were
//! already told to the receiver. When it becomes the leader it first
//! delivers the outbox entries left pending, then the held notifications the
//! notification log does not cover; so a fail-over, or a database outage of
//! a single replica, neither repeats nor drops a notification. A delivery
//! whose term lapsed before it was sent, and which the database did not
//! take into the outbox, goes back to the held notifications (in the order
//! the notifier produced it) rather than being lost. Without a
//! database that answers, a leader still delivers (without an outbox row)
//! while its lease term lasts; the delivery's row reaches the delivery log
//! through the batched history writer once the database answers again.
//!
//! Rule-group sharding: when the outbox [`NotificationOutbox::forwards`], a
//! standby does not hold its notifications (the leader evaluates other
//! groups and would never produce them) but queues them in the outbox,
//! where the leader's next retry round finds them due and sends them.
//!
//! Fencing: leadership is a lease term with an epoch ([`Term`], which
//! the history's leader election publishes). Right before sending, a delivery checks
//! that the term is still valid on this replica's monotonic clock and
//! claims its outbox entry under the epoch (the database refuses a stale
//! one); it is abandoned, left pending for the next leader, the moment the
//! term runs out (a frozen or cut-off leader wakes up to a lapsed term);
//! its outcome and its notification-log and cooldown rows are written under
//! the same epoch. So a replica that lost the lease sends nothing more and
//! its late writes do not land.
//!
//! Re-sends: every attempt carries the notification's idempotency key
//! ([`Notification::idempotency_key`]). An outbox entry resumed by a
//! process that did not queue it (a restart, a new leader) may have reached
//! the receiver before the old process died, so it goes out marked as a
//! redelivery ([`Notification::redelivery`]).
//!
//! On shutdown the channel closes; deliveries already started get a grace
//! period to finish, then are abandoned with a log line.
//!
//! Time (when a notification was received, when an entry is due, the retry
//! rounds, the grace period) comes from the injected [`Clock`], so tests
//! step a simulated clock instead of sleeping.

mod held;
pub mod key;
mod lanes;
pub mod outbox;
mod queue;
pub mod send;
mod shared;
mod term;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::clock::{Clock, ShutdownGrace};
use crate::notify::alert::Notification;
use crate::notify::config::ReceiverIntegrations;
use crate::notify::deliver::DeliveryStage;
use crate::notify::failure_log::{FailureLog, DEFAULT_SUMMARY_EVERY};
use held::{covered, hold, load_told, Held};
use lanes::Lanes;
use queue::{dispatch, forward, resume, take_over};
use shared::Shared;

pub use key::idempotency_key;
pub use outbox::{
    notify_log_row, Claim, NotificationOutbox, NotifyLogRow, OutboxError, Outcome, PendingEntry,
};
pub use send::{retry_delay, GIVE_UP_AFTER};
pub(crate) use term::Until;
pub use term::{Leadership, Term, DEFAULT_LEASE};

/// How long one outbox operation may wait for the database before delivery
/// goes on without it.
const OUTBOX_TIMEOUT: Duration = Duration::from_secs(5);
/// Most pending outbox entries resumed at once.
const RESUME_LIMIT: usize = 10_000;
/// How often the leader looks for due outbox entries (and a standby drops
/// held notifications the leader has sent).
pub const RETRY_EVERY: Duration = Duration::from_secs(2);

/// Where delivery outcomes are counted: sent or given up, and retries, per
/// receiver and integration (the evaluator's `/metrics`).
pub trait DeliveryMetrics: Send + Sync + 'static {
    /// Counts one delivery to `receiver`'s `integration` that took
    /// `attempts` tries and ended sent (`delivered`) or given up.
    fn record_delivery(&self, receiver: &str, integration: &str, attempts: u32, delivered: bool);
}

/// The retry round after the one due at `due` that ran at `now` (both on
/// the monotonic clock): a period after it, or a period after `now` when it
/// ran late (as tokio's `MissedTickBehavior::Delay`).
fn next_round(due: Duration, now: Duration) -> Duration {
    if now > due + Duration::from_millis(5) {
        now + RETRY_EVERY
    } else {
        due + RETRY_EVERY
    }
}

/// Runs until `notifications` is closed and every delivery has ended (or
/// `grace` has passed since the close: its value at the close, so a
/// shutdown can set it until then), on `clock`.
pub async fn run_delivery(
    mut notifications: mpsc::UnboundedReceiver<Notification>,
    receivers: watch::Receiver<Arc<ReceiverIntegrations>>,
    stage: DeliveryStage,
    metrics: impl DeliveryMetrics,
    grace: impl Into<ShutdownGrace>,
    outbox: Option<impl NotificationOutbox>,
    clock: Arc<dyn Clock>,
) {
    let grace = grace.into();
    let outbox = outbox.map(|o| Arc::new(o) as Arc<dyn NotificationOutbox>);
    let mut leader = outbox.as_ref().map(|o| o.leadership());
    let forwards = outbox.as_ref().is_some_and(|o| o.forwards());
    let (requeue, mut requeued) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        receivers,
        stage,
        metrics: Arc::new(metrics),
        outbox,
        in_flight: Mutex::default(),
        own: Mutex::default(),
        lanes: Lanes::default(),
        failures: Arc::new(FailureLog::new(Arc::clone(&clock), DEFAULT_SUMMARY_EVERY)),
        term: Mutex::default(),
        clock,
        requeue,
    });
    let mut running = JoinSet::new();
    let mut held: VecDeque<Held> = VecDeque::new();
    let initial = match leader.as_mut() {
        Some(l) => l.borrow_and_update().clone(),
        None => Leadership::Leading(Term::unfenced()),
    };
    shared.set_term(&initial);
    let mut leading = initial.is_leading();
    if leading {
        take_over(&shared, &mut held, &mut running).await;
    }
    let clock = Arc::clone(&shared.clock);
    // The next retry round, on the clock's monotonic time.
    let mut next_retry = clock.monotonic() + RETRY_EVERY;
    let mut outbox_down = false;
    loop {
        let retry_in = next_retry.saturating_sub(clock.monotonic());
        tokio::select! {
            next = notifications.recv() => {
                let Some(notification) = next else { break };
                let at = clock.now();
                let notification = Arc::new(notification);
                // A lapsed term (this replica was frozen or cut off and the
                // elector has not said so yet) counts as not leading.
                let h = Held { notification, at, integration: None };
                if leading && shared.leads() {
                    dispatch(&shared, h, &mut running);
                } else if forwards {
                    forward(&shared, h, &mut running);
                } else {
                    hold(&mut held, h);
                }
            }
            Some(h) = requeued.recv() => {
                if leading && shared.leads() {
                    dispatch(&shared, h, &mut running);
                } else {
                    hold(&mut held, h);
                }
            }
            changed = async {
                match leader.as_mut() {
                    Some(l) => l.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if changed.is_err() {
                    leader = None;
                    continue;
                }
                let now = match leader.as_mut() {
                    Some(l) => l.borrow_and_update().clone(),
                    None => Leadership::Standby,
                };
                let fresh = shared.set_term(&now);
                let leads = now.is_leading();
                if leads && (!leading || fresh) {
                    let epoch = now.term().and_then(Term::epoch);
                    tracing::info!(held = held.len(), epoch, "became the leader: delivering what is pending");
                    take_over(&shared, &mut held, &mut running).await;
                } else if !leads && leading {
                    tracing::warn!("no longer the leader: notifications are held until this replica leads again");
                }
                leading = leads;
            }
            () = clock.sleep(retry_in), if shared.outbox.is_some() => {
                next_retry = next_round(next_retry, clock.monotonic());
                let answered = if leading && shared.leads() && !held.is_empty() {
                    // Held while the term had lapsed, and renewed since.
                    take_over(&shared, &mut held, &mut running).await;
                    Ok(())
                } else if leading && shared.leads() {
                    resume(&shared, &mut running, None).await
                } else if forwards {
                    // What the outbox did not take last time, again.
                    for h in held.drain(..) {
                        forward(&shared, h, &mut running);
                    }
                    Ok(())
                } else if let (false, Some(o)) = (held.is_empty(), &shared.outbox) {
                    match load_told(o.as_ref(), &held).await {
                        Ok(told) => {
                            held.retain(|h| !covered(&told, h));
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    Ok(())
                };
                // Logged when it changes, not at every round.
                match answered {
                    Err(e) if !outbox_down => {
                        tracing::error!(error = %e, "the outbox is unreadable; pending notifications wait until it answers");
                        outbox_down = true;
                    }
                    Ok(()) if outbox_down => {
                        tracing::info!("the outbox answers again");
                        outbox_down = false;
                    }
                    _ => {}
                }
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    if !running.is_empty() {
        let grace = grace.get();
        tracing::info!(
            deliveries = running.len(),
            grace_seconds = grace.as_secs_f64(),
            "waiting for in-flight deliveries"
        );
        let drained = tokio::select! {
            biased;
            () = async { while running.join_next().await.is_some() {} } => true,
            () = clock.sleep(grace) => false,
        };
        if !drained {
            tracing::warn!(
                deliveries = running.len(),
                "deliveries still running after the shutdown grace period; abandoned"
            );
            running.abort_all();
        }
    }
    // Deliveries that ended handing their notification back count as held.
    while let Ok(h) = requeued.try_recv() {
        hold(&mut held, h);
    }
    if !held.is_empty() {
        tracing::warn!(
            notifications = held.len(),
            "shutting down without a valid leader lease: held notifications are left to the leader"
        );
    }
}
