//! The one list of receiver kinds, and the building of one receiver's
//! integrations from its `*_configs` sections. Adding a receiver kind is a
//! folder with its config and sender, and one line in [`KINDS`].

use std::collections::BTreeMap;
use std::sync::Arc;

use vigil_common::problem::Problem;

use super::config::{GlobalReceiverDefaults, Problems};
use super::console::ConsoleConfigRaw;
use super::discord::DiscordConfigRaw;
use super::email::EmailConfigRaw;
use super::msteams::MsteamsConfigRaw;
use super::msteamsv2::Msteamsv2ConfigRaw;
use super::opsgenie::OpsgenieConfigRaw;
use super::pagerduty::PagerdutyConfigRaw;
use super::pushover::PushoverConfigRaw;
use super::slack::SlackConfigRaw;
use super::sns::SnsConfigRaw;
use super::telegram::TelegramConfigRaw;
use super::victorops::VictoropsConfigRaw;
use super::webex::WebexConfigRaw;
use super::webhook::WebhookConfigRaw;
use super::wechat::WechatConfigRaw;
use super::{Receiver, ReceiverKind};

/// Every receiver kind Vigil delivers to, in the order a receiver's
/// integrations are built.
const KINDS: [Kind; 15] = [
    Kind::of::<SlackConfigRaw>(),
    Kind::of::<EmailConfigRaw>(),
    Kind::of::<WebhookConfigRaw>(),
    Kind::of::<PagerdutyConfigRaw>(),
    Kind::of::<TelegramConfigRaw>(),
    Kind::of::<DiscordConfigRaw>(),
    Kind::of::<WebexConfigRaw>(),
    Kind::of::<VictoropsConfigRaw>(),
    Kind::of::<OpsgenieConfigRaw>(),
    Kind::of::<PushoverConfigRaw>(),
    Kind::of::<WechatConfigRaw>(),
    Kind::of::<SnsConfigRaw>(),
    Kind::of::<MsteamsConfigRaw>(),
    Kind::of::<Msteamsv2ConfigRaw>(),
    Kind::of::<ConsoleConfigRaw>(),
];

/// The `*_configs` keys of the receiver kinds Vigil delivers to.
pub fn sections() -> [&'static str; KINDS.len()] {
    KINDS.map(|kind| kind.section)
}

/// Whether entries of `section` send resolved notifications when they do
/// not say.
pub fn send_resolved_default(section: &str) -> bool {
    KINDS
        .iter()
        .any(|kind| kind.section == section && kind.send_resolved)
}

/// One entry of [`KINDS`]: a kind's section key, its `send_resolved`
/// default and how its list is built.
#[derive(Clone, Copy)]
struct Kind {
    section: &'static str,
    send_resolved: bool,
    build: fn(&serde_yaml::Value, &str, &GlobalReceiverDefaults, &mut Vec<Problem>) -> Built,
}

/// The receivers built from one section, with their positions in it.
type Built = Vec<(usize, Arc<dyn Receiver>)>;

impl Kind {
    const fn of<K: ReceiverKind>() -> Kind {
        Kind {
            section: K::SECTION,
            send_resolved: K::SEND_RESOLVED,
            build: build_section::<K>,
        }
    }
}

/// One receiver's integration sections, as raw YAML (each a sequence), by
/// `*_configs` key.
#[derive(Debug, Clone, Default)]
pub struct IntegrationSections(BTreeMap<&'static str, serde_yaml::Value>);

impl IntegrationSections {
    /// Picks the integration sections out of one `receivers[]` entry.
    pub fn from_receiver(receiver: &serde_yaml::Mapping) -> IntegrationSections {
        let sections = KINDS
            .iter()
            .filter_map(|kind| Some((kind.section, receiver.get(kind.section)?.clone())))
            .collect();
        IntegrationSections(sections)
    }

    /// Appends one entry to the list of `section`.
    pub fn push(&mut self, section: &'static str, entry: serde_yaml::Value) {
        let list = self
            .0
            .entry(section)
            .or_insert_with(|| serde_yaml::Value::Sequence(Vec::new()));
        if let serde_yaml::Value::Sequence(items) = list {
            items.push(entry);
        }
    }
}

/// A configured integration, ready to send.
#[derive(Debug, Clone)]
pub struct Integration {
    /// Name of the receiver it belongs to.
    pub receiver_name: String,
    /// `slack`, `email`, `webhook` or `console`.
    pub integration: &'static str,
    /// Position within its `*_configs` list.
    pub index: usize,
    pub receiver: Arc<dyn Receiver>,
}

impl Integration {
    /// `webhook[0]`: the kind and its position in the receiver, as the
    /// outbox, the history and the logs name an integration.
    pub fn name(&self) -> String {
        format!("{}[{}]", self.integration, self.index)
    }
}

/// Every problem found in one receiver's integrations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid receiver configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigProblems(pub Vec<Problem>);

/// The entries of one `*_configs` section parsed as `T`, each with its
/// index and field path; a section that is no list, or an entry that does
/// not parse, is a problem.
fn items<T: serde::de::DeserializeOwned>(
    value: &serde_yaml::Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(usize, String, T)> {
    if value.is_null() {
        return Vec::new();
    }
    let Some(sequence) = value.as_sequence() else {
        problems.push(Problem::at_field(path, "must be a list"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in sequence.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let item = if item.is_null() {
            serde_yaml::Value::Mapping(serde_yaml::Mapping::new())
        } else {
            item.clone()
        };
        match serde_yaml::from_value::<T>(item) {
            Ok(parsed) => out.push((i, item_path, parsed)),
            Err(error) => problems.push(Problem::at_field(item_path, error.to_string())),
        }
    }
    out
}

/// Parses, validates and builds one section's entries as `K`.
fn build_section<K: ReceiverKind>(
    section: &serde_yaml::Value,
    path: &str,
    global: &GlobalReceiverDefaults,
    problems: &mut Vec<Problem>,
) -> Built {
    let mut built = Vec::new();
    for (index, path, config) in items::<K>(section, path, problems) {
        let mut p = Problems { problems, path };
        if let Some(receiver) = config.build(global, &mut p) {
            built.push((index, receiver));
        }
    }
    built
}

/// One receiver's integrations, and the warnings met building them (text
/// fields whose templates will fail).
#[derive(Debug, Clone)]
pub struct BuiltIntegrations {
    pub integrations: Vec<Integration>,
    pub warnings: Vec<Problem>,
}

/// Parses, validates and builds one receiver's integrations.
///
/// `receiver_path` prefixes every problem's path (e.g. `receivers[2]`).
/// Returns every problem found, not just the first (warnings among them
/// when there are errors).
pub fn build_integrations(
    receiver_name: &str,
    receiver_path: &str,
    sections: &IntegrationSections,
    global: &GlobalReceiverDefaults,
) -> Result<BuiltIntegrations, ConfigProblems> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for kind in KINDS {
        let Some(section) = sections.0.get(kind.section) else {
            continue;
        };
        let path = format!("{receiver_path}.{}", kind.section);
        for (index, receiver) in (kind.build)(section, &path, global, &mut problems) {
            out.push(Integration {
                receiver_name: receiver_name.to_string(),
                integration: receiver.integration(),
                index,
                receiver,
            });
        }
    }
    if problems.iter().all(Problem::is_warning) {
        Ok(BuiltIntegrations {
            integrations: out,
            warnings: problems,
        })
    } else {
        Err(ConfigProblems(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> serde_yaml::Mapping {
        serde_yaml::from_str(text).unwrap_or_default()
    }

    #[test]
    fn send_resolved_defaults_follow_alertmanager() {
        let sections = IntegrationSections::from_receiver(&yaml(
            "slack_configs: [{api_url: 'http://127.0.0.1:1/hook'}]
email_configs: [{to: a@example.com, from: v@example.com, smarthost: 'localhost:25'}]
webhook_configs: [{url: 'http://127.0.0.1:1/w'}]
console_configs: [{}]",
        ));
        let built = build_integrations(
            "team",
            "receivers[0]",
            &sections,
            &GlobalReceiverDefaults::default(),
        );
        let built = match built {
            Ok(b) => b.integrations,
            Err(e) => panic!("{e}"),
        };
        let resolved: Vec<(&str, bool)> = built
            .iter()
            .map(|i| (i.integration, i.receiver.send_resolved()))
            .collect();
        assert_eq!(
            resolved,
            vec![
                ("slack", false),
                ("email", false),
                ("webhook", true),
                ("console", true)
            ]
        );
    }
}
