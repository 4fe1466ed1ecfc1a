//! Rate limit for delivery-failure log lines, per receiver integration: a
//! receiver that is down (a webhook nobody listens on, an SMTP server that
//! refuses) fails every notification and every retry, and logging each one
//! buries everything else in the log.
//!
//! The first failure after a success (or after start) is logged in full; the
//! failures after it are counted and summarised in at most one line per
//! [`FailureLog::every`], with how many there were; the first success after
//! failures is reported once, with the count, so the log says when the
//! receiver came back. Failures in between go to the debug level.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::alert::Notification;
use super::receivers::{BatchReceiver, DeliveryReport, DynReceiver, Receiver, SendError};
use crate::clock::Clock;

/// The default interval between two summary lines of one integration.
pub const DEFAULT_SUMMARY_EVERY: Duration = Duration::from_secs(5 * 60);

/// What to log for one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureVerdict {
    /// The first failure since the integration last delivered (or since
    /// start): log it in full.
    First,
    /// `every` has passed since the last line: log a summary of `failures`
    /// failures (this one included) over `over`.
    Summary { failures: u64, over: Duration },
    /// Counted for the next summary; log at debug level only.
    Quiet,
}

/// Failures of one receiver integration since it last delivered.
#[derive(Debug, Clone, Copy)]
struct Streak {
    /// When the last line (first failure or summary) was logged.
    last_line: DateTime<Utc>,
    /// Failures since that line, not yet reported.
    unreported: u64,
    /// Failures in the whole streak.
    total: u64,
}

/// The rate limiter; shared by every delivery task.
pub struct FailureLog {
    clock: Arc<dyn Clock>,
    every: Duration,
    streaks: Mutex<HashMap<(String, String), Streak>>,
}

impl std::fmt::Debug for FailureLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailureLog")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl FailureLog {
    /// A limiter logging at most one summary per `every` and integration.
    pub fn new(clock: Arc<dyn Clock>, every: Duration) -> FailureLog {
        FailureLog {
            clock,
            every,
            streaks: Mutex::new(HashMap::new()),
        }
    }

    /// The interval between two summary lines of one integration.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Records a failed delivery through `integration` of `receiver` and
    /// says what to log.
    pub fn failure(&self, receiver: &str, integration: &str) -> FailureVerdict {
        let now = self.clock.now();
        let mut streaks = self.streaks.lock().unwrap_or_else(|e| e.into_inner());
        let key = (receiver.to_string(), integration.to_string());
        let Some(streak) = streaks.get_mut(&key) else {
            streaks.insert(
                key,
                Streak {
                    last_line: now,
                    unreported: 0,
                    total: 1,
                },
            );
            return FailureVerdict::First;
        };
        streak.total += 1;
        streak.unreported += 1;
        let since = (now - streak.last_line).to_std().unwrap_or_default();
        if since < self.every {
            return FailureVerdict::Quiet;
        }
        let failures = std::mem::take(&mut streak.unreported);
        streak.last_line = now;
        FailureVerdict::Summary {
            failures,
            over: since,
        }
    }

    /// Records a successful delivery; `Some(failures)` when it ends a streak
    /// of that many failures, which is worth one line.
    pub fn success(&self, receiver: &str, integration: &str) -> Option<u64> {
        let mut streaks = self.streaks.lock().unwrap_or_else(|e| e.into_inner());
        streaks
            .remove(&(receiver.to_string(), integration.to_string()))
            .map(|streak| streak.total)
    }
}

/// How a failure ended, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// One attempt failed; the retrier tries again.
    Attempt,
    /// Every attempt so far failed; the outbox tries again at this time.
    Kept(DateTime<Utc>),
    /// The notification is given up: always logged, at error level.
    GivenUp,
}

impl FailureLog {
    /// Logs a failure of `receiver`'s `integration`. Failed attempts go
    /// through the rate limit; a notification kept in the outbox after its
    /// attempts failed is at debug level (its attempts were logged); one
    /// given up is always logged, at error level, as a notification is lost.
    pub fn log_failure(
        &self,
        receiver: &str,
        integration: &str,
        error: &dyn std::fmt::Display,
        kind: FailureKind,
    ) {
        match kind {
            FailureKind::GivenUp => {
                tracing::error!(receiver, integration, error = %error, "notification delivery failed; giving up");
                return;
            }
            FailureKind::Kept(at) => {
                tracing::debug!(receiver, integration, error = %error, retry_at = %at, "notification kept in the outbox and retried later");
                return;
            }
            FailureKind::Attempt => {}
        }
        match self.failure(receiver, integration) {
            FailureVerdict::Quiet => {
                tracing::debug!(receiver, integration, error = %error, "notification delivery attempt failed again");
            }
            FailureVerdict::First => tracing::warn!(
                receiver,
                integration,
                error = %error,
                "notification delivery failed; retrying (further failures of this receiver integration are summarised at most every {})",
                format_span(self.every)
            ),
            FailureVerdict::Summary { failures, over } => tracing::warn!(
                receiver,
                integration,
                failures,
                error = %error,
                "{failures} notification delivery attempts failed in the last {}; still retrying",
                format_span(over)
            ),
        }
    }

    /// Logs, once, that `receiver`'s `integration` delivers again after a
    /// streak of failures; nothing when there was none.
    pub fn log_success(&self, receiver: &str, integration: &str) {
        if let Some(failures) = self.success(receiver, integration) {
            tracing::info!(
                receiver,
                integration,
                failures,
                "notification delivery works again after {failures} failed attempts"
            );
        }
    }

    /// `inner` with every attempt (including the retrier's retries and a
    /// Slack batch's) reported here under `receiver`'s name, so that the
    /// first failure is logged when it happens, not when retrying ends.
    pub fn watch(self: &Arc<Self>, receiver: &str, inner: DynReceiver) -> DynReceiver {
        Arc::new(Watched {
            receiver: receiver.to_string(),
            inner,
            log: Arc::clone(self),
        })
    }

    fn observe(
        &self,
        receiver: &str,
        integration: &str,
        result: &Result<DeliveryReport, SendError>,
    ) {
        match result {
            Ok(_) => self.log_success(receiver, integration),
            Err(error) => self.log_failure(receiver, integration, error, FailureKind::Attempt),
        }
    }
}

/// A receiver whose attempts are reported to a [`FailureLog`].
struct Watched {
    receiver: String,
    inner: DynReceiver,
    log: Arc<FailureLog>,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("receiver", &self.receiver)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Receiver for Watched {
    fn integration(&self) -> &'static str {
        self.inner.integration()
    }

    fn send_resolved(&self) -> bool {
        self.inner.send_resolved()
    }

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let result = self.inner.send(notification).await;
        self.log
            .observe(&self.receiver, self.inner.integration(), &result);
        result
    }

    fn as_batching(&self) -> Option<&dyn BatchReceiver> {
        self.inner.as_batching().map(|_| self as &dyn BatchReceiver)
    }
}

#[async_trait]
impl BatchReceiver for Watched {
    fn pacing_key(&self) -> String {
        self.inner
            .as_batching()
            .map(BatchReceiver::pacing_key)
            .unwrap_or_default()
    }

    fn max_batch(&self) -> usize {
        self.inner.as_batching().map_or(1, BatchReceiver::max_batch)
    }

    async fn send_batch(
        &self,
        notifications: &[Notification],
    ) -> Result<DeliveryReport, SendError> {
        let result = match self.inner.as_batching() {
            Some(batching) => batching.send_batch(notifications).await,
            None => match notifications.first() {
                Some(first) => self.inner.send(first).await,
                None => Ok(DeliveryReport::default()),
            },
        };
        self.log
            .observe(&self.receiver, self.inner.integration(), &result);
        result
    }
}

/// `90s` → `1m30s`, for log lines.
pub fn format_span(span: Duration) -> String {
    let seconds = span.as_secs();
    match (seconds / 60, seconds % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SimClock;

    fn limiter() -> (Arc<SimClock>, FailureLog) {
        let clock = Arc::new(SimClock::new(
            DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
        ));
        let log = FailureLog::new(clock.clone(), Duration::from_secs(300));
        (clock, log)
    }

    #[test]
    fn the_first_failure_is_logged_and_the_next_ones_wait_for_a_summary() {
        let (clock, log) = limiter();
        assert_eq!(log.failure("archive", "webhook"), FailureVerdict::First);
        for _ in 0..9 {
            clock.advance(Duration::from_secs(20));
            assert_eq!(log.failure("archive", "webhook"), FailureVerdict::Quiet);
        }
        // 240 s after the first line: still quiet.
        clock.advance(Duration::from_secs(60));
        assert_eq!(log.failure("archive", "webhook"), FailureVerdict::Quiet);
        // 300 s after it: one summary of the 11 failures since.
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            log.failure("archive", "webhook"),
            FailureVerdict::Summary {
                failures: 11,
                over: Duration::from_secs(300),
            }
        );
        clock.advance(Duration::from_secs(10));
        assert_eq!(log.failure("archive", "webhook"), FailureVerdict::Quiet);
    }

    #[test]
    fn ten_minutes_of_retries_every_few_seconds_log_at_most_three_lines() {
        let (clock, log) = limiter();
        let mut lines = 0;
        for _ in 0..=(600 / 6) {
            if log.failure("archive", "webhook") != FailureVerdict::Quiet {
                lines += 1;
            }
            clock.advance(Duration::from_secs(6));
        }
        assert_eq!(lines, 3, "first failure, then one summary per 5 minutes");
    }

    #[test]
    fn integrations_and_receivers_are_limited_separately() {
        let (clock, log) = limiter();
        assert_eq!(log.failure("oncall", "slack"), FailureVerdict::First);
        assert_eq!(log.failure("oncall", "email"), FailureVerdict::First);
        assert_eq!(log.failure("archive", "webhook"), FailureVerdict::First);
        clock.advance(Duration::from_secs(1));
        assert_eq!(log.failure("oncall", "slack"), FailureVerdict::Quiet);
        assert_eq!(log.failure("oncall", "email"), FailureVerdict::Quiet);
    }

    #[test]
    fn a_success_ends_the_streak_with_its_count_and_the_next_failure_is_first_again() {
        let (clock, log) = limiter();
        assert_eq!(log.success("archive", "webhook"), None);
        log.failure("archive", "webhook");
        clock.advance(Duration::from_secs(30));
        log.failure("archive", "webhook");
        log.failure("archive", "webhook");
        assert_eq!(log.success("archive", "webhook"), Some(3));
        assert_eq!(log.success("archive", "webhook"), None);
        clock.advance(Duration::from_secs(1));
        assert_eq!(log.failure("archive", "webhook"), FailureVerdict::First);
    }

    /// A webhook that fails its first `failures` attempts.
    #[derive(Debug)]
    struct Flaky {
        failures: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl Receiver for Flaky {
        fn integration(&self) -> &'static str {
            "webhook"
        }

        fn send_resolved(&self) -> bool {
            true
        }

        async fn send(&self, _: &Notification) -> Result<DeliveryReport, SendError> {
            use std::sync::atomic::Ordering;
            let left = self.failures.load(Ordering::SeqCst);
            if left == 0 {
                return Ok(DeliveryReport::default());
            }
            self.failures.store(left - 1, Ordering::SeqCst);
            Err(SendError::Transport {
                integration: "webhook",
                reason: "connection refused".into(),
            })
        }
    }

    fn notification() -> Notification {
        let mut n = crate::notify::fixtures::notification(Vec::new());
        n.receiver = "archive".into();
        n.group_key = "{}:{}".into();
        n
    }

    #[tokio::test]
    async fn a_watched_receiver_reports_every_attempt_under_its_receiver_name() {
        let (_clock, log) = limiter();
        let log = Arc::new(log);
        let inner: DynReceiver = Arc::new(Flaky {
            failures: std::sync::atomic::AtomicUsize::new(3),
        });
        let watched = log.watch("archive", inner);
        assert_eq!(watched.integration(), "webhook");
        assert!(watched.as_batching().is_none());
        for _ in 0..3 {
            assert!(watched.send(&notification()).await.is_err());
        }
        // The streak is known under the receiver's name...
        assert_eq!(log.failure("archive", "webhook"), FailureVerdict::Quiet);
        // ... and the first success ends it (4 failures: 3 attempts and the
        // probe just above).
        assert!(watched.send(&notification()).await.is_ok());
        assert_eq!(log.success("archive", "webhook"), None);
        assert_eq!(log.failure("archive", "webhook"), FailureVerdict::First);
    }

    #[test]
    fn spans_are_written_in_minutes_and_seconds() {
        assert_eq!(format_span(Duration::from_secs(45)), "45s");
        assert_eq!(format_span(Duration::from_secs(300)), "5m");
        assert_eq!(format_span(Duration::from_secs(421)), "7m1s");
    }
}
