//! High-availability fault injection with real processes: two
//! `vigil-evaluator` replicas on one fresh Postgres database, a scrape
//! target the test flips, and a webhook receiver that knows which replica
//! sent each request (each replica posts to its own path), keeps the
//! headers that identify a re-send (`Idempotency-Key`,
//! `X-Vigil-Redelivery`) and can answer slowly. The leader is found in the
//! `leases` table (its holder id carries the process id), so failover times
//! are measured on the database, not guessed from logs.
//!
//! Seeded trials ([`Fault::random`]): kill -9 the leader at a random point
//! after an alert turns firing or resolved, or while the receiver holds a
//! slow delivery, or freeze it (`SIGSTOP`) for longer than two lease
//! periods and resume it (`SIGCONT`). [`Ha::trial`] runs one and asserts
//! what every trial must hold.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::Value;
use vigil_testkit::{free_port, ChildGuard};

use super::db::TestDb;
use super::process::{
    kill9, read_log, serve, signal, start_evaluator, value_high_rules, write_config, Target,
};
use super::wait;

/// The default lease (5 s): a frozen leader must be replaced within two.
pub const LEASE: Duration = Duration::from_secs(5);
/// How long a trial may wait for its notifications after the fault.
pub const RECOVERY: Duration = Duration::from_secs(60);
/// Whether every re-send must carry `X-Vigil-Redelivery: true` and the
/// first send's `Idempotency-Key` (the delivery change that adds them).
/// Without it, duplicates are counted and their keys compared when present.
pub const REQUIRE_REDELIVERY_MARKS: bool = true;

/// The seed: `VIGIL_HA_SEED` when set, else the clock; printed so a failing
/// run can be repeated (as far as process timing allows).
pub fn seed(test: &str) -> u64 {
    super::faults::seed_from("VIGIL_HA_SEED", test)
}

/// How many trials: `VIGIL_HA_TRIALS` when set, else `default`.
pub fn trials(default: usize) -> usize {
    super::faults::trials_from("VIGIL_HA_TRIALS", default)
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    /// The replica that sent it (its URL path).
    pub replica: String,
    pub at: Instant,
    /// `series` label and status of each alert.
    pub alerts: Vec<(String, String)>,
    pub key: Option<String>,
    pub redelivery: bool,
    /// Answered 200 (false: the sender went away while it was held).
    pub answered: bool,
}

#[derive(Default)]
struct HookState {
    got: Mutex<Vec<Got>>,
    delay_ms: AtomicU64,
}

/// The webhook receiver: `POST /hook/{replica}`.
pub struct Hook {
    state: Arc<HookState>,
    pub port: u16,
}

impl Hook {
    pub async fn start() -> Hook {
        let state = Arc::new(HookState::default());
        let app = Router::new()
            .route("/hook/{replica}", post(receive))
            .with_state(Arc::clone(&state));
        let port = serve(app).await;
        Hook { state, port }
    }

    /// Holds every request this long before answering (zero: at once).
    pub fn delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn got(&self) -> Vec<Got> {
        self.state.got.lock().unwrap().clone()
    }

    /// Requests telling `series` is `status`.
    pub fn about(&self, series: &str, status: &str) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| g.alerts.iter().any(|(s, st)| s == series && st == status))
            .collect()
    }

    pub fn told(&self, series: &str, status: &str) -> bool {
        !self.about(series, status).is_empty()
    }
}

async fn receive(
    State(s): State<Arc<HookState>>,
    UrlPath(replica): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let header = |name: &str| super::faults::header(&headers, name);
    let alerts = super::faults::series_and_status(&body);
    let index = {
        let mut got = s.got.lock().unwrap();
        got.push(Got {
            replica,
            at: Instant::now(),
            alerts,
            key: header("idempotency-key"),
            redelivery: header("x-vigil-redelivery").is_some_and(|v| v == "true"),
            answered: false,
        });
        got.len() - 1
    };
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    s.got.lock().unwrap()[index].answered = true;
    StatusCode::OK
}

/// One evaluator process of the pair.
pub struct Replica {
    pub name: String,
    pub dir: PathBuf,
    pub listen: u16,
    child: ChildGuard,
    frozen: bool,
}

impl Replica {
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    pub fn log(&self) -> String {
        read_log(&self.dir, "evaluator.log")
    }
}

/// The fault of one trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// kill -9 the leader this long after the alert turns firing (or, with
    /// `resolving`, resolved) at the target; the killed process is started
    /// again as the standby.
    Kill { after: Duration, resolving: bool },
    /// kill -9 the leader while the receiver holds its firing delivery.
    KillMidDelivery,
    /// SIGSTOP the leader this long after the alert turns firing, for
    /// `frozen` (more than two lease periods), resolving the alert while it
    /// is frozen; then SIGCONT.
    Freeze { after: Duration, frozen: Duration },
    /// SIGSTOP the leader while the receiver holds its firing delivery (the
    /// answer reaches it while it is frozen), for `frozen`; then SIGCONT.
    /// The new leader re-sends; the resumed one's late outcome and log
    /// writes carry a stale epoch.
    FreezeMidDelivery { frozen: Duration },
}

impl Fault {
    /// Trial `i` of a seeded run: every fourth a freeze (at a random point
    /// and mid-delivery in turn), every fourth a kill mid-delivery, the
    /// others kills at random points.
    pub fn random(i: usize, rng: &mut StdRng) -> Fault {
        let after = Duration::from_millis(rng.random_range(0..2500));
        let frozen = LEASE * 2 + Duration::from_millis(rng.random_range(1000..4000));
        match i % 8 {
            1 | 5 => Fault::KillMidDelivery,
            3 => Fault::Freeze { after, frozen },
            7 => Fault::FreezeMidDelivery { frozen },
            _ => Fault::Kill {
                after,
                resolving: rng.random_bool(0.5),
            },
        }
    }
}

/// What a trial measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub fault: Fault,
    /// From the fault to the other replica holding the lease.
    pub failover: Duration,
    /// Deliveries of the trial's alert (firing + resolved), and how many
    /// were repeats.
    pub deliveries: usize,
    pub duplicates: usize,
    /// Duplicates that carried the first one's key and the re-send mark.
    pub marked: usize,
}

/// How the replicas reach the database and when they start.
#[derive(Debug, Clone)]
pub struct HaSetup {
    /// The replicas' `DATABASE_URL` (the test's own queries go straight
    /// to the database).
    pub database_url: String,
    /// Lines added to each replica's `storage:` section.
    pub storage: Vec<String>,
    /// Both replicas at once (else `r2` once `r1` leads).
    pub together: bool,
}

/// Two replicas, their target, receiver and database.
pub struct Ha {
    pub root: PathBuf,
    pub target: Target,
    pub hook: Hook,
    pub db: TestDb,
    pub replicas: Vec<Replica>,
    setup: HaSetup,
}

impl Ha {
    /// Starts replica `r1`, waits for it to lead, then `r2`.
    pub async fn start(root: &Path, db: TestDb) -> Ha {
        let setup = HaSetup {
            database_url: db.url.clone(),
            storage: Vec::new(),
            together: false,
        };
        Ha::start_with(root, db, setup).await
    }

    /// Starts both replicas as `setup` says; returns once one leads and
    /// both are ready.
    pub async fn start_with(root: &Path, db: TestDb, setup: HaSetup) -> Ha {
        let target = Target::start().await;
        let hook = Hook::start().await;
        let together = setup.together;
        let mut ha = Ha {
            root: root.to_path_buf(),
            target,
            hook,
            db,
            replicas: Vec::new(),
            setup,
        };
        let first = ha.spawn("r1");
        ha.replicas.push(first);
        if !together {
            ha.wait_for_a_leader().await;
        }
        let second = ha.spawn("r2");
        ha.replicas.push(second);
        if together {
            ha.wait_for_a_leader().await;
        }
        for i in 0..2 {
            let (listen, what) = (ha.replicas[i].listen, format!("r{} ready", i + 1));
            ha.wait_async(&what, Duration::from_secs(60), || async move {
                reqwest::get(format!("http://127.0.0.1:{listen}/-/ready"))
                    .await
                    .is_ok_and(|r| r.status().is_success())
            })
            .await;
        }
        ha
    }

    async fn wait_for_a_leader(&self) {
        self.wait_async("a replica to lead", Duration::from_secs(60), || async {
            self.lease_holder().await.is_some()
        })
        .await;
    }

    fn spawn(&self, name: &str) -> Replica {
        let dir = self.root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let listen = free_port();
        let notify = format!(
            "route: {{receiver: hook, group_by: [alertname, series], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\nreceivers:\n- name: hook\n  webhook_configs: [{{url: 'http://127.0.0.1:{}/hook/{name}', send_resolved: true}}]\n",
            self.hook.port
        );
        let config = write_config(
            &dir,
            self.target.port,
            listen,
            &value_high_rules("0s", ""),
            &notify,
        );
        if !self.setup.storage.is_empty() {
            let mut text = std::fs::read_to_string(&config).unwrap();
            text.push_str("storage:\n");
            for line in &self.setup.storage {
                text.push_str(&format!("  {line}\n"));
            }
            std::fs::write(&config, text).unwrap();
        }
        let child = start_evaluator(
            &config,
            &dir,
            "evaluator.log",
            Some(&self.setup.database_url),
        );
        Replica {
            name: name.to_string(),
            dir,
            listen,
            child,
            frozen: false,
        }
    }

    /// The process id holding a live notification-leader lease, per the
    /// database's clock.
    pub async fn lease_holder(&self) -> Option<(u32, i64)> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT holder, epoch FROM leases WHERE name = 'notification-leader' \
             AND expires_at > CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)",
        )
        .fetch_optional(&self.db.pool)
        .await
        .ok()
        .flatten();
        let (holder, epoch) = row?;
        let pid = holder.split('/').nth(1)?.parse().ok()?;
        Some((pid, epoch))
    }

    async fn wait(&self, what: &str, limit: Duration, mut done: impl FnMut(&Ha) -> bool) {
        self.wait_async(what, limit, || std::future::ready(done(self)))
            .await;
    }

    async fn wait_async<F, Fut>(&self, what: &str, limit: Duration, done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        assert!(
            wait::until(limit, Duration::from_millis(50), done).await,
            "timed out waiting for {what}; logs:\n{}",
            self.logs()
        );
    }

    /// The last lines of both replicas' logs.
    pub fn logs(&self) -> String {
        self.replicas
            .iter()
            .map(|r| {
                let log = r.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(60)..].join("\n");
                format!("--- {} (pid {}) ---\n{tail}\n", r.name, r.pid())
            })
            .collect()
    }

    /// Waits until a live lease holder is one of our running replicas.
    async fn current_leader(&self) -> usize {
        wait::poll(RECOVERY, Duration::from_millis(50), || async move {
            let (pid, _) = self.lease_holder().await?;
            self.replicas
                .iter()
                .position(|r| r.pid() == pid && !r.frozen)
        })
        .await
        .unwrap_or_else(|| panic!("no replica leads; logs:\n{}", self.logs()))
    }

    /// Waits until the receiver holds (or got) `series`' firing request from
    /// replica `i`.
    async fn wait_firing_sent_by(&self, series: &str, i: usize) {
        let sender = self.replicas[i].name.clone();
        self.wait(
            &format!("{series} firing held by the receiver"),
            RECOVERY,
            |ha| {
                ha.hook
                    .about(series, "firing")
                    .iter()
                    .any(|g| g.replica == sender)
            },
        )
        .await;
    }

    /// Waits until replica `other` holds the lease; the time since `since`.
    async fn failover_to(&self, other: usize, since: Instant) -> Duration {
        let pid = self.replicas[other].pid();
        wait::poll(RECOVERY, Duration::from_millis(25), || async move {
            let holds = self.lease_holder().await.is_some_and(|(p, _)| p == pid);
            holds.then(|| since.elapsed())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{} did not take over; logs:\n{}",
                self.replicas[other].name,
                self.logs()
            )
        })
    }

    /// Starts replica `i` again (its killed process is reaped on drop).
    fn restart(&mut self, i: usize) {
        let name = self.replicas[i].name.clone();
        self.replicas[i] = self.spawn(&name);
    }

    /// Runs trial `i` on its own series `t<i>`: the alert fires and
    /// resolves while `fault` hits the leader; asserts that the firing and
    /// the resolved notification were each delivered, that a frozen leader
    /// was replaced within two lease periods and sent nothing once resumed,
    /// and what can be asserted of duplicates.
    pub async fn trial(&mut self, i: usize, fault: Fault) -> Outcome {
        let series = format!("t{i}");
        let leader = self.current_leader().await;
        let other = 1 - leader;
        println!(
            "trial {i}: {fault:?}; leader {} (pid {})",
            self.replicas[leader].name,
            self.replicas[leader].pid()
        );
        let failover;
        match fault {
            Fault::Kill { after, resolving } => {
                if resolving {
                    self.target.set_series(&series, 1.0);
                    self.wait(&format!("{series} firing told"), RECOVERY, |ha| {
                        ha.hook.told(&series, "firing")
                    })
                    .await;
                    self.target.set_series(&series, 0.0);
                } else {
                    self.target.set_series(&series, 1.0);
                }
                tokio::time::sleep(after).await;
                let killed = Instant::now();
                kill9(&mut self.replicas[leader].child);
                failover = self.failover_to(other, killed).await;
                self.restart(leader);
                if !resolving {
                    self.target.set_series(&series, 0.0);
                }
            }
            Fault::KillMidDelivery => {
                self.hook.delay(Duration::from_secs(5));
                self.target.set_series(&series, 1.0);
                self.wait_firing_sent_by(&series, leader).await;
                let killed = Instant::now();
                kill9(&mut self.replicas[leader].child);
                self.hook.delay(Duration::ZERO);
                failover = self.failover_to(other, killed).await;
                self.restart(leader);
                self.target.set_series(&series, 0.0);
            }
            Fault::Freeze { .. } | Fault::FreezeMidDelivery { .. } => {
                self.target.set_series(&series, 1.0);
                let frozen = match fault {
                    Fault::Freeze { after, frozen } => {
                        tokio::time::sleep(after).await;
                        frozen
                    }
                    Fault::FreezeMidDelivery { frozen } => {
                        self.hook.delay(Duration::from_secs(3));
                        self.wait_firing_sent_by(&series, leader).await;
                        frozen
                    }
                    _ => unreachable!("a freeze"),
                };
                let step_downs = |ha: &Ha| {
                    ha.replicas[leader]
                        .log()
                        .matches("lost the leadership")
                        .count()
                };
                let step_downs_before = step_downs(self);
                let stopped = Instant::now();
                signal(&self.replicas[leader].child, "STOP");
                self.replicas[leader].frozen = true;
                // The held delivery is answered while the sender is frozen.
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.hook.delay(Duration::ZERO);
                // The alert resolves while the leader is frozen.
                tokio::time::sleep(Duration::from_secs(2)).await;
                self.target.set_series(&series, 0.0);
                failover = self.failover_to(other, stopped).await;
                assert!(
                    failover < LEASE * 2,
                    "trial {i}: the frozen leader was replaced after {failover:?}, not within two lease periods; logs:\n{}",
                    self.logs()
                );
                let left = frozen.saturating_sub(stopped.elapsed());
                tokio::time::sleep(left).await;
                signal(&self.replicas[leader].child, "CONT");
                let resumed = Instant::now();
                self.replicas[leader].frozen = false;
                // Time for a resumed process to do harm, and to step down.
                tokio::time::sleep(Duration::from_secs(4)).await;
                let name = self.replicas[leader].name.clone();
                let stale: Vec<Got> = self
                    .hook
                    .got()
                    .into_iter()
                    .filter(|g| g.replica == name && g.at >= resumed)
                    .collect();
                assert!(
                    stale.is_empty(),
                    "trial {i}: the resumed frozen replica {name} sent {stale:#?}; logs:\n{}",
                    self.logs()
                );
                assert_eq!(
                    self.current_leader().await,
                    other,
                    "trial {i}: the resumed replica must not lead again"
                );
                if matches!(fault, Fault::FreezeMidDelivery { .. }) {
                    let log = self.replicas[leader].log();
                    assert!(
                        log.contains("delivery abandoned")
                            || log.contains("did not take the delivery outcome"),
                        "trial {i}: the resumed replica's held delivery is abandoned or its late outcome refused; logs:\n{}",
                        self.logs()
                    );
                }
                assert!(
                    step_downs(self) > step_downs_before,
                    "trial {i}: the resumed replica logs that it lost the leadership; logs:\n{}",
                    self.logs()
                );
            }
        }
        self.wait(
            &format!("trial {i}: {series} told firing and resolved"),
            RECOVERY,
            |ha| ha.hook.told(&series, "firing") && ha.hook.told(&series, "resolved"),
        )
        .await;
        // Time for a late repeat to show.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (deliveries, duplicates, marked) = self.check_duplicates(i, &series);
        Outcome {
            fault,
            failover,
            deliveries,
            duplicates,
            marked,
        }
    }

    /// Per status of `series`: every repeat carries the first send's key
    /// (when sent with a key) and, with [`REQUIRE_REDELIVERY_MARKS`], the
    /// re-send mark. Returns (deliveries, duplicates, marked duplicates).
    fn check_duplicates(&self, i: usize, series: &str) -> (usize, usize, usize) {
        let mut deliveries = 0;
        let mut duplicates = 0;
        let mut marked = 0;
        for status in ["firing", "resolved"] {
            let got = self.hook.about(series, status);
            deliveries += got.len();
            let Some((first, repeats)) = got.split_first() else {
                continue;
            };
            for repeat in repeats {
                duplicates += 1;
                let same_key = first.key.is_some() && repeat.key == first.key;
                if same_key && repeat.redelivery {
                    marked += 1;
                }
                if first.key.is_some() || REQUIRE_REDELIVERY_MARKS {
                    assert!(
                        same_key,
                        "trial {i}: a repeat of {series} {status} carries another key: {got:#?}"
                    );
                }
                if REQUIRE_REDELIVERY_MARKS {
                    assert!(
                        repeat.redelivery,
                        "trial {i}: a repeat of {series} {status} is not marked as a re-send: {got:#?}"
                    );
                }
            }
        }
        (deliveries, duplicates, marked)
    }

    /// Per replica, how many requests it sent.
    pub fn sent_by(&self) -> BTreeMap<String, usize> {
        let mut by = BTreeMap::new();
        for g in self.hook.got() {
            *by.entry(g.replica).or_default() += 1;
        }
        by
    }
}
