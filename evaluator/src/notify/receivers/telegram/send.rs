//! Sending to Telegram: the `sendMessage` parameters built from a
//! notification and the one HTTP attempt.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::config::TelegramSettings;
use crate::notify::alert::{Notification, REDELIVERY_MARK};
use crate::notify::receivers::http::post_json;
use crate::notify::receivers::template::{self, truncate_chars};
use crate::notify::receivers::{DeliveryReport, Receiver, SendError};

/// The Bot API's message limit, in characters.
pub const MAX_MESSAGE: usize = 4096;

http_receiver!(
    /// Sends notifications to one Telegram chat.
    TelegramReceiver(TelegramSettings)
);

impl TelegramReceiver {
    /// The `sendMessage` parameters for `n`, as Alertmanager sends them
    /// (every value a string).
    pub fn message(&self, n: &Notification) -> BTreeMap<&'static str, String> {
        let s = &self.settings;
        let fallback = || template::text_alert_list(n);
        let mut text = if s.parse_mode == "HTML" {
            s.message
                .render_html(n, "telegram", || template::html_escape(&fallback()))
        } else {
            s.message.render(n, "telegram", fallback)
        };
        if n.redelivery {
            text = format!("{text}\n{REDELIVERY_MARK}");
        }
        let mut params = BTreeMap::from([
            ("chat_id", s.chat_id.to_string()),
            ("text", truncate_chars(&text, MAX_MESSAGE)),
            ("disable_web_page_preview", "true".to_string()),
        ]);
        if !s.parse_mode.is_empty() {
            params.insert("parse_mode", s.parse_mode.clone());
        }
        if s.disable_notifications {
            params.insert("disable_notification", "true".to_string());
        }
        params
    }
}

#[async_trait]
impl Receiver for TelegramReceiver {
    receiver_identity!("telegram");

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let s = &self.settings;
        let url = format!("{}/bot{}/sendMessage", s.api_url, s.bot_token.expose());
        let params = self.message(notification);
        let (status, body) = post_json(
            "telegram",
            &self.client,
            &url,
            &s.http,
            &params,
            notification,
        )
        .await?;
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if answer["ok"] == false {
            return Err(SendError::Rejected {
                integration: "telegram",
                reason: answer["description"]
                    .as_str()
                    .unwrap_or("the Bot API answered ok: false")
                    .to_string(),
            });
        }
        Ok(DeliveryReport {
            response_code: Some(status),
            message_id: answer["result"]["message_id"]
                .as_i64()
                .map(|id| id.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::AlertStatus;
    use crate::notify::receivers::config::validated;
    use crate::notify::receivers::telegram::config::validate_telegram;
    use crate::notify::receivers::template::tests::{alert, notification};

    #[test]
    fn html_mode_escapes_values_and_long_messages_are_cut() {
        let settings = validated(
            "bot_token: t\nchat_id: -100\nmessage: '{{ range .Alerts }}{{ .Labels.pod }}{{ end }}'\ndisable_notifications: true\n",
            validate_telegram,
        );
        let r = TelegramReceiver::new(settings).unwrap_or_else(|e| panic!("{e}"));
        let mut a = alert(&[("alertname", "A"), ("pod", "<b>")], AlertStatus::Firing);
        let params = r.message(&notification(vec![a.clone()]));
        assert_eq!(params["text"], "&lt;b&gt;");
        assert_eq!(params["parse_mode"], "HTML");
        assert_eq!(params["chat_id"], "-100");
        assert_eq!(params["disable_notification"], "true");
        a.alert.labels.set("pod", &"x".repeat(5000));
        let params = r.message(&notification(vec![a]));
        assert_eq!(params["text"].chars().count(), MAX_MESSAGE);
    }
}
