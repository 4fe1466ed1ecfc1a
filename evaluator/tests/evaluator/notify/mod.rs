//! Notifications: the pipeline on a simulated clock, routing against
//! amtool, the delivery task over the outbox, and the receivers.
//! `backpressure.rs` is here too but runs in the `alone` test binary
//! (`tests/alone/main.rs`), which says why.

mod check_config_corpus;
mod delivery_outbox;
mod pipeline;
pub(crate) mod receivers;
mod routing;
mod shutdown_grace;
mod templates;
mod time_intervals;
