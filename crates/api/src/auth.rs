//! API-key authentication: `Authorization: Bearer KEY` becomes a [`Caller`], and a caller's
//! requests are confined to one account.

use axum::extract::{FromRef, FromRequestParts, Query};
use axum::http::header;
use axum::http::request::Parts;
use mailtrail_domain::Role;
use mailtrail_store::AccountId;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::error::ApiError;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Recorded as the actor of audited actions.
    pub key_id: String,
    pub account_id: Option<String>,
    pub role: Role,
}

/// `?account=ID`: the account an operator acts on.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// The account an operator key acts on (required with one); an account key may name only
    /// its own.
    pub account: Option<String>,
}

impl Caller {
    /// The account this request acts on. Account keys act on their own account only (naming
    /// another looks like a missing resource); operator keys name one with `?account=ID`.
    pub fn account(&self, asked: Option<String>) -> Result<String, ApiError> {
        match (&self.account_id, asked) {
            (Some(own), None) => Ok(own.clone()),
            (Some(own), Some(asked)) if *own == asked => Ok(asked),
            (Some(_), Some(_)) => Err(ApiError::NotFound),
            (None, Some(asked)) => Ok(asked),
            (None, None) => Err(ApiError::BadRequest(
                "operator keys act on an account: add ?account=ACCOUNT_ID".into(),
            )),
        }
    }

    /// Refuses unless the caller has at least `role` (operator > admin > user).
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {} role; the key has {}",
                role.as_str(),
                self.role.as_str()
            )))
        }
    }
}

/// A caller together with the account its request acts on.
#[derive(Debug, Clone)]
pub struct Scoped {
    pub caller: Caller,
    pub account_id: AccountId,
}

impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let state = AppState::from_ref(state);
        let caller = state
            .store
            .resolve_api_key(key)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Caller {
            key_id: caller.key_id,
            account_id: caller.account_id,
            role: caller.role,
        })
    }
}

impl<S> FromRequestParts<S> for Scoped
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let asked = Query::<AccountQuery>::try_from_uri(&parts.uri)
            .map_err(|_| ApiError::BadRequest("the query string is malformed".into()))?
            .0
            .account
            .filter(|a| !a.is_empty());
        let account_id = caller.account(asked)?;
        if caller.account_id.is_none() {
            let state = AppState::from_ref(state);
            if !state.store.account_exists(&account_id).await? {
                return Err(ApiError::NotFound);
            }
        }
        Ok(Scoped {
            caller,
            account_id: account_id.into(),
        })
    }
}
