//! The API's one error type. Every error leaves as `application/problem+json` (RFC 9457)
//! with a message a person can act on; a 5xx hides its cause from the client and logs it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mailtrail_store::StoreError;
use serde::Serialize;

/// One invalid field of a request, for `errors` in the problem document.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub enum ApiError {
    /// No key, or a key Mailtrail does not know.
    Unauthorized,
    /// The caller's role may not do this.
    Forbidden(String),
    /// Missing, or belonging to another account: the two are indistinguishable on purpose.
    NotFound,
    Conflict(String),
    BadRequest(String),
    /// The request is well-formed but some fields are not acceptable.
    Invalid(Vec<FieldError>),
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

impl ApiError {
    /// The HTTP status, the message for a person, and the invalid fields.
    fn parts(self) -> (StatusCode, String, Vec<FieldError>) {
        match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "send a valid API key as 'Authorization: Bearer KEY'".to_owned(),
                vec![],
            ),
            ApiError::Forbidden(why) => (StatusCode::FORBIDDEN, why, vec![]),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "no such resource in this account".to_owned(),
                vec![],
            ),
            ApiError::Conflict(why) => (StatusCode::CONFLICT, why, vec![]),
            ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, why, vec![]),
            ApiError::Invalid(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                errors,
            ),
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "an internal error occurred; it has been logged".to_owned(),
                    vec![],
                )
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    /// The problem document's `detail`, for callers that are not HTTP (the command line).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (_, detail, _) = match self {
            ApiError::Internal(cause) => return f.write_str(cause),
            other => other.clone().parts(),
        };
        f.write_str(&detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail, errors) = self.parts();
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(why) => ApiError::Conflict(why),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Unknown paths answer in the same format as everything else.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
