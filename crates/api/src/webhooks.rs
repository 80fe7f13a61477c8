//! `/v1/webhooks` (admins): register the URLs an account's events are POSTed to, list and
//! delete them, send one a signed `test` event, and read each one's delivery history
//! (docs/api.md). Delivery itself is the `mailtrail-webhooks` dispatcher's job.
//!
//! A hook's URL must reach a public address (see `mailtrail_webhooks::target`), and its
//! secret is in the creation's answer only: listings leave it out.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mailtrail_domain::Role;
use mailtrail_store::webhooks::event_types;
use mailtrail_store::{Delivery, Webhook};
use mailtrail_webhooks::target::Refused;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AccountQuery, Scoped};
use crate::error::{ApiError, BodyErrors, KeyedErrors, QueryErrors, RoleErrors};
use crate::extract::{ApiJson, ApiQuery};
use crate::{AppState, rfc3339};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// An absolute `http://` or `https://` URL without user info whose host is, and resolves
    /// to, public addresses only (no loopback, private, link-local or metadata address)
    /// unless the operator set `[webhooks] allow_private_targets`.
    #[schema(example = "https://crm.example/hooks/mailtrail", max_length = 2000)]
    pub url: String,
    /// Event types to send (see `event_types` in the answer); all of them when absent.
    pub events: Option<Vec<String>>,
}

/// A hook as listed: without its secret, which only its creation's answer holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    /// `null` means every event type.
    pub events: Option<Vec<String>>,
    pub created_at: String,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events,
            created_at: rfc3339(w.created_at_ms),
        }
    }
}

/// A new hook, with its secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_` and the key in base64, as Standard Webhooks libraries take it: verify the
    /// `webhook-signature` header with it (HMAC-SHA256 over `"{webhook-id}.{webhook-timestamp}.
    /// {body}"` keyed with the decoded key). The older `Mailtrail-Signature` is keyed with
    /// this whole text. It is not shown again: keep it now, or delete the hook and create
    /// another.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
    /// Every event type a hook can ask for.
    pub event_types: Vec<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered`, `failed` (gave up after 24 hours) or `cancelled`.
    pub state: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// The event as recorded. Each POST adds the email's `subject`, `from`, `from_name`,
    /// `tags`, `metadata` and `message_id` as they are stored then (and a reply's `reply`).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            state: d.state,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            next_attempt_at: d.next_attempt_at_ms.map(rfc3339),
            created_at: rfc3339(d.created_at_ms),
            delivered_at: d.delivered_at_ms.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// The most recent this many (100 when absent).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The account an operator key acts on.
    pub account: Option<String>,
}

fn url_error(refused: Refused) -> ApiError {
    ApiError::invalid("url", refused.to_string())
}

#[utoipa::path(
    post,
    path = "/v1/webhooks",
    operation_id = "create_webhook",
    tag = "webhooks",
    params(AccountQuery),
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "the hook, with the secret its POSTs are signed with (shown only here)", body = CreatedWebhook),
        KeyedErrors,
        BodyErrors,
        RoleErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    scope: Scoped,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    scope.caller.require(Role::Admin)?;
    if body.url.len() > 2000 {
        return Err(ApiError::invalid("url", "must be at most 2000 characters"));
    }
    let url = state.webhook_targets.parse(&body.url).map_err(url_error)?;
    if let Some(events) = &body.events {
        let known: Vec<&str> = event_types().collect();
        if events.is_empty() {
            return Err(ApiError::invalid(
                "events",
                "leave it out for every event type, or name at least one",
            ));
        }
        if let Some(unknown) = events.iter().find(|e| !known.contains(&e.as_str())) {
            return Err(ApiError::invalid(
                "events",
                format!("'{unknown}' is not an event type; use {}", known.join(", ")),
            ));
        }
    }
    // The lookup last, once everything else is known to be right.
    state.webhook_targets.check(&url).await.map_err(url_error)?;
    let mut hook = state
        .store
        .create_webhook(&scope.account_id, url.as_str(), body.events.as_deref())
        .await?;
    let secret = std::mem::take(&mut hook.secret);
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook: hook.into(),
            secret,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks",
    operation_id = "list_webhooks",
    tag = "webhooks",
    params(AccountQuery),
    responses(
        (status = 200, description = "the account's hooks", body = WebhookList),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    scope: Scoped,
) -> Result<Json<WebhookList>, ApiError> {
    scope.caller.require(Role::Admin)?;
    let hooks = state.store.webhooks(&scope.account_id).await?;
    Ok(Json(WebhookList {
        webhooks: hooks.into_iter().map(WebhookView::from).collect(),
        event_types: event_types().collect(),
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    operation_id = "delete_webhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "the hook's id"), AccountQuery),
    responses(
        (status = 204, description = "the hook is stopped; its pending deliveries are cancelled"),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    scope: Scoped,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    scope.caller.require(Role::Admin)?;
    state.store.delete_webhook(&scope.account_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    operation_id = "webhook_deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "the hook's id"), DeliveryQuery),
    responses(
        (status = 200, description = "the hook's deliveries, most recent first", body = DeliveryList),
        KeyedErrors,
        QueryErrors,
        RoleErrors,
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    scope: Scoped,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    scope.caller.require(Role::Admin)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let deliveries = state
        .store
        .webhook_deliveries(&scope.account_id, &id, limit)
        .await?;
    Ok(Json(DeliveryList {
        deliveries: deliveries.into_iter().map(DeliveryView::from).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/test",
    operation_id = "test_webhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "the hook's id"), AccountQuery),
    responses(
        (status = 200, description = "a signed `test` event was POSTed now (never retried): the delivery, `delivered` with the receiver's status, or `failed` with its status or why it was not sent (`blocked: …`, `no answer: …`)", body = DeliveryView),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn test(
    State(state): State<AppState>,
    scope: Scoped,
    Path(id): Path<String>,
) -> Result<Json<DeliveryView>, ApiError> {
    scope.caller.require(Role::Admin)?;
    let delivery =
        mailtrail_webhooks::send_test(&state.store, &state.webhook_targets, &scope.account_id, &id)
            .await?;
    Ok(Json(delivery.into()))
}
