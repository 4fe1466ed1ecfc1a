//! The alert history never lies: at every evaluation, the open episodes in
//! the history database are exactly the alerts the evaluator holds as
//! pending or firing. Checked on simulated time (no sleeps) with the real
//! rule groups, alert state machine, alert tracker and SQL history, on
//! SQLite and on Postgres:
//!
//! - a seeded property test drives random flaps, `for`/`keep_firing_for`,
//!   reloads that add, remove, rename, relabel and move rules, restarts
//!   (graceful, and crashes that lose the writes not yet committed, part of
//!   a batch included) with state restored from the database, and
//!   database outages (writes buffered, then caught up); the invariant is
//!   checked after every step whose writes are all committed;
//! - named regression tests for the cases users reported.
//!
//! `VIGIL_HISTORY_SEED=N` replays one seed; `VIGIL_HISTORY_TRIALS` sets how
//! many seeds run (default 6 per database).

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil_evaluator::alerts::AlertState;
use vigil_evaluator::history::store::{HistoryQuery, HistoryState, HistoryWrite};
use vigil_evaluator::history::tracker::AlertTracker;
use vigil_evaluator::history::HistoryStore;
use vigil_evaluator::labels::Labels;
use vigil_evaluator::notify::alert::{Alert as NotifierAlert, Fingerprint};
use vigil_evaluator::rules::fake::{sample, FakeEngine};
use vigil_evaluator::rules::file::parse_rule_file;
use vigil_evaluator::rules::group::{GroupEnv, Rule, RuleGroup};

const SEC: i64 = 1000;
const START_MS: i64 = 1_700_000_000_000;
const RESEND: Duration = Duration::from_secs(60);

/// The rules a configuration may hold. Slot 0 is one alert in four
/// variants (as shipped, renamed, relabelled), so a reload can rename or
/// relabel it; every rule can sit in group `g1` or `g2`.
const SLOTS: &[&[&str]] = &[
    &[
        "- alert: A\n    expr: a > 0\n    for: 2s\n",
        "- alert: A2\n    expr: a > 0\n    for: 2s\n",
        "- alert: A\n    expr: a > 0\n    for: 2s\n    labels:\n      severity: page\n",
    ],
    &["- alert: B\n    expr: b > 0\n"],
    &["- alert: C\n    expr: c > 0\n    for: 1s\n    keep_firing_for: 3s\n"],
];
const EXPRS: &[&str] = &["a > 0", "b > 0", "c > 0"];
const INSTANCES: &[&str] = &["x", "y", "z"];

/// Where each slot's rule is: `None` absent, else (variant, group 1 or 2).
type Config = Vec<Option<(usize, usize)>>;

fn rule_file(config: &Config) -> String {
    let mut text = String::from("groups:\n");
    for group in 1..=2 {
        let rules: Vec<&str> = config
            .iter()
            .enumerate()
            .filter_map(|(slot, place)| match place {
                Some((variant, g)) if *g == group => Some(SLOTS[slot][*variant]),
                _ => None,
            })
            .collect();
        if rules.is_empty() {
            continue;
        }
        text.push_str(&format!("- name: g{group}\n  interval: 1s\n  rules:\n"));
        for r in rules {
            text.push_str("  ");
            text.push_str(r);
        }
    }
    text
}

fn build(config: &Config) -> Vec<RuleGroup> {
    parse_rule_file(Path::new("rules.yaml"), &rule_file(config))
        .unwrap()
        .into_iter()
        .map(|spec| RuleGroup::new(spec, Duration::from_secs(1)).unwrap())
        .collect()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap()
}

/// The episode ids of the alerts the evaluator holds as pending or firing.
fn held_open(groups: &[RuleGroup]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for g in groups {
        for entry in &g.rules {
            let Rule::Alerting(rule) = &entry.rule else {
                continue;
            };
            for a in rule.alerts() {
                if matches!(a.state, AlertState::Pending | AlertState::Firing) {
                    ids.insert(format!("{}-{}", Fingerprint::of(&a.labels), a.active_at_ms));
                }
            }
        }
    }
    ids
}

/// The ids of the open episodes of rule alerts in the history.
async fn open_in_history(store: &HistoryStore) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for state in [HistoryState::Pending, HistoryState::Firing] {
        let query = HistoryQuery {
            state: Some(state),
            limit: 10_000,
            ..HistoryQuery::default()
        };
        for e in store.query(&query).await.unwrap().items {
            assert!(e.ends_at.is_none(), "open episode {} has an end", e.id);
            ids.insert(e.id);
        }
    }
    ids
}

/// One simulated evaluator process and its history database.
struct Sim {
    rng: StdRng,
    store: HistoryStore,
    engine: FakeEngine,
    config: Config,
    groups: Vec<RuleGroup>,
    tracker: AlertTracker,
    now_ms: i64,
    db_up: bool,
    /// Writes produced but not committed yet (the writer's queue).
    queued: Vec<HistoryWrite>,
    /// Alerts handed to the notifier as resolved because their rule went
    /// away (at a reload or at start).
    resolved_for_removed_rules: Vec<NotifierAlert>,
    log: Vec<String>,
}

impl Sim {
    async fn new(url: &str, seed: u64, config: Config) -> Sim {
        let store = HistoryStore::connect(url).await.unwrap();
        let groups = build(&config);
        Sim {
            rng: StdRng::seed_from_u64(seed),
            store,
            engine: FakeEngine::new(),
            config,
            groups,
            tracker: AlertTracker::default(),
            now_ms: START_MS,
            db_up: true,
            queued: Vec::new(),
            resolved_for_removed_rules: Vec::new(),
            log: Vec::new(),
        }
    }

    /// `expr` returns one sample per instance from now on.
    fn set(&self, expr: &str, instances: &[&str]) {
        let vector = instances.iter().map(|i| sample(&[("i", i)], 1.0)).collect();
        self.engine.set(expr, self.now_ms, vector);
    }

    /// One evaluation of every group at the current time; its writes are
    /// queued.
    fn eval(&mut self) {
        let external = Labels::default();
        let env = GroupEnv {
            engine: &self.engine,
            appender: &self.engine,
            external_labels: &external,
            external_url: "",
            resend_delay: RESEND,
            clock: &vigil_evaluator::clock::SystemClock,
        };
        for g in &mut self.groups {
            g.eval(self.now_ms, &env);
            self.queued
                .extend(self.tracker.observe(g, time(self.now_ms)));
        }
    }

    /// Commits the first `n` queued writes in one transaction (all of them
    /// with `None`), when the database is up.
    async fn commit(&mut self, n: Option<usize>) {
        if !self.db_up || self.queued.is_empty() {
            return;
        }
        let n = n.unwrap_or(self.queued.len()).min(self.queued.len());
        let batch: Vec<HistoryWrite> = self.queued.drain(..n).collect();
        self.store.apply(&batch).await.unwrap();
    }

    fn reload(&mut self, config: Config) {
        let mut new = build(&config);
        for g in &mut new {
            if let Some(old) = self
                .groups
                .iter()
                .find(|o| o.file == g.file && o.name == g.name)
            {
                g.copy_state_from(old);
            }
        }
        let new_refs: Vec<&RuleGroup> = new.iter().collect();
        for old in &self.groups {
            if let Some(d) = old.dropped_by_reload(&new_refs, self.now_ms) {
                self.queued
                    .extend(self.tracker.close_dropped(&d, time(self.now_ms)));
                for (a, _) in d.alerts.iter().filter(|(a, _)| a.resolved_at_ms.is_some()) {
                    self.resolved_for_removed_rules.push(NotifierAlert {
                        labels: a.labels.clone(),
                        annotations: a.annotations.clone(),
                        starts_at: time(a.fired_at_ms.unwrap_or(a.active_at_ms)),
                        ends_at: a.resolved_at_ms.map(time),
                        generator_url: String::new(),
                        cooldown: None,
                    });
                }
            }
        }
        self.groups = new;
        self.config = config;
    }

    /// A new process: with `crash`, the queued writes are lost (the first
    /// `kept` of them were committed before it died); else they are
    /// flushed (when the database answers). State is restored from the
    /// database, as at start.
    async fn restart(&mut self, crash: bool, kept: usize) {
        if crash {
            self.commit(Some(kept)).await;
            self.queued.clear();
        } else {
            self.commit(None).await;
            if !self.db_up {
                // The writer gives up at shutdown while the database is down.
                self.queued.clear();
            }
        }
        let snapshots = if self.db_up {
            self.store.load_snapshots().await.unwrap()
        } else {
            Vec::new()
        };
        self.tracker = AlertTracker::default();
        self.groups = build(&self.config);
        for g in &mut self.groups {
            self.tracker.restore(g, &snapshots);
        }
        let (writes, resolved) = self.tracker.after_restore(&snapshots, time(self.now_ms));
        self.queued.extend(writes);
        self.resolved_for_removed_rules.extend(resolved);
    }

    /// The invariant, when every write is committed.
    async fn check(&mut self, what: &str) {
        if !self.db_up || !self.queued.is_empty() {
            return;
        }
        let held = held_open(&self.groups);
        let open = open_in_history(&self.store).await;
        if held != open {
            panic!(
                "{what}: the history's open episodes are not the alerts the evaluator holds\n\
                 held: {held:?}\nopen: {open:?}\nsteps:\n{}",
                self.log.join("\n")
            );
        }
    }

    fn random_config(&mut self) -> Config {
        (0..SLOTS.len())
            .map(|slot| {
                self.rng.random_bool(0.75).then(|| {
                    (
                        self.rng.random_range(0..SLOTS[slot].len()),
                        self.rng.random_range(1..=2),
                    )
                })
            })
            .collect()
    }

    /// One simulated second: a random event, then an evaluation.
    async fn step(&mut self) {
        self.now_ms += SEC;
        let roll = self.rng.random_range(0..100);
        let event = match roll {
            0..=44 => {
                let expr = EXPRS[self.rng.random_range(0..EXPRS.len())];
                let on: Vec<&str> = INSTANCES
                    .iter()
                    .copied()
                    .filter(|_| self.rng.random_bool(0.5))
                    .collect();
                self.set(expr, &on);
                format!("{expr} on {on:?}")
            }
            45..=54 => {
                let config = self.random_config();
                self.reload(config.clone());
                format!("reload to {config:?}")
            }
            55..=59 => {
                self.restart(false, 0).await;
                "graceful restart".to_string()
            }
            60..=66 => {
                let kept = self.rng.random_range(0..=self.queued.len());
                let queued = self.queued.len();
                self.restart(true, kept).await;
                format!("kill -9 with {kept} of {queued} queued writes committed")
            }
            67..=71 if self.db_up => {
                self.db_up = false;
                "database down".to_string()
            }
            72..=81 if !self.db_up => {
                self.db_up = true;
                "database back".to_string()
            }
            _ => "nothing".to_string(),
        };
        self.eval();
        // The writer commits in batches of its own: sometimes all that is
        // queued, sometimes part of it.
        if self.rng.random_bool(0.6) {
            self.commit(None).await;
        } else {
            let n = self.rng.random_range(0..=self.queued.len());
            self.commit(Some(n)).await;
        }
        let line = format!(
            "t={}s {event}; held {:?}",
            (self.now_ms - START_MS) / SEC,
            held_open(&self.groups)
        );
        self.log.push(line.clone());
        self.check(&line).await;
    }

    /// Database back, everything committed, one more evaluation: the
    /// invariant must hold now whatever happened before.
    async fn settle(&mut self) {
        self.db_up = true;
        self.now_ms += SEC;
        self.eval();
        self.commit(None).await;
        self.log.push("settled".to_string());
        self.check("after settling").await;
    }
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("VIGIL_HISTORY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let trials = std::env::var("VIGIL_HISTORY_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6u64);
    (1..=trials).collect()
}

async fn episodes_follow_the_alerts_through_random_faults(url: String) {
    for seed in seeds() {
        // A fresh database per seed: the history of one run only.
        let url = fresh(&url, seed).await;
        let all: Config = vec![Some((0, 1)), Some((0, 1)), Some((0, 2))];
        let mut sim = Sim::new(&url, seed, all).await;
        eprintln!("history invariant: seed {seed} (VIGIL_HISTORY_SEED={seed} replays it)");
        for _ in 0..150 {
            sim.step().await;
        }
        sim.settle().await;
        sim.store.database().close().await;
    }
}

/// `url` for seed `seed`: the same SQLite directory with its own file, or
/// a Postgres database cleared of the previous seed's rows.
async fn fresh(url: &str, seed: u64) -> String {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return format!("sqlite://{path}.{seed}");
    }
    let store = HistoryStore::connect(url).await.unwrap();
    for table in ["alert_events", "alerts", "alert_state"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(store.database().pool())
            .await
            .unwrap();
    }
    store.database().close().await;
    url.to_string()
}

// ------------------------------------------------------------ regressions

async fn sim(url: &str, config: Config) -> Sim {
    Sim::new(url, 0, config).await
}

async fn episode_state(sim: &Sim, rule: &str) -> Vec<(String, Option<String>, bool)> {
    let query = HistoryQuery {
        rule: Some(rule.to_string()),
        limit: 100,
        ..HistoryQuery::default()
    };
    let mut out: Vec<(String, Option<String>, bool)> = sim
        .store
        .query(&query)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| {
            (
                e.state.as_str().to_string(),
                e.end_reason,
                e.ends_at.is_some(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn tick(sim: &mut Sim, seconds: usize) {
    for _ in 0..seconds {
        sim.now_ms += SEC;
        sim.eval();
        sim.commit(None).await;
        sim.check("tick").await;
    }
}

/// Pending, then cleared before `for` elapsed: the episode closes as
/// inactive with its end time (it used to stay `pending` forever).
async fn a_pending_alert_that_clears_closes_its_episode(url: String) {
    let mut sim = sim(&url, vec![Some((0, 1)), None, None]).await;
    sim.set("a > 0", &["x"]);
    tick(&mut sim, 1).await;
    assert_eq!(
        episode_state(&sim, "A").await,
        vec![("pending".to_string(), None, false)]
    );
    sim.set("a > 0", &[]);
    tick(&mut sim, 1).await;
    assert_eq!(
        episode_state(&sim, "A").await,
        vec![("inactive".to_string(), None, true)]
    );
}

/// A firing alert whose rule a reload removes: resolved once for the
/// notifier, and its episode closed with the reason.
async fn a_rule_removed_by_reload_resolves_its_alert_and_closes_the_episode(url: String) {
    let mut sim = sim(&url, vec![Some((0, 1)), Some((0, 1)), None]).await;
    sim.set("b > 0", &["x", "y"]);
    tick(&mut sim, 2).await;
    sim.reload(vec![Some((0, 1)), None, None]);
    tick(&mut sim, 2).await;
    let removed = Some("rule removed or changed by a configuration reload".to_string());
    assert_eq!(
        episode_state(&sim, "B").await,
        vec![
            ("resolved".to_string(), removed.clone(), true),
            ("resolved".to_string(), removed, true)
        ]
    );
    assert_eq!(sim.resolved_for_removed_rules.len(), 2);
    assert!(sim
        .resolved_for_removed_rules
        .iter()
        .all(|a| a.ends_at == Some(time(START_MS + 2 * SEC))));
}

/// Renamed, relabelled or moved to another group while pending or firing:
/// the old alert's episode closes (the new rule's alert starts its own).
async fn renamed_relabelled_and_moved_rules_close_the_old_episode(url: String) {
    let mut sim = sim(&url, vec![Some((0, 1)), None, None]).await;
    sim.set("a > 0", &["x"]);
    tick(&mut sim, 4).await;
    for config in [
        vec![Some((1, 1)), None, None],
        vec![Some((2, 1)), None, None],
        vec![Some((2, 2)), None, None],
    ] {
        sim.reload(config);
        tick(&mut sim, 4).await;
    }
    let closed = |n| {
        vec![
            (
                "resolved".to_string(),
                Some("rule removed or changed by a configuration reload".to_string()),
                true
            );
            n
        ]
    };
    // A (x) then A{severity} in g1 then A{severity} moved to g2 (sorted).
    let mut a = vec![("firing".to_string(), None, false)];
    a.extend(closed(2));
    assert_eq!(episode_state(&sim, "A").await, a);
    assert_eq!(episode_state(&sim, "A2").await, closed(1));
}

/// Restarted with the alert's rule gone from the configuration: its
/// episode closes at start and the firing alert is resolved once.
async fn a_rule_gone_at_restart_closes_its_episode(url: String) {
    let mut sim = sim(&url, vec![None, Some((0, 1)), None]).await;
    sim.set("b > 0", &["x"]);
    tick(&mut sim, 2).await;
    sim.config = vec![None, None, Some((0, 1))];
    sim.restart(false, 0).await;
    tick(&mut sim, 1).await;
    assert_eq!(
        episode_state(&sim, "B").await,
        vec![(
            "resolved".to_string(),
            Some("rule no longer configured when the evaluator started".to_string()),
            true
        )]
    );
    assert_eq!(sim.resolved_for_removed_rules.len(), 1);
    assert!(sim.store.load_snapshots().await.unwrap().is_empty());
}

/// Killed after its episode was committed but before the saved state was:
/// the restarted evaluator does not hold the alert, so the episode is
/// closed at start (and a new one starts if the alert still holds).
async fn an_episode_whose_saved_state_was_lost_closes_at_restart(url: String) {
    let mut sim = sim(&url, vec![None, Some((0, 1)), None]).await;
    sim.set("b > 0", &["x"]);
    sim.now_ms += SEC;
    sim.eval();
    // Episode and transition committed, the snapshot lost.
    sim.commit(Some(2)).await;
    sim.now_ms += SEC;
    sim.restart(true, 0).await;
    sim.set("b > 0", &[]);
    tick(&mut sim, 1).await;
    assert_eq!(
        episode_state(&sim, "B").await,
        vec![(
            "resolved".to_string(),
            Some("evaluator restarted without the alert's saved state".to_string()),
            true
        )]
    );
}

/// A database outage: writes are queued, the evaluation goes on, and once
/// the database answers the history catches up to the same truth.
async fn an_outage_is_caught_up(url: String) {
    let mut sim = sim(&url, vec![Some((0, 1)), Some((0, 1)), None]).await;
    sim.set("a > 0", &["x"]);
    sim.set("b > 0", &["y"]);
    tick(&mut sim, 1).await;
    sim.db_up = false;
    sim.set("a > 0", &[]);
    sim.set("b > 0", &[]);
    tick(&mut sim, 3).await;
    assert!(!sim.queued.is_empty());
    sim.db_up = true;
    tick(&mut sim, 1).await;
    assert_eq!(
        episode_state(&sim, "A").await,
        vec![("inactive".to_string(), None, true)]
    );
    assert_eq!(
        episode_state(&sim, "B").await,
        vec![("resolved".to_string(), None, true)]
    );
}

on_both!(
    episodes_follow_the_alerts_through_random_faults,
    a_pending_alert_that_clears_closes_its_episode,
    a_rule_removed_by_reload_resolves_its_alert_and_closes_the_episode,
    renamed_relabelled_and_moved_rules_close_the_old_episode,
    a_rule_gone_at_restart_closes_its_episode,
    an_episode_whose_saved_state_was_lost_closes_at_restart,
    an_outage_is_caught_up,
);
