//! [`SqlSilences`]: the notifier's silence store, persisted in the
//! `silences` table.
//!
//! The notifier asks "is this alert silenced?" for every alert of every
//! flush, synchronously ([`SilenceStore`] is a sync trait, called under the
//! notifier's lock). A database round trip there would put the database's
//! latency (or outage) into the notification path, so the silences live in a
//! [`MemorySilences`] cache that answers every read, and every change is
//! written through to the database asynchronously by the batched
//! [`HistoryWriter`] (in order, retried until it lands). At start the cache
//! is filled from the database ([`SqlSilences::load`]); with several
//! replicas, [`SqlSilences::merge`] with a fresh [`HistoryStore::load_silences`]
//! (e.g. every 10 s) brings in silences created on the other replicas — the
//! newest version of a silence (by `updated_at`) wins.
//!
//! The price: a silence created while the database is down exists only in
//! this process until the writer catches up, and is lost if the process dies
//! before that.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::store::HistoryWrite;
use super::writer::HistoryWriter;
use super::{new_id, HistoryError, HistoryStore};
use crate::labels::Labels;
use crate::notify::matcher::{MatchOp, Matcher};
use crate::notify::silence::{MemorySilences, Silence, SilenceError, SilenceStore};

#[derive(Serialize, Deserialize)]
struct StoredMatcher {
    name: String,
    op: String,
    value: String,
}

/// Matchers as a JSON list of `{"name", "op", "value"}` objects, `op` one
/// of `=`, `!=`, `=~`, `!~`.
pub fn matchers_to_json(matchers: &[Matcher]) -> String {
    let stored: Vec<StoredMatcher> = matchers
        .iter()
        .map(|m| StoredMatcher {
            name: m.name.clone(),
            op: m.op.as_str().to_string(),
            value: m.value.clone(),
        })
        .collect();
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".to_string())
}

/// The inverse of [`matchers_to_json`].
pub fn matchers_from_json(text: &str) -> Result<Vec<Matcher>, String> {
    let stored: Vec<StoredMatcher> =
        serde_json::from_str(text).map_err(|err| format!("matchers: {err}"))?;
    stored
        .into_iter()
        .map(|m| {
            let op = match m.op.as_str() {
                "=" => MatchOp::Equal,
                "!=" => MatchOp::NotEqual,
                "=~" => MatchOp::Regex,
                "!~" => MatchOp::NotRegex,
                other => return Err(format!("matchers: unknown operator {other:?}")),
            };
            Matcher::new(m.name, op, m.value).map_err(|err| format!("matchers: {err}"))
        })
        .collect()
}

/// Silences cached in memory and written through to the database.
pub struct SqlSilences {
    cache: MemorySilences,
    /// The `updated_at` of each silence's latest version, for merging.
    updated: HashMap<String, DateTime<Utc>>,
    writer: HistoryWriter,
}

impl std::fmt::Debug for SqlSilences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSilences")
            .field("silences", &self.updated.len())
            .finish_non_exhaustive()
    }
}

impl SqlSilences {
    /// The stored silences, cached; changes go to `writer`. `retention` is
    /// how long expired silences stay in the cache (the database keeps them
    /// for the history retention).
    pub async fn load(
        store: &HistoryStore,
        writer: HistoryWriter,
        retention: Duration,
    ) -> Result<SqlSilences, HistoryError> {
        let mut silences = SqlSilences::empty(writer, retention);
        silences.merge(store.load_silences().await?);
        Ok(silences)
    }

    /// No silences yet (the database could not be read at start); a later
    /// [`SqlSilences::merge`] brings the stored ones in.
    pub fn empty(writer: HistoryWriter, retention: Duration) -> SqlSilences {
        SqlSilences {
            cache: MemorySilences::new(retention),
            updated: HashMap::new(),
            writer,
        }
    }

    /// Takes in stored silences (from [`HistoryStore::load_silences`]): a
    /// silence is replaced when the stored version is newer than the cached
    /// one. Returns how many changed.
    pub fn merge(&mut self, rows: Vec<(Silence, DateTime<Utc>)>) -> usize {
        let mut changed = 0;
        for (silence, updated_at) in rows {
            if self
                .updated
                .get(&silence.id)
                .is_some_and(|known| *known >= updated_at)
            {
                continue;
            }
            let id = silence.id.clone();
            // Validated with the oldest possible "now" so that an expired
            // silence is still taken in (the cache forgets it at gc).
            match self.cache.upsert(silence, DateTime::<Utc>::MIN_UTC) {
                Ok(_) => {
                    self.updated.insert(id, updated_at);
                    changed += 1;
                }
                Err(err) => {
                    tracing::warn!(silence = %id, error = %err, "ignoring a stored silence");
                }
            }
        }
        changed
    }

    fn persist(&mut self, id: &str, now: DateTime<Utc>) {
        let Some(silence) = self.cache.get(id) else {
            return;
        };
        self.updated.insert(id.to_string(), now);
        let write = HistoryWrite::Silence {
            silence,
            updated_at: now,
        };
        if let Err(err) = self.writer.record(write) {
            tracing::error!(silence = %id, error = %err, "silence kept in memory only; it is lost on restart");
        }
    }
}

impl SilenceStore for SqlSilences {
    fn upsert(&mut self, mut silence: Silence, now: DateTime<Utc>) -> Result<String, SilenceError> {
        if silence.id.is_empty() {
            // A globally unique id: replicas create silences independently.
            silence.id = new_id(now);
        }
        let id = self.cache.upsert(silence, now)?;
        self.persist(&id, now);
        Ok(id)
    }

    fn expire(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), SilenceError> {
        self.cache.expire(id, now)?;
        self.persist(id, now);
        Ok(())
    }

    fn get(&self, id: &str) -> Option<Silence> {
        self.cache.get(id)
    }

    fn list(&self) -> Vec<Silence> {
        self.cache.list()
    }

    fn gc(&mut self, now: DateTime<Utc>) {
        self.cache.gc(now);
        let cache = &self.cache;
        self.updated.retain(|id, _| cache.get(id).is_some());
    }

    fn is_silenced(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.cache.is_silenced(labels, now)
    }

    fn updated_at(&self, id: &str) -> Option<DateTime<Utc>> {
        self.updated.get(id).copied()
    }

    fn merge_stored(&mut self, rows: Vec<(Silence, DateTime<Utc>)>) -> usize {
        self.merge(rows)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;
    use crate::notify::matcher::parse_matcher;

    #[test]
    fn matchers_survive_the_json_round_trip() {
        let matchers: Vec<Matcher> = ["job=\"d\\\"b\"", "env!=prod", "instance=~\"a|b\"", "x!~y"]
            .iter()
            .map(|m| parse_matcher(m).unwrap())
            .collect();
        let back = matchers_from_json(&matchers_to_json(&matchers)).unwrap();
        assert_eq!(back, matchers);
        assert!(back[2].matches(&Labels::from_pairs([("instance", "b")])));
    }

    #[test]
    fn unknown_operators_are_reported() {
        let err = matchers_from_json(r#"[{"name":"a","op":"<","value":"1"}]"#).unwrap_err();
        assert!(err.contains("unknown operator"), "{err}");
    }
}
