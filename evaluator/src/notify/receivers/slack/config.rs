//! `slack_configs[]`: the fields as written (serde) and their validation
//! into [`SlackSettings`], with the fallback on `global.slack_api_url(_file)`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::send::SlackReceiver;
use crate::notify::receivers::config::{
    check_url, resolve_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::{Receiver, ReceiverKind, Secret};

/// One entry of a receiver's `slack_configs`: a Slack incoming webhook.
/// Strings accept the placeholders of
/// [`crate::notify::receivers::template::expand`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfigRaw {
    /// Also notify when the group resolves; default `false`.
    pub send_resolved: Option<bool>,
    /// The incoming webhook URL (a secret); default
    /// `global.slack_api_url`.
    pub api_url: Option<Secret>,
    /// A file holding the webhook URL, instead of `api_url`; default
    /// `global.slack_api_url_file`.
    pub api_url_file: Option<PathBuf>,
    /// Message override (many webhooks ignore it); unset by default.
    pub channel: Option<String>,
    /// Message override (many webhooks ignore it); unset by default.
    pub username: Option<String>,
    /// Attachment colour; default as described in [`super`] (by status and
    /// severity).
    pub color: Option<String>,
    /// Attachment title; default `[FIRING:2] <group values> (<other common
    /// values>)`.
    pub title: Option<String>,
    /// Link behind the title; default
    /// `<external_url>/#/alerts?receiver=<name>`.
    pub title_link: Option<String>,
    /// Passed through; unset by default.
    pub pretext: Option<String>,
    /// Attachment text; default one entry per alert: name, status,
    /// severity, summary, description, distinguishing labels
    /// (Alertmanager's default is empty; Vigil's is not).
    pub text: Option<String>,
    /// `[{title, value, short}]`; default the common labels except
    /// `alertname` (short).
    #[serde(default)]
    pub fields: Vec<SlackFieldRaw>,
    /// Make every configured field short; default `false`.
    #[serde(default)]
    pub short_fields: bool,
    /// Passed through; unset by default.
    pub footer: Option<String>,
    /// Plain-text summary for notifications; default
    /// `<title> | <title_link>`.
    pub fallback: Option<String>,
    /// Passed through; unset by default.
    pub callback_id: Option<String>,
    /// Message override (many webhooks ignore it); not with `icon_url`.
    pub icon_emoji: Option<String>,
    /// Message override (many webhooks ignore it); not with `icon_emoji`.
    pub icon_url: Option<String>,
    /// Passed through; unset by default.
    pub image_url: Option<String>,
    /// Passed through; unset by default.
    pub thumb_url: Option<String>,
    /// Message override (many webhooks ignore it); default `false`.
    #[serde(default)]
    pub link_names: bool,
    /// Attachment fields Slack formats as mrkdwn. Unset: `[text]` (Vigil's
    /// default text uses mrkdwn; Alertmanager leaves it unset); `[]` turns
    /// it off.
    pub mrkdwn_in: Option<Vec<String>>,
    /// Link buttons `[{type, text, url, style, name, value}]`; default
    /// buttons for the `runbook_url` and `dashboard_url` annotations.
    #[serde(default)]
    pub actions: Vec<SlackActionRaw>,
    /// `authorization`, `bearer_token(_file)`, `basic_auth`,
    /// `follow_redirects`; none by default.
    pub http_config: Option<HttpConfigRaw>,
}

/// `slack_configs[].fields[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackFieldRaw {
    pub title: String,
    pub value: String,
    pub short: Option<bool>,
}

/// `slack_configs[].actions[]` (link buttons; Slack shows `type: button`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackActionRaw {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub url: Option<String>,
    pub style: Option<String>,
    pub name: Option<String>,
    pub value: Option<String>,
}

/// A validated Slack integration.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub send_resolved: bool,
    pub api_url: Secret,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub color: Option<String>,
    pub title: Option<String>,
    pub title_link: Option<String>,
    pub pretext: Option<String>,
    pub text: Option<String>,
    pub fields: Vec<SlackFieldRaw>,
    pub short_fields: bool,
    pub footer: Option<String>,
    pub fallback: Option<String>,
    pub callback_id: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    pub image_url: Option<String>,
    pub thumb_url: Option<String>,
    pub link_names: bool,
    pub mrkdwn_in: Vec<String>,
    pub actions: Vec<SlackActionRaw>,
    pub http: HttpSettings,
}

fn validate_slack(
    raw: SlackConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<SlackSettings> {
    let before = p.count();
    let api_url = if raw.api_url.is_some() || raw.api_url_file.is_some() {
        resolve_secret(
            raw.api_url.as_ref(),
            raw.api_url_file.as_deref(),
            "api_url",
            true,
            p,
        )
    } else if global.slack_api_url.is_some() || global.slack_api_url_file.is_some() {
        resolve_secret(
            global.slack_api_url.as_ref(),
            global.slack_api_url_file.as_deref(),
            "slack_api_url",
            true,
            &mut p.global(),
        )
    } else {
        p.add(
            "api_url",
            "no Slack webhook URL: set api_url or api_url_file here, or global.slack_api_url(_file)",
        );
        None
    };
    if let Some(url) = &api_url {
        check_url(url.expose(), "api_url", p);
    }
    if let Some(icon) = &raw.icon_url {
        if raw.icon_emoji.is_some() {
            p.add("icon_url", "set icon_url or icon_emoji, not both");
        }
        check_url(icon, "icon_url", p);
    }
    for (i, action) in raw.actions.iter().enumerate() {
        if action.kind.is_empty() || action.text.is_empty() {
            p.add(&format!("actions[{i}]"), "type and text are required");
        }
        if action.url.is_none() && action.name.is_none() {
            p.add(&format!("actions[{i}]"), "url or name is required");
        }
    }
    for (i, field) in raw.fields.iter().enumerate() {
        if field.title.is_empty() || field.value.is_empty() {
            p.add(&format!("fields[{i}]"), "title and value are required");
        }
    }
    let http = validate_http(raw.http_config.as_ref(), p);
    if p.count() > before {
        return None;
    }
    Some(SlackSettings {
        send_resolved: raw.send_resolved.unwrap_or(SlackConfigRaw::SEND_RESOLVED),
        api_url: api_url?,
        channel: raw.channel,
        username: raw.username,
        color: raw.color,
        title: raw.title,
        title_link: raw.title_link,
        pretext: raw.pretext,
        text: raw.text,
        fields: raw.fields,
        short_fields: raw.short_fields,
        footer: raw.footer,
        fallback: raw.fallback,
        callback_id: raw.callback_id,
        icon_emoji: raw.icon_emoji,
        icon_url: raw.icon_url,
        image_url: raw.image_url,
        thumb_url: raw.thumb_url,
        link_names: raw.link_names,
        mrkdwn_in: raw.mrkdwn_in.unwrap_or_else(|| vec!["text".to_string()]),
        actions: raw.actions,
        http,
    })
}

impl ReceiverKind for SlackConfigRaw {
    const SECTION: &'static str = "slack_configs";
    const SEND_RESOLVED: bool = false;

    fn build(
        self,
        global: &GlobalReceiverDefaults,
        p: &mut Problems<'_>,
    ) -> Option<Arc<dyn Receiver>> {
        validate_slack(self, global, p)
            .and_then(|settings| p.receiver(SlackReceiver::new(settings)))
    }
}
