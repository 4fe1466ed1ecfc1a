//! From the notification config to receivers ready to send: the `global:`
//! defaults handed to every receiver kind, each receiver's `*_configs`
//! sections built by the receivers registry, and their problems placed at
//! their position in the file.

use std::collections::HashMap;

use super::{NotifyConfig, Problem};
use crate::notify::receivers::template::TemplateEnv;
use crate::notify::receivers::{
    build_integrations, GlobalReceiverDefaults, Integration, IntegrationSections, Secret,
};

/// The receivers of the notification config, ready to send, by receiver
/// name.
pub type ReceiverIntegrations = HashMap<String, Vec<Integration>>;

/// Builds every receiver's integrations from the notification config, with
/// the warnings met (text fields whose templates will fail); the error is
/// every problem, placed in the file.
pub fn build_receivers(
    config: &NotifyConfig,
) -> Result<(ReceiverIntegrations, Vec<Problem>), Vec<Problem>> {
    let g = &config.global;
    let global = GlobalReceiverDefaults {
        slack_api_url: g.slack_api_url.clone().map(Secret::new),
        slack_api_url_file: g.slack_api_url_file.clone(),
        smtp_from: g.smtp_from.clone(),
        smtp_hello: g.smtp_hello.clone(),
        smtp_smarthost: g.smtp_smarthost.clone(),
        smtp_auth_username: g.smtp_auth_username.clone(),
        smtp_auth_password: g.smtp_auth_password.clone().map(Secret::new),
        smtp_auth_password_file: g.smtp_auth_password_file.clone(),
        smtp_auth_identity: g.smtp_auth_identity.clone(),
        smtp_require_tls: g.smtp_require_tls,
        pagerduty_url: g.pagerduty_url.clone(),
        telegram_api_url: g.telegram_api_url.clone(),
        webex_api_url: g.webex_api_url.clone(),
        victorops_api_url: g.victorops_api_url.clone(),
        victorops_api_key: g.victorops_api_key.clone().map(Secret::new),
        victorops_api_key_file: g.victorops_api_key_file.clone(),
        opsgenie_api_url: g.opsgenie_api_url.clone(),
        opsgenie_api_key: g.opsgenie_api_key.clone().map(Secret::new),
        opsgenie_api_key_file: g.opsgenie_api_key_file.clone(),
        wechat_api_url: g.wechat_api_url.clone(),
        wechat_api_secret: g.wechat_api_secret.clone().map(Secret::new),
        wechat_api_corp_id: g.wechat_api_corp_id.clone(),
        templates: TemplateEnv::new(config.templates.as_ref().clone()),
    };
    let mut out = HashMap::new();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for (i, receiver) in config.receivers.iter().enumerate() {
        let mut sections = IntegrationSections::default();
        for integration in receiver.integrations() {
            sections.push(integration.kind, integration.value.clone());
        }
        let path = format!("receivers[{i}]");
        match build_integrations(&receiver.name, &path, &sections, &global) {
            Ok(built) => {
                warnings.extend(built.warnings.into_iter().map(|p| config.place(p)));
                out.insert(receiver.name.clone(), built.integrations);
            }
            Err(e) => problems.extend(e.0.into_iter().map(|p| config.place(p))),
        }
    }
    if problems.is_empty() {
        Ok((out, warnings))
    } else {
        Err(problems)
    }
}
