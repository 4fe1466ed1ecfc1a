//! Microsoft Teams receiver (Office 365 connector): one MessageCard per
//! notification posted to a channel's incoming webhook — title, summary
//! and Markdown text, dark red while firing and green once resolved — as
//! Alertmanager 0.26 sends it. Alertmanager 0.25 has no Teams receiver, so
//! `amtool` 0.25 refuses configs that use it; for Teams Workflows (Power
//! Automate) webhooks use [`msteamsv2`](super::msteamsv2).
//!
//! # `msteams_configs`
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `true` | also notify when the group resolves |
//! | `webhook_url` / `webhook_url_file` | one *required* | the channel's incoming webhook (secret) |
//! | `title` | `{{ template "msteams.default.title" . }}` | the card's title |
//! | `summary` | `{{ template "msteams.default.summary" . }}` | the text of notifications and previews |
//! | `text` | `{{ template "msteams.default.text" . }}` | the card's Markdown text |
//! | `http_config` | none | the HTTP client settings |

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::notify::alert::{AlertStatus, Notification, REDELIVERY_MARK};
use crate::notify::receivers::config::{
    check_url, resolve_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::template::{self, call, TemplateField};
use crate::notify::receivers::{ReceiverKind, Secret};

/// Card colour while firing (Alertmanager's).
pub const COLOR_FIRING: &str = "8C1A1A";
/// Card colour once resolved (Alertmanager's).
pub const COLOR_RESOLVED: &str = "2DC72D";

/// One entry of a receiver's `msteams_configs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsteamsConfigRaw {
    pub send_resolved: Option<bool>,
    pub webhook_url: Option<Secret>,
    pub webhook_url_file: Option<PathBuf>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub text: Option<String>,
    pub http_config: Option<HttpConfigRaw>,
}

/// A validated Teams (MessageCard) integration.
#[derive(Debug, Clone)]
pub struct MsteamsSettings {
    pub send_resolved: bool,
    pub webhook_url: Secret,
    pub title: TemplateField,
    pub summary: TemplateField,
    pub text: TemplateField,
    pub http: HttpSettings,
}

/// The webhook body: a legacy actionable-message card.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageCard {
    #[serde(rename = "@type")]
    pub kind: &'static str,
    #[serde(rename = "@context")]
    pub context: &'static str,
    #[serde(rename = "themeColor")]
    pub theme_color: &'static str,
    pub title: String,
    pub summary: String,
    pub text: String,
}

/// The webhook URL of a Teams entry: inline or from its file, required.
pub(crate) fn webhook_url(
    inline: Option<&Secret>,
    file: Option<&std::path::Path>,
    p: &mut Problems<'_>,
) -> Option<Secret> {
    if inline.is_none() && file.is_none() {
        p.add(
            "webhook_url",
            "one of webhook_url or webhook_url_file must be configured",
        );
        return None;
    }
    let url = resolve_secret(inline, file, "webhook_url", true, p)?;
    check_url(url.expose(), "webhook_url", p);
    Some(url)
}

fn validate(
    raw: MsteamsConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<MsteamsSettings> {
    let before = p.count();
    let url = webhook_url(raw.webhook_url.as_ref(), raw.webhook_url_file.as_deref(), p);
    let t = &global.templates;
    let field = |p: &mut Problems<'_>, name: &str, src: &Option<String>, default: &str| {
        t.field_or(p, name, src.as_deref(), default)
    };
    let settings = MsteamsSettings {
        send_resolved: raw.send_resolved.unwrap_or(MsteamsConfigRaw::SEND_RESOLVED),
        webhook_url: url.unwrap_or_else(|| Secret::new("")),
        title: field(p, "title", &raw.title, &call("msteams.default.title")),
        summary: field(p, "summary", &raw.summary, &call("msteams.default.summary")),
        text: field(p, "text", &raw.text, &call("msteams.default.text")),
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    (p.count() == before).then_some(settings)
}

receiver_kind!(MsteamsConfigRaw, "msteams_configs", send_resolved: true, validate => MsteamsReceiver);

http_receiver!(
    /// Sends notifications to one Teams incoming webhook as MessageCards.
    MsteamsReceiver(MsteamsSettings)
);

impl MsteamsReceiver {
    /// The card for `n`.
    pub fn message(&self, n: &Notification) -> MessageCard {
        let s = &self.settings;
        let mut title = s.title.render(n, "msteams", || template::subject(n));
        if n.redelivery {
            title = format!("{title} {REDELIVERY_MARK}");
        }
        MessageCard {
            kind: "MessageCard",
            context: "http://schema.org/extensions",
            theme_color: match n.status {
                AlertStatus::Firing => COLOR_FIRING,
                AlertStatus::Resolved => COLOR_RESOLVED,
            },
            title,
            summary: s.summary.render(n, "msteams", || template::subject(n)),
            text: s.text.render(n, "msteams", || template::text_alert_list(n)),
        }
    }
}

json_webhook_receiver!(MsteamsReceiver, "msteams");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::receivers::config::validated;
    use crate::notify::receivers::template::tests::{alert, notification};
    use vigil_common::problem::Problem;

    fn receiver(yaml: &str) -> MsteamsReceiver {
        MsteamsReceiver::new(validated(yaml, validate)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_firing_card_is_dark_red_with_the_subject_as_title_and_summary() {
        let r = receiver("{webhook_url: 'https://example.webhook.office.com/x'}");
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Firing)]);
        let card = serde_json::to_value(r.message(&n)).unwrap_or_default();
        assert_eq!(card["@type"], "MessageCard");
        assert_eq!(card["@context"], "http://schema.org/extensions");
        assert_eq!(card["themeColor"], COLOR_FIRING);
        assert_eq!(card["title"], card["summary"]);
        assert!(card["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("[FIRING:1]")));
    }

    #[test]
    fn the_default_text_lists_alerts_in_markdown_sections() {
        let r = receiver("{webhook_url: 'https://example.webhook.office.com/x'}");
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Resolved)]);
        let card = r.message(&n);
        assert_eq!(card.theme_color, COLOR_RESOLVED);
        assert_eq!(
            card.text,
            "\n\n\n# Alerts Resolved:\n\nLabels:\n  - alertname = Down\n\nAnnotations:\n  - summary = Error rate above 5%\n\nSource: http://vigil:9096/graph?g0.expr=x\n\n\n\n"
        );
    }

    #[test]
    fn a_missing_webhook_url_is_reported_at_its_field() {
        let raw = MsteamsConfigRaw::default();
        let mut problems = Vec::new();
        let mut p = Problems::new(&mut problems, "receivers[0].msteams_configs[0]".into());
        assert!(validate(raw, &GlobalReceiverDefaults::default(), &mut p).is_none());
        let found: Vec<String> = problems.iter().map(Problem::to_string).collect();
        assert_eq!(
            found,
            ["receivers[0].msteams_configs[0].webhook_url: one of webhook_url or webhook_url_file must be configured"]
        );
    }
}
