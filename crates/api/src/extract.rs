//! JSON body and query string extractors whose rejections are problem documents: a
//! malformed or mistyped request says which field is wrong instead of axum's plain-text
//! default.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::invalid(
                "body",
                data_error_message(&e.body_text()),
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::TooLarge)
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::BadRequest(
                "send the body as JSON with 'Content-Type: application/json'".into(),
            )),
            Err(e) => Err(ApiError::BadRequest(format!(
                "the body is not valid JSON: {}",
                e.body_text()
            ))),
        }
    }
}

/// serde's message without axum's generic prefix.
fn data_error_message(text: &str) -> String {
    text.trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        .to_owned()
}

/// Parses a JSON body already read as bytes (when the raw bytes are needed too, as for
/// idempotency keys), with the same problem documents as [`ApiJson`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::invalid(&field, inner.to_string())
        } else {
            ApiError::BadRequest(format!("the body is not valid JSON: {inner}"))
        }
    })
}

/// The query string as `T`; a parameter of the wrong type is a 422 naming it.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(value)| ApiQuery(value))
            .map_err(|e| {
                let text = e.body_text();
                ApiError::invalid(
                    "query",
                    text.trim_start_matches("Failed to deserialize query string: "),
                )
            })
    }
}
