//! The API test harness: the whole router on a fresh embedded database, called without a
//! socket.

// Each test binary that includes this module uses only some of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use mailtrail_api::{AppState, router};
use mailtrail_domain::token::TokenKey;
use mailtrail_outbound::OutboundConfig;
use mailtrail_outbound::domains::Checker;
use mailtrail_store::{Recorder, Store};
use mailtrail_webhooks::WebhookConfig;
use mailtrail_webhooks::target::Targets;
use serde_json::Value;
use tower::ServiceExt;

/// The key the test router verifies tracking tokens with.
pub fn tokens() -> TokenKey {
    TokenKey::new(b"api tests")
}

pub struct App {
    pub store: Store,
    hits: Recorder,
    domains: Arc<Checker>,
    webhook_targets: Targets,
    _dir: tempfile::TempDir,
}

/// The router with the default `[outbound]` settings and no DNS behind it: a domain check
/// finds nothing, at once. Webhooks may point at private addresses (the tests' receivers are
/// on loopback).
pub async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), mailtrail_store::MasterKey::generate())
        .await
        .unwrap();
    let (hits, _writer) = Recorder::spawn(store.clone());
    let nowhere: SocketAddr = "127.0.0.1:9".parse().unwrap();
    App {
        store,
        hits,
        domains: Arc::new(Checker::new(&OutboundConfig::default(), &[nowhere]).unwrap()),
        webhook_targets: webhook_targets(true, nowhere),
        _dir: dir,
    }
}

fn webhook_targets(allow_private_targets: bool, dns: SocketAddr) -> Targets {
    let config = WebhookConfig {
        allow_private_targets,
        ..WebhookConfig::default()
    };
    Targets::new(&config, &[dns]).unwrap()
}

impl App {
    /// Webhook URLs are checked as a service with `allow_private_targets` checks them, names
    /// looked up on `dns`.
    pub fn set_webhook_targets(&mut self, allow_private_targets: bool, dns: SocketAddr) {
        self.webhook_targets = webhook_targets(allow_private_targets, dns);
    }

    /// Sending domains' records and checks follow these `[outbound]` settings, and are
    /// looked up on `dns`.
    pub fn set_outbound(&mut self, outbound: &OutboundConfig, dns: SocketAddr) {
        self.domains = Arc::new(Checker::new(outbound, &[dns]).unwrap());
    }

    /// Waits until the opens and clicks recorded so far are committed.
    pub async fn flush(&self) {
        self.hits.flush().await;
    }

    /// A request with an optional key and JSON body: status, JSON answer, content type.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        self.call_with(method, uri, key, body, &[]).await
    }

    /// A request without a key, as a browser or mail client makes it: status, headers, body.
    pub async fn fetch(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = router(self.state())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, bytes.to_vec())
    }

    fn state(&self) -> AppState {
        AppState {
            store: self.store.clone(),
            queued: Default::default(),
            tokens: tokens(),
            hits: self.hits.clone(),
            domains: self.domains.clone(),
            webhook_targets: self.webhook_targets.clone(),
            readiness: Default::default(),
        }
    }

    /// [`App::call`] with extra headers.
    pub async fn call_with(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value, String) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = router(self.state()).oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json, content_type)
    }
}
