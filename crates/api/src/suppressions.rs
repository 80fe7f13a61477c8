//! `GET /v1/suppressions` and `DELETE /v1/suppressions/{address}`: operators only. Removing
//! a block needs a reason and is recorded with the key that did it.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use mailtrail_domain::{EmailAddress, Role};
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Scoped};
use crate::error::ApiError;
use crate::{AppState, rfc3339};

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub account: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct SuppressionView {
    pub account_id: String,
    pub address: String,
    pub reason: String,
    /// The reply that condemned the address.
    pub status: Option<String>,
    pub email_id: Option<String>,
    pub created_at: String,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<SuppressionView>>, ApiError> {
    caller.require(Role::Operator)?;
    let limit = query.limit.unwrap_or(1000).clamp(1, 10_000);
    let blocks = state
        .store
        .suppressions(query.account.as_deref(), limit)
        .await?;
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

#[derive(Debug, Deserialize)]
pub struct RemoveQuery {
    /// Why the block is lifted: kept in the audit trail.
    pub reason: Option<String>,
}

pub async fn remove(
    State(state): State<AppState>,
    scope: Scoped,
    Path(address): Path<String>,
    Query(query): Query<RemoveQuery>,
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
