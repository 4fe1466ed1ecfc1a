//! The evaluator as a process: config checks, shipped configs, `run` end to
//! end, durability across kills, fault injection. `ha_faults.rs` and
//! `http_limits.rs` are here too but run in the `alone` test binary
//! (`tests/alone/main.rs`), which says why.

mod deploy_configs;
mod durable;
mod fault_injection;
mod faults;
mod process;
