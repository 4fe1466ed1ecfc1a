//! The backtest command's outputs against the computed datasource of
//! [`super::datasource`], so every number below can be worked out by hand.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use super::{datasource, rules, Datasource, NOTIFY, T0};
use crate::support::cargo_bin;

/// Runs the backtest with `args`, over the hour from T0 and with
/// [`NOTIFY`] unless `args` give `--from` / `--notify-config`; (exit code,
/// stdout, stderr).
async fn backtest(dir: &Path, datasource: &str, args: &[&str]) -> (i32, String, String) {
    let notify = dir.join("notify.yaml");
    std::fs::write(&notify, NOTIFY).unwrap();
    let mut command = Command::new(cargo_bin("vigil-evaluator"));
    command
        .current_dir(dir)
        .arg("backtest")
        .arg("--datasource")
        .arg(datasource);
    if !args.contains(&"--from") {
        command.args(["--from", &T0.to_string(), "--to", &(T0 + 3600).to_string()]);
    }
    if !args.contains(&"--notify-config") {
        command.arg("--notify-config").arg(&notify);
    }
    command.args(args);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn header(datasource: &str) -> String {
    format!("Backtest 2025-12-01T00:00:00Z – 2025-12-01T01:00:00Z (1h) against {datasource}; notifications counted with notify.yaml\n\n")
}

#[tokio::test]
async fn a_rule_is_reported_with_episodes_near_misses_flaps_and_notifications() {
    let url = datasource().await.base;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules("5")).unwrap();
    let notify = dir.path().join("notify.yaml");
    let (code, table, stderr) = backtest(dir.path(), &url, &["rules.yaml"]).await;
    assert_eq!(code, 0, "{stderr}");
    // a: 05:30–10:00 and 12:30–20:00 (a flap: 2m30s after the first),
    // pending at 30:00 and gone at 30:30 (a near miss); b: 40:30–50:00.
    // Each episode: a firing notification at the group's first flush 30 s
    // later and a resolved one at the flush after the resolution.
    let want = header(&url).replace(&notify.display().to_string(), "notify.yaml")
        + "RULE      EPISODES  FIRING  NEAR MISSES  FLAPS  NOTIFICATIONS\n\
           LoadHigh  3         21m30s  1            1      team=6\n";
    assert_eq!(
        table.replace(&notify.display().to_string(), "notify.yaml"),
        want
    );

    let (code, episodes, stderr) =
        backtest(dir.path(), &url, &["--output", "episodes", "rules.yaml"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        episodes,
        "RULE      ALERT LABELS    START                 END                   DURATION\n\
         LoadHigh  {instance=\"a\"}  2025-12-01T00:05:30Z  2025-12-01T00:10:00Z  4m30s\n\
         LoadHigh  {instance=\"a\"}  2025-12-01T00:12:30Z  2025-12-01T00:20:00Z  7m30s\n\
         LoadHigh  {instance=\"b\"}  2025-12-01T00:40:30Z  2025-12-01T00:50:00Z  9m30s\n"
    );

    let (code, json, stderr) =
        backtest(dir.path(), &url, &["--output", "json", "rules.yaml"]).await;
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&json).unwrap();
    let rule = &json["rules"][0];
    assert_eq!(rule["rule"], "LoadHigh");
    assert_eq!(rule["evaluations"], 360);
    assert_eq!(rule["notifications"], json!({"team": 6}));
    assert_eq!(rule["firing_seconds"], 1290.0);
    assert_eq!(rule["episode_list"][2]["labels"], json!({"instance": "b"}));
    assert_eq!(rule["episode_list"][2]["end_ms"], (T0 + 3000) * 1000);
}

#[tokio::test]
async fn compare_lists_the_differences_and_the_episodes_no_longer_detected() {
    let url = datasource().await.base;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.yaml"), rules("5")).unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules("8")).unwrap();
    let (code, out, stderr) =
        backtest(dir.path(), &url, &["--baseline", "old.yaml", "rules.yaml"]).await;
    assert_eq!(code, 0, "{stderr}");
    let want = "Baseline → changed:\nLoadHigh: 6 → 4 notifications, 3 → 2 episodes; 1 episode no longer detected: {instance=\"b\"} 2025-12-01T00:40:30Z–2025-12-01T00:50:00Z\n";
    assert!(out.ends_with(want), "{out}");

    // The same through git: the committed file is the baseline.
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .current_dir(dir.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    std::fs::write(dir.path().join("rules.yaml"), rules("5")).unwrap();
    git(&["add", "rules.yaml"]);
    git(&["commit", "-qm", "old"]);
    std::fs::write(dir.path().join("rules.yaml"), rules("8")).unwrap();
    let (code, out, stderr) =
        backtest(dir.path(), &url, &["--baseline-git", "HEAD", "rules.yaml"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(out.ends_with(want), "{out}");
    std::fs::write(dir.path().join("rules.yaml"), rules("5")).unwrap();
    let (_, out, _) = backtest(dir.path(), &url, &["--baseline-git", "HEAD", "rules.yaml"]).await;
    assert!(
        out.ends_with("LoadHigh: unchanged (6 notifications, 3 episodes)\n"),
        "{out}"
    );
    let (code, _, stderr) = backtest(
        dir.path(),
        &url,
        &["--baseline-git", "nosuchrev", "rules.yaml"],
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--baseline-git nosuchrev: `git -C . show nosuchrev:./rules.yaml` failed"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_sweep_prints_each_threshold_and_queries_the_other_side_once() {
    let Datasource { base: url, queries } = datasource().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules("5")).unwrap();
    let (code, out, stderr) = backtest(
        dir.path(),
        &url,
        &["--sweep", "LoadHigh:2:11:3", "rules.yaml"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    // The hour at 10 s is one chunk: one query of the comparison's other
    // side for all four thresholds.
    assert_eq!(*queries.lock().unwrap(), vec!["load".to_string()]);
    let (_, table) = out.split_once("\n\n").unwrap();
    assert_eq!(
        table,
        "Sweep of LoadHigh: load > THRESHOLD\n\n\
         THRESHOLD  EPISODES  EPISODES/WEEK  NOTIFICATIONS  NOTIFICATIONS/WEEK  FIRING  NEAR MISSES  FLAPS\n\
         2          3         504.0          6              1008.0              21m30s  1            1\n\
         5 (rule)   3         504.0          6              1008.0              21m30s  1            1\n\
         8          2         336.0          4              672.0               12m     1            1\n\
         11         0         0.0            0              0.0                 0s      0            0\n"
    );
    let (code, episodes, stderr) = backtest(
        dir.path(),
        &url,
        &[
            "--sweep",
            "LoadHigh:8:11:3",
            "--output",
            "episodes",
            "rules.yaml",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let rules: Vec<&str> = episodes
        .lines()
        .skip(1)
        .map(|l| l.split("  ").next().unwrap())
        .collect();
    assert_eq!(rules, ["LoadHigh at 8", "LoadHigh at 8"], "{episodes}");
}

#[tokio::test]
async fn bad_input_gets_a_clear_message_and_a_non_zero_exit() {
    let url = datasource().await.base;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules("5")).unwrap();
    std::fs::write(
        dir.path().join("absent.yaml"),
        "groups:\n- name: g\n  rules:\n  - alert: Gone\n    expr: absent(load)\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: 'rate(x[5m]'\n",
    )
    .unwrap();
    let closed = format!("http://127.0.0.1:{}", vigil_testkit::free_port());
    for (args, datasource, want) in [
        (
            vec!["--from", "40d", "--to", "now", "rules.yaml"],
            url.as_str(),
            "is 40d, over the limit of 31d; shorten it or raise --max-range",
        ),
        (
            vec!["--from", "soon", "rules.yaml"],
            url.as_str(),
            "--from: \"soon\" is not a time",
        ),
        (
            vec!["rules.yaml"],
            closed.as_str(),
            "cannot be reached",
        ),
        (
            vec!["broken.yaml"],
            url.as_str(),
            "broken.yaml:5:11: groups[0].rules[0].expr: could not parse expression",
        ),
        (
            vec!["--sweep", "Gone:1:2:1", "absent.yaml"],
            url.as_str(),
            "rule Gone cannot be swept: its expression `absent(load)` has no top-level comparison with a number",
        ),
        (
            vec!["--sweep", "Nope:1:2:1", "rules.yaml"],
            url.as_str(),
            "--sweep: no alerting rule Nope in the rule files; the rules are: LoadHigh",
        ),
    ] {
        let (code, _, stderr) = backtest(dir.path(), datasource, &args).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    let (_, _, stderr) = backtest(dir.path(), &closed, &["rules.yaml"]).await;
    assert!(
        stderr.contains(&format!("datasource {closed} cannot be reached"))
            && stderr
                .contains("check that --datasource names a running Prometheus-compatible server"),
        "{stderr}"
    );
}

#[tokio::test]
async fn remote_write_stores_the_backtested_alerts_series() {
    let Some(vm) = crate::support::tsdb::Tsdb::new(crate::support::tsdb::Kind::VictoriaMetrics, "")
    else {
        return;
    };
    // T0 is long ago: keep it.
    let _vm = vm.start_with(&["-retentionPeriod=100y"]).await;
    let url = datasource().await.base;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rules("5")).unwrap();
    let (code, _, stderr) = backtest(
        dir.path(),
        &url,
        &["--remote-write", &vm.write_url(), "rules.yaml"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("samples of ALERTS and ALERTS_FOR_STATE to"),
        "{stderr}"
    );
    let client = reqwest::Client::new();
    vm.flush().await;
    // One firing sample per evaluation while firing: a 05:30–09:50 and
    // 12:30–19:50, b 40:30–49:50, every 10 s; a staleness marker at each
    // resolution.
    let mut firing = std::collections::BTreeMap::new();
    for _ in 0..50 {
        let answer: Value = client
            .get(format!("{}/api/v1/query", vm.base))
            .query(&[
                ("query", "ALERTS{alertstate=\"firing\"}[2h]".to_string()),
                ("time", (T0 + 3600).to_string()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        firing = answer["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                // Staleness markers (where an episode ends) come back as NaN.
                let (stale, values): (Vec<&Value>, Vec<&Value>) = s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .partition(|v| v[1] == "NaN");
                let time = |v: &Value| v[0].as_i64().unwrap() - T0;
                (
                    s["metric"]["instance"].as_str().unwrap().to_string(),
                    (
                        values.len(),
                        time(values[0]),
                        time(values[values.len() - 1]),
                        stale.into_iter().map(time).collect::<Vec<_>>(),
                    ),
                )
            })
            .collect();
        if firing.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        firing,
        std::collections::BTreeMap::from([
            ("a".to_string(), (72, 330, 1190, vec![600, 1200])),
            ("b".to_string(), (57, 2430, 2990, vec![3000])),
        ])
    );
}

#[tokio::test]
async fn a_sweep_at_the_rules_own_value_counts_what_a_plain_backtest_counts() {
    // A warning and a critical rule of the same name share aggregation
    // groups (group_by alertname): the sweep keeps the critical rule in.
    // The critical one fires at 17:00 inside the warning's 12:30–20:00
    // episode, which adds a notification carrying the warning alert: 7,
    // where the warning rule alone would have 6.
    let url = datasource().await.base;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        "groups:\n- name: load\n  interval: 10s\n  rules:\n  - alert: LoadHigh\n    expr: load > 5\n    for: 30s\n    labels: {severity: warning}\n  - alert: LoadHigh\n    expr: load > 8\n    for: 5m\n    labels: {severity: critical}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("by-name.yaml"),
        "route: {receiver: team, group_by: [alertname], group_wait: 30s, group_interval: 1m, repeat_interval: 4h}\nreceivers:\n- name: team\n  webhook_configs: [{url: 'http://127.0.0.1:9/'}]\n",
    )
    .unwrap();
    let run = |extra: Vec<&'static str>| {
        let (dir, url) = (dir.path().to_path_buf(), url.clone());
        async move {
            let mut args = vec!["--notify-config", "by-name.yaml", "--output", "json"];
            args.extend(extra);
            args.push("rules.yaml");
            let (code, out, stderr) = backtest(&dir, &url, &args).await;
            assert_eq!(code, 0, "{stderr}");
            serde_json::from_str::<Value>(&out).unwrap()
        }
    };
    let plain = run(vec![]).await;
    let warning = &plain["rules"][0];
    assert_eq!(warning["rule"], "LoadHigh{severity=\"warning\"}");
    assert_eq!(warning["notifications_total"], 7, "{plain}");
    let swept = run(vec!["--sweep", "LoadHigh{severity=warning}:5:5:1"]).await;
    assert_eq!(
        swept["values"][0]["notifications"], warning["notifications_total"],
        "plain {plain}\nsweep {swept}"
    );
    assert_eq!(swept["values"][0]["episodes"], warning["episodes"]);
    // Without its label the name is ambiguous.
    let (code, _, stderr) = backtest(
        dir.path(),
        &url,
        &["--sweep", "LoadHigh:5:5:1", "rules.yaml"],
    )
    .await;
    assert_eq!(code, 2);
    assert!(stderr.contains("2 rules match"), "{stderr}");
}
