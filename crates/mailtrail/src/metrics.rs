//! `GET /metrics` in the Prometheus text format (0.0.4), encoded by `prometheus-client`: the
//! queue, inbound and webhook backlogs read from the database at each scrape (shared by every
//! node), what this process recorded since it started (`mailtrail_store::counters`: events by
//! kind, delivery attempts by result, failures by reason, machine hits, the queue-to-delivery
//! and SMTP session histograms; the access log's HTTP request durations), and
//! `mailtrail_build_info`. Deliveries per second are
//! `rate(mailtrail_events_total{kind="delivered"}[1m])`.
//!
//! With `metrics_token` set, a scrape needs `Authorization: Bearer TOKEN` (401 otherwise);
//! with `metrics_listen` set, `/metrics` is served on that address only, not next to the
//! public API. With neither, anyone who reaches `http_listen` can read it.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mailtrail_store::Store;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};

use crate::access_log::Requests;

#[derive(Clone)]
struct Metrics {
    store: Store,
    /// The HTTP request durations the access log records.
    requests: Requests,
    /// The SHA-256 of `metrics_token`: digests are compared, so the comparison's time says
    /// nothing about the token.
    token: Option<[u8; 32]>,
}

/// `GET /metrics`, behind `token` when there is one; `requests` is what the access log
/// layer records.
pub fn router(store: Store, requests: Requests, token: Option<&str>) -> Router {
    let token = token.map(|t| Sha256::digest(t.as_bytes()).into());
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Metrics {
            store,
            requests,
            token,
        })
}

/// Whether the request carries `Authorization: Bearer` with the token whose digest is `token`.
fn authorized(headers: &HeaderMap, token: &[u8; 32]) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| <[u8; 32]>::from(Sha256::digest(given.trim().as_bytes())) == *token)
}

async fn metrics(State(metrics): State<Metrics>, headers: HeaderMap) -> Response {
    if let Some(token) = &metrics.token
        && !authorized(&headers, token)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "/metrics needs Authorization: Bearer with the configured metrics_token\n",
        )
            .into_response();
    }
    match render(&metrics).await {
        Ok(text) => (
            [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database did not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database did not answer\n",
            )
                .into_response()
        }
    }
}

/// This scrape's registry: the backlogs as they are now, and the process's own metrics.
async fn render(metrics: &Metrics) -> anyhow::Result<String> {
    let store = &metrics.store;
    let mut registry = Registry::with_prefix("mailtrail");
    let backlogs = [
        (
            "queue_depth",
            "Emails waiting for a delivery attempt (all nodes)",
            store.queue_depth().await?,
        ),
        (
            "inbound_backlog",
            "Received messages not processed yet (all nodes)",
            store.inbound_backlog().await?,
        ),
        (
            "webhook_backlog",
            "Webhook deliveries waiting to be sent (all nodes)",
            store.webhook_backlog().await?,
        ),
    ];
    for (name, help, value) in backlogs {
        registry.register(name, help, ConstGauge::new(value));
    }
    registry.register(
        "build",
        "The running Mailtrail's version (always 1)",
        Info::new([("version", env!("CARGO_PKG_VERSION"))]),
    );
    store.counters().register(&mut registry);
    metrics.requests.register(&mut registry);
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_bearer_token_is_authorized() {
        let token: [u8; 32] = Sha256::digest(b"s3cret").into();
        for (value, ok) in [
            (Some("Bearer s3cret"), true),
            (Some("Bearer s3cre"), false),
            (Some("Bearer s3cret2"), false),
            (Some("Basic s3cret"), false),
            (Some("s3cret"), false),
            (None, false),
        ] {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            }
            assert_eq!(authorized(&headers, &token), ok, "{value:?}");
        }
    }
}
