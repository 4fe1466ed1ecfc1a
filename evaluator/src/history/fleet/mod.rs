//! Rule-group sharding across replicas sharing one Postgres database: each
//! replica is a member of the fleet while it holds its membership lease,
//! and each rule group is evaluated by exactly one live member, which
//! holds the group's lease; so a fleet of n replicas shares the evaluation
//! work instead of every replica running every group.
//!
//! # How
//!
//! Built on the same named leases with fencing epochs as the notification
//! leader ([`super::lease`], [`super::leader`]). Every `heartbeat` (1 s by
//! default) each replica runs one round ([`rounds`]):
//!
//! 1. It renews its membership lease `member/<replica id>` (taking it at
//!    its first round) for `lease_duration` (5 s) past the database's now.
//! 2. It renews every group lease `group/<file>/<name>` it holds, one
//!    single-row statement each (a statement over several lease rows could
//!    deadlock with a history batch holding some of them `FOR SHARE`); a
//!    group whose lease was not renewed is lost (its term is revoked at
//!    once).
//! 3. It lists the live members ([`Leases::live`]) and computes the owner
//!    of every configured group by rendezvous hashing ([`assign`]): the
//!    member with the highest hash of (member, group). Every replica gets
//!    the same answer from the same list, and a member joining or leaving
//!    moves only about 1/n of the groups.
//! 4. It gives back the groups it holds that another member now owns (the
//!    term is revoked first, then the history writer is given half a heartbeat to
//!    write the group's last state, then the lease is released), and tries
//!    to take the groups it owns and does not hold. A lease still held by
//!    the previous owner is not taken before that owner released it or it
//!    expired on the database's clock.
//!
//! Each held group has a [`Term`], as the notification leader has: valid,
//! on this replica's monotonic clock, until `lease_duration` minus
//! `safety_margin` after the renewal was *sent*. The scheduler evaluates a
//! group only while its term is valid, and the group's history writes carry
//! its epoch as a [`super::lease::Fence`]; so a replica that is cut off or
//! frozen stops evaluating and writing for a group before any other replica
//! can take its lease, and a write of its that was already on the way is
//! refused by the database once the epoch moved on.
//!
//! A group's alert state moves through the database: the new owner loads
//! the group's saved alerts (pending `for` timers, firing alerts) and the
//! notification log before its first evaluation (the server's admission,
//! `crate::server::fleet`), so a move neither resets nor re-notifies an
//! alert. A replica that loses a group drops the group's alerts from its
//! own state and notifier without notifying. Notifications are still sent
//! by the notification leader only: a replica that is not the leader queues
//! its notifications in the outbox, where the leader picks them up.
//!
//! Each evaluation slot of a group is claimed in the database before it is
//! evaluated ([`Leases::claim_slot`]: the lease's `progress`, under its
//! epoch and before its expiry), so no two replicas evaluate one slot; the
//! server's admission gives a group on a datasource that it takes the
//! slots after the last claimed one that nobody evaluated (the previous
//! owner died or gave it away between slots, or the database did not
//! answer), evaluated late, in order, before the current one: a recording
//! rule's series has no hole from a move, except the slot a killed replica
//! evaluated and had not sent.
//!
//! Timing: a replica that shuts down (SIGTERM) releases its leases, so its
//! groups move at the other members' next round; one that dies (kill -9)
//! leaves leases that expire `lease_duration` after its last renewal, so
//! its groups move within `lease_duration` + `heartbeat` (6 s by default);
//! a new member takes its share within two heartbeats.
//!
//! Sharding needs Postgres (the config refuses it on SQLite, which has one
//! replica anyway). Off by default: without `fleet.sharding` every replica
//! evaluates every group, as before.

pub mod assign;
mod rounds;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::leader::{LeaderConfig, Ticks};
use super::lease::{Fence, Leases};
use super::writer::HistoryWriter;
use crate::clock::Clock;
use crate::notify::delivery::Term;
use rounds::Rounds;

/// Prefix of the membership leases (`member/<replica id>`).
pub const MEMBER_PREFIX: &str = "member/";
/// Prefix of the rule-group leases (`group/<file>/<name>`).
pub const GROUP_PREFIX: &str = "group/";
/// Default `fleet.heartbeat`.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);
/// Default `fleet.lease_duration`.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(5);

/// How a rule group is named in the fleet: its file and its name.
pub fn group_key(file: &Path, name: &str) -> String {
    format!("{}/{name}", file.display())
}

/// The lease of the group [`group_key`] `key`.
pub fn group_lease(key: &str) -> String {
    format!("{GROUP_PREFIX}{key}")
}

/// Settings of the fleet: the lease timing of [`LeaderConfig`] (its
/// `lease` is this replica's membership lease, its `holder` the replica
/// id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    pub leases: LeaderConfig,
}

impl FleetConfig {
    /// A new member (a fresh replica id) with `lease_duration` and
    /// `heartbeat`.
    pub fn new(lease_duration: Duration, heartbeat: Duration) -> FleetConfig {
        let mut leases = LeaderConfig::new(lease_duration, heartbeat);
        leases.lease = format!("{MEMBER_PREFIX}{}", leases.holder);
        FleetConfig { leases }
    }

    /// This replica's id.
    pub fn member(&self) -> &str {
        &self.leases.holder
    }
}

/// What this replica knows of the fleet after its last round.
#[derive(Debug, Clone, Default)]
pub struct FleetView {
    /// The live members' ids, sorted.
    pub members: Vec<String>,
    /// The groups this replica holds, by [`group_key`], with their terms.
    pub owned: BTreeMap<String, Term>,
    /// Who holds each group's lease, as the database said at the last
    /// round (every replica's groups, for the API).
    pub owners: BTreeMap<String, String>,
}

impl FleetView {
    /// The term under which this replica may evaluate group `key` now.
    pub fn term(&self, key: &str) -> Option<&Term> {
        self.owned.get(key).filter(|t| t.is_valid())
    }

    /// The fence of group `key`'s writes, while this replica holds it.
    pub fn fence(&self, key: &str) -> Option<Fence> {
        self.owned.get(key).and_then(Fence::of)
    }
}

/// The configured rule groups, by [`group_key`] (a reload sends the new
/// list).
pub type GroupKeys = watch::Receiver<Arc<Vec<String>>>;

/// What the rounds report to and wait for.
#[derive(Debug, Clone)]
pub struct FleetAround {
    /// Written out before a group's lease is given back (its last state).
    pub writer: Option<HistoryWriter>,
    pub metrics: FleetMetrics,
    /// When set, the replica joins the fleet (and so takes groups) only
    /// once it says `true`: after the first scrapes, when groups evaluate
    /// on the local window.
    pub joinable: Option<watch::Receiver<bool>>,
}

/// The fleet's metrics.
#[derive(Debug, Clone)]
pub struct FleetMetrics {
    members: IntGauge,
    owned: IntGauge,
    changes: IntCounterVec,
    /// Evaluation slots of a group that its previous owner missed,
    /// evaluated late by this replica.
    pub slots_caught_up: IntCounter,
}

impl FleetMetrics {
    pub fn register(registry: &Registry) -> Result<FleetMetrics, prometheus::Error> {
        let members = IntGauge::new(
            "vigil_fleet_members",
            "Live members of the fleet (replicas holding their membership lease), as this replica saw at its last round.",
        )?;
        let owned = IntGauge::new(
            "vigil_rule_groups_owned",
            "Rule groups this replica holds the lease of and evaluates.",
        )?;
        let changes = IntCounterVec::new(
            Opts::new(
                "vigil_rule_group_ownership_changes_total",
                "Rule groups this replica took (acquired), gave back to another member (released) or lost (its lease expired or passed on).",
            ),
            &["change"],
        )?;
        let slots_caught_up = IntCounter::new(
            "vigil_rule_group_slots_caught_up_total",
            "Evaluation slots of a rule group that nobody evaluated in time (its previous owner died or gave it away, or the database did not answer), evaluated late by this replica.",
        )?;
        registry.register(Box::new(members.clone()))?;
        registry.register(Box::new(slots_caught_up.clone()))?;
        registry.register(Box::new(owned.clone()))?;
        registry.register(Box::new(changes.clone()))?;
        for change in ["acquired", "released", "lost"] {
            changes.with_label_values(&[change]);
        }
        Ok(FleetMetrics {
            members,
            owned,
            changes,
            slots_caught_up,
        })
    }
}

/// Runs this replica's membership and ownership rounds and publishes its
/// [`FleetView`].
#[derive(Debug)]
pub struct Fleet {
    view: watch::Receiver<Arc<FleetView>>,
    member: String,
    leases: Leases,
    lease_duration: Duration,
    metrics: FleetMetrics,
    task: JoinHandle<()>,
}

impl Fleet {
    /// Starts the rounds over `leases` for the groups `groups` names (by
    /// [`group_key`]; updated on reload), until `shutdown` is cancelled
    /// (then every lease is released, after the history writer, if any,
    /// wrote what it holds). Terms are measured on `clock`'s monotonic time.
    pub fn start(
        leases: Leases,
        config: FleetConfig,
        groups: GroupKeys,
        around: FleetAround,
        ticks: Ticks,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> Fleet {
        if let Err(problem) = config.leases.check() {
            tracing::error!("fleet lease settings: {problem}");
        }
        let (tx, rx) = watch::channel(Arc::new(FleetView::default()));
        let member = config.member().to_string();
        let lease_duration = config.leases.lease_duration;
        let metrics = around.metrics.clone();
        let rounds = Rounds {
            leases: leases.clone(),
            config,
            clock,
            groups,
            writer: around.writer,
            metrics: around.metrics,
            joinable: around.joinable,
            member: None,
            held: BTreeMap::new(),
            failed_rounds: 0,
            view: tx,
        };
        let task = tokio::spawn(rounds.run(ticks, shutdown));
        Fleet {
            view: rx,
            member,
            leases,
            lease_duration,
            metrics,
            task,
        }
    }

    /// This replica's id in the fleet.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The leases the rounds keep.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// How long a lease runs past its last renewal.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    pub fn metrics(&self) -> &FleetMetrics {
        &self.metrics
    }

    /// Follows this replica's view of the fleet.
    pub fn subscribe(&self) -> watch::Receiver<Arc<FleetView>> {
        self.view.clone()
    }

    /// This replica's view of the fleet now.
    pub fn view(&self) -> Arc<FleetView> {
        Arc::clone(&self.view.borrow())
    }

    /// Waits for the rounds to end (after the shutdown token fired and the
    /// leases were released).
    pub async fn join(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the fleet task failed");
        }
    }
}

#[cfg(test)]
mod tests;
