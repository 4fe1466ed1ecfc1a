//! The outbox idempotency key of a notification for one receiver
//! integration: stable across processes and replicas, so the same flush
//! queued twice (a retry after a crash between queueing and acknowledging)
//! is stored once.

use std::hash::Hasher;

use chrono::{DateTime, Utc};

use crate::hash::StableHasher;
use crate::notify::alert::{AlertStatus, Fingerprint, Notification};

/// flush at `flushed_at`: receiver, integration, group key, each alert's
/// fingerprint and status, and the flush time. The same flush enqueued again
/// (a retry after a crash between enqueue and acknowledgement) gets the same
/// key.
pub fn idempotency_key(
    notification: &Notification,
    integration: &str,
    flushed_at: DateTime<Utc>,
) -> String {
    let mut hasher = StableHasher::default();
    for part in [
        notification.receiver.as_str(),
        integration,
        notification.group_key.as_str(),
    ] {
        hasher.write(part.as_bytes());
        hasher.write_u8(0xff);
    }
    let mut alerts: Vec<(Fingerprint, AlertStatus)> = notification
        .alerts
        .iter()
        .map(|a| (a.fingerprint, a.status))
        .collect();
    alerts.sort_by_key(|(fp, _)| *fp);
    for (fp, status) in alerts {
        hasher.write_u64(fp.0);
        hasher.write(status.as_str().as_bytes());
    }
    format!(
        "{}/{}/{:016x}",
        notification.receiver,
        flushed_at.timestamp_millis(),
        hasher.finish()
    )
}
