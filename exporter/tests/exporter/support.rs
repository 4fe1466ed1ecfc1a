//! Local HTTP and HTTPS servers and probe targets for the prober tests, and
//! `promtool check metrics` for the tests of exported metrics.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use vigil_exporter::probe::{
    probe_once, Expectation, FailureReason, ProbeClients, ProbeOutcome, ProbeTarget,
};

/// Serves `router` over plain HTTP on an ephemeral port.
pub async fn serve_http(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("test server");
    });
    addr
}

/// An address where nothing listens: bound once to get a free port, then
/// released.
pub async fn closed_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    listener.local_addr().expect("local addr")
}

/// A server certificate chain (leaf first) and the leaf's key.
pub struct ServerCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn params(names: &[&str], not_after: (i32, u8, u8)) -> rcgen::CertificateParams {
    let names: Vec<String> = names.iter().map(ToString::to_string).collect();
    let mut params = rcgen::CertificateParams::new(names).expect("certificate params");
    params.not_before = rcgen::date_time_ymd(2018, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    params
}

fn ca_params(not_after: (i32, u8, u8)) -> rcgen::CertificateParams {
    let mut params = params(&[], not_after);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
}

/// A leaf for 127.0.0.1 signed by an intermediate signed by a root; the
/// server sends leaf and intermediate, as real servers do.
pub fn chained(
    root_not_after: (i32, u8, u8),
    intermediate_not_after: (i32, u8, u8),
    leaf_not_after: (i32, u8, u8),
) -> ServerCert {
    let root_key = rcgen::KeyPair::generate().expect("root key");
    let root =
        rcgen::CertifiedIssuer::self_signed(ca_params(root_not_after), root_key).expect("root");
    let intermediate_key = rcgen::KeyPair::generate().expect("intermediate key");
    let intermediate = rcgen::CertifiedIssuer::signed_by(
        ca_params(intermediate_not_after),
        intermediate_key,
        &root,
    )
    .expect("intermediate");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = params(&["localhost", "127.0.0.1"], leaf_not_after)
        .signed_by(&leaf_key, &intermediate)
        .expect("leaf");
    let intermediate_der = AsRef::<rcgen::Certificate>::as_ref(&intermediate)
        .der()
        .clone();
    ServerCert {
        chain: vec![leaf.der().clone(), intermediate_der],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

/// Generates a self-signed certificate valid until `not_after` (midnight UTC).
pub fn self_signed(not_after: (i32, u8, u8)) -> ServerCert {
    let key = rcgen::KeyPair::generate().expect("key pair");
    let certificate = params(&["localhost", "127.0.0.1"], not_after)
        .self_signed(&key)
        .expect("self-signed certificate");
    ServerCert {
        chain: vec![certificate.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// Serves `router` over HTTPS with `cert` on an ephemeral port.
pub async fn serve_https(router: Router, cert: ServerCert) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(cert.chain, cert.key)
        .expect("server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                // A client that rejects the certificate aborts the handshake;
                // that is the expected end of such a connection.
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// Asserts that `text` contains `expected`, showing `text` if not.
#[track_caller]
pub fn assert_contains(text: &str, expected: &str) {
    assert!(text.contains(expected), "{text}");
}

/// Asserts that `text` contains each of `expected`, naming the one missing.
#[track_caller]
pub fn assert_contains_all<S: AsRef<str>>(text: &str, expected: impl IntoIterator<Item = S>) {
    for expected in expected {
        let expected = expected.as_ref();
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// What `promtool check metrics` says of `metrics` (stdout and stderr
/// together), and how it exited.
pub fn promtool_check_metrics(
    promtool: &Path,
    metrics: &[u8],
) -> anyhow::Result<(ExitStatus, String)> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run promtool")?;
    child
        .stdin
        .take()
        .context("promtool has no stdin")?
        .write_all(metrics)
        .context("cannot write to promtool")?;
    let output = child
        .wait_with_output()
        .context("promtool did not finish")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status, said))
}

/// A target for `url` with a short timeout, so failing tests fail fast.
pub fn target(url: &str) -> ProbeTarget {
    let mut target = ProbeTarget::new("test", url).expect("valid url");
    target.timeout = Duration::from_secs(5);
    target
}

/// Probes `target` once, with clients made for the purpose.
pub async fn probe(target: &ProbeTarget) -> ProbeOutcome {
    probe_once(target, &ProbeClients::new().expect("HTTP clients")).await
}

/// Asserts that `outcome` is a failure for `reason`.
#[track_caller]
pub fn assert_fails_with(outcome: &ProbeOutcome, reason: FailureReason) {
    assert_eq!(outcome.reason(), Some(reason), "{outcome:?}");
}

/// A target for `url` with the expectation `expect`.
pub fn target_expecting(url: &str, expect: &str) -> ProbeTarget {
    let mut target = target(url);
    target.expect = Expectation::compile(expect).expect("expectation compiles");
    target
}

/// The value of the series `name{labels}` in `registry`, if exported.
/// `labels` must list every label of the series.
pub fn metric_value(
    registry: &prometheus::Registry,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    use prometheus::proto::MetricType;
    let family = registry
        .gather()
        .into_iter()
        .find(|family| family.name() == name)?;
    let kind = family.get_field_type();
    family
        .get_metric()
        .iter()
        .find(|series| {
            let pairs = series.get_label();
            pairs.len() == labels.len()
                && labels.iter().all(|(key, value)| {
                    pairs
                        .iter()
                        .any(|pair| pair.name() == *key && pair.value() == *value)
                })
        })
        .map(|series| match kind {
            MetricType::COUNTER => series.get_counter().get_value(),
            _ => series.get_gauge().get_value(),
        })
}
