//! TLS for the prober: the client configuration, the certificate chain the
//! server presented, when those certificates expire, and whether a request
//! error came from the TLS layer (reason `tls`) rather than the network
//! (reason `connect`).
//!
//! reqwest only exposes the leaf certificate of a response, but an expiring
//! intermediate breaks a site just as surely. So the prober's rustls
//! verifier records the whole chain into a task-local slot that the probe
//! opens around its request; the handshake runs inside the probe's task,
//! so each probe sees exactly its own chain.

use std::cell::RefCell;
use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

tokio::task_local! {
    /// The DER certificates (leaf first) of the last handshake in this probe.
    static PEER_CHAIN: RefCell<Option<Vec<Vec<u8>>>>;
}

/// The rustls configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("could not set up TLS for probes: {reason}")]
pub struct TlsSetupError {
    reason: String,
}

/// A rustls client configuration that trusts the Mozilla roots (like
/// reqwest's default) when `verify` is on, accepts any certificate when it
/// is off, and in both cases records the presented chain for
/// [`captured_chain`].
pub(crate) fn client_config(verify: bool) -> Result<rustls::ClientConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = if verify {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|error| TlsSetupError {
                    reason: error.to_string(),
                })?;
        Some(verifier)
    } else {
        None
    };
    let verifier = RecordingVerifier {
        inner,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsSetupError {
            reason: error.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // The clients speak HTTP/1.1 only (reqwest is built without http2).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Runs `future` with a fresh chain slot, so [`captured_chain`] inside it
/// returns the chain of this probe's (last) handshake.
pub(crate) async fn capture_chain<F: Future>(future: F) -> F::Output {
    PEER_CHAIN.scope(RefCell::new(None), future).await
}

/// The chain recorded by the last handshake inside [`capture_chain`], leaf
/// first; `None` outside it or before any handshake.
pub(crate) fn captured_chain() -> Option<Vec<Vec<u8>>> {
    PEER_CHAIN
        .try_with(|slot| slot.borrow().clone())
        .ok()
        .flatten()
}

/// Records the chain, then verifies like rustls' WebPKI verifier (or not at
/// all when verification is off; handshake signatures are always checked).
#[derive(Debug)]
struct RecordingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|certificate| certificate.as_ref().to_vec())
            .collect();
        // Outside a probe (no slot) there is nothing to record into.
        let _no_slot_is_fine = PEER_CHAIN.try_with(|slot| *slot.borrow_mut() = Some(chain));
        match &self.inner {
            Some(verifier) => verifier.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Seconds in a day, for `cert_days_left`.
const SECONDS_PER_DAY: f64 = 86_400.0;

/// A certificate the peer sent could not be read.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[error("the server sent a certificate that is not valid DER X.509: {reason}")]
pub struct CertificateError {
    reason: String,
}

/// The earliest `notAfter` among `certificates` (DER), in unix seconds;
/// `None` when the list is empty.
pub fn earliest_expiry<'a>(
    certificates: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<i64>, CertificateError> {
    let mut earliest: Option<i64> = None;
    for der in certificates {
        let (_, certificate) =
            X509Certificate::from_der(der).map_err(|error| CertificateError {
                reason: error.to_string(),
            })?;
        let not_after = certificate.validity().not_after.timestamp();
        earliest = Some(earliest.map_or(not_after, |seen| seen.min(not_after)));
    }
    Ok(earliest)
}

/// Days from `now` until `expiry_unix` (negative once expired), fractional.
pub fn days_left(expiry_unix: i64, now: SystemTime) -> f64 {
    let now_unix = match now.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    (expiry_unix as f64 - now_unix) / SECONDS_PER_DAY
}

/// True when `error` (or anything it wraps) is a rustls error: a failed
/// handshake or a rejected certificate.
pub fn is_tls_error(error: &(dyn StdError + 'static)) -> bool {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(error) = current {
        if error.is::<rustls::Error>() {
            return true;
        }
        // io::Error::source() skips the error it wraps (and the connector
        // nests io::Errors), so descend into each one explicitly.
        if let Some(inner) = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if is_tls_error(inner) {
                return true;
            }
        }
        current = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn days_left_is_fractional_and_negative_after_expiry() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(days_left(1_000_000 + 43_200, now), 0.5);
        assert_eq!(days_left(1_000_000 - 86_400, now), -1.0);
    }

    #[test]
    fn no_certificates_means_no_expiry() {
        assert_eq!(earliest_expiry(std::iter::empty()), Ok(None));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(earliest_expiry([b"not der".as_slice()]).is_err());
    }

    #[test]
    fn rustls_error_inside_io_error_is_recognised() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::General("handshake".into()),
        );
        assert!(is_tls_error(&io));
        let nested = std::io::Error::other(io);
        assert!(is_tls_error(&nested));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(!is_tls_error(&plain));
    }
}
