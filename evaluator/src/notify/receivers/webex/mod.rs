//! Webex receiver: one message per notification posted to a room through
//! the Webex messages API, as Alertmanager sends it (the text as
//! `markdown`, the bot's token in `http_config.authorization`).
//!
//! # `webex_configs`
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `true` | also notify when the group resolves |
//! | `api_url` | `global.webex_api_url` (`https://webexapis.com/v1/messages`) | the messages API |
//! | `room_id` | *required* | the room to post to |
//! | `message` | `{{ template "webex.default.message" . }}` | Markdown text; cut at 7,439 bytes' worth of characters |
//! | `http_config` | `authorization` *required* | the bot's token as `authorization: {credentials: ...}` |

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::notify::alert::{Notification, REDELIVERY_MARK};
use crate::notify::receivers::config::{check_url, GlobalReceiverDefaults, Problems};
use crate::notify::receivers::http::{post_json, validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::template::{self, call, truncate_chars, TemplateField};
use crate::notify::receivers::{DeliveryReport, Receiver, ReceiverKind, SendError};

/// Alertmanager's default `global.webex_api_url`.
pub const DEFAULT_API_URL: &str = "https://webexapis.com/v1/messages";
/// Webex's message limit (Alertmanager's).
pub const MAX_MESSAGE: usize = 7439;

/// One entry of a receiver's `webex_configs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebexConfigRaw {
    pub send_resolved: Option<bool>,
    pub api_url: Option<String>,
    pub room_id: Option<String>,
    pub message: Option<String>,
    pub http_config: Option<HttpConfigRaw>,
}

/// A validated Webex integration.
#[derive(Debug, Clone)]
pub struct WebexSettings {
    pub send_resolved: bool,
    pub api_url: String,
    pub room_id: String,
    pub message: TemplateField,
    pub http: HttpSettings,
}

/// The messages API body.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebexMessage {
    pub room_id: String,
    pub markdown: String,
}

fn validate(
    raw: WebexConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<WebexSettings> {
    let before = p.count();
    let api_url = raw
        .api_url
        .clone()
        .unwrap_or_else(|| global.webex_api_url.clone());
    check_url(&api_url, "api_url", p);
    let room_id = raw.room_id.clone().unwrap_or_default();
    if room_id.is_empty() {
        p.add(
            "room_id",
            "missing room_id on webex_config; set the id of the room to post to",
        );
    }
    if raw
        .http_config
        .as_ref()
        .is_none_or(|h| h.authorization.is_none())
    {
        p.add("http_config.authorization", "missing webex_configs.http_config.authorization; set the bot's token as authorization: {credentials: <token>}");
    }
    let settings = WebexSettings {
        send_resolved: raw.send_resolved.unwrap_or(WebexConfigRaw::SEND_RESOLVED),
        api_url,
        room_id,
        message: global.templates.field_or(
            p,
            "message",
            raw.message.as_deref(),
            &call("webex.default.message"),
        ),
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    (p.count() == before).then_some(settings)
}

receiver_kind!(WebexConfigRaw, "webex_configs", send_resolved: true, validate => WebexReceiver);

http_receiver!(
    /// Sends notifications to one Webex room.
    WebexReceiver(WebexSettings)
);

impl WebexReceiver {
    /// The message for `n`.
    pub fn message(&self, n: &Notification) -> WebexMessage {
        let s = &self.settings;
        let mut markdown = s
            .message
            .render(n, "webex", || template::text_alert_list(n));
        if n.redelivery {
            markdown = format!("{markdown}\n{REDELIVERY_MARK}");
        }
        WebexMessage {
            room_id: s.room_id.clone(),
            markdown: truncate_chars(&markdown, MAX_MESSAGE),
        }
    }
}

#[async_trait]
impl Receiver for WebexReceiver {
    receiver_identity!("webex");

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let s = &self.settings;
        let body = self.message(notification);
        let (status, answer) = post_json(
            "webex",
            &self.client,
            &s.api_url,
            &s.http,
            &body,
            notification,
        )
        .await?;
        let id = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|j| j["id"].as_str().map(str::to_string));
        Ok(DeliveryReport {
            response_code: Some(status),
            message_id: id,
        })
    }
}
