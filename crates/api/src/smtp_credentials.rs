//! `/v1/smtp-credentials` (admins): the usernames and passwords an account's applications log
//! in to the SMTP submission listeners with (RFC 4954 AUTH; docs/api.md). A password is in
//! its creation's answer only and is kept as an argon2 hash; listings show when each was
//! made, last used and revoked, never a secret. A revoked credential stays listed.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mailtrail_domain::Role;
use mailtrail_store::SmtpCredential;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{AccountQuery, Scoped};
use crate::error::{ApiError, KeyedErrors, RoleErrors};
use crate::{AppState, rfc3339};

/// A credential as listed: no password.
#[derive(Debug, Serialize, ToSchema)]
pub struct SmtpCredentialView {
    pub id: String,
    /// The AUTH username.
    #[schema(example = "smtp-3f9a0c1b2d4e")]
    pub username: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    /// Set once revoked: the credential no longer logs in.
    pub revoked_at: Option<String>,
}

impl From<SmtpCredential> for SmtpCredentialView {
    fn from(c: SmtpCredential) -> Self {
        Self {
            id: c.id,
            username: c.username,
            created_at: rfc3339(c.created_at_ms),
            last_used_at: c.last_used_at_ms.map(rfc3339),
            revoked_at: c.revoked_at_ms.map(rfc3339),
        }
    }
}

/// A new credential, with its password: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSmtpCredential {
    pub id: String,
    pub username: String,
    /// Log in with it over TLS (AUTH PLAIN or LOGIN). It is not shown again: keep it now, or
    /// revoke the credential and create another.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SmtpCredentialList {
    pub smtp_credentials: Vec<SmtpCredentialView>,
}

#[utoipa::path(
    post,
    path = "/v1/smtp-credentials",
    operation_id = "create_smtp_credential",
    tag = "smtp-credentials",
    params(AccountQuery),
    responses(
        (status = 201, description = "the credential, with its password (shown only here)", body = CreatedSmtpCredential),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    scope: Scoped,
) -> Result<(StatusCode, Json<CreatedSmtpCredential>), ApiError> {
    scope.caller.require(Role::Admin)?;
    let made = state
        .store
        .create_smtp_credential(&scope.account_id)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSmtpCredential {
            id: made.id,
            username: made.username,
            password: made.password,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/smtp-credentials",
    operation_id = "list_smtp_credentials",
    tag = "smtp-credentials",
    params(AccountQuery),
    responses(
        (status = 200, description = "the account's credentials, without passwords", body = SmtpCredentialList),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    scope: Scoped,
) -> Result<Json<SmtpCredentialList>, ApiError> {
    scope.caller.require(Role::Admin)?;
    let credentials = state.store.list_smtp_credentials(&scope.account_id).await?;
    Ok(Json(SmtpCredentialList {
        smtp_credentials: credentials.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/smtp-credentials/{id}",
    operation_id = "revoke_smtp_credential",
    tag = "smtp-credentials",
    params(("id" = String, Path, description = "the credential's id"), AccountQuery),
    responses(
        (status = 204, description = "revoked: it no longer logs in (it stays listed)"),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    scope: Scoped,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    scope.caller.require(Role::Admin)?;
    state
        .store
        .revoke_smtp_credential(&id, Some(&scope.account_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
