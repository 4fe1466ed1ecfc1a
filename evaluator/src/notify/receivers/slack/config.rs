//! `slack_configs[]`: the fields as written (serde) and their validation
//! into [`SlackSettings`], with the fallback on `global.slack_api_url(_file)`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use super::send::SlackReceiver;
use crate::notify::receivers::config::{
    check_url, entry_or_global_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::template::{call, TemplateField};
use crate::notify::receivers::{Receiver, ReceiverKind, Secret};

/// One entry of a receiver's `slack_configs`: a Slack incoming webhook.
/// Every text field is a notification template (see
/// [`crate::notify::receivers::template`]); its default is Alertmanager's.
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
    /// Default `{{ template "slack.default.username" . }}`.
    pub username: Option<String>,
    /// Attachment colour; default `danger` when firing, `good` when
    /// resolved ([`DEFAULT_COLOR`]; Vigil's severity-aware colour is the
    /// template `vigil.slack.color`).
    pub color: Option<String>,
    /// Default `{{ template "slack.default.title" . }}`
    /// (`[FIRING:2] <group values> (<other common values>)`).
    pub title: Option<String>,
    /// Default `{{ template "slack.default.titlelink" . }}`
    /// (`<external_url>/#/alerts?receiver=<name>`).
    pub title_link: Option<String>,
    /// Default `{{ template "slack.default.pretext" . }}` (empty).
    pub pretext: Option<String>,
    /// Default `{{ template "slack.default.text" . }}` (empty, as in
    /// Alertmanager; Vigil's per-alert list is the template
    /// `vigil.slack.text`).
    pub text: Option<String>,
    /// `[{title, value, short}]`; none by default.
    #[serde(default)]
    pub fields: Vec<SlackFieldRaw>,
    /// Make every field without its own `short` short; default `false`.
    #[serde(default)]
    pub short_fields: bool,
    /// Default `{{ template "slack.default.footer" . }}` (empty).
    pub footer: Option<String>,
    /// Plain-text summary for notifications; default
    /// `{{ template "slack.default.fallback" . }}` (`<title> | <title_link>`).
    pub fallback: Option<String>,
    /// Default `{{ template "slack.default.callbackid" . }}` (empty).
    pub callback_id: Option<String>,
    /// Default `{{ template "slack.default.iconemoji" . }}` (empty).
    pub icon_emoji: Option<String>,
    /// Default `{{ template "slack.default.iconurl" . }}` (empty).
    pub icon_url: Option<String>,
    /// Unset by default.
    pub image_url: Option<String>,
    /// Unset by default.
    pub thumb_url: Option<String>,
    /// Message override (many webhooks ignore it); default `false`.
    #[serde(default)]
    pub link_names: bool,
    /// Attachment fields Slack formats as mrkdwn; default
    /// `[fallback, pretext, text]`, as Alertmanager.
    #[serde(default)]
    pub mrkdwn_in: Vec<String>,
    /// Buttons `[{type, text, url, style, name, value, confirm}]`; none by
    /// default.
    #[serde(default)]
    pub actions: Vec<SlackActionRaw>,
    /// `authorization`, `bearer_token(_file)`, `basic_auth`,
    /// `follow_redirects`; none by default.
    pub http_config: Option<HttpConfigRaw>,
}

/// Alertmanager's default attachment colour.
pub const DEFAULT_COLOR: &str = r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#;

/// Alertmanager's default `mrkdwn_in`.
pub const DEFAULT_MRKDWN_IN: [&str; 3] = ["fallback", "pretext", "text"];

/// `slack_configs[].fields[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackFieldRaw {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub value: String,
    pub short: Option<bool>,
}

/// `slack_configs[].actions[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackActionRaw {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: String,
    pub url: Option<String>,
    pub style: Option<String>,
    pub name: Option<String>,
    pub value: Option<String>,
    pub confirm: Option<SlackConfirmRaw>,
}

/// `slack_configs[].actions[].confirm`: the dialog before the action runs.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfirmRaw {
    #[serde(default)]
    pub text: String,
    pub title: Option<String>,
    pub ok_text: Option<String>,
    pub dismiss_text: Option<String>,
}

/// A field, parsed.
#[derive(Debug, Clone)]
pub struct SlackFieldTemplate {
    pub title: TemplateField,
    pub value: TemplateField,
    pub short: bool,
}

/// An action, parsed.
#[derive(Debug, Clone)]
pub struct SlackActionTemplate {
    pub kind: TemplateField,
    pub text: TemplateField,
    pub url: TemplateField,
    pub style: TemplateField,
    pub name: TemplateField,
    pub value: TemplateField,
    pub confirm: Option<SlackConfirmTemplate>,
}

/// A confirmation dialog, parsed.
#[derive(Debug, Clone)]
pub struct SlackConfirmTemplate {
    pub text: TemplateField,
    pub title: TemplateField,
    pub ok_text: TemplateField,
    pub dismiss_text: TemplateField,
}

/// A validated Slack integration.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub send_resolved: bool,
    pub api_url: Secret,
    pub channel: TemplateField,
    pub username: TemplateField,
    pub color: TemplateField,
    pub title: TemplateField,
    pub title_link: TemplateField,
    pub pretext: TemplateField,
    pub text: TemplateField,
    pub fields: Vec<SlackFieldTemplate>,
    pub footer: TemplateField,
    pub fallback: TemplateField,
    pub callback_id: TemplateField,
    pub icon_emoji: TemplateField,
    pub icon_url: TemplateField,
    pub image_url: TemplateField,
    pub thumb_url: TemplateField,
    pub link_names: bool,
    pub mrkdwn_in: Vec<String>,
    pub actions: Vec<SlackActionTemplate>,
    pub http: HttpSettings,
}

pub(crate) fn validate_slack(
    raw: SlackConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<SlackSettings> {
    let before = p.count();
    let api_url = entry_or_global_secret(
        (raw.api_url.as_ref(), raw.api_url_file.as_deref()),
        (
            global.slack_api_url.as_ref(),
            global.slack_api_url_file.as_deref(),
        ),
        ["api_url", "slack_api_url"],
        "no Slack webhook URL: set api_url or api_url_file here, or global.slack_api_url(_file)",
        p,
    );
    if let Some(url) = &api_url {
        check_url(url.expose(), "api_url", p);
    }
    let t = &global.templates;
    let field = |p: &mut Problems<'_>, name: &str, src: &Option<String>, default: &str| {
        t.field_or(p, name, src.as_deref(), default)
    };
    let mut fields = Vec::with_capacity(raw.fields.len());
    for (i, f) in raw.fields.iter().enumerate() {
        let at = format!("fields[{i}]");
        if f.title.is_empty() {
            p.add(
                &at,
                "missing title in Slack field configuration; set `title`",
            );
        }
        if f.value.is_empty() {
            p.add(
                &at,
                "missing value in Slack field configuration; set `value`",
            );
        }
        fields.push(SlackFieldTemplate {
            title: t.field(p, &format!("{at}.title"), &f.title),
            value: t.field(p, &format!("{at}.value"), &f.value),
            short: f.short.unwrap_or(raw.short_fields),
        });
    }
    let mut actions = Vec::with_capacity(raw.actions.len());
    for (i, a) in raw.actions.iter().enumerate() {
        let at = format!("actions[{i}]");
        if a.kind.is_empty() {
            p.add(
                &at,
                "missing type in Slack action configuration; set `type` (e.g. button)",
            );
        }
        if a.text.is_empty() {
            p.add(
                &at,
                "missing text in Slack action configuration; set `text`",
            );
        }
        // As Alertmanager: a link button drops `name`.
        let name = if a.url.as_deref().is_some_and(|u| !u.is_empty()) {
            None
        } else if a.name.as_deref().is_some_and(|n| !n.is_empty()) {
            a.name.clone()
        } else {
            p.add(&at, "missing name or url in Slack action configuration; set `url` (a link button) or `name`");
            None
        };
        let confirm = a.confirm.as_ref().map(|c| {
            let at = format!("{at}.confirm");
            if c.text.is_empty() {
                p.add(
                    &at,
                    "missing text in Slack confirmation configuration; set `text`",
                );
            }
            SlackConfirmTemplate {
                text: t.field(p, &format!("{at}.text"), &c.text),
                title: field(p, &format!("{at}.title"), &c.title, ""),
                ok_text: field(p, &format!("{at}.ok_text"), &c.ok_text, ""),
                dismiss_text: field(p, &format!("{at}.dismiss_text"), &c.dismiss_text, ""),
            }
        });
        actions.push(SlackActionTemplate {
            kind: t.field(p, &format!("{at}.type"), &a.kind),
            text: t.field(p, &format!("{at}.text"), &a.text),
            url: field(p, &format!("{at}.url"), &a.url, ""),
            style: field(p, &format!("{at}.style"), &a.style, ""),
            name: field(p, &format!("{at}.name"), &name, ""),
            value: field(p, &format!("{at}.value"), &a.value, ""),
            confirm,
        });
    }
    let settings = SlackSettings {
        send_resolved: raw.send_resolved.unwrap_or(SlackConfigRaw::SEND_RESOLVED),
        api_url: api_url.unwrap_or_else(|| Secret::new("")),
        channel: field(p, "channel", &raw.channel, ""),
        username: field(
            p,
            "username",
            &raw.username,
            &call("slack.default.username"),
        ),
        color: field(p, "color", &raw.color, DEFAULT_COLOR),
        title: field(p, "title", &raw.title, &call("slack.default.title")),
        title_link: field(
            p,
            "title_link",
            &raw.title_link,
            &call("slack.default.titlelink"),
        ),
        pretext: field(p, "pretext", &raw.pretext, &call("slack.default.pretext")),
        text: field(p, "text", &raw.text, &call("slack.default.text")),
        fields,
        footer: field(p, "footer", &raw.footer, &call("slack.default.footer")),
        fallback: field(
            p,
            "fallback",
            &raw.fallback,
            &call("slack.default.fallback"),
        ),
        callback_id: field(
            p,
            "callback_id",
            &raw.callback_id,
            &call("slack.default.callbackid"),
        ),
        icon_emoji: field(
            p,
            "icon_emoji",
            &raw.icon_emoji,
            &call("slack.default.iconemoji"),
        ),
        icon_url: field(p, "icon_url", &raw.icon_url, &call("slack.default.iconurl")),
        image_url: field(p, "image_url", &raw.image_url, ""),
        thumb_url: field(p, "thumb_url", &raw.thumb_url, ""),
        link_names: raw.link_names,
        mrkdwn_in: if raw.mrkdwn_in.is_empty() {
            DEFAULT_MRKDWN_IN.map(String::from).to_vec()
        } else {
            raw.mrkdwn_in
        },
        actions,
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    (p.count() == before).then_some(settings)
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
