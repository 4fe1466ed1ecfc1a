//! The Prometheus API's error envelope: one error type for every `/api/v1`
//! handler, mapped to Prometheus' `errorType` and HTTP status so clients
//! written for Prometheus (Grafana, promtool, scripts) read our failures the
//! same way.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why an `/api/v1` request failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ApiError {
    /// The request itself is wrong (a parameter, the PromQL syntax).
    #[error("{0}")]
    BadData(String),
    /// The query parsed but could not be evaluated.
    #[error("{0}")]
    Execution(String),
    /// The query ran past its `timeout`.
    #[error("{0}")]
    Timeout(String),
    /// A fault on our side; the message is safe to show.
    #[error("{0}")]
    Internal(String),
    /// The datasource the request goes to cannot be reached.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// `invalid parameter "<name>": <why>`, Prometheus' wording.
    pub fn invalid_param(name: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError::BadData(format!("invalid parameter {name:?}: {why}"))
    }

    /// Prometheus' `errorType` value.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::BadData(_) => "bad_data",
            ApiError::Execution(_) => "execution",
            ApiError::Timeout(_) => "timeout",
            ApiError::Internal(_) => "internal",
            ApiError::Unavailable(_) => "unavailable",
        }
    }

    /// The status Prometheus answers with for this error type.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadData(_) => StatusCode::BAD_REQUEST,
            ApiError::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: &'static str,
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(msg) = &self {
            tracing::error!(error = %msg, "API request failed");
        }
        let message = self.to_string();
        let body = ErrorBody {
            status: "error",
            error_type: self.error_type(),
            error: &message,
        };
        (self.status(), axum::Json(body)).into_response()
    }
}
