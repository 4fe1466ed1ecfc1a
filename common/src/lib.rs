//! vigil-common: the config plumbing both binaries share, so that a duration
//! or an error position means the same in `exporter.yaml`, `vigil.yaml`,
//! rule files and `notify.yaml`.
//!
//! - [`build_info`]: version and git commit for `--version`.
//! - [`duration`]: Prometheus duration notation (`1h30m`, `500ms`, `0`).
//! - [`http_server`]: serves an axum app with a header-read timeout, an
//!   idle (keep-alive) timeout and a connection cap.
//! - [`problem`]: one problem in a config file, shown as
//!   `file:line:column: field: message`.
//! - [`yaml_positions`]: line and column of every key and value of a YAML
//!   document by field path (`groups[0].rules[2].expr`).

pub mod build_info;
pub mod duration;
pub mod http_server;
pub mod problem;
pub mod yaml_positions;
