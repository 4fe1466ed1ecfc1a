//! Silences: operator-created mutes (matchers plus a time window) and the
//! store that holds them. The store is a trait so that the history stage can
//! persist silences later; [`MemorySilences`] is the in-memory version.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::matcher::{all_match, Matcher};
use crate::clock::add;
use crate::labels::Labels;

/// How long an expired silence is kept (for the API and history), as in
/// Alertmanager's default data retention.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(120 * 3600);

/// Why a silence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("a silence needs at least one matcher")]
    NoMatchers,
    #[error("at least one matcher must not match the empty string, or the silence would mute every alert")]
    MatchesEverything,
    #[error("the silence ends ({ends_at}) before it starts ({starts_at})")]
    EndsBeforeStart {
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    #[error("no silence with id {0:?}")]
    NotFound(String),
    #[error("silence {0:?} has already expired")]
    AlreadyExpired(String),
}

/// One silence.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    /// Empty when creating; the store assigns one.
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    /// Active during `[starts_at, ends_at)`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// Whether this silence mutes an alert with `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.is_active(now) && all_match(&self.matchers, labels)
    }

    /// Alertmanager's checks: some matcher, not matching everything, and a
    /// window that ends after it starts.
    pub fn validate(&self) -> Result<(), SilenceError> {
        if self.matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        if self.matchers.iter().all(|m| m.matches_value("")) {
            return Err(SilenceError::MatchesEverything);
        }
        if self.ends_at < self.starts_at {
            return Err(SilenceError::EndsBeforeStart {
                starts_at: self.starts_at,
                ends_at: self.ends_at,
            });
        }
        Ok(())
    }
}

/// Where silences live.
pub trait SilenceStore: Send {
    /// Adds a silence (empty id) or replaces one; returns its id.
    fn upsert(&mut self, silence: Silence, now: DateTime<Utc>) -> Result<String, SilenceError>;
    /// Ends a silence now.
    fn expire(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), SilenceError>;
    fn get(&self, id: &str) -> Option<Silence>;
    /// Every silence still retained, active, pending or expired.
    fn list(&self) -> Vec<Silence>;
    /// Forgets silences that expired more than the retention ago.
    fn gc(&mut self, now: DateTime<Utc>);
    /// Whether any active silence mutes `labels`.
    fn is_silenced(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.list().iter().any(|s| s.mutes(labels, now))
    }
    /// When the silence `id` was last changed, if the store knows (the
    /// silences API's `updatedAt`).
    fn updated_at(&self, _id: &str) -> Option<DateTime<Utc>> {
        None
    }
    /// Takes in silences stored by another replica (newest version wins);
    /// returns how many changed. Stores that are not shared ignore them.
    fn merge_stored(&mut self, _rows: Vec<(Silence, DateTime<Utc>)>) -> usize {
        0
    }
    /// Ids of the active silences that mute `labels` (the alerts API's
    /// `silencedBy`).
    fn silenced_by(&self, labels: &Labels, now: DateTime<Utc>) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|s| s.mutes(labels, now))
            .map(|s| s.id)
            .collect()
    }
}

/// In-memory silence store.
#[derive(Debug)]
pub struct MemorySilences {
    silences: BTreeMap<String, Silence>,
    retention: Duration,
    next_id: u64,
}

impl Default for MemorySilences {
    fn default() -> Self {
        MemorySilences::new(DEFAULT_RETENTION)
    }
}

impl MemorySilences {
    pub fn new(retention: Duration) -> MemorySilences {
        MemorySilences {
            silences: BTreeMap::new(),
            retention,
            next_id: 1,
        }
    }
}

impl SilenceStore for MemorySilences {
    fn upsert(&mut self, mut silence: Silence, now: DateTime<Utc>) -> Result<String, SilenceError> {
        silence.validate()?;
        if silence.id.is_empty() {
            // Time plus a counter: unique within this process and sortable.
            silence.id = format!("{:x}-{:04x}", now.timestamp_millis(), self.next_id);
            self.next_id += 1;
        } else if let Some(existing) = self.silences.get(&silence.id) {
            if existing.ends_at <= now {
                return Err(SilenceError::AlreadyExpired(silence.id));
            }
        }
        let id = silence.id.clone();
        self.silences.insert(id.clone(), silence);
        Ok(id)
    }

    fn expire(&mut self, id: &str, now: DateTime<Utc>) -> Result<(), SilenceError> {
        let silence = self
            .silences
            .get_mut(id)
            .ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
        if silence.ends_at <= now {
            return Err(SilenceError::AlreadyExpired(id.to_string()));
        }
        silence.ends_at = now;
        if silence.starts_at > now {
            silence.starts_at = now;
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Option<Silence> {
        self.silences.get(id).cloned()
    }

    fn list(&self) -> Vec<Silence> {
        self.silences.values().cloned().collect()
    }

    fn gc(&mut self, now: DateTime<Utc>) {
        let retention = self.retention;
        self.silences.retain(|_, s| add(s.ends_at, retention) > now);
    }

    fn is_silenced(&self, labels: &Labels, now: DateTime<Utc>) -> bool {
        self.silences.values().any(|s| s.mutes(labels, now))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;
    use crate::notify::matcher::parse_matcher;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(secs)
    }

    fn silence(matchers: &[&str], from: i64, to: i64) -> Silence {
        Silence {
            id: String::new(),
            matchers: matchers.iter().map(|m| parse_matcher(m).unwrap()).collect(),
            starts_at: t(from),
            ends_at: t(to),
            created_by: "ops".into(),
            comment: "maintenance".into(),
        }
    }

    #[test]
    fn silence_mutes_matching_alerts_only_inside_its_window() {
        let mut store = MemorySilences::default();
        store.upsert(silence(&["job=db"], 100, 200), t(0)).unwrap();
        let db = Labels::from_pairs([("job", "db")]);
        assert!(!store.is_silenced(&db, t(99)));
        assert!(store.is_silenced(&db, t(100)));
        assert!(!store.is_silenced(&Labels::from_pairs([("job", "web")]), t(150)));
        assert!(!store.is_silenced(&db, t(200)));
    }

    #[test]
    fn silenced_by_names_every_muting_silence() {
        let mut store = MemorySilences::default();
        let first = store.upsert(silence(&["job=db"], 0, 100), t(0)).unwrap();
        store.upsert(silence(&["job=web"], 0, 100), t(0)).unwrap();
        let third = store.upsert(silence(&["job=~d.*"], 0, 100), t(0)).unwrap();
        let db = Labels::from_pairs([("job", "db")]);
        assert_eq!(store.silenced_by(&db, t(50)), [first, third]);
    }

    #[test]
    fn expiring_a_silence_unmutes_at_once() {
        let mut store = MemorySilences::default();
        let id = store.upsert(silence(&["job=db"], 0, 1000), t(0)).unwrap();
        store.expire(&id, t(10)).unwrap();
        assert!(!store.is_silenced(&Labels::from_pairs([("job", "db")]), t(10)));
        assert_eq!(
            store.expire(&id, t(11)),
            Err(SilenceError::AlreadyExpired(id))
        );
    }

    #[test]
    fn silences_that_match_everything_are_refused() {
        let mut store = MemorySilences::default();
        assert_eq!(
            store.upsert(silence(&[], 0, 1), t(0)),
            Err(SilenceError::NoMatchers)
        );
        assert_eq!(
            store.upsert(silence(&["job=~.*"], 0, 1), t(0)),
            Err(SilenceError::MatchesEverything)
        );
    }

    #[test]
    fn expired_silences_are_forgotten_after_the_retention() {
        let mut store = MemorySilences::new(Duration::from_secs(60));
        store.upsert(silence(&["job=db"], 0, 100), t(0)).unwrap();
        store.gc(t(159));
        assert_eq!(store.list().len(), 1);
        store.gc(t(160));
        assert!(store.list().is_empty());
    }
}
