//! The running evaluator's side of rule-group sharding
//! ([`crate::history::fleet`]): starting the fleet's rounds, and the
//! [`Admission`] through which the scheduler evaluates only the groups
//! this replica holds — restoring a group's saved alert state (and the
//! notification log) from the database before its first evaluation here,
//! and putting a group that moved away aside without notifying anything
//! about its alerts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::{FleetSettings, ValidatedConfig};
use crate::clock::Clock;
use crate::history::db::Database;
use crate::history::fleet::{
    group_key, group_lease, Fleet, FleetAround, FleetConfig, FleetMetrics, FleetView,
};
use crate::history::leader::Ticks;
use crate::history::lease::{Fence, Leases};
use crate::history::restore::load_notification_state;
use crate::history::tracker::AlertTracker;
use crate::history::writer::HistoryWriter;
use crate::history::HistoryStore;
use crate::notify::alert::Fingerprint;
use crate::notify::notifier::Notifier;
use crate::remote_write::{QueuedMark, RemoteWrite};
use crate::rules::group::RuleGroup;
use crate::rules::scheduler::Admission;

/// This replica's share of a sharded fleet: the rounds, and the epoch under
/// which each group it evaluates was restored.
#[derive(Debug)]
pub struct Shard {
    pub fleet: Fleet,
    view: watch::Receiver<Arc<FleetView>>,
    groups: watch::Sender<Arc<Vec<String>>>,
    restored: Mutex<HashMap<String, Held>>,
    /// The slot claims, on a pool of their own (the rounds' renewals must
    /// not wait behind them).
    claims: Leases,
    /// The rule group each alert sent to the notifier came from.
    origins: Arc<Mutex<Origins>>,
    /// The fleet view under which the saved notification state was last
    /// merged into the notifier: the groups taken under one view share
    /// one read of it.
    merged_under: tokio::sync::Mutex<Option<Arc<FleetView>>>,
    shutdown: CancellationToken,
}

/// Which rule group each alert came from, with when it last came; entries
/// not refreshed for [`ORIGIN_KEPT`] are dropped (a firing alert is sent
/// again every minute, a resolved one for 15 minutes).
#[derive(Debug, Default)]
struct Origins {
    by_fingerprint: HashMap<Fingerprint, (String, std::time::Instant)>,
    noted: usize,
}

const ORIGIN_KEPT: std::time::Duration = std::time::Duration::from_secs(3_600);

/// A group this replica evaluates: the epoch under which it was restored,
/// the last slot claimed under its lease (by whichever replica), the slot
/// being evaluated now (earlier ones are late), and what remote write had
/// been given when its last evaluation here ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    epoch: i64,
    progress: Option<i64>,
    current: i64,
    written: Option<QueuedMark>,
}

/// How many lease durations (beyond one interval) back a group taken here
/// catches up on the slots its previous owner missed: a dead owner's slots
/// are missed for a lease duration plus a heartbeat plus the take itself;
/// older slots (the whole fleet was down) are not evaluated late, as
/// Prometheus does not after a restart.
const CATCH_UP_LEASES: u32 = 3;
/// At most this many late slots per take, whatever the interval.
const CATCH_UP_MAX_SLOTS: usize = 100;
/// How long a claim waits at most (and never longer than the group's
/// interval) for remote write to send the group's previous samples: a
/// slow receiver must not hold alerting up for longer.
const WRITTEN_WAIT_AT_MOST: Duration = Duration::from_secs(5);

impl Shard {
    /// Starts the fleet's rounds for the groups of `cfg` (on a pool of its
    /// own, so a busy history pool cannot starve renewals), until
    /// [`Shard::stop`]; the replica joins the fleet once `joinable` says
    /// `true`.
    pub fn start(
        cfg: &ValidatedConfig,
        settings: FleetSettings,
        writer: &HistoryWriter,
        registry: &prometheus::Registry,
        clock: Arc<dyn Clock>,
        joinable: watch::Receiver<bool>,
    ) -> Result<Shard, String> {
        let db = Database::connect_lazy_with(&cfg.storage.database_url, cfg.storage.pooling)
            .map_err(|e| e.to_string())?;
        let metrics = FleetMetrics::register(registry)
            .map_err(|e| format!("cannot register the fleet metrics: {e}"))?;
        let (groups, groups_rx) = watch::channel(Arc::new(group_keys(cfg)));
        let shutdown = CancellationToken::new();
        let fleet = Fleet::start(
            Leases::new(db),
            FleetConfig::new(settings.lease_duration, settings.heartbeat),
            groups_rx,
            FleetAround {
                writer: Some(writer.clone()),
                metrics,
                joinable: Some(joinable),
            },
            Ticks::Every(settings.heartbeat),
            clock,
            shutdown.clone(),
        );
        tracing::info!(member = fleet.member(), heartbeat = ?settings.heartbeat, lease = ?settings.lease_duration, "rule-group sharding on: evaluating the groups this replica owns");
        Ok(Shard::new(fleet, groups, shutdown))
    }

    /// The share of `fleet`, whose group list `groups` sends and whose
    /// rounds `shutdown` stops.
    pub fn new(
        fleet: Fleet,
        groups: watch::Sender<Arc<Vec<String>>>,
        shutdown: CancellationToken,
    ) -> Shard {
        Shard {
            view: fleet.subscribe(),
            claims: fleet.leases().reconnected(),
            fleet,
            groups,
            restored: Mutex::default(),
            origins: Arc::default(),
            merged_under: tokio::sync::Mutex::default(),
            shutdown,
        }
    }

    /// Notes that `alerts`, about to go to the notifier, came from `group`.
    pub fn note_origin(&self, group: &RuleGroup, alerts: &[crate::notify::alert::Alert]) {
        let key = group_key(&group.file, &group.name);
        let now = std::time::Instant::now();
        let mut origins = self.origins.lock().unwrap_or_else(|e| e.into_inner());
        for alert in alerts {
            origins
                .by_fingerprint
                .insert(alert.fingerprint(), (key.clone(), now));
        }
        origins.noted += alerts.len();
        if origins.noted > origins.by_fingerprint.len().max(1_024) {
            origins.noted = 0;
            origins
                .by_fingerprint
                .retain(|_, (_, seen)| now.duration_since(*seen) < ORIGIN_KEPT);
        }
    }

    /// The notifier's check before every flush: an alert whose rule group
    /// this replica no longer holds under a valid term (the term runs out
    /// on the monotonic clock, so a replica frozen past its lease finds it
    /// ended the moment it runs again) is not notified from here.
    pub fn notify_guard(&self) -> crate::notify::notifier::NotifyGuard {
        let origins = Arc::clone(&self.origins);
        let view = self.view.clone();
        Arc::new(move |fingerprints| {
            let origins = origins.lock().unwrap_or_else(|e| e.into_inner());
            let view = view.borrow();
            fingerprints
                .filter(|fingerprint| {
                    origins
                        .by_fingerprint
                        .get(fingerprint)
                        .is_some_and(|(group, _)| view.term(group).is_none())
                })
                .collect()
        })
    }

    /// Leaves the fleet (after evaluation stopped): the groups' last state
    /// written, every lease released, so the other replicas take the
    /// groups at their next round.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.fleet.join().await;
    }

    /// After a reload: the groups of the new config.
    pub fn set_groups(&self, cfg: &ValidatedConfig) {
        self.groups.send_replace(Arc::new(group_keys(cfg)));
    }

    /// Whether only one configured rule group is called `name` (alert
    /// snapshots name their group, not its file).
    pub fn group_name_is_unique(&self, name: &str) -> bool {
        let suffix = format!("/{name}");
        self.groups
            .borrow()
            .iter()
            .filter(|key| key.ends_with(&suffix))
            .count()
            == 1
    }

    /// The fence of `group`'s history writes while this replica holds it.
    pub fn fence(&self, group: &RuleGroup) -> Option<Fence> {
        self.view
            .borrow()
            .fence(&group_key(&group.file, &group.name))
    }

    /// What the sweep of removed groups follows.
    pub fn removed_groups_sweep(&self) -> RemovedGroupsSweep {
        RemovedGroupsSweep {
            view: self.view.clone(),
            groups: self.groups.subscribe(),
        }
    }

    /// This replica's view of the fleet now.
    pub fn view(&self) -> Arc<FleetView> {
        Arc::clone(&self.view.borrow())
    }

    fn restored(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.restored.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes the alerts of each group this replica stops holding out of the
/// notifier at once (the scheduler puts the group itself aside only at its
/// next slot): a notification group waiting for its `group_wait` must not
/// flush them from here after the new owner read what was notified.
/// Runs until `drain`.
pub async fn forget_moved(
    mut view: watch::Receiver<Arc<FleetView>>,
    state: Arc<crate::api::AppState>,
    notifier: Arc<tokio::sync::Mutex<Notifier>>,
    drain: CancellationToken,
) {
    let mut held: Vec<String> = view.borrow_and_update().owned.keys().cloned().collect();
    loop {
        tokio::select! {
            () = drain.cancelled() => return,
            changed = view.changed() => if changed.is_err() { return },
        }
        let now: Vec<String> = view.borrow_and_update().owned.keys().cloned().collect();
        let gone: Vec<&String> = held.iter().filter(|k| !now.contains(k)).collect();
        if !gone.is_empty() {
            let mut forgotten = Vec::new();
            for g in state.current_rule_groups() {
                let g = lock(&g);
                if gone.contains(&&group_key(&g.file, &g.name)) {
                    forgotten.extend(
                        crate::history::tracker::alerting(&g).map(|a| Fingerprint::of(&a.labels)),
                    );
                }
            }
            notifier.lock().await.forget(&forgotten);
        }
        held = now;
    }
}

/// How often a sharded replica looks for saved alerts of rule groups that
/// no configuration has any more.
pub const REMOVED_GROUPS_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Every [`REMOVED_GROUPS_EVERY`] until `drain`, once the fleet's first
/// round is in: the saved alerts of rule groups that this replica's config
/// does not have and that no live replica holds (removed while the fleet
/// was down — a running owner closes them itself on reload) are claimed one
/// by one, so one replica alone closes each episode and tells receivers a
/// firing one ended.
pub async fn resolve_removed_groups(
    fleet: RemovedGroupsSweep,
    store: HistoryStore,
    writer: HistoryWriter,
    notifier: Arc<tokio::sync::Mutex<Notifier>>,
    clock: Arc<dyn Clock>,
    drain: CancellationToken,
) {
    let mut view = fleet.view.clone();
    loop {
        if !view.borrow_and_update().members.is_empty() {
            if let Err(error) =
                resolve_removed_once(&fleet, &store, &writer, &notifier, &clock).await
            {
                tracing::warn!(%error, "cannot look for the saved alerts of removed rule groups; trying again later");
            }
        }
        tokio::select! {
            () = drain.cancelled() => return,
            () = clock.sleep(REMOVED_GROUPS_EVERY) => {}
        }
    }
}

/// What [`resolve_removed_groups`] follows of the fleet: its view, and
/// this replica's configured groups.
pub struct RemovedGroupsSweep {
    view: watch::Receiver<Arc<FleetView>>,
    groups: watch::Receiver<Arc<Vec<String>>>,
}

async fn resolve_removed_once(
    fleet: &RemovedGroupsSweep,
    store: &HistoryStore,
    writer: &HistoryWriter,
    notifier: &tokio::sync::Mutex<Notifier>,
    clock: &Arc<dyn Clock>,
) -> Result<(), crate::history::HistoryError> {
    let view = Arc::clone(&fleet.view.borrow());
    let configured = Arc::clone(&fleet.groups.borrow());
    let removed: Vec<String> = store
        .saved_group_names()
        .await?
        .into_iter()
        .filter(|name| {
            let suffix = format!("/{name}");
            let named = |key: &String| key.ends_with(&suffix);
            !configured.iter().any(named) && !view.owners.keys().any(named)
        })
        .collect();
    for name in removed {
        let mut claimed = Vec::new();
        for snapshot in store.load_group_snapshots(&name).await? {
            if store.claim_snapshot(snapshot.fingerprint, &name).await? {
                claimed.push(snapshot);
            }
        }
        if claimed.is_empty() {
            continue;
        }
        let now = clock.now();
        let (writes, resolved) = crate::history::tracker::rule_gone(&claimed, now);
        tracing::info!(
            group = name,
            alerts = claimed.len(),
            resolved = resolved.len(),
            "closing the saved alerts of a rule group no replica has any more"
        );
        for write in writes {
            let _ = writer.record(write);
        }
        notifier.lock().await.ingest(resolved, now);
    }
    Ok(())
}

fn group_keys(cfg: &ValidatedConfig) -> Vec<String> {
    cfg.rule_groups
        .iter()
        .map(|g| group_key(&g.file, &g.name))
        .collect()
}

/// The scheduler's admission for a sharded replica.
pub struct ShardAdmission<'a> {
    pub shard: &'a Shard,
    pub store: &'a HistoryStore,
    pub writer: &'a HistoryWriter,
    pub tracker: &'a AlertTracker,
    pub notifier: &'a Arc<tokio::sync::Mutex<Notifier>>,
    pub remote_write: &'a RemoteWrite,
    pub clock: &'a Arc<dyn Clock>,
}

impl ShardAdmission<'_> {
    /// Takes `group` in under `epoch`: its saved alerts and the notification
    /// log from the database, replacing whatever it held. False when the
    /// database did not answer (the group waits for its next slot rather
    /// than evaluating without its state).
    async fn take(
        &self,
        group: &Mutex<RuleGroup>,
        key: &str,
        epoch: i64,
        view: &Arc<FleetView>,
    ) -> bool {
        if let Err(error) = self.merge_notification_state(view).await {
            tracing::warn!(group = key, %error, "cannot load what was notified; the rule group is evaluated once the database answers");
            return false;
        }
        let name = lock(group).name.clone();
        let snapshots = match self.store.load_group_snapshots(&name).await {
            Ok(snapshots) => snapshots,
            Err(error) => {
                tracing::warn!(group = key, %error, "cannot load the rule group's saved alert state; it is evaluated once the database answers");
                return false;
            }
        };
        let progress = match self.shard.claims.progress(&group_lease(key)).await {
            Ok(progress) => progress,
            Err(error) => {
                tracing::warn!(group = key, %error, "cannot read the rule group's last evaluated slot; it is evaluated once the database answers");
                return false;
            }
        };
        let now = self.clock.now();
        let (stale, restored, (closing, resolved)) = {
            let mut g = lock(group);
            let stale = fingerprints(&g.forget_alerts());
            self.tracker.forget_group(&g);
            let restored = self.tracker.restore(&mut g, &snapshots);
            // Saved alerts of this group that no rule took back: their rule
            // was removed while the fleet was down. Unless another file has
            // a group of the same name (the snapshots name the group only).
            let gone = if self.shard.group_name_is_unique(&name) {
                self.tracker.not_taken_back(&snapshots, now)
            } else {
                Default::default()
            };
            (stale, restored, gone)
        };
        if !closing.is_empty() {
            let Some(fence) = self.shard.view().fence(key) else {
                return false;
            };
            tracing::info!(
                group = key,
                alerts = resolved.len(),
                "closing the saved alerts of rules no longer in the group"
            );
            for write in closing {
                let _ = self
                    .writer
                    .record(crate::history::store::HistoryWrite::Fenced {
                        fence: fence.clone(),
                        write: Box::new(write),
                    });
            }
        }
        {
            let mut notifier = self.notifier.lock().await;
            notifier.forget(&stale);
            notifier.ingest(resolved, now);
        }
        self.shard.restored().insert(
            key.to_string(),
            Held {
                epoch,
                progress,
                current: i64::MIN,
                written: None,
            },
        );
        tracing::info!(
            group = key,
            epoch,
            alerts = restored,
            "evaluating the rule group here from now on, its alert state restored"
        );
        true
    }

    /// Merges what was notified into the notifier, once per fleet view: the
    /// first group taken under `view` reads it, the others taken under the
    /// same view find it done.
    async fn merge_notification_state(&self, view: &Arc<FleetView>) -> Result<(), String> {
        let mut merged_under = self.shard.merged_under.lock().await;
        if merged_under.as_ref().is_some_and(|v| Arc::ptr_eq(v, view)) {
            return Ok(());
        }
        let saved = load_notification_state(self.store, self.clock.now())
            .await
            .map_err(|e| e.to_string())?;
        saved.restore_notifier(&mut *self.notifier.lock().await, true);
        *merged_under = Some(Arc::clone(view));
        Ok(())
    }

    /// Puts `group` aside: it moved to another replica, which restores its
    /// alerts and notifies them from now on.
    async fn put_aside(&self, group: &Mutex<RuleGroup>, key: &str) {
        let forgotten = {
            let mut g = lock(group);
            self.tracker.forget_group(&g);
            fingerprints(&g.forget_alerts())
        };
        self.notifier.lock().await.forget(&forgotten);
        tracing::info!(
            group = key,
            alerts = forgotten.len(),
            "the rule group moved to another replica: stopped evaluating it"
        );
    }
}

#[async_trait::async_trait(?Send)]
impl Admission for ShardAdmission<'_> {
    /// For a group on a datasource, the slots after the last claimed one
    /// that nobody evaluated (back to one interval and [`CATCH_UP_LEASES`]
    /// lease durations before `slot_ms`: a group is taken between slots and
    /// first evaluated at the next), then `slot_ms`; each is claimed right
    /// before it is evaluated. A group on the local window is not evaluated
    /// late: this replica's window need not hold those slots' samples (it
    /// may have started a moment ago).
    async fn admit(&self, group: &Mutex<RuleGroup>, slot_ms: i64) -> Vec<i64> {
        let (key, interval, on_datasource) = {
            let g = lock(group);
            (
                group_key(&g.file, &g.name),
                g.interval,
                g.datasource.is_some(),
            )
        };
        let view = self.shard.view();
        let Some(epoch) = view.term(&key).and_then(|t| t.epoch()) else {
            if self.shard.restored().remove(&key).is_some() {
                self.put_aside(group, &key).await;
            }
            return Vec::new();
        };
        let taken = self.shard.restored().get(&key).map(|h| h.epoch) == Some(epoch);
        if !taken && !self.take(group, &key, epoch, &view).await {
            return Vec::new();
        }
        let progress = {
            let mut restored = self.shard.restored();
            let Some(held) = restored.get_mut(&key) else {
                return Vec::new();
            };
            held.current = slot_ms;
            held.progress
        };
        let interval_ms = crate::alerts::state::millis(interval);
        let earliest =
            slot_ms
                .saturating_sub(interval_ms)
                .saturating_sub(crate::alerts::state::millis(
                    self.shard.fleet.lease_duration() * CATCH_UP_LEASES,
                ));
        let mut slots = if on_datasource {
            missed_slots(progress, slot_ms, interval_ms, earliest)
        } else {
            Vec::new()
        };
        if !slots.is_empty() {
            tracing::info!(
                group = key,
                slots = slots.len(),
                "evaluating the slots of the rule group that nobody evaluated"
            );
        }
        slots.push(slot_ms);
        slots
    }

    /// Claims `slot_ms` in the database under the group's lease, so no
    /// other replica evaluates it, even one that takes the group a moment
    /// later. Refused when this replica's term ended, the lease moved on or
    /// ran out, or the slot was claimed already; when the database does not
    /// answer, the slot is left for a late evaluation at the next slot.
    ///
    /// First waits (at most [`WRITTEN_WAIT_AT_MOST`], and not while the
    /// receiver fails) until remote write sent what the group's previous
    /// evaluation here recorded: a claimed slot is never evaluated again,
    /// so were this replica killed with several slots' samples queued, all
    /// of them would be lost; this way at most the last one is.
    async fn claim(&self, group: &Mutex<RuleGroup>, slot_ms: i64) -> bool {
        let (key, interval) = {
            let g = lock(group);
            if !self.holds(&g) {
                return false;
            }
            (group_key(&g.file, &g.name), g.interval)
        };
        let written = self
            .shard
            .restored()
            .get_mut(&key)
            .and_then(|h| h.written.take());
        if let Some(written) = written {
            let deadline = crate::clock::add(self.clock.now(), interval.min(WRITTEN_WAIT_AT_MOST));
            if !self
                .remote_write
                .settled(&written, self.clock.as_ref(), deadline)
                .await
            {
                tracing::debug!(group = key, slot_ms, "remote write has not sent the group's previous samples yet; claiming the next slot anyway");
            }
        }
        let Some(fence) = self.shard.view().fence(&key) else {
            return false;
        };
        match self.shard.claims.claim_slot(&fence, slot_ms).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(group = key, slot_ms, %fence, "the database refused this evaluation slot (the group's lease moved on or ran out, or the slot was claimed already); not evaluating it here");
                return false;
            }
            Err(error) => {
                tracing::warn!(group = key, slot_ms, %error, "cannot claim this evaluation slot; it is evaluated late at the next slot if the database answers by then");
                return false;
            }
        }
        let mut restored = self.shard.restored();
        let Some(held) = restored.get_mut(&key).filter(|h| h.epoch == fence.epoch) else {
            return false;
        };
        held.progress = Some(slot_ms);
        if slot_ms < held.current {
            self.shard.fleet.metrics().slots_caught_up.inc();
        }
        true
    }

    /// Remembers what remote write was given up to the end of this
    /// evaluation, for the next claim to wait for.
    fn evaluated(&self, group: &RuleGroup) {
        if !self.remote_write.is_enabled() {
            return;
        }
        let key = group_key(&group.file, &group.name);
        if let Some(held) = self.shard.restored().get_mut(&key) {
            held.written = Some(self.remote_write.mark());
        }
    }
}

impl ShardAdmission<'_> {
    /// Whether this replica may evaluate `group` now: it holds the group
    /// under a valid term, and restored it under that term's epoch.
    fn holds(&self, group: &RuleGroup) -> bool {
        let key = group_key(&group.file, &group.name);
        let view = self.shard.view();
        let term = view.term(&key).and_then(|t| t.epoch());
        term.is_some() && self.shard.restored().get(&key).map(|h| h.epoch) == term
    }
}

/// The slots of a group evaluated every `interval_ms` strictly between
/// `previous` (the last claimed one) and `slot_ms`, not before `earliest`,
/// ascending; at most [`CATCH_UP_MAX_SLOTS`], the latest ones.
fn missed_slots(previous: Option<i64>, slot_ms: i64, interval_ms: i64, earliest: i64) -> Vec<i64> {
    let Some(previous) = previous else {
        return Vec::new();
    };
    if interval_ms <= 0 {
        return Vec::new();
    }
    let mut slots = Vec::new();
    let mut t = slot_ms - interval_ms;
    while t > previous && t >= earliest && slots.len() < CATCH_UP_MAX_SLOTS {
        slots.push(t);
        t -= interval_ms;
    }
    slots.reverse();
    slots
}

fn lock(group: &Mutex<RuleGroup>) -> std::sync::MutexGuard<'_, RuleGroup> {
    group.lock().unwrap_or_else(|e| e.into_inner())
}

fn fingerprints(alerts: &[crate::alerts::Alert]) -> Vec<Fingerprint> {
    alerts.iter().map(|a| Fingerprint::of(&a.labels)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use prometheus::Registry;

    use super::*;
    use crate::alerts::state::AlertState;
    use crate::clock::SimClock;
    use crate::history::fleet::{FleetMetrics, DEFAULT_HEARTBEAT, DEFAULT_LEASE_DURATION};
    use crate::history::leader::ManualTicks;
    use crate::history::store::{AlertSnapshot, HistoryState};
    use crate::labels::Labels;
    use crate::notify::fixtures::notify_config;
    use crate::rules::file::parse_rule_file;

    const RULES: &str =
        "groups:\n- name: g\n  rules:\n  - alert: Slow\n    expr: vector(1)\n    for: 10m\n";

    fn group() -> Mutex<RuleGroup> {
        let spec = parse_rule_file(Path::new("/rules/r.yaml"), RULES)
            .unwrap()
            .remove(0);
        Mutex::new(RuleGroup::new(spec, Duration::from_secs(60)).unwrap())
    }

    fn pending_since(active_at: DateTime<Utc>) -> AlertSnapshot {
        let labels = Labels::from_pairs([("alertname", "Slow")]);
        AlertSnapshot {
            fingerprint: Fingerprint::of(&labels),
            rule: "Slow".into(),
            group_name: "g".into(),
            labels,
            annotations: Default::default(),
            state: HistoryState::Pending,
            active_at,
            fired_at: None,
            resolved_at: None,
            keep_firing_since: None,
            last_sent_at: None,
            value: Some(1.0),
            updated_at: active_at,
        }
    }

    /// A shard of group `/rules/r.yaml` `g` alone, on `db`, whose rounds
    /// run when the returned ticks step.
    fn shard_of_g(db: Database, clock: &Arc<dyn Clock>) -> (Shard, ManualTicks) {
        let (ticks, step): (Ticks, ManualTicks) = Ticks::manual();
        let key = group_key(Path::new("/rules/r.yaml"), "g");
        let (groups_tx, groups_rx) = watch::channel(Arc::new(vec![key]));
        let shutdown = CancellationToken::new();
        let fleet = Fleet::start(
            Leases::new(db),
            FleetConfig::new(DEFAULT_LEASE_DURATION, DEFAULT_HEARTBEAT),
            groups_rx,
            FleetAround {
                writer: None,
                metrics: FleetMetrics::register(&Registry::new()).unwrap(),
                joinable: None,
            },
            ticks,
            Arc::clone(clock),
            shutdown.clone(),
        );
        (Shard::new(fleet, groups_tx, shutdown), step)
    }

    /// A history writer on `store`; cancel the token and await the handle
    /// to have every write in.
    fn history_writer(
        store: &HistoryStore,
    ) -> (
        HistoryWriter,
        tokio::task::JoinHandle<crate::history::writer::WriterSummary>,
        CancellationToken,
    ) {
        let stop = CancellationToken::new();
        let (writer, written) = HistoryWriter::spawn(
            store.clone(),
            crate::history::writer::WriterConfig::default(),
            &Registry::new(),
            stop.clone(),
        )
        .unwrap();
        (writer, written, stop)
    }

    /// A replica taking group `g` alone: its shard (whose rounds run when
    /// `step` steps), store, history writer, tracker and notifier, on `db`
    /// with `clock`.
    struct Taker {
        shard: Shard,
        step: ManualTicks,
        store: HistoryStore,
        writer: HistoryWriter,
        written: tokio::sync::Mutex<
            Option<tokio::task::JoinHandle<crate::history::writer::WriterSummary>>,
        >,
        writer_stop: CancellationToken,
        tracker: AlertTracker,
        notifier: Arc<tokio::sync::Mutex<Notifier>>,
        remote_write: RemoteWrite,
        clock: Arc<dyn Clock>,
    }

    impl Taker {
        fn new(db: Database, clock: Arc<dyn Clock>) -> Taker {
            let store = HistoryStore::new(db.clone());
            let (writer, written, writer_stop) = history_writer(&store);
            let (shard, step) = shard_of_g(db, &clock);
            let notifier = Arc::new(tokio::sync::Mutex::new(Notifier::new(Arc::new(
                notify_config("route: {receiver: r}\nreceivers: [{name: r}]\n"),
            ))));
            Taker {
                shard,
                step,
                store,
                writer,
                written: tokio::sync::Mutex::new(Some(written)),
                writer_stop,
                tracker: AlertTracker::default(),
                notifier,
                remote_write: RemoteWrite::default(),
                clock,
            }
        }

        /// Stops the history writer once every write is in.
        async fn stop_writing(&self) {
            self.writer_stop.cancel();
            if let Some(written) = self.written.lock().await.take() {
                written.await.unwrap();
            }
        }

        /// Every history write in, the shard stopped.
        async fn finish(self) {
            self.stop_writing().await;
            self.shard.stop().await;
        }

        fn admission(&self) -> ShardAdmission<'_> {
            ShardAdmission {
                shard: &self.shard,
                store: &self.store,
                writer: &self.writer,
                tracker: &self.tracker,
                notifier: &self.notifier,
                remote_write: &self.remote_write,
                clock: &self.clock,
            }
        }
    }

    /// A saved firing alert `name` of group `group`, since `at`.
    fn firing_in(group: &str, name: &str, at: DateTime<Utc>) -> AlertSnapshot {
        let labels = Labels::from_pairs([("alertname", name)]);
        AlertSnapshot {
            fingerprint: Fingerprint::of(&labels),
            rule: name.into(),
            group_name: group.into(),
            labels,
            state: HistoryState::Firing,
            fired_at: Some(at),
            ..pending_since(at)
        }
    }

    async fn sqlite(dir: &tempfile::TempDir) -> Database {
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        Database::connect(&url).await.unwrap()
    }

    #[tokio::test]
    async fn a_taken_group_gets_its_pending_timer_back_and_a_lost_one_is_put_aside() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir).await;
        let active_at = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SimClock::new(active_at));
        let taker = Taker::new(db, clock);
        let (shard, step, store, notifier, clock) = (
            &taker.shard,
            &taker.step,
            &taker.store,
            &taker.notifier,
            &taker.clock,
        );
        // And a firing alert of a rule the group no longer has.
        let gone = firing_in("g", "Removed", active_at);
        store
            .save_snapshots(&[pending_since(active_at), gone.clone()])
            .await
            .unwrap();
        let admission = taker.admission();
        let g = group();
        let slot = clock.now_ms();
        assert!(
            admission.admit(&g, slot).await.is_empty(),
            "not held before a round"
        );

        step.step().await;
        assert_eq!(
            admission.admit(&g, slot).await,
            [slot],
            "held after the round"
        );
        assert!(admission.holds(&lock(&g)));
        let restored: Vec<(AlertState, i64)> = lock(&g)
            .rules
            .iter()
            .filter_map(|e| match &e.rule {
                crate::rules::group::Rule::Alerting(r) => Some(r),
                _ => None,
            })
            .flat_map(|r| {
                r.active_alerts()
                    .map(|a| (a.state, a.active_at_ms))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            restored,
            [(AlertState::Pending, active_at.timestamp_millis())],
            "the `for` timer runs on from when it started"
        );
        let told = notifier.lock().await.snapshot();
        let removed = told
            .alerts
            .iter()
            .find(|a| a.alert.fingerprint() == gone.fingerprint)
            .expect("the removed rule's alert goes to the notifier");
        assert_eq!(
            removed.alert.status_at(clock.now()),
            crate::notify::alert::AlertStatus::Resolved,
            "as resolved, so receivers told it fires hear it ended"
        );
        taker.stop_writing().await;
        let left: Vec<String> = store
            .load_snapshots()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.rule)
            .collect();
        assert_eq!(left, ["Slow"], "the removed rule's snapshot is dropped");

        // The group goes (a reload removed it here): given back at the next
        // round, put aside at its next slot.
        shard.groups.send_replace(Arc::new(Vec::new()));
        step.step().await;
        assert!(!admission.holds(&lock(&g)));
        assert!(admission.admit(&g, slot + 60_000).await.is_empty());
        assert_eq!(lock(&g).forget_alerts().len(), 0, "its alerts were dropped");
        taker.finish().await;
    }

    #[tokio::test]
    async fn a_taken_group_evaluates_the_slots_its_previous_owner_missed_and_no_slot_twice() {
        let dir = tempfile::tempdir().unwrap();
        let start = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap();
        let taker = Taker::new(sqlite(&dir).await, Arc::new(SimClock::new(start)));
        let (shard, clock) = (&taker.shard, &taker.clock);
        let admission = taker.admission();
        let g = group();
        taker.step.step().await;
        let local = lock(&g).datasource.is_none();
        assert!(local);
        lock(&g).datasource = Some(Arc::new(unreachable_datasource()));
        // The previous owner claimed (and maybe evaluated) a slot three
        // intervals before this one, then died.
        let minute = 60_000;
        let slot = clock.now_ms();
        let fence = shard
            .view()
            .fence(&group_key(Path::new("/rules/r.yaml"), "g"));
        let fence = fence.expect("held after the round");
        assert!(shard
            .claims
            .claim_slot(&fence, slot - 3 * minute)
            .await
            .unwrap());

        let slots = admission.admit(&g, slot).await;
        assert_eq!(
            slots,
            [slot - minute, slot],
            "the slot nobody evaluated first, then this one; the one before \
             is older than an interval and three leases, not evaluated late"
        );
        for s in slots {
            assert!(admission.claim(&g, s).await, "slot {s} claimed");
        }
        assert_eq!(shard.fleet.metrics().slots_caught_up.get(), 1);
        assert!(
            !admission.claim(&g, slot).await,
            "a claimed slot is not evaluated again"
        );
        assert_eq!(admission.admit(&g, slot + minute).await, [slot + minute]);
        assert!(admission.claim(&g, slot + minute).await);
        assert_eq!(
            shard.claims.progress(&fence.lease).await.unwrap(),
            Some(slot + minute)
        );

        // On the local window, no slot is evaluated late: this replica's
        // window need not hold them.
        lock(&g).datasource = None;
        let later = slot + 3 * minute;
        assert_eq!(admission.admit(&g, later).await, [later]);
        taker.finish().await;
    }

    /// A datasource client whose queries are never sent (the admission only
    /// asks whether a group has one).
    fn unreachable_datasource() -> crate::datasource::DatasourceClient {
        let settings = crate::datasource::config::DatasourceSettings {
            url: "http://127.0.0.1:9".to_string(),
            headers: Vec::new(),
            query_timeout: Duration::from_secs(1),
            query_offset: None,
            retries: 0,
            http: Default::default(),
        };
        let errors = prometheus::IntCounter::new("errors_total", "errors").unwrap();
        crate::datasource::DatasourceClient::new(
            settings,
            Arc::new(crate::clock::SystemClock),
            errors,
        )
        .unwrap()
    }

    #[test]
    fn missed_slots_are_the_ones_between_the_last_claim_and_now_within_the_window() {
        assert_eq!(missed_slots(None, 100, 10, 0), Vec::<i64>::new());
        assert_eq!(missed_slots(Some(90), 100, 10, 0), Vec::<i64>::new());
        assert_eq!(missed_slots(Some(60), 100, 10, 0), [70, 80, 90]);
        assert_eq!(missed_slots(Some(60), 100, 10, 85), [90]);
        // A claim off the current schedule (the interval changed).
        assert_eq!(missed_slots(Some(75), 100, 10, 0), [80, 90]);
        assert_eq!(
            missed_slots(Some(0), 100_000, 1, 0).len(),
            CATCH_UP_MAX_SLOTS
        );
        assert_eq!(missed_slots(Some(0), 100, 0, 0), Vec::<i64>::new());
    }

    #[tokio::test]
    async fn a_replica_frozen_past_its_lease_holds_the_groups_alerts_back_until_it_holds_it_again()
    {
        let dir = tempfile::tempdir().unwrap();
        let start = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap();
        let sim = Arc::new(SimClock::new(start));
        let clock: Arc<dyn Clock> = sim.clone();
        let (shard, step) = shard_of_g(sqlite(&dir).await, &clock);
        step.step().await;
        let mut notifier = Notifier::new(Arc::new(notify_config(
            "route: {receiver: r, group_wait: 30s}\nreceivers: [{name: r, console_configs: [{}]}]\n",
        )));
        notifier.set_guard(shard.notify_guard());
        let alert = crate::notify::alert::Alert {
            labels: Labels::from_pairs([("alertname", "Slow")]),
            annotations: Default::default(),
            starts_at: start,
            ends_at: None,
            generator_url: String::new(),
            cooldown: None,
        };
        let unrelated = crate::notify::alert::Alert {
            labels: Labels::from_pairs([("alertname", "Other")]),
            ..alert.clone()
        };
        shard.note_origin(&lock(&group()), std::slice::from_ref(&alert));
        notifier.ingest(vec![alert.clone(), unrelated], start);
        assert!(notifier.tick(start).is_empty(), "waiting for group_wait");
        assert!(
            notifier.holds(alert.fingerprint()),
            "held while the term is valid"
        );

        // Frozen (no round ran) past the lease: the term ran out on the
        // monotonic clock, so the group's alert goes before the flush.
        sim.advance(DEFAULT_LEASE_DURATION + Duration::from_secs(30));
        let sent = notifier.tick(clock.now());
        assert!(!notifier.holds(alert.fingerprint()));
        let names: Vec<String> = sent
            .iter()
            .flat_map(|n| {
                n.alerts.iter().map(|a| {
                    a.alert
                        .labels
                        .get("alertname")
                        .unwrap_or_default()
                        .to_string()
                })
            })
            .collect();
        assert_eq!(
            names,
            ["Other"],
            "only the alert of no known group is notified"
        );

        // It runs again and renews its lease in time (the group is still
        // its own): the held-back alert is notified from here after all.
        step.step().await;
        assert!(notifier.tick(clock.now()).is_empty());
        assert!(notifier.holds(alert.fingerprint()), "taken back in");
        // In the group `Other` was flushed in: at its next group_interval.
        sim.advance(Duration::from_secs(5 * 60 + 1));
        step.step().await;
        let sent = notifier.tick(clock.now());
        let names: Vec<&str> = sent
            .iter()
            .flat_map(|n| n.alerts.iter())
            .filter_map(|a| a.alert.labels.get("alertname"))
            .collect();
        assert!(names.contains(&"Slow"), "{names:?}");
        shard.stop().await;
    }

    #[tokio::test]
    async fn saved_alerts_of_a_group_no_replica_has_are_resolved_once_and_a_held_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir).await;
        let store = HistoryStore::new(db.clone());
        let at = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap();
        store
            .save_snapshots(&[
                firing_in("removed", "Orphan", at),
                firing_in("elsewhere", "HeldByAnother", at),
                firing_in("g", "Mine", at),
            ])
            .await
            .unwrap();
        // Another replica (with another config) holds group `elsewhere`.
        Leases::new(db.clone())
            .acquire(
                "group//rules/x.yaml/elsewhere",
                "other",
                Duration::from_secs(60),
                false,
            )
            .await
            .unwrap()
            .unwrap();

        let clock: Arc<dyn Clock> = Arc::new(SimClock::new(at));
        let (shard, step) = shard_of_g(db, &clock);
        step.step().await;
        let (writer, written, writer_stop) = history_writer(&store);
        let notifier = Arc::new(tokio::sync::Mutex::new(Notifier::new(Arc::new(
            notify_config("route: {receiver: r}\nreceivers: [{name: r}]\n"),
        ))));
        let sweep = shard.removed_groups_sweep();
        resolve_removed_once(&sweep, &store, &writer, &notifier, &clock)
            .await
            .unwrap();
        // A second sweep (another replica's, say) finds nothing to claim.
        resolve_removed_once(&sweep, &store, &writer, &notifier, &clock)
            .await
            .unwrap();

        let told: Vec<(String, crate::notify::alert::AlertStatus)> = notifier
            .lock()
            .await
            .snapshot()
            .alerts
            .iter()
            .map(|a| {
                (
                    a.alert
                        .labels
                        .get("alertname")
                        .unwrap_or_default()
                        .to_string(),
                    a.alert.status_at(clock.now()),
                )
            })
            .collect();
        assert_eq!(
            told,
            [(
                "Orphan".to_string(),
                crate::notify::alert::AlertStatus::Resolved
            )],
            "only the removed group's alert ends, once"
        );
        writer_stop.cancel();
        written.await.unwrap();
        let mut left: Vec<String> = store
            .load_snapshots()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.rule)
            .collect();
        left.sort();
        assert_eq!(left, ["HeldByAnother", "Mine"]);
        let episodes: Vec<(String, bool)> = store
            .query(&crate::history::store::HistoryQuery::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| (e.rule, e.ends_at.is_some()))
            .collect();
        assert_eq!(
            episodes,
            [("Orphan".to_string(), true)],
            "the removed group's episode is written closed"
        );
        shard.stop().await;
    }
}
