//! Reloads the configuration when its files change: every
//! `reload.watch_interval` the watcher hashes the content of the config
//! file, of every rule file its `rule_files` match now (globs are expanded
//! again, so a new file counts) and of the notification config, and sends a
//! [`ReloadRequest`] when the hash differs from the last one.
//!
//! Content is polled rather than watched with inotify because Kubernetes
//! updates a mounted ConfigMap by swapping a symlink to a new directory: the
//! file a watch was put on never changes. Polling a handful of small files
//! every few seconds costs nothing measurable.
//!
//! The reload itself is the same as SIGHUP's: a config that does not
//! validate is rejected with every problem logged, the old one keeps
//! running, and the rejection shows in `vigil_config_last_reload_successful`
//! and on `/-/ready`. A rejected content is not retried until it changes
//! again.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::config::{config_dir, expand_rule_files, ConfigFile};
use crate::api::ReloadRequest;
use crate::clock::Clock;
use crate::hash::StableHasher;

/// Computes the fingerprint of the files a config file names.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    config_file: PathBuf,
}

impl Fingerprint {
    pub fn new(config_file: &Path) -> Fingerprint {
        Fingerprint {
            config_file: config_file.to_path_buf(),
        }
    }

    /// The files watched now: the config file, then (when it parses) the
    /// rule files its globs match and its notification config.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config_file.clone()];
        let Ok(text) = std::fs::read_to_string(&self.config_file) else {
            return files;
        };
        // A config that does not parse names no other files; its own
        // content is still watched, so fixing it triggers a reload.
        let Ok(raw) = serde_yaml::from_str::<ConfigFile>(&text) else {
            return files;
        };
        let dir = config_dir(&self.config_file);
        files.extend(expand_rule_files(&dir, &raw.rule_files).0);
        if let Some(notify) = &raw.notify_config_file {
            files.push(dir.join(notify));
        }
        files
    }

    /// A hash over the watched files' paths and contents (a missing or
    /// unreadable file hashes as such, so its appearance is a change).
    pub fn compute(&self) -> u64 {
        let mut hasher = StableHasher::default();
        for file in self.files() {
            file.hash(&mut hasher);
            match std::fs::read(&file) {
                Ok(content) => {
                    true.hash(&mut hasher);
                    content.hash(&mut hasher);
                }
                Err(e) => {
                    false.hash(&mut hasher);
                    e.kind().hash(&mut hasher);
                }
            }
        }
        hasher.finish()
    }
}

/// The watcher of `config_file`, ticking every `interval` on `clock`. It
/// stops on `shutdown`.
pub fn watcher(
    config_file: &Path,
    interval: Duration,
    reload: &mpsc::Sender<ReloadRequest>,
    shutdown: &CancellationToken,
    clock: Arc<dyn Clock>,
) -> impl Future<Output = ()> + Send + 'static {
    tracing::info!(
        every = ?interval,
        config = %config_file.display(),
        "watching the configuration files for changes"
    );
    let ticks = futures::stream::unfold(clock, move |clock| async move {
        clock.sleep(interval).await;
        Some(((), clock))
    });
    watch(
        Fingerprint::new(config_file),
        Box::pin(ticks),
        reload.clone(),
        shutdown.clone(),
    )
}

/// The watch loop: takes the first fingerprint now, then compares on every
/// tick of `ticks` and asks for a reload on a change. Ends when `ticks`
/// ends, the reload channel closes, or on `shutdown`.
pub async fn watch(
    fingerprint: Fingerprint,
    mut ticks: impl Stream<Item = ()> + Unpin,
    reload: mpsc::Sender<ReloadRequest>,
    shutdown: CancellationToken,
) {
    let mut last = hash_off_thread(&fingerprint).await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            tick = ticks.next() => if tick.is_none() { return },
        }
        let now = hash_off_thread(&fingerprint).await;
        if now == last {
            continue;
        }
        last = now;
        tracing::info!("configuration files changed; reloading");
        let (tx, rx) = oneshot::channel();
        let asked = tokio::select! {
            () = shutdown.cancelled() => return,
            sent = reload.send(ReloadRequest { reply: Some(tx) }) => sent.is_ok(),
        };
        if !asked {
            return;
        }
        // Wait for the outcome so reloads never pile up; the reload logs
        // its own problems.
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = rx => {}
        }
    }
}

async fn hash_off_thread(fingerprint: &Fingerprint) -> u64 {
    let f = fingerprint.clone();
    // File reads block; a panic in the hashing would only mean "changed".
    tokio::task::spawn_blocking(move || f.compute())
        .await
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    const CONFIG: &str = "rule_files: ['rules/*.yaml']\nnotify_config_file: notify.yaml\n";

    #[test]
    fn the_fingerprint_changes_with_every_watched_file_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(dir.path(), "vigil.yaml", CONFIG);
        write(dir.path(), "rules/a.yaml", "groups: []\n");
        write(dir.path(), "notify.yaml", "route: {receiver: x}\n");
        let f = Fingerprint::new(&config);
        assert_eq!(
            f.files(),
            vec![
                config.clone(),
                dir.path().join("rules/a.yaml"),
                dir.path().join("notify.yaml")
            ]
        );
        let mut last = f.compute();
        assert_eq!(f.compute(), last, "nothing changed");

        let changed = |what: &str, last: &mut u64| {
            let now = f.compute();
            assert_ne!(now, *last, "{what} must change the fingerprint");
            *last = now;
        };
        write(dir.path(), "rules/a.yaml", "groups: [] # edited\n");
        changed("a rule file's content", &mut last);
        write(dir.path(), "rules/b.yaml", "groups: []\n");
        changed("a new file the glob matches", &mut last);
        std::fs::remove_file(dir.path().join("rules/a.yaml")).unwrap();
        changed("a removed rule file", &mut last);
        write(dir.path(), "notify.yaml", "route: {receiver: y}\n");
        changed("the notification config", &mut last);
        write(dir.path(), "vigil.yaml", &format!("{CONFIG}# comment\n"));
        changed("the config file", &mut last);

        write(dir.path(), "rules/notes.txt", "not matched by the glob");
        write(dir.path(), "other.yaml", "not named anywhere");
        assert_eq!(f.compute(), last, "files the config does not name");
    }

    #[test]
    fn a_config_that_does_not_parse_is_still_watched_itself() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(dir.path(), "vigil.yaml", "rule_files: [unclosed\n");
        let f = Fingerprint::new(&config);
        assert_eq!(f.files(), vec![config.clone()]);
        let broken = f.compute();
        write(dir.path(), "vigil.yaml", CONFIG);
        assert_ne!(f.compute(), broken);
    }

    #[test]
    fn a_kubernetes_style_symlink_swap_is_a_change() {
        // ConfigMap volumes: vigil.yaml -> ..data/vigil.yaml, ..data -> a
        // timestamped directory that an update replaces.
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "v1/vigil.yaml", "global: {}\n");
        write(
            dir.path(),
            "v2/vigil.yaml",
            "global: {evaluation_interval: 5s}\n",
        );
        std::os::unix::fs::symlink("v1", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/vigil.yaml", dir.path().join("vigil.yaml")).unwrap();
        let f = Fingerprint::new(&dir.path().join("vigil.yaml"));
        let before = f.compute();
        std::os::unix::fs::symlink("v2", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        assert_ne!(f.compute(), before);
    }

    /// One injected tick; a reload request that arrives first is returned.
    async fn tick(
        tx: &mpsc::Sender<()>,
        rx: &mut mpsc::Receiver<ReloadRequest>,
    ) -> Option<ReloadRequest> {
        tokio::select! {
            biased;
            request = rx.recv() => request,
            sent = tx.send(()) => { sent.unwrap(); None }
        }
    }

    async fn tick_until_reload(
        tx: &mpsc::Sender<()>,
        rx: &mut mpsc::Receiver<ReloadRequest>,
    ) -> ReloadRequest {
        for _ in 0..10 {
            if let Some(request) = tick(tx, rx).await {
                return request;
            }
        }
        panic!("no reload after 10 ticks");
    }

    /// Drives the loop with injected ticks: one reload per change, none on
    /// ticks without one, and a rejected content is not retried. (A send
    /// on the one-slot tick channel returns once the loop took the
    /// previous tick.)
    #[tokio::test]
    async fn the_loop_asks_for_one_reload_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(dir.path(), "vigil.yaml", CONFIG);
        write(dir.path(), "rules/a.yaml", "groups: []\n");
        write(dir.path(), "notify.yaml", "route: {receiver: x}\n");
        let (tick_tx, tick_rx) = mpsc::channel::<()>(1);
        let ticks = futures::stream::unfold(tick_rx, |mut rx| async move {
            rx.recv().await.map(|()| ((), rx))
        });
        let (reload_tx, mut reload_rx) = mpsc::channel(4);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(watch(
            Fingerprint::new(&config),
            Box::pin(ticks),
            reload_tx,
            shutdown.clone(),
        ));

        for _ in 0..3 {
            assert!(
                tick(&tick_tx, &mut reload_rx).await.is_none(),
                "nothing changed"
            );
        }
        write(dir.path(), "rules/a.yaml", "groups: [] # v2\n");
        let first = tick_until_reload(&tick_tx, &mut reload_rx).await;
        first.reply.unwrap().send(Err("rejected".into())).unwrap();
        for _ in 0..3 {
            assert!(
                tick(&tick_tx, &mut reload_rx).await.is_none(),
                "a rejected content is not retried"
            );
        }
        write(dir.path(), "rules/new.yaml", "groups: []\n");
        let second = tick_until_reload(&tick_tx, &mut reload_rx).await;
        second.reply.unwrap().send(Ok(())).unwrap();
        drop(tick_tx);
        assert!(
            reload_rx.recv().await.is_none(),
            "exactly two reloads for two changes"
        );
        task.await.unwrap();
    }

    #[tokio::test]
    async fn the_loop_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(dir.path(), "vigil.yaml", "");
        let (reload_tx, _reload_rx) = mpsc::channel(1);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(watch(
            Fingerprint::new(&config),
            Box::pin(futures::stream::pending::<()>()),
            reload_tx,
            shutdown.clone(),
        ));
        shutdown.cancel();
        task.await.unwrap();
    }
}
