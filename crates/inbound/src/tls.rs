//! STARTTLS for the inbound listener (RFC 3207): the certificate chain and key from
//! `[inbound] tls_certificate` and `tls_key` (PEM files). Without them STARTTLS is not offered
//! and mail arrives in the clear, as it does at most MX hosts that have no certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;

use crate::InboundConfig;

/// Why the configured certificate cannot be offered; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[inbound] tls_certificate and tls_key must be set together (or neither)")]
    HalfConfigured,
    #[error("cannot use {} for STARTTLS", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("cannot use {} for STARTTLS: no certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("[inbound] tls_certificate and tls_key do not go together")]
    Mismatch(#[source] tokio_rustls::rustls::Error),
    #[error("the TLS library offers no safe protocol version")]
    Protocols(#[source] tokio_rustls::rustls::Error),
}

/// The TLS acceptor the configuration asks for: `None` when no certificate is configured, an
/// error naming the file when one cannot be used.
pub fn acceptor(config: &InboundConfig) -> Result<Option<TlsAcceptor>, TlsError> {
    let (certificate, key) = match (&config.tls_certificate, &config.tls_key) {
        (None, None) => return Ok(None),
        (Some(certificate), Some(key)) => (certificate, key),
        _ => return Err(TlsError::HalfConfigured),
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| unreadable(certificate, source))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: certificate.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| unreadable(key, source))?;
    let server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocols)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Mismatch)?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

fn unreadable(path: &Path, source: rustls_pki_types::pem::Error) -> TlsError {
    TlsError::Unreadable {
        path: path.to_owned(),
        source,
    }
}
