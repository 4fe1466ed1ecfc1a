//! Parts of an [`AppState`](vigil_evaluator::api::AppState) that API
//! tests need but do not exercise: an Alertmanager API over an idle
//! notifier, and a history store that is never reached.

#![allow(dead_code)]

use std::sync::Arc;

use vigil_evaluator::api::alertmanager::AlertmanagerApi;
use vigil_evaluator::clock::SystemClock;
use vigil_evaluator::history::{Database, HistoryStore};
use vigil_evaluator::notify::notifier::Notifier;

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
