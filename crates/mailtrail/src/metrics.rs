//! `GET /metrics` in the Prometheus text format: the queue, inbound and webhook backlogs read
//! from the database (shared by every node), and what this process recorded since it
//! started (events by kind, delivery attempts by result, failures by reason, machine hits).
//! Deliveries per second are `rate(mailtrail_events_total{kind="delivered"}[1m])`.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mailtrail_store::Store;

/// A counter family: name, help text, label name, and (label value, count) pairs.
type Family<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, u64)]);

pub async fn metrics(State(store): State<Store>) -> Response {
    match render(&store).await {
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
