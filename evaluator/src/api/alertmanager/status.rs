//! `GET /api/v2/status`: not clustered, the version, the notification
//! config with its secrets masked, and uptime.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;

use super::params::format_time;
use crate::api::AppState;

/// `GET /api/v2/status`.
pub async fn get_status(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let api = &state.alertmanager;
    let original = api
        .config_text
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Json(serde_json::json!({
        "cluster": {"status": "disabled", "peers": []},
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "config": {"original": original},
        "uptime": format_time(api.started),
    }))
}

/// Keys whose values Alertmanager never shows (its `Secret` and
/// `SecretURL` fields).
const SECRET_KEYS: &[&str] = &[
    "api_key",
    "api_secret",
    "api_url",
    "auth_password",
    "auth_secret",
    "bearer_token",
    "bot_token",
    "client_secret",
    "credentials",
    "opsgenie_api_key",
    "password",
    "routing_key",
    "secret_key",
    "service_key",
    "slack_api_url",
    "smtp_auth_password",
    "smtp_auth_secret",
    "token",
    "user_key",
    "victorops_api_key",
    "webhook_url",
    "wechat_api_secret",
];

/// The notification config with every secret replaced by `<secret>`, as
/// Alertmanager prints its config (webhook URLs included: they often carry
/// tokens).
pub fn mask_secrets(text: &str) -> String {
    fn walk(value: &mut serde_yaml::Value, in_webhook: bool) {
        match value {
            serde_yaml::Value::Mapping(map) => {
                for (key, v) in map.iter_mut() {
                    let key = key.as_str().unwrap_or("");
                    let secret = SECRET_KEYS.contains(&key) || (in_webhook && key == "url");
                    if secret && !v.is_null() && !v.is_mapping() && !v.is_sequence() {
                        *v = serde_yaml::Value::String("<secret>".into());
                    } else {
                        walk(v, in_webhook || key == "webhook_configs");
                    }
                }
            }
            serde_yaml::Value::Sequence(list) => {
                for v in list {
                    walk(v, in_webhook);
                }
            }
            _ => {}
        }
    }
    let Ok(mut value) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return String::new();
    };
    walk(&mut value, false);
    serde_yaml::to_string(&value).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_the_shown_config() {
        let shown = mask_secrets(
            "global: {smtp_auth_password: hunter2}\nreceivers:\n- name: a\n  webhook_configs: [{url: 'http://x/?token=abc'}]\n  slack_configs: [{api_url: 'https://hooks/T0', channel: '#ops'}]\n",
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("abc") && !shown.contains("T0"),
            "{shown}"
        );
        assert!(
            shown.contains("'#ops'") && shown.contains("<secret>"),
            "{shown}"
        );
    }
}
