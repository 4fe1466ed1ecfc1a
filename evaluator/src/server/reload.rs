//! [`Running::reload`]: a new config replaces the running one only when it
//! validates completely (rule files and notification config included);
//! rule state carries over to the groups that stay, the scrape loops
//! restart only when scraping changed, and what the new config no longer
//! holds ends now: series of removed groups are marked stale, their alerts
//! resolved.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::app::{build_groups, default_datasource, log_problems, retention_window, Running};
use super::config::{self, ConfigErrors, ValidatedConfig};
use super::tasks::Scraping;
use crate::alerts::state::millis;
use crate::notify::alert::Alert;
use crate::rules::engine::SampleAppender as _;
use crate::rules::group::{DroppedByReload, RuleGroup};
use crate::rules::send_alerts::to_notifier_alert;

impl Running {
    /// Loads and applies the config file again; on any problem (logged,
    /// and returned) nothing changes.
    pub async fn reload(&mut self) -> Result<(), ConfigErrors> {
        tracing::info!(config = %self.options.config_file.display(), "reloading configuration");
        let loaded = config::load(&self.options.config_file, &config::process_env)
            .and_then(|new| Ok((build_groups(&new, &self.groups, &self.datasources)?, new)));
        let (new_groups, mut new) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                log_problems(&e.problems);
                tracing::error!("configuration rejected; the previous configuration keeps running");
                return Err(e);
            }
        };
        log_problems(&new.warnings);
        if new.web.listen != self.cfg.web.listen
            || new.storage != self.cfg.storage
            || new.remote_write != self.cfg.remote_write
            || new.fleet != self.cfg.fleet
        {
            tracing::warn!(
                "web.listen, storage, remote_write and fleet changes take effect only after a restart"
            );
        }
        if let Some(shard) = &self.shard {
            shard.set_groups(&new);
        }
        if scrape_changed(&self.cfg, &new) {
            let old = std::mem::replace(&mut self.scraping, Scraping::none());
            old.stop().await;
            match Scraping::start(&new, &self.state.store, &self.state, self.tasks.drain()) {
                Ok(s) => self.scraping = s,
                Err(e) => tracing::error!(error = %e, "cannot restart the scrape loops"),
            }
        }
        let dropped = self.replace_groups(new_groups);
        {
            let mut n = self.notifier.lock().await;
            n.set_external_url(new.web.external_url.clone());
            n.reload(Arc::clone(&new.notify), self.clock.now());
        }
        self.receivers.send_replace(Arc::clone(&new.receivers));
        self.state.alertmanager.set_config_text(&new.notify_text);
        self.window_ms.store(
            millis(retention_window(&new.rule_groups, &self.engine)),
            Ordering::Relaxed,
        );
        *self.state.token.write().unwrap_or_else(|e| e.into_inner()) = new.web.token.clone();
        *self
            .state
            .datasource
            .write()
            .unwrap_or_else(|e| e.into_inner()) = default_datasource(&new, &self.datasources);
        self.state
            .read_requires_token
            .store(new.web.read_requires_token, Ordering::Release);
        tracing::info!(
            groups = self.groups.len(),
            rule_files = new.rule_files.len(),
            "configuration reloaded"
        );
        new.forget_rule_specs();
        self.cfg = new;
        self.end_dropped(dropped);
        Ok(())
    }

    /// Swaps in the new rule groups. Series of removed groups end now
    /// rather than after the lookback; what the old groups held that the
    /// new ones do not is returned, to be ended by [`Running::end_dropped`].
    fn replace_groups(
        &mut self,
        new_groups: Vec<Arc<std::sync::Mutex<RuleGroup>>>,
    ) -> Vec<DroppedByReload> {
        let now_ms = self.clock.now_ms();
        let mut stale = Vec::new();
        let mut dropped = Vec::new();
        {
            let new_locked: Vec<_> = new_groups
                .iter()
                .map(|g| g.lock().unwrap_or_else(|e| e.into_inner()))
                .collect();
            let new_refs: Vec<&RuleGroup> = new_locked.iter().map(|g| &**g).collect();
            for old in &self.groups {
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
            if let Err(e) = self.adapter.append(&stale) {
                tracing::warn!(error = %e, "cannot mark removed rules' series stale");
            }
        }
        self.groups = new_groups;
        *self
            .state
            .rule_groups
            .write()
            .unwrap_or_else(|e| e.into_inner()) = self.groups.clone();
        self.adapter.clear_cache();
        dropped
    }

    /// Ends the alerts a reload dropped: their episodes close in the
    /// history, and the firing ones resolve at the receivers.
    fn end_dropped(&self, dropped: Vec<DroppedByReload>) {
        let now = DateTime::<Utc>::from_timestamp_millis(self.clock.now_ms()).unwrap_or_default();
        for d in dropped {
            for write in self.tracker.close_dropped(&d, now) {
                let _ = self.durability.writer.record(write);
            }
            let fired: Vec<Alert> = d
                .alerts
                .into_iter()
                .filter(|(a, _)| a.resolved_at_ms.is_some())
                .map(|(a, source)| to_notifier_alert(a, &source, &self.cfg.web.external_url))
                .collect();
            if !fired.is_empty() {
                let _ = self.alerts.send(fired);
            }
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
