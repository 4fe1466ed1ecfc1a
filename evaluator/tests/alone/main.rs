//! The evaluator's load tests, in a test binary of their own: they time the
//! evaluator process under load (health answers within 100 ms while a flood
//! of alerts, a 20,000-label series or 100 slow clients hit it; an HA
//! fail-over within two lease periods) and so need the machine to
//! themselves. Cargo runs test binaries one after another, so nothing else
//! runs beside them; in the shared `evaluator` binary the other tests did
//! (a lock only keeps apart the tests that take it), and the health probes
//! went over their limit. Their files stay in their stage's folder of
//! `tests/evaluator/`, with the same support module, and `support::alone`
//! keeps them from overlapping each other.

#[macro_use]
#[path = "../evaluator/support/mod.rs"]
mod support;

#[path = "../evaluator/notify"]
mod notify {
    mod backpressure;
}

#[path = "../evaluator/scrape"]
mod scrape {
    mod limits;
}

#[path = "../evaluator/server"]
mod server {
    mod ha_faults;
    mod http_limits;
}
