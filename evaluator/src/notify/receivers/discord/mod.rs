//! Discord receiver: one webhook message per notification with one embed
//! (title, description, red while firing and green once resolved), as
//! Alertmanager sends it.
//!
//! # `discord_configs`
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `true` | also notify when the group resolves |
//! | `webhook_url` / `webhook_url_file` (Vigil; Alertmanager 0.26) | one *required* | the channel's webhook (secret) |
//! | `title` | `{{ template "discord.default.title" . }}` | cut at 256 characters |
//! | `message` | `{{ template "discord.default.message" . }}` | cut at 4,096 characters |
//! | `http_config` | none | the HTTP client settings |

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::notify::alert::{AlertStatus, Notification, REDELIVERY_MARK};
use crate::notify::receivers::config::{
    check_url, resolve_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::template::{self, call, truncate_chars, TemplateField};
use crate::notify::receivers::{ReceiverKind, Secret};

/// Discord's embed title limit.
pub const MAX_TITLE: usize = 256;
/// Discord's embed description limit.
pub const MAX_DESCRIPTION: usize = 4096;
/// Embed colour while firing (Alertmanager's).
pub const COLOR_FIRING: u32 = 0x99_2D_22;
/// Embed colour once resolved (Alertmanager's).
pub const COLOR_RESOLVED: u32 = 0x2E_CC_71;

/// One entry of a receiver's `discord_configs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfigRaw {
    pub send_resolved: Option<bool>,
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<PathBuf>,
    pub title: Option<String>,
    pub message: Option<String>,
    pub http_config: Option<HttpConfigRaw>,
}

/// A validated Discord integration.
#[derive(Debug, Clone)]
pub struct DiscordSettings {
    pub send_resolved: bool,
    pub webhook_url: Secret,
    pub title: TemplateField,
    pub message: TemplateField,
    pub http: HttpSettings,
}

/// The webhook body.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiscordMessage {
    /// Always sent empty, as Alertmanager.
    pub content: String,
    pub embeds: Vec<DiscordEmbed>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiscordEmbed {
    pub title: String,
    pub description: String,
    pub color: u32,
}

fn validate(
    raw: DiscordConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<DiscordSettings> {
    let before = p.count();
    let url = if raw.webhook_url.is_none() && raw.webhook_url_file.is_none() {
        p.add(
            "webhook_url",
            "no discord webhook URL provided; set webhook_url or webhook_url_file",
        );
        None
    } else {
        resolve_secret(
            raw.webhook_url.as_ref(),
            raw.webhook_url_file.as_deref(),
            "webhook_url",
            true,
            p,
        )
    };
    if let Some(url) = &url {
        check_url(url.expose(), "webhook_url", p);
    }
    let t = &global.templates;
    let settings = DiscordSettings {
        send_resolved: raw.send_resolved.unwrap_or(DiscordConfigRaw::SEND_RESOLVED),
        webhook_url: url.unwrap_or_else(|| Secret::new("")),
        title: t.field_or(
            p,
            "title",
            raw.title.as_deref(),
            &call("discord.default.title"),
        ),
        message: t.field_or(
            p,
            "message",
            raw.message.as_deref(),
            &call("discord.default.message"),
        ),
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    (p.count() == before).then_some(settings)
}

receiver_kind!(DiscordConfigRaw, "discord_configs", send_resolved: true, validate => DiscordReceiver);

http_receiver!(
    /// Sends notifications to one Discord webhook.
    DiscordReceiver(DiscordSettings)
);

impl DiscordReceiver {
    /// The message for `n`.
    pub fn message(&self, n: &Notification) -> DiscordMessage {
        let s = &self.settings;
        let mut title = s.title.render(n, "discord", || template::subject(n));
        if n.redelivery {
            title = format!("{title} {REDELIVERY_MARK}");
        }
        let description = s
            .message
            .render(n, "discord", || template::text_alert_list(n));
        DiscordMessage {
            content: String::new(),
            embeds: vec![DiscordEmbed {
                title: truncate_chars(&title, MAX_TITLE),
                description: truncate_chars(&description, MAX_DESCRIPTION),
                color: match n.status {
                    AlertStatus::Firing => COLOR_FIRING,
                    AlertStatus::Resolved => COLOR_RESOLVED,
                },
            }],
        }
    }
}

json_webhook_receiver!(DiscordReceiver, "discord");
