//! The scrape stage: fetches `/metrics` from every configured target on its
//! own schedule, parses the exposition, relabels it, tracks staleness and
//! hands each scrape to the store as one batch.
//!
//! The store is reached only through [`SampleAppender`], so this stage can
//! be tested (and benchmarked) without it.
//!
//! Wiring, in order: deserialise `scrape_configs` into [`ScrapeConfig`]s,
//! check them with [`validate_scrape_configs`] (every problem, with its
//! field path), then [`spawn_scrape_loops`] with the store, a
//! [`crate::clock::Clock`] and a shutdown token; the returned
//! [`TargetHandle`]s feed the targets API.
//! Cancelling the token stops every loop, which first marks all of its
//! series stale.
//!
//! Work is bounded: parsing and storing run on tokio's blocking pool (the
//! async workers keep serving HTTP and rules), `scrape_timeout` covers the
//! whole scrape, and Prometheus' per-scrape limits (`sample_limit`,
//! `body_size_limit`, `label_limit`, `label_name_length_limit`,
//! `label_value_length_limit`) have protective defaults. A scrape over any
//! limit fails whole, as in Prometheus: nothing of it is stored, its
//! previous series go stale, `up` is 0 and the reason is the target's last
//! error. The store may also refuse a target's scrape whole when it would
//! take the target past its share of the series limit (see
//! [`crate::store`]).

pub mod appender;
pub mod config;
mod ingest;
pub mod parser;
pub mod relabel;
pub mod scrape_loop;
pub mod staleness;
pub mod target;

pub use appender::{AppendError, Sample, SampleAppender, TargetId};
pub use config::{
    parse_prometheus_duration, validate_scrape_configs, ScrapeConfig, ScrapeDefaults,
    ValidScrapeConfig,
};
pub use parser::{Entry, Format, ParseError, Parser, Pieces, SampleLine};
pub use scrape_loop::{spawn_scrape_loops, ScrapeError, ScrapeLoop, ScrapeOutcome, ACCEPT_HEADER};
pub use target::{wait_for_first_scrapes, Health, Target, TargetHandle, TargetState};
