//! Cross-site request forgery: every form carries a token tied to the session (or, on the
//! sign-in page, to a short-lived cookie), and [`Posted`] refuses a POST without it. The
//! sign-in form's token is a [`FormKey`] one: signed, so issuing it stores nothing.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use hmac::{Hmac, Mac};
use mailtrail_api::AppState;
use rand::RngCore;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use crate::error::WebError;
use crate::session::Viewer;

/// The hidden field every form has.
#[derive(Deserialize)]
struct Token {
    csrf: Option<String>,
}

/// Compares two tokens in time that does not depend on where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// Reads a url-encoded form whose `csrf` field must equal `expected`.
pub(crate) fn checked_form<T: DeserializeOwned>(
    body: &[u8],
    expected: &str,
) -> Result<T, WebError> {
    let token: Token = serde_urlencoded::from_bytes(body).map_err(|_| WebError::Csrf)?;
    if !token.csrf.is_some_and(|t| same(&t, expected)) {
        return Err(WebError::Csrf);
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| WebError::BadRequest(format!("The form could not be read: {e}.")))
}

/// Random bytes that make each sign-in form token unique.
const NONCE_LEN: usize = 16;
/// The token's bytes: the nonce, the expiry (ms, big-endian), the HMAC-SHA256 of both.
const FORM_TOKEN_LEN: usize = NONCE_LEN + 8 + 32;

/// Signs and checks sign-in form tokens, under an installation-wide secret (the same on every
/// node). A token is `nonce ‖ expiry ‖ HMAC(nonce ‖ expiry)`, hex-encoded: a `GET /login`
/// writes nothing, however often it is asked, and a client cannot make one up or move its
/// expiry. That a token works once is the store's part: it keeps the nonces of spent tokens
/// until they expire (`Store::spend_login_form`).
pub(crate) struct FormKey(Hmac<Sha256>);

impl std::fmt::Debug for FormKey {
    /// Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormKey(…)")
    }
}

/// A sign-in form token this key signed, not expired.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FormToken {
    /// What the store records once it is spent (hex).
    pub nonce: String,
    pub expires_at_ms: i64,
}

impl FormKey {
    pub(crate) fn new(secret: &[u8]) -> Self {
        FormKey(Hmac::new_from_slice(secret).expect("HMAC takes any key length"))
    }

    fn mac(&self, signed: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(b"mailtrail sign-in form\0");
        mac.update(signed);
        mac
    }

    /// A new token, usable until `expires_at_ms`.
    pub(crate) fn issue(&self, expires_at_ms: i64) -> String {
        let mut token = [0u8; FORM_TOKEN_LEN];
        rand::rngs::OsRng.fill_bytes(&mut token[..NONCE_LEN]);
        token[NONCE_LEN..NONCE_LEN + 8].copy_from_slice(&expires_at_ms.to_be_bytes());
        let mac = self.mac(&token[..NONCE_LEN + 8]).finalize().into_bytes();
        token[NONCE_LEN + 8..].copy_from_slice(&mac);
        hex::encode(token)
    }

    /// What `token` says, if this key signed it and it has not expired at `now_ms`.
    pub(crate) fn check(&self, token: &str, now_ms: i64) -> Option<FormToken> {
        if token.len() != 2 * FORM_TOKEN_LEN {
            return None;
        }
        let bytes = hex::decode(token).ok()?;
        let (signed, mac) = bytes.split_at(NONCE_LEN + 8);
        // Constant-time comparison through the MAC crate.
        self.mac(signed).verify_slice(mac).ok()?;
        let expires_at_ms = i64::from_be_bytes(signed[NONCE_LEN..].try_into().ok()?);
        (expires_at_ms > now_ms).then(|| FormToken {
            nonce: hex::encode(&signed[..NONCE_LEN]),
            expires_at_ms,
        })
    }
}

/// A form POSTed by a signed-in person from one of the session's own pages.
pub(crate) struct Posted<T> {
    pub viewer: Viewer,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, WebError> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| WebError::BadRequest(e.body_text()))?;
        let form = checked_form(&body, &viewer.csrf)?;
        Ok(Posted { viewer, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Form {
        reason: String,
    }

    #[test]
    fn sign_in_form_tokens_work_until_they_expire_and_only_as_signed() {
        let key = FormKey::new(b"one installation");
        let token = key.issue(5_000);
        let checked = key.check(&token, 4_999).expect("a fresh token");
        assert_eq!(checked.expires_at_ms, 5_000);
        assert_eq!(checked.nonce, token[..2 * NONCE_LEN]);
        assert_ne!(key.issue(5_000), token, "each token is new");

        // The expiry moved, one bit of the MAC flipped, another key, cut, not hex.
        let later = format!("{}{:016x}{}", &token[..32], 9_000, &token[48..]);
        let other = if token.ends_with('0') { "1" } else { "0" };
        let flipped = format!("{}{other}", &token[..token.len() - 1]);
        for (why, key, token, now) in [
            ("expired", &key, token.as_str(), 5_000),
            ("expiry moved", &key, later.as_str(), 0),
            ("MAC altered", &key, flipped.as_str(), 0),
            ("another key", &FormKey::new(b"another"), token.as_str(), 0),
            ("cut", &key, &token[..token.len() - 2], 0),
            ("not hex", &key, &"zz".repeat(FORM_TOKEN_LEN), 0),
            ("empty", &key, "", 0),
        ] {
            assert_eq!(key.check(token, now), None, "{why}");
        }
    }

    #[test]
    fn forms_need_the_expected_token() {
        let ok: Form = checked_form(b"csrf=abc&reason=moved", "abc").unwrap();
        assert_eq!(ok.reason, "moved");
        for body in [
            &b"reason=moved"[..],
            b"csrf=abd&reason=moved",
            b"csrf=ab&reason=x",
        ] {
            assert!(matches!(
                checked_form::<Form>(body, "abc"),
                Err(WebError::Csrf)
            ));
        }
    }
}
