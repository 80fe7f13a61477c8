//! DKIM signatures (RFC 6376) per sending domain: when the From domain of an email has a key
//! configured, the message is signed with it (RSA-SHA256 or Ed25519-SHA256, chosen by the
//! key), so receivers can tie the mail to the domain.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

/// `[outbound.dkim."example.com"]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKeyConfig {
    /// The selector: the public key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// A PEM file with the private key (PKCS#8 RSA or Ed25519, or PKCS#1 RSA).
    pub private_key: PathBuf,
}

/// The headers signed: those a forwarder must not change, and those that identify the mail.
const SIGNED_HEADERS: [&str; 8] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
];

enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// The signing keys of every configured domain.
#[derive(Default)]
pub struct Signers {
    by_domain: HashMap<String, Signer>,
}

impl Signers {
    /// Loads every configured key; an unreadable or unusable key is an error naming it.
    pub fn load(config: &BTreeMap<String, DkimKeyConfig>) -> Result<Self, String> {
        let mut by_domain = HashMap::new();
        for (domain, key) in config {
            let pem = std::fs::read(&key.private_key).map_err(|e| {
                format!(
                    "DKIM key for {domain}: cannot read {}: {e}",
                    key.private_key.display()
                )
            })?;
            by_domain.insert(domain.to_lowercase(), signer(domain, &key.selector, &pem)?);
        }
        Ok(Self { by_domain })
    }

    /// The `DKIM-Signature: …\r\n` header for a message from `from_domain`, if it has a key.
    pub fn sign(&self, from_domain: &str, message: &[u8]) -> Option<String> {
        let signature = match self.by_domain.get(&from_domain.to_lowercase())? {
            Signer::Rsa(signer) => signer.sign(message),
            Signer::Ed25519(signer) => signer.sign(message),
        };
        match signature {
            Ok(signature) => Some(signature.to_header()),
            Err(e) => {
                tracing::error!(error = %e, domain = from_domain, "DKIM signing failed; sending unsigned");
                None
            }
        }
    }
}

fn signer(domain: &str, selector: &str, pem: &[u8]) -> Result<Signer, String> {
    let der = PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| format!("DKIM key for {domain}: not a PEM private key: {e}"))?;
    if let PrivateKeyDer::Pkcs8(pkcs8) = &der
        && let Ok(key) = Ed25519Key::from_pkcs8_der(pkcs8.secret_pkcs8_der())
    {
        return Ok(Signer::Ed25519(
            DkimSigner::from_key(key)
                .domain(domain)
                .selector(selector)
                .headers(SIGNED_HEADERS),
        ));
    }
    let key = RsaKey::<Sha256>::from_key_der(der)
        .map_err(|e| format!("DKIM key for {domain}: neither Ed25519 nor RSA: {e}"))?;
    Ok(Signer::Rsa(
        DkimSigner::from_key(key)
            .domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(der: &[u8]) -> Vec<u8> {
        use std::fmt::Write;
        let b64 = data_encoding::BASE64.encode(der);
        let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            writeln!(out, "{}", std::str::from_utf8(line).unwrap()).unwrap();
        }
        out.push_str("-----END PRIVATE KEY-----\n");
        out.into_bytes()
    }

    #[test]
    fn signs_with_an_ed25519_key_for_its_domain_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop.pem");
        std::fs::write(&path, pem(&Ed25519Key::generate_pkcs8().unwrap())).unwrap();
        let config = BTreeMap::from([(
            "shop.test".to_owned(),
            DkimKeyConfig {
                selector: "mt1".into(),
                private_key: path,
            },
        )]);
        let signers = Signers::load(&config).unwrap();
        let message = b"From: s@shop.test\r\nTo: a@b.test\r\nSubject: Hi\r\n\r\nHello\r\n";
        let header = signers.sign("Shop.Test", message).unwrap();
        assert!(
            header.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"),
            "{header}"
        );
        assert!(
            header.contains("d=shop.test") && header.contains("s=mt1"),
            "{header}"
        );
        assert!(signers.sign("other.test", message).is_none());
    }

    #[test]
    fn a_bad_key_is_an_error_that_names_the_domain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        std::fs::write(&path, "not a key").unwrap();
        let config = BTreeMap::from([(
            "shop.test".to_owned(),
            DkimKeyConfig {
                selector: "mt1".into(),
                private_key: path,
            },
        )]);
        let error = Signers::load(&config).err().unwrap();
        assert!(error.contains("shop.test"), "{error}");
    }
}
