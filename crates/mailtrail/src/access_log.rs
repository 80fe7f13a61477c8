//! The HTTP access log: one info line per request with its method, path, status and duration,
//! and the request's duration in the `mailtrail_http_request_duration_seconds` histogram.
//!
//! The path logged is the route's template (`/v1/emails/{id}`, `/t/o/{token}`) when a route
//! matched, so the tokens in tracking and unsubscribe links never reach the log, and the raw
//! path only for a request no route matched. The query string is never logged: it can hold
//! tokens too. The histogram's labels are the method and the route template: a request no
//! route matched is counted under `route="unmatched"` and an unknown method under
//! `method="other"`, so no client can add series by inventing paths or methods.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds, in seconds, of the request duration buckets. A tracking hit or an API read
/// answers in about a millisecond; a write waits for its commit (the disk's flush, a few
/// milliseconds); a report over a large account or a bulk import takes up to seconds. The
/// last bound, 10 s, is about where an HTTP client gives up.
const DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What the route label says for a request no route matched.
const UNMATCHED: &str = "unmatched";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

/// The request duration histogram, by method and route template; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Requests(Family<RouteLabels, Histogram>);

impl Default for Requests {
    fn default() -> Self {
        Requests(Family::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        }))
    }
}

impl Requests {
    /// Adds the histogram to `registry`, for `/metrics`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "http_request_duration",
            "HTTP requests answered by this node, by method and route template",
            Unit::Seconds,
            self.0.clone(),
        );
    }
}

/// The method as a label: one of the standard ones, else `other`.
fn method_label(method: &Method) -> &'static str {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ]
    .iter()
    .find(|known| *known == method)
    .map_or("other", |known| known.as_str())
}

/// Logs `request` once it is answered, and counts its duration.
pub async fn log(State(requests): State<Requests>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|route| route.as_str().to_owned());
    let path = route
        .clone()
        .unwrap_or_else(|| request.uri().path().to_owned());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    requests
        .0
        .get_or_create(&RouteLabels {
            method: method_label(&method),
            route: route.unwrap_or_else(|| UNMATCHED.to_owned()),
        })
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        method = %method,
        path,
        status = response.status().as_u16(),
        duration_ms = elapsed.as_millis() as u64,
        "http request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_methods_are_labels_of_their_own() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let invented = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&invented), "other");
    }
}
