//! Sending to a Slack incoming webhook: the message built from a
//! notification (or a batch of them) and the one HTTP attempt.

use std::hash::{Hash, Hasher};

use async_trait::async_trait;
use serde::Serialize;

use super::config::SlackSettings;
use crate::hash::StableHasher;
use crate::notify::alert::{AlertStatus, Notification, REDELIVERY_MARK};
use crate::notify::receivers::config::DEFAULT_HTTP_TIMEOUT;
use crate::notify::receivers::http::{
    check_http_response, http_client, transport_error, with_delivery_headers,
};
use crate::notify::receivers::template::{self, expand, truncate_chars};
use crate::notify::receivers::{BatchReceiver, DeliveryReport, Receiver, SendError};

/// Slack's hard cap on attachments per message.
pub const MAX_ATTACHMENTS: usize = 100;
/// Slack truncates message text beyond this many characters.
pub const MAX_MESSAGE_TEXT: usize = 40_000;
/// Per-attachment text cap (Slack's block text limit; keeps messages readable).
pub const MAX_ATTACHMENT_TEXT: usize = 3_000;
/// Title cap, as Alertmanager.
pub const MAX_TITLE: usize = 1_024;
/// Field value cap.
pub const MAX_FIELD_VALUE: usize = 2_000;

/// The JSON body Slack's incoming webhooks accept.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlackMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub link_names: bool,
    /// Top-level text: empty for one notification; a count when batched.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    pub attachments: Vec<SlackAttachment>,
}

/// One legacy message attachment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlackAttachment {
    pub color: String,
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title_link: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretext: Option<String>,
    pub text: String,
    pub fallback: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<SlackField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mrkdwn_in: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<SlackAction>,
}

/// `attachments[].fields[]`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlackField {
    pub title: String,
    pub value: String,
    pub short: bool,
}

/// `attachments[].actions[]`: link buttons.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlackAction {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Sends notifications to one Slack incoming webhook.
#[derive(Debug)]
pub struct SlackReceiver {
    settings: SlackSettings,
    client: reqwest::Client,
    pacing_key: String,
}

impl SlackReceiver {
    pub fn new(settings: SlackSettings) -> Result<SlackReceiver, reqwest::Error> {
        let client = http_client(DEFAULT_HTTP_TIMEOUT, &settings.http)?;
        let mut hasher = StableHasher::default();
        settings.api_url.expose().hash(&mut hasher);
        let pacing_key = format!("slack:{:016x}", hasher.finish());
        Ok(SlackReceiver {
            settings,
            client,
            pacing_key,
        })
    }

    /// The colour of a notification's attachment (see the module docs).
    pub fn color(&self, notification: &Notification) -> String {
        if let Some(color) = &self.settings.color {
            return expand(color, notification);
        }
        default_color(notification).to_string()
    }

    /// One attachment for one notification.
    pub fn attachment(&self, notification: &Notification, text_budget: usize) -> SlackAttachment {
        let s = &self.settings;
        let mut title = s
            .title
            .as_deref()
            .map(|t| expand(t, notification))
            .unwrap_or_else(|| template::subject(notification));
        if notification.redelivery {
            title = format!("{title} {REDELIVERY_MARK}");
        }
        let title = truncate_chars(&title, MAX_TITLE);
        let title_link = s
            .title_link
            .as_deref()
            .map(|t| expand(t, notification))
            .unwrap_or_else(|| {
                if notification.external_url.is_empty() {
                    String::new()
                } else {
                    template::title_link(notification)
                }
            });
        let mut text = s
            .text
            .as_deref()
            .map(|t| expand(t, notification))
            .unwrap_or_else(|| template::slack_text(notification, &notification.alerts));
        if notification.truncated_alerts > 0 {
            text.push_str(&format!(
                "\n_{} more alerts not shown_",
                notification.truncated_alerts
            ));
        }
        let text = truncate_chars(&text, text_budget.min(MAX_ATTACHMENT_TEXT));
        let fallback = s
            .fallback
            .as_deref()
            .map(|t| expand(t, notification))
            .unwrap_or_else(|| {
                if title_link.is_empty() {
                    title.clone()
                } else {
                    format!("{title} | {title_link}")
                }
            });
        let fields = if s.fields.is_empty() {
            notification
                .common_labels
                .iter()
                .filter(|l| l.name != "alertname")
                .map(|l| SlackField {
                    title: l.name.to_string(),
                    value: truncate_chars(l.value, MAX_FIELD_VALUE),
                    short: true,
                })
                .collect()
        } else {
            s.fields
                .iter()
                .map(|f| SlackField {
                    title: expand(&f.title, notification),
                    value: truncate_chars(&expand(&f.value, notification), MAX_FIELD_VALUE),
                    short: f.short.unwrap_or(s.short_fields),
                })
                .collect()
        };
        let actions = if s.actions.is_empty() {
            default_actions(notification)
        } else {
            s.actions
                .iter()
                .map(|a| SlackAction {
                    kind: a.kind.clone(),
                    text: expand(&a.text, notification),
                    url: a.url.as_deref().map(|u| expand(u, notification)),
                    style: a.style.clone(),
                    name: a.name.clone(),
                    value: a.value.as_deref().map(|v| expand(v, notification)),
                })
                .collect()
        };
        let opt = |value: &Option<String>| {
            value
                .as_deref()
                .map(|v| expand(v, notification))
                .filter(|v| !v.is_empty())
        };
        SlackAttachment {
            color: self.color(notification),
            title,
            title_link,
            pretext: opt(&s.pretext),
            text,
            fallback,
            fields,
            footer: opt(&s.footer),
            callback_id: opt(&s.callback_id),
            image_url: opt(&s.image_url),
            thumb_url: opt(&s.thumb_url),
            mrkdwn_in: s.mrkdwn_in.clone(),
            actions,
        }
    }

    /// The message for one or several notifications (at most
    /// [`MAX_ATTACHMENTS`]; the caller splits larger batches).
    pub fn message(&self, notifications: &[Notification]) -> SlackMessage {
        let s = &self.settings;
        let mut attachments: Vec<SlackAttachment> = notifications
            .iter()
            .take(MAX_ATTACHMENTS)
            .map(|n| self.attachment(n, MAX_ATTACHMENT_TEXT))
            .collect();
        fit_message_text(&mut attachments);
        let first = notifications.first();
        let opt = |value: &Option<String>| match (value, first) {
            (Some(v), Some(n)) => Some(expand(v, n)).filter(|v| !v.is_empty()),
            _ => None,
        };
        SlackMessage {
            channel: opt(&s.channel),
            username: opt(&s.username),
            icon_emoji: opt(&s.icon_emoji),
            icon_url: opt(&s.icon_url),
            link_names: s.link_names,
            text: if attachments.len() > 1 {
                format!("{} notifications", attachments.len())
            } else {
                String::new()
            },
            attachments,
        }
    }

    /// Posts `message`, made of `notifications`: their idempotency keys
    /// (comma-separated when batched) in `Idempotency-Key`, and
    /// `X-Vigil-Redelivery: true` when one of them is a re-send.
    async fn post(
        &self,
        message: &SlackMessage,
        notifications: &[Notification],
    ) -> Result<DeliveryReport, SendError> {
        let keys: Vec<String> = notifications
            .iter()
            .take(MAX_ATTACHMENTS)
            .map(Notification::idempotency_key)
            .collect();
        let redelivery = notifications.iter().any(|n| n.redelivery);
        let mut request = self
            .client
            .post(self.settings.api_url.expose())
            .json(message);
        request = with_delivery_headers(request, &keys.join(", "), redelivery);
        if let Some(authorization) = &self.settings.http.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error("slack", e))?;
        let (status, body) = check_http_response("slack", response).await?;
        // chat.postMessage answers JSON; incoming webhooks answer `ok`.
        let mut message_id = None;
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) {
            if json.get("ok") == Some(&serde_json::Value::Bool(false)) {
                let reason = json
                    .get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("unknown error")
                    .to_string();
                return Err(SendError::Rejected {
                    integration: "slack",
                    reason,
                });
            }
            message_id = json.get("ts").and_then(|t| t.as_str()).map(str::to_string);
        }
        Ok(DeliveryReport {
            response_code: Some(status),
            message_id,
        })
    }
}

/// Characters of an attachment that Slack shows, other than its text.
fn visible_overhead(attachment: &SlackAttachment) -> usize {
    let chars = |s: &str| s.chars().count();
    chars(&attachment.title)
        + attachment.pretext.as_deref().map_or(0, chars)
        + attachment.footer.as_deref().map_or(0, chars)
        + attachment
            .fields
            .iter()
            .map(|f| chars(&f.title) + chars(&f.value))
            .sum::<usize>()
        + attachment
            .actions
            .iter()
            .map(|a| chars(&a.text))
            .sum::<usize>()
}

/// Shares what is left of Slack's 40k-character budget, after titles,
/// fields and a margin for the top-level text, evenly among the texts.
fn fit_message_text(attachments: &mut [SlackAttachment]) {
    const TOP_LEVEL_MARGIN: usize = 100;
    let total = |attachments: &[SlackAttachment]| -> usize {
        attachments
            .iter()
            .map(|a| visible_overhead(a) + a.text.chars().count())
            .sum()
    };
    if attachments.is_empty() || total(attachments) + TOP_LEVEL_MARGIN <= MAX_MESSAGE_TEXT {
        return;
    }
    let overhead: usize = attachments.iter().map(visible_overhead).sum();
    let room = MAX_MESSAGE_TEXT.saturating_sub(overhead + TOP_LEVEL_MARGIN);
    let each = room / attachments.len();
    for attachment in attachments.iter_mut() {
        attachment.text = truncate_chars(&attachment.text, each);
    }
}

/// Colour by status and the most severe firing alert.
pub fn default_color(notification: &Notification) -> &'static str {
    if notification.status == AlertStatus::Resolved {
        return "good";
    }
    let mut rank = 0;
    for alert in &notification.alerts {
        if alert.status != AlertStatus::Firing {
            continue;
        }
        let severity = alert
            .alert
            .labels
            .get("severity")
            .unwrap_or("")
            .to_ascii_lowercase();
        let this = match severity.as_str() {
            "critical" | "page" | "error" | "high" => 2,
            "warning" | "warn" | "medium" => 1,
            _ => 0,
        };
        rank = rank.max(this);
    }
    match rank {
        2 => "danger",
        1 => "warning",
        _ => "#439FE0",
    }
}

/// Buttons for `runbook_url` and `dashboard_url`: from the common
/// annotations, else from the first alert that has them.
fn default_actions(notification: &Notification) -> Vec<SlackAction> {
    let mut actions = Vec::new();
    for (annotation, label) in [("runbook_url", "Runbook"), ("dashboard_url", "Dashboard")] {
        let url = notification.common_annotations.get(annotation).or_else(|| {
            notification
                .alerts
                .iter()
                .find_map(|a| a.alert.annotations.get(annotation))
        });
        if let Some(url) = url.filter(|u| !u.is_empty()) {
            actions.push(SlackAction {
                kind: "button".into(),
                text: label.into(),
                url: Some(url.clone()),
                style: None,
                name: None,
                value: None,
            });
        }
    }
    actions
}

#[async_trait]
impl Receiver for SlackReceiver {
    fn integration(&self) -> &'static str {
        "slack"
    }

    fn send_resolved(&self) -> bool {
        self.settings.send_resolved
    }

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let notifications = std::slice::from_ref(notification);
        self.post(&self.message(notifications), notifications).await
    }

    fn as_batching(&self) -> Option<&dyn BatchReceiver> {
        Some(self)
    }
}

#[async_trait]
impl BatchReceiver for SlackReceiver {
    fn pacing_key(&self) -> String {
        self.pacing_key.clone()
    }

    fn max_batch(&self) -> usize {
        MAX_ATTACHMENTS
    }

    async fn send_batch(
        &self,
        notifications: &[Notification],
    ) -> Result<DeliveryReport, SendError> {
        self.post(&self.message(notifications), notifications).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::receivers::http::HttpSettings;
    use crate::notify::receivers::template::tests::{alert, notification};
    use crate::notify::receivers::Secret;

    fn settings() -> SlackSettings {
        SlackSettings {
            send_resolved: true,
            api_url: Secret::new("http://127.0.0.1:1/hook"),
            channel: None,
            username: None,
            color: None,
            title: None,
            title_link: None,
            pretext: None,
            text: None,
            fields: Vec::new(),
            short_fields: false,
            footer: None,
            fallback: None,
            callback_id: None,
            icon_emoji: None,
            icon_url: None,
            image_url: None,
            thumb_url: None,
            link_names: false,
            mrkdwn_in: Vec::new(),
            actions: Vec::new(),
            http: HttpSettings::default(),
        }
    }

    #[test]
    fn colour_follows_the_most_severe_firing_alert() {
        let warning = alert(
            &[("alertname", "A"), ("severity", "warning")],
            AlertStatus::Firing,
        );
        let critical = alert(
            &[("alertname", "A"), ("severity", "critical")],
            AlertStatus::Firing,
        );
        let info = alert(
            &[("alertname", "A"), ("severity", "info")],
            AlertStatus::Firing,
        );
        let resolved = alert(
            &[("alertname", "A"), ("severity", "critical")],
            AlertStatus::Resolved,
        );
        assert_eq!(
            default_color(&notification(vec![warning.clone(), critical])),
            "danger"
        );
        assert_eq!(
            default_color(&notification(vec![warning, info.clone()])),
            "warning"
        );
        assert_eq!(default_color(&notification(vec![info])), "#439FE0");
        assert_eq!(default_color(&notification(vec![resolved])), "good");
    }

    #[test]
    fn attachment_has_default_title_link_fields_and_runbook_button() {
        let receiver = SlackReceiver::new(settings()).unwrap_or_else(|e| panic!("{e}"));
        let mut firing = alert(
            &[("alertname", "HighErrorRate"), ("route", "/x")],
            AlertStatus::Firing,
        );
        firing.alert.annotations.insert(
            "runbook_url".into(),
            "https://runbooks/high-error-rate".into(),
        );
        let n = notification(vec![firing]);
        let attachment = receiver.attachment(&n, MAX_ATTACHMENT_TEXT);
        assert_eq!(attachment.title, "[FIRING:1] HighErrorRate (/x)");
        assert_eq!(
            attachment.title_link,
            "http://vigil:9096/#/alerts?receiver=team+a"
        );
        assert_eq!(
            attachment.fallback,
            "[FIRING:1] HighErrorRate (/x) | http://vigil:9096/#/alerts?receiver=team+a"
        );
        assert_eq!(
            attachment.fields,
            vec![SlackField {
                title: "route".into(),
                value: "/x".into(),
                short: true
            }]
        );
        assert_eq!(attachment.actions.len(), 1);
        assert_eq!(
            attachment.actions[0].url.as_deref(),
            Some("https://runbooks/high-error-rate")
        );
        assert!(
            attachment.text.contains("Error rate above 5%"),
            "{}",
            attachment.text
        );
    }

    #[test]
    fn batched_message_keeps_total_text_within_slack_limit() {
        let receiver = SlackReceiver::new(settings()).unwrap_or_else(|e| panic!("{e}"));
        let mut big = alert(&[("alertname", "A")], AlertStatus::Firing);
        big.alert
            .annotations
            .insert("description".into(), "x".repeat(10_000));
        let batch: Vec<Notification> = (0..150).map(|_| notification(vec![big.clone()])).collect();
        let message = receiver.message(&batch);
        assert_eq!(message.attachments.len(), MAX_ATTACHMENTS);
        let total: usize = message
            .attachments
            .iter()
            .map(|a| a.text.chars().count() + a.title.chars().count())
            .sum();
        assert!(total <= MAX_MESSAGE_TEXT, "total text {total}");
        assert!(message
            .attachments
            .iter()
            .all(|a| a.text.chars().count() <= MAX_ATTACHMENT_TEXT));
    }

    #[test]
    fn a_redelivery_is_marked_at_the_end_of_the_title_and_fallback() {
        let receiver = SlackReceiver::new(settings()).unwrap_or_else(|e| panic!("{e}"));
        let mut n = notification(vec![alert(&[("alertname", "A")], AlertStatus::Firing)]);
        let plain = receiver.attachment(&n, MAX_ATTACHMENT_TEXT);
        assert!(!plain.title.contains(REDELIVERY_MARK));
        n.redelivery = true;
        let marked = receiver.attachment(&n, MAX_ATTACHMENT_TEXT);
        assert_eq!(marked.title, format!("{} {REDELIVERY_MARK}", plain.title));
        assert!(
            marked.fallback.contains(REDELIVERY_MARK),
            "{}",
            marked.fallback
        );
    }
}
