//! Sealing secrets at rest: the master key, and values encrypted under it.
//!
//! A sealed value is `enc:v1:<key id>:<base64url(nonce ‖ ciphertext)>`, XChaCha20-Poly1305
//! with a random 192-bit nonce per value (random nonces that size never repeat in practice, so
//! nodes need no shared counter). The associated data is what the value is — its table,
//! column and row — so a sealed value copied into another row, or another column, does not
//! open. The key id (a hash of the key, not the key) says which key a value was sealed
//! under, so a node started with another key gets an error naming both ids instead of a
//! bare "cannot decrypt". A value without the `enc:` prefix is one stored in clear by an
//! older version; the store seals those in place when it opens (see `secrets`).
//!
//! The master key never goes into the database: it lives in a file (created 0600 with 32
//! random bytes on first start) or comes from the environment, so a copy of the database or
//! a backup alone opens nothing.

use std::fmt;
use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use data_encoding::{BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{Result, StoreError, private};

/// The key file's name in the data directory when no other is configured.
pub const KEY_FILE: &str = "secret.key";

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;

/// The 256-bit key every secret column is sealed under.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
    id: String,
}

/// Never the key itself, in logs or panics: only its id.
impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"mailtrail master key id\0")
            .chain_update(bytes)
            .finalize();
        Self {
            bytes,
            id: hex::encode(&digest[..4]),
        }
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// A key written as 64 hex digits or as base64 (standard or URL-safe, padded or not) of
    /// 32 bytes; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let decoded = hex::decode(text).ok().or_else(|| {
            [BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD]
                .iter()
                .find_map(|encoding| encoding.decode(text.as_bytes()).ok())
        });
        decoded
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(Self::from_bytes)
            .ok_or_else(|| {
                StoreError::MasterKey(
                    "a master key is 32 bytes written as 64 hex digits or as base64 \
                     (make one with `openssl rand -hex 32`)"
                        .into(),
                )
            })
    }

    /// A short name for the key (the first 4 bytes of a hash of it), safe to print.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as the key file holds it: hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// The key in `path`, made there (0600, in a 0700 directory if it has to create one) if
    /// the file does not exist. A file others may read is tightened to 0600, and said so; an
    /// existing directory is never changed. Several processes starting at once all end up
    /// with the one key first written.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if !path.exists() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                private::create_missing_dir(parent)?;
            }
            match Self::generate().write_new(path) {
                Ok(key) => {
                    tracing::info!(file = %path.display(), id = key.id(), "created a new master key");
                    return Ok(key);
                }
                // Another process made it first: use that one.
                Err(_) if path.exists() => {}
                Err(e) => return Err(e),
            }
        }
        private::tighten(path, 0o600)?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            StoreError::MasterKey(format!("cannot read the key file {}: {e}", path.display()))
        })?;
        Self::parse(&text).map_err(|e| {
            StoreError::MasterKey(format!(
                "the key file {} is not usable: {e}",
                path.display()
            ))
        })
    }

    /// [`MasterKey::load_or_create`] on the data directory's key file, where it is when no
    /// other is configured. The data directory is Mailtrail's own: it is made, or tightened
    /// to, 0700 first.
    pub fn in_data_dir(data_dir: &Path) -> Result<Self> {
        private::create_dir(data_dir)?;
        Self::load_or_create(&data_dir.join(KEY_FILE))
    }

    /// Writes this key to `path`, which must not exist yet: to a private temporary file first,
    /// flushed to disk, then linked into place, so no reader ever sees half a key and an
    /// existing key is never overwritten.
    pub fn write_new(self, path: &Path) -> Result<Self> {
        let io = |e: std::io::Error| {
            StoreError::MasterKey(format!("cannot write the key file {}: {e}", path.display()))
        };
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        let written = private::create_file(&temporary)
            .and_then(|mut file| {
                file.write_all(format!("{}\n", self.to_hex()).as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| std::fs::hard_link(&temporary, path));
        let _ = std::fs::remove_file(&temporary);
        written.map_err(io)?;
        Ok(self)
    }

    /// `plaintext` sealed as the value of `context` (what it is: table, column and row).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message shorter than 256 GiB");
        let mut body = nonce.to_vec();
        body.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.id, BASE64URL_NOPAD.encode(&body))
    }

    /// The plaintext of `stored`, sealed as the value of `context`.
    pub fn open(&self, context: &str, stored: &str) -> Result<Vec<u8>> {
        let rest = stored.strip_prefix(PREFIX).ok_or_else(|| {
            StoreError::Corrupt(format!("{context} is not sealed (stored in clear)"))
        })?;
        let (id, body) = rest
            .split_once(':')
            .ok_or_else(|| StoreError::Corrupt(format!("{context}: malformed sealed value")))?;
        if id != self.id {
            return Err(StoreError::MasterKey(format!(
                "{context} is sealed under master key {id}, and this node has key {}",
                self.id
            )));
        }
        let body = BASE64URL_NOPAD
            .decode(body.as_bytes())
            .ok()
            .filter(|body| body.len() > NONCE_LEN)
            .ok_or_else(|| StoreError::Corrupt(format!("{context}: malformed sealed value")))?;
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                StoreError::Corrupt(format!(
                    "{context} does not open with its key: altered, or moved from another row"
                ))
            })
    }

    /// [`MasterKey::open`], as the UTF-8 text it was.
    pub fn open_text(&self, context: &str, stored: &str) -> Result<String> {
        String::from_utf8(self.open(context, stored)?)
            .map_err(|_| StoreError::Corrupt(format!("{context} is not text")))
    }

    /// Whether `stored` was sealed under this key (whether or not it opens).
    pub fn sealed_this(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.id)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.bytes).into())
    }
}

/// Whether `stored` is a sealed value (under any key) rather than one stored in clear.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_as_what_it_was_sealed_as() {
        let key = MasterKey::generate();
        let other = MasterKey::generate();
        let sealed = key.seal("webhooks.secret/h1", b"whsec_abc");
        assert!(is_sealed(&sealed) && key.sealed_this(&sealed));
        assert!(!other.sealed_this(&sealed));
        assert_eq!(
            key.open("webhooks.secret/h1", &sealed).unwrap(),
            b"whsec_abc"
        );
        // Each value has its own nonce: the same plaintext never seals the same twice.
        assert_ne!(sealed, key.seal("webhooks.secret/h1", b"whsec_abc"));

        let cases: &[(&str, &MasterKey, &str, &str)] = &[
            ("another row", &key, "webhooks.secret/h2", &sealed),
            (
                "another column",
                &key,
                "sending_domains.private_key/h1",
                &sealed,
            ),
            ("another key", &other, "webhooks.secret/h1", &sealed),
            ("clear text", &key, "webhooks.secret/h1", "whsec_abc"),
            (
                "truncated",
                &key,
                "webhooks.secret/h1",
                &sealed[..sealed.len() - 4],
            ),
            (
                "no body",
                &key,
                "webhooks.secret/h1",
                &format!("enc:v1:{}:", key.id()),
            ),
        ];
        for (case, key, context, stored) in cases {
            assert!(key.open(context, stored).is_err(), "{case} opened");
        }
        let flipped = {
            let mut bytes = sealed.clone().into_bytes();
            let last = bytes.len() - 1;
            bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
            String::from_utf8(bytes).unwrap()
        };
        assert!(key.open("webhooks.secret/h1", &flipped).is_err());
    }

    #[test]
    fn another_keys_value_names_both_keys() {
        let key = MasterKey::generate();
        let other = MasterKey::generate();
        let error = other.open(
            "secrets.value/token",
            &key.seal("secrets.value/token", b"x"),
        );
        let message = error.unwrap_err().to_string();
        assert!(
            message.contains(key.id()) && message.contains(other.id()),
            "{message}"
        );
    }

    #[test]
    fn keys_parse_from_hex_and_base64_of_32_bytes_only() {
        let key = MasterKey::generate();
        let bytes = hex::decode(key.to_hex()).unwrap();
        for text in [
            key.to_hex(),
            format!("  {}\n", key.to_hex().to_uppercase()),
            BASE64.encode(&bytes),
            BASE64URL_NOPAD.encode(&bytes),
        ] {
            assert_eq!(MasterKey::parse(&text).unwrap().id(), key.id(), "{text:?}");
        }
        for text in [
            "",
            "abcd",
            &key.to_hex()[..62],
            &BASE64.encode(&[0u8; 31]),
            "zz",
        ] {
            assert!(MasterKey::parse(text).is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn the_key_file_is_made_once_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new").join(KEY_FILE);
        let made = MasterKey::load_or_create(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700, "made private");
        assert_eq!(MasterKey::load_or_create(&path).unwrap().id(), made.id());
        // A file others could read is tightened; one that is not a key is an error.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        MasterKey::load_or_create(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(
            MasterKey::generate().write_new(&path).is_err(),
            "overwrote a key"
        );
        std::fs::write(&path, "not a key").unwrap();
        let message = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(!format!("{made:?}").contains(&made.to_hex()));
    }

    #[test]
    fn an_operators_directory_is_left_as_it_is_and_the_data_directory_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let chmod = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        // secret_key_file = /etc/mailtrail/secret.key
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        chmod(&etc, 0o755);
        MasterKey::load_or_create(&etc.join(KEY_FILE)).unwrap();
        assert_eq!(mode(&etc), 0o755, "the operator's directory");
        assert_eq!(mode(&etc.join(KEY_FILE)), 0o600);

        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        chmod(&data, 0o755);
        MasterKey::in_data_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700, "the data directory");
    }
}
