//! Microsoft Teams receiver for Workflows (Power Automate) webhooks: one
//! message per notification carrying an Adaptive Card — a heading (the
//! title, coloured `Attention` while firing and `Good` once resolved) and
//! the text, full width — as Alertmanager 0.28 sends it. Alertmanager 0.25
//! has no Teams receiver, so `amtool` 0.25 refuses configs that use it.
//!
//! # `msteamsv2_configs`
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `true` | also notify when the group resolves |
//! | `webhook_url` / `webhook_url_file` | one *required* | the workflow's webhook (secret) |
//! | `title` | `{{ template "msteamsv2.default.title" . }}` | the card's heading |
//! | `text` | `{{ template "msteamsv2.default.text" . }}` | the card's text |
//! | `http_config` | none | the HTTP client settings |

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{json, Value};

use super::msteams::webhook_url;
use crate::notify::alert::{AlertStatus, Notification, REDELIVERY_MARK};
use crate::notify::receivers::config::{GlobalReceiverDefaults, Problems};
use crate::notify::receivers::http::{validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::template::{self, call, TemplateField};
use crate::notify::receivers::{ReceiverKind, Secret};

/// The heading's colour while firing (Alertmanager's).
pub const COLOR_FIRING: &str = "Attention";
/// The heading's colour once resolved (Alertmanager's).
pub const COLOR_RESOLVED: &str = "Good";

/// One entry of a receiver's `msteamsv2_configs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Msteamsv2ConfigRaw {
    pub send_resolved: Option<bool>,
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<PathBuf>,
    pub title: Option<String>,
    pub text: Option<String>,
    pub http_config: Option<HttpConfigRaw>,
}

/// A validated Teams (Adaptive Card) integration.
#[derive(Debug, Clone)]
pub struct Msteamsv2Settings {
    pub send_resolved: bool,
    pub webhook_url: Secret,
    pub title: TemplateField,
    pub text: TemplateField,
    pub http: HttpSettings,
}

fn validate(
    raw: Msteamsv2ConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<Msteamsv2Settings> {
    let before = p.count();
    let url = webhook_url(raw.webhook_url.as_ref(), raw.webhook_url_file.as_deref(), p);
    let t = &global.templates;
    let settings = Msteamsv2Settings {
        send_resolved: raw
            .send_resolved
            .unwrap_or(Msteamsv2ConfigRaw::SEND_RESOLVED),
        webhook_url: url.unwrap_or_else(|| Secret::new("")),
        title: t.field_or(
            p,
            "title",
            raw.title.as_deref(),
            &call("msteamsv2.default.title"),
        ),
        text: t.field_or(
            p,
            "text",
            raw.text.as_deref(),
            &call("msteamsv2.default.text"),
        ),
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    (p.count() == before).then_some(settings)
}

receiver_kind!(Msteamsv2ConfigRaw, "msteamsv2_configs", send_resolved: true, validate => Msteamsv2Receiver);

http_receiver!(
    /// Sends notifications to one Teams workflow webhook as Adaptive Cards.
    Msteamsv2Receiver(Msteamsv2Settings)
);

impl Msteamsv2Receiver {
    /// The message for `n`.
    pub fn message(&self, n: &Notification) -> Value {
        let s = &self.settings;
        let mut title = s.title.render(n, "msteamsv2", || template::subject(n));
        if n.redelivery {
            title = format!("{title} {REDELIVERY_MARK}");
        }
        let text = s
            .text
            .render(n, "msteamsv2", || template::text_alert_list(n));
        let color = match n.status {
            AlertStatus::Firing => COLOR_FIRING,
            AlertStatus::Resolved => COLOR_RESOLVED,
        };
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.2",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": title,
                            "weight": "Bolder",
                            "size": "Medium",
                            "wrap": true,
                            "style": "heading",
                            "color": color,
                        },
                        { "type": "TextBlock", "text": text, "wrap": true },
                    ],
                    "msteams": { "width": "full" },
                },
            }],
        })
    }
}

json_webhook_receiver!(Msteamsv2Receiver, "msteamsv2");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::receivers::config::validated;
    use crate::notify::receivers::template::tests::{alert, notification};

    fn receiver(yaml: &str) -> Msteamsv2Receiver {
        Msteamsv2Receiver::new(validated(yaml, validate)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_card_heading_is_the_title_coloured_by_status() {
        let r = receiver("{webhook_url: 'https://example.logic.azure.com/x', title: T, text: X}");
        let firing = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Firing)]);
        let m = r.message(&firing);
        let card = &m["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["version"], "1.2");
        assert_eq!(card["content"]["body"][0]["text"], "T");
        assert_eq!(card["content"]["body"][0]["color"], COLOR_FIRING);
        assert_eq!(card["content"]["body"][1]["text"], "X");
        assert_eq!(card["content"]["msteams"]["width"], "full");
        let resolved = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Resolved)]);
        let m = r.message(&resolved);
        assert_eq!(
            m["attachments"][0]["content"]["body"][0]["color"],
            COLOR_RESOLVED
        );
    }
}
