//! Console receiver (Vigil): prints a readable block per notification on
//! stdout and logs one structured line, so a setup without any notify config
//! still shows what would have been sent.
//!
//! # `console_configs`
//!
//! The fields, their defaults and meaning are documented on
//! [`ConsoleConfigRaw`].

pub mod config;
pub mod send;

pub use config::*;
pub use send::*;
