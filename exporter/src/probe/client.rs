//! One probe over HTTP: send the request, read the body, look at the
//! certificate, evaluate the expectation and classify any failure.
//!
//! The HTTP clients are built once per (tls_verify, follow_redirects)
//! combination and shared by all targets; they keep no idle connections, so
//! every probe pays (and measures) DNS, connect and TLS like a new visitor.

use std::time::SystemTime;

use tokio::time::Instant;

use super::expect::ResponseFacts;
use super::outcome::{FailureReason, ProbeFailure, ProbeOutcome};
use super::target::ProbeTarget;
use super::tls;

/// The most body bytes a probe reads; the rest is ignored, so a huge or
/// endless response cannot exhaust memory.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Redirects followed when `follow_redirects` is on.
pub const MAX_REDIRECTS: usize = 10;

/// The prober's HTTP clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    /// reqwest rejected the client configuration.
    #[error("could not build the prober's HTTP client (tls_verify={tls_verify}, follow_redirects={follow_redirects}): {source}")]
    Build {
        /// The client's `tls_verify` setting.
        tls_verify: bool,
        /// The client's `follow_redirects` setting.
        follow_redirects: bool,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
}

/// The four HTTP clients a prober needs, indexed by target settings.
#[derive(Debug, Clone)]
pub struct ProbeClients {
    // Index: tls_verify as bit 1, follow_redirects as bit 0.
    clients: [reqwest::Client; 4],
}

impl ProbeClients {
    /// Builds all four clients.
    pub fn new() -> Result<Self, ClientError> {
        Ok(Self {
            clients: [
                build_client(false, false)?,
                build_client(false, true)?,
                build_client(true, false)?,
                build_client(true, true)?,
            ],
        })
    }

    /// The client to use for `target`.
    pub fn for_target(&self, target: &ProbeTarget) -> &reqwest::Client {
        let index = usize::from(target.tls_verify) * 2 + usize::from(target.follow_redirects);
        &self.clients[index]
    }
}

fn build_client(tls_verify: bool, follow_redirects: bool) -> Result<reqwest::Client, ClientError> {
    let redirect = if follow_redirects {
        reqwest::redirect::Policy::limited(MAX_REDIRECTS)
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .user_agent(concat!(
            "vigil-exporter/",
            env!("CARGO_PKG_VERSION"),
            " (probe)"
        ))
        .redirect(redirect)
        .use_preconfigured_tls(tls::client_config(tls_verify)?)
        .tls_info(true)
        // A probe should reach the target itself, not a proxy from the
        // environment, and should open a fresh connection every time.
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|source| ClientError::Build {
            tls_verify,
            follow_redirects,
            source,
        })
}

/// Probes `target` once with the matching client from `clients`: never
/// panics, never takes longer than `target.timeout` (plus scheduling noise).
pub async fn probe_once(target: &ProbeTarget, clients: &ProbeClients) -> ProbeOutcome {
    let started = Instant::now();
    let exchange = tls::capture_chain(exchange(target, clients.for_target(target), started));
    let facts = match tokio::time::timeout(target.timeout, exchange).await {
        Err(_elapsed) => {
            return ProbeOutcome::failed(
                FailureReason::Timeout,
                format!(
                    "no complete response within the timeout of {:?}",
                    target.timeout
                ),
                started.elapsed(),
            )
        }
        Ok(Err(error)) => {
            let (reason, message) = classify(&error);
            return ProbeOutcome::failed(reason, message, started.elapsed());
        }
        Ok(Ok(facts)) => facts,
    };
    judge(target, facts)
}

/// A response with the time it took and the certificate expiry.
struct Observed {
    facts: ResponseFacts,
    cert_expiry_unix: Option<i64>,
}

async fn exchange(
    target: &ProbeTarget,
    client: &reqwest::Client,
    started: Instant,
) -> Result<Observed, reqwest::Error> {
    // Validated targets have valid headers; should an unvalidated one reach
    // this point, its invalid headers are skipped rather than failing every
    // probe with a reason that does not fit.
    let headers = target.valid_headers();
    let mut request = client
        .request(target.method.clone(), target.url.clone())
        .headers(headers);
    if let Some(body) = &target.body {
        request = request.body(body.clone());
    }
    let mut response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let leaf = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate());
    let cert_expiry_unix = leaf.and_then(|leaf| {
        // The recorded chain belongs to this response only if it starts with
        // the response's leaf (a redirect may have crossed hosts).
        let chain =
            tls::captured_chain().filter(|chain| chain.first().is_some_and(|first| first == leaf));
        let expiry = match &chain {
            Some(chain) => tls::earliest_expiry(chain.iter().map(Vec::as_slice)),
            None => tls::earliest_expiry([leaf]),
        };
        expiry.unwrap_or_else(|error| {
            tracing::debug!(probe = %target.name, %error, "peer certificate not readable");
            None
        })
    });
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(MAX_BODY_BYTES);
    let cert_days_left = cert_expiry_unix.map(|expiry| tls::days_left(expiry, SystemTime::now()));
    Ok(Observed {
        facts: ResponseFacts {
            status,
            latency: started.elapsed(),
            body: String::from_utf8_lossy(&body).into_owned(),
            headers,
            cert_days_left,
        },
        cert_expiry_unix,
    })
}

/// Applies the expectation to a complete response.
fn judge(target: &ProbeTarget, observed: Observed) -> ProbeOutcome {
    let Observed {
        facts,
        cert_expiry_unix,
    } = observed;
    let failure = match target.expect.evaluate(&facts) {
        Ok(true) => None,
        Ok(false) if target.expect.is_default() => Some(ProbeFailure {
            reason: FailureReason::Status,
            message: format!("status {} is not 2xx or 3xx", facts.status),
        }),
        Ok(false) => Some(ProbeFailure {
            reason: FailureReason::Expectation,
            message: format!(
                "expectation `{}` was false (status {}, {:.1} ms)",
                target.expect,
                facts.status,
                facts.latency.as_secs_f64() * 1000.0
            ),
        }),
        // Also for the default expectation: it cannot error on a response,
        // and if it ever did the user should see the evaluator's message.
        Err(error) => Some(ProbeFailure {
            reason: FailureReason::Expectation,
            message: error.to_string(),
        }),
    };
    ProbeOutcome {
        failure,
        duration: facts.latency,
        status: Some(facts.status),
        cert_expiry_unix,
    }
}

/// Maps a reqwest error to a failure reason and a message with its causes.
fn classify(error: &reqwest::Error) -> (FailureReason, String) {
    let message = error_chain(error);
    let reason = if error.is_timeout() {
        FailureReason::Timeout
    } else if tls::is_tls_error(error) {
        FailureReason::Tls
    } else if error.is_redirect() {
        FailureReason::Status
    } else {
        // Refused, DNS, reset, or the connection died mid-body: in every case
        // the server could not be talked to.
        FailureReason::Connect
    };
    (reason, message)
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
