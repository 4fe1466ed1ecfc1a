//! The result of one probe and the closed set of failure reasons, shared by
//! the HTTP prober, the scheduler and the metrics.

use std::fmt;
use std::time::Duration;

/// Why a probe failed; the `reason` label of `probe_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The probe did not finish within the target's `timeout`.
    Timeout,
    /// No usable connection: DNS failure, refused, reset, or the connection
    /// broke while the response was read.
    Connect,
    /// The TLS handshake failed or the certificate was rejected.
    Tls,
    /// The target has no `expect` and the status was outside 200-399, or
    /// redirects were followed more than 10 times.
    Status,
    /// The target's own `expect` was false, not boolean, or failed to evaluate.
    Expectation,
}

impl FailureReason {
    /// Every reason, in the order the docs list them.
    pub const ALL: [FailureReason; 5] = [
        FailureReason::Timeout,
        FailureReason::Connect,
        FailureReason::Tls,
        FailureReason::Status,
        FailureReason::Expectation,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Connect => "connect",
            FailureReason::Tls => "tls",
            FailureReason::Status => "status",
            FailureReason::Expectation => "expectation",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed probe: the classified reason and a human-readable message.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeFailure {
    /// The classified reason.
    pub reason: FailureReason,
    /// What happened, for logs and readiness output.
    pub message: String,
}

/// Everything one probe found out.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    /// `None` on success.
    pub failure: Option<ProbeFailure>,
    /// From the start of the probe until it succeeded or failed.
    pub duration: Duration,
    /// Status of the final response, when one arrived.
    pub status: Option<u16>,
    /// Earliest `notAfter` of the certificates seen (unix seconds), HTTPS only.
    pub cert_expiry_unix: Option<i64>,
}

impl ProbeOutcome {
    /// True when the probe met its expectation.
    pub fn is_success(&self) -> bool {
        self.failure.is_none()
    }

    /// The failure reason, if any.
    pub fn reason(&self) -> Option<FailureReason> {
        self.failure.as_ref().map(|failure| failure.reason)
    }

    pub(crate) fn failed(reason: FailureReason, message: String, duration: Duration) -> Self {
        Self {
            failure: Some(ProbeFailure { reason, message }),
            duration,
            status: None,
            cert_expiry_unix: None,
        }
    }
}
