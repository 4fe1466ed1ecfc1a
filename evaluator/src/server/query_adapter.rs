//! The store the scrape loops, the rules and the API share, and the rules
//! engine's seams over it: [`StoreQueryEngine`] (from
//! [`crate::rules::store_engine`], the same one `test rules` uses) lets rule
//! groups read scraped samples and write recording-rule output, `ALERTS` and
//! `ALERTS_FOR_STATE` back where the next query sees them.

use std::sync::{Arc, RwLock};

pub use crate::rules::store_engine::StoreQueryEngine;
use crate::store::Store;

/// The store shared by the scrape loops, the rules and the API.
pub type SharedStore = Arc<RwLock<Store>>;

/// Locks for reading, ignoring poisoning: a panic elsewhere must not stop
/// evaluation, and the store stays consistent per append.
pub fn read_store(store: &SharedStore) -> std::sync::RwLockReadGuard<'_, Store> {
    store.read().unwrap_or_else(|e| e.into_inner())
}

/// Locks for writing, ignoring poisoning (see [`read_store`]).
pub fn write_store(store: &SharedStore) -> std::sync::RwLockWriteGuard<'_, Store> {
    store.write().unwrap_or_else(|e| e.into_inner())
}
