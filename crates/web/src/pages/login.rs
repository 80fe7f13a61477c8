//! `GET/POST /login` and `POST /logout`. A wrong email and a wrong password get the same
//! answer (401) after the same work: an unknown email is checked against a dummy hash.
//! The sign-in form's CSRF token is a short-lived cookie of its own (double submit), since
//! there is no session yet.

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use mailtrail_api::AppState;
use serde::Deserialize;

use crate::csrf::{Posted, checked_form};
use crate::error::WebError;
use crate::pages::render;
use crate::session::{self, COOKIE, cookie, set_cookie};

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

/// Where to go after signing in: a path of this site only (never `//host` or a URL).
fn local_path(next: Option<&str>) -> &str {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n.contains('\\')
            && !n.chars().any(char::is_control)
    })
    .unwrap_or("/leads")
}

pub(crate) async fn form(
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Result<Response, WebError> {
    let csrf = session::new_token();
    let page = LoginPage {
        title: "Sign in",
        csrf: csrf.clone(),
        next: local_path(query.next.as_deref()).to_owned(),
        email: String::new(),
        failed: false,
    };
    let cookie = set_cookie(&headers, LOGIN_COOKIE, &csrf, Some(LOGIN_FORM_SECS));
    Ok(([(header::SET_COOKIE, cookie)], render(&page)?).into_response())
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
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let expected = cookie(&headers, LOGIN_COOKIE).ok_or(WebError::Csrf)?;
    let form: LoginForm = checked_form(&body, expected)?;
    let user = state.store.web_user(&form.email).await?;
    let hash = user
        .as_ref()
        .map_or(DUMMY_HASH, |u| u.password_hash.as_str())
        .to_owned();
    let password = form.password;
    // Argon2 takes tens of milliseconds of CPU: keep it off the async workers.
    let matches = tokio::task::spawn_blocking(move || verify(&password, &hash))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let Some(user) = user.filter(|_| matches) else {
        let page = LoginPage {
            title: "Sign in",
            csrf: expected.to_owned(),
            next: local_path(form.next.as_deref()).to_owned(),
            email: form.email,
            failed: true,
        };
        return Ok((StatusCode::UNAUTHORIZED, render(&page)?).into_response());
    };
    let token = session::start(&state, &user.id).await?;
    let mut response = Redirect::to(local_path(form.next.as_deref())).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(&headers, COOKIE, &token, None),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(&headers, LOGIN_COOKIE, "", Some(0)),
    );
    Ok(response)
}

/// Logout carries nothing but its CSRF token.
#[derive(Deserialize)]
pub(crate) struct Nothing {}

pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    posted: Posted<Nothing>,
) -> Result<Response, WebError> {
    state
        .store
        .delete_web_session(&posted.viewer.token_hash)
        .await?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, COOKIE, "", Some(0)),
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
            (Some("//evil.test/x"), "/leads"),
            (Some("/\\evil.test"), "/leads"),
            (Some("https://evil.test"), "/leads"),
            (Some("/ok\r\nSet-Cookie: x"), "/leads"),
            (None, "/leads"),
        ] {
            assert_eq!(local_path(next), to, "{next:?}");
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
