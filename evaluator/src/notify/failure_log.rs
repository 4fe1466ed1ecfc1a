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

use chrono::{DateTime, Utc};

use super::clock::Clock;

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

impl FailureLog {
    /// Logs a failed delivery of `receiver`'s `integration` under the rate
    /// limit: `retry_at` is when the outbox tries again (`None`: given up,
    /// logged at error level, as a notification is lost).
    pub fn log_failure(
        &self,
        receiver: &str,
        integration: &str,
        attempts: u32,
        error: &dyn std::fmt::Display,
        retry_at: Option<DateTime<Utc>>,
    ) {
        let verdict = self.failure(receiver, integration);
        let every = format_span(self.every);
        let (failures, over) = match verdict {
            FailureVerdict::Quiet => {
                tracing::debug!(receiver, integration, attempts, error = %error, retry_at = ?retry_at, "notification delivery failed again");
                return;
            }
            FailureVerdict::First => (1, None),
            FailureVerdict::Summary { failures, over } => (failures, Some(format_span(over))),
        };
        let what = match (&over, retry_at) {
            (None, Some(_)) => format!("notification delivery failed; kept in the outbox and retried later (further failures of this receiver integration are summarised at most every {every})"),
            (None, None) => format!("notification delivery failed; giving up (further failures of this receiver integration are summarised at most every {every})"),
            (Some(over), Some(_)) => format!("{failures} notification deliveries failed in the last {over}; still retrying"),
            (Some(over), None) => format!("{failures} notification deliveries failed in the last {over}; the last one was given up"),
        };
        match retry_at {
            Some(at) => {
                tracing::warn!(receiver, integration, attempts, failures, error = %error, retry_at = %at, "{what}")
            }
            None => {
                tracing::error!(receiver, integration, attempts, failures, error = %error, "{what}")
            }
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
                "notification delivery works again after {failures} failed deliveries"
            );
        }
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
    use crate::notify::clock::ManualClock;

    fn limiter() -> (Arc<ManualClock>, FailureLog) {
        let clock = Arc::new(ManualClock::new(
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

    #[test]
    fn spans_are_written_in_minutes_and_seconds() {
        assert_eq!(format_span(Duration::from_secs(45)), "45s");
        assert_eq!(format_span(Duration::from_secs(300)), "5m");
        assert_eq!(format_span(Duration::from_secs(421)), "7m1s");
    }
}
