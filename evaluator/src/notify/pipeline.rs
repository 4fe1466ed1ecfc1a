//! The notification pipeline, stated in one place and in the order a flush
//! goes through it, as Alertmanager's `PipelineBuilder` states its own.
//! Each stage is a small type in its own file, tested there alone:
//!
//! ```text
//! route, group, wait      dispatcher.rs  Dispatcher: aggregation groups, group_wait/interval
//!   └─ flush ─►
//! 0. time intervals       route.rs       RouteOpts::muted_by (mute / active intervals)
//! 1. inhibit              inhibit.rs     Inhibitor (through a SourceIndex)
//! 2. silence              silence.rs     SilenceStore
//! 3. cooldown             cooldown.rs    CooldownLedger (held back, or a resolution owed)
//! 4. dedup                dedup.rs       NotificationLog + needs_update
//! 5. hand over            notifier.rs    NotificationSink (queue to the delivery task)
//! 6. retry                deliver.rs     DeliveryStage (Retrier, per integration)
//! 7. record               delivery/      the outbox and notification log (NotificationOutbox)
//! ```
//!
//! Stages 1–3 decide, alert by alert, what the receiver hears of; stage 4
//! whether that is news; [`Pipeline::run`] performs 1–5 and remembers what
//! it handed over in the notifier's log and cooldown ledger. Stages 6 and 7
//! run in the delivery task ([`super::delivery`]), per receiver integration.
//!
//! Cooldown comes before dedup (as it always has in Vigil): a re-fire held
//! back by its cooldown is not part of the set dedup compares, so it does
//! not count as news to the receiver.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::alert::{Alert, AlertStatus, Fingerprint, Notification, NotifiedAlert};
use super::config::NotifyConfig;
use super::cooldown::CooldownLedger;
use super::dedup::{needs_update, LogEntry, NotificationLog};
use super::dispatcher::Flush;
use super::inhibit::{Inhibitor, SourceIndex};
use super::notifier::{NotificationSink, SinkError};
use super::silence::SilenceStore;
use crate::labels::Labels;

/// The stages a flush runs through, borrowed from the notifier for one
/// round of flushes.
pub(super) struct Pipeline<'a> {
    pub(super) config: &'a NotifyConfig,
    pub(super) inhibitor: &'a Inhibitor,
    /// The inhibition sources as of this round.
    pub(super) sources: &'a SourceIndex,
    pub(super) silences: &'a dyn SilenceStore,
    pub(super) cooldown: &'a mut CooldownLedger,
    pub(super) log: &'a mut NotificationLog,
    pub(super) external_url: &'a str,
}

/// What stages 1–3 let through to one receiver.
struct Selected {
    alerts: Vec<NotifiedAlert>,
    /// A resolution the receiver is owed (it was told the alert fires),
    /// whatever silences and inhibitions say now.
    owed_resolved: bool,
}

impl Pipeline<'_> {
    /// Runs one flush through the stages; `Ok(true)` when a notification
    /// was handed to the sink.
    pub(super) fn run(
        &mut self,
        flush: &Flush,
        now: DateTime<Utc>,
        sink: &mut dyn NotificationSink,
    ) -> Result<bool, SinkError> {
        let Some(receiver) = self.config.receiver(&flush.receiver) else {
            return Ok(false);
        };
        if receiver.is_blackhole() {
            return Ok(false);
        }
        // 0: the route's time intervals. As Alertmanager, a muted flush
        // sends nothing and the next flush decides again.
        if !flush.muted_by.is_empty() {
            tracing::debug!(receiver = %flush.receiver, group = %flush.group_key, muted_by = ?flush.muted_by, "notification held back by a time interval");
            return Ok(false);
        }
        let send_resolved = receiver.sends_resolved();
        // 1–3: inhibit, silence, cooldown.
        let selected = self.select(flush, now);
        if selected.alerts.is_empty() {
            return Ok(false);
        }
        // 4: dedup.
        let entry = log_entry(&selected.alerts, now);
        let update = needs_update(
            self.log.get(&flush.receiver, &flush.group_key),
            &entry.firing,
            &entry.resolved,
            send_resolved,
            flush.repeat_interval,
            now,
        ) || (send_resolved && selected.owed_resolved);
        if !update {
            return Ok(false);
        }
        // 5: hand over to the delivery task (6, 7).
        let notification = notification(flush, selected.alerts, self.external_url);
        let alerts = notification.alerts.clone();
        sink.submit(notification)?;
        self.log.record(&flush.receiver, &flush.group_key, entry);
        self.cooldown.record_sent(&flush.receiver, &alerts, now);
        Ok(true)
    }

    /// Stages 1–3 for each alert of `flush`: a firing alert goes on unless
    /// inhibited, silenced or held back by its cooldown; a resolved one
    /// goes on when the receiver is owed it, else unless inhibited or
    /// silenced.
    fn select(&self, flush: &Flush, now: DateTime<Utc>) -> Selected {
        let mut selected = Selected {
            alerts: Vec::new(),
            owed_resolved: false,
        };
        for alert in &flush.alerts {
            let fingerprint = alert.fingerprint();
            let status = alert.status_at(now);
            let keep = match status {
                AlertStatus::Firing => {
                    !self.muted(alert, now)
                        && !self.cooldown.holds_back(&flush.receiver, alert, now)
                }
                AlertStatus::Resolved => {
                    if self.cooldown.owes_resolved(&flush.receiver, fingerprint) {
                        selected.owed_resolved = true;
                        true
                    } else {
                        !self.muted(alert, now)
                    }
                }
            };
            if keep {
                let mut alert = alert.clone();
                // As Alertmanager: a firing alert is sent without an end, so
                // a receiver never sees it "resolve" by the clock alone.
                if status == AlertStatus::Firing {
                    alert.ends_at = None;
                }
                selected.alerts.push(NotifiedAlert {
                    status,
                    alert,
                    fingerprint,
                });
            }
        }
        selected
    }

    /// Stages 1 and 2: inhibited, or silenced.
    fn muted(&self, alert: &Alert, now: DateTime<Utc>) -> bool {
        self.sources.is_inhibited(self.inhibitor, &alert.labels)
            || self.silences.is_silenced(&alert.labels, now)
    }
}

/// The notification-log entry of handing `alerts` over at `now`.
fn log_entry(alerts: &[NotifiedAlert], now: DateTime<Utc>) -> LogEntry {
    let set_of = |status: AlertStatus| -> BTreeSet<Fingerprint> {
        alerts
            .iter()
            .filter(|a| a.status == status)
            .map(|a| a.fingerprint)
            .collect()
    };
    LogEntry {
        firing: set_of(AlertStatus::Firing),
        resolved: set_of(AlertStatus::Resolved),
        sent_at: now,
    }
}

/// The notification telling the receiver of `flush` about `alerts`.
fn notification(flush: &Flush, mut alerts: Vec<NotifiedAlert>, external_url: &str) -> Notification {
    alerts.sort_by(|a, b| alert_order(&a.alert.labels, &b.alert.labels));
    let status = if alerts.iter().any(|a| a.status == AlertStatus::Firing) {
        AlertStatus::Firing
    } else {
        AlertStatus::Resolved
    };
    let common_labels = common(alerts.iter().map(|a| {
        a.alert
            .labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect::<BTreeMap<_, _>>()
    }));
    let common_annotations = common(alerts.iter().map(|a| a.alert.annotations.clone()));
    Notification {
        receiver: flush.receiver.clone(),
        group_key: flush.group_key.clone(),
        status,
        alerts,
        group_labels: flush.group_labels.clone(),
        common_labels: Labels::from_pairs(common_labels),
        common_annotations,
        external_url: external_url.to_string(),
        truncated_alerts: 0,
        redelivery: false,
    }
}

/// Alertmanager's order of alerts in a notification: by `job`, then by
/// `instance` (alerts lacking one come after those having it), then by all
/// labels.
fn alert_order(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for name in ["job", "instance"] {
        match (a.get(name), b.get(name)) {
            (None, None) => continue,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            (Some(_), Some(_)) => {}
        }
    }
    a.cmp(b)
}

/// The entries every map shares with the same value.
pub(crate) fn common(
    mut maps: impl Iterator<Item = BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(mut shared) = maps.next() else {
        return BTreeMap::new();
    };
    for map in maps {
        shared.retain(|k, v| map.get(k) == Some(v));
    }
    shared
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::notify::fixtures::notify_config;
    use crate::notify::fixtures::t;
    use crate::notify::matcher::parse_matcher;
    use crate::notify::silence::{MemorySilences, Silence};

    fn flush(ends_at: Option<DateTime<Utc>>) -> Flush {
        Flush {
            route: 0,
            receiver: "r".into(),
            group_key: "{}:{}".into(),
            group_labels: Labels::default(),
            repeat_interval: Duration::from_secs(3600),
            muted_by: Vec::new(),
            alerts: vec![Alert {
                labels: Labels::from_pairs([("alertname", "Down"), ("job", "db")]),
                annotations: BTreeMap::new(),
                starts_at: t(0),
                ends_at,
                generator_url: String::new(),
                cooldown: None,
            }],
        }
    }

    #[test]
    fn a_silenced_alert_is_not_handed_over_but_the_resolution_owed_for_it_is() {
        let config = notify_config("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://h/', send_resolved: true}]}]\n");
        let inhibitor = Inhibitor::from_config(&config.inhibit_rules);
        let sources = SourceIndex::default();
        let mut silences = MemorySilences::default();
        let mut cooldown = CooldownLedger::new();
        let mut log = NotificationLog::default();
        let mut sent: Vec<Notification> = Vec::new();
        let mut run = |silences: &MemorySilences,
                       flush: &Flush,
                       now: DateTime<Utc>,
                       sent: &mut Vec<Notification>| {
            Pipeline {
                config: &config,
                inhibitor: &inhibitor,
                sources: &sources,
                silences,
                cooldown: &mut cooldown,
                log: &mut log,
                external_url: "",
            }
            .run(flush, now, sent)
            .unwrap()
        };
        assert!(
            run(&silences, &flush(None), t(10), &mut sent),
            "firing, not muted"
        );
        silences
            .upsert(
                Silence {
                    id: String::new(),
                    matchers: vec![parse_matcher("job=db").unwrap()],
                    starts_at: t(20),
                    ends_at: t(10_000),
                    created_by: "ops".into(),
                    comment: "maintenance".into(),
                },
                t(20),
            )
            .unwrap();
        assert!(
            !run(&silences, &flush(None), t(3700), &mut sent),
            "silenced while firing (unsilenced, the repeat interval would resend it)"
        );
        assert!(
            run(&silences, &flush(Some(t(3750))), t(3800), &mut sent),
            "its resolution is owed to the receiver told it fires"
        );
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].status, AlertStatus::Resolved);
    }

    #[test]
    fn alerts_are_ordered_by_job_then_instance() {
        let l = |pairs: &[(&str, &str)]| Labels::from_pairs(pairs.iter().copied());
        let mut list = [
            l(&[("a", "1")]),
            l(&[("instance", "b")]),
            l(&[("job", "z"), ("instance", "a")]),
            l(&[("job", "y"), ("instance", "c")]),
        ];
        list.sort_by(alert_order);
        let jobs: Vec<Option<&str>> = list
            .iter()
            .map(|l| l.get("job").or(l.get("instance")))
            .collect();
        assert_eq!(jobs, [Some("y"), Some("z"), Some("b"), None]);
    }

    #[test]
    fn a_route_muted_by_a_time_interval_sends_once_the_interval_ends() {
        use crate::notify::notifier::Notifier;
        // Weekends muted for the `db` route; 1970-01-03 was a Saturday.
        let config = notify_config(
            "time_intervals:\n- name: weekend\n  time_intervals: [{weekdays: [saturday, sunday]}]\nroute:\n  receiver: r\n  group_wait: 0s\n  group_interval: 1m\n  routes:\n  - {receiver: r, matchers: ['job=db'], mute_time_intervals: [weekend]}\nreceivers: [{name: r, webhook_configs: [{url: 'http://h/'}]}]\n",
        );
        let mut notifier = Notifier::new(std::sync::Arc::new(config));
        let saturday = 2 * 86_400 + 3600;
        let alert = Alert {
            labels: Labels::from_pairs([("alertname", "Down"), ("job", "db")]),
            annotations: BTreeMap::new(),
            starts_at: t(saturday),
            ends_at: None,
            generator_url: String::new(),
            cooldown: None,
        };
        // Re-sent every minute, as a rule manager does, so it keeps firing.
        for minute in 0..(47 * 60) {
            let now = t(saturday + minute * 60);
            notifier.ingest(vec![alert.clone()], now);
            assert!(
                notifier.tick(now).is_empty(),
                "muted on the weekend ({minute} min in)"
            );
        }
        // Monday 00:00 UTC: the next flush sends.
        let monday = 4 * 86_400;
        notifier.ingest(vec![alert], t(monday));
        let sent = notifier.tick(t(monday));
        assert_eq!(sent.len(), 1, "sent once the mute ends");
        assert_eq!(sent[0].alerts.len(), 1);
        let snapshot = notifier.snapshot();
        let route = snapshot.routes.matching(&sent[0].alerts[0].alert.labels)[0];
        assert_eq!(route.opts.muted_by(t(saturday)), ["weekend"]);
        assert!(route.opts.muted_by(t(monday)).is_empty());
    }
}
