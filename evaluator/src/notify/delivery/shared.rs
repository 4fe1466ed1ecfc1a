//! What the delivery loop and its delivery tasks share: the receivers'
//! integrations, the delivery stage, the outbox, this replica's leadership
//! term, the lanes, and which outbox entries this process is handling.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::held::Held;
use super::lanes::Lanes;
use super::outbox::NotificationOutbox;
use super::term::{Leadership, Term};
use super::{DeliveryMetrics, ReceiverIntegrations};
use crate::clock::Clock;
use crate::notify::deliver::DeliveryStage;
use crate::notify::failure_log::FailureLog;
use crate::notify::receivers::Integration;

/// What the delivery tasks share.
pub(super) struct Shared {
    pub(super) receivers: watch::Receiver<Arc<ReceiverIntegrations>>,
    pub(super) stage: DeliveryStage,
    pub(super) metrics: Arc<dyn DeliveryMetrics>,
    pub(super) outbox: Option<Arc<dyn NotificationOutbox>>,
    /// Idempotency keys of the outbox entries whose delivery (or its
    /// outcome's record) runs in this process, so a resume does not start
    /// a second delivery of the same entry.
    pub(super) in_flight: Mutex<HashSet<String>>,
    /// Outbox ids of the entries this process queued and has not finished
    /// with: a resumed entry not among them was started by a previous
    /// process or leader, so its delivery is marked as a re-send.
    pub(super) own: Mutex<HashSet<String>>,
    pub(super) lanes: Lanes,
    /// Rate limit of delivery-failure log lines per receiver integration.
    pub(super) failures: Arc<FailureLog>,
    /// This replica's current leadership term (`None`: standby).
    pub(super) term: Mutex<Option<Term>>,
    pub(super) clock: Arc<dyn Clock>,
    /// Back to the delivery loop: a delivery that may not be sent (the term
    /// lapsed) and has no outbox row for the next leader to resume, so it
    /// is held again instead of being lost.
    pub(super) requeue: mpsc::UnboundedSender<Held>,
}

impl Shared {
    pub(super) fn term(&self) -> Option<Term> {
        self.term.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether this replica leads with a term still valid now.
    pub(super) fn leads(&self) -> bool {
        self.term().is_some_and(|t| t.is_valid())
    }

    /// Follows `leadership`; true when it is a new term (a take-over, or a
    /// new epoch after the old term lapsed).
    pub(super) fn set_term(&self, leadership: &Leadership) -> bool {
        let new = leadership.term().cloned();
        let mut term = self.term.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = match (&*term, &new) {
            (None, Some(_)) => true,
            (Some(old), Some(new)) => old.epoch().is_some() && old.epoch() != new.epoch(),
            _ => false,
        };
        *term = new;
        fresh
    }

    pub(super) fn claim(&self, key: &str) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string())
    }

    pub(super) fn forget(&self, key: &str) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    pub(super) fn own(&self, id: &str, own: bool) {
        let mut ids = self.own.lock().unwrap_or_else(|e| e.into_inner());
        if own {
            ids.insert(id.to_string());
        } else {
            ids.remove(id);
        }
    }

    pub(super) fn owns(&self, id: &str) -> bool {
        self.own
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    pub(super) fn integrations(&self, receiver: &str) -> Option<Vec<Integration>> {
        self.receivers.borrow().get(receiver).cloned()
    }
}
