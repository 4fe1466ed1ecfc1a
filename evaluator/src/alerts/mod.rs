//! The alert state machine: turns an alerting rule's query results into
//! alerts that move inactive → pending → firing → resolved exactly as
//! Prometheus' `rules/alerting.go` does (`for`, `keep_firing_for`, 15-minute
//! resolved retention, resend pacing), and writes `ALERTS` and
//! `ALERTS_FOR_STATE` back.
//!
//! Time is always an argument (the evaluation time), never the wall clock, so
//! tests step simulated time.
//!
//! `cooldown` (Vigil) is not applied here: the state machine only carries
//! each rule's cooldown on its alerts ([`Alert::cooldown`]); the notifier,
//! which knows when a firing notification was last delivered, suppresses a
//! second firing notification of the same alert within that window.

pub mod rule;
pub mod state;

pub use rule::{AlertError, AlertingRule, EvalContext};
pub use state::{Alert, AlertState, RESOLVED_RETENTION};
