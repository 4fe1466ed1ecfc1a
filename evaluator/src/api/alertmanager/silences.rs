//! `GET/POST /api/v2/silences`, `GET/DELETE /api/v2/silence/{id}`: the
//! notifier's silences in Alertmanager's shapes. The rules for a silence
//! (valid matchers, when a change is made in place) are the notifier's
//! ([`crate::notify::silence`]); this module reads and writes the JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::AmError;
use super::params::{filter_param, format_time, parse_time, query_pairs};
use crate::api::{authorized, AppState};
use crate::notify::matcher::{MatchOp, Matcher};
use crate::notify::silence::{
    can_update, to_silence, MatcherSpec, Silence, SilenceState, SilenceStore,
};

/// A `POST /api/v2/silences` body decoded and checked as the handler does
/// before it looks at the stored silences; for the fuzzer and tests.
pub fn decode_posted_silence(body: &[u8]) -> Result<Silence, String> {
    let posted: PostableSilence = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    from_postable(posted)
        .map(|(_, silence)| silence)
        .map_err(|e| format!("{e:?}"))
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MatcherJson {
    is_equal: bool,
    is_regex: bool,
    name: String,
    value: String,
}

impl From<&Matcher> for MatcherJson {
    fn from(m: &Matcher) -> MatcherJson {
        MatcherJson {
            is_equal: matches!(m.op, MatchOp::Equal | MatchOp::Regex),
            is_regex: matches!(m.op, MatchOp::Regex | MatchOp::NotRegex),
            name: m.name.clone(),
            value: m.value.clone(),
        }
    }
}

#[derive(Serialize)]
struct SilenceStatusJson {
    state: &'static str,
}

/// One entry of `GET /api/v2/silences` (Alertmanager's `gettableSilence`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    id: String,
    status: SilenceStatusJson,
    updated_at: String,
    comment: String,
    created_by: String,
    ends_at: String,
    matchers: Vec<MatcherJson>,
    starts_at: String,
}

fn gettable_silence(store: &dyn SilenceStore, s: &Silence, now: DateTime<Utc>) -> GettableSilence {
    GettableSilence {
        id: s.id.clone(),
        status: SilenceStatusJson {
            state: SilenceState::of(s, now).as_str(),
        },
        updated_at: format_time(store.updated_at(&s.id).unwrap_or(s.starts_at)),
        comment: s.comment.clone(),
        created_by: s.created_by.clone(),
        ends_at: format_time(s.ends_at),
        matchers: s.matchers.iter().map(MatcherJson::from).collect(),
        starts_at: format_time(s.starts_at),
    }
}

/// `GET /api/v2/silences`: every retained silence whose matchers include
/// each `filter` matcher exactly, active first (soonest to end), then
/// pending (soonest to start), then expired (latest ended first).
pub async fn get_silences(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Result<Json<Vec<GettableSilence>>, AmError> {
    let pairs = query_pairs(&uri)?;
    let filter = filter_param(&pairs)?;
    let api = &state.alertmanager;
    let notifier = api.notifier.lock().await;
    let now = api.clock.now();
    let store = notifier.silences();
    let mut silences: Vec<Silence> = store
        .list()
        .into_iter()
        .filter(|s| filter.iter().all(|f| s.matchers.contains(f)))
        .collect();
    silences.sort_by(|a, b| {
        let (sa, sb) = (SilenceState::of(a, now), SilenceState::of(b, now));
        sa.cmp(&sb).then_with(|| match sa {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
    Ok(Json(
        silences
            .iter()
            .map(|s| gettable_silence(store, s, now))
            .collect(),
    ))
}

/// `GET /api/v2/silence/{id}`.
pub async fn get_silence(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<GettableSilence>, AmError> {
    check_silence_id(&id)?;
    let api = &state.alertmanager;
    let notifier = api.notifier.lock().await;
    let now = api.clock.now();
    let store = notifier.silences();
    let silence = store.get(&id).ok_or(AmError::NotFound)?;
    Ok(Json(gettable_silence(store, &silence, now)))
}

/// `DELETE /api/v2/silence/{id}`: expires it now; an expired silence stays
/// expired (200), an unknown one is 404.
pub async fn delete_silence(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AmError> {
    if !authorized(&state, &headers) {
        return Err(AmError::unauthorized());
    }
    check_silence_id(&id)?;
    let api = &state.alertmanager;
    let mut notifier = api.notifier.lock().await;
    let now = api.clock.now();
    let store = notifier.silences_mut();
    let silence = store.get(&id).ok_or(AmError::NotFound)?;
    if SilenceState::of(&silence, now) != SilenceState::Expired {
        store
            .expire(&id, now)
            .map_err(|e| AmError::bad_request(e.to_string()))?;
    }
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableMatcher {
    name: Option<String>,
    value: Option<String>,
    is_regex: Option<bool>,
    is_equal: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Option<Vec<PostableMatcher>>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    created_by: Option<String>,
    comment: Option<String>,
}

/// Alertmanager declares the `{silenceID}` path parameter a UUID, so a
/// malformed one is refused before any lookup: 422, go-openapi's
/// invalid-type code 601, its wording.
fn check_silence_id(id: &str) -> Result<(), AmError> {
    let hex = |part: &str| part.bytes().all(|b| b.is_ascii_hexdigit());
    let lengths: Vec<usize> = id.split('-').map(str::len).collect();
    let uuid = (lengths == [8, 4, 4, 4, 12] || lengths == [32]) && id.split('-').all(hex);
    if uuid {
        return Ok(());
    }
    Err(AmError::Binding {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: 601,
        message: format!("silenceID in path must be of type uuid: {id:?}"),
    })
}

/// A new, unique silence id in UUID form (as Alertmanager's), time-ordered.
fn new_silence_id(now: DateTime<Utc>) -> String {
    let hex = format!(
        "{}{:04x}",
        crate::history::new_id(now),
        rand::random::<u16>()
    );
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A posted silence after go-openapi's schema checks (required fields, at
/// least one matcher, readable times) and the notifier's silence rules;
/// with the id of the silence it replaces, if any.
fn from_postable(posted: PostableSilence) -> Result<(Option<String>, Silence), AmError> {
    let mut missing = Vec::new();
    if posted.comment.is_none() {
        missing.push("comment".to_string());
    }
    if posted.created_by.is_none() {
        missing.push("createdBy".to_string());
    }
    if posted.ends_at.is_none() {
        missing.push("endsAt".to_string());
    }
    match &posted.matchers {
        None => missing.push("matchers".to_string()),
        Some(list) => {
            for (i, m) in list.iter().enumerate() {
                if m.is_regex.is_none() {
                    missing.push(format!("matchers.{i}.isRegex"));
                }
                if m.name.is_none() {
                    missing.push(format!("matchers.{i}.name"));
                }
                if m.value.is_none() {
                    missing.push(format!("matchers.{i}.value"));
                }
            }
        }
    }
    if posted.starts_at.is_none() {
        missing.push("startsAt".to_string());
    }
    if !missing.is_empty() {
        return Err(AmError::required(&missing));
    }
    let list = posted.matchers.unwrap_or_default();
    if list.is_empty() {
        return Err(AmError::Binding {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: 612,
            message: "matchers in body should have at least 1 items".into(),
        });
    }
    let time = |field: &str, text: Option<String>| {
        parse_time(field, text.as_deref().unwrap_or(""))
            .map_err(|e| AmError::parse("silence", e))?
            .ok_or_else(|| AmError::parse("silence", format!("{field} is empty")))
    };
    let starts_at = time("startsAt", posted.starts_at)?;
    let ends_at = time("endsAt", posted.ends_at)?;
    let matchers = list
        .into_iter()
        .map(|m| MatcherSpec {
            name: m.name.unwrap_or_default(),
            value: m.value.unwrap_or_default(),
            is_equal: m.is_equal.unwrap_or(true),
            is_regex: m.is_regex.unwrap_or(false),
        })
        .collect();
    let silence = to_silence(
        matchers,
        starts_at,
        ends_at,
        posted.created_by.unwrap_or_default(),
        posted.comment.unwrap_or_default(),
    )
    .map_err(|e| AmError::bad_request(format!("invalid silence: {e}")))?;
    Ok((posted.id.filter(|id| !id.is_empty()), silence))
}

/// `POST /api/v2/silences`: creates a silence, or updates the one named by
/// `id` (in place when Alertmanager would, else the old one is expired and
/// a new one created); answers `{"silenceID": "..."}`.
pub async fn post_silences(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, AmError> {
    if !authorized(&state, &headers) {
        return Err(AmError::unauthorized());
    }
    let body = body.map_err(|e| AmError::body(&e))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AmError::required(&["silence".to_string()]));
    }
    let posted: PostableSilence =
        serde_json::from_slice(&body).map_err(|e| AmError::parse("silence", e))?;
    let (id, mut silence) = from_postable(posted)?;
    let api = &state.alertmanager;
    let mut notifier = api.notifier.lock().await;
    let now = api.clock.now();
    if silence.starts_at >= silence.ends_at {
        return Err(AmError::bad_request(
            "Failed to create silence: start time must be before end time",
        ));
    }
    if silence.ends_at < now {
        return Err(AmError::bad_request(
            "Failed to create silence: end time can't be in the past",
        ));
    }
    silence
        .validate()
        .map_err(|e| AmError::bad_request(format!("invalid silence: {e}")))?;
    let store = notifier.silences_mut();
    let refused = |e: crate::notify::silence::SilenceError| AmError::bad_request(e.to_string());
    if let Some(id) = &id {
        let old = store.get(id).ok_or_else(|| AmError::Payload {
            status: StatusCode::NOT_FOUND,
            message: "not found".into(),
        })?;
        if can_update(&old, &silence, now) {
            silence.id = id.clone();
            let id = store.upsert(silence, now).map_err(refused)?;
            return Ok(Json(serde_json::json!({"silenceID": id})));
        }
        if SilenceState::of(&old, now) != SilenceState::Expired {
            store.expire(id, now).map_err(refused)?;
        }
    }
    silence.id = new_silence_id(now);
    if silence.starts_at < now {
        silence.starts_at = now;
    }
    let id = store.upsert(silence, now).map_err(refused)?;
    Ok(Json(serde_json::json!({"silenceID": id})))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::super::params::tests::t;
    use super::*;

    #[test]
    fn silence_ids_look_like_uuids() {
        let id = new_silence_id(t(0));
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
        assert_ne!(id, new_silence_id(t(0)));
    }
}
