//! The alert trackers: they turn what the evaluator learns of alerts into
//! history writes, an episode upsert and a transition per state change
//! ([`state_change`], the one place such a pair is made). [`AlertTracker`]
//! follows the alerts of each evaluated rule group (writing only what
//! changed since the group's previous evaluation, and keeping the open
//! episodes in the history equal to the alerts the evaluator holds);
//! [`PostedAlerts`] follows the alerts posted to the Alertmanager API.

mod posted;

pub use posted::{OpenEpisode, PostedAlerts};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::from_millis_or_epoch as time;
use super::restore::{resolved_at, restore_group};
use super::store::{
    AlertSnapshot, EndReason, EpisodeRecord, HistoryState, HistoryWrite, Transition,
};
use crate::alerts::state::AlertState;
use crate::alerts::Alert as RuleAlert;
use crate::notify::alert::{Alert as NotifierAlert, Fingerprint};
use crate::rules::group::{DroppedByReload, Rule, RuleGroup};

fn history_state(a: &RuleAlert) -> HistoryState {
    match a.state {
        AlertState::Pending => HistoryState::Pending,
        AlertState::Firing => HistoryState::Firing,
        AlertState::Inactive if a.resolved_at_ms.is_some() => HistoryState::Resolved,
        AlertState::Inactive => HistoryState::Inactive,
    }
}

/// What was last recorded of one alert.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state: HistoryState,
    active_at_ms: i64,
    fired_at_ms: Option<i64>,
    resolved_at_ms: Option<i64>,
    last_sent_at_ms: Option<i64>,
    keep_firing_since_ms: Option<i64>,
}

impl Seen {
    fn of(a: &RuleAlert) -> Seen {
        Seen {
            state: history_state(a),
            active_at_ms: a.active_at_ms,
            fired_at_ms: a.fired_at_ms,
            resolved_at_ms: a.resolved_at_ms,
            last_sent_at_ms: a.last_sent_at_ms,
            keep_firing_since_ms: a.keep_firing_since_ms,
        }
    }
}

/// One alert the tracker follows: what was last recorded of it, and its
/// episode as last written (to close it when the alert disappears).
#[derive(Debug, Clone)]
struct Tracked {
    seen: Seen,
    episode: EpisodeRecord,
}

/// Turns the alerts of each evaluated group into history writes: an
/// episode upsert and a transition per state change, a snapshot whenever
/// the state machine's timestamps moved, and a forgotten snapshot when an
/// alert leaves the rule. Compares each group's alerts with what it saw
/// after the previous evaluation, so only changes are written.
///
/// The invariant it keeps: the open episodes in the history are exactly
/// the alerts the evaluator holds as pending or firing. So an alert that
/// leaves its rule while open (pending that cleared before `for`, alerts
/// dropped by a rule's `limit`) closes its episode, and so do the alerts a
/// reload drops ([`AlertTracker::close_dropped`]) and, at start, the
/// episodes of alerts that were not restored ([`AlertTracker::after_restore`]).
#[derive(Debug, Default)]
pub struct AlertTracker {
    seen: Mutex<HashMap<(String, String), BTreeMap<Fingerprint, Tracked>>>,
}

/// For saved alerts whose rule is gone: the writes that close their open
/// episodes (ended by [`EndReason::RuleGoneAtStart`]) and drop their
/// snapshots, and the firing ones as resolved alerts for the notifier.
pub fn rule_gone<'a>(
    snapshots: impl IntoIterator<Item = &'a AlertSnapshot>,
    now: DateTime<Utc>,
) -> (Vec<HistoryWrite>, Vec<NotifierAlert>) {
    let mut writes = Vec::new();
    let mut resolved = Vec::new();
    for s in snapshots {
        if s.state.is_open() {
            let episode = EpisodeRecord {
                fingerprint: s.fingerprint,
                rule: s.rule.clone(),
                group_name: s.group_name.clone(),
                labels: s.labels.clone(),
                annotations: s.annotations.clone(),
                state: s.state,
                starts_at: s.active_at,
                fired_at: s.fired_at,
                ends_at: None,
                value: s.value,
                updated_at: s.updated_at,
                end_reason: None,
            };
            writes.extend(closing_writes(
                &episode,
                Some(EndReason::RuleGoneAtStart),
                now,
            ));
            if s.state == HistoryState::Firing {
                resolved.push(resolved_at(s, now));
            }
        }
        writes.push(HistoryWrite::ForgetSnapshot(s.fingerprint));
    }
    (writes, resolved)
}

fn group_key(group: &RuleGroup) -> (String, String) {
    (group.file.display().to_string(), group.name.clone())
}

impl AlertTracker {
    /// Puts saved alerts back into `group`'s alerting rules (see
    /// [`restore_group`]) and remembers them as seen, so restored alerts
    /// are not recorded as new transitions.
    pub fn restore(&self, group: &mut RuleGroup, snapshots: &[AlertSnapshot]) -> usize {
        let restored = restore_group(group, snapshots);
        let mut all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let seen = all.entry(group_key(group)).or_default();
        for a in alerting(group) {
            seen.insert(
                Fingerprint::of(&a.labels),
                Tracked {
                    seen: Seen::of(a),
                    episode: episode_record(group, a, time(a.active_at_ms)),
                },
            );
        }
        restored
    }

    /// Stops following `group` without writing anything (it moved to
    /// another replica, which follows it from the saved state on).
    pub fn forget_group(&self, group: &RuleGroup) {
        let mut all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        all.remove(&group_key(group));
    }

    /// After every group was restored: the writes that close the episodes
    /// of saved alerts no group took back (their rule is gone) and drop
    /// their snapshots, then the sweep that closes every other open episode
    /// of a rule alert the evaluator does not hold (its state was lost);
    /// and the firing ones among the former as resolved alerts for the
    /// notifier, so receivers that were told they fire hear they ended.
    pub fn after_restore(
        &self,
        snapshots: &[AlertSnapshot],
        now: DateTime<Utc>,
    ) -> (Vec<HistoryWrite>, Vec<NotifierAlert>) {
        let (mut writes, resolved) = self.not_taken_back(snapshots, now);
        let all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // A restored alert's episode is written again, open, so that what
        // the evaluator holds is open in the history even when a crash kept
        // the saved state but lost the episode's own writes (or the reverse).
        let tracked = || all.values().flat_map(|m| m.values());
        for t in tracked().filter(|t| t.seen.state.is_open()) {
            writes.push(HistoryWrite::Episode(EpisodeRecord {
                updated_at: now,
                ..t.episode.clone()
            }));
        }
        writes.push(HistoryWrite::CloseEpisodesNotHeld {
            open: tracked()
                .filter(|t| t.seen.state.is_open())
                .map(|t| t.episode.id())
                .collect(),
            held: tracked().map(|t| t.episode.id()).collect(),
            before: now,
            reason: EndReason::StateLost,
        });
        (writes, resolved)
    }

    /// Of `snapshots`, those of alerts the tracker does not hold (no group
    /// took them back: their rule is gone): the writes that close their
    /// open episodes and drop the snapshots, and the firing ones as
    /// resolved alerts for the notifier, so receivers that were told they
    /// fire hear they ended.
    pub fn not_taken_back(
        &self,
        snapshots: &[AlertSnapshot],
        now: DateTime<Utc>,
    ) -> (Vec<HistoryWrite>, Vec<NotifierAlert>) {
        let all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let held: HashSet<Fingerprint> = all.values().flat_map(|m| m.keys().copied()).collect();
        let gone: Vec<&AlertSnapshot> = snapshots
            .iter()
            .filter(|s| !held.contains(&s.fingerprint))
            .collect();
        rule_gone(gone, now)
    }

    /// The writes that close the episodes of the alerts a reload took away
    /// from a group (see [`RuleGroup::dropped_by_reload`]), which it stops
    /// following; a removed group is forgotten altogether.
    pub fn close_dropped(
        &self,
        dropped: &DroppedByReload,
        now: DateTime<Utc>,
    ) -> Vec<HistoryWrite> {
        let mut all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let key = (dropped.file.clone(), dropped.name.clone());
        let mut writes = Vec::new();
        let mut close = |fp: Fingerprint, t: Tracked| {
            if t.seen.state.is_open() {
                writes.extend(closing_writes(
                    &t.episode,
                    Some(EndReason::RuleRemoved),
                    now,
                ));
            }
            writes.push(HistoryWrite::ForgetSnapshot(fp));
        };
        if dropped.group_removed {
            for (fp, t) in all.remove(&key).unwrap_or_default() {
                close(fp, t);
            }
        } else if let Some(seen) = all.get_mut(&key) {
            for (a, _) in &dropped.alerts {
                let fp = Fingerprint::of(&a.labels);
                if let Some(t) = seen.remove(&fp) {
                    close(fp, t);
                }
            }
        }
        writes
    }

    /// The writes for `group` after an evaluation at `now`.
    pub fn observe(&self, group: &RuleGroup, now: DateTime<Utc>) -> Vec<HistoryWrite> {
        let mut all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let seen = all.entry(group_key(group)).or_default();
        let mut before_eval = std::mem::take(seen);
        let mut writes = Vec::new();
        let mut present = BTreeMap::new();
        for a in alerting(group) {
            let fp = Fingerprint::of(&a.labels);
            let current = Seen::of(a);
            let before = match before_eval.remove(&fp) {
                Some(unchanged) if unchanged.seen == current => {
                    present.insert(fp, unchanged);
                    continue;
                }
                other => other.map(|b| b.seen),
            };
            let from = before.as_ref().map_or(HistoryState::Inactive, |b| b.state);
            // A new activation is a new episode even when the old one's
            // resolved state was never seen in between.
            let from = match &before {
                Some(b) if b.active_at_ms != current.active_at_ms => HistoryState::Inactive,
                _ => from,
            };
            let episode = episode_record(group, a, now);
            if from != current.state
                && !(from == HistoryState::Inactive && current.state.is_closed())
            {
                writes.extend(state_change(episode.clone(), from, now));
            }
            writes.push(HistoryWrite::Snapshot(snapshot(group, a, now)));
            present.insert(
                fp,
                Tracked {
                    seen: current,
                    episode,
                },
            );
        }
        // Alerts that left their rule: a pending one that cleared before
        // its `for` elapsed (the rule drops it at once), or alerts the
        // rule's `limit` dropped. Their episodes end now.
        for (fp, gone) in before_eval {
            if gone.seen.state.is_open() {
                let reason =
                    (gone.seen.state == HistoryState::Firing).then_some(EndReason::LimitExceeded);
                writes.extend(closing_writes(&gone.episode, reason, now));
            }
            writes.push(HistoryWrite::ForgetSnapshot(fp));
        }
        *seen = present;
        writes
    }
}

/// The episode of `a` as reported at `now`.
fn episode_record(group: &RuleGroup, a: &RuleAlert, now: DateTime<Utc>) -> EpisodeRecord {
    EpisodeRecord {
        fingerprint: Fingerprint::of(&a.labels),
        rule: a.name().to_string(),
        group_name: group.name.clone(),
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        state: history_state(a),
        starts_at: time(a.active_at_ms),
        fired_at: a.fired_at_ms.map(time),
        ends_at: a.resolved_at_ms.map(time),
        value: Some(a.value),
        updated_at: now,
        end_reason: None,
    }
}

/// The episode upsert and transition that close the open `episode` at
/// `now`: a pending one goes back to inactive, a firing one resolves.
fn closing_writes(
    episode: &EpisodeRecord,
    reason: Option<EndReason>,
    now: DateTime<Utc>,
) -> [HistoryWrite; 2] {
    let to = if episode.state == HistoryState::Pending {
        HistoryState::Inactive
    } else {
        HistoryState::Resolved
    };
    let closed = EpisodeRecord {
        state: to,
        ends_at: Some(now),
        updated_at: now,
        end_reason: reason,
        ..episode.clone()
    };
    state_change(closed, episode.state, now)
}

/// The writes of one state change of an alert: its episode as it is now
/// (`episode.state` is the new state) and the transition into that state
/// from `from` at `at`, carrying the episode's value.
fn state_change(
    episode: EpisodeRecord,
    from: HistoryState,
    at: DateTime<Utc>,
) -> [HistoryWrite; 2] {
    let transition = Transition {
        alert_id: episode.id(),
        from,
        to: episode.state,
        at,
        value: episode.value,
    };
    [
        HistoryWrite::Episode(episode),
        HistoryWrite::Transition(transition),
    ]
}

pub(crate) fn alerting(group: &RuleGroup) -> impl Iterator<Item = &RuleAlert> {
    group
        .rules
        .iter()
        .flat_map(|entry| match &entry.rule {
            Rule::Alerting(rule) => Some(rule.alerts()),
            Rule::Recording(_) => None,
        })
        .flatten()
}

fn snapshot(group: &RuleGroup, a: &RuleAlert, now: DateTime<Utc>) -> AlertSnapshot {
    AlertSnapshot {
        fingerprint: Fingerprint::of(&a.labels),
        rule: a.name().to_string(),
        group_name: group.name.clone(),
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        state: history_state(a),
        active_at: time(a.active_at_ms),
        fired_at: a.fired_at_ms.map(time),
        resolved_at: a.resolved_at_ms.map(time),
        keep_firing_since: a.keep_firing_since_ms.map(time),
        last_sent_at: a.last_sent_at_ms.map(time),
        value: Some(a.value),
        updated_at: now,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::rules::fake::{sample, FakeEngine};
    use crate::rules::file::parse_rule_file;
    use crate::rules::group::GroupEnv;

    const SEC: i64 = 1000;
    const RESEND: Duration = Duration::from_secs(60);

    fn group() -> RuleGroup {
        let mut specs = parse_rule_file(
            Path::new("g.yaml"),
            "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: x > 0\n    for: 2s\n",
        )
        .unwrap();
        RuleGroup::new(specs.remove(0), Duration::from_secs(1)).unwrap()
    }

    fn eval(g: &mut RuleGroup, engine: &FakeEngine, ts_ms: i64) {
        let env = GroupEnv {
            resend_delay: RESEND,
            ..GroupEnv::local(engine)
        };
        g.eval(ts_ms, &env);
    }

    fn transitions(writes: &[HistoryWrite]) -> Vec<(HistoryState, HistoryState)> {
        writes
            .iter()
            .filter_map(|w| match w {
                HistoryWrite::Transition(t) => Some((t.from, t.to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_state_change_is_one_episode_upsert_and_one_transition_and_nothing_else_repeats() {
        let engine = FakeEngine::new();
        engine.set("x > 0", 0, vec![sample(&[("i", "a")], 1.0)]);
        engine.set("x > 0", 10 * SEC, vec![]);
        let mut g = group();
        let tracker = AlertTracker::default();
        let mut seen = Vec::new();
        for s in 1..=12 {
            eval(&mut g, &engine, s * SEC);
            seen.extend(transitions(&tracker.observe(&g, time(s * SEC))));
        }
        use HistoryState::*;
        assert_eq!(
            seen,
            vec![(Inactive, Pending), (Pending, Firing), (Firing, Resolved)]
        );
        eval(&mut g, &engine, 13 * SEC);
        assert!(
            tracker.observe(&g, time(13 * SEC)).is_empty(),
            "an unchanged alert writes nothing"
        );
    }

    #[test]
    fn a_restored_firing_alert_keeps_firing_without_a_new_transition_and_goes_to_the_notifier_once()
    {
        let engine = FakeEngine::new();
        engine.set("x > 0", 0, vec![sample(&[("i", "a")], 1.0)]);
        let mut before = group();
        let first = AlertTracker::default();
        let mut snapshots = Vec::new();
        for s in 1..=4 {
            eval(&mut before, &engine, s * SEC);
            for w in first.observe(&before, time(s * SEC)) {
                if let HistoryWrite::Snapshot(snap) = w {
                    snapshots.retain(|o: &AlertSnapshot| o.fingerprint != snap.fingerprint);
                    snapshots.push(snap);
                }
            }
        }
        assert_eq!(snapshots.len(), 1);
        assert_eq!(snapshots[0].state, HistoryState::Firing);
        assert!(snapshots[0].last_sent_at.is_some());

        let mut after = group();
        let tracker = AlertTracker::default();
        assert_eq!(tracker.restore(&mut after, &snapshots), 1);
        let env = GroupEnv {
            resend_delay: RESEND,
            ..GroupEnv::local(&engine)
        };
        // Handed to the notifier once more (it may never have reached the
        // outbox before the restart; the notifier's restored log decides
        // whether a receiver hears of it), then not until the resend delay.
        let sent = after.eval(5 * SEC, &env);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].active_at_ms, SEC, "the original start is sent");
        assert!(transitions(&tracker.observe(&after, time(5 * SEC))).is_empty());
        assert!(
            after.eval(6 * SEC, &env).is_empty(),
            "within the resend delay"
        );
        let alert = alerting(&after).next().unwrap();
        assert_eq!(alert.state, AlertState::Firing);
        assert_eq!(alert.active_at_ms, SEC, "the original activation is kept");
    }

    #[test]
    fn a_restored_pending_alert_keeps_its_for_timer() {
        let engine = FakeEngine::new();
        engine.set("x > 0", 0, vec![sample(&[("i", "a")], 1.0)]);
        let mut before = group();
        let first = AlertTracker::default();
        eval(&mut before, &engine, SEC);
        let snapshots: Vec<AlertSnapshot> = first
            .observe(&before, time(SEC))
            .into_iter()
            .filter_map(|w| match w {
                HistoryWrite::Snapshot(s) => Some(s),
                _ => None,
            })
            .collect();
        let mut after = group();
        AlertTracker::default().restore(&mut after, &snapshots);
        eval(&mut after, &engine, 3 * SEC);
        let alert = alerting(&after).next().unwrap();
        assert_eq!(
            alert.state,
            AlertState::Firing,
            "for: 2s counted from the activation before the restart"
        );
    }
}
