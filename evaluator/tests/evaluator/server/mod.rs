//! The evaluator as a process: config checks, shipped configs, `run` end to
//! end, durability across kills, fault injection (single replica and HA),
//! and slow HTTP clients.

mod deploy_configs;
mod durable;
mod fault_injection;
mod faults;
mod ha_faults;
mod http_limits;
mod process;
