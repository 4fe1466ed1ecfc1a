//! Sending to PagerDuty: the event built from a notification (Events API v2
//! or v1) and the one HTTP attempt.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::config::{PagerdutyKey, PagerdutySettings, V1_URL};
use crate::notify::alert::{AlertStatus, Notification, REDELIVERY_MARK};
use crate::notify::receivers::http::post_json;
use crate::notify::receivers::template::{self, truncate_chars, TemplateField};
use crate::notify::receivers::{DeliveryReport, Receiver, SendError};

/// PagerDuty's summary (v2) and description (v1) limit, in characters.
pub const MAX_SUMMARY: usize = 1024;

/// An event, v2 or v1 (the fields of the other version are left out).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PagerdutyEvent {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub routing_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dedup_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub incident_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub event_type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// v2: `trigger` or `resolve`; always sent, empty for v1 (as
    /// Alertmanager).
    pub event_action: String,
    /// v2 only.
    pub payload: Option<PagerdutyPayload>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_url: String,
    /// v1 only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<PagerdutyImage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<PagerdutyLink>,
}

/// The v2 `payload`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PagerdutyPayload {
    pub summary: String,
    pub source: String,
    pub severity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub class: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub component: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_details: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PagerdutyImage {
    pub src: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub alt: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub href: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PagerdutyLink {
    pub href: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// The group key's SHA-256, hex: Alertmanager's dedup (incident) key.
pub fn dedup_key(group_key: &str) -> String {
    Sha256::digest(group_key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

http_receiver!(
    /// Sends notifications to PagerDuty.
    PagerdutyReceiver(PagerdutySettings)
);

impl PagerdutyReceiver {
    /// The event for `n`, and where it goes.
    pub fn event(&self, n: &Notification) -> (PagerdutyEvent, String) {
        let s = &self.settings;
        let render = |f: &TemplateField| f.render(n, "pagerduty", String::new);
        let mut summary = s
            .description
            .render(n, "pagerduty", || template::subject(n));
        if n.redelivery {
            summary = format!("{summary} {REDELIVERY_MARK}");
        }
        let summary = truncate_chars(&summary, MAX_SUMMARY);
        let details: BTreeMap<String, String> = s
            .details
            .iter()
            .map(|(k, v)| (k.clone(), render(v)))
            .collect();
        let client = render(&s.client);
        let client_url = render(&s.client_url);
        let firing = n.status == AlertStatus::Firing;
        let key = dedup_key(&n.group_key);
        let mut event = PagerdutyEvent {
            routing_key: String::new(),
            service_key: String::new(),
            dedup_key: String::new(),
            incident_key: String::new(),
            event_type: String::new(),
            description: String::new(),
            event_action: String::new(),
            payload: None,
            client: String::new(),
            client_url: String::new(),
            details: BTreeMap::new(),
            images: Vec::new(),
            links: Vec::new(),
        };
        match &s.key {
            PagerdutyKey::Routing {
                key: routing_key,
                url,
            } => {
                event.routing_key = routing_key.expose().to_string();
                event.dedup_key = key;
                event.event_action = if firing { "trigger" } else { "resolve" }.into();
                event.client = client.clone();
                event.client_url = client_url;
                event.images = s
                    .images
                    .iter()
                    .map(|[src, alt, href]| PagerdutyImage {
                        src: render(src),
                        alt: render(alt),
                        href: render(href),
                    })
                    .filter(|i| !i.src.is_empty())
                    .collect();
                event.links = s
                    .links
                    .iter()
                    .map(|[href, text]| PagerdutyLink {
                        href: render(href),
                        text: render(text),
                    })
                    .filter(|l| !l.href.is_empty())
                    .collect();
                event.payload = Some(PagerdutyPayload {
                    summary,
                    source: s.source.as_ref().map_or(client, render),
                    severity: render(&s.severity),
                    class: render(&s.class),
                    component: render(&s.component),
                    group: render(&s.group),
                    custom_details: details,
                });
                (event, url.clone())
            }
            PagerdutyKey::Service(service_key) => {
                event.service_key = service_key.expose().to_string();
                event.incident_key = key;
                event.event_type = if firing { "trigger" } else { "resolve" }.into();
                event.description = summary;
                event.details = details;
                if firing {
                    event.client = client;
                    event.client_url = client_url;
                }
                (event, V1_URL.to_string())
            }
        }
    }
}

#[async_trait]
impl Receiver for PagerdutyReceiver {
    receiver_identity!("pagerduty");

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let (event, url) = self.event(notification);
        let (status, body) = post_json(
            "pagerduty",
            &self.client,
            &url,
            &self.settings.http,
            &event,
            notification,
        )
        .await?;
        // The Events API answers {"status": "success", "dedup_key": ...}.
        let message_id = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|j| j["dedup_key"].as_str().map(str::to_string));
        Ok(DeliveryReport {
            response_code: Some(status),
            message_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::receivers::config::validated;
    use crate::notify::receivers::pagerduty::config::validate_pagerduty;
    use crate::notify::receivers::template::tests::{alert, notification};

    fn receiver(yaml: &str) -> PagerdutyReceiver {
        PagerdutyReceiver::new(validated(yaml, validate_pagerduty))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_resolved_group_resolves_the_incident_its_trigger_opened() {
        let r = receiver("routing_key: k\n");
        let firing = notification(vec![alert(&[("alertname", "A")], AlertStatus::Firing)]);
        let mut resolved = firing.clone();
        resolved.status = AlertStatus::Resolved;
        resolved.alerts[0].status = AlertStatus::Resolved;
        let (trigger, url) = r.event(&firing);
        let (resolve, _) = r.event(&resolved);
        assert_eq!(url, super::super::config::DEFAULT_URL);
        assert_eq!(
            (trigger.event_action.as_str(), resolve.event_action.as_str()),
            ("trigger", "resolve")
        );
        assert_eq!(trigger.dedup_key, resolve.dedup_key);
        assert_eq!(trigger.dedup_key, dedup_key(&firing.group_key));
        assert_eq!(trigger.dedup_key.len(), 64);
    }

    #[test]
    fn the_v1_api_gets_an_incident_key_and_a_description() {
        let r = receiver("service_key: s\nurl: 'http://127.0.0.1:1/ignored'\n");
        let mut n = notification(vec![alert(&[("alertname", "A")], AlertStatus::Firing)]);
        n.redelivery = true;
        let (event, url) = r.event(&n);
        assert_eq!(
            url, V1_URL,
            "v1 goes to its fixed address, as in Alertmanager"
        );
        assert_eq!(event.event_type, "trigger");
        assert!(event.payload.is_none() && event.routing_key.is_empty());
        assert!(
            event.description.ends_with(REDELIVERY_MARK),
            "{}",
            event.description
        );
        let json = serde_json::to_value(&event).unwrap_or_default();
        assert_eq!(json["service_key"], "s");
        assert_eq!(json["details"]["num_firing"], "1");
    }

    #[test]
    fn long_summaries_are_cut_to_pagerdutys_limit() {
        let r = receiver("routing_key: k\ndescription: '{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}'\n");
        let mut a = alert(&[("alertname", "A")], AlertStatus::Firing);
        a.alert
            .annotations
            .insert("summary".into(), "x".repeat(5000));
        let (event, _) = r.event(&notification(vec![a]));
        let summary = event.payload.map(|p| p.summary).unwrap_or_default();
        assert_eq!(summary.chars().count(), MAX_SUMMARY);
    }
}
