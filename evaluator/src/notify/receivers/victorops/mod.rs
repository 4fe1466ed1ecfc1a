//! VictorOps (Splunk On-Call) receiver: one REST integration event per
//! notification to `<api_url><api_key>/<routing_key>`, as Alertmanager
//! sends it: `CRITICAL` (or the configured `INFO` / `WARNING`) while
//! firing, `RECOVERY` once resolved, with the group key's SHA-256 as
//! `entity_id` so the recovery closes the incident.
//!
//! # `victorops_configs`
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `true` | also send the `RECOVERY` |
//! | `api_key` / `api_key_file` | `global.victorops_api_key(_file)`; one *required* | the REST integration key (secret) |
//! | `api_url` | `global.victorops_api_url` (`https://alert.victorops.com/integrations/generic/20131114/alert/`) | |
//! | `routing_key` | *required* | the routing key (a template) |
//! | `message_type` | `CRITICAL` | `CRITICAL`, `WARNING` or `INFO` while firing (anything else is `CRITICAL`) |
//! | `entity_display_name` | `{{ template "victorops.default.entity_display_name" . }}` | |
//! | `state_message` | `{{ template "victorops.default.state_message" . }}` | cut at 20,480 characters |
//! | `monitoring_tool` | `{{ template "victorops.default.monitoring_tool" . }}` | |
//! | `custom_fields` | none | more fields (templates); not the ones above, `entity_id` or `entity_state` |
//! | `http_config` | none | the HTTP client settings |

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::Deserialize;

use super::pagerduty::dedup_key;
use crate::notify::alert::{AlertStatus, Notification, REDELIVERY_MARK};
use crate::notify::receivers::config::{
    check_url, entry_or_global_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{
    post_json_report, validate_http, HttpConfigRaw, HttpSettings,
};
use crate::notify::receivers::template::{self, call, truncate_chars, TemplateField};
use crate::notify::receivers::{DeliveryReport, Receiver, ReceiverKind, Secret, SendError};

/// Alertmanager's default `global.victorops_api_url`.
pub const DEFAULT_API_URL: &str =
    "https://alert.victorops.com/integrations/generic/20131114/alert/";
/// The state message limit (Alertmanager's).
pub const MAX_STATE_MESSAGE: usize = 20_480;
/// Fields `custom_fields` may not set.
const RESERVED: [&str; 7] = [
    "routing_key",
    "message_type",
    "state_message",
    "entity_display_name",
    "monitoring_tool",
    "entity_id",
    "entity_state",
];

/// One entry of a receiver's `victorops_configs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VictoropsConfigRaw {
    pub send_resolved: Option<bool>,
    pub api_key: Option<Secret>,
    pub api_key_file: Option<PathBuf>,
    pub api_url: Option<String>,
    pub routing_key: Option<String>,
    pub message_type: Option<String>,
    pub entity_display_name: Option<String>,
    pub state_message: Option<String>,
    pub monitoring_tool: Option<String>,
    #[serde(default)]
    pub custom_fields: BTreeMap<String, String>,
    pub http_config: Option<HttpConfigRaw>,
}

/// A validated VictorOps integration.
#[derive(Debug, Clone)]
pub struct VictoropsSettings {
    pub send_resolved: bool,
    pub api_key: Secret,
    pub api_url: String,
    pub routing_key: TemplateField,
    pub message_type: TemplateField,
    pub entity_display_name: TemplateField,
    pub state_message: TemplateField,
    pub monitoring_tool: TemplateField,
    pub custom_fields: BTreeMap<String, TemplateField>,
    pub http: HttpSettings,
}

fn validate(
    raw: VictoropsConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<VictoropsSettings> {
    let before = p.count();
    let api_key = entry_or_global_secret(
        (raw.api_key.as_ref(), raw.api_key_file.as_deref()),
        (
            global.victorops_api_key.as_ref(),
            global.victorops_api_key_file.as_deref(),
        ),
        ["api_key", "victorops_api_key"],
        "missing API key in VictorOps config; set api_key here or global.victorops_api_key",
        p,
    );
    let api_url = raw
        .api_url
        .clone()
        .unwrap_or_else(|| global.victorops_api_url.clone());
    check_url(&api_url, "api_url", p);
    let routing_key = raw.routing_key.clone().unwrap_or_default();
    if routing_key.is_empty() {
        p.add(
            "routing_key",
            "missing Routing key in VictorOps config; set routing_key",
        );
    }
    for name in raw.custom_fields.keys() {
        if RESERVED.contains(&name.as_str()) {
            p.add(&format!("custom_fields.{name}"), format!("victorOps config contains custom field {name} which cannot be used as it conflicts with the fixed/static fields"));
        }
    }
    let t = &global.templates;
    let field = |p: &mut Problems<'_>, name: &str, src: &Option<String>, default: &str| {
        t.field_or(p, name, src.as_deref(), default)
    };
    let settings = VictoropsSettings {
        send_resolved: raw
            .send_resolved
            .unwrap_or(VictoropsConfigRaw::SEND_RESOLVED),
        api_key: api_key.unwrap_or_else(|| Secret::new("")),
        api_url,
        routing_key: t.field(p, "routing_key", &routing_key),
        message_type: field(p, "message_type", &raw.message_type, "CRITICAL"),
        entity_display_name: field(
            p,
            "entity_display_name",
            &raw.entity_display_name,
            &call("victorops.default.entity_display_name"),
        ),
        state_message: field(
            p,
            "state_message",
            &raw.state_message,
            &call("victorops.default.state_message"),
        ),
        monitoring_tool: field(
            p,
            "monitoring_tool",
            &raw.monitoring_tool,
            &call("victorops.default.monitoring_tool"),
        ),
        custom_fields: raw
            .custom_fields
            .iter()
            .map(|(k, v)| (k.clone(), t.field(p, &format!("custom_fields.{k}"), v)))
            .collect(),
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    (p.count() == before).then_some(settings)
}

receiver_kind!(VictoropsConfigRaw, "victorops_configs", send_resolved: true, validate => VictoropsReceiver);

http_receiver!(
    /// Sends notifications to VictorOps.
    VictoropsReceiver(VictoropsSettings)
);

impl VictoropsReceiver {
    /// The event for `n`, and the URL it goes to.
    pub fn event(&self, n: &Notification) -> (BTreeMap<String, String>, String) {
        let s = &self.settings;
        let render = |f: &TemplateField| f.render(n, "victorops", String::new);
        let message_type = match n.status {
            AlertStatus::Resolved => "RECOVERY".to_string(),
            AlertStatus::Firing => {
                let wanted = render(&s.message_type);
                if ["CRITICAL", "WARNING", "INFO"].contains(&wanted.as_str()) {
                    wanted
                } else {
                    "CRITICAL".to_string()
                }
            }
        };
        let mut display = s
            .entity_display_name
            .render(n, "victorops", || template::subject(n));
        if n.redelivery {
            display = format!("{display} {REDELIVERY_MARK}");
        }
        let state = s
            .state_message
            .render(n, "victorops", || template::text_alert_list(n));
        let mut event: BTreeMap<String, String> = s
            .custom_fields
            .iter()
            .map(|(k, v)| (k.clone(), render(v)))
            .collect();
        event.insert("message_type".into(), message_type);
        event.insert("entity_id".into(), dedup_key(&n.group_key));
        event.insert("entity_display_name".into(), display);
        event.insert(
            "state_message".into(),
            truncate_chars(&state, MAX_STATE_MESSAGE),
        );
        event.insert("monitoring_tool".into(), render(&s.monitoring_tool));
        let url = format!(
            "{}{}/{}",
            s.api_url,
            s.api_key.expose(),
            render(&s.routing_key)
        );
        (event, url)
    }
}

#[async_trait]
impl Receiver for VictoropsReceiver {
    receiver_identity!("victorops");

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let (event, url) = self.event(notification);
        post_json_report(
            "victorops",
            &self.client,
            &url,
            &self.settings.http,
            &event,
            notification,
        )
        .await
    }
}
