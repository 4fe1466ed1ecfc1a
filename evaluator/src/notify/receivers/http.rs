//! What the HTTP receivers (Slack, webhook) share: `http_config` (the
//! authorization header and redirect policy), the client built from it, the
//! delivery headers, and the classification of an answer or a transport
//! failure into a [`SendError`] that says whether a retry can help.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::config::{resolve_secret, Problems};
use super::{RetryAfter, Secret, SendError, IDEMPOTENCY_KEY_HEADER, REDELIVERY_HEADER};

/// `http_config` (the subset of Prometheus' HTTP client config Vigil honours).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfigRaw {
    pub authorization: Option<AuthorizationRaw>,
    pub basic_auth: Option<BasicAuthRaw>,
    pub bearer_token: Option<Secret>,
    pub bearer_token_file: Option<PathBuf>,
    pub follow_redirects: Option<bool>,
}

/// `http_config.authorization`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationRaw {
    /// Scheme, default `Bearer`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<Secret>,
    pub credentials_file: Option<PathBuf>,
}

/// `http_config.basic_auth`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthRaw {
    pub username: String,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
}

/// The resolved `Authorization` header value and redirect policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpSettings {
    /// Full header value, e.g. `Bearer <token>`.
    pub authorization: Option<Secret>,
    pub follow_redirects: bool,
}

pub fn validate_http(raw: Option<&HttpConfigRaw>, p: &mut Problems<'_>) -> HttpSettings {
    let Some(raw) = raw else {
        return HttpSettings {
            authorization: None,
            follow_redirects: true,
        };
    };
    let mut methods = 0;
    let mut authorization = None;
    if let Some(auth) = &raw.authorization {
        methods += 1;
        let scheme = auth.kind.clone().unwrap_or_else(|| "Bearer".into());
        if scheme.eq_ignore_ascii_case("basic") {
            p.add(
                "http_config.authorization.type",
                "`Basic` is not allowed here; use http_config.basic_auth",
            );
        }
        if let Some(credentials) = resolve_secret(
            auth.credentials.as_ref(),
            auth.credentials_file.as_deref(),
            "http_config.authorization.credentials",
            false,
            p,
        ) {
            authorization = Some(Secret::new(format!("{scheme} {}", credentials.expose())));
        }
    }
    if raw.bearer_token.is_some() || raw.bearer_token_file.is_some() {
        methods += 1;
        if let Some(token) = resolve_secret(
            raw.bearer_token.as_ref(),
            raw.bearer_token_file.as_deref(),
            "http_config.bearer_token",
            false,
            p,
        ) {
            authorization = Some(Secret::new(format!("Bearer {}", token.expose())));
        }
    }
    if let Some(basic) = &raw.basic_auth {
        methods += 1;
        let password = resolve_secret(
            basic.password.as_ref(),
            basic.password_file.as_deref(),
            "http_config.basic_auth.password",
            false,
            p,
        );
        let pair = format!(
            "{}:{}",
            basic.username,
            password.as_ref().map(Secret::expose).unwrap_or("")
        );
        authorization = Some(Secret::new(format!("Basic {}", base64(pair.as_bytes()))));
    }
    if methods > 1 {
        p.add(
            "http_config",
            "at most one of authorization, basic_auth and bearer_token(_file) may be set",
        );
    }
    HttpSettings {
        authorization,
        follow_redirects: raw.follow_redirects.unwrap_or(true),
    }
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Builds an HTTP client for one integration. A failure here is a TLS
/// backend problem, reported as a config problem of that integration.
pub fn http_client(
    timeout: Duration,
    http: &HttpSettings,
) -> Result<reqwest::Client, reqwest::Error> {
    let redirects = if http.follow_redirects {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(redirects)
        .user_agent(concat!("vigil-evaluator/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Adds the idempotency key and, on a re-send, the redelivery mark to an
/// HTTP request.
pub fn with_delivery_headers(
    request: reqwest::RequestBuilder,
    key: &str,
    redelivery: bool,
) -> reqwest::RequestBuilder {
    let request = request.header(IDEMPOTENCY_KEY_HEADER, key);
    if redelivery {
        request.header(REDELIVERY_HEADER, "true")
    } else {
        request
    }
}

/// POSTs `body` as JSON to `url` for `notification`: with the integration's
/// `Authorization` and Vigil's delivery headers, one attempt, answered as
/// [`check_http_response`] classifies it.
pub async fn post_json(
    integration: &'static str,
    client: &reqwest::Client,
    url: &str,
    http: &HttpSettings,
    body: &impl serde::Serialize,
    notification: &crate::notify::alert::Notification,
) -> Result<(u16, String), SendError> {
    send_request(integration, client.post(url).json(body), http, notification).await
}

/// POSTs `fields` form-encoded (`application/x-www-form-urlencoded`) to
/// `url` for `notification`, as [`post_json`] posts JSON.
pub async fn post_form(
    integration: &'static str,
    client: &reqwest::Client,
    url: &str,
    http: &HttpSettings,
    fields: &[(&str, String)],
    notification: &crate::notify::alert::Notification,
) -> Result<(u16, String), SendError> {
    send_request(
        integration,
        client.post(url).form(fields),
        http,
        notification,
    )
    .await
}

/// Sends `request` for `notification` with the integration's
/// `Authorization` and Vigil's delivery headers: one attempt, answered as
/// [`check_http_response`] classifies it.
pub async fn send_request(
    integration: &'static str,
    request: reqwest::RequestBuilder,
    http: &HttpSettings,
    notification: &crate::notify::alert::Notification,
) -> Result<(u16, String), SendError> {
    let mut request = with_delivery_headers(
        request,
        &notification.idempotency_key(),
        notification.redelivery,
    );
    if let Some(authorization) = &http.authorization {
        request = request.header(reqwest::header::AUTHORIZATION, authorization.expose());
    }
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(integration, e))?;
    check_http_response(integration, response).await
}

/// Turns an HTTP response into a report or a classified error. `Retry-After`
/// is read on 429 and 503 only, as those are the statuses that define it.
pub async fn check_http_response(
    integration: &'static str,
    mut response: reqwest::Response,
) -> Result<(u16, String), SendError> {
    // Enough for any Slack/webhook answer; a misbehaving endpoint cannot
    // make us buffer more.
    const MAX_READ: usize = 64 * 1024;
    const MAX_BODY: usize = 512;
    let status = response.status().as_u16();
    let retry_after = if status == 429 || status == 503 {
        response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(RetryAfter::parse)
    } else {
        None
    };
    let mut raw = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_READ - raw.len();
        raw.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if raw.len() >= MAX_READ {
            break;
        }
    }
    let body = String::from_utf8_lossy(&raw).into_owned();
    if (200..300).contains(&status) {
        return Ok((status, body));
    }
    let mut body = body;
    if body.len() > MAX_BODY {
        let cut = (0..=MAX_BODY)
            .rev()
            .find(|i| body.is_char_boundary(*i))
            .unwrap_or(0);
        body.truncate(cut);
        body.push('…');
    }
    Err(SendError::HttpStatus {
        integration,
        status,
        body,
        retry_after,
    })
}

/// A transport-level failure, with the URL (which may hold a token) removed.
pub fn transport_error(integration: &'static str, error: reqwest::Error) -> SendError {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let error = error.without_url();
    let mut reason = kind.to_string();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    SendError::Transport {
        integration,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_header_is_base64_of_user_and_password() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }
}
