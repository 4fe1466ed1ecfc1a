//! From the notification config to receivers ready to send: the `global:`
//! defaults handed to every receiver kind, each receiver's `*_configs`
//! sections built by the receivers registry, and their problems placed at
//! their position in the file.

use std::collections::HashMap;

use super::{NotifyConfig, Problem};
use crate::notify::receivers::http::{validate_http_config, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::template::TemplateEnv;
use crate::notify::receivers::{
    build_integrations, GlobalReceiverDefaults, Integration, IntegrationSections, Problems, Secret,
};

/// `value` with every relative path of a `*_file` key (at any depth:
/// `url_file`, `http_config.tls_config.ca_file`, ...) resolved against the
/// config file's folder, as Alertmanager resolves them.
fn files_relative_to(config: &NotifyConfig, value: &serde_yaml::Value) -> serde_yaml::Value {
    match value {
        serde_yaml::Value::Mapping(map) => serde_yaml::Value::Mapping(
            map.iter()
                .map(|(key, item)| {
                    let is_file = key.as_str().is_some_and(|k| k.ends_with("_file"));
                    let item = match item.as_str() {
                        Some(path) if is_file && !path.is_empty() => serde_yaml::Value::String(
                            config.resolve_path(path).to_string_lossy().into_owned(),
                        ),
                        _ => files_relative_to(config, item),
                    };
                    (key.clone(), item)
                })
                .collect(),
        ),
        serde_yaml::Value::Sequence(items) => serde_yaml::Value::Sequence(
            items
                .iter()
                .map(|item| files_relative_to(config, item))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `global.http_config`, validated once for every integration without
/// its own.
fn global_http_config(config: &NotifyConfig, problems: &mut Vec<Problem>) -> Option<HttpSettings> {
    let value = config.global.http_config.as_ref()?;
    let mut found = Vec::new();
    let settings = match serde_yaml::from_value::<HttpConfigRaw>(files_relative_to(config, value)) {
        Ok(raw) => Some(validate_http_config(
            &raw,
            "http_config",
            &mut Problems::new(&mut found, "global".into()),
        )),
        Err(e) => {
            found.push(Problem::at_field("global.http_config", e.to_string()));
            None
        }
    };
    problems.extend(found.into_iter().map(|p| config.place(p)));
    settings
}

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
        http_config: None,
    };
    let mut out = HashMap::new();
    let mut problems = Vec::new();
    let global = GlobalReceiverDefaults {
        http_config: global_http_config(config, &mut problems),
        ..global
    };
    let mut warnings = Vec::new();
    for (i, receiver) in config.receivers.iter().enumerate() {
        let mut sections = IntegrationSections::default();
        for integration in receiver.integrations() {
            sections.push(
                integration.kind,
                files_relative_to(config, &integration.value),
            );
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
