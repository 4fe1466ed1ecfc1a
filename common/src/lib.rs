//! vigil-common: the config plumbing both binaries share, so that a duration
//! or an error position means the same in `exporter.yaml`, `vigil.yaml`,
//! rule files and `notify.yaml`.
//!
//! - [`duration`]: Prometheus duration notation (`1h30m`, `500ms`, `0`).
//! - [`yaml_positions`]: line and column of every key and value of a YAML
//!   document by field path (`groups[0].rules[2].expr`).

pub mod duration;
pub mod yaml_positions;
