//! Mailtrail's JSON HTTP API (PRODUCT.md §8).
//!
//! - [`error`]: one error type, rendered as `application/problem+json` (RFC 9457);
//! - [`auth`]: `Authorization: Bearer KEY` resolved to a [`auth::Caller`] and its account;
//! - [`extract`]: a JSON body extractor whose rejections are problem documents too;
//! - [`leads`]: `POST/GET/PATCH /v1/leads`, and searching them;
//! - [`emails`]: sending (`POST /v1/emails`, `/v1/emails/batch`) and `GET /v1/emails/{id}`;
//! - [`reports`]: the email report (JSON or CSV) and the batch report;
//! - [`activity`]: a lead's timeline;
//! - [`suppressions`]: the operator's view of blocked addresses;
//! - [`settings`]: the account's tracking settings;
//! - [`webhooks`]: the account's webhook URLs and their delivery history;
//! - [`track`]: the public open, click and unsubscribe endpoints;
//! - [`health`]: the `/healthz` endpoint.
//!
//! [`router`] builds the whole app without a socket, so tests drive it with `oneshot`.

pub mod activity;
pub mod auth;
pub mod emails;
pub mod error;
pub mod extract;
pub mod health;
pub mod leads;
pub mod reports;
pub mod settings;
pub mod suppressions;
pub mod track;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use mailtrail_domain::token::TokenKey;
use mailtrail_store::{Recorder, Store};
use tokio::sync::Notify;
use tower_http::limit::RequestBodyLimitLayer;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Wakes the delivery worker when emails are queued.
    pub queued: Arc<Notify>,
    /// Verifies the tokens of tracking and unsubscribe links.
    pub tokens: TokenKey,
    /// Writes opens and clicks in batches (group commit).
    pub hits: Recorder,
}

/// Bodies larger than this are refused with 413 before they are read. Sized for the
/// 100,000-recipient batches of a later issue.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/v1/leads", get(leads::search).post(leads::create))
        .route("/v1/leads/{id}", get(leads::show).patch(leads::update))
        .route("/v1/leads/{id}/activity", get(activity::show))
        .route("/v1/reports/emails", get(reports::emails))
        .route("/v1/reports/batches", get(reports::batches))
        .route("/v1/emails", post(emails::send))
        .route("/v1/emails/batch", post(emails::send_batch))
        .route("/v1/emails/{id}", get(emails::show))
        .route("/v1/suppressions", get(suppressions::list))
        .route("/v1/suppressions/{address}", delete(suppressions::remove))
        .route("/v1/settings", get(settings::show).patch(settings::update))
        .route("/v1/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/v1/webhooks/{id}", delete(webhooks::delete))
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/o/{file}", get(track::open))
        .route("/c/{token}", get(track::click))
        .route(
            "/u/{token}",
            get(track::unsubscribe_page).post(track::unsubscribe),
        )
        .fallback(error::not_found)
        // axum's own 2 MB default would refuse a 100,000-recipient batch; this limit replaces it.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .with_state(state)
}

/// Milliseconds since the epoch as RFC 3339, as the API shows every time.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
