//! Prometheus' "send alerts" step: the alerts a group evaluation wants
//! sent, as the notifier's alert model, with the link back to the rule's
//! expression.

use chrono::{DateTime, TimeZone, Utc};

use super::group::{Rule, RuleGroup};
use crate::alerts;
use crate::notify::alert::Alert;

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters
/// stay as they are).
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link back to the expression, as Prometheus builds it.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    format!(
        "{}/graph?g0.expr={}&g0.tab=1",
        external_url.trim_end_matches('/'),
        query_escape(expr)
    )
}

/// Converts the alerts a group evaluation wants sent into notifier alerts:
/// `starts_at` is when the alert fired (its activation time before that),
/// `ends_at` the resolve time or the validity of this send.
pub fn to_notifier_alerts(
    group: &RuleGroup,
    alerts: Vec<alerts::Alert>,
    external_url: &str,
) -> Vec<Alert> {
    alerts
        .into_iter()
        .map(|a| {
            let expr = group
                .rules
                .iter()
                .find_map(|entry| match &entry.rule {
                    Rule::Alerting(rule) if rule.name() == a.name() => {
                        Some(rule.spec().expr.clone())
                    }
                    _ => None,
                })
                .unwrap_or_default();
            to_notifier_alert(a, &expr, external_url)
        })
        .collect()
}

/// The notifier's view of alert `a` of a rule with expression `expr`.
pub fn to_notifier_alert(a: alerts::Alert, expr: &str, external_url: &str) -> Alert {
    Alert {
        starts_at: time(a.fired_at_ms.unwrap_or(a.active_at_ms)),
        ends_at: a.ends_at_ms().map(time),
        generator_url: generator_url(external_url, expr),
        cooldown: a.cooldown,
        labels: a.labels,
        annotations: a.annotations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_url_escapes_the_expression() {
        assert_eq!(
            generator_url("http://h:9320/", "up{job=\"a b\"} == 0"),
            "http://h:9320/graph?g0.expr=up%7Bjob%3D%22a%20b%22%7D%20%3D%3D%200&g0.tab=1"
        );
    }
}
