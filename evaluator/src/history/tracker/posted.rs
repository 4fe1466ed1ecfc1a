//! The history of alerts posted to the Alertmanager API: unlike rule
//! alerts, which the rule groups' state machine tracks, a posted alert's
//! episode is known only from the posts themselves (a start, refreshes of
//! `endsAt`, a resolution or silence). [`PostedAlerts`] turns those posts
//! into episode and transition writes, and resolves the alerts whose sender
//! stopped refreshing them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::state_change;
use crate::history::store::{EpisodeRecord, HistoryState, HistoryWrite};
use crate::labels::Labels;
use crate::notify::alert::{Alert, Fingerprint};

/// An episode of a posted alert that is still open.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenEpisode {
    pub fingerprint: Fingerprint,
    pub rule: String,
    pub group_name: String,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    /// When it resolves unless posted again.
    pub ends_at: DateTime<Utc>,
}

/// Turns posted alerts into history writes: an episode and a transition
/// when an alert starts firing, and again when it resolves (posted with a
/// past `endsAt`, or timed out, see [`PostedAlerts::sweep`]).
#[derive(Debug, Default)]
pub struct PostedAlerts {
    open: HashMap<Fingerprint, OpenEpisode>,
}

impl PostedAlerts {
    /// Takes in the episodes still open in the history (after a restart),
    /// so a sender re-posting them continues those episodes instead of
    /// recording a second start.
    pub fn restore(&mut self, episodes: impl IntoIterator<Item = OpenEpisode>) {
        for episode in episodes {
            self.open.insert(episode.fingerprint, episode);
        }
    }

    /// The writes for `alert` posted at `now`, resolving at `ends_at`.
    pub fn observe(
        &mut self,
        alert: &Alert,
        ends_at: DateTime<Utc>,
        group: &str,
        now: DateTime<Utc>,
    ) -> Vec<HistoryWrite> {
        let fingerprint = alert.fingerprint();
        let firing = ends_at > now;
        match (self.open.get_mut(&fingerprint), firing) {
            (Some(open), true) => {
                open.ends_at = ends_at;
                open.annotations = alert.annotations.clone();
                Vec::new()
            }
            (Some(_), false) => {
                let Some(mut open) = self.open.remove(&fingerprint) else {
                    return Vec::new();
                };
                open.annotations = alert.annotations.clone();
                resolved_writes(&open, ends_at, now)
            }
            (None, true) => {
                let open = OpenEpisode {
                    fingerprint,
                    rule: alert.labels.get("alertname").unwrap_or("").to_string(),
                    group_name: group.to_string(),
                    labels: alert.labels.clone(),
                    annotations: alert.annotations.clone(),
                    starts_at: alert.starts_at,
                    ends_at,
                };
                let writes = state_change(
                    episode(&open, HistoryState::Firing, None, now),
                    HistoryState::Inactive,
                    now,
                );
                self.open.insert(fingerprint, open);
                writes.into()
            }
            // Resolved without a known start (senders repeat resolutions
            // for a while): nothing new to record.
            (None, false) => Vec::new(),
        }
    }

    /// Resolves the open episodes whose alert was not posted again before
    /// its `ends_at`.
    pub fn sweep(&mut self, now: DateTime<Utc>) -> Vec<HistoryWrite> {
        let due: Vec<Fingerprint> = self
            .open
            .iter()
            .filter(|(_, o)| o.ends_at <= now)
            .map(|(f, _)| *f)
            .collect();
        let mut writes = Vec::new();
        for fingerprint in due {
            if let Some(open) = self.open.remove(&fingerprint) {
                writes.extend(resolved_writes(&open, open.ends_at, now));
            }
        }
        writes
    }
}

fn episode(
    open: &OpenEpisode,
    state: HistoryState,
    ends_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> EpisodeRecord {
    EpisodeRecord {
        fingerprint: open.fingerprint,
        rule: open.rule.clone(),
        group_name: open.group_name.clone(),
        labels: open.labels.clone(),
        annotations: open.annotations.clone(),
        state,
        starts_at: open.starts_at,
        fired_at: Some(open.starts_at),
        ends_at,
        value: None,
        updated_at: now,
        end_reason: None,
    }
}

fn resolved_writes(
    open: &OpenEpisode,
    ends_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<HistoryWrite> {
    state_change(
        episode(open, HistoryState::Resolved, Some(ends_at), now),
        HistoryState::Firing,
        now,
    )
    .into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;
    use crate::history::store::episode_id;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_700_000_000 + secs)
    }

    fn alert(starts: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs([("alertname", "Down"), ("job", "db")]),
            annotations: BTreeMap::new(),
            starts_at: t(starts),
            ends_at: None,
            generator_url: String::new(),
            cooldown: None,
        }
    }

    #[test]
    fn a_posted_alert_opens_one_episode_and_resolves_it_once() {
        let mut posted = PostedAlerts::default();
        let a = alert(0);
        let first = posted.observe(&a, t(60), "api/Prometheus", t(0));
        assert_eq!(first.len(), 2, "episode and transition");
        assert!(
            posted
                .observe(&a, t(120), "api/Prometheus", t(30))
                .is_empty(),
            "re-sent while firing: nothing new"
        );
        let resolved = posted.observe(&a, t(40), "api/Prometheus", t(45));
        let HistoryWrite::Transition(tr) = &resolved[1] else {
            panic!("{resolved:?}")
        };
        assert_eq!(
            (tr.from, tr.to),
            (HistoryState::Firing, HistoryState::Resolved)
        );
        assert_eq!(tr.alert_id, episode_id(a.fingerprint(), t(0)));
        assert!(posted
            .observe(&a, t(40), "api/Prometheus", t(50))
            .is_empty());
    }

    #[test]
    fn a_posted_alert_that_is_not_refreshed_resolves_at_its_end() {
        let mut posted = PostedAlerts::default();
        posted.observe(&alert(0), t(60), "api", t(0));
        assert!(posted.sweep(t(59)).is_empty());
        let writes = posted.sweep(t(60));
        let HistoryWrite::Episode(e) = &writes[0] else {
            panic!("{writes:?}")
        };
        assert_eq!(
            (e.state, e.ends_at, e.group_name.as_str(), e.rule.as_str()),
            (HistoryState::Resolved, Some(t(60)), "api", "Down")
        );
    }
}
