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
    check_http_response, http_client, token_send_error, transport_error, with_delivery_headers,
};
use crate::notify::receivers::template::{self, truncate_chars, TemplateField};
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
    #[serde(skip_serializing_if = "String::is_empty")]
    pub color: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub title_link: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretext: Option<String>,
    pub text: String,
    pub fallback: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<SlackField>,
    /// Always sent, as Alertmanager.
    pub footer: String,
    /// Always sent, as Alertmanager.
    pub callback_id: String,
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
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub short: bool,
}

/// `attachments[].actions[]`: link buttons.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlackAction {
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<SlackConfirm>,
}

/// `attachments[].actions[].confirm`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlackConfirm {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dismiss_text: Option<String>,
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

    /// One attachment for one notification, as Alertmanager builds it.
    pub fn attachment(&self, notification: &Notification, text_budget: usize) -> SlackAttachment {
        let s = &self.settings;
        let n = notification;
        let render = |field: &TemplateField| field.render(n, "slack", String::new);
        let optional = |field: &TemplateField| field.render_nonempty(n, "slack");
        let mut title = s.title.render(n, "slack", || template::subject(n));
        if n.redelivery {
            title = format!("{title} {REDELIVERY_MARK}");
        }
        let title = truncate_chars(&title, MAX_TITLE);
        let mut text = s.text.render(n, "slack", || template::text_alert_list(n));
        if n.truncated_alerts > 0 {
            text.push_str(&format!("\n_{} more alerts not shown_", n.truncated_alerts));
        }
        let text = truncate_chars(&text, text_budget.min(MAX_ATTACHMENT_TEXT));
        let mut fallback = s.fallback.render(n, "slack", || template::subject(n));
        if n.redelivery && !fallback.contains(REDELIVERY_MARK) {
            fallback = format!("{fallback} {REDELIVERY_MARK}");
        }
        let fields = s
            .fields
            .iter()
            .map(|f| SlackField {
                title: render(&f.title),
                value: truncate_chars(&render(&f.value), MAX_FIELD_VALUE),
                short: f.short,
            })
            .collect();
        let actions = s
            .actions
            .iter()
            .map(|a| SlackAction {
                kind: render(&a.kind),
                text: render(&a.text),
                url: optional(&a.url),
                style: optional(&a.style),
                name: optional(&a.name),
                value: optional(&a.value),
                confirm: a.confirm.as_ref().map(|c| SlackConfirm {
                    text: render(&c.text),
                    title: optional(&c.title),
                    ok_text: optional(&c.ok_text),
                    dismiss_text: optional(&c.dismiss_text),
                }),
            })
            .collect();
        SlackAttachment {
            color: s.color.render(n, "slack", || default_color(n).to_string()),
            title,
            title_link: render(&s.title_link),
            pretext: optional(&s.pretext),
            text,
            fallback,
            fields,
            footer: render(&s.footer),
            callback_id: render(&s.callback_id),
            image_url: optional(&s.image_url),
            thumb_url: optional(&s.thumb_url),
            mrkdwn_in: s.mrkdwn_in.clone(),
            actions,
        }
    }

    /// The message for one or several notifications (at most
    /// [`MAX_ATTACHMENTS`]; the caller splits larger batches). The
    /// message-level fields are rendered for the first notification.
    pub fn message(&self, notifications: &[Notification]) -> SlackMessage {
        let s = &self.settings;
        let mut attachments: Vec<SlackAttachment> = notifications
            .iter()
            .take(MAX_ATTACHMENTS)
            .map(|n| self.attachment(n, MAX_ATTACHMENT_TEXT))
            .collect();
        fit_message_text(&mut attachments);
        let opt = |field: &TemplateField| {
            notifications
                .first()
                .and_then(|n| field.render_nonempty(n, "slack"))
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
        request = self
            .settings
            .http
            .authorize(request)
            .await
            .map_err(|e| token_send_error("slack", e))?;
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
        + chars(&attachment.footer)
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

/// The colour when the `color` template fails: Alertmanager's default.
pub fn default_color(notification: &Notification) -> &'static str {
    match notification.status {
        AlertStatus::Firing => "danger",
        AlertStatus::Resolved => "good",
    }
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
    use crate::notify::receivers::config::validated;
    use crate::notify::receivers::slack::config::{validate_slack, DEFAULT_MRKDWN_IN};
    use crate::notify::receivers::template::tests::{alert, notification};

    fn receiver(extra: &str) -> SlackReceiver {
        let yaml = format!("api_url: 'http://127.0.0.1:1/hook'\n{extra}");
        SlackReceiver::new(validated(&yaml, validate_slack)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults_render_alertmanagers_default_templates() {
        let mut firing = alert(
            &[("alertname", "HighErrorRate"), ("route", "/x")],
            AlertStatus::Firing,
        );
        firing.alert.annotations.insert(
            "runbook_url".into(),
            "https://runbooks/high-error-rate".into(),
        );
        let n = notification(vec![firing]);
        let attachment = receiver("").attachment(&n, MAX_ATTACHMENT_TEXT);
        assert_eq!(attachment.title, "[FIRING:1] HighErrorRate (/x)");
        assert_eq!(
            attachment.title_link,
            "http://vigil:9096/#/alerts?receiver=team+a"
        );
        assert_eq!(attachment.color, "danger");
        assert_eq!(attachment.text, "");
        assert!(attachment.fields.is_empty() && attachment.actions.is_empty());
        assert_eq!(attachment.mrkdwn_in, DEFAULT_MRKDWN_IN.map(String::from));
        let mut resolved = n.clone();
        resolved.status = AlertStatus::Resolved;
        assert_eq!(
            receiver("")
                .attachment(&resolved, MAX_ATTACHMENT_TEXT)
                .color,
            "good"
        );
    }

    #[test]
    fn every_text_field_is_a_template() {
        let r = receiver(
            r#"title: '{{ .CommonLabels.route }} {{ .Status | toUpper }}'
text: "{{ range .Alerts }}*{{ .Labels.alertname }}* — {{ .Annotations.summary }}{{ end }}"
color: '{{ if eq .CommonLabels.route "/x" }}warning{{ end }}'
channel: '#{{ .GroupLabels.alertname | toLower }}'
fields:
  - {title: Route, value: '{{ .CommonLabels.route }}', short: true}
actions:
  - {type: button, text: 'Runbook {{ len .Alerts }}', url: 'https://r/{{ .GroupLabels.alertname }}', name: ignored}
"#,
        );
        let n = notification(vec![alert(
            &[("alertname", "HighErrorRate"), ("route", "/x")],
            AlertStatus::Firing,
        )]);
        let message = r.message(std::slice::from_ref(&n));
        let a = &message.attachments[0];
        assert_eq!(a.title, "/x FIRING");
        assert_eq!(a.text, "*HighErrorRate* — Error rate above 5%");
        assert_eq!(a.color, "warning");
        assert_eq!(message.channel.as_deref(), Some("#higherrorrate"));
        assert_eq!(a.fields[0].value, "/x");
        assert_eq!(a.actions[0].text, "Runbook 1");
        assert_eq!(a.actions[0].url.as_deref(), Some("https://r/HighErrorRate"));
        assert_eq!(a.actions[0].name, None, "a link button drops name");
    }

    #[test]
    fn vigils_named_templates_colour_by_severity_and_list_the_alerts() {
        let r = receiver(
            "text: '{{ template \"vigil.slack.text\" . }}'\ncolor: '{{ template \"vigil.slack.color\" . }}'\n",
        );
        let with = |severity: &str, status| {
            alert(
                &[
                    ("alertname", "A"),
                    ("severity", severity),
                    ("pod", severity),
                ],
                status,
            )
        };
        let colour = |alerts| {
            r.attachment(&notification(alerts), MAX_ATTACHMENT_TEXT)
                .color
        };
        assert_eq!(
            colour(vec![
                with("warning", AlertStatus::Firing),
                with("critical", AlertStatus::Firing)
            ]),
            "danger"
        );
        assert_eq!(
            colour(vec![
                with("warning", AlertStatus::Firing),
                with("info", AlertStatus::Firing)
            ]),
            "warning"
        );
        assert_eq!(colour(vec![with("info", AlertStatus::Firing)]), "#439FE0");
        assert_eq!(
            colour(vec![with("critical", AlertStatus::Resolved)]),
            "good"
        );
        let mut n = notification(vec![
            with("warning", AlertStatus::Firing),
            with("critical", AlertStatus::Firing),
        ]);
        n.common_labels = crate::labels::Labels::from_pairs([("alertname", "A")]);
        let text = r.attachment(&n, MAX_ATTACHMENT_TEXT).text;
        assert!(
            text.starts_with("*A* (firing) `warning` — Error rate above 5%\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "`pod=critical` `severity=critical` <http://vigil:9096/graph?g0.expr=x|graph>"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_failing_template_sends_the_plain_fallback() {
        let r = receiver("title: '{{ .Nope.Deeper }}'\ntext: '{{ template \"undefined\" . }}'\n");
        let n = notification(vec![alert(
            &[("alertname", "HighErrorRate"), ("route", "/x")],
            AlertStatus::Firing,
        )]);
        let a = r.attachment(&n, MAX_ATTACHMENT_TEXT);
        assert_eq!(a.title, "[FIRING:1] HighErrorRate (/x)");
        assert!(a.text.contains("Error rate above 5%"), "{}", a.text);
    }

    #[test]
    fn batched_message_keeps_total_text_within_slack_limit() {
        let r = receiver("text: '{{ range .Alerts }}{{ .Annotations.description }}{{ end }}'\n");
        let mut big = alert(&[("alertname", "A")], AlertStatus::Firing);
        big.alert
            .annotations
            .insert("description".into(), "x".repeat(10_000));
        let batch: Vec<Notification> = (0..150).map(|_| notification(vec![big.clone()])).collect();
        let message = r.message(&batch);
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
        let r = receiver("");
        let mut n = notification(vec![alert(&[("alertname", "A")], AlertStatus::Firing)]);
        let plain = r.attachment(&n, MAX_ATTACHMENT_TEXT);
        assert!(!plain.title.contains(REDELIVERY_MARK));
        n.redelivery = true;
        let marked = r.attachment(&n, MAX_ATTACHMENT_TEXT);
        assert_eq!(marked.title, format!("{} {REDELIVERY_MARK}", plain.title));
        assert!(
            marked.fallback.contains(REDELIVERY_MARK),
            "{}",
            marked.fallback
        );
    }
}
