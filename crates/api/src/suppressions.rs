//! `GET /v1/suppressions`: an account key reads its own account's blocks (every user of the
//! account should see why an address is not emailed); an operator key reads every account's,
//! or one account's with `?account=ID`. `DELETE /v1/suppressions/{address}`: operators only;
//! removing a block needs a reason and is recorded with the key that did it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mailtrail_domain::{EmailAddress, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, Scoped};
use crate::error::{ApiError, KeyedErrors, QueryErrors, RoleErrors};
use crate::extract::ApiQuery;
use crate::{AppState, rfc3339};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Operator keys: only this account's blocks (every account's when absent). Account keys
    /// always read their own account's; naming another account is a 404.
    pub account: Option<String>,
    /// At most this many (1000 when absent; 1 to 10,000).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionView {
    pub account_id: String,
    pub address: String,
    pub reason: String,
    /// The reply that condemned the address.
    pub status: Option<String>,
    pub email_id: Option<String>,
    pub created_at: String,
}

#[utoipa::path(
    get,
    path = "/v1/suppressions",
    operation_id = "list_suppressions",
    tag = "suppressions",
    params(ListQuery),
    responses(
        (status = 200, description = "the blocked addresses, newest first: the key's own account's, or for an operator key every account's", body = Vec<SuppressionView>),
        KeyedErrors,
        QueryErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<SuppressionView>>, ApiError> {
    let scope = match caller.role {
        Role::Operator => query.account,
        _ => Some(caller.account(query.account)?),
    };
    let limit = query.limit.unwrap_or(1000).clamp(1, 10_000);
    let blocks = state.store.suppressions(scope.as_deref(), limit).await?;
    Ok(Json(
        blocks
            .into_iter()
            .map(|s| SuppressionView {
                account_id: s.account_id,
                address: s.address,
                reason: s.block.reason.as_str().to_owned(),
                status: s.block.status,
                email_id: s.block.email_id,
                created_at: rfc3339(s.created_at_ms),
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// The account whose block is lifted (operator keys must name it).
    pub account: Option<String>,
    /// Why the block is lifted: kept in the audit trail. Required.
    pub reason: Option<String>,
}

#[utoipa::path(
    delete,
    path = "/v1/suppressions/{address}",
    operation_id = "remove_suppression",
    tag = "suppressions",
    params(("address" = String, Path, description = "the blocked address"), RemoveQuery),
    responses(
        (status = 204, description = "the block is lifted and the audit trail says who and why"),
        KeyedErrors,
        QueryErrors,
        RoleErrors,
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    scope: Scoped,
    Path(address): Path<String>,
    ApiQuery(query): ApiQuery<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    scope.caller.require(Role::Operator)?;
    let address =
        EmailAddress::parse(&address).map_err(|e| ApiError::invalid("address", e.to_string()))?;
    let reason = query
        .reason
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("reason", "say why the block is lifted (?reason=…)"))?;
    let actor = format!("api-key:{}", scope.caller.key_id);
    state
        .store
        .remove_suppression(&scope.account_id, &address, &actor, &reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
