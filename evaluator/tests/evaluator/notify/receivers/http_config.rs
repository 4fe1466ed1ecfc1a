//! `http_config` of the HTTP receivers against real TLS, proxy and OAuth 2.0
//! endpoints on 127.0.0.1: which CA is trusted, the name a certificate is
//! verified against, client certificates, a forward proxy and `no_proxy`,
//! the client-credentials token flow, and `global.http_config` as the
//! default of integrations without their own.

use crate::support as common;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use vigil_evaluator::notify::alert::AlertStatus;
use vigil_evaluator::notify::receivers::SendError;

use common::{alert, build_one, notification};

/// One request a [`RawServer`] read.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 server (plain or TLS) that records every request and
/// answers from a script (200 `{}` once it is exhausted).
struct RawServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
}

impl RawServer {
    async fn start(tls: Option<rustls::ServerConfig>) -> RawServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let acceptor = tls.map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
        let (s, q) = (seen.clone(), script.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, q, acceptor) = (s.clone(), q.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve(stream, s, q).await;
                            }
                        }
                        None => serve(stream, s, q).await,
                    }
                });
            }
        });
        RawServer { port, seen, script }
    }

    fn answer(&self, status: u16, body: &str) {
        if let Ok(mut script) = self.script.lock() {
            script.push_back((status, body.to_string()));
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Reads one request from `stream`, records it and answers it.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).await.is_err() {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).await.is_err() {
        return;
    }
    if let Ok(mut seen) = seen.lock() {
        seen.push(Seen {
            request_line: request_line.trim_end().to_string(),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    let (status, body) = script
        .lock()
        .ok()
        .and_then(|mut s| s.pop_front())
        .unwrap_or((200, "{}".into()));
    let answer = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = reader.into_inner();
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A CA, a server certificate it signed for `hooks.internal` only, and a
/// client certificate it signed; all written as PEM files in `dir`.
struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

fn ca_params() -> rcgen::CertificateParams {
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
}

fn pki(dir: &Path) -> Pki {
    let ca = rcgen::CertifiedIssuer::self_signed(
        ca_params(),
        rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let server_key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let server = rcgen::CertificateParams::new(vec!["hooks.internal".to_string()])
        .and_then(|p| p.signed_by(&server_key, &ca))
        .unwrap_or_else(|e| panic!("{e}"));
    let client_key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let client = rcgen::CertificateParams::new(vec!["vigil".to_string()])
        .and_then(|p| p.signed_by(&client_key, &ca))
        .unwrap_or_else(|e| panic!("{e}"));
    let write = |name: &str, pem: String| {
        std::fs::write(dir.join(name), pem).unwrap_or_else(|e| panic!("{e}"));
    };
    write("ca.pem", AsRef::<rcgen::Certificate>::as_ref(&ca).pem());
    write("client.pem", client.pem());
    write("client-key.pem", client_key.serialize_pem());
    Pki {
        server_chain: vec![server.der().clone()],
        server_key: server_key.serialize_der(),
        ca,
    }
}

impl Pki {
    /// The server's TLS config; with `client_auth`, clients must present
    /// a certificate the CA signed.
    fn server(&self, client_auth: bool) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| panic!("{e}"));
        let builder = if client_auth {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(AsRef::<rcgen::Certificate>::as_ref(&self.ca).der().clone())
                .unwrap_or_else(|e| panic!("{e}"));
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        builder
            .with_single_cert(
                self.server_chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone())),
            )
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn firing() -> vigil_evaluator::notify::alert::Notification {
    notification(vec![alert("a", "critical", AlertStatus::Firing)])
}

fn webhook(url: &str, http_config: &str) -> String {
    format!("webhook_configs:\n  - url: '{url}'\n    http_config: {http_config}\n")
}

fn is_transport_error(result: &Result<impl std::fmt::Debug, SendError>) -> bool {
    matches!(result, Err(SendError::Transport { .. }))
}

#[tokio::test]
async fn tls_config_trusts_only_its_ca_and_verifies_the_server_name() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pki = pki(dir.path());
    let server = RawServer::start(Some(pki.server(false))).await;
    let url = format!("https://127.0.0.1:{}/hook", server.port);
    let ca = dir.path().join("ca.pem");
    let ca = ca.display();

    let verified = build_one(&webhook(
        &url,
        &format!("{{tls_config: {{ca_file: '{ca}', server_name: hooks.internal}}}}"),
    ));
    let sent = verified.send(&firing()).await;
    assert!(sent.is_ok(), "{sent:?}");

    // The certificate is not for 127.0.0.1.
    let wrong_name = build_one(&webhook(
        &url,
        &format!("{{tls_config: {{ca_file: '{ca}'}}}}"),
    ));
    assert!(is_transport_error(&wrong_name.send(&firing()).await));
    // The built-in roots do not know the test CA.
    let default_roots = build_one(&webhook(&url, "{follow_redirects: true}"));
    assert!(is_transport_error(&default_roots.send(&firing()).await));
    // Testing only: anything goes.
    let insecure = build_one(&webhook(&url, "{tls_config: {insecure_skip_verify: true}}"));
    assert!(insecure.send(&firing()).await.is_ok());
    assert_eq!(
        server.seen().len(),
        2,
        "only the verified sends got through"
    );
}

#[tokio::test]
async fn a_client_certificate_is_presented_from_cert_and_key_files() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pki = pki(dir.path());
    let server = RawServer::start(Some(pki.server(true))).await;
    let url = format!("https://127.0.0.1:{}/hook", server.port);
    let at = |name: &str| dir.path().join(name).display().to_string();
    let tls = format!("ca_file: '{}', server_name: hooks.internal", at("ca.pem"));

    let with_cert = build_one(&webhook(
        &url,
        &format!(
            "{{tls_config: {{{tls}, cert_file: '{}', key_file: '{}'}}}}",
            at("client.pem"),
            at("client-key.pem")
        ),
    ));
    let sent = with_cert.send(&firing()).await;
    assert!(sent.is_ok(), "{sent:?}");
    let without = build_one(&webhook(&url, &format!("{{tls_config: {{{tls}}}}}")));
    assert!(without.send(&firing()).await.is_err());
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn proxy_url_carries_requests_unless_no_proxy_names_the_host() {
    let proxy = RawServer::start(None).await;
    let endpoint = RawServer::start(None).await;
    let url = format!("http://127.0.0.1:{}/hook", endpoint.port);
    let proxied = build_one(&webhook(
        &url,
        &format!("{{proxy_url: 'http://127.0.0.1:{}'}}", proxy.port),
    ));
    assert!(proxied.send(&firing()).await.is_ok());
    let through_proxy = proxy.seen();
    assert_eq!(through_proxy.len(), 1);
    assert_eq!(
        through_proxy[0].request_line,
        format!("POST {url} HTTP/1.1"),
        "a forward proxy gets the absolute URL"
    );
    assert!(endpoint.seen().is_empty());

    let bypassing = build_one(&webhook(
        &url,
        &format!(
            "{{proxy_url: 'http://127.0.0.1:{}', no_proxy: '127.0.0.1'}}",
            proxy.port
        ),
    ));
    assert!(bypassing.send(&firing()).await.is_ok());
    assert_eq!(proxy.seen().len(), 1, "no_proxy skips the proxy");
    assert_eq!(endpoint.seen()[0].request_line, "POST /hook HTTP/1.1");
}

#[tokio::test]
async fn oauth2_token_is_fetched_once_with_client_credentials_and_sent_as_bearer() {
    let token_server = RawServer::start(None).await;
    token_server.answer(
        200,
        r#"{"access_token":"tok-1","token_type":"bearer","expires_in":3600}"#,
    );
    let endpoint = RawServer::start(None).await;
    let receiver = build_one(&webhook(
        &format!("http://127.0.0.1:{}/hook", endpoint.port),
        &format!(
            "{{oauth2: {{client_id: vigil, client_secret: 's3 cret', scopes: [a, b], \
             endpoint_params: {{audience: hooks}}, token_url: 'http://127.0.0.1:{}/token'}}}}",
            token_server.port
        ),
    ));
    assert!(receiver.send(&firing()).await.is_ok());
    assert!(receiver.send(&firing()).await.is_ok());

    let token_requests = token_server.seen();
    assert_eq!(token_requests.len(), 1, "the token is cached");
    let request = &token_requests[0];
    assert_eq!(request.request_line, "POST /token HTTP/1.1");
    // base64("vigil:s3+cret"): the secret form-escaped, as Go's oauth2.
    assert_eq!(
        request.header("authorization"),
        Some("Basic dmlnaWw6czMrY3JldA==")
    );
    assert_eq!(
        request.body,
        "grant_type=client_credentials&scope=a+b&audience=hooks"
    );
    for sent in endpoint.seen() {
        assert_eq!(sent.header("authorization"), Some("Bearer tok-1"));
    }
}

#[tokio::test]
async fn oauth2_credentials_move_to_the_body_when_basic_auth_is_refused_and_failures_classify() {
    let token_server = RawServer::start(None).await;
    token_server.answer(401, r#"{"error":"invalid_client"}"#);
    token_server.answer(200, r#"{"access_token":"tok-2"}"#);
    let endpoint = RawServer::start(None).await;
    let yaml = |token_port: u16| {
        webhook(
            &format!("http://127.0.0.1:{}/hook", endpoint.port),
            &format!(
                "{{oauth2: {{client_id: vigil, client_secret: s, token_url: 'http://127.0.0.1:{token_port}/token'}}}}"
            ),
        )
    };
    let receiver = build_one(&yaml(token_server.port));
    assert!(receiver.send(&firing()).await.is_ok());
    let token_requests = token_server.seen();
    assert_eq!(token_requests.len(), 2);
    assert_eq!(token_requests[1].header("authorization"), None);
    assert_eq!(
        token_requests[1].body,
        "grant_type=client_credentials&client_id=vigil&client_secret=s"
    );
    assert_eq!(
        endpoint.seen()[0].header("authorization"),
        Some("Bearer tok-2")
    );

    // A token endpoint that is down is worth retrying; one that refuses
    // the client is not.
    let down = build_one(&yaml(vigil_testkit::free_port()));
    let error = down.send(&firing()).await.err();
    assert!(
        error.as_ref().is_some_and(SendError::is_retryable),
        "{error:?}"
    );
    let refusing = RawServer::start(None).await;
    refusing.answer(401, "no");
    refusing.answer(401, "no");
    let refused = build_one(&yaml(refusing.port)).send(&firing()).await.err();
    assert!(
        refused.as_ref().is_some_and(|e| !e.is_retryable()),
        "{refused:?}"
    );
    assert_eq!(endpoint.seen().len(), 1);
}

#[tokio::test]
async fn global_http_config_is_the_default_and_file_paths_are_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let endpoint = RawServer::start(None).await;
    std::fs::write(
        dir.path().join("hook-url"),
        format!("http://127.0.0.1:{}/own\n", endpoint.port),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("global-token"), "g-token\n").unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "global:
  http_config:
    authorization: {{credentials_file: global-token}}
route:
  receiver: team
receivers:
  - name: team
    webhook_configs:
      - url: 'http://127.0.0.1:{port}/inherits'
      - url_file: hook-url
        http_config: {{basic_auth: {{username: u, password: p}}}}
",
            port = endpoint.port
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let loaded =
        vigil_evaluator::notify::config::load_file(&config).unwrap_or_else(|e| panic!("{e}"));
    let (receivers, _) = vigil_evaluator::notify::config::build_receivers(&loaded)
        .unwrap_or_else(|e| panic!("{e:?}"));
    for integration in &receivers["team"] {
        let sent = integration.receiver.send(&firing()).await;
        assert!(sent.is_ok(), "{sent:?}");
    }
    let seen = endpoint.seen();
    let by_path = |path: &str| {
        seen.iter()
            .find(|s| s.request_line.contains(path))
            .and_then(|s| s.header("authorization").map(str::to_string))
    };
    assert_eq!(by_path("/inherits").as_deref(), Some("Bearer g-token"));
    assert_eq!(by_path("/own").as_deref(), Some("Basic dTpw"));
}
