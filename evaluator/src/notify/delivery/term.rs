//! One leadership term: the lease's epoch (the fencing token) and how long
//! this replica may act on it, on its own monotonic clock; and the
//! [`Leadership`] an elector publishes. Declared here, by what needs it:
//! delivery checks [`Term::is_valid`] right before it sends and abandons a
//! delivery on [`Term::lost`]; the history's leader election creates,
//! extends and revokes terms, and turns them into its write fences.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::{Clock, SystemClock};

/// The lease an unfenced term names (the notification leader's).
pub const DEFAULT_LEASE: &str = "notification-leader";

/// Until when a term lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    Forever,
    At(Duration),
    Revoked,
}

#[derive(Debug)]
struct Validity {
    clock: Arc<dyn Clock>,
    until: Mutex<Until>,
    changed: Notify,
}

/// One leadership term: the lease's epoch (the fencing token) and how long
/// this replica may act on it. Cheap to clone; the elector extends it at
/// each renewal and revokes it when it steps down.
#[derive(Clone)]
pub struct Term {
    lease: Arc<str>,
    epoch: Option<i64>,
    validity: Arc<Validity>,
}

impl fmt::Debug for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Term")
            .field("lease", &self.lease)
            .field("epoch", &self.epoch)
            .field("valid", &self.is_valid())
            .finish()
    }
}

impl PartialEq for Term {
    fn eq(&self, other: &Term) -> bool {
        self.lease == other.lease
            && self.epoch == other.epoch
            && Arc::ptr_eq(&self.validity, &other.validity)
    }
}

impl Eq for Term {}

impl Term {
    pub(crate) fn new(
        lease: &str,
        epoch: Option<i64>,
        until: Until,
        clock: Arc<dyn Clock>,
    ) -> Term {
        Term {
            lease: Arc::from(lease),
            epoch,
            validity: Arc::new(Validity {
                clock,
                until: Mutex::new(until),
                changed: Notify::new(),
            }),
        }
    }

    /// A term without a database: valid forever, writes not fenced (a
    /// single replica, or a sole SQLite replica before its first round).
    pub fn unfenced() -> Term {
        Term::new(
            DEFAULT_LEASE,
            None,
            Until::Forever,
            // Never read: the term does not end.
            Arc::new(SystemClock),
        )
    }

    /// The lease's epoch; `None` for an unfenced term.
    pub fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    /// The lease this term holds.
    pub fn lease(&self) -> &str {
        &self.lease
    }

    fn until(&self) -> Until {
        *self
            .validity
            .until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this replica may still act as the leader under this term.
    pub fn is_valid(&self) -> bool {
        match self.until() {
            Until::Forever => true,
            Until::At(at) => self.validity.clock.monotonic() < at,
            Until::Revoked => false,
        }
    }

    /// Resolves once the term is no longer valid (revoked, or its time ran
    /// out on the monotonic clock); pending forever for a term that never
    /// ends.
    pub async fn lost(&self) {
        loop {
            let changed = self.validity.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wait = match self.until() {
                Until::Revoked => return,
                Until::Forever => None,
                Until::At(at) => {
                    let now = self.validity.clock.monotonic();
                    if now >= at {
                        return;
                    }
                    // Re-read the clock at least every 100 ms rather than
                    // trusting one long sleep.
                    Some((at - now).min(Duration::from_millis(100)))
                }
            };
            match wait {
                Some(wait) => {
                    tokio::select! {
                        () = changed => {}
                        () = self.validity.clock.sleep(wait) => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Moves the end of the term forward to `at` (never back, never out of
    /// a revocation).
    pub(crate) fn extend(&self, at: Duration) {
        let mut until = self
            .validity
            .until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Until::At(current) = *until {
            if at > current {
                *until = Until::At(at);
            }
        }
    }

    pub(crate) fn revoke(&self) {
        *self
            .validity
            .until
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Until::Revoked;
        self.validity.changed.notify_waiters();
    }
}

/// Whether this replica leads, as the elector publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    Standby,
    Leading(Term),
}

impl Leadership {
    pub fn is_leading(&self) -> bool {
        matches!(self, Leadership::Leading(_))
    }

    pub fn term(&self) -> Option<&Term> {
        match self {
            Leadership::Leading(term) => Some(term),
            Leadership::Standby => None,
        }
    }
}
