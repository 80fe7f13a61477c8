//! The UI's one error type: each failure is a page a person can read (with the right
//! status), or, when nobody is signed in, a redirect to the sign-in page. A 5xx hides its
//! cause from the page and logs it.
//!
//! The errors axum answers by itself on the UI's routes (a GET on a form's POST route, a body
//! it cannot read) become the same pages ([`framework_pages`]), and so does an unknown path
//! ([`not_found`], the whole service's fallback) unless it belongs to the API: paths under
//! `/v1/` and the tracking paths (`/o/`, `/c/`, `/u/`) keep the API's problem+json.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use mailtrail_api::error::{ApiError, FrameworkError};
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
    /// The database cannot take the request now: nothing was changed; try again shortly.
    Unavailable(String),
    Internal(String),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: &'static str,
    message: String,
}

/// A page saying what went wrong, with this status.
fn page(status: StatusCode, title: &'static str, message: String) -> Response {
    match (ErrorPage { title, message }).render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "error page failed to render");
            status.into_response()
        }
    }
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
            WebError::Unavailable(cause) => {
                tracing::warn!(%cause, "the database is unavailable");
                let mut response = page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    "The database cannot be reached right now, so nothing was saved or \
                     changed. Try again in a few seconds."
                        .to_owned(),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return response;
            }
            WebError::Internal(cause) => {
                tracing::error!(%cause, "web page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The error has been logged. Try again in a moment.".to_owned(),
                )
            }
        };
        page(status, title, message)
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => WebError::NotFound,
            other if other.is_unavailable() => WebError::Unavailable(other.to_string()),
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        WebError::Internal(format!("template: {e}"))
    }
}

/// Whether an unknown path is the API's to answer (problem+json) rather than the UI's.
fn is_api_path(path: &str) -> bool {
    path == "/v1"
        || ["/v1/", "/o/", "/c/", "/u/"]
            .iter()
            .any(|p| path.starts_with(p))
}

/// The service's fallback: an unknown path under the API answers the API's problem+json 404,
/// any other an HTML page naming the path.
pub async fn not_found(uri: Uri) -> Response {
    if is_api_path(uri.path()) {
        return ApiError::NotFound.into_response();
    }
    let response = page(
        StatusCode::NOT_FOUND,
        "Page not found",
        format!(
            "There is no page at {}. Check the address, or go back to the start page.",
            uri.path()
        ),
    );
    crate::assets::security_headers(response).await
}

/// The errors axum answers by itself on the UI's routes, in plain text or with no body,
/// answered as pages instead (keeping `Allow` and the status). Pages pass untouched.
pub(crate) async fn framework_pages(response: Response) -> Response {
    let error = match FrameworkError::read(response).await {
        Ok(error) => error,
        Err(untouched) => return untouched,
    };
    let said = &error.said;
    let (title, message) = match error.status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "Not a page",
            "This address takes a form, not a visit: go back and use the page's button.".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "Too large",
            "What was sent is larger than this form takes.".to_owned(),
        ),
        s if s.is_server_error() => (
            "Something went wrong",
            "The error has been logged. Try again in a moment.".to_owned(),
        ),
        _ if said.is_empty() => (
            "Cannot do that",
            "The request could not be read. Go back, reload the page and try again.".to_owned(),
        ),
        _ => (
            "Cannot do that",
            format!(
                "The request could not be read ({said}). Go back, reload the page and try again."
            ),
        ),
    };
    let answer = page(error.status, title, message);
    error.keep_allow(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_and_tracking_paths_keep_the_api_answer() {
        for path in ["/v1", "/v1/", "/v1/nope", "/o/x.gif", "/c/t", "/u/t"] {
            assert!(is_api_path(path), "{path}");
        }
        for path in ["/", "/leadz", "/v1x", "/v10/a", "/users/1", "/open"] {
            assert!(!is_api_path(path), "{path}");
        }
    }
}
