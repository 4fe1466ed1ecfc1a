//! Builds the evaluator from a validated config and runs it: scrape loops
//! into the store, rule groups on the real clock reading the store through
//! [`StoreQueryEngine`], their alerts into the [`Notifier`], notifications to
//! the delivery task, store pruning, and the HTTP app. Also owns the
//! lifecycle: reload (SIGHUP, `POST /-/reload`) swaps in a new config only
//! when it validates completely, carrying rule and notifier state over;
//! shutdown (SIGTERM, ctrl-c) stops scraping and evaluating and gives
//! in-flight deliveries a grace period.
//!
//! Rule evaluation is synchronous and the rule engine's seams are not
//! `Send`, so the groups run inside [`run`]'s own future (the caller's
//! task), which also serves reload requests between evaluations; all other
//! work runs in spawned tasks.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus::Registry;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::adapters::{to_notifier_alert, to_notifier_alerts, ScrapeToStore};
use super::config::{self, ConfigErrors, ConfigProblem, ValidatedConfig};
use super::delivery::{run_delivery, Outbox};
use super::durability::{
    load_saved_state_at_start, resolved_by_late_state, wait_for_first_scrapes, AlertTracker,
    Durability, DurabilityError, SavedState,
};
use super::metrics::{MetricsError, ServerMetrics};
use super::query_adapter::{write_store, SharedStore, StoreQueryEngine};
use crate::alerts::state::millis;
use crate::api::alertmanager::AlertmanagerApi;
use crate::api::{router, AppState, ReloadRequest};
use crate::clock::{Clock, SystemClock};
use crate::history;
use crate::notify::alert::{Alert, Notification};
use crate::notify::deliver::{DeliveryStage, Retrier, RetryPolicy};
use crate::notify::notifier::{self, Notifier};
use crate::promql::{Engine, EngineOptions};
use crate::rules::file::{GroupSpec, RuleSpec};
use crate::rules::group::{GroupEnv, Health, RuleGroup};
use crate::rules::scheduler::run_groups;
use crate::scrape::{self, spawn_scrape_loops};
use crate::store::Store;

/// How often firing alerts are re-sent to the notifier (Prometheus'
/// `--rules.alert.resend-delay` default).
pub const RESEND_DELAY: Duration = Duration::from_secs(60);
/// How long deliveries may run on after a shutdown signal.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often the store drops samples no rule can read any more.
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// Longest the notifier sleeps between flush checks.
const NOTIFIER_IDLE: Duration = Duration::from_secs(1);
/// How many one-second rounds a late saved state waits for every group
/// concerned to be evaluated before its resolutions are judged anyway.
const LATE_STATE_WAIT_ROUNDS: u32 = 120;

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
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_file: PathBuf,
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
fn build_groups(
    cfg: &ValidatedConfig,
    old: &[Arc<Mutex<RuleGroup>>],
) -> Result<Vec<Arc<Mutex<RuleGroup>>>, ConfigErrors> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for spec in &cfg.rule_groups {
        let (file, name) = (spec.file.clone(), spec.name.clone());
        match RuleGroup::new(spec.clone(), cfg.evaluation_interval) {
            Ok(mut group) => {
                for o in old {
                    let o = o.lock().unwrap_or_else(|e| e.into_inner());
                    if o.file == group.file && o.name == group.name {
                        group.copy_state_from(&o);
                    }
                }
                groups.push(Arc::new(Mutex::new(group)));
            }
            Err(e) => problems.push(ConfigProblem {
                file,
                line: None,
                column: None,
                field: format!("groups[{name}]"),
                message: e.to_string(),
                warning: false,
            }),
        }
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        Err(ConfigErrors { problems })
    }
}

/// The scrape loops of one scrape configuration.
struct Scraping {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Scraping {
    fn start(
        cfg: &ValidatedConfig,
        store: &SharedStore,
        state: &AppState,
    ) -> Result<Scraping, ServerError> {
        let cancel = CancellationToken::new();
        let appender: Arc<dyn scrape::SampleAppender> =
            Arc::new(ScrapeToStore::new(Arc::clone(store)));
        let (handles, tasks) = spawn_scrape_loops(
            &cfg.scrape_configs,
            &appender,
            &state.clock,
            &cancel,
            Some(&state.metrics.scrape_limit_exceeded),
        )?;
        tracing::info!(targets = handles.len(), "scraping started");
        *state.targets.write().unwrap_or_else(|e| e.into_inner()) = handles;
        Ok(Scraping { cancel, tasks })
    }

    /// Stops every loop; each marks its series stale on the way out.
    async fn stop(self) {
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Whether a reload must restart the scrape loops (restarting marks every
/// scraped series stale, so unchanged loops are left alone).
fn scrape_changed(old: &ValidatedConfig, new: &ValidatedConfig) -> bool {
    old.raw.scrape_configs != new.raw.scrape_configs
        || old.scrape_interval != new.scrape_interval
        || old.scrape_timeout != new.scrape_timeout
        || old.file != new.file
}

fn log_problems(problems: &[ConfigProblem]) {
    for p in problems {
        if p.warning {
            tracing::warn!(problem = %p, "configuration warning");
        } else {
            tracing::error!(problem = %p, "configuration error");
        }
    }
}

/// Loads the config and runs the evaluator until SIGTERM or ctrl-c, every
/// part on the system clock.
pub async fn run(options: Options) -> Result<(), ServerError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
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
    let adapter = StoreQueryEngine::new(Arc::clone(&store), engine.clone());
    let mut groups = build_groups(&cfg, &[])?;

    // History: connected lazily, so a database that is down only delays
    // history (buffered by the writer), never evaluation.
    let durability = Durability::start(
        &cfg.storage,
        &registry,
        options.shutdown_grace,
        Arc::clone(&clock),
    )?;
    // The saved state, if the database answers within a short budget;
    // otherwise it is merged in later (`late`) and start-up goes on.
    let (saved, late) = load_saved_state_at_start(&durability.store, Arc::clone(&clock)).await;
    let tracker = AlertTracker::default();
    let mut restored = 0;
    if let Some(saved) = &saved {
        for g in &groups {
            let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
            restored += tracker.restore(&mut g, &saved.snapshots);
        }
    }
    if restored > 0 {
        tracing::info!(alerts = restored, "alert state restored from history");
    }
    // Episodes of alerts that were not restored can no longer end by
    // evaluation: closed now (and firing ones resolved at the receivers).
    let started_at =
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(clock.now_ms()).unwrap_or_default();
    // Without the saved state (database down at start) nothing is held:
    // every episode open before this start is closed once it answers.
    let snapshots = saved.as_ref().map_or(&[][..], |s| &s.snapshots[..]);
    let (closing, resolved_at_start) = tracker.after_restore(snapshots, started_at);
    for write in closing {
        let _ = durability.writer.record(write);
    }

    // The notifier, with the silences kept in (and shared through) the
    // history database.
    let silences = match &saved {
        Some(_) => durability.load_silences().await,
        // Merged in by the periodic sync once the database answers.
        None => durability.silences_without_database(),
    };
    let mut notifier = Notifier::with_silences(Arc::clone(&cfg.notify), Box::new(silences));
    notifier.set_external_url(cfg.web.external_url.clone());
    if let Some(saved) = &saved {
        let entries = saved.restore_notifier(&mut notifier, false);
        if entries > 0 {
            tracing::info!(
                entries,
                "notification log and cooldowns restored from history"
            );
        }
    }
    let notifier = Arc::new(tokio::sync::Mutex::new(notifier));
    let alertmanager = Arc::new(AlertmanagerApi::new(
        Arc::clone(&notifier),
        Arc::clone(&clock),
        Some(durability.writer.clone()),
        &cfg.notify_text,
    ));
    if saved.is_some() {
        alertmanager.restore_open_episodes(
            history::sync::load_open_episodes(&durability.store, clock.now()).await,
        );
    }
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let state = Arc::new(AppState {
        ready: AtomicBool::new(false),
        registry,
        metrics: metrics.clone(),
        targets: RwLock::new(Vec::new()),
        store: Arc::clone(&store),
        token: RwLock::new(cfg.web.token.clone()),
        reload: reload_tx.clone(),
        engine: engine.clone(),
        rule_groups: RwLock::new(groups.clone()),
        alertmanager: Arc::clone(&alertmanager),
        history: durability.store.clone(),
        read_requires_token: AtomicBool::new(cfg.web.read_requires_token),
        clock: Arc::clone(&clock),
    });

    // The listener first: a taken port is a startup error, before anything
    // is scraped.
    let listener = tokio::net::TcpListener::bind(cfg.web.listen)
        .await
        .map_err(|error| ServerError::Listen {
            addr: cfg.web.listen,
            error,
        })?;
    let shutdown = CancellationToken::new();
    spawn_signal_handlers(shutdown.clone(), reload_tx)?;

    let mut scraping = Scraping::start(&cfg, &store, &state)?;
    let watcher = super::watch::spawn(
        &options.config_file,
        cfg.watch_interval,
        &state.reload,
        &shutdown,
    );

    // Notifier → delivery.
    let (notification_tx, notification_rx) = mpsc::unbounded_channel::<Notification>();
    let (receivers_tx, receivers_rx) = watch::channel(Arc::clone(&cfg.receivers));
    let retrier = Arc::new(Retrier::new(RetryPolicy::default(), Arc::clone(&clock)));
    let delivery = tokio::spawn(run_delivery(
        notification_rx,
        receivers_rx,
        DeliveryStage::new(retrier),
        metrics.clone(),
        options.shutdown_grace,
        Some(Outbox {
            store: durability.store.clone(),
            writer: durability.writer.clone(),
            leader: durability.leader.subscribe(),
        }),
        Arc::clone(&clock),
    ));
    let notifier_stop = CancellationToken::new();
    let notifier_task = tokio::spawn(notifier::run(
        Arc::clone(&notifier),
        Arc::clone(&clock),
        Box::new(notification_tx.clone()),
        NOTIFIER_IDLE,
        notifier_stop.clone(),
    ));
    // Alerts from rule evaluation are ingested (and flushed at once when
    // due) in their own task, so evaluation never waits for the notifier.
    let (alerts_tx, mut alerts_rx) = mpsc::unbounded_channel::<Vec<Alert>>();
    if !resolved_at_start.is_empty() {
        tracing::info!(
            alerts = resolved_at_start.len(),
            "resolving firing alerts whose rules are no longer configured"
        );
        let _ = alerts_tx.send(resolved_at_start);
    }
    if let Some(late) = late {
        tokio::spawn(merge_late_saved_state(
            late,
            Arc::clone(&notifier),
            Arc::clone(&state),
            alerts_tx.clone(),
            started_at.timestamp_millis(),
        ));
    }
    let ingest_task = {
        let notifier = Arc::clone(&notifier);
        let clock = Arc::clone(&clock);
        let mut sink = notification_tx;
        tokio::spawn(async move {
            while let Some(alerts) = alerts_rx.recv().await {
                let mut n = notifier.lock().await;
                let now = clock.now();
                n.ingest(alerts, now);
                n.tick_into(now, &mut sink);
            }
        })
    };

    let am_sync = tokio::spawn(history::sync::run_sync(
        Arc::clone(&alertmanager),
        durability.store.clone(),
        history::sync::SYNC_EVERY,
        shutdown.clone(),
    ));

    // Store pruning.
    let window_ms = Arc::new(AtomicI64::new(millis(retention_window(
        &cfg.rule_groups,
        &engine,
    ))));
    let prune_task = {
        let store = Arc::clone(&store);
        let window_ms = Arc::clone(&window_ms);
        let stop = shutdown.clone();
        let clock = Arc::clone(&clock);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = clock.sleep(PRUNE_EVERY) => {}
                }
                let cutoff = clock.now_ms() - window_ms.load(Ordering::Relaxed);
                write_store(&store).truncate_before(cutoff);
            }
        })
    };

    let http_stop = CancellationToken::new();
    let http_task = {
        let app = router(Arc::clone(&state));
        let stop = http_stop.clone();
        let limits = cfg.web.http_limits;
        tokio::spawn(async move {
            let served =
                vigil_common::http_server::serve(listener, app, limits, stop.cancelled_owned())
                    .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP server failed");
            }
        })
    };
    tracing::info!(
        listen = %cfg.web.listen,
        config = %cfg.file.display(),
        groups = groups.len(),
        "vigil evaluator started"
    );
    if groups.is_empty() {
        state.ready.store(true, Ordering::Release);
    }
    if restored > 0 {
        let targets = state
            .targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        wait_for_first_scrapes(&targets).await;
    }

    loop {
        let request = {
            let external_url = cfg.web.external_url.clone();
            let on_alerts = |group: &RuleGroup, alerts: Vec<crate::alerts::Alert>| {
                record_group_metrics(&metrics, group);
                let now = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(
                    group.last_eval_ms.unwrap_or_else(|| clock.now_ms()),
                )
                .unwrap_or_default();
                for write in tracker.observe(group, now) {
                    // A full queue is logged and counted by the writer.
                    let _ = durability.writer.record(write);
                }
                state.ready.store(true, Ordering::Release);
                if !alerts.is_empty() {
                    let _ = alerts_tx.send(to_notifier_alerts(group, alerts, &external_url));
                }
            };
            let env = GroupEnv {
                engine: &adapter,
                appender: &adapter,
                external_labels: &cfg.external_labels,
                external_url: &cfg.web.external_url,
                resend_delay: RESEND_DELAY,
                clock: clock.as_ref(),
            };
            let never_cancelled = CancellationToken::new();
            let rules = async {
                run_groups(
                    &groups,
                    &env,
                    clock.as_ref(),
                    &never_cancelled,
                    true,
                    &on_alerts,
                )
                .await;
                std::future::pending::<()>().await;
            };
            tokio::select! {
                () = rules => None,
                () = shutdown.cancelled() => None,
                request = reload_rx.recv() => request,
            }
        };
        // The rules future is dropped here, between evaluations (an
        // evaluation never awaits), so no group is left half-evaluated.
        let Some(request) = request else { break };
        let result = reload(
            &options,
            &mut cfg,
            &mut groups,
            &mut scraping,
            &store,
            &state,
            &adapter,
            &notifier,
            &receivers_tx,
            &window_ms,
            &engine,
        )
        .await
        .map(|dropped| {
            let now = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(clock.now_ms())
                .unwrap_or_default();
            for d in dropped {
                for write in tracker.close_dropped(&d, now) {
                    let _ = durability.writer.record(write);
                }
                let fired: Vec<Alert> = d
                    .alerts
                    .into_iter()
                    .filter(|(a, _)| a.resolved_at_ms.is_some())
                    .map(|(a, expr)| to_notifier_alert(a, &expr, &cfg.web.external_url))
                    .collect();
                if !fired.is_empty() {
                    let _ = alerts_tx.send(fired);
                }
            }
        })
        .map_err(|e| e.to_string());
        metrics.record_reload(&result, clock.now());
        if let Some(reply) = request.reply {
            let _ = reply.send(result);
        }
    }

    tracing::info!("shutting down: stopping scrapes and rule evaluation");
    scraping.stop().await;
    drop(alerts_tx);
    let _ = ingest_task.await;
    notifier_stop.cancel();
    let _ = notifier_task.await;
    // Both senders are gone now: the delivery task finishes what it has.
    let _ = delivery.await;
    prune_task.abort();
    let _ = watcher.await;
    let _ = am_sync.await;
    http_stop.cancel();
    let _ = http_task.await;
    durability.stop().await;
    tracing::info!("vigil evaluator stopped");
    Ok(())
}

/// The saved state that arrived after start (the database did not answer
/// within the start-up budget): its notification log and cooldowns are
/// merged into the notifier, the open episodes into the Alertmanager API,
/// and, once every group concerned has been evaluated since start, the
/// saved firing alerts no group holds any more are resolved at the
/// receivers (see [`resolved_by_late_state`]). Alerts a group holds again
/// started over. The Alertmanager API, the history store and the clock are
/// `state`'s.
async fn merge_late_saved_state(
    late: tokio::sync::oneshot::Receiver<SavedState>,
    notifier: Arc<tokio::sync::Mutex<Notifier>>,
    state: Arc<AppState>,
    alerts: mpsc::UnboundedSender<Vec<Alert>>,
    started_at_ms: i64,
) {
    let Ok(saved) = late.await else { return };
    let (store, clock) = (&state.history, &state.clock);
    let entries = saved.restore_notifier(&mut *notifier.lock().await, true);
    state
        .alertmanager
        .restore_open_episodes(history::sync::load_open_episodes(store, clock.now()).await);
    store.set_restore_pending(false);
    // Bounded: a group that never finishes an evaluation does not keep the
    // resolutions back for ever.
    let mut resolved = None;
    for _ in 0..LATE_STATE_WAIT_ROUNDS {
        resolved = {
            let groups = state
                .rule_groups
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let locked: Vec<_> = groups
                .iter()
                .map(|g| g.lock().unwrap_or_else(|e| e.into_inner()))
                .collect();
            let refs: Vec<&RuleGroup> = locked.iter().map(|g| &**g).collect();
            resolved_by_late_state(&refs, &saved.snapshots, started_at_ms, clock.now())
        };
        if resolved.is_some() {
            break;
        }
        clock.sleep(Duration::from_secs(1)).await;
    }
    let resolved = resolved.unwrap_or_default();
    tracing::info!(
        entries,
        resolved = resolved.len(),
        "the history database answers: notification log and cooldowns merged in; saved firing alerts that ended meanwhile are resolved at the receivers (the alerts still active started over at start)"
    );
    if !resolved.is_empty() {
        let _ = alerts.send(resolved);
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

/// Loads and applies a new config; on any problem nothing changes.
#[allow(clippy::too_many_arguments)] // the running pipeline's parts, each swapped here
async fn reload(
    options: &Options,
    cfg: &mut ValidatedConfig,
    groups: &mut Vec<Arc<Mutex<RuleGroup>>>,
    scraping: &mut Scraping,
    store: &SharedStore,
    state: &AppState,
    adapter: &StoreQueryEngine,
    notifier: &tokio::sync::Mutex<Notifier>,
    receivers: &watch::Sender<Arc<config::ReceiverIntegrations>>,
    window_ms: &AtomicI64,
    engine: &Engine,
) -> Result<Vec<crate::rules::group::DroppedByReload>, ConfigErrors> {
    tracing::info!(config = %options.config_file.display(), "reloading configuration");
    let new = match config::load(&options.config_file, &config::process_env) {
        Ok(new) => new,
        Err(e) => {
            log_problems(&e.problems);
            tracing::error!("configuration rejected; the previous configuration keeps running");
            return Err(e);
        }
    };
    let new_groups = match build_groups(&new, groups) {
        Ok(g) => g,
        Err(e) => {
            log_problems(&e.problems);
            tracing::error!("configuration rejected; the previous configuration keeps running");
            return Err(e);
        }
    };
    log_problems(&new.warnings);
    if new.web.listen != cfg.web.listen || new.storage != cfg.storage {
        tracing::warn!("web.listen and storage changes take effect only after a restart");
    }

    if scrape_changed(cfg, &new) {
        let old = std::mem::replace(
            scraping,
            Scraping {
                cancel: CancellationToken::new(),
                tasks: Vec::new(),
            },
        );
        old.stop().await;
        match Scraping::start(&new, store, state) {
            Ok(s) => *scraping = s,
            Err(e) => tracing::error!(error = %e, "cannot restart the scrape loops"),
        }
    }

    // Series of removed groups end now rather than after the lookback; the
    // alerts the new rules no longer hold end too.
    let now_ms = state.clock.now_ms();
    let mut stale = Vec::new();
    let mut dropped = Vec::new();
    {
        let new_locked: Vec<_> = new_groups
            .iter()
            .map(|g| g.lock().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let new_refs: Vec<&RuleGroup> = new_locked.iter().map(|g| &**g).collect();
        for old in groups.iter() {
            let old = old.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(d) = old.dropped_by_reload(&new_refs, now_ms) {
                if d.group_removed {
                    stale.extend(old.stale_markers(now_ms));
                }
                dropped.push(d);
            }
        }
    }
    if !stale.is_empty() {
        use crate::rules::engine::SampleAppender as _;
        if let Err(e) = adapter.append(&stale) {
            tracing::warn!(error = %e, "cannot mark removed rules' series stale");
        }
    }
    *groups = new_groups;
    *state.rule_groups.write().unwrap_or_else(|e| e.into_inner()) = groups.clone();
    adapter.clear_cache();

    {
        let mut n = notifier.lock().await;
        n.set_external_url(new.web.external_url.clone());
        n.reload(Arc::clone(&new.notify), state.clock.now());
    }
    receivers.send_replace(Arc::clone(&new.receivers));
    state.alertmanager.set_config_text(&new.notify_text);
    window_ms.store(
        millis(retention_window(&new.rule_groups, engine)),
        Ordering::Relaxed,
    );
    *state.token.write().unwrap_or_else(|e| e.into_inner()) = new.web.token.clone();
    state
        .read_requires_token
        .store(new.web.read_requires_token, Ordering::Release);
    tracing::info!(
        groups = groups.len(),
        rule_files = new.rule_files.len(),
        "configuration reloaded"
    );
    *cfg = new;
    Ok(dropped)
}

#[cfg(unix)]
fn spawn_signal_handlers(
    shutdown: CancellationToken,
    reload: mpsc::Sender<ReloadRequest>,
) -> Result<(), ServerError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServerError::Signals)?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
        }
        stop.cancel();
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() { return }
                    tracing::info!("SIGHUP received");
                    if reload.send(ReloadRequest { reply: None }).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn spawn_signal_handlers(
    shutdown: CancellationToken,
    _reload: mpsc::Sender<ReloadRequest>,
) -> Result<(), ServerError> {
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
    });
    Ok(())
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
