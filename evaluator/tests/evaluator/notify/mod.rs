//! Notifications: the pipeline on a simulated clock, routing against
//! amtool, the delivery task over the outbox, backpressure, and the
//! receivers.

mod backpressure;
mod delivery_outbox;
mod pipeline;
mod receivers;
mod routing;
