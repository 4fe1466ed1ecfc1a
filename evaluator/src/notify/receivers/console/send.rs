//! Printing a notification: the block written to stdout and the log line.

use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::config::ConsoleSettings;
use crate::notify::alert::{Notification, REDELIVERY_MARK};
use crate::notify::receivers::template;
use crate::notify::receivers::{DeliveryReport, Receiver, SendError};

/// Where the console receiver writes (stdout, or a buffer in tests).
type Sink = Arc<Mutex<dyn Write + Send>>;

/// Prints notifications.
pub struct ConsoleReceiver {
    settings: ConsoleSettings,
    sink: Sink,
}

impl std::fmt::Debug for ConsoleReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleReceiver")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ConsoleReceiver {
    /// Writes to stdout.
    pub fn new(settings: ConsoleSettings) -> ConsoleReceiver {
        ConsoleReceiver {
            settings,
            sink: Arc::new(Mutex::new(std::io::stdout())),
        }
    }

    /// Writes to `sink` instead of stdout.
    pub fn with_sink(settings: ConsoleSettings, sink: Arc<Mutex<dyn Write + Send>>) -> Self {
        ConsoleReceiver { settings, sink }
    }
}

/// The block printed for one notification.
pub fn render(notification: &Notification) -> String {
    let rule = "=".repeat(72);
    let mark = if notification.redelivery {
        format!("{REDELIVERY_MARK} key {}\n", notification.idempotency_key())
    } else {
        String::new()
    };
    format!(
        "{rule}\n{mark}{}{rule}\n",
        template::text_alert_list(notification)
    )
}

#[async_trait]
impl Receiver for ConsoleReceiver {
    fn integration(&self) -> &'static str {
        "console"
    }

    fn send_resolved(&self) -> bool {
        self.settings.send_resolved
    }

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let alertnames: Vec<&str> = notification
            .alerts
            .iter()
            .filter_map(|a| a.alert.labels.get("alertname"))
            .collect();
        let summary = notification
            .common_annotations
            .get("summary")
            .map(String::as_str)
            .or_else(|| {
                notification
                    .alerts
                    .first()
                    .and_then(|a| a.alert.annotations.get("summary"))
                    .map(String::as_str)
            })
            .unwrap_or("");
        tracing::info!(
            status = notification.status.as_str(),
            receiver = %notification.receiver,
            group = %notification.group_key,
            alerts = notification.alerts.len(),
            alertnames = %alertnames.join(","),
            labels = %notification.common_labels,
            summary,
            key = %notification.idempotency_key(),
            redelivery = notification.redelivery,
            "notification"
        );
        let block = render(notification);
        let mut sink = self.sink.lock().map_err(|_| SendError::Console {
            reason: "output lock poisoned by an earlier panic".into(),
        })?;
        sink.write_all(block.as_bytes())
            .and_then(|()| sink.flush())
            .map_err(|e| SendError::Console {
                reason: e.to_string(),
            })?;
        Ok(DeliveryReport::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::AlertStatus;
    use crate::notify::receivers::template::tests::{alert, notification};

    #[test]
    fn a_redelivery_is_marked_at_the_top_of_the_block_with_its_key() {
        let mut n = notification(vec![alert(&[("alertname", "A")], AlertStatus::Firing)]);
        assert!(!render(&n).contains(REDELIVERY_MARK));
        n.redelivery = true;
        let block = render(&n);
        let second = block.lines().nth(1).unwrap_or_default();
        assert!(second.starts_with(REDELIVERY_MARK), "{block}");
        assert!(second.contains(&n.idempotency_key()), "{block}");
    }
}
