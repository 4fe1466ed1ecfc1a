//! Certificate facts and TLS failure detection for the prober: when the
//! certificates expire, and whether a request error came from the TLS layer
//! (reason `tls`) rather than the network (reason `connect`).

use std::error::Error as StdError;
use std::time::{SystemTime, UNIX_EPOCH};

use x509_parser::prelude::{FromDer, X509Certificate};

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
