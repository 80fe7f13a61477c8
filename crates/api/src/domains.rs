//! `/v1/domains` (admins): an account's sending domains. Registering one makes its DKIM key
//! and answers the DNS records to publish; verifying looks them up now. Rotating makes a new
//! key at a new selector, signed with once a check finds it published. Mail from a verified
//! domain is signed with its key and sent from its return path, and with
//! `require_verified_domains` on, mail from any other domain is refused.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mailtrail_domain::Role;
use mailtrail_domain::causes::WithCauses;
use mailtrail_outbound::domains::{
    Check, DnsRecord, RecordCheck, RegisterError, normalize, register,
};
use mailtrail_outbound::rotation;
use mailtrail_store::SendingDomain;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AccountQuery, Scoped};
use crate::error::{ApiError, BodyErrors, KeyedErrors, RoleErrors};
use crate::extract::ApiJson;
use crate::{AppState, rfc3339};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDomain {
    /// The domain of the From addresses, e.g. `shop.example`.
    #[schema(example = "shop.example")]
    pub domain: String,
    /// The DKIM keys: `rsa` (the default; RSA-2048, what Gmail and Yahoo verify) or
    /// `rsa+ed25519` (each message also carries an Ed25519 signature, published at a second
    /// selector). Ed25519 alone is refused: most receivers do not verify it.
    #[schema(example = "rsa")]
    pub algorithm: Option<String>,
    /// The envelope sender's domain for its mail (bounces come back to
    /// `bounces+…@RETURN_PATH`): the domain itself or a name under it, so SPF aligns with
    /// the From domain for DMARC. By default `bounces.DOMAIN`.
    #[schema(example = "bounces.shop.example")]
    pub return_path: Option<String>,
}

/// A DNS record to publish.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    /// `dkim`, `spf` (on the return path), `return_path` (its MX) or `dmarc`.
    pub purpose: &'static str,
    /// `TXT` or `MX`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub value: String,
    /// The domain is verified only with this record in place.
    pub required: bool,
    pub description: String,
    /// For the DKIM record of a key a rotation replaced: keep it published until then
    /// (7 days after signing switched away from it); `null` for every other record.
    pub keep_published_until: Option<String>,
}

impl From<DnsRecord> for RecordView {
    fn from(r: DnsRecord) -> Self {
        Self {
            purpose: r.purpose.as_str(),
            kind: r.kind,
            name: r.name,
            value: r.value,
            required: r.required,
            description: r.description,
            keep_published_until: r.keep_published_until_ms.map(rfc3339),
        }
    }
}

/// How one record looked in DNS.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordCheckView {
    /// `dkim`, `spf` (on the return path), `return_path` (its MX) or `dmarc`.
    pub purpose: &'static str,
    pub name: String,
    pub ok: bool,
    /// What was found, and what to change when it is not right.
    pub detail: String,
}

impl From<RecordCheck> for RecordCheckView {
    fn from(r: RecordCheck) -> Self {
        Self {
            purpose: r.purpose.as_str(),
            name: r.name,
            ok: r.ok,
            detail: r.detail,
        }
    }
}

/// The outcome of a DNS check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckView {
    pub at: String,
    /// The DKIM record, and the return path's SPF and MX, checked out (DMARC is reported,
    /// not required).
    pub verified: bool,
    pub records: Vec<RecordCheckView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainView {
    pub domain: String,
    /// `rsa`, `rsa+ed25519`, or `ed25519` for a domain registered before RSA was the
    /// default (its DKIM record's description says what that costs).
    pub algorithm: String,
    /// The DKIM selector (`s=` of the signatures).
    pub selector: String,
    /// The selector of the key a rotation made, `null` without one: its record is listed
    /// beside the current one, and mail is signed with it once a check finds it published.
    pub next_selector: Option<String>,
    /// The envelope sender's domain of its mail once verified: `bounces+…@RETURN_PATH`.
    pub return_path: String,
    /// Mail from the domain is signed with its key and sent from its return path.
    pub verified: bool,
    /// When a check first found the records in place (since the last failed one).
    pub verified_at: Option<String>,
    pub created_at: String,
    /// What to publish in DNS.
    pub records: Vec<RecordView>,
    /// The last check, `null` before the first.
    pub last_check: Option<CheckView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainList {
    pub domains: Vec<DomainView>,
}

fn view(state: &AppState, domain: SendingDomain) -> DomainView {
    let records = state
        .domains
        .records(&domain)
        .into_iter()
        .map(RecordView::from)
        .collect();
    let last_check = domain
        .last_check
        .as_deref()
        .and_then(|json| serde_json::from_str::<Check>(json).ok())
        .map(|check| CheckView {
            at: rfc3339(domain.last_check_at_ms.unwrap_or_default()),
            verified: check.verified,
            records: check
                .records
                .into_iter()
                .map(RecordCheckView::from)
                .collect(),
        });
    DomainView {
        verified: domain.verified_at_ms.is_some(),
        verified_at: domain.verified_at_ms.map(rfc3339),
        created_at: rfc3339(domain.created_at_ms),
        domain: domain.domain,
        algorithm: domain.algorithm,
        selector: domain.selector,
        next_selector: domain.next_key.map(|next| next.selector),
        return_path: domain.return_path,
        records,
        last_check,
    }
}

fn register_error(e: RegisterError) -> ApiError {
    match e {
        RegisterError::Invalid(field, why) => ApiError::invalid(field, why),
        RegisterError::Store(e) => e.into(),
        RegisterError::Key(e) => ApiError::Internal(WithCauses(&e).to_string()),
    }
}

/// The domain named in a path, as stored; a name that is not a domain is missing too.
fn path_domain(domain: &str) -> Result<String, ApiError> {
    normalize(domain).map_err(|_| ApiError::NotFound)
}

#[utoipa::path(
    post,
    path = "/v1/domains",
    operation_id = "create_domain",
    tag = "domains",
    params(AccountQuery),
    request_body = CreateDomain,
    responses(
        (status = 201, description = "the domain with its new DKIM key: publish `records`, then verify", body = DomainView),
        (status = 409, description = "the account has this domain already", body = crate::error::Problem, content_type = "application/problem+json"),
        KeyedErrors,
        BodyErrors,
        RoleErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    scope: Scoped,
    ApiJson(body): ApiJson<CreateDomain>,
) -> Result<(StatusCode, Json<DomainView>), ApiError> {
    scope.caller.require(Role::Admin)?;
    let stored = register(
        &state.store,
        &scope.account_id,
        &body.domain,
        body.algorithm.as_deref(),
        body.return_path.as_deref(),
    )
    .await
    .map_err(register_error)?;
    Ok((StatusCode::CREATED, Json(view(&state, stored))))
}

#[utoipa::path(
    get,
    path = "/v1/domains",
    operation_id = "list_domains",
    tag = "domains",
    params(AccountQuery),
    responses(
        (status = 200, description = "the account's sending domains in name order", body = DomainList),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    scope: Scoped,
) -> Result<Json<DomainList>, ApiError> {
    scope.caller.require(Role::Admin)?;
    let domains = state.store.domains(&scope.account_id).await?;
    Ok(Json(DomainList {
        domains: domains.into_iter().map(|d| view(&state, d)).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/domains/{domain}",
    operation_id = "show_domain",
    tag = "domains",
    params(("domain" = String, Path, description = "the domain name"), AccountQuery),
    responses(
        (status = 200, description = "the domain, its records and the last check", body = DomainView),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    scope: Scoped,
    Path(domain): Path<String>,
) -> Result<Json<DomainView>, ApiError> {
    scope.caller.require(Role::Admin)?;
    let domain = state
        .store
        .domain(&scope.account_id, &path_domain(&domain)?)
        .await?;
    Ok(Json(view(&state, domain)))
}

#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/verify",
    operation_id = "verify_domain",
    tag = "domains",
    params(("domain" = String, Path, description = "the domain name"), AccountQuery),
    responses(
        (status = 200, description = "the domain after looking its records up now: `last_check` says how each looked", body = DomainView),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    scope: Scoped,
    Path(domain): Path<String>,
) -> Result<Json<DomainView>, ApiError> {
    scope.caller.require(Role::Admin)?;
    let domain = state
        .store
        .domain(&scope.account_id, &path_domain(&domain)?)
        .await?;
    let domain = state.domains.verify(&state.store, &domain).await?;
    Ok(Json(view(&state, domain)))
}

#[utoipa::path(
    post,
    path = "/v1/domains/{domain}/rotate",
    operation_id = "rotate_domain_key",
    tag = "domains",
    params(("domain" = String, Path, description = "the domain name"), AccountQuery),
    responses(
        (status = 200, description = "the domain with a new DKIM key at `next_selector`: publish its record (listed beside the current one), then verify; mail is signed with the current key until a check finds the new one", body = DomainView),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    scope: Scoped,
    Path(domain): Path<String>,
) -> Result<Json<DomainView>, ApiError> {
    scope.caller.require(Role::Admin)?;
    let domain = state
        .store
        .domain(&scope.account_id, &path_domain(&domain)?)
        .await?;
    let domain = rotation::rotate(&state.store, &scope.account_id, &domain)
        .await
        .map_err(register_error)?;
    Ok(Json(view(&state, domain)))
}

#[utoipa::path(
    delete,
    path = "/v1/domains/{domain}",
    operation_id = "delete_domain",
    tag = "domains",
    params(("domain" = String, Path, description = "the domain name"), AccountQuery),
    responses(
        (status = 204, description = "the domain and its key are gone: its mail is no longer signed with that key"),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    scope: Scoped,
    Path(domain): Path<String>,
) -> Result<StatusCode, ApiError> {
    scope.caller.require(Role::Admin)?;
    state
        .store
        .delete_domain(&scope.account_id, &path_domain(&domain)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
