//! Every default of `exporter.yaml`, in one place, so the docs, the
//! validation and the example files cannot drift apart.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Port of the exporter (Vigil's range: exporter 9310, evaluator 9320).
pub const PORT: u16 = 9310;
/// Default `probes[].interval`.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// Default `probes[].timeout`.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `probes[].method`.
pub const PROBE_METHOD: &str = "GET";
/// Default `probes[].expect`: any non-error status.
pub const PROBE_EXPECT: &str = crate::probe::Expectation::DEFAULT_SOURCE;
/// Default `probe_concurrency`: most probes in flight at once.
pub const PROBE_CONCURRENCY: usize = crate::probe::DEFAULT_MAX_CONCURRENCY;
/// Default `probes[].follow_redirects`.
pub const FOLLOW_REDIRECTS: bool = true;
/// Default `probes[].tls_verify`.
pub const TLS_VERIFY: bool = true;
/// Default `business.max_label_sets`.
pub const MAX_LABEL_SETS: usize = 1000;

/// Default `listen`: all interfaces, port [`PORT`].
pub fn listen() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT))
}

/// Default HELP text of a business metric declared without one.
pub fn metric_help(kind: &str, name: &str) -> String {
    format!("Business {kind} {name}, fed through POST /api/v1/events.")
}
