//! Console receiver (Vigil): prints a readable block per notification on
//! stdout and logs one structured line, so a setup without any notify config
//! still shows what would have been sent.
//!
//! # `console_configs`
//!
//! | field | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `true` | also print resolved notifications |

pub mod config;
pub mod send;

pub use config::*;
pub use send::*;
