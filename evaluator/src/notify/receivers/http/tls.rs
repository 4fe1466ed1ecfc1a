//! `tls_config` of an HTTP client, as Prometheus' HTTP client config writes
//! it: which CAs to trust, a client certificate, the name to verify the
//! server against, and the TLS versions; turned into the rustls client
//! configuration the HTTP client is built with.
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `ca` / `ca_file` | the Mozilla roots | PEM CA certificate(s) to trust *instead of* the built-in roots |
//! | `cert` / `cert_file` and `key` / `key_file` | none | PEM client certificate and its private key (both or neither) |
//! | `server_name` | the URL's host | name the server certificate must be valid for |
//! | `insecure_skip_verify` | `false` | accept any server certificate (testing only) |
//! | `min_version` / `max_version` | `TLS12` / `TLS13` | `TLS10` … `TLS13`; TLS 1.0 and 1.1 are not offered (rustls has neither), so they mean 1.2 |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Deserialize;

use crate::notify::receivers::config::Problems;
use crate::notify::receivers::Secret;

/// `tls_config` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfigRaw {
    pub ca: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub cert: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key: Option<Secret>,
    pub key_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: Option<bool>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
}

/// The rustls configuration for `raw`, or `None` with the problems pushed
/// at `field` (e.g. `http_config.tls_config`).
pub fn client_config(
    raw: &TlsConfigRaw,
    field: &str,
    p: &mut Problems<'_>,
) -> Option<Arc<ClientConfig>> {
    let before = p.count();
    let at = |key: &str| format!("{field}.{key}");
    let ca = pem_source(raw.ca.as_deref(), raw.ca_file.as_deref(), &at("ca"), p);
    let cert = pem_source(
        raw.cert.as_deref(),
        raw.cert_file.as_deref(),
        &at("cert"),
        p,
    );
    let key = pem_source(
        raw.key.as_ref().map(Secret::expose),
        raw.key_file.as_deref(),
        &at("key"),
        p,
    );
    match (&cert, &key) {
        (Some(_), None) => p.add(
            &at("key"),
            "a client certificate needs its key; set key or key_file",
        ),
        (None, Some(_)) => p.add(
            &at("cert"),
            "a client key needs its certificate; set cert or cert_file",
        ),
        _ => {}
    }
    let min = version(raw.min_version.as_deref(), &at("min_version"), p).unwrap_or(12);
    let max = version(raw.max_version.as_deref(), &at("max_version"), p).unwrap_or(13);
    if min > max {
        p.add(
            &at("min_version"),
            "min_version is above max_version; lower min_version or raise max_version",
        );
    }
    if p.count() != before {
        return None;
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, version)| version)
            .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
    {
        Ok(builder) => builder,
        Err(e) => {
            p.add(
                &at("min_version"),
                format!("cannot use these TLS versions: {e}"),
            );
            return None;
        }
    };
    let roots = match &ca {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            let certs = certificates(pem, &at("ca"), p)?;
            for cert in certs {
                if let Err(e) = roots.add(cert) {
                    p.add(&at("ca"), format!("not a usable CA certificate: {e}"));
                    return None;
                }
            }
            roots
        }
        None => RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let webpki = if raw.insecure_skip_verify.unwrap_or(false) {
        None
    } else {
        match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()
        {
            Ok(verifier) => Some(verifier),
            Err(e) => {
                p.add(&at("ca"), format!("cannot verify with these CAs: {e}"));
                return None;
            }
        }
    };
    let server_name = match raw.server_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => match ServerName::try_from(name.to_string()) {
            Ok(name) => Some(name),
            Err(e) => {
                p.add(
                    &at("server_name"),
                    format!("{name:?} is not a host name: {e}"),
                );
                return None;
            }
        },
        None => None,
    };
    let verifier = Arc::new(ServerCheck {
        webpki,
        server_name,
        provider,
    });
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(&cert, &at("cert"), p)?;
            let key = match PrivateKeyDer::from_pem_slice(&key) {
                Ok(key) => key,
                Err(e) => {
                    p.add(&at("key"), format!("no PEM private key found: {e}"));
                    return None;
                }
            };
            match builder.with_client_auth_cert(chain, key) {
                Ok(config) => config,
                Err(e) => {
                    p.add(
                        &at("key"),
                        format!("the client certificate and key do not fit together: {e}"),
                    );
                    return None;
                }
            }
        }
        _ => builder.with_no_client_auth(),
    };
    Some(Arc::new(config))
}

/// The PEM bytes of an inline value or a file (at most one of both).
fn pem_source(
    inline: Option<&str>,
    file: Option<&Path>,
    field: &str,
    p: &mut Problems<'_>,
) -> Option<Vec<u8>> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            p.add(
                field,
                format!("at most one of {field} and {field}_file may be set"),
            );
            None
        }
        (Some(pem), None) => Some(pem.as_bytes().to_vec()),
        (None, Some(path)) => match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                p.add(
                    &format!("{field}_file"),
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        },
        (None, None) => None,
    }
}

fn certificates(
    pem: &[u8],
    field: &str,
    p: &mut Problems<'_>,
) -> Option<Vec<CertificateDer<'static>>> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Some(certs),
        Ok(_) => {
            p.add(
                field,
                "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)",
            );
            None
        }
        Err(e) => {
            p.add(field, format!("not a PEM certificate: {e}"));
            None
        }
    }
}

/// `TLS10` … `TLS13` as a minor version number (10 … 13); TLS 1.0 and 1.1
/// count as 1.2, the lowest rustls speaks.
fn version(value: Option<&str>, field: &str, p: &mut Problems<'_>) -> Option<u8> {
    let value = value?;
    match value {
        "TLS10" | "TLS11" | "TLS12" => Some(12),
        "TLS13" => Some(13),
        other => {
            p.add(
                field,
                format!("unknown TLS version {other:?}; use TLS10, TLS11, TLS12 or TLS13"),
            );
            None
        }
    }
}

/// How the server certificate is checked: by WebPKI against the trusted
/// roots (and against `server_name` when set, instead of the URL's host),
/// or not at all with `insecure_skip_verify`. The handshake signatures
/// are always checked, so the connection is encrypted to whoever holds the
/// presented key.
#[derive(Debug)]
struct ServerCheck {
    /// `None`: `insecure_skip_verify`.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    server_name: Option<ServerName<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.webpki {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                self.server_name.as_ref().unwrap_or(server_name),
                ocsp_response,
                now,
            ),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
