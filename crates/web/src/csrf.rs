//! Cross-site request forgery: every form carries a token tied to the session (or, on the
//! sign-in page, to a short-lived cookie), and [`Posted`] refuses a POST without it.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use mailtrail_api::AppState;
use serde::Deserialize;
use serde::de::DeserializeOwned;

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
