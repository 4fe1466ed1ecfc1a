//! WeChat Work receiver: one application message per notification, as
//! Alertmanager sends it. An access token is fetched with
//! `GET <api_url>gettoken?corpid=..&corpsecret=..` and kept (WeChat's
//! `expires_in`, at most two hours, as Alertmanager); the message goes to
//! `POST <api_url>message/send?access_token=..`. WeChat answers HTTP 200
//! with `errcode` in the body: `0` is delivered, anything else refused —
//! except an expired token (`42001`), which is fetched anew and the
//! message sent once more within the same attempt.
//!
//! # `wechat_configs`
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `false` | also notify when the group resolves |
//! | `api_secret` / `api_secret_file` (Vigil) | `global.wechat_api_secret`; one *required* | the application's secret (secret) |
//! | `corp_id` | `global.wechat_api_corp_id`; one *required* | the company ID |
//! | `api_url` | `global.wechat_api_url` (`https://qyapi.weixin.qq.com/cgi-bin/`) | the API base (a `/` is added when missing) |
//! | `message` | `{{ template "wechat.default.message" . }}` | the text |
//! | `message_type` | `text` | `text` or `markdown` |
//! | `agent_id` | `{{ template "wechat.default.agent_id" . }}` | the application's agent ID |
//! | `to_user` | `{{ template "wechat.default.to_user" . }}` | user IDs, `\|`-separated (`@all` for everyone) |
//! | `to_party` | `{{ template "wechat.default.to_party" . }}` | department IDs |
//! | `to_tag` | `{{ template "wechat.default.to_tag" . }}` | tag IDs |
//! | `http_config` | none | the HTTP client settings |

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::notify::alert::{Notification, REDELIVERY_MARK};
use crate::notify::receivers::config::{
    check_url, entry_or_global_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{
    check_http_response, post_json, token_send_error, transport_error, validate_http,
    with_delivery_headers, HttpConfigRaw, HttpSettings,
};
use crate::notify::receivers::template::{self, call, TemplateField};
use crate::notify::receivers::{DeliveryReport, Receiver, ReceiverKind, Secret, SendError};

/// Alertmanager's default `global.wechat_api_url`.
pub const DEFAULT_API_URL: &str = "https://qyapi.weixin.qq.com/cgi-bin/";
/// The longest a token is kept (Alertmanager's refresh interval; WeChat's
/// tokens live 7,200 s).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(2 * 3600);
/// WeChat's "access token expired" code.
pub const EXPIRED_TOKEN: i64 = 42001;
const MESSAGE_TYPES: [&str; 2] = ["text", "markdown"];

/// One entry of a receiver's `wechat_configs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatConfigRaw {
    pub send_resolved: Option<bool>,
    pub api_secret: Option<Secret>,
    pub api_secret_file: Option<PathBuf>,
    pub corp_id: Option<String>,
    pub api_url: Option<String>,
    pub message: Option<String>,
    pub message_type: Option<String>,
    pub agent_id: Option<String>,
    pub to_user: Option<String>,
    pub to_party: Option<String>,
    pub to_tag: Option<String>,
    pub http_config: Option<HttpConfigRaw>,
}

/// A validated WeChat integration.
#[derive(Debug, Clone)]
pub struct WechatSettings {
    pub send_resolved: bool,
    pub api_secret: Secret,
    pub corp_id: String,
    /// Ends with `/`.
    pub api_url: String,
    pub message: TemplateField,
    /// `text` or `markdown`.
    pub message_type: String,
    pub agent_id: TemplateField,
    pub to_user: TemplateField,
    pub to_party: TemplateField,
    pub to_tag: TemplateField,
    pub http: HttpSettings,
}

/// The `message/send` body, as Alertmanager encodes it: both `text` and
/// `markdown` are always present (the unused one empty), the recipients
/// only when set.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WechatMessage {
    pub text: WechatContent,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub touser: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub toparty: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub totag: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub agentid: String,
    pub safe: String,
    pub msgtype: String,
    pub markdown: WechatContent,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct WechatContent {
    pub content: String,
}

/// What WeChat answers, to `gettoken` and to `message/send`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WechatAnswer {
    errcode: i64,
    errmsg: String,
    access_token: String,
    expires_in: u64,
}

fn validate(
    raw: WechatConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<WechatSettings> {
    let before = p.count();
    let api_secret = entry_or_global_secret(
        (raw.api_secret.as_ref(), raw.api_secret_file.as_deref()),
        (global.wechat_api_secret.as_ref(), None),
        ["api_secret", "wechat_api_secret"],
        "no global Wechat ApiSecret set; set api_secret here or global.wechat_api_secret",
        p,
    );
    let corp_id = raw
        .corp_id
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(|| global.wechat_api_corp_id.clone().filter(|c| !c.is_empty()));
    if corp_id.is_none() {
        p.add(
            "corp_id",
            "no global Wechat CorpID set; set corp_id here or global.wechat_api_corp_id",
        );
    }
    let mut api_url = raw
        .api_url
        .clone()
        .unwrap_or_else(|| global.wechat_api_url.clone());
    check_url(&api_url, "api_url", p);
    if !api_url.ends_with('/') {
        api_url.push('/');
    }
    let message_type = raw.message_type.clone().unwrap_or_default();
    let message_type = if message_type.is_empty() {
        "text".to_string()
    } else {
        message_type
    };
    if !MESSAGE_TYPES.contains(&message_type.as_str()) {
        p.add(
            "message_type",
            format!(
                "weChat message type {message_type:?} does not match valid options text, markdown"
            ),
        );
    }
    let t = &global.templates;
    let field = |p: &mut Problems<'_>, name: &str, src: &Option<String>, default: &str| {
        t.field_or(p, name, src.as_deref(), default)
    };
    let settings = WechatSettings {
        send_resolved: raw.send_resolved.unwrap_or(WechatConfigRaw::SEND_RESOLVED),
        api_secret: api_secret.unwrap_or_else(|| Secret::new("")),
        corp_id: corp_id.unwrap_or_default(),
        api_url,
        message: field(p, "message", &raw.message, &call("wechat.default.message")),
        message_type,
        agent_id: field(
            p,
            "agent_id",
            &raw.agent_id,
            &call("wechat.default.agent_id"),
        ),
        to_user: field(p, "to_user", &raw.to_user, &call("wechat.default.to_user")),
        to_party: field(
            p,
            "to_party",
            &raw.to_party,
            &call("wechat.default.to_party"),
        ),
        to_tag: field(p, "to_tag", &raw.to_tag, &call("wechat.default.to_tag")),
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    (p.count() == before).then_some(settings)
}

receiver_kind!(WechatConfigRaw, "wechat_configs", send_resolved: false, validate => WechatReceiver);

/// Sends notifications to one WeChat Work application, keeping its access
/// token between sends.
#[derive(Debug)]
pub struct WechatReceiver {
    settings: WechatSettings,
    client: reqwest::Client,
    /// The access token and when it must be fetched anew.
    token: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

impl WechatReceiver {
    pub fn new(settings: WechatSettings) -> Result<WechatReceiver, reqwest::Error> {
        let client = crate::notify::receivers::http::http_client(
            crate::notify::receivers::config::DEFAULT_HTTP_TIMEOUT,
            &settings.http,
        )?;
        Ok(WechatReceiver {
            settings,
            client,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The message for `n`.
    pub fn message(&self, n: &Notification) -> WechatMessage {
        let s = &self.settings;
        let render = |f: &TemplateField| f.render(n, "wechat", String::new);
        let mut content = s.message.render(n, "wechat", || {
            format!("{}\n{}", template::subject(n), template::text_alert_list(n))
        });
        if n.redelivery {
            content = format!("{content}\n{REDELIVERY_MARK}");
        }
        let (text, markdown) = if s.message_type == "markdown" {
            (WechatContent::default(), WechatContent { content })
        } else {
            (WechatContent { content }, WechatContent::default())
        };
        WechatMessage {
            text,
            touser: render(&s.to_user),
            toparty: render(&s.to_party),
            totag: render(&s.to_tag),
            agentid: render(&s.agent_id),
            safe: "0".into(),
            msgtype: s.message_type.clone(),
            markdown,
        }
    }

    /// The kept access token, or a new one from `gettoken`.
    async fn access_token(&self, n: &Notification) -> Result<Secret, SendError> {
        let mut kept = self.token.lock().await;
        if let Some((token, until)) = kept.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let s = &self.settings;
        let request = self.client.get(format!("{}gettoken", s.api_url)).query(&[
            ("corpid", s.corp_id.as_str()),
            ("corpsecret", s.api_secret.expose()),
        ]);
        let request = with_delivery_headers(request, &n.idempotency_key(), n.redelivery);
        let request = s
            .http
            .authorize(request)
            .await
            .map_err(|e| token_send_error("wechat", e))?;
        let response = request
            .send()
            .await
            .map_err(|e| transport_error("wechat", e))?;
        let (_, body) = check_http_response("wechat", response).await?;
        let answer: WechatAnswer =
            serde_json::from_str(&body).map_err(|e| SendError::Rejected {
                integration: "wechat",
                reason: format!("gettoken answered no JSON: {e}"),
            })?;
        if answer.errcode != 0 || answer.access_token.is_empty() {
            return Err(SendError::Rejected {
                integration: "wechat",
                reason: format!(
                    "no access token for corp_id {} (errcode {}: {}); check api_secret and corp_id",
                    s.corp_id, answer.errcode, answer.errmsg
                ),
            });
        }
        let lifetime = match answer.expires_in {
            0 => TOKEN_LIFETIME,
            seconds => Duration::from_secs(seconds.saturating_sub(60)).min(TOKEN_LIFETIME),
        };
        let token = Secret::new(answer.access_token);
        *kept = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    /// One `message/send` with `token`: WeChat's answer.
    async fn post_message(
        &self,
        token: &Secret,
        body: &WechatMessage,
        n: &Notification,
    ) -> Result<(u16, WechatAnswer), SendError> {
        let s = &self.settings;
        let mut url = reqwest::Url::parse(&format!("{}message/send", s.api_url)).map_err(|e| {
            SendError::Build {
                integration: "wechat",
                reason: format!("api_url: {e}"),
            }
        })?;
        url.query_pairs_mut()
            .append_pair("access_token", token.expose());
        let (status, answer) =
            post_json("wechat", &self.client, url.as_str(), &s.http, body, n).await?;
        let answer = serde_json::from_str(&answer).map_err(|e| SendError::Rejected {
            integration: "wechat",
            reason: format!("message/send answered no JSON: {e}"),
        })?;
        Ok((status, answer))
    }
}

#[async_trait]
impl Receiver for WechatReceiver {
    receiver_identity!("wechat");

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let body = self.message(notification);
        let token = self.access_token(notification).await?;
        let (mut status, mut answer) = self.post_message(&token, &body, notification).await?;
        if answer.errcode == EXPIRED_TOKEN {
            *self.token.lock().await = None;
            let token = self.access_token(notification).await?;
            (status, answer) = self.post_message(&token, &body, notification).await?;
        }
        if answer.errcode != 0 {
            return Err(SendError::Rejected {
                integration: "wechat",
                reason: format!("errcode {}: {}", answer.errcode, answer.errmsg),
            });
        }
        Ok(DeliveryReport {
            response_code: Some(status),
            message_id: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::AlertStatus;
    use crate::notify::receivers::config::{problems_of, validated};
    use crate::notify::receivers::template::tests::{alert, notification};

    fn receiver(yaml: &str) -> WechatReceiver {
        WechatReceiver::new(validated(yaml, validate)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(yaml: &str, global: &GlobalReceiverDefaults) -> Vec<String> {
        problems_of::<WechatConfigRaw, _>(yaml, "receivers[0].wechat_configs[0]", global, validate)
    }

    #[test]
    fn a_text_message_carries_an_empty_markdown_part_as_alertmanager_sends_it() {
        let r = receiver("{api_secret: S, corp_id: C, to_user: '@all', agent_id: '1000002'}");
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Firing)]);
        let body = serde_json::to_value(r.message(&n)).unwrap_or_default();
        assert_eq!(body["msgtype"], "text");
        assert_eq!(body["safe"], "0");
        assert_eq!(body["touser"], "@all");
        assert_eq!(body["agentid"], "1000002");
        assert_eq!(body["markdown"]["content"], "");
        assert!(body.get("toparty").is_none(), "{body}");
        let text = body["text"]["content"].as_str().unwrap_or_default();
        assert!(text.starts_with("[FIRING:1]"), "{text}");
    }

    #[test]
    fn a_markdown_message_puts_the_text_under_markdown() {
        let r = receiver("{api_secret: S, corp_id: C, message_type: markdown, message: '**x**'}");
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Firing)]);
        let m = r.message(&n);
        assert_eq!(m.markdown.content, "**x**");
        assert_eq!(m.text.content, "");
    }

    #[test]
    fn the_api_url_gets_its_trailing_slash_and_globals_fill_in() {
        let global = GlobalReceiverDefaults {
            wechat_api_secret: Some(Secret::new("GS")),
            wechat_api_corp_id: Some("GC".into()),
            wechat_api_url: "http://wechat.internal/cgi-bin".into(),
            ..GlobalReceiverDefaults::default()
        };
        let raw: WechatConfigRaw = serde_yaml::from_str("{}").unwrap_or_default();
        let mut problems = Vec::new();
        let mut p = Problems::new(&mut problems, "entry".into());
        let s = validate(raw, &global, &mut p);
        let s = s.unwrap_or_else(|| panic!("{problems:?}"));
        assert_eq!(s.api_url, "http://wechat.internal/cgi-bin/");
        assert_eq!(s.api_secret.expose(), "GS");
        assert_eq!(s.corp_id, "GC");
    }

    #[test]
    fn missing_secret_corp_id_and_bad_type_are_reported_with_their_fields() {
        let found = problems("{message_type: html}", &GlobalReceiverDefaults::default());
        for want in [
            "receivers[0].wechat_configs[0].api_secret: no global Wechat ApiSecret set",
            "receivers[0].wechat_configs[0].corp_id: no global Wechat CorpID set",
            "receivers[0].wechat_configs[0].message_type: weChat message type \"html\"",
        ] {
            assert!(
                found.iter().any(|f| f.starts_with(want)),
                "{want} not in {found:#?}"
            );
        }
        assert_eq!(found.len(), 3, "{found:#?}");
    }
}
