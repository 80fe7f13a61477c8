//! `GET /metrics` in the Prometheus text format: the queue, inbound and webhook backlogs read
//! from the database (shared by every node), and what this process recorded since it
//! started (events by kind, delivery attempts by result, failures by reason, machine hits).
//! Deliveries per second are `rate(mailtrail_events_total{kind="delivered"}[1m])`.
//!
//! With `metrics_token` set, a scrape needs `Authorization: Bearer TOKEN` (401 otherwise);
//! with `metrics_listen` set, `/metrics` is served on that address only, not next to the
//! public API. With neither, anyone who reaches `http_listen` can read it.

use std::fmt::Write;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mailtrail_store::Store;
use sha2::{Digest, Sha256};

/// A counter family: name, help text, label name, and (label value, count) pairs.
type Family<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, u64)]);

#[derive(Clone)]
struct Metrics {
    store: Store,
    /// The SHA-256 of `metrics_token`: digests are compared, so the comparison's time says
    /// nothing about the token.
    token: Option<[u8; 32]>,
}

/// `GET /metrics`, behind `token` when there is one.
pub fn router(store: Store, token: Option<&str>) -> Router {
    let token = token.map(|t| Sha256::digest(t.as_bytes()).into());
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Metrics { store, token })
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
    match render(&metrics.store).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
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

async fn render(store: &Store) -> anyhow::Result<String> {
    let mut out = String::new();
    let gauges = [
        (
            "mailtrail_queue_depth",
            "Emails waiting for a delivery attempt (all nodes).",
            store.queue_depth().await?,
        ),
        (
            "mailtrail_inbound_backlog",
            "Received messages not processed yet (all nodes).",
            store.inbound_backlog().await?,
        ),
        (
            "mailtrail_webhook_backlog",
            "Webhook deliveries waiting to be sent (all nodes).",
            store.webhook_backlog().await?,
        ),
    ];
    for (name, help, value) in gauges {
        writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        )?;
    }
    let counters = store.counters();
    let families: [Family; 4] = [
        (
            "mailtrail_events_total",
            "Events recorded by this node, by kind.",
            "kind",
            &counters.events,
        ),
        (
            "mailtrail_delivery_attempts_total",
            "Delivery attempts made by this node, by result.",
            "result",
            &counters.attempts,
        ),
        (
            "mailtrail_failures_total",
            "Failed emails (bounces, rejections, expiries, drops) recorded by this node, by reason.",
            "reason",
            &counters.failures,
        ),
        (
            "mailtrail_machine_hits_total",
            "Opens and clicks by proxies and scanners recorded by this node.",
            "kind",
            &counters.machine_hits,
        ),
    ];
    for (name, help, label, values) in families {
        writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter")?;
        for (value_label, n) in values {
            writeln!(out, "{name}{{{label}=\"{value_label}\"}} {n}")?;
        }
    }
    Ok(out)
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
