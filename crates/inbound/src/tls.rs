//! STARTTLS for the inbound listener (RFC 3207): the certificate chain and key from
//! `[inbound] tls_certificate` and `tls_key` (PEM files). Without them STARTTLS is not offered
//! and mail arrives in the clear, as it does at most MX hosts that have no certificate.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;

use crate::InboundConfig;

/// The TLS acceptor the configuration asks for: `None` when no certificate is configured, an
/// error naming the file when one cannot be used.
pub fn acceptor(config: &InboundConfig) -> Result<Option<TlsAcceptor>, String> {
    let (certificate, key) = match (&config.tls_certificate, &config.tls_key) {
        (None, None) => return Ok(None),
        (Some(certificate), Some(key)) => (certificate, key),
        _ => {
            return Err(
                "[inbound] tls_certificate and tls_key must be set together (or neither)".into(),
            );
        }
    };
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable(certificate, &e.to_string()))?;
    if chain.is_empty() {
        return Err(unreadable(certificate, "no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| unreadable(key, &e.to_string()))?;
    let server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("[inbound] tls_certificate and tls_key do not go together: {e}"))?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

fn unreadable(path: &Path, why: &str) -> String {
    format!("cannot use {} for STARTTLS: {why}", path.display())
}
