//! DKIM signatures (RFC 6376) per sending domain: when the From domain of an email has a key,
//! the message is signed with it — RSA-SHA256 by default, as Gmail and Yahoo require of bulk
//! senders, and optionally a second, Ed25519-SHA256 (RFC 8463) signature beside it — so
//! receivers can tie the mail to the domain. A key is the account's own, made when it
//! registered the domain and used once the domain is verified, or one configured in
//! `[outbound.dkim]`; the account's wins.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use mailtrail_domain::EmailAddress;
use mailtrail_domain::causes::WithCauses;
use mailtrail_store::{SendingDomain, Store, StoreError};
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
    /// A PEM file with the private key (PKCS#8 RSA or Ed25519, or PKCS#1 RSA), or an RSA key
    /// and then a PKCS#8 Ed25519 key, which signs a second time at [`second_selector`].
    pub private_key: PathBuf,
}

/// The headers signed, as given to mail-auth, which signs every copy of a listed name in the
/// message and, per listing it finds no copy for, lists the name once more in `h=` (signing the
/// null string, RFC 6376 §5.4). So a name absent from the message (Cc, In-Reply-To, …) is
/// signed as absent, and From, To and Subject, listed twice, are over-signed: `h=` names each
/// once more than it appears, and a copy added later breaks the signature. List-Unsubscribe
/// and List-Unsubscribe-Post are signed because one-click only counts when they are
/// (RFC 8058 §4); Feedback-ID because Gmail reads it only from signed mail.
const SIGNED_HEADERS: [&str; 17] = [
    "From",
    "From",
    "To",
    "To",
    "Subject",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "Cc",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
];

/// Why a DKIM key cannot sign: each names the domain it is for.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("DKIM key for {domain}: cannot read {}", path.display())]
    Unreadable {
        domain: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("DKIM key for {domain}: not a PEM private key")]
    NotPem {
        domain: String,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("DKIM key for {domain}: no PEM private key in it")]
    NoKey { domain: String },
    #[error("DKIM key for {domain}: neither Ed25519 nor RSA")]
    Unusable {
        domain: String,
        #[source]
        source: mail_auth::Error,
    },
    #[error("DKIM key for {domain}: the key after the RSA key must be Ed25519")]
    SecondNotEd25519 { domain: String },
    #[error("DKIM key for {domain}: a PEM holds one key, or an RSA key and then an Ed25519 key")]
    TooManyKeys { domain: String },
}

/// Why a new key pair could not be made.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot make an RSA key")]
    Rsa(#[source] rsa::Error),
    #[error("cannot encode the RSA private key")]
    RsaPrivateKey(#[source] rsa::pkcs8::Error),
    #[error("cannot encode the RSA public key")]
    RsaPublicKey(#[source] rsa::pkcs8::spki::Error),
    #[error("cannot make an Ed25519 key")]
    Ed25519(#[source] mail_auth::Error),
    /// The task making the key panicked or was cancelled.
    #[error("making the key did not finish")]
    Interrupted(#[source] tokio::task::JoinError),
}

/// Why a kind of key cannot be chosen for a new domain; the message says what to choose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    #[error(
        "Ed25519 alone is not verified by Gmail and most receivers: choose rsa, or \
         rsa+ed25519 for an Ed25519 signature beside the RSA one"
    )]
    Ed25519Alone,
    #[error("choose rsa (the default) or rsa+ed25519")]
    Unknown,
}

enum Key {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// A domain's signatures: one per key, an Ed25519 one beside the RSA one when it has both.
struct Signer(Vec<Key>);

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
    pub fn load(config: &BTreeMap<String, DkimKeyConfig>) -> Result<Self, KeyError> {
        let mut by_domain = HashMap::new();
        for (domain, key) in config {
            let pem = read(domain, &key.private_key)?;
            by_domain.insert(domain.to_lowercase(), signer(domain, &key.selector, &pem)?);
        }
        Ok(Self {
            by_domain: Arc::new(by_domain),
            account: None,
        })
    }

    /// The `DKIM-Signature: …\r\n` headers for a message from `from_domain`, if it has a key:
    /// one per key of the domain.
    pub fn sign(&self, from_domain: &str, message: &[u8]) -> Option<String> {
        let from_domain = from_domain.to_lowercase();
        let signer = match &self.account {
            Some((domain, signer)) if *domain == from_domain => signer,
            _ => self.by_domain.get(&from_domain)?,
        };
        let mut headers = String::new();
        for key in &signer.0 {
            let signature = match key {
                Key::Rsa(key) => key.sign(message),
                Key::Ed25519(key) => key.sign(message),
            };
            match signature {
                Ok(signature) => headers.push_str(&signature.to_header()),
                Err(e) => {
                    tracing::error!(error = %e, domain = %from_domain, "DKIM signing failed; sending without this signature")
                }
            }
        }
        (!headers.is_empty()).then_some(headers)
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
                    tracing::error!(
                        error = %WithCauses(&e),
                        account = account_id,
                        "the stored key of a sending domain does not load"
                    )
                }
            }
        }
        Ok(signers)
    }
}

/// The keys a sending domain signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// RSA-SHA256 with a 2048-bit key: what Gmail, Yahoo and every other receiver verify.
    #[default]
    Rsa,
    /// The RSA key and an Ed25519 key (RFC 8463) published at a second selector
    /// ([`second_selector`]): every message carries both signatures, and a receiver that does
    /// not verify Ed25519 still has the RSA one.
    RsaEd25519,
    /// Ed25519 alone, as domains were registered before RSA became the default. It still
    /// signs, but receivers like Gmail do not verify Ed25519, so that mail has no DKIM pass
    /// there; a new domain cannot choose it.
    Ed25519,
}

impl KeyAlgorithm {
    /// The name in the API, the web form and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa => "rsa",
            KeyAlgorithm::RsaEd25519 => "rsa+ed25519",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "rsa" => Some(KeyAlgorithm::Rsa),
            "rsa+ed25519" => Some(KeyAlgorithm::RsaEd25519),
            "ed25519" => Some(KeyAlgorithm::Ed25519),
            _ => None,
        }
    }

    /// The kind for a new domain; Ed25519 alone is refused with what to choose instead.
    pub fn for_new_domain(name: &str) -> Result<Self, AlgorithmError> {
        match Self::parse(name) {
            Some(KeyAlgorithm::Ed25519) => Err(AlgorithmError::Ed25519Alone),
            Some(algorithm) => Ok(algorithm),
            None => Err(AlgorithmError::Unknown),
        }
    }
}

/// Where a domain's Ed25519 key is published when it signs with RSA too: beside the RSA
/// key's selector, so both records exist at once.
pub fn second_selector(selector: &str) -> String {
    format!("{selector}-ed25519")
}

/// A new key pair for a sending domain.
#[derive(Debug, Clone)]
pub struct KeyPair {
    /// PKCS#8 PEM, as [`Signers`] loads it: for [`KeyAlgorithm::RsaEd25519`] the RSA key,
    /// then the Ed25519 one.
    pub private_key_pem: String,
    /// The DKIM record's `p=` of the first key: the RSA SubjectPublicKeyInfo, or the raw
    /// Ed25519 key. The second key's is derived from its private half ([`published_keys`]).
    pub public_key_b64: String,
}

/// Makes the keys. RSA-2048 takes a noticeable moment: run it off the async threads.
pub fn generate(algorithm: KeyAlgorithm) -> Result<KeyPair, GenerateError> {
    let (first_der, public) = match algorithm {
        KeyAlgorithm::Ed25519 => ed25519_key()?,
        KeyAlgorithm::Rsa | KeyAlgorithm::RsaEd25519 => {
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                .map_err(GenerateError::Rsa)?;
            let private = key.to_pkcs8_der().map_err(GenerateError::RsaPrivateKey)?;
            let public = key
                .to_public_key()
                .to_public_key_der()
                .map_err(GenerateError::RsaPublicKey)?;
            (private.as_bytes().to_vec(), public.as_bytes().to_vec())
        }
    };
    let mut private_key_pem = pem(&first_der);
    if algorithm == KeyAlgorithm::RsaEd25519 {
        private_key_pem.push_str(&pem(&ed25519_key()?.0));
    }
    Ok(KeyPair {
        private_key_pem,
        public_key_b64: data_encoding::BASE64.encode(&public),
    })
}

/// [`generate`] on a blocking thread, off the ones that answer requests: what registering a
/// domain and rotating its key do.
pub async fn generate_in_background(algorithm: KeyAlgorithm) -> Result<KeyPair, GenerateError> {
    tokio::task::spawn_blocking(move || generate(algorithm))
        .await
        .map_err(GenerateError::Interrupted)?
}

/// A new Ed25519 key: PKCS#8 DER and the raw public key.
fn ed25519_key() -> Result<(Vec<u8>, Vec<u8>), GenerateError> {
    let der = Ed25519Key::generate_pkcs8().map_err(GenerateError::Ed25519)?;
    let public = Ed25519Key::from_pkcs8_der(&der)
        .map_err(GenerateError::Ed25519)?
        .public_key();
    Ok((der, public))
}

/// One DKIM key record a sending domain publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    pub selector: String,
    /// The `k=` tag: `rsa` or `ed25519`.
    pub kind: &'static str,
    /// The `p=` tag.
    pub public_key_b64: String,
}

/// The key records of a sending domain, in the order its signatures are made: the stored
/// key at its selector and, for `rsa+ed25519`, the Ed25519 key at [`second_selector`].
pub fn published_keys(domain: &SendingDomain) -> Vec<PublishedKey> {
    let algorithm = KeyAlgorithm::parse(&domain.algorithm).unwrap_or_default();
    let mut keys = vec![PublishedKey {
        selector: domain.selector.clone(),
        kind: if algorithm == KeyAlgorithm::Ed25519 {
            "ed25519"
        } else {
            "rsa"
        },
        public_key_b64: domain.public_key_b64.clone(),
    }];
    if algorithm == KeyAlgorithm::RsaEd25519 {
        let second = PrivateKeyDer::pem_slice_iter(domain.private_key_pem.as_bytes())
            .nth(1)
            .and_then(Result::ok);
        match second
            .as_ref()
            .map(|der| Ed25519Key::from_pkcs8_der(der.secret_der()))
        {
            Some(Ok(key)) => keys.push(PublishedKey {
                selector: second_selector(&domain.selector),
                kind: "ed25519",
                public_key_b64: data_encoding::BASE64.encode(&key.public_key()),
            }),
            _ => {
                tracing::error!(domain = %domain.domain, "the stored Ed25519 key of a sending domain does not load")
            }
        }
    }
    keys
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

/// The signer of every key in `pem`: one key, or an RSA key and then an Ed25519 key, which
/// signs at [`second_selector`].
/// The PEM file of `domain`'s configured key.
fn read(domain: &str, path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Unreadable {
        domain: domain.to_owned(),
        path: path.to_owned(),
        source,
    })
}

fn signer(domain: &str, selector: &str, pem: &[u8]) -> Result<Signer, KeyError> {
    let mut keys = Vec::new();
    for der in PrivateKeyDer::pem_slice_iter(pem) {
        let der = der.map_err(|source| KeyError::NotPem {
            domain: domain.to_owned(),
            source,
        })?;
        let key = match keys.as_slice() {
            [] => key(domain, selector, der)?,
            [Key::Rsa(_)] => match key(domain, &second_selector(selector), der)? {
                ed25519 @ Key::Ed25519(_) => ed25519,
                Key::Rsa(_) => {
                    return Err(KeyError::SecondNotEd25519 {
                        domain: domain.to_owned(),
                    });
                }
            },
            _ => {
                return Err(KeyError::TooManyKeys {
                    domain: domain.to_owned(),
                });
            }
        };
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyError::NoKey {
            domain: domain.to_owned(),
        });
    }
    Ok(Signer(keys))
}

fn key(domain: &str, selector: &str, der: PrivateKeyDer<'_>) -> Result<Key, KeyError> {
    if let PrivateKeyDer::Pkcs8(pkcs8) = &der
        && let Ok(key) = Ed25519Key::from_pkcs8_der(pkcs8.secret_pkcs8_der())
    {
        return Ok(Key::Ed25519(
            DkimSigner::from_key(key)
                .domain(domain)
                .selector(selector)
                .headers(SIGNED_HEADERS),
        ));
    }
    let key = RsaKey::<Sha256>::from_key_der(der).map_err(|source| KeyError::Unusable {
        domain: domain.to_owned(),
        source,
    })?;
    Ok(Key::Rsa(
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
        assert!(error.to_string().contains("shop.test"), "{error}");
    }

    /// The operator reads which domain, which file and what the system said.
    #[test]
    fn a_missing_key_file_names_the_domain_the_file_and_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.pem");
        let config = BTreeMap::from([(
            "shop.test".to_owned(),
            DkimKeyConfig {
                selector: "mt1".into(),
                private_key: path.clone(),
            },
        )]);
        let error = Signers::load(&config).err().unwrap();
        let cause = std::fs::read(&path).unwrap_err();
        assert_eq!(
            WithCauses(&error).to_string(),
            format!(
                "DKIM key for shop.test: cannot read {}: {cause}",
                path.display()
            )
        );
    }
}

#[cfg(test)]
mod generated_keys {
    use super::*;

    fn domain(algorithm: KeyAlgorithm, pair: &KeyPair) -> SendingDomain {
        SendingDomain {
            id: "d".into(),
            account_id: "a".into(),
            domain: "shop.test".into(),
            selector: "mt1".into(),
            algorithm: algorithm.as_str().into(),
            private_key_pem: pair.private_key_pem.clone(),
            public_key_b64: pair.public_key_b64.clone(),
            return_path: "bounces.shop.test".into(),
            created_at_ms: 0,
            verified_at_ms: None,
            last_check_at_ms: None,
            last_check: None,
            next_key: None,
            retired_keys: None,
        }
    }

    /// The tags of a `DKIM-Signature:` header, unfolded, whitespace removed.
    fn tags(header: &str) -> BTreeMap<String, String> {
        let value = header.split_once(':').unwrap().1;
        value
            .split(';')
            .filter_map(|tag| tag.split_once('='))
            .map(|(n, v)| (n.trim().to_owned(), v.split_whitespace().collect()))
            .collect()
    }

    /// Every kind of key loads the way a stored key is loaded, signs once per key at the
    /// selector its record is published at, and its public halves are the ones published.
    #[test]
    fn generated_keys_of_every_kind_sign_once_per_published_key() {
        let message = b"From: s@shop.test\r\nTo: a@b.test\r\nSubject: Hi\r\n\r\nHello\r\n";
        let cases: [(KeyAlgorithm, &[(&str, &str)]); 3] = [
            (KeyAlgorithm::Rsa, &[("mt1", "rsa")]),
            (
                KeyAlgorithm::RsaEd25519,
                &[("mt1", "rsa"), ("mt1-ed25519", "ed25519")],
            ),
            (KeyAlgorithm::Ed25519, &[("mt1", "ed25519")]),
        ];
        for (algorithm, expected) in cases {
            let pair = generate(algorithm).unwrap();
            assert!(
                pair.private_key_pem
                    .starts_with("-----BEGIN PRIVATE KEY-----\n")
            );
            let published = published_keys(&domain(algorithm, &pair));
            let kinds: Vec<(&str, &str)> = published
                .iter()
                .map(|k| (k.selector.as_str(), k.kind))
                .collect();
            assert_eq!(kinds, expected, "{algorithm:?}");
            for key in &published {
                let public = data_encoding::BASE64
                    .decode(key.public_key_b64.as_bytes())
                    .unwrap();
                match key.kind {
                    "ed25519" => assert_eq!(public.len(), 32),
                    // A SubjectPublicKeyInfo around a 2048-bit modulus.
                    _ => assert!(public.len() > 256, "{algorithm:?}"),
                }
            }
            let signers = Signers {
                by_domain: Arc::new(HashMap::from([(
                    "shop.test".to_owned(),
                    signer("shop.test", "mt1", pair.private_key_pem.as_bytes()).unwrap(),
                )])),
                account: None,
            };
            let headers = signers.sign("shop.test", message).unwrap();
            let signatures: Vec<(String, String)> = headers
                .split("DKIM-Signature:")
                .skip(1)
                .map(|h| {
                    let tags = tags(&format!("DKIM-Signature:{h}"));
                    (tags["s"].clone(), tags["a"].clone())
                })
                .collect();
            let wanted: Vec<(String, String)> = expected
                .iter()
                .map(|(s, k)| (s.to_string(), format!("{k}-sha256")))
                .collect();
            assert_eq!(signatures, wanted, "{headers}");
            assert_eq!(KeyAlgorithm::parse(algorithm.as_str()), Some(algorithm));
        }
    }

    /// How mail-auth turns [`SIGNED_HEADERS`] into `h=`: every copy present is signed, From,
    /// To and Subject once more than they appear, and an absent name once (the null string,
    /// RFC 6376 §5.4), so neither a second From nor a Cc can be added without breaking it.
    #[test]
    fn h_signs_every_copy_and_over_signs_from_to_and_subject() {
        let pair = generate(KeyAlgorithm::Ed25519).unwrap();
        let signer = signer("shop.test", "mt1", pair.private_key_pem.as_bytes()).unwrap();
        let Key::Ed25519(key) = &signer.0[0] else {
            panic!("an Ed25519 key")
        };
        let one_of_each = "From: s@shop.test\r\nTo: a@b.test\r\nSubject: Hi\r\n\
            List-Unsubscribe: <https://t.test/u/1>\r\n\
            List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
            Feedback-ID: b:a:mailtrail:mt\r\nX-Mailtrail-Token: t\r\n\r\nHello\r\n";
        let two_recipients = "From: s@shop.test\r\nTo: a@b.test\r\nTo: c@b.test\r\n\
            Cc: d@b.test\r\nSubject: Hi\r\n\r\nHello\r\n";
        let cases = [
            (one_of_each, "from", 2),
            (one_of_each, "to", 2),
            (one_of_each, "subject", 2),
            (one_of_each, "list-unsubscribe", 1),
            (one_of_each, "list-unsubscribe-post", 1),
            (one_of_each, "feedback-id", 1),
            (one_of_each, "cc", 1),
            (one_of_each, "references", 1),
            (one_of_each, "x-mailtrail-token", 0),
            (two_recipients, "to", 3),
            (two_recipients, "cc", 1),
            (two_recipients, "from", 2),
        ];
        for (message, name, count) in cases {
            let header = key.sign(message.as_bytes()).unwrap().to_header();
            let h = tags(&header)["h"].to_ascii_lowercase();
            let listed = h.split(':').filter(|n| *n == name).count();
            assert_eq!(listed, count, "{name} in h={h}");
        }
    }

    #[test]
    fn a_new_domain_gets_rsa_and_never_ed25519_alone() {
        let cases = [
            ("rsa", Ok(KeyAlgorithm::Rsa)),
            ("rsa+ed25519", Ok(KeyAlgorithm::RsaEd25519)),
            ("ed25519", Err("Gmail")),
            ("dsa", Err("choose rsa")),
        ];
        for (name, expected) in cases {
            match (KeyAlgorithm::for_new_domain(name), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want),
                (Err(why), Err(part)) => assert!(why.to_string().contains(part), "{name}: {why}"),
                (got, want) => panic!("{name}: {got:?}, wanted {want:?}"),
            }
        }
        assert_eq!(KeyAlgorithm::default(), KeyAlgorithm::Rsa);
    }

    #[test]
    fn a_pem_with_keys_in_another_order_is_refused() {
        let ed = generate(KeyAlgorithm::Ed25519).unwrap().private_key_pem;
        for pem in [ed.repeat(2), String::new()] {
            let error = signer("shop.test", "mt1", pem.as_bytes()).err().unwrap();
            assert!(error.to_string().contains("shop.test"), "{error}");
        }
    }
}
