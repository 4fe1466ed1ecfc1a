//! `telegram_configs[]`: the fields as written (serde) and their validation
//! into [`TelegramSettings`].

use std::path::PathBuf;

use serde::Deserialize;

use super::send::TelegramReceiver;
use crate::notify::receivers::config::{
    check_url, resolve_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::template::{call, TemplateField};
use crate::notify::receivers::{ReceiverKind, Secret};

/// Alertmanager's default `global.telegram_api_url`.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// The parse modes the Bot API knows (`""`: plain text).
const PARSE_MODES: [&str; 4] = ["", "Markdown", "MarkdownV2", "HTML"];

/// One entry of a receiver's `telegram_configs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfigRaw {
    /// Also notify when the group resolves; default `true`.
    pub send_resolved: Option<bool>,
    /// Default `global.telegram_api_url` (`https://api.telegram.org`).
    pub api_url: Option<String>,
    /// The bot's token (a secret); this or `bot_token_file` is required.
    pub bot_token: Option<Secret>,
    /// (Vigil; Alertmanager from 0.26) a file holding the token.
    pub bot_token_file: Option<PathBuf>,
    /// The chat to post to; required.
    pub chat_id: Option<i64>,
    /// Default `{{ template "telegram.default.message" . }}`; cut at
    /// 4,096 characters.
    pub message: Option<String>,
    /// Send silently; default `false`.
    #[serde(default)]
    pub disable_notifications: bool,
    /// `HTML` (default; values are escaped), `Markdown`, `MarkdownV2` or
    /// `""` (plain text).
    pub parse_mode: Option<String>,
    pub http_config: Option<HttpConfigRaw>,
}

/// A validated Telegram integration.
#[derive(Debug, Clone)]
pub struct TelegramSettings {
    pub send_resolved: bool,
    pub api_url: String,
    pub bot_token: Secret,
    pub chat_id: i64,
    pub message: TemplateField,
    pub disable_notifications: bool,
    pub parse_mode: String,
    pub http: HttpSettings,
}

pub(crate) fn validate_telegram(
    raw: TelegramConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<TelegramSettings> {
    let before = p.count();
    let api_url = raw
        .api_url
        .clone()
        .unwrap_or_else(|| global.telegram_api_url.clone());
    check_url(&api_url, "api_url", p);
    let bot_token = if raw.bot_token.is_none() && raw.bot_token_file.is_none() {
        p.add(
            "bot_token",
            "missing bot_token on telegram_config; set bot_token or bot_token_file",
        );
        None
    } else {
        resolve_secret(
            raw.bot_token.as_ref(),
            raw.bot_token_file.as_deref(),
            "bot_token",
            true,
            p,
        )
    };
    if raw.chat_id.is_none_or(|id| id == 0) {
        p.add(
            "chat_id",
            "missing chat_id on telegram_config; set the numeric id of the chat",
        );
    }
    let parse_mode = raw.parse_mode.clone().unwrap_or_else(|| "HTML".into());
    if !PARSE_MODES.contains(&parse_mode.as_str()) {
        p.add(
            "parse_mode",
            "unknown parse_mode on telegram_config, must be Markdown, MarkdownV2, HTML or empty string",
        );
    }
    let settings = TelegramSettings {
        send_resolved: raw
            .send_resolved
            .unwrap_or(TelegramConfigRaw::SEND_RESOLVED),
        api_url: api_url.trim_end_matches('/').to_string(),
        bot_token: bot_token.unwrap_or_else(|| Secret::new("")),
        chat_id: raw.chat_id.unwrap_or_default(),
        message: global.templates.field_or(
            p,
            "message",
            raw.message.as_deref(),
            &call("telegram.default.message"),
        ),
        disable_notifications: raw.disable_notifications,
        parse_mode,
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    (p.count() == before).then_some(settings)
}

receiver_kind!(TelegramConfigRaw, "telegram_configs", send_resolved: true, validate_telegram => TelegramReceiver);
