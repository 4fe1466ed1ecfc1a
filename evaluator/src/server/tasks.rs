//! The evaluator's long-lived tasks under one drain signal: every task is
//! handed the same [`CancellationToken`] (or a child of it) and ends on it,
//! or ends when its input closes because the tasks upstream ended on it.
//! Tasks are registered in the order the data flows (scrape → ingest →
//! notifier → delivery, then the side tasks and the HTTP server), and
//! [`Tasks::join`] waits for them in that order, so the teardown order is
//! the start order rather than a list written out by hand.
//!
//! Also here: the signal handlers (SIGTERM and ctrl-c drain, SIGHUP asks
//! for a reload) and the scrape loops of one configuration, which a reload
//! may restart under a fresh child of the drain token.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::app::ServerError;
use super::config::ValidatedConfig;
use super::query_adapter::SharedStore;
use crate::api::{AppState, ReloadRequest};
use crate::scrape::{self, spawn_scrape_loops};
use crate::store::shared::ScrapeToStore;

/// The drain token and the tasks that end on it, in data-flow order.
#[derive(Debug, Default)]
pub struct Tasks {
    drain: CancellationToken,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Tasks {
    /// The one drain signal; cancelling it starts the shutdown.
    pub fn drain(&self) -> &CancellationToken {
        &self.drain
    }

    /// Spawns `task` as the next stage of the teardown order; it must end
    /// on the drain token or when its input closes.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.running.push((name, tokio::spawn(task)));
    }

    /// Drains: cancels the token and waits for every task, in the order
    /// they were spawned.
    pub async fn join(self) {
        self.drain.cancel();
        for (name, task) in self.running {
            if let Err(e) = task.await {
                tracing::error!(task = name, error = %e, "a task failed while shutting down");
            }
            tracing::debug!(task = name, "stopped");
        }
    }
}

/// The scrape loops of one scrape configuration, under a child of the
/// drain token (so a reload can stop them alone).
#[derive(Debug)]
pub struct Scraping {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Scraping {
    /// Starts a loop per target of `cfg`, appending into `store`; their
    /// handles go to `state` for the API and `/metrics`.
    pub fn start(
        cfg: &ValidatedConfig,
        store: &SharedStore,
        state: &AppState,
        drain: &CancellationToken,
    ) -> Result<Scraping, ServerError> {
        let stop = drain.child_token();
        let appender: Arc<dyn scrape::SampleAppender> =
            Arc::new(ScrapeToStore::new(Arc::clone(store)));
        let (handles, tasks) = spawn_scrape_loops(
            &cfg.scrape_configs,
            &appender,
            &state.clock,
            &stop,
            Some(&state.metrics.scrape_limit_exceeded),
        )?;
        tracing::info!(targets = handles.len(), "scraping started");
        *state.targets.write().unwrap_or_else(|e| e.into_inner()) = handles;
        Ok(Scraping { stop, tasks })
    }

    /// No loops (while a reload restarts them).
    pub fn none() -> Scraping {
        Scraping {
            stop: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// Stops every loop; each marks its series stale on the way out.
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// SIGTERM or ctrl-c cancels `drain`; SIGHUP sends a reload request. Ends
/// on `drain`.
#[cfg(unix)]
pub fn signal_handler(
    drain: CancellationToken,
    reload: mpsc::Sender<ReloadRequest>,
) -> Result<impl Future<Output = ()> + Send, ServerError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(ServerError::Signals)?;
    Ok(async move {
        loop {
            tokio::select! {
                () = drain.cancelled() => return,
                _ = term.recv() => {
                    tracing::info!("SIGTERM received");
                    drain.cancel();
                    return;
                }
                _ = tokio::signal::ctrl_c() => {
                    tracing::info!("interrupt received");
                    drain.cancel();
                    return;
                }
                got = hup.recv() => {
                    if got.is_none() { return }
                    tracing::info!("SIGHUP received");
                    if reload.send(ReloadRequest { reply: None }).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// Ctrl-c cancels `drain`. Ends on `drain`.
#[cfg(not(unix))]
pub fn signal_handler(
    drain: CancellationToken,
    _reload: mpsc::Sender<ReloadRequest>,
) -> Result<impl Future<Output = ()> + Send, ServerError> {
    Ok(async move {
        tokio::select! {
            () = drain.cancelled() => {}
            _ = tokio::signal::ctrl_c() => drain.cancel(),
        }
    })
}
