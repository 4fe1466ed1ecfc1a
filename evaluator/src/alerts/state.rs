//! One alert (a rule plus one label set) and its state, with the timestamps
//! the notifier needs (`active_at`, `fired_at`, `resolved_at`,
//! `last_sent_at`, `valid_until`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::labels::Labels;

/// How long a resolved alert is kept (and re-sent as resolved), as in
/// Prometheus.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// State of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertState {
    /// Not active: never was, or resolved (then `resolved_at` is set).
    Inactive,
    /// Active, waiting for `for` to elapse.
    Pending,
    Firing,
}

impl AlertState {
    /// The `alertstate` label value and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alert. Times are milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub state: AlertState,
    /// Sample labels without `__name__`, plus the rule's (templated) labels
    /// and `alertname`.
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    /// The query value of the latest evaluation that returned this alert.
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_at_ms: Option<i64>,
    /// Until when the last sent notification is valid (its `endsAt` while
    /// firing): `last_sent + 4 × max(eval interval, resend delay)`.
    pub valid_until_ms: Option<i64>,
    /// When the query stopped returning the alert while `keep_firing_for`
    /// holds it firing.
    pub keep_firing_since_ms: Option<i64>,
    /// The rule's `cooldown`, for the notifier (see the module docs).
    pub cooldown: Option<Duration>,
}

impl Alert {
    /// The `alertname` label.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").unwrap_or("")
    }

    /// Whether the notifier should get this alert now (Prometheus'
    /// `needsSending`): never while pending; at once after resolving; else
    /// when the last send is older than `resend_delay`.
    pub fn needs_sending(&self, ts_ms: i64, resend_delay: Duration) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        let last_sent = self.last_sent_at_ms.unwrap_or(i64::MIN);
        if self.resolved_at_ms.is_some_and(|r| r > last_sent) {
            return true;
        }
        match self.last_sent_at_ms {
            None => true,
            Some(sent) => sent + millis(resend_delay) < ts_ms,
        }
    }

    /// `endsAt` for Alertmanager: the resolve time once resolved, else the
    /// validity of the last send.
    pub fn ends_at_ms(&self) -> Option<i64> {
        self.resolved_at_ms.or(self.valid_until_ms)
    }
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
