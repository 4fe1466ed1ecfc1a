//! `pagerduty_configs[]`: the fields as written (serde) and their
//! validation into [`PagerdutySettings`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::send::PagerdutyReceiver;
use crate::notify::receivers::config::{
    check_url, resolve_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::template::{call, TemplateField};
use crate::notify::receivers::{ReceiverKind, Secret};

/// Alertmanager's default `global.pagerduty_url`.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// The v1 Integration API (used with `service_key`; not configurable, as
/// in Alertmanager).
pub const V1_URL: &str = "https://events.pagerduty.com/generic/2010-04-15/create_event.json";

/// One entry of a receiver's `pagerduty_configs`. Every text field is a
/// notification template; the defaults are Alertmanager's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyConfigRaw {
    /// Also notify when the group resolves; default `true`.
    pub send_resolved: Option<bool>,
    /// Events API v2 integration key (a secret); this or `service_key`
    /// (or their `_file` twins) is required.
    pub routing_key: Option<Secret>,
    pub routing_key_file: Option<PathBuf>,
    /// v1 Integration API key (a secret).
    pub service_key: Option<Secret>,
    pub service_key_file: Option<PathBuf>,
    /// Events API v2 endpoint; default `global.pagerduty_url`.
    pub url: Option<String>,
    /// Default `{{ template "pagerduty.default.client" . }}`.
    pub client: Option<String>,
    /// Default `{{ template "pagerduty.default.clientURL" . }}`.
    pub client_url: Option<String>,
    /// The summary; default `{{ template "pagerduty.default.description" .}}`.
    pub description: Option<String>,
    /// Custom details (templates), added to the defaults `firing`,
    /// `resolved`, `num_firing`, `num_resolved`.
    #[serde(default)]
    pub details: BTreeMap<String, String>,
    /// `[{src, alt, href}]` (templates).
    #[serde(default)]
    pub images: Vec<ImageRaw>,
    /// `[{href, text}]` (templates).
    #[serde(default)]
    pub links: Vec<LinkRaw>,
    /// Default: the rendered `client`.
    pub source: Option<String>,
    /// `critical`, `error`, `warning` or `info`; default `error`.
    pub severity: Option<String>,
    pub class: Option<String>,
    pub component: Option<String>,
    pub group: Option<String>,
    pub http_config: Option<HttpConfigRaw>,
}

/// `pagerduty_configs[].images[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRaw {
    #[serde(default)]
    pub src: String,
    #[serde(default)]
    pub alt: String,
    #[serde(default)]
    pub href: String,
}

/// `pagerduty_configs[].links[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRaw {
    #[serde(default)]
    pub href: String,
    #[serde(default)]
    pub text: String,
}

/// Which API the entry speaks.
#[derive(Debug, Clone)]
pub enum PagerdutyKey {
    /// Events API v2, with its endpoint.
    Routing { key: Secret, url: String },
    /// v1 Integration API.
    Service(Secret),
}

/// A validated PagerDuty integration.
#[derive(Debug, Clone)]
pub struct PagerdutySettings {
    pub send_resolved: bool,
    pub key: PagerdutyKey,
    pub client: TemplateField,
    pub client_url: TemplateField,
    pub description: TemplateField,
    /// Every detail, the defaults included, by name.
    pub details: BTreeMap<String, TemplateField>,
    /// (src, alt, href)
    pub images: Vec<[TemplateField; 3]>,
    /// (href, text)
    pub links: Vec<[TemplateField; 2]>,
    /// `None`: the rendered client.
    pub source: Option<TemplateField>,
    pub severity: TemplateField,
    pub class: TemplateField,
    pub component: TemplateField,
    pub group: TemplateField,
    pub http: HttpSettings,
}

/// Alertmanager's default details.
const DEFAULT_DETAILS: [(&str, &str); 4] = [
    (
        "firing",
        r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#,
    ),
    (
        "resolved",
        r#"{{ template "pagerduty.default.instances" .Alerts.Resolved }}"#,
    ),
    ("num_firing", "{{ .Alerts.Firing | len }}"),
    ("num_resolved", "{{ .Alerts.Resolved | len }}"),
];

pub(crate) fn validate_pagerduty(
    raw: PagerdutyConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<PagerdutySettings> {
    let before = p.count();
    let has = |inline: &Option<Secret>, file: &Option<PathBuf>| inline.is_some() || file.is_some();
    let key = if has(&raw.routing_key, &raw.routing_key_file) {
        let url = raw
            .url
            .clone()
            .unwrap_or_else(|| global.pagerduty_url.clone());
        check_url(&url, "url", p);
        resolve_secret(
            raw.routing_key.as_ref(),
            raw.routing_key_file.as_deref(),
            "routing_key",
            true,
            p,
        )
        .map(|key| PagerdutyKey::Routing { key, url })
    } else if has(&raw.service_key, &raw.service_key_file) {
        if let Some(url) = &raw.url {
            check_url(url, "url", p);
        }
        resolve_secret(
            raw.service_key.as_ref(),
            raw.service_key_file.as_deref(),
            "service_key",
            true,
            p,
        )
        .map(PagerdutyKey::Service)
    } else {
        p.add("", "missing service or routing key in PagerDuty config; set routing_key (Events API v2) or service_key");
        None
    };
    let t = &global.templates;
    let field = |p: &mut Problems<'_>, name: &str, src: &Option<String>, default: &str| {
        t.field_or(p, name, src.as_deref(), default)
    };
    let mut details = BTreeMap::new();
    for (name, default) in DEFAULT_DETAILS {
        details.insert(
            name.to_string(),
            t.field(p, &format!("details.{name}"), default),
        );
    }
    for (name, src) in &raw.details {
        details.insert(name.clone(), t.field(p, &format!("details.{name}"), src));
    }
    let images = raw
        .images
        .iter()
        .enumerate()
        .map(|(i, img)| {
            [("src", &img.src), ("alt", &img.alt), ("href", &img.href)]
                .map(|(k, v)| t.field(p, &format!("images[{i}].{k}"), v))
        })
        .collect();
    let links = raw
        .links
        .iter()
        .enumerate()
        .map(|(i, link)| {
            [("href", &link.href), ("text", &link.text)]
                .map(|(k, v)| t.field(p, &format!("links[{i}].{k}"), v))
        })
        .collect();
    let settings = PagerdutySettings {
        send_resolved: raw
            .send_resolved
            .unwrap_or(PagerdutyConfigRaw::SEND_RESOLVED),
        key: key.unwrap_or(PagerdutyKey::Service(Secret::new(""))),
        client: field(p, "client", &raw.client, &call("pagerduty.default.client")),
        client_url: field(
            p,
            "client_url",
            &raw.client_url,
            &call("pagerduty.default.clientURL"),
        ),
        description: field(
            p,
            "description",
            &raw.description,
            &call("pagerduty.default.description"),
        ),
        details,
        images,
        links,
        source: raw.source.as_ref().map(|s| t.field(p, "source", s)),
        severity: field(p, "severity", &raw.severity, "error"),
        class: field(p, "class", &raw.class, ""),
        component: field(p, "component", &raw.component, ""),
        group: field(p, "group", &raw.group, ""),
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    (p.count() == before).then_some(settings)
}

receiver_kind!(PagerdutyConfigRaw, "pagerduty_configs", send_resolved: true, validate_pagerduty => PagerdutyReceiver);
