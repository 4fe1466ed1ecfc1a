//! Rule groups on a datasource, with the evaluator as a process: its rules
//! query a real Prometheus or VictoriaMetrics (which scrape the target; the
//! evaluator scrapes nothing), fire and notify; while the datasource is
//! down the rules report the error and the firing alert stays firing (no
//! resolved notification), and when it is back they are healthy again
//! without a second firing notification. The evaluator's query API
//! answers from the datasource.

use std::time::Duration;

use serde_json::Value;
use vigil_testkit::free_port;

use crate::support::process::{log_of, start_evaluator, value_high_rules, Target, Webhook};
use crate::support::tsdb::{first_result, outage, Kind, Tsdb};
use crate::support::wait::poll;

/// The health and last error of every rule, from `/api/v1/rules`.
async fn rule_health(base: &str) -> Vec<(String, String)> {
    let Ok(response) = reqwest::get(format!("{base}/api/v1/rules")).await else {
        return Vec::new();
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            (
                r["health"].as_str().unwrap_or("").to_string(),
                r["lastError"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_on_a_datasource_fire_and_survive_its_outage() {
    for kind in [Kind::Prometheus, Kind::VictoriaMetrics] {
        let target = Target::start().await;
        target.set(3.0);
        let scrape = format!(
            "- job_name: app\n  static_configs: [{{targets: ['127.0.0.1:{}']}}]\n",
            target.port
        );
        let Some(tsdb) = Tsdb::new(kind, &scrape) else {
            continue;
        };
        let process = tsdb.start().await;
        let hook = Webhook::start().await;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("rules.yaml"), value_high_rules("0s", ""))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("notify.yaml"),
            format!("route: {{receiver: hook, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\nreceivers:\n- name: hook\n  webhook_configs: [{{url: 'http://127.0.0.1:{}/hook', send_resolved: true}}]\n", hook.port),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let listen = free_port();
        let config = dir.path().join("vigil.yaml");
        std::fs::write(
            &config,
            format!(
                "global: {{evaluation_interval: 1s}}\ndatasource: {{url: '{}', query_timeout: 2s, retries: 1}}\nrule_files: [rules.yaml]\nnotify_config_file: notify.yaml\nweb: {{listen: '127.0.0.1:{listen}'}}\n",
                tsdb.base
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let _evaluator = start_evaluator(&config, dir.path(), "evaluator.log", None);
        let base = format!("http://127.0.0.1:{listen}");

        let fired = poll(
            Duration::from_secs(40),
            Duration::from_millis(200),
            || async { (hook.count("firing") >= 1).then_some(()) },
        )
        .await;
        assert!(
            fired.is_some(),
            "{kind:?}: no firing notification; log:\n{}",
            log_of(dir.path())
        );
        assert!(rule_health(&base).await.iter().all(|(h, _)| h == "ok"));
        // The evaluator scrapes nothing: its query API answers from the
        // datasource.
        let answer = first_result(&base, "vigil_test_value", None).await;
        assert_eq!(
            answer.as_ref().map(|a| a["value"][1].clone()),
            Some(Value::from("3")),
            "{kind:?}: {answer:?}"
        );

        // The datasource goes away (stopped, so that it comes back with
        // what it held): the rule reports it, the alert stays.
        tsdb.stop(process);
        let failing = poll(
            Duration::from_secs(30),
            Duration::from_millis(200),
            || async {
                rule_health(&base)
                    .await
                    .into_iter()
                    .find(|(h, e)| h == "err" && e.contains(&tsdb.base))
            },
        )
        .await;
        assert!(
            failing.is_some(),
            "{kind:?}: the rule never reported the outage; log:\n{}",
            log_of(dir.path())
        );
        let metrics = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
            .await
            .unwrap_or_default();
        assert!(
            metrics.contains("vigil_datasource_errors_total{datasource="),
            "{metrics}"
        );
        tokio::time::sleep(outage()).await;
        assert_eq!(
            hook.count("resolved"),
            0,
            "{kind:?}: an outage must not resolve the alert"
        );

        // Back: healthy again, still one firing notification.
        let _process = tsdb.start().await;
        let healthy = poll(
            Duration::from_secs(40),
            Duration::from_millis(200),
            || async {
                let health = rule_health(&base).await;
                (!health.is_empty() && health.iter().all(|(h, _)| h == "ok")).then_some(())
            },
        )
        .await;
        assert!(
            healthy.is_some(),
            "{kind:?}: the rule did not recover; log:\n{}",
            log_of(dir.path())
        );
        assert_eq!(
            hook.count("firing"),
            1,
            "{kind:?}: recovery must not notify again"
        );
        assert_eq!(
            hook.count("resolved"),
            0,
            "{kind:?}: {:?}\nlog:\n{}",
            hook.payloads(),
            log_of(dir.path())
        );
    }
}
