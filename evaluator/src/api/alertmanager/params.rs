//! Times and query parameters as Alertmanager's API reads and writes
//! them (go-openapi's spellings, Go's zero time).

use axum::extract::Query;
use axum::http::{StatusCode, Uri};
use chrono::{DateTime, SecondsFormat, Utc};

use super::error::AmError;
use crate::notify::matcher::{parse_matcher, Matcher};

/// Alertmanager's time format: RFC 3339 with milliseconds, UTC.
pub(super) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An RFC 3339 time; Go's zero time (`0001-01-01T00:00:00Z`) and the empty
/// string mean "not set", as Alertmanager reads them.
pub(super) fn parse_time(field: &str, text: &str) -> Result<Option<DateTime<Utc>>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let t = DateTime::parse_from_rfc3339(text)
        .map_err(|e| {
            format!("{field} {text:?} is not an RFC 3339 time such as 2026-01-02T15:04:05Z ({e})")
        })?
        .with_timezone(&Utc);
    let go_zero = DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
        .map(|z| z.with_timezone(&Utc))
        .ok();
    Ok(if Some(t) == go_zero { None } else { Some(t) })
}

pub(super) fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, AmError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|e| AmError::Binding {
            status: StatusCode::BAD_REQUEST,
            code: 400,
            message: format!("cannot read the query string: {e}"),
        })
}

/// go-openapi's boolean spellings; `None` for anything else.
fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "ok" | "y" | "on" | "selected" | "checked" | "t" | "enabled" => {
            Some(true)
        }
        "false" | "0" | "no" | "n" | "off" | "f" | "disabled" | "" => Some(false),
        _ => None,
    }
}

pub(super) fn bool_param(pairs: &[(String, String)], name: &str) -> Result<bool, AmError> {
    match pairs.iter().find(|(k, _)| k == name) {
        None => Ok(true),
        Some((_, v)) => parse_bool(v).ok_or_else(|| AmError::Binding {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: 601,
            message: format!("{name} in query must be of type bool: {v:?}"),
        }),
    }
}

/// The `filter` parameters as matchers (Alertmanager answers 400 with the
/// parser's message).
pub(super) fn filter_param(pairs: &[(String, String)]) -> Result<Vec<Matcher>, AmError> {
    pairs
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| parse_matcher(v).map_err(|e| AmError::bad_request(e.to_string())))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
pub(super) mod tests {
    use super::*;

    /// A time `secs` after a fixed start, for the handlers' tests.
    pub(in crate::api::alertmanager) fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_700_000_000 + secs)
    }

    #[test]
    fn go_zero_time_means_unset() {
        assert_eq!(parse_time("endsAt", "0001-01-01T00:00:00Z"), Ok(None));
        assert_eq!(
            parse_time("endsAt", "2023-11-14T22:13:20.000Z"),
            Ok(Some(t(0)))
        );
        assert!(parse_time("endsAt", "yesterday").is_err());
    }
}
