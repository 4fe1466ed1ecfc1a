//! Conformance with a real Alertmanager: the same alerts are sent through
//! Alertmanager (its receivers pointing at a local capture server) and
//! through Vigil's receivers built from the same config file; the bodies
//! must match field by field — Slack, webhook, PagerDuty, Telegram,
//! Discord, Webex, VictorOps, Opsgenie, WeChat (the token request too) and
//! SNS (the `Publish` form fields; the signature carries times).

use crate::support as common;

use serde_json::Value;
use vigil_evaluator::notify::alert::AlertStatus;

use common::alertmanager::{
    find, find_last, json_differences, oracle, post_alerts, start_alertmanager, wait_for_captures,
    ROUTE_TO_TEAM_A,
};
use common::{alert, build_one, notification};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_title_and_webhook_payload_match_alertmanager() {
    let Some((binary, capture_url, captured, dir)) = oracle().await else {
        return;
    };
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "{ROUTE_TO_TEAM_A}    slack_configs:
      - api_url: '{capture_url}/slack'
    webhook_configs:
      - url: '{capture_url}/webhook'
"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (_alertmanager, base) = start_alertmanager(&binary, dir.path(), &config).await;

    // The same two alerts Vigil's side uses (see support::alert).
    let n = notification(vec![
        alert("a", "critical", AlertStatus::Firing),
        alert("b", "critical", AlertStatus::Firing),
    ]);
    post_alerts(&base, &n).await;
    let mut sent = wait_for_captures(&captured, &["slack", "webhook"]).await;
    let (am_slack, am_webhook) = (sent.remove(0), sent.remove(0));

    // Vigil's receivers, fed the equivalent notification.
    let vigil_slack = build_one(&format!(
        "slack_configs:\n  - api_url: '{capture_url}/vigil-slack'\n"
    ));
    let vigil_webhook = build_one(&format!(
        "webhook_configs:\n  - url: '{capture_url}/vigil-webhook'\n"
    ));
    assert!(vigil_slack.send(&n).await.is_ok());
    assert!(vigil_webhook.send(&n).await.is_ok());
    let ours_slack = find(&captured, "vigil-slack").unwrap_or_default();
    let ours_webhook = find(&captured, "vigil-webhook").unwrap_or_default();

    assert_eq!(
        am_slack["attachments"][0]["title"],
        "[FIRING:2] HighErrorRate (/x critical)"
    );
    assert_eq!(am_webhook["alerts"].as_array().map(Vec::len), Some(2));
    // With Alertmanager's default templates, the whole Slack body is
    // Alertmanager's.
    assert_eq!(
        json_differences(&ours_slack, &am_slack),
        Vec::<String>::new()
    );
    for key in [
        "version",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "truncatedAlerts",
    ] {
        assert_eq!(ours_webhook[key], am_webhook[key], "webhook {key} differs");
    }
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    // Every Alertmanager field, plus Vigil's `idempotencyKey` (added
    // fields are within the compatibility contract: consumers ignore
    // fields they do not know).
    let mut ours = keys(&ours_webhook);
    assert!(ours.contains(&"idempotencyKey".to_string()), "{ours:?}");
    ours.retain(|k| k != "idempotencyKey");
    assert_eq!(ours, keys(&am_webhook));
    assert_eq!(
        keys(&ours_webhook["alerts"][0]),
        keys(&am_webhook["alerts"][0])
    );
    for key in [
        "status",
        "labels",
        "annotations",
        "startsAt",
        "generatorURL",
    ] {
        assert_eq!(
            ours_webhook["alerts"][0][key], am_webhook["alerts"][0][key],
            "webhook alert {key} differs"
        );
    }
}

/// The body Alertmanager posts to `/{kind}` of the capture server for the
/// alerts of `n`, with `integrations` (a receiver's `*_configs`, at four
/// spaces) and the files of `templates` in the config; then the body
/// Vigil's receiver, built from the very same config file, posts.
async fn both_bodies(
    integrations: &str,
    kind: &str,
    templates: &[(&str, &str)],
    n: &vigil_evaluator::notify::alert::Notification,
) -> Option<(Value, Value)> {
    let (binary, capture_url, captured, dir) = oracle().await?;
    for (name, text) in templates {
        std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{e}"));
    }
    let config = dir.path().join("alertmanager.yml");
    let text = format!(
        "templates: ['{}/*.tmpl']\n{ROUTE_TO_TEAM_A}{}",
        dir.path().display(),
        integrations.replace("CAPTURE", &capture_url)
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    let (alertmanager, base) = start_alertmanager(&binary, dir.path(), &config).await;
    post_alerts(&base, n).await;
    wait_for_captures(&captured, &[kind]).await;
    // On a loaded machine Alertmanager can flush the group before all of
    // the posted alerts are in it (a kind that sends resolved-only groups
    // then sends twice); a flush after `group_interval` has them all. The
    // last body once nothing new came for a while is the whole group.
    let count = || {
        captured
            .lock()
            .map(|c| c.iter().filter(|(k, _)| k == kind).count())
            .unwrap_or(0)
    };
    let quiet_by = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let before = count();
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        if count() == before || std::time::Instant::now() > quiet_by {
            break;
        }
    }
    let theirs = find_last(&captured, kind).unwrap_or_default();
    drop(alertmanager);
    if let Ok(mut c) = captured.lock() {
        c.clear();
    }
    let loaded =
        vigil_evaluator::notify::config::load_file(&config).unwrap_or_else(|e| panic!("{e}"));
    let (receivers, _) = vigil_evaluator::notify::config::build_receivers(&loaded)
        .unwrap_or_else(|e| panic!("{e:?}"));
    // As the delivery stage hands it over (`send_resolved: false` leaves
    // the resolved alerts out, as Alertmanager does).
    let receiver = receivers["team-a"][0].receiver.as_ref();
    let n = vigil_evaluator::notify::deliver::filter_for_receiver(receiver, n)
        .unwrap_or_else(|| panic!("nothing to send"));
    receiver.send(&n).await.unwrap_or_else(|e| panic!("{e}"));
    let ours = wait_for_captures(&captured, &[kind]).await.remove(0);
    Some((ours, theirs))
}

const TEAM_TMPL: &str = r#"{{ define "team.summary" }}{{ .CommonLabels.alertname }} on {{ len .Alerts.Firing }} pods{{ end }}"#;

/// For each (capture path, integrations): the body Vigil sends equals the
/// body Alertmanager sends, field by field, for `n` (with the templates
/// file `team.tmpl`). Returns Alertmanager's bodies (none when it is not
/// installed).
async fn assert_same_bodies(
    cases: &[(&str, &str)],
    n: &vigil_evaluator::notify::alert::Notification,
) -> Vec<Value> {
    let mut theirs_all = Vec::new();
    for (kind, integrations) in cases {
        let Some((ours, theirs)) =
            both_bodies(integrations, kind, &[("team.tmpl", TEAM_TMPL)], n).await
        else {
            return Vec::new();
        };
        assert_eq!(
            json_differences(&ours, &theirs),
            Vec::<String>::new(),
            "{integrations}"
        );
        theirs_all.push(theirs);
    }
    theirs_all
}

/// A firing and a resolved alert of one group.
fn firing_and_resolved() -> vigil_evaluator::notify::alert::Notification {
    notification(vec![
        alert("a", "critical", AlertStatus::Firing),
        alert("b", "critical", AlertStatus::Resolved),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_events_match_alertmanagers_with_default_and_custom_templates() {
    let custom = "    pagerduty_configs:
      - routing_key: 'R0UT1NG'
        url: 'CAPTURE/pagerduty'
        description: '{{ template \"team.summary\" . }}'
        severity: '{{ if eq .CommonLabels.severity \"critical\" }}critical{{ else }}warning{{ end }}'
        class: '{{ .CommonLabels.alertname }}'
        component: api
        group: '{{ .GroupLabels.alertname | toLower }}'
        client: Vigil
        details:
          team: '{{ .CommonLabels.route }}'
          firing: '{{ range .Alerts.Firing }}{{ .Labels.pod }} {{ end }}'
        images: [{src: 'https://grafana/{{ .GroupLabels.alertname }}.png', alt: graph, href: 'https://grafana/d'}, {src: ''}]
        links: [{href: '{{ (index .Alerts 0).GeneratorURL }}', text: Source}]
";
    let cases = [
        ("pagerduty", "    pagerduty_configs:\n      - routing_key: 'R0UT1NG'\n        url: 'CAPTURE/pagerduty'\n"),
        ("pagerduty", custom),
    ];
    for theirs in assert_same_bodies(&cases, &firing_and_resolved()).await {
        assert_eq!(theirs["event_action"], "trigger", "{theirs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_messages_match_alertmanagers_with_default_and_custom_templates() {
    let mut a = alert("a<b>", "critical", AlertStatus::Firing);
    a.alert
        .annotations
        .insert("description".into(), "5% & rising".into());
    let n = notification(vec![a, alert("b", "critical", AlertStatus::Resolved)]);
    let custom = "    telegram_configs:
      - bot_token: 'T0KEN'
        chat_id: 42
        api_url: 'CAPTURE'
        parse_mode: MarkdownV2
        disable_notifications: true
        message: '{{ template \"team.summary\" . }}: {{ range .Alerts.Firing }}{{ .Labels.pod }} {{ .Annotations.description }}{{ end }}'
";
    let cases = [
        ("botT0KEN/sendMessage", "    telegram_configs:\n      - {bot_token: 'T0KEN', chat_id: -1001, api_url: 'CAPTURE'}\n"),
        ("botT0KEN/sendMessage", custom),
    ];
    for theirs in assert_same_bodies(&cases, &n).await {
        assert!(
            theirs["text"].as_str().is_some_and(|t| !t.is_empty()),
            "{theirs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_webex_victorops_and_opsgenie_match_alertmanagers() {
    let cases = [
        ("discord", "    discord_configs: [{webhook_url: 'CAPTURE/discord'}]\n"),
        ("discord", "    discord_configs: [{webhook_url: 'CAPTURE/discord', title: '{{ template \"team.summary\" . }}', message: '{{ range .Alerts }}{{ .Labels.pod }}={{ .Status }} {{ end }}'}]\n"),
        ("webex", "    webex_configs: [{api_url: 'CAPTURE/webex', room_id: 'R00M', http_config: {authorization: {credentials: 'B0T'}}}]\n"),
        ("webex", "    webex_configs: [{api_url: 'CAPTURE/webex', room_id: 'R00M', message: '**{{ template \"team.summary\" . }}**', http_config: {authorization: {credentials: 'B0T'}}}]\n"),
        ("vo/K3Y/RK", "    victorops_configs: [{api_key: 'K3Y', routing_key: 'RK', api_url: 'CAPTURE/vo/'}]\n"),
        ("vo/K3Y/critical", "    victorops_configs: [{api_key: 'K3Y', routing_key: '{{ .CommonLabels.severity }}', api_url: 'CAPTURE/vo/', message_type: WARNING, entity_display_name: '{{ template \"team.summary\" . }}', custom_fields: {team: '{{ .CommonLabels.route }}', runbook: 'https://r'}}]\n"),
        ("og/v2/alerts", "    opsgenie_configs: [{api_key: 'K3Y', api_url: 'CAPTURE/og/'}]\n"),
        ("og/v2/alerts", "    opsgenie_configs: [{api_key: 'K3Y', api_url: 'CAPTURE/og/', message: '{{ template \"team.summary\" . }}', details: {team: '{{ .CommonLabels.route }}'}, responders: [{name: 'web, db', type: teams}, {username: 'ann@example.com', type: User}], tags: 'a, {{ .CommonLabels.severity }} ,', note: n, priority: P2, entity: '{{ .GroupLabels.alertname }}', actions: 'restart,page'}]\n"),
    ];
    assert_same_bodies(&cases, &firing_and_resolved()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_token_request_and_messages_match_alertmanagers() {
    let plain = "    wechat_configs: [{api_secret: 'S3CR3T', corp_id: 'C0RP', api_url: 'CAPTURE/wechat', agent_id: '1000002', to_user: '@all'}]\n";
    let custom = "    wechat_configs:
      - api_secret: 'S3CR3T'
        corp_id: 'C0RP'
        api_url: 'CAPTURE/wechat/'
        message_type: markdown
        message: '**{{ template \"team.summary\" . }}** {{ range .Alerts.Firing }}{{ .Labels.pod }} {{ end }}'
        to_party: '{{ .CommonLabels.severity }}'
        to_tag: ops
        agent_id: '{{ len .Alerts }}'
";
    let cases = [
        ("wechat/gettoken", plain),
        ("wechat/message/send", plain),
        ("wechat/message/send", custom),
    ];
    let theirs = assert_same_bodies(&cases, &firing_and_resolved()).await;
    if let [token, text, markdown] = theirs.as_slice() {
        assert_eq!(token["corpid"], "C0RP", "{token}");
        assert_eq!(text["msgtype"], "text", "{text}");
        assert_eq!(markdown["msgtype"], "markdown", "{markdown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_publish_fields_match_alertmanagers() {
    let keys = "sigv4: {region: us-east-1, access_key: AKIDEXAMPLE, secret_key: wJalrXUtnFEMI}";
    let topic = format!(
        "    sns_configs: [{{api_url: 'CAPTURE/sns/', topic_arn: 'arn:aws:sns:us-east-1:123456789012:alerts', {keys}}}]\n"
    );
    let custom = format!(
        "    sns_configs:
      - api_url: 'CAPTURE/sns/'
        phone_number: '+1555{{{{ len .Alerts }}}}'
        subject: '{{{{ template \"team.summary\" . }}}}'
        message: '{{{{ range .Alerts }}}}{{{{ .Labels.pod }}}}={{{{ .Status }}}} {{{{ end }}}}'
        attributes: {{team: '{{{{ .CommonLabels.route }}}}', severity: critical, a: b}}
        {keys}
"
    );
    let fifo = format!(
        "    sns_configs: [{{api_url: 'CAPTURE/sns/', topic_arn: 'arn:aws:sns:us-east-1:123456789012:alerts.fifo', {keys}}}]\n"
    );
    let target = format!(
        "    sns_configs: [{{api_url: 'CAPTURE/sns/', target_arn: 'arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/x', subject: '', {keys}}}]\n"
    );
    let cases = [
        ("sns/", topic.as_str()),
        ("sns/", custom.as_str()),
        ("sns/", fifo.as_str()),
        ("sns/", target.as_str()),
    ];
    let theirs = assert_same_bodies(&cases, &firing_and_resolved()).await;
    if let [topic, custom, fifo, target] = theirs.as_slice() {
        assert_eq!(topic["Action"], "Publish", "{topic}");
        assert_eq!(topic["Version"], "2010-03-31", "{topic}");
        assert_eq!(custom["PhoneNumber"], "+15552", "{custom}");
        assert!(fifo.get("MessageGroupId").is_some(), "{fifo}");
        assert!(target.get("Subject").is_none(), "{target}");
    }
}
