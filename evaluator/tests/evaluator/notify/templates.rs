//! Notification templates against a real Alertmanager 0.25: the same
//! alerts go to Alertmanager (a Slack receiver pointed at a local capture
//! server, with `send_resolved` so a firing and a resolved alert are both
//! in the notification) and through Vigil's templates; every default
//! template (rendered through Slack `fields`), the wild Slack `text` of the
//! issue, and a custom `templates:` file must render exactly what
//! Alertmanager posts; and Vigil's Slack receiver, built from the same
//! config file, posts the same body.

use crate::support as common;

use vigil_evaluator::notify::alert::AlertStatus;
use vigil_evaluator::notify::templates::{NotifyTemplates, DEFAULT_NAMES};

use common::alertmanager::{
    json_differences, oracle, post_alerts, start_alertmanager, wait_for_captures, ROUTE_TO_TEAM_A,
};
use common::{alert, notification};

/// `.Alerts` is a list: the alert list template takes it directly.
const ALERT_LIST_FIELDS: &[(&str, &str)] = &[
    ("alert list", "{{ template \"__text_alert_list\" .Alerts }}"),
    (
        "pagerduty instances",
        "{{ template \"pagerduty.default.instances\" .Alerts.Firing }}",
    ),
    (
        "times",
        "{{ range .Alerts }}{{ .StartsAt }} {{ .StartsAt.Unix }};{{ end }}{{ (index .Alerts.Resolved 0).EndsAt }}",
    ),
    ("fingerprints", "{{ range .Alerts }}{{ .Fingerprint }};{{ end }}"),
];

/// The issue's Slack text, as teams write it.
const WILD_TEXT: &str =
    "{{ range .Alerts -}} *{{ .Labels.job }}* — {{ .Annotations.summary }} {{ end }}";

const CUSTOM_TMPL: &str = r#"{{ define "custom.title" }}{{ .CommonLabels.alertname | toUpper }} on {{ .GroupLabels.SortedPairs }} ({{ .Alerts.Firing | len }} firing){{ end }}
{{ define "custom.list" -}}
{{ range $i, $a := .Alerts }}{{ if $i }}, {{ end }}{{ $a.Labels.pod }}={{ $a.Status | title }}{{ end }}
{{- end }}
{{ define "slack.default.title" }}[{{ .Status }}] {{ template "custom.title" . }}{{ end }}
"#;

const CUSTOM_PRETEXT: &str = "{{ template \"custom.title\" . }}";
const CUSTOM_FOOTER: &str =
    "{{ template \"custom.list\" . }} | {{ reReplaceAll \"-\" \"_\" .Receiver }} | {{ .CommonAnnotations.Remove (stringSlice \"x\") }}";

fn yaml_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Alertmanager's config: one Slack receiver rendering every default
/// template into a field, the wild text, and the custom templates.
fn config(capture_url: &str, templates_glob: &str) -> String {
    let mut fields = String::new();
    for name in DEFAULT_NAMES {
        fields.push_str(&format!(
            "          - title: {}\n            value: {}\n",
            yaml_quote(name),
            yaml_quote(&format!("{{{{ template \"{name}\" . }}}}"))
        ));
    }
    for (title, value) in ALERT_LIST_FIELDS {
        fields.push_str(&format!(
            "          - title: {}\n            value: {}\n",
            yaml_quote(title),
            yaml_quote(value)
        ));
    }
    format!(
        "templates: [{glob}]
{ROUTE_TO_TEAM_A}    slack_configs:
      - api_url: '{capture_url}/slack'
        send_resolved: true
        text: {text}
        pretext: {pretext}
        footer: {footer}
        fields:
{fields}",
        glob = yaml_quote(templates_glob),
        text = yaml_quote(WILD_TEXT),
        pretext = yaml_quote(CUSTOM_PRETEXT),
        footer = yaml_quote(CUSTOM_FOOTER),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_and_custom_templates_render_what_alertmanager_renders() {
    let Some((binary, capture_url, captured, dir)) = oracle().await else {
        return;
    };
    let tmpl_path = dir.path().join("custom.tmpl");
    std::fs::write(&tmpl_path, CUSTOM_TMPL).unwrap_or_else(|e| panic!("{e}"));
    let glob = format!("{}/*.tmpl", dir.path().display());
    let config_path = dir.path().join("alertmanager.yml");
    std::fs::write(&config_path, config(&capture_url, &glob)).unwrap_or_else(|e| panic!("{e}"));
    let (_alertmanager, base) = start_alertmanager(&binary, dir.path(), &config_path).await;

    let n = notification(vec![
        alert("a", "critical", AlertStatus::Firing),
        alert("b", "critical", AlertStatus::Resolved),
    ]);
    post_alerts(&base, &n).await;
    let am = wait_for_captures(&captured, &["slack"]).await.remove(0);
    let attachment = &am["attachments"][0];

    let defaults = NotifyTemplates::defaults();
    let custom =
        NotifyTemplates::with_files(&[(tmpl_path.display().to_string(), CUSTOM_TMPL.to_string())])
            .unwrap_or_else(|e| panic!("{e}"));
    // No template here uses `since`: any fixed time will do.
    let now = n.alerts[0].alert.starts_at;
    let ours = |t: &NotifyTemplates, src: &str| -> String {
        t.render_str("field", src, &n, now)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
    };

    // Every default template, rendered alone (with the defaults only,
    // except slack.default.title, which the custom file redefines).
    let fields = attachment["fields"].as_array().cloned().unwrap_or_default();
    assert_eq!(fields.len(), DEFAULT_NAMES.len() + ALERT_LIST_FIELDS.len());
    for (i, name) in DEFAULT_NAMES.iter().enumerate() {
        let set = if name.starts_with("slack.default.title") || *name == "slack.default.fallback" {
            &custom
        } else {
            &defaults
        };
        let want = fields[i]["value"].as_str().unwrap_or_default();
        assert_eq!(
            ours(set, &format!("{{{{ template \"{name}\" . }}}}")),
            want,
            "default template {name} differs from Alertmanager's"
        );
    }
    for (i, (title, src)) in ALERT_LIST_FIELDS.iter().enumerate() {
        let want = fields[DEFAULT_NAMES.len() + i]["value"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(ours(&defaults, src), want, "{title} differs");
    }
    // Slack's own fields: defaults (title redefined by the custom file),
    // the wild text and the custom templates.
    assert_eq!(
        am["username"].as_str(),
        Some(ours(&custom, "{{ template \"slack.default.username\" . }}").as_str())
    );
    for (key, src) in [
        ("title", "{{ template \"slack.default.title\" . }}"),
        ("title_link", "{{ template \"slack.default.titlelink\" . }}"),
        ("fallback", "{{ template \"slack.default.fallback\" . }}"),
        ("text", WILD_TEXT),
        ("pretext", CUSTOM_PRETEXT),
        ("footer", CUSTOM_FOOTER),
    ] {
        assert_eq!(
            attachment[key].as_str(),
            Some(ours(&custom, src).as_str()),
            "slack {key} differs from Alertmanager's"
        );
    }
    assert_eq!(
        attachment["title"].as_str(),
        Some("[firing] HIGHERRORRATE on [{alertname HighErrorRate}] (1 firing)")
    );

    // End to end: Vigil's Slack receiver built from the very same config
    // file posts the very same body.
    if let Ok(mut c) = captured.lock() {
        c.clear();
    }
    let config =
        vigil_evaluator::notify::config::load_file(&config_path).unwrap_or_else(|e| panic!("{e}"));
    let (receivers, warnings) = vigil_evaluator::notify::config::build_receivers(&config)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    let slack = &receivers["team-a"][0].receiver;
    slack.send(&n).await.unwrap_or_else(|e| panic!("{e}"));
    let ours = wait_for_captures(&captured, &["slack"]).await.remove(0);
    assert_eq!(json_differences(&ours, &am), Vec::<String>::new());
}
