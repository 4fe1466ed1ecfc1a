//! The configured receivers: `GET /api/v2/receivers` lists their names (as
//! Alertmanager's API does), and `POST /api/vigil/v1/receivers/{name}/test`
//! sends one test notification through each integration of one and
//! answers, per integration, whether its endpoint took it (see
//! [`crate::notify::receivers::test_send`]); the test is guarded by the
//! API token like every other mutating endpoint.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::prometheus::success;
use super::vigil::{read_optional_json, VigilApiError};
use super::{authorized, AppState};
use crate::labels::Labels;
use crate::notify::receivers::test_send::send_test;

/// The optional request body: labels of the test alert.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct IntegrationJson {
    integration: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct TestJson {
    receiver: String,
    /// Every integration took its notification.
    ok: bool,
    integrations: Vec<IntegrationJson>,
}

#[derive(Serialize)]
pub struct ReceiverJson {
    name: String,
}

/// `GET /api/v2/receivers`: every configured receiver, by name.
pub async fn list_receivers(State(state): State<Arc<AppState>>) -> Json<Vec<ReceiverJson>> {
    let mut names: Vec<String> = state.receivers.borrow().keys().cloned().collect();
    names.sort();
    Json(
        names
            .into_iter()
            .map(|name| ReceiverJson { name })
            .collect(),
    )
}

/// `POST /api/vigil/v1/receivers/{name}/test`.
pub async fn test_receiver(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, VigilApiError> {
    if !authorized(&state, &headers) {
        return Err(VigilApiError::Unauthorized);
    }
    let body: TestBody =
        read_optional_json(body, r#"nothing, or {"labels": {"severity": "page"}}"#)
            .await?
            .unwrap_or_default();
    let labels = Labels::from_pairs(body.labels);
    let receivers = Arc::clone(&state.receivers.borrow());
    let results = send_test(&receivers, Some(&name), &labels, state.clock.now(), "")
        .await
        .map_err(|e| VigilApiError::NotFound(e.to_string()))?;
    let integrations: Vec<IntegrationJson> = results
        .into_iter()
        .map(|r| IntegrationJson {
            integration: r.integration,
            ok: r.error.is_none(),
            error: r.error,
        })
        .collect();
    Ok(success(TestJson {
        receiver: name,
        ok: integrations.iter().all(|i| i.ok),
        integrations,
    }))
}
