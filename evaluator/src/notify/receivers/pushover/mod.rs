//! Pushover receiver: one message per notification, posted form-encoded to
//! Pushover's messages API, as Alertmanager 0.25 builds it — emergency
//! priority (`2`, repeated every `retry` until acknowledged or `expire`d)
//! while firing, normal (`0`) once resolved, with Pushover's limits on the
//! title, message and supplementary URL. Pushover documents its parameters
//! as a form body; Vigil sends them there, never in the URL, so the
//! application token and user key stay out of proxy logs.
//!
//! # `pushover_configs`
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `true` | also notify when the group resolves |
//! | `user_key` / `user_key_file` (Vigil; Alertmanager 0.26) | one *required* | the recipient's user (or group) key (secret) |
//! | `token` / `token_file` (Vigil; Alertmanager 0.26) | one *required* | the application's API token (secret) |
//! | `title` | `{{ template "pushover.default.title" . }}` | cut at 250 characters |
//! | `message` | `{{ template "pushover.default.message" . }}` | cut at 1,024 characters, then trimmed; `(no details)` when empty |
//! | `url` | `{{ template "pushover.default.url" . }}` | supplementary URL; cut at 512 characters |
//! | `url_title` | none | the supplementary URL's title |
//! | `sound` | none | one of Pushover's sounds |
//! | `priority` | `{{ if eq .Status "firing" }}2{{ else }}0{{ end }}` | `-2` to `2` (template) |
//! | `retry` | `1m` | how often Pushover repeats an emergency message (sent in seconds) |
//! | `expire` | `1h` | how long Pushover keeps repeating it (sent in seconds) |
//! | `html` | `false` | the message is HTML (`html=1`; values rendered HTML-escaped) |
//! | `api_url` (Vigil) | `https://api.pushover.net/1/messages.json` | the messages API (Alertmanager has no such key) |
//! | `http_config` | none | the HTTP client settings |

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::notify::alert::{Notification, REDELIVERY_MARK};
use crate::notify::receivers::config::{
    check_url, parse_duration, resolve_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{post_form, validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::template::{self, call, truncate_chars, TemplateField};
use crate::notify::receivers::{DeliveryReport, Receiver, ReceiverKind, Secret, SendError};

/// Pushover's messages API.
pub const DEFAULT_API_URL: &str = "https://api.pushover.net/1/messages.json";
/// Pushover's title limit.
pub const MAX_TITLE: usize = 250;
/// Pushover's message limit.
pub const MAX_MESSAGE: usize = 1024;
/// Pushover's supplementary URL limit.
pub const MAX_URL: usize = 512;
/// Alertmanager's default `priority`: emergency while firing.
pub const DEFAULT_PRIORITY: &str = r#"{{ if eq .Status "firing" }}2{{ else }}0{{ end }}"#;
/// Alertmanager's default `retry`.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(60);
/// Alertmanager's default `expire`.
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(3600);
/// What Alertmanager sends for a message that renders empty (Pushover
/// refuses empty messages).
pub const EMPTY_MESSAGE: &str = "(no details)";

/// One entry of a receiver's `pushover_configs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushoverConfigRaw {
    pub send_resolved: Option<bool>,
    pub user_key: Option<Secret>,
    pub user_key_file: Option<PathBuf>,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub title: Option<String>,
    pub message: Option<String>,
    pub url: Option<String>,
    pub url_title: Option<String>,
    pub sound: Option<String>,
    pub priority: Option<String>,
    pub retry: Option<String>,
    pub expire: Option<String>,
    #[serde(default)]
    pub html: bool,
    pub api_url: Option<String>,
    pub http_config: Option<HttpConfigRaw>,
}

/// A validated Pushover integration.
#[derive(Debug, Clone)]
pub struct PushoverSettings {
    pub send_resolved: bool,
    pub user_key: Secret,
    pub token: Secret,
    pub title: TemplateField,
    pub message: TemplateField,
    pub url: TemplateField,
    pub url_title: TemplateField,
    pub sound: TemplateField,
    pub priority: TemplateField,
    pub retry: Duration,
    pub expire: Duration,
    pub html: bool,
    pub api_url: String,
    pub http: HttpSettings,
}

/// A duration field (`retry`, `expire`), `default` when unset.
fn duration_field(
    value: Option<&str>,
    field: &str,
    default: Duration,
    p: &mut Problems<'_>,
) -> Duration {
    let Some(text) = value else {
        return default;
    };
    parse_duration(text).unwrap_or_else(|| {
        p.add(
            field,
            format!("`{text}` is not a duration; write e.g. `30s`, `1m` or `2h`"),
        );
        default
    })
}

/// A required secret given inline or as `_file`; `what` names it as
/// Alertmanager does when it is missing.
fn required_secret(
    inline: Option<&Secret>,
    file: Option<&std::path::Path>,
    [field, what]: [&str; 2],
    p: &mut Problems<'_>,
) -> Option<Secret> {
    if inline.is_none() && file.is_none() {
        p.add(
            field,
            format!("missing {what} in Pushover config; set {field} or {field}_file"),
        );
        return None;
    }
    resolve_secret(inline, file, field, true, p)
}

fn validate(
    raw: PushoverConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<PushoverSettings> {
    let before = p.count();
    let user_key = required_secret(
        raw.user_key.as_ref(),
        raw.user_key_file.as_deref(),
        ["user_key", "user key"],
        p,
    );
    let token = required_secret(
        raw.token.as_ref(),
        raw.token_file.as_deref(),
        ["token", "token"],
        p,
    );
    let api_url = raw
        .api_url
        .clone()
        .unwrap_or_else(|| DEFAULT_API_URL.into());
    check_url(&api_url, "api_url", p);
    let retry = duration_field(raw.retry.as_deref(), "retry", DEFAULT_RETRY, p);
    let expire = duration_field(raw.expire.as_deref(), "expire", DEFAULT_EXPIRE, p);
    let t = &global.templates;
    let field = |p: &mut Problems<'_>, name: &str, src: &Option<String>, default: &str| {
        t.field_or(p, name, src.as_deref(), default)
    };
    let settings = PushoverSettings {
        send_resolved: raw
            .send_resolved
            .unwrap_or(PushoverConfigRaw::SEND_RESOLVED),
        user_key: user_key.unwrap_or_else(|| Secret::new("")),
        token: token.unwrap_or_else(|| Secret::new("")),
        title: field(p, "title", &raw.title, &call("pushover.default.title")),
        message: field(
            p,
            "message",
            &raw.message,
            &call("pushover.default.message"),
        ),
        url: field(p, "url", &raw.url, &call("pushover.default.url")),
        url_title: field(p, "url_title", &raw.url_title, ""),
        sound: field(p, "sound", &raw.sound, ""),
        priority: field(p, "priority", &raw.priority, DEFAULT_PRIORITY),
        retry,
        expire,
        html: raw.html,
        api_url,
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    (p.count() == before).then_some(settings)
}

receiver_kind!(PushoverConfigRaw, "pushover_configs", send_resolved: true, validate => PushoverReceiver);

http_receiver!(
    /// Sends notifications to one Pushover user or group.
    PushoverReceiver(PushoverSettings)
);

impl PushoverReceiver {
    /// The form fields for `n` (secrets included), in Alertmanager's order.
    pub fn fields(&self, n: &Notification) -> Vec<(&'static str, String)> {
        let s = &self.settings;
        let render = |f: &TemplateField| f.render(n, "pushover", String::new);
        let mut title = s.title.render(n, "pushover", || template::subject(n));
        if n.redelivery {
            title = format!("{title} {REDELIVERY_MARK}");
        }
        let mut fields = vec![
            ("token", s.token.expose().to_string()),
            ("user", s.user_key.expose().to_string()),
            ("title", truncate_chars(&title, MAX_TITLE)),
        ];
        let message = if s.html {
            fields.push(("html", "1".into()));
            s.message.render_html(n, "pushover", || {
                template::html_escape(&template::text_alert_list(n))
            })
        } else {
            s.message
                .render(n, "pushover", || template::text_alert_list(n))
        };
        let message = truncate_chars(&message, MAX_MESSAGE);
        let message = match message.trim() {
            "" => EMPTY_MESSAGE.to_string(),
            trimmed => trimmed.to_string(),
        };
        fields.extend([
            ("message", message),
            ("url", truncate_chars(&render(&s.url), MAX_URL)),
            ("url_title", render(&s.url_title)),
            ("priority", render(&s.priority)),
            ("retry", s.retry.as_secs().to_string()),
            ("expire", s.expire.as_secs().to_string()),
            ("sound", render(&s.sound)),
        ]);
        fields
    }
}

#[async_trait]
impl Receiver for PushoverReceiver {
    receiver_identity!("pushover");

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let s = &self.settings;
        let fields = self.fields(notification);
        let (status, answer) = post_form(
            "pushover",
            &self.client,
            &s.api_url,
            &s.http,
            &fields,
            notification,
        )
        .await?;
        // Pushover answers `{"status":1,"request":"<uuid>"}`.
        let message_id = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|j| j["request"].as_str().map(str::to_string));
        Ok(DeliveryReport {
            response_code: Some(status),
            message_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::AlertStatus;
    use crate::notify::receivers::config::{problems_of, validated};
    use crate::notify::receivers::template::tests::{alert, notification};

    fn receiver(yaml: &str) -> PushoverReceiver {
        let settings = validated(yaml, validate);
        PushoverReceiver::new(settings).unwrap_or_else(|e| panic!("{e}"))
    }

    fn field<'a>(fields: &'a [(&str, String)], name: &str) -> &'a str {
        fields
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn problems(yaml: &str) -> Vec<String> {
        problems_of::<PushoverConfigRaw, _>(
            yaml,
            "receivers[0].pushover_configs[0]",
            &GlobalReceiverDefaults::default(),
            validate,
        )
    }

    #[test]
    fn firing_is_an_emergency_repeated_every_minute_for_an_hour() {
        let r = receiver("{user_key: U, token: T}");
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Firing)]);
        let fields = r.fields(&n);
        assert_eq!(field(&fields, "token"), "T");
        assert_eq!(field(&fields, "user"), "U");
        assert_eq!(field(&fields, "priority"), "2");
        assert_eq!(field(&fields, "retry"), "60");
        assert_eq!(field(&fields, "expire"), "3600");
        assert!(field(&fields, "title").starts_with("[FIRING:1]"));
        assert!(!fields.iter().any(|(k, _)| *k == "html"));
    }

    #[test]
    fn resolved_has_normal_priority() {
        let r = receiver("{user_key: U, token: T, retry: 30s, expire: 2h}");
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Resolved)]);
        let fields = r.fields(&n);
        assert_eq!(field(&fields, "priority"), "0");
        assert_eq!(field(&fields, "retry"), "30");
        assert_eq!(field(&fields, "expire"), "7200");
    }

    #[test]
    fn title_message_and_url_are_cut_at_pushovers_limits() {
        let r = receiver(&format!(
            "{{user_key: U, token: T, title: '{t}', message: '{m}', url: '{u}', url_title: '{u}'}}",
            t = "t".repeat(300),
            m = "é".repeat(2000),
            u = "u".repeat(600),
        ));
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Firing)]);
        let fields = r.fields(&n);
        let chars = |name| field(&fields, name).chars().count();
        assert_eq!(chars("title"), MAX_TITLE);
        assert!(field(&fields, "title").ends_with('…'));
        assert_eq!(chars("message"), MAX_MESSAGE);
        assert_eq!(chars("url"), MAX_URL);
        assert_eq!(chars("url_title"), 600, "url_title has no limit");
    }

    #[test]
    fn an_empty_message_says_no_details_and_html_is_flagged() {
        let r = receiver("{user_key: U, token: T, message: '  ', html: true}");
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Firing)]);
        let fields = r.fields(&n);
        assert_eq!(field(&fields, "message"), EMPTY_MESSAGE);
        assert_eq!(field(&fields, "html"), "1");
    }

    #[test]
    fn missing_keys_and_bad_durations_are_reported_with_their_fields() {
        let found = problems("{retry: soon}");
        for want in [
            "receivers[0].pushover_configs[0].user_key: missing user key in Pushover config",
            "receivers[0].pushover_configs[0].token: missing token in Pushover config",
            "receivers[0].pushover_configs[0].retry: `soon` is not a duration",
        ] {
            assert!(
                found.iter().any(|f| f.starts_with(want)),
                "{want} not in {found:#?}"
            );
        }
        assert_eq!(found.len(), 3, "{found:#?}");
    }
}
