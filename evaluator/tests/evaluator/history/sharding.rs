//! Rule-group sharding with real processes on the real Postgres: three
//! `vigil-evaluator` replicas with `fleet.sharding` share tens of rule
//! groups evaluated every second; one (chosen by the seed) is killed with
//! `SIGKILL`, a fourth joins. Every group writes one recording-rule sample
//! per evaluation by remote write to a real VictoriaMetrics (each replica
//! to a URL with its own `extra_label=replica=...`, so the samples say who
//! wrote them), and holds one alert on a series in VictoriaMetrics (the
//! replicas' datasource), firing until the test turns it off after the
//! moves: a webhook receiver must see each alert notified firing once and
//! resolved once.
//!
//! Checked: after each change every group is held by exactly one live
//! replica (on the `leases` table, the holder id carrying the process id)
//! within generous bounds (the measured times are printed); no group's
//! evaluation slot was written twice (by one replica or two); no group's
//! series has a gap longer than two intervals (a new owner evaluates the
//! slots nobody evaluated; a killed replica may lose the one slot still in
//! its remote-write queue); every alert's firing notification arrived
//! once and none resolved. `SHARDING_GROUPS` sets the number of groups
//! (the 300-group run: `benches/sharding.sh`).

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rand::Rng;
use vigil_testkit::{free_port, ChildGuard};

use crate::support::db::TestDb;
use crate::support::faults::{rng, seed_from};
use crate::support::ha::Hook;
use crate::support::process::{kill9, signal, start_evaluator, wait_for_exit};
use crate::support::tsdb::{Kind, Tsdb};
use crate::support::wait;

/// A dead replica's groups are taken within the lease plus a heartbeat
/// (2.5 s), and the new owner evaluates the slots nobody evaluated
/// meanwhile: no group's series misses more than the one slot a killed
/// replica may have evaluated and not sent yet.
const INTERVAL: Duration = Duration::from_secs(1);
const FLEET: &str = "fleet: {sharding: true, heartbeat: 500ms, lease_duration: 2s}";
/// Far beyond the two intervals the design promises: the machine is shared.
const BOUND: Duration = Duration::from_secs(60);

fn groups() -> usize {
    std::env::var("SHARDING_GROUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

/// `rules.yaml`: per group one recording rule (`shard:evaluated`, labelled
/// with its group) and one alert that fires 2 s after the switch in
/// VictoriaMetrics is on and ends when it goes off.
fn rules(n: usize) -> String {
    let mut text = String::from("groups:\n");
    for i in 0..n {
        text.push_str(&format!(
            "- name: g{i}\n  rules:\n  - record: shard:evaluated\n    expr: vector(1)\n    labels: {{group: g{i}}}\n  - alert: Sharded\n    expr: sharding_switch == 1\n    for: 2s\n    labels: {{series: g{i}}}\n"
        ));
    }
    text
}

/// Keeps `sharding_switch` in VictoriaMetrics (pushed every 250 ms, as
/// a scrape would write it): 1 until the test turns it off.
fn switch(vm: &Tsdb) -> Arc<AtomicBool> {
    let on = Arc::new(AtomicBool::new(true));
    let state = Arc::clone(&on);
    let url = format!("{}/api/v1/import/prometheus", vm.base);
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let body = format!(
                "sharding_switch {}\n",
                u8::from(state.load(Ordering::SeqCst))
            );
            let _ = client.post(&url).body(body).send().await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    on
}

// ---- the samples written: (group, replica, timestamp) each ----

/// Every `shard:evaluated` sample VictoriaMetrics holds, as (group,
/// replica, timestamp in ms), from its raw export (no deduplication, no
/// step alignment).
async fn written(vm: &Tsdb) -> Vec<(String, String, i64)> {
    vm.flush().await;
    let export = reqwest::Client::new()
        .get(format!("{}/api/v1/export", vm.base))
        .query(&[("match[]", "shard:evaluated")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut out = Vec::new();
    for line in export.lines().filter(|l| !l.trim().is_empty()) {
        let series: serde_json::Value = serde_json::from_str(line).unwrap();
        let label = |name: &str| series["metric"][name].as_str().unwrap_or("").to_string();
        let (group, replica) = (label("group"), label("replica"));
        for t in series["timestamps"].as_array().unwrap() {
            out.push((group.clone(), replica.clone(), t.as_i64().unwrap()));
        }
    }
    out
}

// ---- the fleet ----

/// The last lines of every replica's log, for a failure message.
fn tails(root: &Path) -> String {
    let mut out = String::new();
    for name in ["r1", "r2", "r3", "r4"] {
        let log = crate::support::process::read_log(&root.join(name), "evaluator.log");
        let lines: Vec<&str> = log.lines().collect();
        out.push_str(&format!("--- {name}\n"));
        for line in &lines[lines.len().saturating_sub(15)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

struct Replica {
    name: String,
    listen: u16,
    child: ChildGuard,
}

fn spawn(root: &Path, name: &str, db: &TestDb, vm: &Tsdb, hook: u16) -> Replica {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("notify.yaml"),
        format!(
            "route: {{receiver: hook, group_by: [alertname, series], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\nreceivers:\n- name: hook\n  webhook_configs: [{{url: 'http://127.0.0.1:{hook}/hook/{name}', send_resolved: true}}]\n"
        ),
    )
    .unwrap();
    // Every replica reads the rule file at one path: a group is its file
    // and name.
    let config = dir.join("vigil.yaml");
    let listen = free_port();
    std::fs::write(
        &config,
        format!(
            "global: {{evaluation_interval: {}s}}\ndatasource: {{url: '{}'}}\nrule_files: ['{}']\nnotify_config_file: notify.yaml\nweb: {{listen: '127.0.0.1:{}'}}\nremote_write: [{{url: '{}?extra_label=replica={name}', queue_config: {{batch_send_deadline: 50ms}}}}]\n{FLEET}\n",
            INTERVAL.as_secs(),
            vm.base,
            root.join("rules.yaml").display(),
            listen,
            vm.write_url(),
        ),
    )
    .unwrap();
    Replica {
        name: name.to_string(),
        listen,
        child: start_evaluator(&config, &dir, "evaluator.log", Some(&db.url)),
    }
}

/// Who holds each group's lease now, by replica name (`?` for a holder
/// that is none of `replicas`).
async fn holders(db: &TestDb, replicas: &[&Replica]) -> BTreeMap<String, String> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, holder FROM leases WHERE name LIKE 'group/%' \
         AND expires_at > CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap_or_default();
    rows.into_iter()
        .map(|(lease, holder)| {
            let pid = holder.split('/').nth(1).unwrap_or("").to_string();
            let who = replicas
                .iter()
                .find(|r| r.child.0.id().to_string() == pid)
                .map_or("?".to_string(), |r| r.name.clone());
            (lease, who)
        })
        .collect()
}

/// Waits until each of `n` groups is held by one of `alive` and
/// `settled` holds of the assignment; returns how long it took.
async fn wait_for_owners(
    db: &TestDb,
    alive: &[&Replica],
    n: usize,
    what: &str,
    settled: impl Fn(&BTreeMap<String, String>) -> bool,
) -> Duration {
    let started = Instant::now();
    let done = wait::until(BOUND, Duration::from_millis(100), || async {
        let h = holders(db, alive).await;
        h.len() == n && h.values().all(|w| w != "?") && settled(&h)
    })
    .await;
    let h = holders(db, alive).await;
    assert!(
        done,
        "{what}: groups not all held by live replicas within {BOUND:?}: {h:?}"
    );
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_move_on_kill_and_join_without_double_evaluation_or_renotification() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("SKIPPED: sharding needs Postgres (DATABASE_URL)");
        return;
    };
    let Some(vm) = Tsdb::new(Kind::VictoriaMetrics, "") else {
        eprintln!("SKIPPED: sharding writes to VictoriaMetrics (Debian victoria-metrics)");
        return;
    };
    let _vm_process = vm.start().await;
    let seed = seed_from("VIGIL_SHARDING_SEED", "sharding");
    let mut rng = rng(seed);
    let n = groups();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("rules.yaml"), rules(n)).unwrap();
    let hook = Hook::start().await;
    let switch_on = switch(&vm);
    let mut replicas: Vec<Replica> = ["r1", "r2", "r3"]
        .iter()
        .map(|name| spawn(root.path(), name, &db, &vm, hook.port))
        .collect();

    // 1. Three members split the groups.
    let refs: Vec<&Replica> = replicas.iter().collect();
    let split = wait_for_owners(&db, &refs, n, "start", |h| {
        h.values().collect::<BTreeSet<_>>().len() == 3
    })
    .await;
    eprintln!("sharding: {n} groups split over 3 replicas {split:?} after start");
    let all_fired = wait::until_sync(BOUND, Duration::from_millis(200), || {
        (0..n).all(|i| hook.told(&format!("g{i}"), "firing"))
    })
    .await;
    if !all_fired {
        let untold: Vec<String> = (0..n)
            .map(|i| format!("g{i}"))
            .filter(|g| !hook.told(g, "firing"))
            .collect();
        let logs = tails(root.path());
        // Kept for a look at the whole logs.
        let kept = root.keep();
        panic!(
            "{} of {n} groups' alerts notified within {BOUND:?}, not {untold:?} (logs in {}):\n{logs}",
            n - untold.len(),
            kept.display()
        );
    }

    // 2. kill -9 one of them (the seed picks which).
    let victim = rng.random_range(0..3);
    let victim_name = replicas[victim].name.clone();
    let before = holders(&db, &refs).await;
    let moving = before.values().filter(|w| **w == victim_name).count();
    let leader: Option<String> =
        sqlx::query_scalar("SELECT holder FROM leases WHERE name = 'notification-leader'")
            .fetch_optional(&db.pool)
            .await
            .unwrap();
    let pid = replicas[victim].child.0.id().to_string();
    let killed_the_leader = leader.is_some_and(|h| h.split('/').nth(1) == Some(pid.as_str()));
    kill9(&mut replicas[victim].child);
    let killed_at = Instant::now();
    let killed_ms = chrono::Utc::now().timestamp_millis();
    let survivors: Vec<&Replica> = replicas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, r)| r)
        .collect();
    let failover = wait_for_owners(&db, &survivors, n, "after the kill", |_| true).await;
    eprintln!(
        "sharding: killed {victim_name} (seed {seed}), its {moving} groups held by the others after {failover:?}"
    );

    // 3. A fourth joins and takes its share.
    let fourth = spawn(root.path(), "r4", &db, &vm, hook.port);
    let joined_at = Instant::now();
    let mut alive = survivors.clone();
    alive.push(&fourth);
    let join = wait_for_owners(&db, &alive, n, "after the join", |h| {
        h.values().any(|w| w == "r4")
    })
    .await;
    eprintln!("sharding: r4 holds groups after {join:?}");
    // Two more intervals for the moved groups to evaluate and notify.
    tokio::time::sleep(INTERVAL * 3).await;
    let after = holders(&db, &alive).await;
    assert_eq!(after.len(), n, "{after:?}");
    // Every replica's API says who owns each group, as the leases do.
    let rules: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{}/api/v1/rules", fourth.listen))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let owners: Vec<&str> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["owner"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(owners.len(), n);
    assert!(owners.iter().all(|o| !o.is_empty()), "{owners:?}");

    // 4. The condition ends: every alert is notified resolved.
    switch_on.store(false, Ordering::SeqCst);
    let all_resolved = wait::until_sync(BOUND, Duration::from_millis(200), || {
        (0..n).all(|i| hook.told(&format!("g{i}"), "resolved"))
    })
    .await;
    if !all_resolved {
        let untold: Vec<String> = (0..n)
            .map(|i| format!("g{i}"))
            .filter(|g| !hook.told(g, "resolved"))
            .collect();
        let logs = tails(root.path());
        let kept = root.keep();
        panic!(
            "{} of {n} groups' alerts notified resolved within {BOUND:?}, not {untold:?} (seed {seed}; logs in {}):\n{logs}",
            n - untold.len(),
            kept.display()
        );
    }
    // A moment for a second notification, if one were coming.
    tokio::time::sleep(INTERVAL * 3).await;

    // Stop the rest cleanly (leases released, remote-write queues sent).
    for r in alive.iter() {
        signal(&r.child, "TERM");
    }
    let mut rest: Vec<Replica> = replicas
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, r)| r)
        .collect();
    rest.push(fourth);
    for r in &mut rest {
        assert!(wait_for_exit(&mut r.child).is_some(), "{} stops", r.name);
    }

    // No evaluation slot of a group evaluated by two replicas.
    let samples = written(&vm).await;
    let mut by_slot: BTreeMap<(String, i64), Vec<String>> = BTreeMap::new();
    for (group, replica, t) in &samples {
        by_slot
            .entry((group.clone(), *t))
            .or_default()
            .push(replica.clone());
    }
    let doubled: Vec<_> = by_slot.iter().filter(|(_, r)| r.len() > 1).collect();
    assert!(
        doubled.is_empty(),
        "slots written twice (group, time: replicas): {doubled:?}"
    );
    let evaluated: BTreeSet<&String> = samples.iter().map(|s| &s.0).collect();
    assert_eq!(evaluated.len(), n, "every group evaluated");
    // The longest gap in any group's series: of the killed replica's
    // groups (it may have evaluated a slot and not sent it yet) and of the
    // others.
    let victims: BTreeSet<String> = before
        .iter()
        .filter(|(_, w)| **w == victim_name)
        .filter_map(|(lease, _)| lease.rsplit('/').next().map(str::to_string))
        .collect();
    let (mut gap, mut gap_victims) = (0, 0);
    // The gaps over one interval: (group, last sample before, first after,
    // with who wrote each).
    let mut missed = Vec::new();
    for g in &evaluated {
        let slots: Vec<(&i64, &Vec<String>)> = by_slot
            .iter()
            .filter(|((group, _), _)| group == *g)
            .map(|((_, t), r)| (t, r))
            .collect();
        for pair in slots.windows(2) {
            let ((t0, r0), (t1, r1)) = (pair[0], pair[1]);
            if t1 - t0 > INTERVAL.as_millis() as i64 {
                missed.push(format!("{g}: {t0} ({r0:?}) .. {t1} ({r1:?})"));
            }
        }
        let longest = slots.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap_or(0);
        if victims.contains(*g) {
            gap_victims = gap_victims.max(longest);
        } else {
            gap = gap.max(longest);
        }
    }
    eprintln!(
        "sharding: longest gap of the killed replica's groups {gap_victims} ms, of the others {gap} ms; {} gaps over one interval (killed {victim_name} at {killed_ms} ms):\n{}",
        missed.len(),
        missed.join("\n")
    );
    let gap = gap.max(gap_victims);
    assert!(
        gap <= 2 * INTERVAL.as_millis() as i64,
        "a group's series has a gap of {gap} ms, more than two intervals (seed {seed}):\n{}",
        tails(root.path())
    );
    eprintln!(
        "sharding: {} samples, longest gap in a group's evaluations {gap} ms (interval {} ms); kill at +{:?}, join at +{:?}",
        samples.len(),
        INTERVAL.as_millis(),
        killed_at.elapsed(),
        joined_at.elapsed()
    );

    // Every alert notified firing exactly once, and resolved exactly once;
    // a killed leader's deliveries in flight are sent again by the next
    // leader, with the first one's key and marked as a re-send.
    let mut not_once = Vec::new();
    for i in 0..n {
        let series = format!("g{i}");
        for status in ["firing", "resolved"] {
            let told = hook.about(&series, status);
            let marked_repeats = told.split_first().is_some_and(|(first, repeats)| {
                repeats
                    .iter()
                    .all(|r| killed_the_leader && r.redelivery && r.key == first.key)
            });
            if told.is_empty() || !marked_repeats {
                not_once.push(format!("{series} {status}: {told:?}"));
            }
        }
    }
    if !not_once.is_empty() {
        let logs = tails(root.path());
        let kept = root.keep();
        panic!(
            "alerts not notified exactly once (seed {seed}; logs in {}):\n{}\n{logs}",
            kept.display(),
            not_once.join("\n")
        );
    }
    // What a replica that does not lead queued for the leader is a first
    // send, not a re-send (only the killed leader's claims may be).
    let marked = hook.got().iter().filter(|g| g.redelivery).count();
    eprintln!(
        "sharding: killed the notification leader: {killed_the_leader}; re-send marks: {marked}"
    );
    if !killed_the_leader {
        assert_eq!(marked, 0, "no notification marked as a re-send");
    }
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_owns_no_group_is_ready_and_both_name_the_owner() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("SKIPPED: sharding needs Postgres (DATABASE_URL)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("rules.yaml"), rules(1)).unwrap();
    let Some(vm) = Tsdb::new(Kind::VictoriaMetrics, "") else {
        eprintln!("SKIPPED: sharding writes to VictoriaMetrics (Debian victoria-metrics)");
        return;
    };
    let _vm_process = vm.start().await;
    let hook = Hook::start().await;
    let _switch_on = switch(&vm);
    let replicas: Vec<Replica> = ["r1", "r2"]
        .iter()
        .map(|name| spawn(root.path(), name, &db, &vm, hook.port))
        .collect();
    let refs: Vec<&Replica> = replicas.iter().collect();
    wait_for_owners(&db, &refs, 1, "start", |_| true).await;
    let owners = wait::poll(BOUND, Duration::from_millis(200), || async {
        let mut owners = Vec::new();
        for r in &replicas {
            let base = format!("http://127.0.0.1:{}", r.listen);
            let ready = reqwest::get(format!("{base}/-/ready"))
                .await
                .is_ok_and(|r| r.status().is_success());
            let rules: serde_json::Value = reqwest::get(format!("{base}/api/v1/rules"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let owner = rules["data"]["groups"][0]["owner"].as_str()?.to_string();
            if !ready || owner.is_empty() {
                return None;
            }
            owners.push(owner);
        }
        Some(owners)
    })
    .await;
    let owners =
        owners.unwrap_or_else(|| panic!("both ready, with an owner:\n{}", tails(root.path())));
    assert_eq!(owners[0], owners[1], "one owner, as both see it");
    db.finish().await;
}
