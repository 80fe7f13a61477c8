//! The HTTP access log: one info line per request with its method, path, status and duration.
//!
//! The path logged is the route's template (`/v1/emails/{id}`, `/t/o/{token}`) when a route
//! matched, so the tokens in tracking and unsubscribe links never reach the log, and the raw
//! path only for a request no route matched. The query string is never logged: it can hold
//! tokens too.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Logs `request` once it is answered.
pub async fn log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = match request.extensions().get::<MatchedPath>() {
        Some(route) => route.as_str().to_owned(),
        None => request.uri().path().to_owned(),
    };
    let response = next.run(request).await;
    tracing::info!(
        method = %method,
        path,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_millis() as u64,
        "http request"
    );
    response
}
