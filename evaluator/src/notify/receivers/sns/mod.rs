//! Amazon SNS receiver: one `Publish` per notification to a topic, a
//! platform endpoint or a phone number, with the fields Alertmanager sets
//! (message, subject, message attributes; deduplication and group IDs for
//! FIFO topics), through SNS's query API — a form POST of
//! `Action=Publish&...&Version=2010-03-31` signed with AWS Signature
//! Version 4 (the `aws-sigv4` crate; no AWS SDK, no second HTTP stack).
//!
//! Credentials are `sigv4.access_key` / `sigv4.secret_key`, or else the
//! standard `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN` variables; the region is `sigv4.region`, or else
//! `AWS_REGION` (`AWS_DEFAULT_REGION`). Both are read when the config
//! loads, so missing credentials are a config error, not a failed delivery.
//! Shared-config profiles and assumed roles (`sigv4.profile`,
//! `sigv4.role_arn`) are not supported and refused.
//!
//! # `sns_configs`
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `true` | also notify when the group resolves |
//! | `topic_arn`, `target_arn`, `phone_number` | exactly one *required* | where to publish (templates); a topic ARN ending in `.fifo` gets `MessageDeduplicationId` and `MessageGroupId` (the SHA-256 of the group key) |
//! | `api_url` | `https://sns.<region>.amazonaws.com/` | the SNS endpoint |
//! | `sigv4` | none | `{region, access_key, secret_key}` (`secret_key` a secret) |
//! | `subject` | `{{ template "sns.default.subject" . }}` | sent unless set to `""` |
//! | `message` | `{{ template "sns.default.message" . }}` | cut at 256 KiB (1,600 bytes for SMS), a `truncated: true` attribute then added |
//! | `attributes` | none | message attributes, names and values templates, sent as `String` |
//! | `http_config` | none | the HTTP client settings |

use std::collections::BTreeMap;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use serde::Deserialize;

use super::pagerduty::dedup_key;
use crate::notify::alert::{Notification, REDELIVERY_MARK};
use crate::notify::receivers::config::{
    check_url, resolve_secret, GlobalReceiverDefaults, Problems,
};
use crate::notify::receivers::http::{send_request, validate_http, HttpConfigRaw, HttpSettings};
use crate::notify::receivers::template::{self, call, TemplateField};
use crate::notify::receivers::{DeliveryReport, Receiver, ReceiverKind, Secret, SendError};

/// SNS's limit on a message (bytes).
pub const MAX_MESSAGE: usize = 256 * 1024;
/// SNS's limit on an SMS message (Alertmanager's count: bytes).
pub const MAX_SMS: usize = 1600;
/// The query API version `Publish` is sent under.
pub const API_VERSION: &str = "2010-03-31";

/// One entry of a receiver's `sns_configs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsConfigRaw {
    pub send_resolved: Option<bool>,
    pub api_url: Option<String>,
    pub sigv4: Option<Sigv4Raw>,
    pub topic_arn: Option<String>,
    pub phone_number: Option<String>,
    pub target_arn: Option<String>,
    pub subject: Option<String>,
    pub message: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    pub http_config: Option<HttpConfigRaw>,
}

/// `sns_configs[].sigv4`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sigv4Raw {
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<Secret>,
    pub profile: Option<String>,
    pub role_arn: Option<String>,
}

/// The AWS credentials a request is signed with.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key: String,
    pub secret_key: Secret,
    pub session_token: Option<Secret>,
}

/// Where an entry publishes (each a template).
#[derive(Debug, Clone)]
pub enum SnsTarget {
    Topic(TemplateField),
    Target(TemplateField),
    Phone(TemplateField),
}

/// A validated SNS integration.
#[derive(Debug, Clone)]
pub struct SnsSettings {
    pub send_resolved: bool,
    pub api_url: String,
    pub region: String,
    pub credentials: AwsCredentials,
    pub target: SnsTarget,
    /// `None`: set to `""`, no subject sent.
    pub subject: Option<TemplateField>,
    pub message: TemplateField,
    pub attributes: Vec<(TemplateField, TemplateField)>,
    pub http: HttpSettings,
}

/// A non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The credentials from `sigv4`, else from the environment.
fn credentials(sigv4: &Sigv4Raw, p: &mut Problems<'_>) -> Option<AwsCredentials> {
    let access_key = sigv4.access_key.clone().filter(|k| !k.is_empty());
    let secret_key = resolve_secret(
        sigv4.secret_key.as_ref(),
        None,
        "sigv4.secret_key",
        false,
        p,
    );
    match (access_key, secret_key) {
        (Some(access_key), Some(secret_key)) => Some(AwsCredentials {
            access_key,
            secret_key,
            session_token: None,
        }),
        (None, None) => {
            let (Some(access_key), Some(secret_key)) =
                (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
            else {
                p.add(
                    "sigv4",
                    "no AWS credentials: set sigv4.access_key and sigv4.secret_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in Vigil's environment",
                );
                return None;
            };
            Some(AwsCredentials {
                access_key,
                secret_key: Secret::new(secret_key),
                session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
            })
        }
        _ => {
            p.add(
                "sigv4",
                "must provide a AWS SigV4 Access key and Secret Key if credentials are specified in the SigV4 config",
            );
            None
        }
    }
}

fn validate(
    raw: SnsConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<SnsSettings> {
    let before = p.count();
    let sigv4 = raw.sigv4.clone().unwrap_or_default();
    for (field, value) in [("profile", &sigv4.profile), ("role_arn", &sigv4.role_arn)] {
        if value.as_ref().is_some_and(|v| !v.is_empty()) {
            p.add(
                &format!("sigv4.{field}"),
                "is not supported by Vigil; give sigv4.access_key and sigv4.secret_key, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials) in Vigil's environment",
            );
        }
    }
    let credentials = credentials(&sigv4, p);
    let region = sigv4
        .region
        .clone()
        .filter(|r| !r.is_empty())
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"));
    if region.is_none() {
        p.add(
            "sigv4.region",
            "region not configured: set sigv4.region, or AWS_REGION in Vigil's environment",
        );
    }
    let region = region.unwrap_or_default();
    let api_url = raw
        .api_url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("https://sns.{region}.amazonaws.com/"));
    check_url(&api_url, "api_url", p);
    let t = &global.templates;
    let set = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let target = match (
        set(&raw.topic_arn),
        set(&raw.target_arn),
        set(&raw.phone_number),
    ) {
        (Some(topic), None, None) => Some(SnsTarget::Topic(t.field(p, "topic_arn", &topic))),
        (None, Some(target), None) => Some(SnsTarget::Target(t.field(p, "target_arn", &target))),
        (None, None, Some(phone)) => Some(SnsTarget::Phone(t.field(p, "phone_number", &phone))),
        _ => {
            p.add(
                "",
                "must provide either a Target ARN, Topic ARN, or Phone Number for SNS config (exactly one of target_arn, topic_arn, phone_number)",
            );
            None
        }
    };
    let subject = match raw.subject.as_deref() {
        Some("") => None,
        subject => Some(t.field_or(p, "subject", subject, &call("sns.default.subject"))),
    };
    let attributes = raw
        .attributes
        .iter()
        .map(|(k, v)| {
            let at = format!("attributes.{k}");
            (t.field(p, &at, k), t.field(p, &at, v))
        })
        .collect();
    let settings = SnsSettings {
        send_resolved: raw.send_resolved.unwrap_or(SnsConfigRaw::SEND_RESOLVED),
        api_url,
        region,
        credentials: credentials.unwrap_or(AwsCredentials {
            access_key: String::new(),
            secret_key: Secret::new(""),
            session_token: None,
        }),
        target: target.unwrap_or(SnsTarget::Topic(t.field(p, "topic_arn", ""))),
        subject,
        message: t.field_or(
            p,
            "message",
            raw.message.as_deref(),
            &call("sns.default.message"),
        ),
        attributes,
        http: validate_http(raw.http_config.as_ref(), global, p),
    };
    (p.count() == before).then_some(settings)
}

receiver_kind!(SnsConfigRaw, "sns_configs", send_resolved: true, validate => SnsReceiver);

http_receiver!(
    /// Publishes notifications to one SNS topic, endpoint or phone number.
    SnsReceiver(SnsSettings)
);

/// `message` cut to at most `max` bytes, at a character boundary; whether
/// it was cut.
fn truncate_bytes(message: String, max: usize) -> (String, bool) {
    if message.len() <= max {
        return (message, false);
    }
    let cut = (0..=max)
        .rev()
        .find(|i| message.is_char_boundary(*i))
        .unwrap_or(0);
    (message[..cut].to_string(), true)
}

impl SnsReceiver {
    /// The `Publish` request's form fields for `n`, sorted by name (as the
    /// AWS SDK encodes them).
    pub fn fields(&self, n: &Notification) -> Vec<(String, String)> {
        let s = &self.settings;
        let render = |f: &TemplateField| f.render(n, "sns", String::new);
        let mut fields: Vec<(String, String)> = vec![
            ("Action".into(), "Publish".into()),
            ("Version".into(), API_VERSION.into()),
        ];
        let mut limit = MAX_MESSAGE;
        match &s.target {
            SnsTarget::Topic(topic) => {
                let topic = render(topic);
                if topic.ends_with(".fifo") {
                    let key = dedup_key(&n.group_key);
                    fields.push(("MessageDeduplicationId".into(), key.clone()));
                    fields.push(("MessageGroupId".into(), key));
                }
                fields.push(("TopicArn".into(), topic));
            }
            SnsTarget::Target(target) => fields.push(("TargetArn".into(), render(target))),
            SnsTarget::Phone(phone) => {
                fields.push(("PhoneNumber".into(), render(phone)));
                limit = MAX_SMS;
            }
        }
        let message = s.message.render(n, "sns", || template::text_alert_list(n));
        let (message, truncated) = truncate_bytes(message, limit);
        fields.push(("Message".into(), message));
        let mut attributes: BTreeMap<String, String> = s
            .attributes
            .iter()
            .map(|(k, v)| (render(k), render(v)))
            .collect();
        if truncated {
            attributes.insert("truncated".into(), "true".into());
        }
        if attributes.is_empty() {
            // The AWS SDK Alertmanager uses sends an empty map this way.
            fields.push(("MessageAttributes".into(), String::new()));
        }
        for (i, (name, value)) in attributes.into_iter().enumerate() {
            let entry = format!("MessageAttributes.entry.{}", i + 1);
            fields.push((format!("{entry}.Name"), name));
            fields.push((format!("{entry}.Value.DataType"), "String".into()));
            fields.push((format!("{entry}.Value.StringValue"), value));
        }
        if let Some(subject) = &s.subject {
            let mut subject = subject.render(n, "sns", || template::subject(n));
            if n.redelivery {
                subject = format!("{subject} {REDELIVERY_MARK}");
            }
            fields.push(("Subject".into(), subject));
        }
        fields.sort();
        fields
    }

    /// The signed `Publish` request for `n`.
    fn request(&self, n: &Notification) -> Result<reqwest::RequestBuilder, SendError> {
        let s = &self.settings;
        let build_error = |reason: String| SendError::Build {
            integration: "sns",
            reason,
        };
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.fields(n))
            .finish();
        const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";
        let identity = Credentials::new(
            s.credentials.access_key.clone(),
            s.credentials.secret_key.expose().to_string(),
            s.credentials
                .session_token
                .as_ref()
                .map(|t| t.expose().to_string()),
            None,
            "vigil",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&s.region)
            .name("sns")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| build_error(format!("cannot sign the request: {e}")))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            &s.api_url,
            [("content-type", CONTENT_TYPE)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| build_error(format!("cannot sign the request: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| build_error(format!("cannot sign the request: {e}")))?
            .into_parts();
        let mut request = self
            .client
            .post(&s.api_url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE);
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        Ok(request.body(body))
    }
}

/// The `MessageId` of a `PublishResponse`.
fn message_id(answer: &str) -> Option<String> {
    let start = answer.find("<MessageId>")? + "<MessageId>".len();
    let end = start + answer[start..].find("</MessageId>")?;
    Some(answer[start..end].trim().to_string())
}

#[async_trait]
impl Receiver for SnsReceiver {
    receiver_identity!("sns");

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let mut http = self.settings.http.clone();
        // The request carries SigV4's `Authorization`; another one would
        // replace it.
        http.authorization = None;
        http.oauth2 = None;
        let request = self.request(notification)?;
        let (status, answer) = send_request("sns", request, &http, notification).await?;
        Ok(DeliveryReport {
            response_code: Some(status),
            message_id: message_id(&answer),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::AlertStatus;
    use crate::notify::receivers::config::{problems_of, validated};
    use crate::notify::receivers::template::tests::{alert, notification};

    const KEYS: &str = "sigv4: {region: eu-west-1, access_key: AK, secret_key: SK}";

    fn receiver(yaml: &str) -> SnsReceiver {
        SnsReceiver::new(validated(yaml, validate)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn problems(yaml: &str) -> Vec<String> {
        problems_of::<SnsConfigRaw, _>(
            yaml,
            "receivers[0].sns_configs[0]",
            &GlobalReceiverDefaults::default(),
            validate,
        )
    }

    #[test]
    fn a_topic_publish_has_action_version_subject_and_sorted_attributes() {
        let r = receiver(&format!(
            "{{topic_arn: 'arn:aws:sns:eu-west-1:1:alerts', attributes: {{team: web, env: '{{{{ .CommonLabels.route }}}}'}}, {KEYS}}}"
        ));
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Firing)]);
        let fields = r.fields(&n);
        assert_eq!(field(&fields, "Action"), Some("Publish"));
        assert_eq!(field(&fields, "Version"), Some(API_VERSION));
        assert_eq!(
            field(&fields, "TopicArn"),
            Some("arn:aws:sns:eu-west-1:1:alerts")
        );
        assert!(field(&fields, "Subject").is_some_and(|s| s.starts_with("[FIRING:1]")));
        assert_eq!(
            field(&fields, "MessageAttributes.entry.1.Name"),
            Some("env")
        );
        assert_eq!(
            field(&fields, "MessageAttributes.entry.1.Value.StringValue"),
            Some("/x")
        );
        assert_eq!(
            field(&fields, "MessageAttributes.entry.2.Name"),
            Some("team")
        );
        assert_eq!(
            field(&fields, "MessageAttributes.entry.2.Value.DataType"),
            Some("String")
        );
        assert!(field(&fields, "MessageGroupId").is_none());
        let names: Vec<&String> = fields.iter().map(|(k, _)| k).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(r.settings.api_url, "https://sns.eu-west-1.amazonaws.com/");
    }

    #[test]
    fn a_fifo_topic_gets_deduplication_and_group_ids_from_the_group_key() {
        let r = receiver(&format!(
            "{{topic_arn: 'arn:aws:sns:eu-west-1:1:a.fifo', {KEYS}}}"
        ));
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Firing)]);
        let fields = r.fields(&n);
        let key = dedup_key(&n.group_key);
        assert_eq!(field(&fields, "MessageDeduplicationId"), Some(key.as_str()));
        assert_eq!(field(&fields, "MessageGroupId"), Some(key.as_str()));
    }

    #[test]
    fn an_sms_is_cut_at_1600_bytes_and_marked_truncated() {
        let r = receiver(&format!(
            "{{phone_number: '+15555550100', subject: '', message: '{}', {KEYS}}}",
            "ü".repeat(1000)
        ));
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Firing)]);
        let fields = r.fields(&n);
        assert_eq!(field(&fields, "Message").map(str::len), Some(MAX_SMS));
        assert_eq!(
            field(&fields, "MessageAttributes.entry.1.Name"),
            Some("truncated")
        );
        assert_eq!(
            field(&fields, "MessageAttributes.entry.1.Value.StringValue"),
            Some("true")
        );
        assert!(
            field(&fields, "Subject").is_none(),
            "subject: '' sends none"
        );
    }

    #[test]
    fn the_request_is_signed_for_sns_in_the_region() {
        let r = receiver(&format!(
            "{{target_arn: 'arn:aws:sns:eu-west-1:1:endpoint/x', {KEYS}}}"
        ));
        let n = notification(vec![alert(&[("alertname", "Down")], AlertStatus::Firing)]);
        let request = r
            .request(&n)
            .and_then(|b| b.build().map_err(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let auth = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AK/"),
            "{auth}"
        );
        assert!(auth.contains("/eu-west-1/sns/aws4_request"), "{auth}");
        assert!(request.headers().contains_key("x-amz-date"));
    }

    #[test]
    fn targets_keys_and_unsupported_credentials_are_reported_with_their_fields() {
        let found = problems(
            "{topic_arn: t, phone_number: '+1', sigv4: {region: r, access_key: AK, profile: p, role_arn: a}}",
        );
        for want in [
            "receivers[0].sns_configs[0]: must provide either a Target ARN, Topic ARN, or Phone Number",
            "receivers[0].sns_configs[0].sigv4: must provide a AWS SigV4 Access key and Secret Key",
            "receivers[0].sns_configs[0].sigv4.profile: is not supported by Vigil",
            "receivers[0].sns_configs[0].sigv4.role_arn: is not supported by Vigil",
        ] {
            assert!(found.iter().any(|f| f.starts_with(want)), "{want} not in {found:#?}");
        }
        assert_eq!(found.len(), 4, "{found:#?}");
    }

    #[test]
    fn the_message_id_is_read_from_the_publish_response() {
        let xml = "<PublishResponse><PublishResult><MessageId>567910cd</MessageId></PublishResult></PublishResponse>";
        assert_eq!(message_id(xml).as_deref(), Some("567910cd"));
    }
}
