//! `oauth2` of an HTTP client: the OAuth 2.0 client-credentials grant, as
//! Prometheus' HTTP client config writes it. A token is fetched from
//! `token_url` on first use, kept until shortly before it expires, and sent
//! as `Authorization: Bearer <token>`.
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `client_id` | *required* | the client's id |
//! | `client_secret` / `client_secret_file` | one *required* | the client's secret |
//! | `token_url` | *required* | the token endpoint |
//! | `scopes` | none | requested scopes (sent space-separated) |
//! | `endpoint_params` | none | extra form fields of the token request |
//! | `tls_config`, `proxy_url`, `no_proxy`, `proxy_from_environment`, `proxy_connect_header` | none | how the token endpoint is reached, as in `http_config` |
//!
//! The client authenticates with HTTP basic auth (id and secret
//! form-escaped); when the endpoint answers 400 or 401 to that, the
//! request is made once more with the credentials in the form body, as Go's
//! `oauth2` package auto-detects the endpoint's style.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::tls::TlsConfigRaw;
use super::{check_http_response, ProxyRaw};
use crate::notify::receivers::Secret;

/// A token is renewed this long before the endpoint says it expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// `oauth2` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Raw {
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub client_secret_file: Option<PathBuf>,
    pub token_url: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub endpoint_params: Option<BTreeMap<String, String>>,
    pub tls_config: Option<TlsConfigRaw>,
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: Option<bool>,
    pub proxy_connect_header: Option<BTreeMap<String, Vec<Secret>>>,
}

impl OAuth2Raw {
    /// The proxy keys, as `http_config` has them.
    pub fn proxy(&self) -> ProxyRaw<'_> {
        ProxyRaw {
            proxy_url: self.proxy_url.as_deref(),
            no_proxy: self.no_proxy.as_deref(),
            proxy_from_environment: self.proxy_from_environment,
            proxy_connect_header: self.proxy_connect_header.as_ref(),
        }
    }
}

/// A failed token request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("oauth2 token request to {token_url} failed: {reason}")]
pub struct TokenError {
    pub token_url: String,
    pub reason: String,
    /// Worth trying again (transport failure, 5xx, 429).
    pub retryable: bool,
}

/// Fetches and caches the bearer token of one `oauth2` section.
#[derive(Debug)]
pub struct TokenSource {
    pub(super) client: reqwest::Client,
    pub(super) token_url: String,
    pub(super) client_id: String,
    pub(super) client_secret: Secret,
    pub(super) scopes: Vec<String>,
    pub(super) endpoint_params: BTreeMap<String, String>,
    cached: tokio::sync::Mutex<Option<Token>>,
}

#[derive(Debug, Clone)]
struct Token {
    access_token: String,
    /// `None`: the endpoint gave no lifetime; kept until refused.
    renew_at: Option<Instant>,
}

/// The token endpoint's answer (RFC 6749 section 5.1).
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl TokenSource {
    pub(super) fn new(
        client: reqwest::Client,
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scopes: Vec<String>,
        endpoint_params: BTreeMap<String, String>,
    ) -> TokenSource {
        TokenSource {
            client,
            token_url,
            client_id,
            client_secret,
            scopes,
            endpoint_params,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A valid access token: the cached one, or a fresh one.
    pub async fn token(&self) -> Result<String, TokenError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref() {
            if token.renew_at.is_none_or(|at| Instant::now() < at) {
                return Ok(token.access_token.clone());
            }
        }
        let token = self.fetch().await?;
        let access_token = token.access_token.clone();
        *cached = Some(token);
        Ok(access_token)
    }

    async fn fetch(&self) -> Result<Token, TokenError> {
        let asked = Instant::now();
        let answer = match self.request(true).await {
            Err(e) if e.retryable => return Err(e),
            // Basic auth refused: the endpoint may want the credentials
            // in the body.
            Err(_) => self.request(false).await?,
            Ok(answer) => answer,
        };
        let lifetime = answer.expires_in.as_ref().and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        let renew_at = lifetime.filter(|s| *s > 0.0).map(|seconds| {
            (asked + Duration::from_secs_f64(seconds))
                .checked_sub(EXPIRY_MARGIN)
                .unwrap_or(asked)
        });
        Ok(Token {
            access_token: answer.access_token,
            renew_at,
        })
    }

    async fn request(&self, basic_auth: bool) -> Result<TokenAnswer, TokenError> {
        let fail = |reason: String, retryable: bool| TokenError {
            token_url: self.token_url.clone(),
            reason,
            retryable,
        };
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        let scope = self.scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        for (key, value) in &self.endpoint_params {
            form.push((key, value));
        }
        let mut request = self.client.post(&self.token_url);
        if basic_auth {
            request = request.basic_auth(
                query_escape(&self.client_id),
                Some(query_escape(self.client_secret.expose())),
            );
        } else {
            form.push(("client_id", &self.client_id));
            form.push(("client_secret", self.client_secret.expose()));
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| fail(format!("cannot reach it: {}", e.without_url()), true))?;
        let (_, body) = check_http_response("oauth2", response)
            .await
            .map_err(|e| fail(e.to_string(), e.is_retryable()))?;
        parse_answer(&body).ok_or_else(|| {
            fail(
                "the answer has no access_token (expected JSON or a form with access_token)".into(),
                false,
            )
        })
    }
}

/// A token answer as JSON, or form-encoded as some endpoints send it.
fn parse_answer(body: &str) -> Option<TokenAnswer> {
    if let Ok(answer) = serde_json::from_str::<TokenAnswer>(body) {
        return (!answer.access_token.is_empty()).then_some(answer);
    }
    let mut access_token = None;
    let mut expires_in = None;
    for pair in body.trim().split('&') {
        let (key, value) = pair.split_once('=')?;
        match key {
            "access_token" => access_token = Some(value.to_string()),
            "expires_in" => expires_in = Some(serde_json::Value::String(value.to_string())),
            _ => {}
        }
    }
    Some(TokenAnswer {
        access_token: access_token.filter(|t| !t.is_empty())?,
        expires_in,
    })
}

/// Form escaping as Go's `url.QueryEscape`: unreserved bytes kept, space
/// as `+`, every other byte `%XX`.
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_form_escaped_as_go_does() {
        assert_eq!(query_escape("a b+c/d~"), "a+b%2Bc%2Fd~");
    }

    #[test]
    fn answers_are_read_as_json_or_form() {
        let json = parse_answer(r#"{"access_token":"t","token_type":"bearer","expires_in":60}"#);
        assert_eq!(json.map(|a| a.access_token), Some("t".into()));
        let form = parse_answer("access_token=u&expires_in=30&token_type=bearer");
        assert_eq!(form.map(|a| a.access_token), Some("u".into()));
        assert!(parse_answer(r#"{"error":"invalid_client"}"#).is_none());
    }
}
