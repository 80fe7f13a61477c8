//! DKIM signatures (RFC 6376) per sending domain: when the From domain of an email has a key,
//! the message is signed with it (RSA-SHA256 or Ed25519-SHA256, chosen by the key), so
//! receivers can tie the mail to the domain. A key is the account's own, made when it
//! registered the domain and used once the domain is verified, or one configured in
//! `[outbound.dkim]`; the account's wins.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use mailtrail_domain::EmailAddress;
use mailtrail_store::{Store, StoreError};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
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

/// The signing keys of every configured domain, and possibly one account's key for the From
/// domain of the email at hand (see [`Signers::with_account_key`]).
#[derive(Default)]
pub struct Signers {
    by_domain: Arc<HashMap<String, Signer>>,
    /// A verified sending domain of the email's account and its key: it wins over a
    /// configured key for the same domain.
    account: Option<(String, Signer)>,
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
        Ok(Self {
            by_domain: Arc::new(by_domain),
            account: None,
        })
    }

    /// The `DKIM-Signature: …\r\n` header for a message from `from_domain`, if it has a key.
    pub fn sign(&self, from_domain: &str, message: &[u8]) -> Option<String> {
        let from_domain = from_domain.to_lowercase();
        let signer = match &self.account {
            Some((domain, signer)) if *domain == from_domain => signer,
            _ => self.by_domain.get(&from_domain)?,
        };
        let signature = match signer {
            Signer::Rsa(signer) => signer.sign(message),
            Signer::Ed25519(signer) => signer.sign(message),
        };
        match signature {
            Ok(signature) => Some(signature.to_header()),
            Err(e) => {
                tracing::error!(error = %e, domain = %from_domain, "DKIM signing failed; sending unsigned");
                None
            }
        }
    }
    /// These signers, plus the key of `from`'s domain when it is a verified sending domain of
    /// the account. A stored key that no longer loads is logged and left out: the mail goes
    /// out with the configured key, or unsigned, rather than not at all.
    pub async fn with_account_key(
        &self,
        store: &Store,
        account_id: &str,
        from: &str,
    ) -> Result<Signers, StoreError> {
        let mut signers = Signers {
            by_domain: self.by_domain.clone(),
            account: None,
        };
        let Ok(from) = EmailAddress::parse(from) else {
            return Ok(signers);
        };
        let domain = from.domain();
        if let Some(key) = store.verified_domain_key(account_id, domain).await? {
            match signer(domain, &key.selector, key.private_key_pem.as_bytes()) {
                Ok(signer) => signers.account = Some((domain.to_owned(), signer)),
                Err(e) => {
                    tracing::error!(error = %e, account = account_id, "the stored key of a sending domain does not load")
                }
            }
        }
        Ok(signers)
    }
}

/// The kind of key a sending domain signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// Ed25519-SHA256 (RFC 8463): short keys and signatures.
    #[default]
    Ed25519,
    /// RSA-SHA256 with a 2048-bit key, for receivers that do not verify Ed25519 yet.
    Rsa,
}

impl KeyAlgorithm {
    /// The name in the DKIM record's `k=` tag, and as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Ed25519 => "ed25519",
            KeyAlgorithm::Rsa => "rsa",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ed25519" => Some(KeyAlgorithm::Ed25519),
            "rsa" => Some(KeyAlgorithm::Rsa),
            _ => None,
        }
    }
}

/// A new key pair for a sending domain.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// PKCS#8 PEM, as [`Signers`] loads it.
    pub private_key_pem: String,
    /// The DKIM record's `p=`: the raw Ed25519 key, or the RSA SubjectPublicKeyInfo.
    pub public_key_b64: String,
}

/// Makes a key pair. RSA-2048 takes a noticeable moment: run it off the async threads.
pub fn generate(algorithm: KeyAlgorithm) -> Result<KeyPair, String> {
    let (private_der, public) = match algorithm {
        KeyAlgorithm::Ed25519 => {
            let der = Ed25519Key::generate_pkcs8().map_err(|e| e.to_string())?;
            let public = Ed25519Key::from_pkcs8_der(&der)
                .map_err(|e| e.to_string())?
                .public_key();
            (der, public)
        }
        KeyAlgorithm::Rsa => {
            let key =
                rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| e.to_string())?;
            let private = key.to_pkcs8_der().map_err(|e| e.to_string())?;
            let public = key
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| e.to_string())?;
            (private.as_bytes().to_vec(), public.as_bytes().to_vec())
        }
    };
    Ok(KeyPair {
        private_key_pem: pem(&private_der),
        public_key_b64: data_encoding::BASE64.encode(&public),
    })
}

/// PKCS#8 DER as a `PRIVATE KEY` PEM block.
fn pem(der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
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

#[cfg(test)]
mod generated_keys {
    use super::*;

    /// A generated key signs, as PEM loaded the way a configured key is, and its public half
    /// is the one published.
    #[test]
    fn generated_keys_of_both_kinds_load_and_sign() {
        for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::Rsa] {
            let pair = generate(algorithm).unwrap();
            assert!(
                pair.private_key_pem
                    .starts_with("-----BEGIN PRIVATE KEY-----\n")
            );
            let signer = signer("shop.test", "mt1", pair.private_key_pem.as_bytes()).unwrap();
            let public = data_encoding::BASE64
                .decode(pair.public_key_b64.as_bytes())
                .unwrap();
            match (algorithm, &signer) {
                (KeyAlgorithm::Ed25519, Signer::Ed25519(_)) => assert_eq!(public.len(), 32),
                // A SubjectPublicKeyInfo around a 2048-bit modulus.
                (KeyAlgorithm::Rsa, Signer::Rsa(_)) => assert!(public.len() > 256),
                _ => panic!("{algorithm:?} loaded as the other kind"),
            }
            assert_eq!(KeyAlgorithm::parse(algorithm.as_str()), Some(algorithm));
        }
    }
}
