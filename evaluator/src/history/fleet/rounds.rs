//! One replica's fleet rounds: keep the membership lease, renew the held
//! group leases, work out which groups this replica owns among the live
//! members, give back the others and take its own; and at shutdown give
//! everything back.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    assign, group_lease, FleetConfig, FleetMetrics, FleetView, GROUP_PREFIX, MEMBER_PREFIX,
};
use crate::clock::Clock;
use crate::history::leader::Ticks;
use crate::history::lease::Leases;
use crate::history::writer::HistoryWriter;
use crate::history::HistoryError;
use crate::notify::delivery::{Term, Until};

/// Failed rounds in a row after which the pool is replaced (as the
/// leader election does).
const RECONNECT_AFTER: u32 = 3;
/// Longest a replica that leaves waits for the history writer to write
/// what it holds (its groups' last state) before their leases go. A group
/// given back while running waits at most half a heartbeat, so the other
/// groups' renewals are not held up.
const WRITER_DRAIN: Duration = Duration::from_secs(2);
/// Group renewals in flight at once.
const RENEWALS_AT_ONCE: usize = 8;

pub(super) struct Rounds {
    pub(super) leases: Leases,
    pub(super) config: FleetConfig,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) groups: super::GroupKeys,
    pub(super) writer: Option<HistoryWriter>,
    pub(super) metrics: FleetMetrics,
    pub(super) joinable: Option<watch::Receiver<bool>>,
    /// The membership term, while this replica is a member.
    pub(super) member: Option<Term>,
    /// The groups this replica holds, by group key.
    pub(super) held: BTreeMap<String, Term>,
    pub(super) failed_rounds: u32,
    pub(super) view: watch::Sender<Arc<FleetView>>,
}

impl Rounds {
    pub(super) async fn run(mut self, mut ticks: Ticks, shutdown: CancellationToken) {
        if let Some(mut joinable) = self.joinable.take() {
            if !*joinable.borrow() {
                tracing::info!("joining the fleet after the first scrapes: rule groups on the local window need their samples");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = joinable.wait_for(|ready| *ready) => {}
            }
        }
        let mut interval = match &ticks {
            Ticks::Every(every) => {
                let mut interval = tokio::time::interval(*every);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Some(interval)
            }
            Ticks::Manual(_) => None,
        };
        loop {
            let done = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                done = crate::history::leader::next_tick(&mut ticks, interval.as_mut()) => match done {
                    Some(done) => done,
                    None => break,
                },
            };
            self.round().await;
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
        self.leave().await;
    }

    /// Runs `statement` within the round timeout.
    async fn timed<T>(
        &self,
        statement: impl Future<Output = Result<T, HistoryError>>,
    ) -> Result<T, String> {
        let timeout = self.config.leases.timeout;
        match tokio::time::timeout(timeout, statement).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("the database did not answer within {timeout:?}")),
        }
    }

    async fn round(&mut self) {
        let ok = self.round_inner().await;
        self.failed_rounds = if ok { 0 } else { self.failed_rounds + 1 };
        if self.failed_rounds >= RECONNECT_AFTER {
            tracing::info!(
                rounds = self.failed_rounds,
                "the fleet's lease database keeps failing; reconnecting"
            );
            self.leases = self.leases.reconnected();
            self.failed_rounds = 0;
        }
        self.drop_lapsed();
    }

    /// One round; false when a statement failed.
    async fn round_inner(&mut self) -> bool {
        // Measured before the statements are sent: the database's expiries
        // are at least `lease_duration` after this.
        let sent = self.clock.monotonic();
        let valid_until = sent + self.config.leases.valid_for();
        if !self.keep_membership(sent).await {
            return false;
        }
        let ttl = self.config.leases.lease_duration;
        let holder = self.config.leases.holder.clone();
        if !self.renew_groups(valid_until).await {
            return false;
        }
        let members = match self.timed(self.leases.live(MEMBER_PREFIX)).await {
            Ok(live) => {
                let mut members: Vec<String> = live
                    .into_iter()
                    .filter_map(|l| l.name.strip_prefix(MEMBER_PREFIX).map(str::to_string))
                    .collect();
                if !members.contains(&holder) {
                    members.push(holder.clone());
                    members.sort();
                }
                members
            }
            Err(error) => {
                tracing::warn!(%error, "cannot list the fleet's members");
                return false;
            }
        };
        let groups = Arc::clone(&self.groups.borrow());
        let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
        let owners = assign::assign(&members, &refs);
        let mine: BTreeSet<&str> = owners
            .iter()
            .filter(|(_, m)| **m == holder)
            .map(|(g, _)| *g)
            .collect();
        let give_back: Vec<String> = self
            .held
            .keys()
            .filter(|k| !mine.contains(k.as_str()))
            .cloned()
            .collect();
        if !give_back.is_empty() {
            let drain = self.config.leases.renew_every / 2;
            self.give_back(&give_back, drain).await;
        }
        let mut ok = true;
        for key in mine {
            if self.held.contains_key(key) {
                continue;
            }
            let lease = group_lease(key);
            match self
                .timed(self.leases.acquire(&lease, &holder, ttl, false))
                .await
            {
                Ok(Some(epoch)) => {
                    let term = Term::new(
                        &lease,
                        Some(epoch),
                        Until::At(valid_until),
                        Arc::clone(&self.clock),
                    );
                    tracing::info!(group = key, epoch, "took the rule group");
                    self.metrics.changes.with_label_values(&["acquired"]).inc();
                    self.held.insert(key.to_string(), term);
                }
                // Still held by its previous owner: taken once it is given
                // back or expires.
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(group = key, %error, "cannot take the rule group's lease");
                    ok = false;
                    break;
                }
            }
        }
        let owners = match self.timed(self.leases.live(GROUP_PREFIX)).await {
            Ok(live) => live
                .into_iter()
                .filter_map(|l| {
                    let key = l.name.strip_prefix(GROUP_PREFIX)?.to_string();
                    Some((key, l.holder))
                })
                .collect(),
            Err(_) => self.view.borrow().owners.clone(),
        };
        self.metrics
            .members
            .set(i64::try_from(members.len()).unwrap_or(i64::MAX));
        self.publish(members, owners);
        ok
    }

    /// Renews every held group's lease, one single-row statement each (a
    /// few at a time): a statement over several lease rows could deadlock
    /// with a history batch that holds some of them `FOR SHARE` (its
    /// fenced writes) and waits for another. False when a renewal failed
    /// (the group is evaluated on while its last renewal lasts).
    async fn renew_groups(&mut self, valid_until: Duration) -> bool {
        let (holder, ttl, timeout) = {
            let c = &self.config.leases;
            (c.holder.clone(), c.lease_duration, c.timeout)
        };
        let held: Vec<(String, i64)> = self
            .held
            .iter()
            .map(|(key, term)| (key.clone(), term.epoch().unwrap_or_default()))
            .collect();
        let renewals = held.into_iter().map(|(key, epoch)| {
            let (leases, holder) = (self.leases.clone(), holder.clone());
            Box::pin(async move {
                let lease = group_lease(&key);
                let renewal = leases.renew(&lease, &holder, epoch, ttl);
                let result = match tokio::time::timeout(timeout, renewal).await {
                    Ok(Ok(renewed)) => Ok(renewed),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("the database did not answer within {timeout:?}")),
                };
                (key, result)
            })
        });
        let results: Vec<(String, Result<bool, String>)> = futures::stream::iter(renewals)
            .buffer_unordered(RENEWALS_AT_ONCE)
            .collect()
            .await;
        let mut failed = None;
        for (key, result) in results {
            match result {
                Ok(true) => {
                    if let Some(term) = self.held.get(&key) {
                        term.extend(valid_until);
                    }
                }
                Ok(false) => self.lose(
                    &key,
                    "its lease expired on the database's clock or passed to another replica",
                ),
                Err(error) => failed = Some(error),
            }
        }
        match failed {
            Some(error) => {
                tracing::warn!(%error, groups = self.held.len(), "cannot renew some rule-group leases; evaluating them while their last renewal lasts");
                false
            }
            None => true,
        }
    }

    /// Keeps (or takes) the membership lease; false when this replica is
    /// not a member after the round (every group is then dropped as its
    /// term runs out).
    async fn keep_membership(&mut self, sent: Duration) -> bool {
        let c = self.config.leases.clone();
        match self.member.clone() {
            Some(term) => {
                let epoch = term.epoch().unwrap_or_default();
                match self
                    .timed(
                        self.leases
                            .renew(&c.lease, &c.holder, epoch, c.lease_duration),
                    )
                    .await
                {
                    Ok(true) => {
                        term.extend(sent + c.valid_for());
                        true
                    }
                    Ok(false) => {
                        tracing::warn!(member = %c.holder, "the membership lease expired on the database's clock; joining again");
                        term.revoke();
                        self.member = None;
                        self.join(sent).await
                    }
                    Err(error) => {
                        if !term.is_valid() {
                            tracing::warn!(%error, "no membership renewal within the lease: out of the fleet");
                            term.revoke();
                            self.member = None;
                        }
                        false
                    }
                }
            }
            None => self.join(sent).await,
        }
    }

    async fn join(&mut self, sent: Duration) -> bool {
        let c = self.config.leases.clone();
        match self
            .timed(
                self.leases
                    .acquire(&c.lease, &c.holder, c.lease_duration, false),
            )
            .await
        {
            Ok(Some(epoch)) => {
                tracing::info!(member = %c.holder, epoch, "joined the fleet");
                self.member = Some(Term::new(
                    &c.lease,
                    Some(epoch),
                    Until::At(sent + c.valid_for()),
                    Arc::clone(&self.clock),
                ));
                true
            }
            Ok(None) => {
                tracing::error!(member = %c.holder, "another process holds this replica's membership lease");
                false
            }
            Err(error) => {
                tracing::debug!(%error, "cannot join the fleet");
                false
            }
        }
    }

    /// Drops the held groups whose term ran out (no renewal in time), and
    /// all of them once this replica is no member; publishes the change.
    fn drop_lapsed(&mut self) {
        let lapsed: Vec<String> = self
            .held
            .iter()
            .filter(|(_, t)| !t.is_valid())
            .map(|(k, _)| k.clone())
            .collect();
        for key in &lapsed {
            self.lose(key, "no renewal within the lease minus the safety margin");
        }
        if !lapsed.is_empty() {
            let (members, owners) = {
                let v = self.view.borrow();
                (v.members.clone(), v.owners.clone())
            };
            self.publish(members, owners);
        }
    }

    fn lose(&mut self, key: &str, reason: &str) {
        if let Some(term) = self.held.remove(key) {
            term.revoke();
            tracing::warn!(group = key, epoch = ?term.epoch(), reason, "lost the rule group: stopped evaluating it");
            self.metrics.changes.with_label_values(&["lost"]).inc();
        }
    }

    /// Gives `keys` back: revoked at once (the scheduler stops evaluating
    /// them), then, once the history writer wrote what it holds, released,
    /// so their new owner takes them at its next round.
    async fn give_back(&mut self, keys: &[String], drain: Duration) {
        let terms: Vec<(String, Term)> = keys
            .iter()
            .filter_map(|k| self.held.remove(k).map(|t| (k.clone(), t)))
            .collect();
        for (_, term) in &terms {
            term.revoke();
        }
        let (members, owners) = {
            let v = self.view.borrow();
            (v.members.clone(), v.owners.clone())
        };
        self.publish(members, owners);
        self.drain_writer(drain).await;
        let holder = self.config.leases.holder.clone();
        for (key, term) in terms {
            let epoch = term.epoch().unwrap_or_default();
            match self
                .timed(self.leases.release(term.lease(), &holder, epoch))
                .await
            {
                Ok(_) => {
                    tracing::info!(group = %key, epoch, "gave the rule group to its new owner")
                }
                Err(error) => {
                    tracing::warn!(group = %key, %error, "cannot release the rule group's lease; its new owner takes it when it expires")
                }
            }
            self.metrics.changes.with_label_values(&["released"]).inc();
        }
    }

    /// Waits (at most `limit`) until the history writer holds nothing, so
    /// a group's last state is in the database before its lease goes
    /// (after that its writes would be refused; the new owner then starts
    /// from the state saved one evaluation earlier).
    async fn drain_writer(&self, limit: Duration) {
        let Some(writer) = &self.writer else { return };
        let deadline = self.clock.monotonic() + limit;
        while writer.backlog() > 0 && self.clock.monotonic() < deadline {
            self.clock.sleep(Duration::from_millis(20)).await;
        }
    }

    fn publish(&self, members: Vec<String>, owners: BTreeMap<String, String>) {
        self.metrics
            .owned
            .set(i64::try_from(self.held.len()).unwrap_or(i64::MAX));
        self.view.send_replace(Arc::new(FleetView {
            members,
            owned: self.held.clone(),
            owners,
        }));
    }

    /// At shutdown: stops evaluating everything, lets the writer write
    /// what it holds, and releases every lease (the groups first, then the
    /// membership), so the other members take over at their next round.
    async fn leave(&mut self) {
        let keys: Vec<String> = self.held.keys().cloned().collect();
        if !keys.is_empty() {
            self.give_back(&keys, WRITER_DRAIN).await;
        }
        if let Some(term) = self.member.take() {
            term.revoke();
            let c = self.config.leases.clone();
            let epoch = term.epoch().unwrap_or_default();
            match self
                .timed(self.leases.release(&c.lease, &c.holder, epoch))
                .await
            {
                Ok(_) => tracing::info!(member = %c.holder, "left the fleet"),
                Err(error) => {
                    tracing::warn!(%error, "cannot release the membership lease; it expires on its own")
                }
            }
        }
        self.publish(Vec::new(), BTreeMap::new());
    }
}
