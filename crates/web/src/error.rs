//! The UI's one error type: each failure is a page a person can read (with the right
//! status), or, when nobody is signed in, a redirect to the sign-in page. A 5xx hides its
//! cause from the page and logs it.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use mailtrail_store::StoreError;

use crate::format::query;

#[derive(Debug)]
pub(crate) enum WebError {
    /// Nobody is signed in (or the session ended): sign in, then come back to `next`.
    SignIn {
        next: String,
    },
    /// A POST without the session's CSRF token.
    Csrf,
    /// Signed in, but the role does not allow this page.
    Forbidden(&'static str),
    /// Missing, or another account's: the two look the same on purpose.
    NotFound,
    /// The request cannot be acted on; the text says why.
    BadRequest(String),
    /// An operator with no account to look at yet.
    NoAccounts,
    Internal(String),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: &'static str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            WebError::SignIn { next } => {
                return Redirect::to(&format!("/login{}", query(&[("next", &next)])))
                    .into_response();
            }
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The form was not sent from this session. Go back, reload the page and try \
                 again."
                    .to_owned(),
            ),
            WebError::Forbidden(why) => (StatusCode::FORBIDDEN, "Not allowed", why.to_owned()),
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here in this account.".to_owned(),
            ),
            WebError::BadRequest(why) => (StatusCode::BAD_REQUEST, "Cannot do that", why),
            WebError::NoAccounts => (
                StatusCode::NOT_FOUND,
                "No accounts yet",
                "Create one with `mailtrail account create NAME`, then reload.".to_owned(),
            ),
            WebError::Internal(cause) => {
                tracing::error!(%cause, "web page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The error has been logged. Try again in a moment.".to_owned(),
                )
            }
        };
        let page = ErrorPage { title, message };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "error page failed to render");
                status.into_response()
            }
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => WebError::NotFound,
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Internal(format!("template: {e}"))
    }
}
