//! The composition root: [`Running`] builds the evaluator from a validated
//! config and runs it — scrape loops into the store, rule groups on the
//! clock reading the store through [`StoreQueryEngine`], their alerts into
//! the [`Notifier`], notifications to the delivery task, store pruning, and
//! the HTTP app ([`crate::api`]). It owns the lifecycle: [`Running::start`],
//! [`Running::reload`] (SIGHUP, `POST /-/reload`, the config watcher) swaps
//! in a new config only when it validates completely, carrying rule and
//! notifier state over; [`Running::shutdown`] (after SIGTERM or ctrl-c)
//! sets the grace period, cancels the one drain token every task was
//! handed and waits for the tasks in the order the data flows
//! ([`super::tasks`]), so in-flight deliveries finish within the grace
//! before the history is flushed within it.
//!
//! Rule evaluation is synchronous and the rule engine's seams are not
//! `Send`, so the groups run inside [`Running::serve`] (the caller's task),
//! which also serves reload requests between evaluations; all other work
//! runs in spawned tasks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::Registry;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::config::{self, ConfigErrors, ReceiverIntegrations, ValidatedConfig};
use super::metrics::{MetricsError, ServerMetrics};
use super::query_adapter::{write_store, SharedStore, StoreQueryEngine};
use super::restore::{merge_late_saved_state, restore_alert_state, restore_notifier};
use super::tasks::{signal_handler, Scraping, Tasks};
use crate::alerts::state::millis;
use crate::api::alertmanager::AlertmanagerApi;
use crate::api::{router, AppState, ReloadRequest};
use crate::clock::{Clock, ShutdownGrace, SystemClock};
use crate::datasource::DatasourceClients;
use crate::history::lifecycle::{Durability, DurabilityError};
use crate::history::notification_log::Outbox;
use crate::history::restore::SavedState;
use crate::history::sync::{load_open_episodes, run_sync, SYNC_EVERY};
use crate::history::tracker::AlertTracker;
use crate::notify::alert::{Alert, Notification};
use crate::notify::deliver::{DeliveryStage, Retrier, RetryPolicy};
use crate::notify::delivery::run_delivery;
use crate::notify::notifier::{self, Notifier};
use crate::promql::{Engine, EngineOptions};
use crate::remote_write::{RemoteWrite, RemoteWriteMetrics, WithRemoteWrite};
use crate::rules::file::{GroupSpec, RuleSpec};
use crate::rules::group::{GroupEnv, Health, RuleGroup};
use crate::rules::scheduler::{run_groups, Admission, AdmitAll};
use crate::rules::send_alerts::to_notifier_alerts;
use crate::scrape;
use crate::scrape::wait_for_first_scrapes;
use crate::store::Store;
use vigil_common::problem::Problem;

/// How often firing alerts are re-sent to the notifier (Prometheus'
/// `--rules.alert.resend-delay` default).
pub const RESEND_DELAY: Duration = Duration::from_secs(60);
/// How long deliveries may run on after a shutdown signal.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often the store drops samples no rule can read any more.
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// Longest the notifier sleeps between flush checks.
const NOTIFIER_IDLE: Duration = Duration::from_secs(1);

/// Why the evaluator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("cannot start the scrape loops: {0}; check scrape_configs in the config file")]
    Scrape(#[from] scrape::ScrapeError),
    #[error("cannot listen on {addr} (web.listen in the config file): {error}; is another process using the port? set web.listen to a free address")]
    Listen {
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot install the SIGTERM/SIGHUP handlers: {0}; the evaluator needs them to stop and reload cleanly, run it where signals can be handled")]
    Signals(std::io::Error),
    #[error(transparent)]
    History(#[from] DurabilityError),
    #[error("cannot start remote write: {0}; check remote_write in the config file")]
    RemoteWrite(String),
    #[error("cannot start rule-group sharding (fleet.sharding in the config file): {0}")]
    Fleet(String),
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: PathBuf,
    /// How long the deliveries in flight and the history flush may run on
    /// after SIGTERM or ctrl-c ([`run`] passes it to
    /// [`Running::shutdown`]); also the grace of a drain that no shutdown
    /// call precedes.
    pub shutdown_grace: Duration,
}

/// How much sample history the rules need: the longest lookbehind of any
/// rule expression (ranges, offsets, the 5m lookback) plus its group's
/// query offset, and another lookback for the API's instant queries.
pub fn retention_window(groups: &[GroupSpec], engine: &Engine) -> Duration {
    let lookback = engine.options().lookback_delta;
    let mut longest = lookback;
    for g in groups {
        for rule in &g.rules {
            let expr = match rule {
                RuleSpec::Recording(r) => &r.expr,
                RuleSpec::Alerting(a) => &a.expr,
            };
            if let Ok(q) = engine.parse(expr) {
                longest = longest.max(q.lookbehind(lookback) + g.query_offset.unwrap_or_default());
            }
        }
    }
    longest + lookback
}

/// Builds the rule groups of a config, carrying state over from `old` (a
/// group is the same group when its file and name match).
pub(super) fn build_groups(
    cfg: &ValidatedConfig,
    old: &[Arc<Mutex<RuleGroup>>],
    sources: &DatasourceClients,
) -> Result<Vec<Arc<Mutex<RuleGroup>>>, ConfigErrors> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for spec in &cfg.rule_groups {
        let (file, name) = (spec.file.clone(), spec.name.clone());
        let explicit_offset = spec.query_offset.is_some();
        match RuleGroup::new(spec.clone(), cfg.evaluation_interval) {
            Ok(mut group) => {
                if let Some(settings) = cfg.datasources.for_file(&group.file) {
                    match sources.client(settings) {
                        Ok(client) => group.datasource = Some(client),
                        Err(e) => problems.push(Problem::new(
                            file.clone(),
                            None,
                            "datasource",
                            format!(
                                "cannot set up the HTTP client of datasource {}: {e}",
                                settings.url
                            ),
                        )),
                    }
                    if !explicit_offset {
                        group.query_offset = settings.query_offset.unwrap_or_default();
                    }
                }
                for o in old {
                    let o = o.lock().unwrap_or_else(|e| e.into_inner());
                    if o.file == group.file && o.name == group.name {
                        group.copy_state_from(&o);
                    }
                }
                groups.push(Arc::new(Mutex::new(group)));
            }
            Err(e) => problems.push(Problem::new(
                file,
                None,
                format!("groups[{name}]"),
                e.to_string(),
            )),
        }
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        Err(ConfigErrors { problems })
    }
}

/// The client of the top-level `datasource` (the API's queries go there).
pub(super) fn default_datasource(
    cfg: &ValidatedConfig,
    sources: &DatasourceClients,
) -> Option<Arc<crate::datasource::DatasourceClient>> {
    let settings = cfg.datasources.default.as_ref()?;
    // A client that cannot be built failed the group build already.
    sources.client(settings).ok()
}

pub(super) fn log_problems(problems: &[Problem]) {
    for p in problems {
        if p.is_warning() {
            tracing::warn!(problem = %p, "configuration warning");
        } else {
            tracing::error!(problem = %p, "configuration error");
        }
    }
}

/// Loads the config and runs the evaluator until SIGTERM or ctrl-c, every
/// part on the system clock.
pub async fn run(options: Options) -> Result<(), ServerError> {
    let mut running = Running::start(options, Arc::new(SystemClock)).await?;
    running.serve().await;
    let grace = running.options.shutdown_grace;
    running.shutdown(grace).await;
    Ok(())
}

/// The running evaluator: what rule evaluation and reloads work on, and
/// the tasks under the drain token.
pub struct Running {
    pub(super) options: Options,
    pub(super) cfg: ValidatedConfig,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) state: Arc<AppState>,
    pub(super) engine: Engine,
    pub(super) adapter: StoreQueryEngine,
    pub(super) groups: Vec<Arc<Mutex<RuleGroup>>>,
    pub(super) scraping: Scraping,
    pub(super) notifier: Arc<tokio::sync::Mutex<Notifier>>,
    /// The receivers' integrations the delivery task sends with.
    pub(super) receivers: watch::Sender<Arc<ReceiverIntegrations>>,
    /// How far back the store keeps samples (the pruning task reads it).
    pub(super) window_ms: Arc<AtomicI64>,
    /// Follows the rule alerts into the history.
    pub(super) tracker: AlertTracker,
    pub(super) durability: Durability,
    /// Where recording-rule output and `ALERTS` are sent besides the store.
    pub(super) remote_write: RemoteWrite,
    /// The datasources' clients, which rule groups query.
    pub(super) datasources: DatasourceClients,
    /// The grace the delivery task and the history writer drain with.
    grace: ShutdownGrace,
    /// Alerts from rule evaluation (and reloads) to the ingest task.
    pub(super) alerts: mpsc::UnboundedSender<Vec<Alert>>,
    reloads: mpsc::Receiver<ReloadRequest>,
    /// Rule alerts restored from the history at start.
    restored: usize,
    /// This replica's share of the rule groups (`fleet.sharding`).
    pub(super) shard: Option<super::fleet::Shard>,
    pub(super) tasks: Tasks,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("config", &self.options.config_file)
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Loads the config, brings back what the history saved, binds the
    /// listener (a taken port is a start-up error, before anything is
    /// scraped) and starts every task, each reading time from `clock`.
    pub async fn start(options: Options, clock: Arc<dyn Clock>) -> Result<Running, ServerError> {
        let mut cfg = config::load(&options.config_file, &config::process_env)?;
        log_problems(&cfg.warnings);
        let registry = Registry::new();
        let metrics = ServerMetrics::register(&registry)?;
        metrics.record_reload(&Ok(()), clock.now());
        let store: SharedStore = Arc::new(RwLock::new(Store::new(cfg.storage.series_limit)));
        let engine = Engine::new(EngineOptions {
            default_subquery_step: cfg.evaluation_interval,
            ..EngineOptions::default()
        });
        let datasource_errors = crate::datasource::errors_counter();
        registry
            .register(Box::new(datasource_errors.clone()))
            .map_err(|e| ServerError::Metrics(e.into()))?;
        let datasources = DatasourceClients::new(Arc::clone(&clock), datasource_errors);
        let groups = build_groups(&cfg, &[], &datasources)?;
        // History: connected lazily, so a database that is down only delays
        // history (buffered by the writer), never evaluation.
        let grace = ShutdownGrace::new(options.shutdown_grace);
        let durability = Durability::start(
            &cfg.storage.history(),
            &registry,
            grace.clone(),
            Arc::clone(&clock),
        )?;
        // Sharded, a group's alert state is restored when this replica
        // takes the group (the server's fleet admission), not at start.
        let sharded = cfg.fleet.is_some();
        let restored = restore_alert_state(&durability, &groups, &clock, sharded).await;
        let notifier = restore_notifier(&cfg, &durability, restored.saved.as_ref()).await;
        let notifier = Arc::new(tokio::sync::Mutex::new(notifier));
        let alertmanager = Arc::new(AlertmanagerApi::new(
            Arc::clone(&notifier),
            Arc::clone(&clock),
            Some(durability.writer.clone()),
            &cfg.notify_text,
        ));
        if restored.saved.is_some() {
            alertmanager
                .restore_open_episodes(load_open_episodes(&durability.store, clock.now()).await);
        }
        // Stopped by [`Running::shutdown`] once evaluation has stopped.
        // A sharded replica joins the fleet (takes groups) after its first
        // scrapes: a group on the local window taken before would be
        // evaluated on an empty window, and its firing alerts resolved.
        let (joinable, may_join) = watch::channel(false);
        let shard = match cfg.fleet {
            Some(settings) => Some(
                super::fleet::Shard::start(
                    &cfg,
                    settings,
                    &durability.writer,
                    &registry,
                    Arc::clone(&clock),
                    may_join,
                )
                .map_err(ServerError::Fleet)?,
            ),
            None => None,
        };
        if let Some(shard) = &shard {
            notifier.lock().await.set_guard(shard.notify_guard());
        }
        let (reload_tx, reloads) = mpsc::channel::<ReloadRequest>(4);
        let (receivers, receivers_rx) = watch::channel(Arc::clone(&cfg.receivers));
        let state = Arc::new(AppState {
            ready: AtomicBool::new(groups.is_empty()),
            registry,
            metrics,
            targets: RwLock::new(Vec::new()),
            store: Arc::clone(&store),
            token: RwLock::new(cfg.web.token.clone()),
            reload: reload_tx.clone(),
            engine: engine.clone(),
            rule_groups: RwLock::new(groups.clone()),
            alertmanager,
            history: durability.store.clone(),
            read_requires_token: AtomicBool::new(cfg.web.read_requires_token),
            backtest_permit: tokio::sync::Semaphore::new(1),
            clock: Arc::clone(&clock),
            receivers: receivers_rx.clone(),
            datasource: RwLock::new(default_datasource(&cfg, &datasources)),
            fleet: shard.as_ref().map(|s| s.fleet.subscribe()),
        });
        let listener = tokio::net::TcpListener::bind(cfg.web.listen)
            .await
            .map_err(|error| ServerError::Listen {
                addr: cfg.web.listen,
                error,
            })?;
        let mut tasks = Tasks::default();
        let drain = tasks.drain().clone();
        let remote_metrics = RemoteWriteMetrics::register(&state.registry)
            .map_err(|e| ServerError::Metrics(e.into()))?;
        let (remote_write, remote_shards) = RemoteWrite::start(
            &cfg.remote_write,
            &cfg.external_labels,
            &remote_metrics,
            &clock,
            &drain,
        )
        .map_err(|e| ServerError::RemoteWrite(e.to_string()))?;
        tasks.spawn("remote write", async move {
            for shard in remote_shards {
                let _ = shard.await;
            }
        });
        tasks.spawn("signals", signal_handler(drain.clone(), reload_tx)?);
        let scraping = Scraping::start(&cfg, &store, &state, &drain)?;
        if shard.is_some() {
            let targets = state.current_targets();
            let drain = drain.clone();
            tasks.spawn("fleet joining", async move {
                tokio::select! {
                    () = drain.cancelled() => {}
                    () = wait_for_first_scrapes(&targets) => {
                        let _ = joinable.send(true);
                    }
                }
            });
        }
        let (alerts, alerts_rx) = mpsc::unbounded_channel::<Vec<Alert>>();
        if !restored.resolved.is_empty() {
            tracing::info!(
                alerts = restored.resolved.len(),
                "resolving firing alerts whose rules are no longer configured"
            );
            let _ = alerts.send(restored.resolved);
        }
        let window_ms = Arc::new(AtomicI64::new(millis(retention_window(
            &cfg.rule_groups,
            &engine,
        ))));
        cfg.forget_rule_specs();
        let mut running = Running {
            adapter: StoreQueryEngine::new(store, engine.clone()),
            options,
            cfg,
            clock,
            state,
            engine,
            groups,
            scraping,
            notifier,
            receivers,
            window_ms,
            tracker: restored.tracker,
            durability,
            remote_write,
            datasources,
            grace,
            alerts,
            reloads,
            restored: restored.alerts,
            shard,
            tasks,
        };
        running.spawn_notify(alerts_rx, receivers_rx, restored.late, restored.started_at);
        running.spawn_side_tasks(listener);
        tracing::info!(
            listen = %running.cfg.web.listen,
            config = %running.cfg.file.display(),
            groups = running.groups.len(),
            "vigil evaluator started"
        );
        Ok(running)
    }

    /// The notify half of the pipeline, in the order the data flows: the
    /// late saved state (if any) and rule alerts into the notifier
    /// (ingested, and flushed at once when due, in their own task so
    /// evaluation never waits for the notifier), the notifier's timers,
    /// and the delivery of its notifications.
    fn spawn_notify(
        &mut self,
        alerts_rx: mpsc::UnboundedReceiver<Vec<Alert>>,
        receivers_rx: watch::Receiver<Arc<ReceiverIntegrations>>,
        late: Option<oneshot::Receiver<SavedState>>,
        started_at: DateTime<Utc>,
    ) {
        let drain = self.tasks.drain().clone();
        if let Some(late) = late {
            let merge = merge_late_saved_state(
                late,
                Arc::clone(&self.notifier),
                Arc::clone(&self.state),
                self.alerts.clone(),
                started_at.timestamp_millis(),
                self.shard.is_some(),
            );
            let drain = drain.clone();
            self.tasks.spawn("late saved state", async move {
                tokio::select! {
                    () = drain.cancelled() => {}
                    () = merge => {}
                }
            });
        }
        let (notifications, notifications_rx) = mpsc::unbounded_channel::<Notification>();
        self.tasks.spawn(
            "alert ingest",
            ingest(
                alerts_rx,
                Arc::clone(&self.notifier),
                Arc::clone(&self.clock),
                notifications.clone(),
            ),
        );
        self.tasks.spawn(
            "notifier",
            notifier::run(
                Arc::clone(&self.notifier),
                Arc::clone(&self.clock),
                Box::new(notifications),
                NOTIFIER_IDLE,
                drain,
            ),
        );
        let retrier = Arc::new(Retrier::new(
            RetryPolicy::default(),
            Arc::clone(&self.clock),
        ));
        // Ends once the ingest and the notifier are gone (its input closes),
        // after the deliveries in flight got their grace.
        self.tasks.spawn(
            "delivery",
            run_delivery(
                notifications_rx,
                receivers_rx,
                DeliveryStage::new(retrier),
                self.state.metrics.clone(),
                self.grace.clone(),
                Some(Outbox {
                    store: self.durability.store.clone(),
                    writer: self.durability.writer.clone(),
                    leader: self.durability.leader.subscribe(),
                    forward: self.shard.is_some(),
                }),
                Arc::clone(&self.clock),
            ),
        );
    }

    /// The tasks beside the pipeline: the silence sync, the config
    /// watcher, store pruning and, last, the HTTP server (which stops
    /// taking requests on the drain token and finishes those in progress).
    fn spawn_side_tasks(&mut self, listener: tokio::net::TcpListener) {
        let drain = self.tasks.drain().clone();
        if let Some(shard) = &self.shard {
            // A sharded replica may own no group (more replicas than
            // groups): it is ready once it is a member of the fleet.
            let mut view = shard.fleet.subscribe();
            let state = Arc::clone(&self.state);
            let drain = drain.clone();
            self.tasks.spawn(
                "fleet notifier",
                super::fleet::forget_moved(
                    shard.fleet.subscribe(),
                    Arc::clone(&self.state),
                    Arc::clone(&self.notifier),
                    drain.clone(),
                ),
            );
            self.tasks.spawn(
                "removed rule groups",
                super::fleet::resolve_removed_groups(
                    shard.removed_groups_sweep(),
                    self.durability.store.clone(),
                    self.durability.writer.clone(),
                    Arc::clone(&self.notifier),
                    Arc::clone(&self.clock),
                    drain.clone(),
                ),
            );
            self.tasks.spawn("fleet readiness", async move {
                loop {
                    if !view.borrow_and_update().members.is_empty() {
                        state.ready.store(true, Ordering::Release);
                        return;
                    }
                    tokio::select! {
                        () = drain.cancelled() => return,
                        changed = view.changed() => if changed.is_err() { return },
                    }
                }
            });
        }
        self.tasks.spawn(
            "silence sync",
            run_sync(
                self.state.alertmanager.clone(),
                self.durability.store.clone(),
                SYNC_EVERY,
                drain.clone(),
            ),
        );
        if let Some(interval) = self.cfg.watch_interval {
            self.tasks.spawn(
                "config watch",
                super::watch::watcher(
                    &self.options.config_file,
                    interval,
                    &self.state.reload,
                    &drain,
                    Arc::clone(&self.clock),
                ),
            );
        }
        self.tasks.spawn(
            "store pruning",
            prune(
                Arc::clone(&self.state.store),
                Arc::clone(&self.window_ms),
                Arc::clone(&self.clock),
                drain.clone(),
            ),
        );
        let app = router(Arc::clone(&self.state));
        let limits = self.cfg.web.http_limits;
        self.tasks.spawn("http", async move {
            let served =
                vigil_common::http_server::serve(listener, app, limits, drain.cancelled_owned())
                    .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
    }

    /// Evaluates the rule groups and serves reload requests until the
    /// drain token is cancelled.
    pub async fn serve(&mut self) {
        if self.restored > 0 {
            let targets = self.state.current_targets();
            tokio::select! {
                () = self.tasks.drain().cancelled() => {}
                () = wait_for_first_scrapes(&targets) => {}
            }
        }
        while let Some(request) = self.evaluate_until_reload().await {
            let result = self.reload().await.map_err(|e| e.to_string());
            self.state.metrics.record_reload(&result, self.clock.now());
            if let Some(reply) = request.reply {
                let _ = reply.send(result);
            }
        }
    }

    /// Runs the rule groups until a reload request (returned) or the drain
    /// token (`None`). The groups stop by their future being dropped,
    /// between evaluations (an evaluation never awaits), so no group is
    /// left half-evaluated.
    async fn evaluate_until_reload(&mut self) -> Option<ReloadRequest> {
        let Running {
            ref cfg,
            ref clock,
            ref state,
            ref adapter,
            ref groups,
            ref tracker,
            ref durability,
            ref remote_write,
            ref alerts,
            ref tasks,
            ref shard,
            ref notifier,
            ref mut reloads,
            ..
        } = *self;
        let on_alerts = |group: &RuleGroup, fired: Vec<crate::alerts::Alert>| {
            record_group_metrics(&state.metrics, group);
            let now = DateTime::<Utc>::from_timestamp_millis(
                group.last_eval_ms.unwrap_or_else(|| clock.now_ms()),
            )
            .unwrap_or_default();
            // Sharded, the group's writes carry its lease's epoch: the
            // database refuses them once another replica took the group.
            let fence = shard.as_ref().map(|s| s.fence(group));
            for write in tracker.observe(group, now) {
                let write = match &fence {
                    None => write,
                    Some(Some(fence)) => crate::history::store::HistoryWrite::Fenced {
                        fence: fence.clone(),
                        write: Box::new(write),
                    },
                    // Lost between the evaluation and now: not written.
                    Some(None) => continue,
                };
                // A full queue is logged and counted by the writer.
                let _ = durability.writer.record(write);
            }
            state.ready.store(true, Ordering::Release);
            if !fired.is_empty() {
                let fired = to_notifier_alerts(group, fired, &cfg.web.external_url);
                if let Some(shard) = shard {
                    shard.note_origin(group, &fired);
                }
                let _ = alerts.send(fired);
            }
        };
        let with_remote = WithRemoteWrite {
            store: adapter,
            remote: remote_write,
        };
        let env = GroupEnv {
            engine: adapter,
            appender: if remote_write.is_enabled() {
                &with_remote
            } else {
                adapter
            },
            external_labels: &cfg.external_labels,
            external_url: &cfg.web.external_url,
            resend_delay: RESEND_DELAY,
            clock: clock.as_ref(),
        };
        let drain = tasks.drain();
        let sharded = shard.as_ref().map(|shard| super::fleet::ShardAdmission {
            shard,
            store: &durability.store,
            writer: &durability.writer,
            tracker,
            notifier,
            remote_write,
            clock,
        });
        let admission: &dyn Admission = match &sharded {
            Some(admission) => admission,
            None => &AdmitAll,
        };
        let rules = async {
            run_groups(
                groups,
                &env,
                clock.as_ref(),
                drain,
                true,
                admission,
                &on_alerts,
            )
            .await;
            // Without groups there is nothing to run until the drain.
            drain.cancelled().await;
        };
        tokio::select! {
            () = rules => None,
            request = reloads.recv() => request,
        }
    }

    /// Stops: sets `grace` (how long the deliveries in flight, then the
    /// history flush, may still take), cancels the drain token, waits for
    /// the scrape loops (each marks its series stale), lets go of the
    /// evaluation's alert sender, then waits for every task in data-flow
    /// order (so the ingest takes what was sent, and the delivery what the
    /// notifier flushed) and flushes the history last.
    pub async fn shutdown(self, grace: Duration) {
        tracing::info!(
            grace_seconds = grace.as_secs_f64(),
            "shutting down: stopping scrapes and rule evaluation"
        );
        let Running {
            scraping,
            alerts,
            tasks,
            durability,
            shard,
            grace: drain_grace,
            ..
        } = self;
        drain_grace.set(grace);
        tasks.drain().cancel();
        scraping.stop().await;
        drop(alerts);
        tasks.join().await;
        // Its groups' last state written, their leases released (while
        // the history writer still runs), so the other replicas take them
        // at their next round.
        if let Some(shard) = shard {
            shard.stop().await;
        }
        durability.stop().await;
        tracing::info!("vigil evaluator stopped");
    }
}

/// Takes rule alerts into the notifier as they come, flushing what is due
/// at once; ends when every sender is gone.
async fn ingest(
    mut alerts: mpsc::UnboundedReceiver<Vec<Alert>>,
    notifier: Arc<tokio::sync::Mutex<Notifier>>,
    clock: Arc<dyn Clock>,
    mut sink: mpsc::UnboundedSender<Notification>,
) {
    while let Some(alerts) = alerts.recv().await {
        let mut n = notifier.lock().await;
        let now = clock.now();
        n.ingest(alerts, now);
        n.tick_into(now, &mut sink);
    }
}

/// Every [`PRUNE_EVERY`] until `drain`: drops the samples older than the
/// window any rule can read.
async fn prune(
    store: SharedStore,
    window_ms: Arc<AtomicI64>,
    clock: Arc<dyn Clock>,
    drain: CancellationToken,
) {
    loop {
        tokio::select! {
            () = drain.cancelled() => return,
            () = clock.sleep(PRUNE_EVERY) => {}
        }
        let cutoff = clock.now_ms() - window_ms.load(Ordering::Relaxed);
        write_store(&store).truncate_before(cutoff);
    }
}

fn record_group_metrics(metrics: &ServerMetrics, group: &RuleGroup) {
    let name = [group.name.as_str()];
    metrics
        .rule_group_duration
        .with_label_values(&name)
        .observe(group.last_eval_duration.as_secs_f64());
    metrics
        .rule_group_evaluations
        .with_label_values(&name)
        .inc();
    let failed = group
        .rules
        .iter()
        .filter(|r| r.health == Health::Err && r.last_eval_ms == group.last_eval_ms)
        .count();
    metrics
        .rule_evaluation_failures
        .with_label_values(&name)
        .inc_by(u64::try_from(failed).unwrap_or(0));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::path::Path;

    use super::*;
    use crate::rules::file::parse_rule_file;

    #[test]
    fn the_store_keeps_the_longest_rule_range_plus_offset_and_a_lookback() {
        let groups = parse_rule_file(
            Path::new("r.yaml"),
            "groups:\n- name: a\n  query_offset: 1m\n  rules:\n  - record: x:rate\n    expr: rate(x[1h])\n- name: b\n  rules:\n  - alert: Up\n    expr: up == 0\n",
        )
        .unwrap();
        let window = retention_window(&groups, &Engine::default());
        assert_eq!(window, Duration::from_secs(3600 + 60 + 300));
        assert_eq!(
            retention_window(&[], &Engine::default()),
            Duration::from_secs(600),
            "without rules: the lookback for instant queries, twice"
        );
    }
}
