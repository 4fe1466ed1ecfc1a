//! (skeleton) filled in by the exporter work.
