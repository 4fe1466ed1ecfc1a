//! Silences: operator-created mutes (matchers plus a time window), the
//! rules for creating and changing one (Alertmanager's: which matchers are
//! valid, when a change may be made in place), and the store that holds
//! them. The store is a trait so that the history stage can persist
//! silences; [`MemorySilences`] is the in-memory version.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::matcher::{all_match, anchored_regex, is_valid_label_name, MatchOp, Matcher};
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
    #[error("invalid label matcher {index}: {why}")]
    InvalidMatcher { index: usize, why: String },
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

/// Where a silence stands at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SilenceState {
    Active,
    Pending,
    Expired,
}

impl SilenceState {
    pub fn of(s: &Silence, now: DateTime<Utc>) -> SilenceState {
        if now < s.starts_at {
            SilenceState::Pending
        } else if now < s.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// The name Alertmanager's API gives the state.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
            SilenceState::Expired => "expired",
        }
    }
}

/// One matcher of a silence as Alertmanager's API spells it: a name, a
/// value, and whether it is an equality and whether a regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatcherSpec {
    pub name: String,
    pub value: String,
    pub is_equal: bool,
    pub is_regex: bool,
}

/// A new silence (no id yet) from its parts, refusing a matcher whose name
/// is not a label name or whose regex does not compile, as Alertmanager
/// does.
pub fn to_silence(
    matchers: Vec<MatcherSpec>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    created_by: String,
    comment: String,
) -> Result<Silence, SilenceError> {
    let mut built = Vec::new();
    for (index, m) in matchers.into_iter().enumerate() {
        let invalid = |why: String| SilenceError::InvalidMatcher { index, why };
        if !is_valid_label_name(&m.name) {
            return Err(invalid(format!("invalid label name {:?}", m.name)));
        }
        let op = match (m.is_equal, m.is_regex) {
            (true, false) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (false, true) => MatchOp::NotRegex,
        };
        if m.is_regex {
            anchored_regex(&m.value).map_err(|e| invalid(e.to_string()))?;
        }
        built.push(Matcher::new(m.name, op, m.value).map_err(|e| invalid(e.to_string()))?);
    }
    Ok(Silence {
        id: String::new(),
        matchers: built,
        starts_at,
        ends_at,
        created_by,
        comment,
    })
}

/// Alertmanager's rule for changing a silence in place: same matchers, and
/// an active silence keeps its start and does not end in the past, a
/// pending one does not start in the past; an expired one never changes.
pub fn can_update(old: &Silence, new: &Silence, now: DateTime<Utc>) -> bool {
    if old.matchers != new.matchers {
        return false;
    }
    match SilenceState::of(old, now) {
        SilenceState::Active => {
            old.starts_at.timestamp() == new.starts_at.timestamp() && new.ends_at >= now
        }
        SilenceState::Pending => new.starts_at >= now,
        SilenceState::Expired => false,
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
    use crate::notify::fixtures::t;
    use crate::notify::matcher::parse_matcher;

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
    fn silences_change_in_place_only_when_history_is_kept() {
        let m = |s: &str| vec![parse_matcher(s).unwrap()];
        let silence = |matchers, from, to| Silence {
            id: "x".into(),
            matchers,
            starts_at: t(from),
            ends_at: t(to),
            created_by: "ops".into(),
            comment: String::new(),
        };
        let active = silence(m("job=db"), 0, 100);
        assert!(can_update(&active, &silence(m("job=db"), 0, 200), t(50)));
        assert!(!can_update(&active, &silence(m("job=web"), 0, 200), t(50)));
        assert!(!can_update(&active, &silence(m("job=db"), 10, 200), t(50)));
        let pending = silence(m("job=db"), 100, 200);
        assert!(can_update(&pending, &silence(m("job=db"), 60, 200), t(50)));
        assert!(
            !can_update(&active, &silence(m("job=db"), 0, 200), t(100)),
            "expired"
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
