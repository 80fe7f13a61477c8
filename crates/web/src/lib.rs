//! Mailtrail's web UI (docs/web-ui.md): server-rendered pages for the people who send
//! the email, behind a session login. No JavaScript; one stylesheet.
//!
//! - [`session`]: the session cookie, its server-side record, and [`session::Viewer`], the
//!   signed-in person and the account in view;
//! - [`client`]: where a request came from, and whether its cookies are `Secure`;
//! - [`throttle`]: the limits on failed sign-ins ([`WebConfig`]);
//! - [`csrf`]: every POST carries the session's CSRF token ([`csrf::Posted`]);
//! - [`error`]: failures as HTML pages (403, 404, 405, 503, …) or a redirect to sign in;
//! - [`layout`]: the page chrome: title, nav bar, the operator's account picker;
//! - [`format`]: times (in the viewer's timezone), stage badges and query strings as the
//!   pages show them;
//! - [`chart`]: the batch comparison as rows of bars;
//! - [`pages`]: one module per page;
//! - [`assets`]: the stylesheet and the security headers of every answer.
//!
//! [`router`] is merged next to `mailtrail_api::router`, and [`not_found`] replaces the
//! merged router's fallback: unknown paths under `/v1/` and the tracking paths keep the API's
//! problem+json, every other one answers an HTML page.

mod assets;
mod chart;
mod client;
mod csrf;
mod error;
mod format;
mod layout;
mod pages;
mod session;
mod throttle;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::map_response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use mailtrail_api::AppState;

pub use error::not_found;
use pages::admin;
use pages::{
    batch_send, batches, compose, emails, import, lead_form, leads, login, overview, reports,
    settings, suppressions,
};
pub use throttle::WebConfig;

/// Every page of the UI, with its state applied. `public_url` is where browsers reach the
/// service (`[outbound] tracking_base_url`): with `https://` its cookies are always `Secure`.
pub fn router(state: AppState, config: &WebConfig, public_url: &str) -> Router {
    let site = client::Site {
        https: public_url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://")),
        limits: throttle::Limits::from(config),
        forms: Default::default(),
    };
    Router::new()
        .route("/", get(overview::page))
        .route("/sending/resume", post(overview::resume))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/leads", get(leads::list))
        .route(
            "/leads/new",
            get(lead_form::new_form).post(lead_form::create),
        )
        .route(
            "/leads/import",
            get(import::form)
                .post(import::submit)
                .layer(DefaultBodyLimit::max(import::MAX_BODY_BYTES)),
        )
        .route("/leads/{id}", get(leads::show))
        .route(
            "/leads/{id}/edit",
            get(lead_form::edit_form).post(lead_form::update),
        )
        .route(
            "/leads/{id}/compose",
            get(compose::form).post(compose::submit),
        )
        .route("/emails/{id}", get(emails::show))
        .route("/emails/{id}/cancel", post(emails::cancel))
        .route("/emails/{id}/inbound/{inbound_id}", get(emails::inbound))
        .route("/reports/emails", get(reports::page))
        .route("/reports/emails.csv", get(reports::csv))
        .route("/reports/batches", get(batches::page))
        .route(
            "/batches/new",
            get(batch_send::form).post(batch_send::submit),
        )
        .route("/batches/cancel", post(batch_send::cancel))
        .route("/suppressions", get(suppressions::page))
        .route("/suppressions/remove", post(suppressions::remove))
        .route("/settings", get(settings::page).post(settings::save))
        .route("/settings/timezone", post(settings::set_timezone))
        .route("/settings/domains", post(settings::add_domain))
        .route("/settings/domains/check", post(settings::check_domain))
        .route("/settings/domains/rotate", post(settings::rotate_domain))
        .route("/settings/domains/remove", post(settings::remove_domain))
        .route(
            "/admin/users",
            get(admin::users::page).post(admin::users::add),
        )
        .route("/admin/users/remove", post(admin::users::remove))
        .route(
            "/admin/api-keys",
            get(admin::api_keys::page).post(admin::api_keys::create),
        )
        .route("/admin/api-keys/revoke", post(admin::api_keys::revoke))
        .route(
            "/admin/smtp-credentials",
            get(admin::smtp_credentials::page).post(admin::smtp_credentials::create),
        )
        .route(
            "/admin/smtp-credentials/revoke",
            post(admin::smtp_credentials::revoke),
        )
        .route(
            "/admin/webhooks",
            get(admin::webhooks::page).post(admin::webhooks::add),
        )
        .route("/admin/webhooks/remove", post(admin::webhooks::remove))
        .route("/admin/webhooks/{id}", get(admin::webhooks::deliveries))
        .route("/admin/webhooks/{id}/test", post(admin::webhooks::test))
        .route(assets::STYLESHEET, get(assets::stylesheet))
        .layer(map_response(error::framework_pages))
        .layer(axum::middleware::from_fn(format::in_viewers_zone))
        .layer(map_response(assets::security_headers))
        .layer(Extension(Arc::new(site)))
        .with_state(state)
}
