//! Receiver text fields as Alertmanager notification templates: each field
//! is parsed once, when the config loads, against the notification template
//! set (Vigil's defaults under Alertmanager's names plus the config's
//! `templates:` files), so `check config` finds parse errors and calls of
//! undefined templates; it is rendered per notification over Alertmanager's
//! notification data. A field that fails to render is replaced by a plain
//! text built here without templates ([`subject`], [`text_alert_list`]),
//! counted in `vigil_notification_template_failures_total` and logged: a
//! notification is never lost to a template.

use std::fmt::{self, Write as _};
use std::sync::{Arc, OnceLock};

use crate::clock::{Clock, SystemClock};
use crate::notify::alert::{AlertStatus, Notification, NotifiedAlert};
use crate::notify::receivers::config::Problems;
use crate::notify::templates::{
    render_or_fallback, report_failure, shared_failure_counter, FieldRef, NotifyTemplates,
    TemplateFailures,
};
use crate::template::{TemplateError, Text};

/// What receivers render their fields with: the notification template set,
/// where render failures are counted, and the clock templates read (`since`).
pub struct TemplateEnv {
    templates: Arc<NotifyTemplates>,
    failures: Arc<dyn TemplateFailures>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TemplateEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateEnv").finish_non_exhaustive()
    }
}

impl TemplateEnv {
    /// `templates`, with failures counted in the evaluator's
    /// `vigil_notification_template_failures_total` and the system clock.
    pub fn new(templates: NotifyTemplates) -> Arc<TemplateEnv> {
        TemplateEnv::with(
            Arc::new(templates),
            Arc::new(shared_failure_counter().clone()),
            Arc::new(SystemClock),
        )
    }

    /// Every part given (tests: a counter of their own, a simulated clock).
    pub fn with(
        templates: Arc<NotifyTemplates>,
        failures: Arc<dyn TemplateFailures>,
        clock: Arc<dyn Clock>,
    ) -> Arc<TemplateEnv> {
        Arc::new(TemplateEnv {
            templates,
            failures,
            clock,
        })
    }

    /// Vigil's default templates alone (a config without `templates:`).
    pub fn defaults() -> Arc<TemplateEnv> {
        static DEFAULTS: OnceLock<Arc<TemplateEnv>> = OnceLock::new();
        DEFAULTS
            .get_or_init(|| TemplateEnv::new(NotifyTemplates::defaults()))
            .clone()
    }

    /// Parses the text field `field` of the entry `p` validates. A field
    /// that does not parse, or calls an undefined template, is a warning
    /// (Alertmanager accepts such a config and fails when it renders); it
    /// renders as its plain fallback, counted as a template failure.
    pub fn field(self: &Arc<Self>, p: &mut Problems<'_>, field: &str, src: &str) -> TemplateField {
        let parsed = if src.is_empty() {
            Ok(None)
        } else {
            self.templates
                .parse(field, src)
                .and_then(|text| self.templates.check(&text).map(|()| Some(text)))
        };
        if let Err(e) = &parsed {
            p.warn(
                field,
                format!("{e}; notifications will carry Vigil's plain text instead until the template is fixed"),
            );
        }
        TemplateField {
            env: self.clone(),
            field: field.to_string(),
            parsed: parsed.map_err(Arc::new),
        }
    }

    /// [`Self::field`] for an optional field: `default` when unset.
    pub fn field_or(
        self: &Arc<Self>,
        p: &mut Problems<'_>,
        field: &str,
        src: Option<&str>,
        default: &str,
    ) -> TemplateField {
        self.field(p, field, src.unwrap_or(default))
    }
}

/// `{{ template "NAME" . }}`: a field's default in Alertmanager's config.
pub fn call(name: &str) -> String {
    format!(r#"{{{{ template "{name}" . }}}}"#)
}

/// One receiver text field, parsed; rendered per notification.
#[derive(Clone)]
pub struct TemplateField {
    env: Arc<TemplateEnv>,
    /// The field's path within its entry (`title`, `fields[0].value`).
    field: String,
    /// `None` for the empty text; an error for a field that did not parse.
    parsed: Result<Option<Text>, Arc<TemplateError>>,
}

impl fmt::Debug for TemplateField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TemplateField({})", self.field)
    }
}

impl TemplateField {
    /// The field rendered as text (Alertmanager's `ExecuteTextString`); on
    /// failure `fallback()`, counted and logged as a failure of
    /// `integration`'s field.
    pub fn render(
        &self,
        notification: &Notification,
        integration: &str,
        fallback: impl FnOnce() -> String,
    ) -> String {
        self.render_as(notification, integration, false, fallback)
    }

    /// The field rendered as HTML (`ExecuteHTMLString`: values escaped).
    pub fn render_html(
        &self,
        notification: &Notification,
        integration: &str,
        fallback: impl FnOnce() -> String,
    ) -> String {
        self.render_as(notification, integration, true, fallback)
    }

    /// Rendered, with an empty result as `None` (fields Alertmanager omits
    /// when empty).
    pub fn render_nonempty(
        &self,
        notification: &Notification,
        integration: &str,
    ) -> Option<String> {
        Some(self.render(notification, integration, String::new)).filter(|s| !s.is_empty())
    }

    fn render_as(
        &self,
        notification: &Notification,
        integration: &str,
        html: bool,
        fallback: impl FnOnce() -> String,
    ) -> String {
        let at = FieldRef {
            integration,
            field: &self.field,
            html,
        };
        let env = &self.env;
        match &self.parsed {
            Ok(None) => String::new(),
            Ok(Some(text)) => render_or_fallback(
                &env.templates,
                text,
                notification,
                env.clock.now(),
                at,
                env.failures.as_ref(),
                fallback,
            ),
            Err(error) => {
                report_failure(notification, at, env.failures.as_ref(), error);
                fallback()
            }
        }
    }
}

/// The group's subject line, in the format of Alertmanager's `__subject`
/// template (used by `slack.default.title` and `email.default.subject`):
/// `[FIRING:2] <group label values> (<values of the other common labels>)`,
/// or `[RESOLVED] ...`. Values only, joined by spaces, labels in name order.
/// (Alertmanager leaves a trailing space when there are no extra common
/// labels; Vigil trims it.)
pub fn subject(notification: &Notification) -> String {
    let mut out = String::from("[");
    out.push_str(&notification.status.as_str().to_uppercase());
    if notification.status == AlertStatus::Firing {
        let _ = write!(out, ":{}", firing_count(notification));
    }
    out.push_str("] ");
    let group_values: Vec<&str> = notification.group_labels.iter().map(|l| l.value).collect();
    out.push_str(&group_values.join(" "));
    if notification.common_labels.len() > notification.group_labels.len() {
        let extra: Vec<&str> = notification
            .common_labels
            .iter()
            .filter(|l| notification.group_labels.get(l.name).is_none())
            .map(|l| l.value)
            .collect();
        let _ = write!(out, " ({})", extra.join(" "));
    }
    out.trim_end().to_string()
}

/// Number of firing alerts in the notification.
pub fn firing_count(notification: &Notification) -> usize {
    notification
        .alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .count()
}

/// Number of resolved alerts in the notification.
pub fn resolved_count(notification: &Notification) -> usize {
    notification.alerts.len() - firing_count(notification)
}

/// The "View" link of a notification: the dashboard's alerts of this
/// receiver (as Alertmanager's `slack.default.titlelink`), narrowed to the
/// notification's group by its group labels (`filter={alertname="X"}`, as
/// Alertmanager's UI takes it).
pub fn title_link(notification: &Notification) -> String {
    let mut link = format!(
        "{}/#/alerts?receiver={}",
        notification.external_url.trim_end_matches('/'),
        query_escape(&notification.receiver)
    );
    if !notification.group_labels.is_empty() {
        let matchers: Vec<String> = notification
            .group_labels
            .iter()
            .map(|l| format!("{}={:?}", l.name, l.value))
            .collect();
        link.push_str("&filter=");
        link.push_str(&query_escape(&format!("{{{}}}", matchers.join(","))));
    }
    link
}

/// Go's `url.QueryEscape`: unreserved characters kept, space as `+`, the rest
/// percent-encoded.
pub fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            b' ' => out.push('+'),
            other => {
                let _ = write!(out, "%{other:02X}");
            }
        }
    }
    out
}

/// The alert's human name: its `summary` annotation, else its `alertname`.
pub fn alert_headline(alert: &NotifiedAlert) -> &str {
    alert
        .alert
        .annotations
        .get("summary")
        .map(String::as_str)
        .or_else(|| alert.alert.labels.get("alertname"))
        .unwrap_or("(unnamed alert)")
}

/// Plain-text alert list (e-mail text part, console): per alert its status,
/// labels, annotations, start/end and source link.
pub fn text_alert_list(notification: &Notification) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", subject(notification));
    let _ = writeln!(
        out,
        "{} firing, {} resolved — receiver {}",
        firing_count(notification),
        resolved_count(notification),
        notification.receiver
    );
    if notification.truncated_alerts > 0 {
        let _ = writeln!(
            out,
            "({} more alerts not shown)",
            notification.truncated_alerts
        );
    }
    for alert in &notification.alerts {
        out.push('\n');
        let _ = writeln!(
            out,
            "[{}] {}",
            alert.status.as_str().to_uppercase(),
            alert_headline(alert)
        );
        out.push_str("  Labels:\n");
        for label in alert.alert.labels.iter() {
            let _ = writeln!(out, "    - {} = {}", label.name, label.value);
        }
        if !alert.alert.annotations.is_empty() {
            out.push_str("  Annotations:\n");
            for (name, value) in &alert.alert.annotations {
                let _ = writeln!(out, "    - {name} = {value}");
            }
        }
        let _ = writeln!(out, "  Started: {}", alert.alert.starts_at.to_rfc3339());
        if alert.status == AlertStatus::Resolved {
            if let Some(ends_at) = alert.alert.ends_at {
                let _ = writeln!(out, "  Ended: {}", ends_at.to_rfc3339());
            }
        }
        if !alert.alert.generator_url.is_empty() {
            let _ = writeln!(out, "  Source: {}", alert.alert.generator_url);
        }
    }
    if !notification.external_url.is_empty() {
        let _ = write!(out, "\nView: {}\n", title_link(notification));
    }
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// Cuts `value` to at most `max` characters, marking the cut with `…`.
pub fn truncate_chars(value: &str, max: usize) -> String {
    if value.chars().count() <= max {
        return value.to_string();
    }
    let mut out: String = value.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::notify::alert::{Alert, Fingerprint};
    use chrono::{TimeZone, Utc};
    use std::collections::BTreeMap;

    pub(crate) fn alert(pairs: &[(&str, &str)], status: AlertStatus) -> NotifiedAlert {
        let labels = Labels::from_pairs(pairs.iter().copied());
        let starts_at = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .unwrap_or_default();
        NotifiedAlert {
            status,
            fingerprint: Fingerprint::of(&labels),
            alert: Alert {
                labels,
                annotations: BTreeMap::from([(
                    "summary".to_string(),
                    "Error rate above 5%".to_string(),
                )]),
                starts_at,
                ends_at: None,
                generator_url: "http://vigil:9096/graph?g0.expr=x".into(),
                cooldown: None,
            },
        }
    }

    pub(crate) fn notification(alerts: Vec<NotifiedAlert>) -> Notification {
        let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        Notification {
            receiver: "team a".into(),
            group_key: "{}:{alertname=\"HighErrorRate\"}".into(),
            status,
            group_labels: Labels::from_pairs([("alertname", "HighErrorRate")]),
            common_labels: Labels::from_pairs([("alertname", "HighErrorRate"), ("route", "/x")]),
            common_annotations: BTreeMap::new(),
            external_url: "http://vigil:9096".into(),
            truncated_alerts: 0,
            redelivery: false,
            alerts,
        }
    }

    #[test]
    fn subject_counts_firing_alerts_and_lists_extra_common_label_values() {
        let n = notification(vec![
            alert(
                &[
                    ("alertname", "HighErrorRate"),
                    ("route", "/x"),
                    ("pod", "a"),
                ],
                AlertStatus::Firing,
            ),
            alert(
                &[
                    ("alertname", "HighErrorRate"),
                    ("route", "/x"),
                    ("pod", "b"),
                ],
                AlertStatus::Firing,
            ),
            alert(
                &[
                    ("alertname", "HighErrorRate"),
                    ("route", "/x"),
                    ("pod", "c"),
                ],
                AlertStatus::Resolved,
            ),
        ]);
        assert_eq!(subject(&n), "[FIRING:2] HighErrorRate (/x)");
    }

    #[test]
    fn resolved_subject_has_no_count_and_no_trailing_space() {
        let mut n = notification(vec![alert(
            &[("alertname", "HighErrorRate")],
            AlertStatus::Resolved,
        )]);
        n.common_labels = n.group_labels.clone();
        assert_eq!(subject(&n), "[RESOLVED] HighErrorRate");
    }

    #[test]
    fn title_link_query_escapes_the_receiver_and_filters_to_the_group() {
        let mut n = notification(vec![]);
        assert_eq!(
            title_link(&n),
            "http://vigil:9096/#/alerts?receiver=team+a&filter=%7Balertname%3D%22HighErrorRate%22%7D"
        );
        n.group_labels = Labels::default();
        assert_eq!(title_link(&n), "http://vigil:9096/#/alerts?receiver=team+a");
    }

    #[test]
    fn truncation_marks_the_cut_and_respects_char_boundaries() {
        assert_eq!(truncate_chars("ééééé", 3), "éé…");
        assert_eq!(truncate_chars("abc", 3), "abc");
    }
}
