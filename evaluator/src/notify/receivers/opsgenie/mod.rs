//! Opsgenie receiver: the Alert API as Alertmanager uses it. A firing
//! notification creates (or, by its alias, deduplicates) an alert with
//! `POST <api_url>v2/alerts`; a resolved one closes it with
//! `POST <api_url>v2/alerts/<alias>/close?identifierType=alias`. The alias
//! is the SHA-256 of the group key; the key goes as `GenieKey` in the
//! `Authorization` header.
//!
//! # `opsgenie_configs`
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `true` | also close the alert |
//! | `api_key` / `api_key_file` | `global.opsgenie_api_key(_file)`; one *required* | (secret) |
//! | `api_url` | `global.opsgenie_api_url` (`https://api.opsgenie.com/`) | |
//! | `message` | `{{ template "opsgenie.default.message" . }}` | cut at 130 characters |
//! | `description` | `{{ template "opsgenie.default.description" . }}` | cut at 15,000 characters |
//! | `source` | `{{ template "opsgenie.default.source" . }}` | |
//! | `details` | the common labels | more details (templates) |
//! | `responders` | none | `[{id, name, username, type}]`; `type` one of `team`, `teams` (comma-separated names), `user`, `escalation`, `schedule` |
//! | `tags`, `actions` | none | comma-separated (templates) |
//! | `note`, `priority`, `entity` | none | templates; `priority` `P1`..`P5` |
//! | `update_alerts` | `false` | also update the message and description of an open alert |
//! | `http_config` | none | the HTTP client settings |

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::pagerduty::dedup_key;
use crate::notify::alert::{AlertStatus, Notification, REDELIVERY_MARK};
use crate::notify::receivers::config::{
    check_url, entry_or_global_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{post_json, validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::template::{self, call, truncate_chars, TemplateField};
use crate::notify::receivers::{DeliveryReport, Receiver, ReceiverKind, Secret, SendError};

/// Alertmanager's default `global.opsgenie_api_url`.
pub const DEFAULT_API_URL: &str = "https://api.opsgenie.com/";
/// Opsgenie's message limit.
pub const MAX_MESSAGE: usize = 130;
/// Opsgenie's description limit.
pub const MAX_DESCRIPTION: usize = 15_000;
const RESPONDER_TYPES: [&str; 5] = ["team", "teams", "user", "escalation", "schedule"];

/// One entry of a receiver's `opsgenie_configs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpsgenieConfigRaw {
    pub send_resolved: Option<bool>,
    pub api_key: Option<Secret>,
    pub api_key_file: Option<PathBuf>,
    pub api_url: Option<String>,
    pub message: Option<String>,
    pub description: Option<String>,
    pub source: Option<String>,
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    #[serde(default)]
    pub responders: Vec<ResponderRaw>,
    pub tags: Option<String>,
    pub note: Option<String>,
    pub priority: Option<String>,
    pub entity: Option<String>,
    pub actions: Option<String>,
    #[serde(default)]
    pub update_alerts: bool,
    pub http_config: Option<HttpConfigRaw>,
}

/// `opsgenie_configs[].responders[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponderRaw {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub username: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// A validated Opsgenie integration.
#[derive(Debug, Clone)]
pub struct OpsgenieSettings {
    pub send_resolved: bool,
    pub api_key: Secret,
    pub api_url: String,
    pub message: TemplateField,
    pub description: TemplateField,
    pub source: TemplateField,
    pub details: BTreeMap<String, TemplateField>,
    /// (id, name, username, type)
    pub responders: Vec<[TemplateField; 4]>,
    pub tags: TemplateField,
    pub note: TemplateField,
    pub priority: TemplateField,
    pub entity: TemplateField,
    pub actions: TemplateField,
    pub update_alerts: bool,
    pub http: HttpSettings,
}

/// The create request.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OpsgenieCreate {
    pub alias: String,
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub responders: Vec<OpsgenieResponder>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub priority: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub entity: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct OpsgenieResponder {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(rename = "type")]
    pub kind: String,
}

fn validate(
    raw: OpsgenieConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<OpsgenieSettings> {
    let before = p.count();
    let api_key = entry_or_global_secret(
        (raw.api_key.as_ref(), raw.api_key_file.as_deref()),
        (
            global.opsgenie_api_key.as_ref(),
            global.opsgenie_api_key_file.as_deref(),
        ),
        ["api_key", "opsgenie_api_key"],
        "no global OpsGenie API Key set; set api_key here or global.opsgenie_api_key",
        p,
    );
    let api_url = raw
        .api_url
        .clone()
        .unwrap_or_else(|| global.opsgenie_api_url.clone());
    check_url(&api_url, "api_url", p);
    for (i, r) in raw.responders.iter().enumerate() {
        let at = format!("responders[{i}]");
        if r.id.is_empty() && r.name.is_empty() && r.username.is_empty() {
            p.add(&at, "opsGenieConfig responder has to have at least one of id, username or name specified");
        }
        if !r.kind.contains("{{") && !RESPONDER_TYPES.contains(&r.kind.to_lowercase().as_str()) {
            p.add(
                &format!("{at}.type"),
                format!(
                    "opsGenieConfig responder type {:?} does not match valid options {}",
                    r.kind,
                    RESPONDER_TYPES.join(", ")
                ),
            );
        }
    }
    let t = &global.templates;
    let field = |p: &mut Problems<'_>, name: &str, src: &Option<String>, default: &str| {
        t.field_or(p, name, src.as_deref(), default)
    };
    let responders = raw
        .responders
        .iter()
        .enumerate()
        .map(|(i, r)| {
            [
                ("id", &r.id),
                ("name", &r.name),
                ("username", &r.username),
                ("type", &r.kind),
            ]
            .map(|(k, v)| t.field(p, &format!("responders[{i}].{k}"), v))
        })
        .collect();
    let settings = OpsgenieSettings {
        send_resolved: raw
            .send_resolved
            .unwrap_or(OpsgenieConfigRaw::SEND_RESOLVED),
        api_key: api_key.unwrap_or_else(|| Secret::new("")),
        api_url: if api_url.ends_with('/') {
            api_url
        } else {
            format!("{api_url}/")
        },
        message: field(
            p,
            "message",
            &raw.message,
            &call("opsgenie.default.message"),
        ),
        description: field(
            p,
            "description",
            &raw.description,
            &call("opsgenie.default.description"),
        ),
        source: field(p, "source", &raw.source, &call("opsgenie.default.source")),
        details: raw
            .details
            .iter()
            .map(|(k, v)| (k.clone(), t.field(p, &format!("details.{k}"), v)))
            .collect(),
        responders,
        tags: field(p, "tags", &raw.tags, ""),
        note: field(p, "note", &raw.note, ""),
        priority: field(p, "priority", &raw.priority, ""),
        entity: field(p, "entity", &raw.entity, ""),
        actions: field(p, "actions", &raw.actions, ""),
        update_alerts: raw.update_alerts,
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    let mut settings = settings;
    // Every request carries the key as Opsgenie wants it.
    settings.http.authorization = Some(Secret::new(format!(
        "GenieKey {}",
        settings.api_key.expose()
    )));
    (p.count() == before).then_some(settings)
}

receiver_kind!(OpsgenieConfigRaw, "opsgenie_configs", send_resolved: true, validate => OpsgenieReceiver);

/// The comma-separated items of a rendered list, blank ones left out (as
/// Alertmanager, the others keep their spaces).
fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .collect()
}

http_receiver!(
    /// Sends notifications to Opsgenie.
    OpsgenieReceiver(OpsgenieSettings)
);

impl OpsgenieReceiver {
    /// The requests for `n`, in order: (URL, JSON body).
    pub fn requests(&self, n: &Notification) -> Vec<(String, serde_json::Value)> {
        let s = &self.settings;
        let render = |f: &TemplateField| f.render(n, "opsgenie", String::new);
        let alias = dedup_key(&n.group_key);
        let by_alias = |action: &str| {
            format!(
                "{}v2/alerts/{alias}/{action}?identifierType=alias",
                s.api_url
            )
        };
        if n.status == AlertStatus::Resolved {
            let close = serde_json::json!({ "source": render(&s.source) });
            return vec![(by_alias("close"), close)];
        }
        let mut message = s.message.render(n, "opsgenie", || template::subject(n));
        if n.redelivery {
            message = format!("{message} {REDELIVERY_MARK}");
        }
        let message = truncate_chars(&message, MAX_MESSAGE);
        let description = truncate_chars(
            &s.description
                .render(n, "opsgenie", || template::text_alert_list(n)),
            MAX_DESCRIPTION,
        );
        let mut details: BTreeMap<String, String> = n
            .common_labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        details.extend(s.details.iter().map(|(k, v)| (k.clone(), render(v))));
        let mut responders = Vec::new();
        for [id, name, username, kind] in &s.responders {
            let r = OpsgenieResponder {
                id: render(id),
                name: render(name),
                username: render(username),
                kind: render(kind),
            };
            if r == OpsgenieResponder::default() {
                continue;
            }
            if r.kind == "teams" {
                responders.extend(r.name.split(',').map(|team| OpsgenieResponder {
                    name: team.to_string(),
                    kind: "team".into(),
                    ..OpsgenieResponder::default()
                }));
            } else {
                responders.push(r);
            }
        }
        let create = OpsgenieCreate {
            alias: alias.clone(),
            message: message.clone(),
            description: description.clone(),
            details,
            source: render(&s.source),
            responders,
            tags: split_list(&render(&s.tags)),
            note: render(&s.note),
            priority: render(&s.priority),
            entity: render(&s.entity),
            actions: split_list(&render(&s.actions)),
        };
        let mut out = vec![(
            format!("{}v2/alerts", s.api_url),
            serde_json::to_value(&create).unwrap_or_default(),
        )];
        if s.update_alerts {
            out.push((
                by_alias("message"),
                serde_json::json!({ "message": message }),
            ));
            out.push((
                by_alias("description"),
                serde_json::json!({ "description": description }),
            ));
        }
        out
    }
}

#[async_trait]
impl Receiver for OpsgenieReceiver {
    receiver_identity!("opsgenie");

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let mut report = DeliveryReport::default();
        for (url, body) in self.requests(notification) {
            let (status, answer) = post_json(
                "opsgenie",
                &self.client,
                &url,
                &self.settings.http,
                &body,
                notification,
            )
            .await?;
            report.response_code = Some(status);
            report.message_id = serde_json::from_str::<serde_json::Value>(&answer)
                .ok()
                .and_then(|j| j["requestId"].as_str().map(str::to_string));
        }
        Ok(report)
    }
}
