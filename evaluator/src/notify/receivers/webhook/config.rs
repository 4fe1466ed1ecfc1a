//! `webhook_configs[]`: the fields as written (serde) and their validation
//! into [`WebhookSettings`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::send::WebhookReceiver;
use crate::notify::receivers::config::{
    check_url, parse_timeout, resolve_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::{Receiver, ReceiverKind, Secret};

/// One entry of a receiver's `webhook_configs`: a POST of Alertmanager's
/// webhook payload.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfigRaw {
    /// Also notify when the group resolves; default `true`.
    pub send_resolved: Option<bool>,
    /// The endpoint (a secret: it may embed a token); this or `url_file` is
    /// required.
    pub url: Option<Secret>,
    /// A file holding the endpoint URL, instead of `url`.
    pub url_file: Option<PathBuf>,
    /// Send at most this many alerts, the rest counted in
    /// `truncatedAlerts`; `0` (default) sends every alert.
    #[serde(default)]
    pub max_alerts: u64,
    /// Per-attempt timeout; default `10s` (Vigil; Alertmanager has none).
    pub timeout: Option<String>,
    /// `authorization: {type, credentials(_file)}`, `bearer_token(_file)`,
    /// `basic_auth`, `follow_redirects`; none by default.
    pub http_config: Option<HttpConfigRaw>,
}

/// A validated webhook integration.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub send_resolved: bool,
    pub url: Secret,
    pub max_alerts: usize,
    pub timeout: Duration,
    pub http: HttpSettings,
}

fn validate_webhook(
    raw: WebhookConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<WebhookSettings> {
    let before = p.count();
    let url = resolve_secret(raw.url.as_ref(), raw.url_file.as_deref(), "url", true, p);
    if let Some(url) = &url {
        check_url(url.expose(), "url", p);
    }
    let timeout = parse_timeout(raw.timeout.as_deref(), p);
    let http = validate_http(raw.http_config.as_ref(), global, p);
    if p.count() > before {
        return None;
    }
    Some(WebhookSettings {
        send_resolved: raw.send_resolved.unwrap_or(WebhookConfigRaw::SEND_RESOLVED),
        url: url?,
        max_alerts: usize::try_from(raw.max_alerts).unwrap_or(usize::MAX),
        timeout,
        http,
    })
}

impl ReceiverKind for WebhookConfigRaw {
    const SECTION: &'static str = "webhook_configs";
    const SEND_RESOLVED: bool = true;

    fn build(
        self,
        global: &GlobalReceiverDefaults,
        p: &mut Problems<'_>,
    ) -> Option<Arc<dyn Receiver>> {
        validate_webhook(self, global, p)
            .and_then(|settings| p.receiver(WebhookReceiver::new(settings)))
    }
}
