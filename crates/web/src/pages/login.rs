//! `GET/POST /login` and `POST /logout`. A wrong email and a wrong password get the same
//! answer (401) after the same work: an unknown email is checked against a dummy hash.
//! Failed sign-ins are throttled per login and per client address ([`crate::throttle`]): a
//! locked login gets 429 with `Retry-After` whether it exists or not, without a password
//! check. The sign-in form's CSRF token is signed by the server ([`crate::csrf::FormKey`], so
//! showing the form writes nothing) and works once (the store keeps it once spent, until it
//! expires); it is also a short-lived cookie of its own (double submit), since there is no
//! session yet; every answer to a POST that shows the form again carries a fresh one.

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use mailtrail_api::AppState;
use mailtrail_store::login_throttle::{Count, Counted};
use mailtrail_store::now_ms;
use serde::Deserialize;

use crate::client::Client;
use crate::csrf::{Posted, checked_form};
use crate::error::WebError;
use crate::pages::render;
use crate::session::{self, COOKIE, cookie, set_cookie};
use crate::throttle::{address_key, login_key, retry_after_secs};

/// Holds the sign-in form's CSRF token.
const LOGIN_COOKIE: &str = "mailtrail_login";
/// How long a sign-in form stays usable.
const LOGIN_FORM_SECS: i64 = 3600;
/// A well-formed argon2id hash (default parameters) that no known password matches: verified
/// when the email is unknown, so that answer takes as long as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bWFpbHRyYWlsZHVtbXk$3qbmfZ5SlDLDXrnEoV3Msg8ezFm0NMk1h9k1XDwx3ls";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    title: &'static str,
    csrf: String,
    next: String,
    email: String,
    failed: bool,
    /// "30 seconds": how long sign-in is locked, when it is.
    locked: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// Where to go after signing in: a path of this site only (never `//host` or a URL); the
/// overview unless the sign-in was asked for on the way to another page.
fn local_path(next: Option<&str>) -> &str {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n.contains('\\')
            && !n.chars().any(char::is_control)
    })
    .unwrap_or("/")
}

/// A wait as the page says it: "30 seconds", "2 minutes" (rounded up).
fn wait_text(secs: i64) -> String {
    match secs {
        1 => "1 second".to_owned(),
        ..120 => format!("{secs} seconds"),
        _ => format!("{} minutes", (secs + 59) / 60),
    }
}

/// The sign-in page with a newly issued form token, answered with `status`.
async fn sign_in_page(
    state: &AppState,
    client: &Client,
    status: StatusCode,
    page: LoginPage,
) -> Result<Response, WebError> {
    let key = client.site.form_key(&state.store).await?;
    let csrf = key.issue(now_ms() + LOGIN_FORM_SECS * 1000);
    let page = LoginPage { csrf, ..page };
    let cookie = set_cookie(
        client.secure,
        LOGIN_COOKIE,
        &page.csrf,
        Some(LOGIN_FORM_SECS),
    );
    Ok((status, [(header::SET_COOKIE, cookie)], render(&page)?).into_response())
}

pub(crate) async fn form(
    State(state): State<AppState>,
    client: Client,
    Query(query): Query<NextQuery>,
) -> Result<Response, WebError> {
    let page = LoginPage {
        title: "Sign in",
        csrf: String::new(),
        next: local_path(query.next.as_deref()).to_owned(),
        email: String::new(),
        failed: false,
        locked: None,
    };
    sign_in_page(&state, &client, StatusCode::OK, page).await
}

/// Whether `password` matches the PHC string `hash`; a malformed hash matches nothing.
fn verify(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "a stored password hash is malformed");
            false
        }
    }
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let expected = cookie(&headers, LOGIN_COOKIE).ok_or(WebError::Csrf)?;
    let form: LoginForm = checked_form(&body, expected)?;
    let now = now_ms();
    let key = client.site.form_key(&state.store).await?;
    let token = key.check(expected, now).ok_or(WebError::Csrf)?;
    if !state
        .store
        .spend_login_form(&token.nonce, token.expires_at_ms, now)
        .await?
    {
        return Err(WebError::Csrf);
    }
    let login = login_key(&form.email);
    let address = client.address.map(address_key);
    let limits = client.site.limits;
    let mut counted = vec![(login.as_str(), &limits.login)];
    counted.extend(address.as_deref().map(|key| (key, &limits.address)));
    let keys: Vec<&str> = counted.iter().map(|&(key, _)| key).collect();
    let again = |locked: Option<String>| LoginPage {
        title: "Sign in",
        csrf: String::new(),
        next: local_path(form.next.as_deref()).to_owned(),
        email: form.email.clone(),
        failed: locked.is_none(),
        locked,
    };
    if let Some(until) = state.store.login_locked_until(&keys, now).await? {
        return locked(&state, &client, until, now, again).await;
    }
    // Counted as a failure of the login and of the address before the password is checked,
    // and taken back if it was right: guesses sent together, for one login or spread over
    // many, cannot all slip in before the lock, nor all cost a password check. Taking it back
    // keeps an office's own sign-ins from locking its address.
    let counts = match state.store.count_login_attempt(&counted, now).await? {
        Counted::AlreadyLocked(until) => return locked(&state, &client, until, now, again).await,
        Counted::Counted(counts) => counts,
    };

    let user = state.store.web_user(&form.email).await?;
    let hash = user
        .as_ref()
        .map_or(DUMMY_HASH, |u| u.password_hash.as_str())
        .to_owned();
    let password = form.password.clone();
    // Argon2 takes tens of milliseconds of CPU: keep it off the async workers.
    let matches = tokio::task::spawn_blocking(move || verify(&password, &hash))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let Some(user) = user.filter(|_| matches) else {
        for (count, by) in counts.iter().zip(["login", "address"]) {
            if let Some(until) = count.lock() {
                audit(&form.email, &client, by, until, now);
            }
        }
        return match counts.iter().filter_map(Count::lock).max() {
            Some(until) => locked(&state, &client, until, now, again).await,
            None => sign_in_page(&state, &client, StatusCode::UNAUTHORIZED, again(None)).await,
        };
    };
    state.store.clear_login_failures(&login).await?;
    if let Some(address) = counts.get(1) {
        state.store.uncount_login_attempt(address).await?;
    }
    let token = session::start(&state, &user.id).await?;
    let mut response = Redirect::to(local_path(form.next.as_deref())).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(client.secure, COOKIE, &token, None),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(client.secure, LOGIN_COOKIE, "", Some(0)),
    );
    Ok(response)
}

/// The audit line of a lock starting on key `by` (`login` or `address`). The login is
/// logged as typed (escaped): it may be no account's.
fn audit(email: &str, client: &Client, by: &str, until: i64, now: i64) {
    tracing::warn!(
        target: "audit",
        login = ?email,
        client = ?client.address,
        by,
        locked_secs = retry_after_secs(until, now),
        "sign-in locked after repeated failures"
    );
}

/// The answer while sign-in is locked until `until` (ms): 429, `Retry-After`, and the form
/// again with a message saying how long to wait.
async fn locked(
    state: &AppState,
    client: &Client,
    until: i64,
    now: i64,
    page: impl FnOnce(Option<String>) -> LoginPage,
) -> Result<Response, WebError> {
    let secs = retry_after_secs(until, now);
    let page = page(Some(wait_text(secs)));
    let mut response = sign_in_page(state, client, StatusCode::TOO_MANY_REQUESTS, page).await?;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    Ok(response)
}

/// Logout carries nothing but its CSRF token.
#[derive(Deserialize)]
pub(crate) struct Nothing {}

pub(crate) async fn logout(
    State(state): State<AppState>,
    client: Client,
    posted: Posted<Nothing>,
) -> Result<Response, WebError> {
    state
        .store
        .delete_web_session(&posted.viewer.token_hash)
        .await?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(client.secure, COOKIE, "", Some(0)),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        for (next, to) in [
            (
                Some("/reports/emails?stage=failed"),
                "/reports/emails?stage=failed",
            ),
            (Some("//evil.test/x"), "/"),
            (Some("/\\evil.test"), "/"),
            (Some("https://evil.test"), "/"),
            (Some("/ok\r\nSet-Cookie: x"), "/"),
            (None, "/"),
        ] {
            assert_eq!(local_path(next), to, "{next:?}");
        }
    }

    #[test]
    fn waits_read_as_seconds_then_minutes() {
        for (secs, text) in [
            (1, "1 second"),
            (30, "30 seconds"),
            (119, "119 seconds"),
            (120, "2 minutes"),
            (121, "3 minutes"),
            (900, "15 minutes"),
        ] {
            assert_eq!(wait_text(secs), text);
        }
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        let default = argon2::Params::default();
        let params = argon2::Params::try_from(&parsed).unwrap();
        assert_eq!(parsed.algorithm, argon2::Algorithm::Argon2id.ident());
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (default.m_cost(), default.t_cost(), default.p_cost())
        );
        assert!(!verify("", DUMMY_HASH));
    }
}
