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

/// `slack_configs[]` as written in the config file. See [`super`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfigRaw {
    pub send_resolved: Option<bool>,
    pub api_url: Option<Secret>,
    pub api_url_file: Option<PathBuf>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub color: Option<String>,
    pub title: Option<String>,
    pub title_link: Option<String>,
    pub pretext: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub fields: Vec<SlackFieldRaw>,
    #[serde(default)]
    pub short_fields: bool,
    pub footer: Option<String>,
    pub fallback: Option<String>,
    pub callback_id: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    pub image_url: Option<String>,
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub link_names: bool,
    /// Unset: `[text]` (Vigil's default text uses mrkdwn); `[]` turns it off.
    pub mrkdwn_in: Option<Vec<String>>,
    #[serde(default)]
    pub actions: Vec<SlackActionRaw>,
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
        send_resolved: raw.send_resolved.unwrap_or(false),
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

    fn build(
        self,
        global: &GlobalReceiverDefaults,
        p: &mut Problems<'_>,
    ) -> Option<Arc<dyn Receiver>> {
        validate_slack(self, global, p)
            .and_then(|settings| p.receiver(SlackReceiver::new(settings)))
    }
}
