//! Mailtrail's JSON HTTP API (docs/api.md).
//!
//! - [`error`]: one error type, rendered as `application/problem+json` (RFC 9457);
//! - [`auth`]: `Authorization: Bearer KEY` resolved to a [`auth::Caller`] and its account;
//! - [`extract`]: a JSON body extractor whose rejections are problem documents too;
//! - [`leads`]: `POST/GET/PATCH /v1/leads`, and searching them;
//! - [`emails`]: sending (`POST /v1/emails`, `/v1/emails/batch`) and `GET /v1/emails/{id}`;
//! - [`reports`]: the email report (JSON or CSV) and the batch report;
//! - [`activity`]: a lead's timeline;
//! - [`suppressions`]: blocked addresses, read by the account's keys and lifted by operators;
//! - [`settings`]: the account's tracking settings;
//! - [`webhooks`]: the account's webhook URLs and their delivery history;
//! - [`smtp_credentials`]: the logins of the SMTP submission listeners;
//! - [`domains`]: the account's sending domains, their DNS records and checking them;
//! - [`track`]: the public open, click and unsubscribe endpoints;
//! - [`hits`]: how opens and clicks reach the database (a cache of what they need, batching);
//! - [`every_link`]: the machine-hit rule for a scanner that follows every link of an email;
//! - [`health`]: `/healthz`, `/livez` and `/readyz`.
//!
//! [`router`] builds the whole app without a socket, so tests drive it with `oneshot`.

pub mod activity;
pub mod auth;
pub mod domains;
pub mod emails;
pub mod error;
pub mod every_link;
pub mod extract;
pub mod health;
pub mod hits;
pub mod leads;
pub mod reports;
pub mod settings;
pub mod smtp_credentials;
pub mod suppressions;
pub mod track;
pub mod webhooks;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use mailtrail_domain::token::TokenKey;
use mailtrail_store::{Recorder, Store};
use tokio::sync::Notify;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    /// The DNS records of sending domains and their checks, and whether mail must come from
    /// a verified one.
    pub domains: Arc<mailtrail_outbound::domains::Checker>,
    /// Which URLs a webhook may have: public addresses only, unless the operator allows
    /// private targets.
    pub webhook_targets: mailtrail_webhooks::target::Targets,
    /// Which parts of the service have stopped, for `/readyz`; the service's supervisor
    /// writes it.
    pub readiness: health::Readiness,
}

/// Bodies larger than this are refused with 413 before they are read. Sized for the
/// 100,000-recipient batches of a later issue.
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// The document's frame; the paths and their schemas come from the handlers in [`api`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mailtrail",
        description = "Self-hosted email delivery and tracking. Every `/v1` operation but this \
                       document needs `Authorization: Bearer KEY`; errors are \
                       `application/problem+json` (RFC 9457). The public tracking endpoints \
                       (`/o/`, `/c/`, `/u/`), which recipients' mail clients reach without a \
                       key, are included under the `tracking` tag."
    ),
    security(("bearer" = [])),
    modifiers(&BearerKey),
    tags(
        (name = "leads"), (name = "emails"), (name = "reports"), (name = "settings"),
        (name = "webhooks", description = "admins only"),
        (name = "smtp-credentials", description = "admins only: logins for SMTP submission"),
        (name = "domains", description = "admins only: sending domains and their DNS records"),
        (name = "suppressions", description = "every key reads its account's blocks; operators read all and lift them"),
        (name = "tracking", description = "public: opens, clicks, unsubscribes"),
        (name = "service"),
    )
)]
struct ApiDoc;

/// The `bearer` security scheme the document's operations refer to.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some("an API key, `mt_…`".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Every route with its documentation but the public tracking ones ([`tracking`]): the router
/// and the OpenAPI document are both made from these lists, so a route cannot exist without
/// being documented. Add routes only with `.routes(routes!(…))` (never `.route`), each handler
/// annotated with `#[utoipa::path]`.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::livez))
        .routes(routes!(health::readyz))
        .routes(routes!(openapi_json))
        .routes(routes!(leads::search, leads::create))
        .routes(routes!(leads::show, leads::update, leads::erase))
        .routes(routes!(activity::show))
        .routes(routes!(reports::emails))
        .routes(routes!(reports::batches))
        .routes(routes!(emails::send))
        .routes(routes!(emails::send_batch))
        .routes(routes!(emails::show))
        .routes(routes!(emails::cancel))
        .routes(routes!(emails::cancel_batch))
        .routes(routes!(suppressions::list))
        .routes(routes!(suppressions::remove))
        .routes(routes!(settings::show, settings::update))
        .routes(routes!(settings::resume))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::delete))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::test))
        .routes(routes!(smtp_credentials::list, smtp_credentials::create))
        .routes(routes!(smtp_credentials::revoke))
        .routes(routes!(domains::list, domains::create))
        .routes(routes!(domains::show, domains::delete))
        .routes(routes!(domains::verify))
        .routes(routes!(domains::rotate))
}

/// The public tracking endpoints, as [`api`] but with state of their own ([`hits::Hits`]):
/// the pixel is the busiest route, and a route with [`AppState`] clones all of it for each
/// request, which showed in profiles of it.
fn tracking() -> OpenApiRouter<Arc<hits::Hits>> {
    OpenApiRouter::new()
        .routes(routes!(track::open))
        .routes(routes!(track::click))
        .routes(routes!(track::unsubscribe_page, track::unsubscribe))
}

/// The OpenAPI 3.1 document of every route of [`router`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi().merge_from(tracking().into_openapi())
}

/// The document as served, made once.
static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
});

/// This document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    tag = "service",
    security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document of this API", body = Object))
)]
async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON.as_str(),
    )
}

pub fn router(state: AppState) -> Router {
    let hits = Arc::new(hits::Hits::new(
        state.store.clone(),
        state.tokens.clone(),
        state.hits.clone(),
    ));
    let (tracking, _) = tracking().split_for_parts();
    let (router, _) = api().split_for_parts();
    router
        // axum's own 2 MB default would refuse a 100,000-recipient batch; this limit replaces it.
        // The tracking routes read no body and are merged after these two layers: each layer
        // wraps every request of its routes, and skipping them saved the pixel ~4 % of its CPU.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .merge(tracking.with_state(hits))
        .fallback(error::not_found)
        .layer(axum::middleware::map_response(error::framework_problems))
        .with_state(state)
}

/// Milliseconds since the epoch as RFC 3339, as the API shows every time.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
