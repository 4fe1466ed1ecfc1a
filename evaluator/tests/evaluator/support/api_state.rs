//! An [`AppState`] for router tests, and the parts of it that API tests
//! need but do not exercise: an Alertmanager API over an idle notifier, and
//! a history store that is never reached. One place builds the state, so
//! each test names only the parts it exercises.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure
#![allow(dead_code)]

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use vigil_evaluator::api::alertmanager::AlertmanagerApi;
use vigil_evaluator::api::AppState;
use vigil_evaluator::clock::SystemClock;
use vigil_evaluator::history::{Database, HistoryStore};
use vigil_evaluator::notify::notifier::Notifier;
use vigil_evaluator::promql::Engine;
use vigil_evaluator::server::metrics::ServerMetrics;
use vigil_evaluator::store::Store;

/// A ready state with its own metrics registry, no targets, rules, samples
/// or API token, nobody listening for reloads, an idle Alertmanager API, an
/// unused history and the system clock; a test overrides what it exercises
/// (`AppState { store, ..app_state() }`).
pub fn app_state() -> AppState {
    let registry = prometheus::Registry::new();
    let metrics = ServerMetrics::register(&registry).unwrap();
    let (reload, _) = tokio::sync::mpsc::channel(1);
    AppState {
        ready: AtomicBool::new(true),
        registry,
        metrics,
        targets: RwLock::new(Vec::new()),
        store: Arc::new(RwLock::new(Store::new(1000))),
        token: RwLock::new(None),
        reload,
        engine: Engine::default(),
        alertmanager: idle_alertmanager(),
        rule_groups: RwLock::new(Vec::new()),
        history: unused_history(),
        read_requires_token: AtomicBool::new(false),
        backtest_permit: tokio::sync::Semaphore::new(1),
        clock: Arc::new(SystemClock),
        receivers: tokio::sync::watch::channel(Arc::default()).1,
        datasource: std::sync::RwLock::new(None),
        fleet: None,
    }
}

/// `/api/v2` over a notifier with one receiver and no alerts.
pub fn idle_alertmanager() -> Arc<AlertmanagerApi> {
    let config = vigil_evaluator::notify::config::parse(
        "route: {receiver: r}\nreceivers: [{name: r}]\n",
        std::path::Path::new("notify.yaml"),
    )
    .unwrap();
    let notifier = Notifier::new(Arc::new(config));
    Arc::new(AlertmanagerApi::new(
        Arc::new(tokio::sync::Mutex::new(notifier)),
        Arc::new(SystemClock),
        None,
        "",
    ))
}

/// A history store on an in-memory SQLite database that is connected only
/// if a test asks it something.
pub fn unused_history() -> HistoryStore {
    HistoryStore::new(Database::connect_lazy("sqlite::memory:").unwrap())
}
