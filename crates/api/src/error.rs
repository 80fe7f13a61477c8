//! The API's one error type. Every error leaves as `application/problem+json` (RFC 9457)
//! with a message a person can act on; a 5xx hides its cause from the client and logs it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mailtrail_store::StoreError;
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// One invalid field of a request, for `errors` in the problem document.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct FieldError {
    /// The field, query parameter or header, e.g. `email` or `fields.city`.
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
    /// The body is over the size limit.
    TooLarge,
    /// A part of the body is over its own limit, which the message names.
    TooLargePart(String),
    /// The database cannot take the request now (unreachable, restarting, disk full):
    /// nothing was accepted, and the client should try again.
    Unavailable(String),
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

/// An error, as `application/problem+json` (RFC 9457).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of error it is.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    pub status: u16,
    /// What went wrong, for a person to act on.
    pub detail: String,
    /// The invalid fields (422 only); absent otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub errors: Vec<FieldError>,
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
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is larger than the 64 MiB limit".to_owned(),
                vec![],
            ),
            ApiError::TooLargePart(why) => (StatusCode::PAYLOAD_TOO_LARGE, why, vec![]),
            ApiError::Invalid(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                errors,
            ),
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "the database is unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable right now; nothing was accepted or changed — \
                     try again in a few seconds"
                        .to_owned(),
                    vec![],
                )
            }
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
            ApiError::Internal(cause) | ApiError::Unavailable(cause) => return f.write_str(cause),
            other => other.clone().parts(),
        };
        f.write_str(&detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail, errors) = self.parts();
        problem(status, detail, errors)
    }
}

/// A problem document with this status.
fn problem(status: StatusCode, detail: String, errors: Vec<FieldError>) -> Response {
    let body = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error"),
        status: status.as_u16(),
        detail,
        errors,
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// An error axum or tower answered by itself, in plain text or with no body, read so that a
/// service can answer it in its own form (a problem document, an HTML page).
pub struct FrameworkError {
    pub status: StatusCode,
    /// What its body said, trimmed: empty when it had none.
    pub said: String,
    /// The methods the path takes, on a 405.
    allow: Option<HeaderValue>,
}

impl FrameworkError {
    /// Reads `response` when it is such an error; any other (a success, a JSON or HTML
    /// answer) comes back untouched as `Err`.
    pub async fn read(response: Response) -> Result<FrameworkError, Response> {
        let status = response.status();
        let plain = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
        if !(status.is_client_error() || status.is_server_error()) || !plain {
            return Err(response);
        }
        let (parts, body) = response.into_parts();
        let said = axum::body::to_bytes(body, 4096)
            .await
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        Ok(FrameworkError {
            status,
            said,
            allow: parts.headers.get(header::ALLOW).cloned(),
        })
    }

    /// `answer`, keeping the error's `Allow` header.
    pub fn keep_allow(self, mut answer: Response) -> Response {
        if let Some(allow) = self.allow {
            answer.headers_mut().insert(header::ALLOW, allow);
        }
        answer
    }
}

/// The errors axum and tower answer by themselves, in plain text or with no body (a method
/// the path does not take, a body over the limit, a path segment that is not UTF-8), leave as
/// problem documents like every other error. JSON answers (`/healthz`'s 503) pass untouched.
pub async fn framework_problems(response: Response) -> Response {
    let error = match FrameworkError::read(response).await {
        Ok(error) => error,
        Err(untouched) => return untouched,
    };
    if error.status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge.into_response();
    }
    let detail = match error.status {
        StatusCode::METHOD_NOT_ALLOWED => "this path does not take that method".to_owned(),
        _ if !error.said.is_empty() => error.said.clone(),
        s => s.canonical_reason().unwrap_or("Error").to_owned(),
    };
    let answer = problem(error.status, detail, vec![]);
    error.keep_allow(answer)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(why) => ApiError::Conflict(why),
            other if other.is_unavailable() => ApiError::Unavailable(other.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// For the OpenAPI document: the errors of every operation that takes a key.
#[derive(IntoResponses)]
pub enum KeyedErrors {
    /// The query string is malformed, or an operator key did not name the account
    /// (`?account=ID`).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No key, or a key Mailtrail does not know.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Not in this account: another account's ids, and an account key naming another account
    /// in `?account=`, answer exactly like missing ones.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// The database cannot take requests right now: nothing was accepted or changed; try
    /// again after `Retry-After` seconds.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// For the OpenAPI document: the errors of an operation that takes a JSON body.
#[derive(IntoResponses)]
pub enum BodyErrors {
    /// The body is not JSON, or not sent as `application/json`.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// The body is over the 64 MiB limit (or the attachments over 10 MiB).
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// Some fields are not acceptable: `errors` names each.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem),
}

/// For the OpenAPI document: the errors of an operation that reads query parameters.
#[derive(IntoResponses)]
pub enum QueryErrors {
    /// A parameter is not acceptable: `errors` names it.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem),
}

/// For the OpenAPI document: the error of an operation that needs more than the user role.
#[derive(IntoResponses)]
pub enum RoleErrors {
    /// The key's role may not do this.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
}

/// Unknown paths answer in the same format as everything else.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
