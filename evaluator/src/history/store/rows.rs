//! Reading and writing column values: timestamps, states, fingerprints and
//! the JSON text labels, annotations and fingerprint sets are stored as.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::HistoryState;
use crate::history::db::column;
use crate::history::{from_millis, HistoryError};
use crate::labels::Labels;
use crate::notify::alert::Fingerprint;

pub(crate) fn time(
    row: &AnyRow,
    name: &str,
    table: &'static str,
) -> Result<DateTime<Utc>, HistoryError> {
    let ms: i64 = column(row, name, table)?;
    from_millis(ms).ok_or_else(|| HistoryError::Corrupt {
        table,
        id: String::new(),
        reason: format!("column {name}: {ms} is not a valid timestamp"),
    })
}

pub(crate) fn opt_time(
    row: &AnyRow,
    name: &str,
    table: &'static str,
) -> Result<Option<DateTime<Utc>>, HistoryError> {
    match column::<Option<i64>>(row, name, table)? {
        None => Ok(None),
        Some(ms) => from_millis(ms)
            .map(Some)
            .ok_or_else(|| HistoryError::Corrupt {
                table,
                id: String::new(),
                reason: format!("column {name}: {ms} is not a valid timestamp"),
            }),
    }
}

pub(super) fn state(
    row: &AnyRow,
    name: &str,
    table: &'static str,
) -> Result<HistoryState, HistoryError> {
    let text: String = column(row, name, table)?;
    HistoryState::parse(&text).ok_or_else(|| HistoryError::Corrupt {
        table,
        id: String::new(),
        reason: format!("column {name}: unknown state {text:?}"),
    })
}

pub(super) fn fingerprint(
    row: &AnyRow,
    name: &str,
    table: &'static str,
) -> Result<Fingerprint, HistoryError> {
    let text: String = column(row, name, table)?;
    parse_fingerprint(&text).ok_or_else(|| HistoryError::Corrupt {
        table,
        id: text.clone(),
        reason: format!("column {name}: {text:?} is not a 16-digit hex fingerprint"),
    })
}

pub(crate) fn parse_fingerprint(text: &str) -> Option<Fingerprint> {
    u64::from_str_radix(text, 16).ok().map(Fingerprint)
}

pub(super) fn json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    name: &str,
    table: &'static str,
) -> Result<T, HistoryError> {
    let text: String = column(row, name, table)?;
    serde_json::from_str(&text).map_err(|err| HistoryError::Corrupt {
        table,
        id: String::new(),
        reason: format!("column {name}: {err}"),
    })
}

/// Labels as a JSON object (`{"alertname":"Down",…}`), sorted by name.
pub fn labels_to_json(labels: &Labels) -> String {
    let map: BTreeMap<&str, &str> = labels.iter().map(|l| (l.name, l.value)).collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_string())
}

pub(super) fn labels_from_json(text: &str, table: &'static str) -> Result<Labels, HistoryError> {
    let map: BTreeMap<String, String> =
        serde_json::from_str(text).map_err(|err| HistoryError::Corrupt {
            table,
            id: String::new(),
            reason: format!("labels: {err}"),
        })?;
    Ok(Labels::from_pairs(map))
}

pub(crate) fn map_to_json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_string())
}

pub(super) fn fingerprints_to_json(set: &BTreeSet<Fingerprint>) -> String {
    let list: Vec<String> = set.iter().map(Fingerprint::to_string).collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_string())
}

pub(super) fn fingerprints_from_json(text: &str) -> Result<BTreeSet<Fingerprint>, HistoryError> {
    let corrupt = |reason: String| HistoryError::Corrupt {
        table: "notify_log",
        id: String::new(),
        reason,
    };
    let list: Vec<String> = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    list.iter()
        .map(|f| parse_fingerprint(f).ok_or_else(|| corrupt(format!("bad fingerprint {f:?}"))))
        .collect()
}
