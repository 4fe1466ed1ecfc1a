//! The Alertmanager API's errors, in Alertmanager's two response shapes,
//! so clients written for Alertmanager (amtool, Prometheus) read them.

use axum::extract::rejection::BytesRejection;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error in one of Alertmanager's two response shapes.
#[derive(Debug)]
pub enum AmError {
    /// Request binding or schema validation failed:
    /// `{"code": N, "message": "..."}`.
    Binding {
        status: StatusCode,
        code: u16,
        message: String,
    },
    /// The handler refused the request: the message as a JSON string.
    Payload { status: StatusCode, message: String },
    /// An unknown silence: 404 without a body.
    NotFound,
    /// The pipeline is behind: 429 with `Retry-After`, the message as a
    /// JSON string.
    Busy { retry_after: u64, message: String },
}

impl AmError {
    pub(super) fn bad_request(message: impl Into<String>) -> AmError {
        AmError::Payload {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub(super) fn parse(what: &str, why: impl std::fmt::Display) -> AmError {
        AmError::Binding {
            status: StatusCode::BAD_REQUEST,
            code: 400,
            message: format!("parsing {what} body from \"\" failed, because {why}"),
        }
    }

    /// go-openapi's "required" failures (code 602, status 422).
    pub(super) fn required(fields: &[String]) -> AmError {
        let lines: Vec<String> = fields
            .iter()
            .map(|f| format!("{f} in body is required"))
            .collect();
        let message = if lines.len() == 1 {
            lines.concat()
        } else {
            format!("validation failure list:\n{}", lines.join("\n"))
        };
        AmError::Binding {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: 602,
            message,
        }
    }

    pub(super) fn unauthorized() -> AmError {
        AmError::Payload {
            status: StatusCode::UNAUTHORIZED,
            message:
                "missing or wrong bearer token: send Authorization: Bearer <web.token_file content>"
                    .into(),
        }
    }

    pub(super) fn body(rejection: &BytesRejection) -> AmError {
        let status = rejection.status();
        AmError::Binding {
            status,
            code: status.as_u16(),
            message: format!(
                "cannot read the request body: {}; the limit is 2 MiB",
                rejection.body_text()
            ),
        }
    }
}

#[derive(Serialize)]
struct BindingBody<'a> {
    code: u16,
    message: &'a str,
}

impl IntoResponse for AmError {
    fn into_response(self) -> Response {
        match self {
            AmError::Binding {
                status,
                code,
                message,
            } => (
                status,
                Json(BindingBody {
                    code,
                    message: &message,
                }),
            )
                .into_response(),
            AmError::Payload { status, message } => (status, Json(message)).into_response(),
            AmError::NotFound => StatusCode::NOT_FOUND.into_response(),
            AmError::Busy {
                retry_after,
                message,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after.to_string())],
                Json(message),
            )
                .into_response(),
        }
    }
}
