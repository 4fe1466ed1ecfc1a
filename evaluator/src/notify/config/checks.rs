//! The checks of the validation pass that span sections: integrations that
//! get a server, sender or URL from neither themselves nor `global`, secrets
//! set twice, receiver names, the root route, routes naming receivers.

use serde_yaml::Value;
use vigil_common::yaml_positions::{child_index as index_path, child_key as key_path};

use super::raw::RawRoute;
use super::validate::Validator;
use super::{GlobalConfig, ReceiverConfig, RouteConfig};

impl Validator<'_> {
    /// A secret set both inline and from a file is ambiguous.
    pub(super) fn check_secret_pairs(&mut self, global: &GlobalConfig) {
        let pairs = [
            (
                "slack_api_url",
                global.slack_api_url.is_some(),
                global.slack_api_url_file.is_some(),
            ),
            (
                "smtp_auth_password",
                global.smtp_auth_password.is_some(),
                global.smtp_auth_password_file.is_some(),
            ),
            (
                "smtp_auth_secret",
                global.smtp_auth_secret.is_some(),
                global.smtp_auth_secret_file.is_some(),
            ),
        ];
        for (name, inline, file) in pairs {
            if inline && file {
                self.error(
                    &key_path("global", name),
                    format!("at most one of {name} and {name}_file may be set; keep the _file one so the secret stays out of the config"),
                );
            }
        }
    }

    /// Alertmanager refuses e-mail and Slack integrations that get no
    /// server, sender or URL from either themselves or `global`.
    pub(super) fn check_receiver_defaults(
        &mut self,
        global: &GlobalConfig,
        receivers: &[ReceiverConfig],
    ) {
        for receiver in receivers {
            for email in receiver.section("email_configs") {
                if !has_field(&email.value, "smarthost") && global.smtp_smarthost.is_none() {
                    self.error(
                        &email.path,
                        "no SMTP smarthost: set `smarthost` here or `global.smtp_smarthost`",
                    );
                }
                if !has_field(&email.value, "from") && global.smtp_from.is_none() {
                    self.error(
                        &email.path,
                        "no sender: set `from` here or `global.smtp_from`",
                    );
                }
            }
            for slack in receiver.section("slack_configs") {
                let own =
                    has_field(&slack.value, "api_url") || has_field(&slack.value, "api_url_file");
                if !own && global.slack_api_url.is_none() && global.slack_api_url_file.is_none() {
                    self.error(&slack.path, "no Slack API URL: set `api_url`/`api_url_file` here or `global.slack_api_url`/`global.slack_api_url_file`");
                }
            }
        }
    }

    pub(super) fn check_receiver_names(&mut self, receivers: &[ReceiverConfig]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (i, receiver) in receivers.iter().enumerate() {
            if names.contains(&receiver.name) {
                self.error(
                    &key_path(&index_path("receivers", i), "name"),
                    format!(
                        "receiver name {:?} is not unique; rename one of them",
                        receiver.name
                    ),
                );
            } else {
                names.push(receiver.name.clone());
            }
        }
        names
    }

    pub(super) fn check_root(&mut self, root: &RouteConfig, raw: &RawRoute) {
        if root.receiver.is_none() {
            self.error("route", "the root route must name a default `receiver`");
        }
        let keys = [
            ("match", &raw.match_equal),
            ("match_re", &raw.match_re),
            ("matchers", &raw.matchers),
        ];
        for (key, value) in keys {
            if value.is_some() {
                self.error(
                    &key_path("route", key),
                    "the root route must not have matchers: it receives every alert; move them to a child route",
                );
            }
        }
        if root.continue_matching {
            self.error("route.continue", "the root route cannot have `continue`");
        }
    }

    pub(super) fn check_route_receivers(&mut self, route: &RouteConfig, names: &[String]) {
        if let Some(receiver) = &route.receiver {
            if !names.contains(receiver) {
                self.error(
                    &key_path(&route.path, "receiver"),
                    format!("undefined receiver {receiver:?} used in route; define it under `receivers:`"),
                );
            }
        }
        for child in &route.routes {
            self.check_route_receivers(child, names);
        }
    }
}

fn has_field(value: &Value, key: &str) -> bool {
    value
        .get(key)
        .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
}
