//! Unit tests of notification templates: the engine's Alertmanager
//! features (named templates, KV methods, lists, times, functions) over a
//! fixed notification, and the default templates' structure. Renders
//! compared with a real Alertmanager are in the integration tests
//! (`tests/evaluator/notify/templates.rs`).

use std::collections::BTreeMap;

use super::*;
use crate::labels::Labels;
use crate::notify::alert::AlertStatus;
use crate::notify::fixtures::{notification, notified, t};

/// Two alerts of group `alertname=High` to receiver `team.a`: pod a firing
/// (summary "A down"), pod b resolved; started at t(1_700_000_000) and
/// t(1_700_000_060).
fn sample() -> Notification {
    let mut a = notified("a", AlertStatus::Firing, 1_700_000_000);
    a.alert.annotations = BTreeMap::from([("summary".to_string(), "A down".to_string())]);
    a.alert.generator_url = "http://prom/graph?g0.expr=up".into();
    let mut b = notified("b", AlertStatus::Resolved, 1_700_000_060);
    b.alert.ends_at = Some(t(1_700_000_120));
    let mut n = notification(vec![a, b]);
    n.receiver = "team.a".into();
    n.group_labels = Labels::from_pairs([("alertname", "High")]);
    n.common_labels = Labels::from_pairs([("alertname", "High"), ("zone", "eu")]);
    n.external_url = "http://am.example".into();
    n
}

fn render(src: &str) -> String {
    render_with(&NotifyTemplates::defaults(), src)
}

fn render_with(t: &NotifyTemplates, src: &str) -> String {
    match t.render_str("t", src, &sample(), t_now()) {
        Ok(s) => s,
        Err(e) => format!("ERROR: {e}"),
    }
}

fn t_now() -> DateTime<Utc> {
    t(1_700_003_723)
}

#[test]
fn data_fields_and_alert_lists() {
    assert_eq!(
        render("{{ .Receiver }} {{ .Status }} {{ len .Alerts }} {{ len .Alerts.Firing }} {{ len .Alerts.Resolved }} {{ .ExternalURL }}"),
        "team\\.a firing 2 1 1 http://am.example"
    );
    assert_eq!(
        render("{{ range .Alerts }}{{ .Labels.pod }}:{{ .Status }}:{{ .Annotations.summary }};{{ end }}"),
        "a:firing:A down;b:resolved:;"
    );
    assert_eq!(
        render("{{ range .Alerts.Firing }}{{ .GeneratorURL }}{{ end }}|{{ (index .Alerts 1).Labels.pod }}"),
        "http://prom/graph?g0.expr=up|b"
    );
    assert_eq!(render("{{ .Alerts.Nope }}"), "ERROR: template: t:1:3: executing \"t\" at <.Alerts.Nope>: can't evaluate field Nope in type template.Alerts");
}

#[test]
fn kv_methods_like_alertmanager() {
    assert_eq!(
        render("{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }},{{ end }}"),
        "alertname=High,zone=eu,"
    );
    assert_eq!(
        render("{{ .CommonLabels.Names }} {{ .CommonLabels.Values }} {{ .CommonLabels }}"),
        "[alertname zone] [High eu] map[alertname:High zone:eu]"
    );
    assert_eq!(
        render("{{ (.CommonLabels.Remove .GroupLabels.Names).Values }} {{ with .CommonLabels.Remove (stringSlice \"zone\") }}{{ .Names }}{{ end }}"),
        "[eu] [alertname]"
    );
    assert_eq!(
        render("{{ .CommonLabels.SortedPairs.Names | join \"+\" }}"),
        "alertname+zone"
    );
    assert_eq!(render("[{{ .CommonLabels.missing }}]"), "[]");
}

#[test]
fn define_template_and_block() {
    let t = NotifyTemplates::with_files(&[(
        "/etc/t/custom.tmpl".into(),
        "{{ define \"x\" }}<{{ .Status }}>{{ end }}{{ define \"y\" }}{{ template \"x\" . }}{{ template \"w\" }}{{ end }}{{ define \"w\" }}-{{ end }}".into(),
    )])
    .expect("valid templates");
    assert_eq!(render_with(&t, "{{ template \"y\" . }}"), "<firing>-");
    assert_eq!(
        render_with(
            &t,
            "{{ block \"b\" .Receiver }}[{{ . }}]{{ end }}{{ template \"b\" \"z\" }}"
        ),
        "[team\\.a][z]"
    );
    // A text's own definitions are its own; the set is unchanged.
    assert_eq!(
        render_with(&t, "{{ define \"x\" }}mine{{ end }}{{ template \"y\" . }}"),
        "mine-"
    );
    assert_eq!(render_with(&t, "{{ template \"y\" . }}"), "<firing>-");
    // An empty redefinition does not replace a template.
    let t2 = NotifyTemplates::with_files(&[
        ("a.tmpl".into(), "{{ define \"x\" }}X{{ end }}".into()),
        ("b.tmpl".into(), "{{ define \"x\" }} {{ end }}".into()),
    ])
    .expect("valid templates");
    assert_eq!(render_with(&t2, "{{ template \"x\" }}"), "X");
}

#[test]
fn undefined_templates_and_parse_errors_are_found_when_parsing() {
    let t = NotifyTemplates::defaults();
    let err = t
        .parse("slack_configs[0].text", "ok\n  {{ template \"nope\" . }}")
        .and_then(|text| t.check(&text))
        .expect_err("undefined template");
    assert_eq!(
        err.to_string(),
        "template: slack_configs[0].text:2:6: no such template \"nope\""
    );
    let err = NotifyTemplates::with_files(&[(
        "/t/a.tmpl".into(),
        "{{ define \"a\" }}{{ template \"missing\" . }}{{ end }}".into(),
    )])
    .map_or_else(|e| panic!("{e}"), |t| t.undefined_calls())
    .expect_err("undefined template in a file");
    assert_eq!(
        err.to_string(),
        "template: /t/a.tmpl:1:20: no such template \"missing\""
    );
    let err =
        NotifyTemplates::with_files(&[("/t/b.tmpl".into(), "{{ define \"a\" }}{{ .X".into())])
            .expect_err("parse error");
    assert!(
        err.to_string().starts_with("template: /t/b.tmpl:1:"),
        "{err}"
    );
    assert!(t.parse("f", "{{ nosuch 1 }}").is_err());
    assert!(t
        .parse("f", "{{ if true }}{{ define \"a\" }}{{ end }}{{ end }}")
        .is_err());
}

#[test]
fn alertmanager_functions() {
    let cases = [
        ("{{ toUpper \"ab\" }} {{ toLower \"AB\" }} {{ title \"hELLO wORLD\" }}", "AB ab Hello World"),
        ("[{{ trimSpace \"  x \\n\" }}]", "[x]"),
        ("{{ join \", \" (stringSlice \"a\" \"b\") }}", "a, b"),
        ("{{ match \"^a.c$\" \"abc\" }} {{ match \"^x\" \"abc\" }}", "true false"),
        ("{{ reReplaceAll \"(\\\\w+)-(\\\\d+)\" \"$2.$1\" \"web-1 db-22\" }}", "1.web 22.db"),
        ("{{ safeHtml \"<b>\" }}", "<b>"),
        ("{{ list 1 \"a\" true }} {{ len (append (list 1) 2 3) }}", "[1 a true] 3"),
        ("{{ (index .Alerts 0).StartsAt }}", "2023-11-14 22:13:20 +0000 UTC"),
        ("{{ (index .Alerts 0).EndsAt }}", "0001-01-01 00:00:00 +0000 UTC"),
        ("{{ (index .Alerts 1).EndsAt | date \"2006-01-02T15:04:05Z07:00\" }}", "2023-11-14T22:15:20Z"),
        ("{{ (index .Alerts 0).StartsAt | tz \"Europe/Berlin\" | date \"15:04 MST\" }}", "23:13 CET"),
        ("{{ (index .Alerts 0).StartsAt | tz \"Asia/Kolkata\" }}", "2023-11-15 03:43:20 +0530 IST"),
        ("{{ since (index .Alerts 0).StartsAt }}", "1h2m3s"),
        ("{{ since (index .Alerts 0).StartsAt | humanizeDuration }}", "1h 2m 3s"),
        ("{{ humanizeDuration 90 }} {{ humanizeDuration \"3600\" }}", "1m 30s 1h 0m 0s"),
        ("{{ (index .Alerts 0).StartsAt.Unix }} {{ (index .Alerts 0).StartsAt.Format \"Jan 2\" }}", "1700000000 Nov 14"),
        ("{{ printf \"%s=%d\" \"n\" (len .Alerts) }} {{ if and (gt (len .Alerts) 1) (eq .Status \"firing\") }}y{{ end }}", "n=2 y"),
    ];
    for (src, want) in cases {
        let got = render(src);
        if src.contains("tz \"") && got.contains("unknown time zone") {
            // No zoneinfo database on this host.
            continue;
        }
        assert_eq!(got, want, "{src}");
    }
    assert!(render("{{ tz \"No/Where\" (index .Alerts 0).StartsAt }}")
        .contains("error calling tz: unknown time zone No/Where"));
    assert!(render("{{ reReplaceAll \"(\" \"\" \"x\" }}").starts_with("ERROR: "));
}

#[test]
fn default_templates_render_alertmanager_text() {
    assert_eq!(
        render("{{ template \"__subject\" . }}"),
        "[FIRING:1] High (eu)"
    );
    assert_eq!(
        render("{{ template \"slack.default.fallback\" . }}"),
        "[FIRING:1] High (eu) | http://am.example/#/alerts?receiver=team%5C.a"
    );
    assert_eq!(
        render("{{ template \"__text_alert_list\" .Alerts.Firing }}"),
        "Labels:\n - alertname = High\n - pod = a\nAnnotations:\n - summary = A down\nSource: http://prom/graph?g0.expr=up\n"
    );
    for name in DEFAULT_NAMES
        .iter()
        .chain(&["__text_alert_list", "pagerduty.default.instances"])
    {
        assert!(
            NotifyTemplates::defaults().contains(name),
            "{name} not defined"
        );
    }
}

#[derive(Default)]
struct Count(std::sync::Mutex<Vec<String>>);

impl TemplateFailures for Count {
    fn record_template_failure(&self, receiver: &str, integration: &str, field: &str) {
        if let Ok(mut v) = self.0.lock() {
            v.push(format!("{receiver}/{integration}/{field}"));
        }
    }
}

#[test]
fn a_failing_render_falls_back_and_is_counted() {
    let t = NotifyTemplates::defaults();
    let count = Count::default();
    let at = FieldRef {
        integration: "slack",
        field: "text",
        html: false,
    };
    let bad = t.parse("text", "{{ index .Alerts 9 }}").expect("parses");
    let out = render_or_fallback(&t, &bad, &sample(), t_now(), at, &count, || "plain".into());
    assert_eq!(out, "plain");
    let good = t.parse("text", "{{ .Status }}").expect("parses");
    let out = render_or_fallback(&t, &good, &sample(), t_now(), at, &count, || "plain".into());
    assert_eq!(out, "firing");
    assert_eq!(
        count.0.lock().map(|v| v.clone()).unwrap_or_default(),
        vec!["team.a/slack/text"]
    );
    let counter = failure_counter();
    counter.record_template_failure("r", "slack", "title");
    assert_eq!(counter.with_label_values(&["r", "slack", "title"]).get(), 1);
}

#[test]
fn html_rendering_escapes_by_context() {
    let t = NotifyTemplates::defaults();
    let text = t
        .parse("html", "<a href=\"{{ template \"__alertmanagerURL\" . }}\">{{ .CommonLabels }} &amp; {{ \"<x>\" }}</a>")
        .expect("parses");
    assert_eq!(
        t.render(&text, &sample(), t_now(), true).expect("renders"),
        "<a href=\"http://am.example/#/alerts?receiver=team%5C.a\">map[alertname:High zone:eu] &amp; &lt;x&gt;</a>"
    );
}
