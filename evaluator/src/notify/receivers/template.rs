//! Default titles and bodies, rendered in code so that messages look like
//! Alertmanager's defaults without a Go-template engine, and the small
//! placeholder language accepted in user-supplied strings.
//!
//! The rules engine's template module is not used here: notifications carry
//! groups of alerts, not one rule's sample, and the receivers must render even
//! when alerts come from an external Prometheus.

use std::fmt::Write as _;

use crate::labels::Labels;
use crate::notify::alert::{AlertStatus, Notification, NotifiedAlert};

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

/// The link Alertmanager puts behind the title (`slack.default.titlelink`):
/// the alerts view of this receiver.
pub fn title_link(notification: &Notification) -> String {
    format!(
        "{}/#/alerts?receiver={}",
        notification.external_url.trim_end_matches('/'),
        query_escape(&notification.receiver)
    )
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

/// Labels of `alert` that are not shared by every alert of the group: the
/// part that tells alerts of one group apart.
pub fn distinguishing_labels<'a>(
    notification: &'a Notification,
    alert: &'a NotifiedAlert,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    alert
        .alert
        .labels
        .iter()
        .filter(|l| notification.common_labels.get(l.name) != Some(l.value))
        .map(|l| (l.name, l.value))
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

/// Vigil's default Slack text (Alertmanager's `slack.default.text` is empty):
/// one entry per alert with its name, status, severity, summary, description
/// and the labels that distinguish it within the group, in Slack mrkdwn.
pub fn slack_text(notification: &Notification, alerts: &[NotifiedAlert]) -> String {
    let mut out = String::new();
    for alert in alerts {
        let name = alert.alert.labels.get("alertname").unwrap_or("alert");
        let _ = write!(out, "*{}* ({})", name, alert.status.as_str());
        if let Some(severity) = alert.alert.labels.get("severity") {
            let _ = write!(out, " `{severity}`");
        }
        if let Some(summary) = alert.alert.annotations.get("summary") {
            let _ = write!(out, " — {summary}");
        }
        out.push('\n');
        if let Some(description) = alert.alert.annotations.get("description") {
            out.push_str(description);
            out.push('\n');
        }
        let labels: Vec<String> = distinguishing_labels(notification, alert)
            .filter(|(name, _)| *name != "alertname")
            .map(|(name, value)| format!("`{name}={value}`"))
            .collect();
        if !labels.is_empty() {
            out.push_str(&labels.join(" "));
            out.push('\n');
        }
    }
    out.trim_end().to_string()
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

/// The default HTML e-mail body: firing alerts first, then resolved ones,
/// each with labels, annotations (links made clickable) and a source link.
pub fn html_alert_list(notification: &Notification) -> String {
    let mut out = String::new();
    let title = html_escape(&subject(notification));
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body style=\"font-family: Helvetica, Arial, sans-serif; font-size: 14px;\">\n<h2>{title}</h2>\n"
    );
    if !notification.external_url.is_empty() {
        let _ = writeln!(
            out,
            "<p><a href=\"{}\">View in Vigil</a></p>",
            html_escape(&title_link(notification))
        );
    }
    for (status, heading) in [
        (AlertStatus::Firing, "Firing"),
        (AlertStatus::Resolved, "Resolved"),
    ] {
        let alerts: Vec<&NotifiedAlert> = notification
            .alerts
            .iter()
            .filter(|a| a.status == status)
            .collect();
        if alerts.is_empty() {
            continue;
        }
        let _ = writeln!(out, "<h3>[{}] {heading}</h3>", alerts.len());
        for alert in alerts {
            let _ = writeln!(
                out,
                "<div style=\"margin-bottom: 16px;\"><strong>{}</strong><br/>",
                html_escape(alert_headline(alert))
            );
            out.push_str("<em>Labels</em><ul>\n");
            for label in alert.alert.labels.iter() {
                let _ = writeln!(
                    out,
                    "<li>{} = {}</li>",
                    html_escape(label.name),
                    html_escape(label.value)
                );
            }
            out.push_str("</ul>\n");
            if !alert.alert.annotations.is_empty() {
                out.push_str("<em>Annotations</em><ul>\n");
                for (name, value) in &alert.alert.annotations {
                    let value_html =
                        if value.starts_with("http://") || value.starts_with("https://") {
                            format!("<a href=\"{0}\">{0}</a>", html_escape(value))
                        } else {
                            html_escape(value)
                        };
                    let _ = writeln!(out, "<li>{} = {value_html}</li>", html_escape(name));
                }
                out.push_str("</ul>\n");
            }
            if !alert.alert.generator_url.is_empty() {
                let _ = writeln!(
                    out,
                    "<a href=\"{}\">Source</a>",
                    html_escape(&alert.alert.generator_url)
                );
            }
            out.push_str("</div>\n");
        }
    }
    if notification.truncated_alerts > 0 {
        let _ = writeln!(
            out,
            "<p>{} more alerts not shown.</p>",
            notification.truncated_alerts
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// Expands placeholders in a user-supplied string. Supported (whitespace
/// inside the braces is free, `{{-`/`-}}` trim markers are accepted):
///
/// | placeholder | value |
/// | --- | --- |
/// | `{{ .Status }}` / `{{ .Status \| toUpper }}` | `firing` / `FIRING` |
/// | `{{ .Receiver }}` | receiver name |
/// | `{{ .ExternalURL }}` | the evaluator's external URL |
/// | `{{ .GroupLabels.NAME }}`, `{{ .CommonLabels.NAME }}`, `{{ .CommonAnnotations.NAME }}` | that value, or empty |
/// | `{{ .Alerts \| len }}`, `{{ .Alerts.Firing \| len }}`, `{{ .Alerts.Resolved \| len }}` | counts |
/// | `{{ template "slack.default.title" . }}`, `"email.default.subject"`, `"__subject"` | [`subject`] |
/// | `{{ template "slack.default.titlelink" . }}`, `"__alertmanagerURL"` | [`title_link`] |
/// | `{{ template "slack.default.text" . }}` | [`slack_text`] |
///
/// Any other `{{ ... }}` is left in the output unchanged, so a mistake is
/// visible in the message instead of silently dropping text.
pub fn expand(input: &str, notification: &Notification) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        match resolve(inner, notification) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn resolve(expression: &str, notification: &Notification) -> Option<String> {
    let compact: String = expression.split_whitespace().collect::<Vec<_>>().join(" ");
    let label = |labels: &Labels, name: &str| labels.get(name).unwrap_or("").to_string();
    let value = match compact.as_str() {
        ".Status" => notification.status.as_str().to_string(),
        ".Status | toUpper" => notification.status.as_str().to_uppercase(),
        ".Receiver" => notification.receiver.clone(),
        ".ExternalURL" => notification.external_url.clone(),
        ".Alerts | len" | "len .Alerts" => notification.alerts.len().to_string(),
        ".Alerts.Firing | len" | "len .Alerts.Firing" => firing_count(notification).to_string(),
        ".Alerts.Resolved | len" | "len .Alerts.Resolved" => {
            resolved_count(notification).to_string()
        }
        r#"template "slack.default.title" ."#
        | r#"template "email.default.subject" ."#
        | r#"template "__subject" ."# => subject(notification),
        r#"template "slack.default.titlelink" ."# | r#"template "__alertmanagerURL" ."# => {
            title_link(notification)
        }
        r#"template "slack.default.text" ."# => slack_text(notification, &notification.alerts),
        other => {
            if let Some(name) = other.strip_prefix(".GroupLabels.") {
                label(&notification.group_labels, name)
            } else if let Some(name) = other.strip_prefix(".CommonLabels.") {
                label(&notification.common_labels, name)
            } else if let Some(name) = other.strip_prefix(".CommonAnnotations.") {
                notification
                    .common_annotations
                    .get(name)
                    .cloned()
                    .unwrap_or_default()
            } else {
                return None;
            }
        }
    };
    Some(value)
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
    fn title_link_query_escapes_the_receiver() {
        let n = notification(vec![]);
        assert_eq!(title_link(&n), "http://vigil:9096/#/alerts?receiver=team+a");
    }

    #[test]
    fn placeholders_expand_and_unknown_ones_stay_visible() {
        let n = notification(vec![alert(
            &[("alertname", "HighErrorRate"), ("route", "/x")],
            AlertStatus::Firing,
        )]);
        assert_eq!(
            expand(
                "{{ .Status | toUpper }} {{.CommonLabels.route}} on {{ .Receiver }}",
                &n
            ),
            "FIRING /x on team a"
        );
        assert_eq!(
            expand(r#"{{ template "slack.default.title" . }}!"#, &n),
            "[FIRING:1] HighErrorRate (/x)!"
        );
        assert_eq!(expand("{{ .Foo }} x", &n), "{{ .Foo }} x");
        assert_eq!(expand("open {{ brace", &n), "open {{ brace");
    }

    #[test]
    fn truncation_marks_the_cut_and_respects_char_boundaries() {
        assert_eq!(truncate_chars("ééééé", 3), "éé…");
        assert_eq!(truncate_chars("abc", 3), "abc");
    }

    #[test]
    fn html_body_escapes_label_values() {
        let n = notification(vec![alert(
            &[("alertname", "HighErrorRate"), ("path", "<script>")],
            AlertStatus::Firing,
        )]);
        let html = html_alert_list(&n);
        assert!(html.contains("path = &lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
    }
}
