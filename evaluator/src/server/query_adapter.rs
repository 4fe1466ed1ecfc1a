//! The store the scrape loops, the rules and the API share, and the rules
//! engine's seams over it: [`StoreQueryEngine`] (from
//! [`crate::rules::store_engine`], the same one `test rules` uses) lets rule
//! groups read scraped samples and write recording-rule output, `ALERTS` and
//! `ALERTS_FOR_STATE` back where the next query sees them.

pub use crate::rules::store_engine::StoreQueryEngine;
pub use crate::store::shared::{read_store, write_store, SharedStore};
