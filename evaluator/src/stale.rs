//! Prometheus' staleness marker, the one definition scrape, store, rules and
//! PromQL share: a NaN with a payload no arithmetic produces, written when a
//! series disappears (from a scrape, or from a rule's output) so queries
//! stop looking back past it, and told apart from a scraped or computed NaN
//! by its bits.

/// The staleness marker's value.
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// Whether `v` is the staleness marker (compares bits: any other NaN,
/// including one a target exposes, is an ordinary value).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN.to_bits()
}
