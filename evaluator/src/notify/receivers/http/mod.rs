//! What the HTTP receivers share: `http_config` (Prometheus' HTTP client
//! config: authorization, basic auth, OAuth 2.0, TLS, proxy and redirect
//! policy), the client built from it, the delivery headers, and the
//! classification of an answer or a transport failure into a [`SendError`]
//! that says whether a retry can help.
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `authorization` | none | `{type: Bearer, credentials(_file): ...}`, sent as `Authorization: <type> <credentials>` |
//! | `basic_auth` | none | `{username, password(_file)}` |
//! | `bearer_token` / `bearer_token_file` | none | the older form of `authorization` |
//! | `oauth2` | none | client-credentials grant, see [`oauth2`] |
//! | `tls_config` | Mozilla roots | see [`tls`] |
//! | `proxy_url` | none | an `http://`, `https://` or `socks5://` proxy for every request |
//! | `no_proxy` | none | comma-separated hosts, domains and CIDRs reached without the proxy |
//! | `proxy_from_environment` | `false` | use `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` |
//! | `proxy_connect_header` | none | headers sent to the proxy (`{Name: [value, ...]}`) |
//! | `follow_redirects` | `true` | follow up to ten redirects |
//! | `enable_http2` | `true` | accepted; Vigil speaks HTTP/1.1 to receivers |
//!
//! At most one of `authorization`, `basic_auth`, `bearer_token(_file)` and
//! `oauth2` may be set. `global.http_config` is the `http_config` of every
//! integration that has none of its own, as in Alertmanager.

pub mod oauth2;
pub mod tls;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use self::oauth2::{OAuth2Raw, TokenError, TokenSource};
use self::tls::TlsConfigRaw;
use super::config::{resolve_secret, GlobalReceiverDefaults, Problems};
use super::{
    DeliveryReport, RetryAfter, Secret, SendError, IDEMPOTENCY_KEY_HEADER, REDELIVERY_HEADER,
};

/// `http_config` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfigRaw {
    pub authorization: Option<AuthorizationRaw>,
    pub basic_auth: Option<BasicAuthRaw>,
    pub bearer_token: Option<Secret>,
    pub bearer_token_file: Option<PathBuf>,
    pub oauth2: Option<OAuth2Raw>,
    pub tls_config: Option<TlsConfigRaw>,
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: Option<bool>,
    pub proxy_connect_header: Option<BTreeMap<String, Vec<Secret>>>,
    pub follow_redirects: Option<bool>,
    pub enable_http2: Option<bool>,
}

impl HttpConfigRaw {
    /// The proxy keys.
    pub fn proxy(&self) -> ProxyRaw<'_> {
        ProxyRaw {
            proxy_url: self.proxy_url.as_deref(),
            no_proxy: self.no_proxy.as_deref(),
            proxy_from_environment: self.proxy_from_environment,
            proxy_connect_header: self.proxy_connect_header.as_ref(),
        }
    }
}

/// The proxy keys of `http_config` or of its `oauth2`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyRaw<'a> {
    pub proxy_url: Option<&'a str>,
    pub no_proxy: Option<&'a str>,
    pub proxy_from_environment: Option<bool>,
    pub proxy_connect_header: Option<&'a BTreeMap<String, Vec<Secret>>>,
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

/// A validated `http_config`: how requests are authorized, and how the
/// client reaches the endpoint.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Full `Authorization` header value, e.g. `Bearer <token>`.
    pub authorization: Option<Secret>,
    /// Where the bearer token comes from with `oauth2`.
    pub oauth2: Option<Arc<TokenSource>>,
    pub follow_redirects: bool,
    pub transport: Transport,
}

/// How a client reaches its endpoint: TLS and proxy.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    /// `None`: the built-in roots, no client certificate.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub proxy: Proxy,
}

/// The proxy a client uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Proxy {
    /// Direct connections (the default, as in Prometheus).
    #[default]
    None,
    /// `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`.
    FromEnvironment,
    Url {
        url: String,
        no_proxy: Option<String>,
        connect_headers: Vec<(String, Secret)>,
    },
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            authorization: None,
            oauth2: None,
            follow_redirects: true,
            transport: Transport::default(),
        }
    }
}

/// Settings built from files or holding a token cache (TLS, OAuth 2.0)
/// are equal only to themselves: a reloaded config with either rebuilds
/// its client.
impl PartialEq for HttpSettings {
    fn eq(&self, other: &HttpSettings) -> bool {
        fn same<T>(a: &Option<Arc<T>>, b: &Option<Arc<T>>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
        }
        self.authorization == other.authorization
            && self.follow_redirects == other.follow_redirects
            && same(&self.oauth2, &other.oauth2)
            && same(&self.transport.tls, &other.transport.tls)
            && self.transport.proxy == other.transport.proxy
    }
}

impl HttpSettings {
    /// `request` with the `Authorization` header: the configured one, or a
    /// bearer token from the `oauth2` endpoint.
    pub async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, TokenError> {
        if let Some(source) = &self.oauth2 {
            let token = source.token().await?;
            return Ok(request.bearer_auth(token));
        }
        Ok(match &self.authorization {
            Some(authorization) => {
                request.header(reqwest::header::AUTHORIZATION, authorization.expose())
            }
            None => request,
        })
    }
}

/// A token failure as a delivery failure of `integration`.
pub fn token_send_error(integration: &'static str, error: TokenError) -> SendError {
    if error.retryable {
        SendError::Transport {
            integration,
            reason: error.to_string(),
        }
    } else {
        SendError::Rejected {
            integration,
            reason: format!("{error}; check http_config.oauth2"),
        }
    }
}

/// An integration's `http_config`: its own, or `global.http_config` when it
/// has none.
pub fn validate_http(
    raw: Option<&HttpConfigRaw>,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> HttpSettings {
    match raw {
        Some(raw) => validate_http_config(raw, "http_config", p),
        None => global.http_config.clone().unwrap_or_default(),
    }
}

/// Validates one `http_config` written at `field` (problems at
/// `field.<key>`).
pub fn validate_http_config(
    raw: &HttpConfigRaw,
    field: &str,
    p: &mut Problems<'_>,
) -> HttpSettings {
    let at = |key: &str| format!("{field}.{key}");
    let mut methods = 0;
    let mut authorization = None;
    if let Some(auth) = &raw.authorization {
        methods += 1;
        let scheme = auth.kind.clone().unwrap_or_else(|| "Bearer".into());
        if scheme.eq_ignore_ascii_case("basic") {
            p.add(
                &at("authorization.type"),
                "`Basic` is not allowed here; use http_config.basic_auth",
            );
        }
        if let Some(credentials) = resolve_secret(
            auth.credentials.as_ref(),
            auth.credentials_file.as_deref(),
            &at("authorization.credentials"),
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
            &at("bearer_token"),
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
            &at("basic_auth.password"),
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
    let oauth2 = raw.oauth2.as_ref().and_then(|o| {
        methods += 1;
        validate_oauth2(o, &at("oauth2"), p)
    });
    if methods > 1 {
        p.add(
            field,
            "at most one of authorization, basic_auth, bearer_token(_file) and oauth2 may be set",
        );
    }
    HttpSettings {
        authorization,
        oauth2,
        follow_redirects: raw.follow_redirects.unwrap_or(true),
        transport: validate_transport(raw.tls_config.as_ref(), raw.proxy(), field, p),
    }
}

/// The TLS and proxy settings written at `field`.
fn validate_transport(
    tls: Option<&TlsConfigRaw>,
    proxy: ProxyRaw<'_>,
    field: &str,
    p: &mut Problems<'_>,
) -> Transport {
    let at = |key: &str| format!("{field}.{key}");
    let tls = tls.and_then(|raw| tls::client_config(raw, &at("tls_config"), p));
    let from_environment = proxy.proxy_from_environment.unwrap_or(false);
    let url = proxy.proxy_url.filter(|u| !u.is_empty());
    let no_proxy = proxy.no_proxy.filter(|n| !n.is_empty());
    let has_connect_headers = proxy.proxy_connect_header.is_some_and(|h| !h.is_empty());
    if from_environment && url.is_some() {
        p.add(
            &at("proxy_url"),
            "proxy_url and proxy_from_environment exclude each other; keep one",
        );
    }
    if from_environment && no_proxy.is_some() {
        p.add(
            &at("no_proxy"),
            "no_proxy has no effect with proxy_from_environment (NO_PROXY is read instead); remove it",
        );
    }
    if url.is_none() && no_proxy.is_some() {
        p.add(
            &at("no_proxy"),
            "no_proxy needs proxy_url; set proxy_url or remove no_proxy",
        );
    }
    if has_connect_headers && url.is_none() && !from_environment {
        p.add(
            &at("proxy_connect_header"),
            "proxy_connect_header needs proxy_url or proxy_from_environment",
        );
    }
    if let Some(url) = url {
        match reqwest::Url::parse(url) {
            Ok(parsed) if ["http", "https", "socks5"].contains(&parsed.scheme()) => {}
            Ok(parsed) => p.add(
                &at("proxy_url"),
                format!(
                    "unsupported proxy scheme {:?}; use http://, https:// or socks5://",
                    parsed.scheme()
                ),
            ),
            Err(e) => p.add(&at("proxy_url"), format!("not a URL: {e}")),
        }
    }
    let connect_headers = proxy
        .proxy_connect_header
        .into_iter()
        .flatten()
        .flat_map(|(name, values)| values.iter().map(|v| (name.clone(), v.clone())))
        .collect();
    let proxy = match url {
        Some(url) => Proxy::Url {
            url: url.to_string(),
            no_proxy: no_proxy.map(str::to_string),
            connect_headers,
        },
        None if from_environment => Proxy::FromEnvironment,
        None => Proxy::None,
    };
    Transport { tls, proxy }
}

fn validate_oauth2(raw: &OAuth2Raw, field: &str, p: &mut Problems<'_>) -> Option<Arc<TokenSource>> {
    let before = p.count();
    let at = |key: &str| format!("{field}.{key}");
    let client_id = raw.client_id.clone().filter(|id| !id.is_empty());
    if client_id.is_none() {
        p.add(&at("client_id"), "oauth2 needs client_id");
    }
    let token_url = raw.token_url.clone().filter(|u| !u.is_empty());
    match &token_url {
        None => p.add(&at("token_url"), "oauth2 needs token_url"),
        Some(url) => {
            if let Err(e) = reqwest::Url::parse(url) {
                p.add(&at("token_url"), format!("not a URL: {e}"));
            }
        }
    }
    if raw.client_secret.is_none() && raw.client_secret_file.is_none() {
        p.add(
            &at("client_secret"),
            "oauth2 needs client_secret or client_secret_file",
        );
    }
    let secret = resolve_secret(
        raw.client_secret.as_ref(),
        raw.client_secret_file.as_deref(),
        &at("client_secret"),
        false,
        p,
    );
    let transport = validate_transport(raw.tls_config.as_ref(), raw.proxy(), field, p);
    if p.count() != before {
        return None;
    }
    let client = match client_builder(Duration::from_secs(30), true, &transport).build() {
        Ok(client) => client,
        Err(e) => {
            p.add(field, format!("cannot build the token client: {e}"));
            return None;
        }
    };
    Some(Arc::new(TokenSource::new(
        client,
        token_url?,
        client_id?,
        secret?,
        raw.scopes.clone().unwrap_or_default(),
        raw.endpoint_params.clone().unwrap_or_default(),
    )))
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
    client_builder(timeout, http.follow_redirects, &http.transport).build()
}

fn client_builder(
    timeout: Duration,
    follow_redirects: bool,
    transport: &Transport,
) -> reqwest::ClientBuilder {
    let redirects = if follow_redirects {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(redirects)
        .user_agent(concat!("vigil-evaluator/", env!("CARGO_PKG_VERSION")));
    if let Some(tls) = &transport.tls {
        builder = builder.use_preconfigured_tls(rustls::ClientConfig::clone(tls));
    }
    match &transport.proxy {
        Proxy::None => builder.no_proxy(),
        Proxy::FromEnvironment => builder,
        Proxy::Url {
            url,
            no_proxy,
            connect_headers,
        } => match reqwest::Proxy::all(url.as_str()) {
            Ok(proxy) => {
                let mut headers = reqwest::header::HeaderMap::new();
                for (name, value) in connect_headers {
                    if let (Ok(name), Ok(value)) = (
                        reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                        reqwest::header::HeaderValue::from_str(value.expose()),
                    ) {
                        headers.append(name, value);
                    }
                }
                let proxy = proxy
                    .no_proxy(no_proxy.as_deref().and_then(reqwest::NoProxy::from_string))
                    .headers(headers);
                builder.proxy(proxy)
            }
            // Checked when the config loaded; never reached.
            Err(_) => builder.no_proxy(),
        },
    }
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

/// [`post_json`] for an endpoint whose answer holds nothing to keep: the
/// report is its status.
pub async fn post_json_report(
    integration: &'static str,
    client: &reqwest::Client,
    url: &str,
    http: &HttpSettings,
    body: &impl serde::Serialize,
    notification: &crate::notify::alert::Notification,
) -> Result<DeliveryReport, SendError> {
    let (status, _) = post_json(integration, client, url, http, body, notification).await?;
    Ok(DeliveryReport {
        response_code: Some(status),
        message_id: None,
    })
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
    request = http
        .authorize(request)
        .await
        .map_err(|e| token_send_error(integration, e))?;
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
