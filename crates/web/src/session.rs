//! Sessions: a random 256-bit token in the `mailtrail_session` cookie (HttpOnly,
//! SameSite=Lax, Secure when the browser uses https, see [`crate::client`]), stored
//! server-side as its SHA-256 so
//! every node shares it, ending after 12 hours without use. [`Viewer`] is the extractor every
//! page takes: the signed-in person, their CSRF token, and the account in view.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use mailtrail_api::AppState;
use mailtrail_domain::Role;
use mailtrail_store::{AccountBrief, AccountId, now_ms};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::WebError;

pub(crate) const COOKIE: &str = "mailtrail_session";
/// A session not used for this long ends.
const IDLE_MS: i64 = 12 * 3600 * 1000;
/// The expiry is pushed forward at most this often, so most pages cost no write.
const TOUCH_EVERY_MS: i64 = 5 * 60 * 1000;

/// 256 random bits, hex-encoded: the cookie's value.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the database keeps instead of the token.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The CSRF token of a session: derived from the cookie's secret, so it needs no storage and
/// cannot be computed from the stored hash.
fn csrf_token(token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"mailtrail web csrf\0");
    hasher.update(token.as_bytes());
    hex::encode(hasher.finalize())
}

/// The value of cookie `name` in the request, if present.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value; `max_age_secs: Some(0)` deletes the cookie. `secure` when the
/// browser reached the service over https ([`crate::client::Client`]).
pub(crate) fn set_cookie(
    secure: bool,
    name: &str,
    value: &str,
    max_age_secs: Option<i64>,
) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age_secs {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Starts a session for a user; returns the cookie's token.
pub(crate) async fn start(state: &AppState, user_id: &str) -> Result<String, WebError> {
    let token = new_token();
    let now = now_ms();
    state.store.expire_web_sessions(now).await?;
    state
        .store
        .create_web_session(&token_hash(&token), user_id, now + IDLE_MS)
        .await?;
    Ok(token)
}

/// The person signed in, and what the page they asked for acts on.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The login's id (their timezone is saved on it).
    pub user_id: String,
    pub email: String,
    pub role: Role,
    /// The account every page of this request shows.
    pub account_id: AccountId,
    /// Every account, for an operator's picker; empty for others.
    pub accounts: Vec<AccountBrief>,
    /// Goes in a hidden field of every form; checked on every POST.
    pub csrf: String,
    /// The session's key in the database (logout deletes it).
    pub token_hash: String,
}

impl Viewer {
    /// Refuses with a 403 page unless the viewer has at least `role`.
    pub(crate) fn require(&self, role: Role, why: &'static str) -> Result<(), WebError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(WebError::Forbidden(why))
        }
    }

    /// The name of the account in view (operators see it in the picker).
    pub(crate) fn account_name(&self) -> Option<&str> {
        self.accounts
            .iter()
            .find(|a| a.id == self.account_id)
            .map(|a| a.name.as_str())
    }
}

/// `next` for the sign-in page: the path and query asked for.
fn asked_path(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let sign_in = || WebError::SignIn {
            next: asked_path(parts),
        };
        let token = cookie(&parts.headers, COOKIE)
            .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(sign_in)?
            .to_owned();
        let hash = token_hash(&token);
        let now = now_ms();
        let session = state
            .store
            .web_session(&hash, now)
            .await?
            .ok_or_else(sign_in)?;
        crate::format::use_zone(&session.timezone);
        if session.expires_at_ms - now < IDLE_MS - TOUCH_EVERY_MS {
            state.store.touch_web_session(&hash, now + IDLE_MS).await?;
        }
        let (account_id, accounts) = match (session.role, session.user_account_id) {
            (Role::Operator, _) => {
                let accounts = state.store.account_briefs().await?;
                let asked = parts.uri.query().and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(name, _)| name == "account")
                        .map(|(_, value)| value.into_owned())
                });
                let known = |id: &str| accounts.iter().any(|a| a.id == id);
                let account = match asked.filter(|a| known(a)) {
                    Some(asked) => {
                        if session.chosen_account_id.as_deref() != Some(asked.as_str()) {
                            state
                                .store
                                .choose_web_account(&hash, &AccountId::from(&asked))
                                .await?;
                        }
                        asked
                    }
                    None => session
                        .chosen_account_id
                        .filter(|c| known(c))
                        .or_else(|| accounts.first().map(|a| a.id.clone()))
                        .ok_or(WebError::NoAccounts)?,
                };
                (account, accounts)
            }
            (_, Some(own)) => (own, Vec::new()),
            (_, None) => {
                return Err(WebError::Internal(format!(
                    "user {} has no account",
                    session.email
                )));
            }
        };
        Ok(Viewer {
            user_id: session.user_id,
            email: session.email,
            role: session.role,
            account_id: account_id.into(),
            accounts,
            csrf: csrf_token(&token),
            token_hash: hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn cookies_are_found_among_others() {
        let h = headers(&[("cookie", "a=1; mailtrail_session=abc"), ("cookie", "b=2")]);
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "mailtrail"), None);
    }

    #[test]
    fn cookies_are_secure_when_asked_and_always_http_only() {
        for secure in [false, true] {
            let value = set_cookie(secure, COOKIE, "t", Some(0));
            let value = value.to_str().unwrap();
            assert!(
                value.starts_with("mailtrail_session=t; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
                "{value}"
            );
            assert_eq!(value.ends_with("; Secure"), secure, "{value}");
        }
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_stored() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_ne!(token_hash(&a), csrf_token(&a));
        assert_eq!(token_hash(&a), token_hash(&a));
    }
}
