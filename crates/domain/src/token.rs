//! Signed, compact, URL- and address-safe tokens that tie what comes back (a bounce, a reply,
//! an open, a click) to the email it belongs to. Anyone can present a token; only Mailtrail
//! can make one, so a forged or altered token is recognised and changes nothing.
//!
//! Layout before encoding: purpose (1 byte) ‖ email id (16 bytes) ‖ link index (2 bytes, clicks
//! only) ‖ HMAC-SHA256 truncated to 10 bytes. Encoded as lower-case base32 without padding, so
//! it survives mail systems that change the case of local parts.

use data_encoding::{BASE32_NOPAD, HEXLOWER_PERMISSIVE};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const MAC_LEN: usize = 10;

/// What a token may be used for: a token made for one purpose is refused for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The VERP envelope sender, the reply address and the message header.
    Message,
    Open,
    Click,
    Unsubscribe,
}

impl Purpose {
    fn byte(self) -> u8 {
        match self {
            Purpose::Message => b'm',
            Purpose::Open => b'o',
            Purpose::Click => b'c',
            Purpose::Unsubscribe => b'u',
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        [
            Purpose::Message,
            Purpose::Open,
            Purpose::Click,
            Purpose::Unsubscribe,
        ]
        .into_iter()
        .find(|p| p.byte() == b)
    }
}

/// A verified token's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub purpose: Purpose,
    /// The email's id in its usual hyphenated form.
    pub email_id: String,
    /// Which link of the email, for click tokens.
    pub link: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not well-formed")]
    Malformed,
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token was made for another use")]
    WrongPurpose,
}

/// The secret tokens are signed with. Shared by every node of an installation. Kept as the
/// HMAC already keyed with it: each token then costs a copy of that state, not the two hash
/// blocks of keying (the open pixel verifies one per request).
#[derive(Clone)]
pub struct TokenKey {
    keyed: HmacSha256,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

fn uuid_bytes(id: &str) -> Option<[u8; 16]> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    let bytes = HEXLOWER_PERMISSIVE.decode(hex.as_bytes()).ok()?;
    bytes.try_into().ok()
}

fn uuid_string(b: &[u8]) -> String {
    let hex = data_encoding::HEXLOWER.encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl TokenKey {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            keyed: HmacSha256::new_from_slice(secret).expect("HMAC takes any key length"),
        }
    }

    fn mac(&self, payload: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        full[..MAC_LEN]
            .try_into()
            .expect("SHA-256 is longer than the MAC")
    }

    /// Makes a token, or `None` when `email_id` is not a UUID.
    pub fn sign(&self, purpose: Purpose, email_id: &str, link: Option<u16>) -> Option<String> {
        let mut payload = vec![purpose.byte()];
        payload.extend_from_slice(&uuid_bytes(email_id)?);
        if let Some(link) = link {
            payload.extend_from_slice(&link.to_be_bytes());
        }
        let mac = self.mac(&payload);
        payload.extend_from_slice(&mac);
        Some(BASE32_NOPAD.encode(&payload).to_ascii_lowercase())
    }

    /// Checks a token and returns what it says, if it was made by this key for `purpose`.
    pub fn verify(&self, token: &str, purpose: Purpose) -> Result<Token, TokenError> {
        if token.len() > 64 {
            return Err(TokenError::Malformed);
        }
        let bytes = BASE32_NOPAD
            .decode(token.to_ascii_uppercase().as_bytes())
            .map_err(|_| TokenError::Malformed)?;
        let (payload, mac) = match bytes.len() {
            n if n == 1 + 16 + MAC_LEN || n == 1 + 16 + 2 + MAC_LEN => bytes.split_at(n - MAC_LEN),
            _ => return Err(TokenError::Malformed),
        };
        // Constant-time comparison through the MAC crate.
        let mut check = self.keyed.clone();
        check.update(payload);
        check
            .verify_truncated_left(mac)
            .map_err(|_| TokenError::BadSignature)?;
        let found = Purpose::from_byte(payload[0]).ok_or(TokenError::Malformed)?;
        if found != purpose {
            return Err(TokenError::WrongPurpose);
        }
        let link = (payload.len() == 19).then(|| u16::from_be_bytes([payload[17], payload[18]]));
        Ok(Token {
            purpose,
            email_id: uuid_string(&payload[1..17]),
            link,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b";

    #[test]
    fn a_token_round_trips_and_is_short_and_safe() {
        let key = TokenKey::new(b"secret");
        let token = key.sign(Purpose::Message, ID, None).unwrap();
        assert!(token.len() <= 44, "{token}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        let found = key.verify(&token, Purpose::Message).unwrap();
        assert_eq!((found.email_id.as_str(), found.link), (ID, None));
        // Mail systems may upper-case a local part.
        assert!(key.verify(&token.to_uppercase(), Purpose::Message).is_ok());

        let click = key.sign(Purpose::Click, ID, Some(7)).unwrap();
        assert_eq!(key.verify(&click, Purpose::Click).unwrap().link, Some(7));
    }

    #[test]
    fn forged_altered_truncated_and_misused_tokens_are_refused() {
        let key = TokenKey::new(b"secret");
        let token = key.sign(Purpose::Open, ID, None).unwrap();
        let other_key = TokenKey::new(b"other")
            .sign(Purpose::Open, ID, None)
            .unwrap();
        assert_eq!(
            key.verify(&other_key, Purpose::Open),
            Err(TokenError::BadSignature)
        );

        let mut altered = token.clone().into_bytes();
        altered[5] = if altered[5] == b'a' { b'b' } else { b'a' };
        assert!(
            key.verify(std::str::from_utf8(&altered).unwrap(), Purpose::Open)
                .is_err()
        );

        assert!(
            key.verify(&token[..token.len() - 3], Purpose::Open)
                .is_err()
        );
        assert_eq!(
            key.verify(&token, Purpose::Click),
            Err(TokenError::WrongPurpose)
        );
        for junk in ["", "!!!", "a", &"a".repeat(200), "../../etc/passwd"] {
            assert!(key.verify(junk, Purpose::Open).is_err(), "{junk}");
        }
        assert_eq!(key.sign(Purpose::Open, "not-a-uuid", None), None);
    }
}
