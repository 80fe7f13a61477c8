//! `POST /v1/leads`, `GET /v1/leads/{id}`, `PATCH /v1/leads/{id}`: a lead's address is unique
//! within its account; another account's lead answers 404 like a missing one.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mailtrail_domain::{EmailAddress, Permission, Role};
use mailtrail_store::{Lead, LeadPatch, NewLead};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AccountQuery, Scoped};
use crate::error::{
    ApiError, BodyErrors, FieldError, KeyedErrors, Problem, QueryErrors, RoleErrors,
};
use crate::extract::{ApiJson, ApiQuery};
use crate::{AppState, rfc3339};

/// Permission to Email as the API spells it: `yes` or `no`.
fn permission_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["yes", "no"]))
        .description(Some("Permission to Email"))
}

/// [`permission_schema`] or a JSON boolean, or `null` for "unchanged" (or the default).
fn optional_permission_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::String,
            Type::Boolean,
            Type::Null,
        ]))
        .enum_values(Some([
            Value::from("yes"),
            Value::from("no"),
            Value::from(true),
            Value::from(false),
            Value::Null,
        ]))
        .description(Some("Permission to Email: yes or no, or true or false"))
}

/// Permission to Email as a client sends it: `"yes"`/`"no"` (or another spelling CSV imports
/// take, such as `"true"`), or a JSON boolean, since many clients model it as one.
fn given_permission<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Permission>, D::Error> {
    struct Given;
    impl<'de> serde::de::Visitor<'de> for Given {
        type Value = Option<Permission>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("\"yes\", \"no\", true or false")
        }

        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(if v { Permission::Yes } else { Permission::No }))
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.parse().map(Some).map_err(E::custom)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    deserializer.deserialize_option(Given)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLead {
    #[schema(example = "ana@example.com", min_length = 1)]
    pub email: String,
    #[schema(max_length = 1000)]
    pub first_name: Option<String>,
    #[schema(max_length = 1000)]
    pub last_name: Option<String>,
    /// Custom fields, for merge fields; values of at most 1000 bytes.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// `yes` when absent.
    #[serde(default, deserialize_with = "given_permission")]
    #[schema(schema_with = optional_permission_schema, required = false)]
    pub permission_to_email: Option<Permission>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLead {
    #[schema(max_length = 1000)]
    pub first_name: Option<String>,
    #[schema(max_length = 1000)]
    pub last_name: Option<String>,
    /// Merged into the lead's custom fields.
    pub fields: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "given_permission")]
    #[schema(schema_with = optional_permission_schema, required = false)]
    pub permission_to_email: Option<Permission>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeadView {
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub fields: BTreeMap<String, String>,
    #[schema(schema_with = permission_schema)]
    pub permission_to_email: Permission,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Lead> for LeadView {
    fn from(lead: Lead) -> Self {
        Self {
            id: lead.id,
            email: lead.email,
            first_name: lead.first_name,
            last_name: lead.last_name,
            fields: lead.fields,
            permission_to_email: lead.permission,
            created_at: rfc3339(lead.created_at_ms),
            updated_at: rfc3339(lead.updated_at_ms),
        }
    }
}

/// Longest accepted name or custom field value; CRM fields are short.
const MAX_VALUE_LEN: usize = 1000;

fn check_values<'a>(values: impl IntoIterator<Item = (String, &'a str)>) -> Result<(), ApiError> {
    let errors: Vec<FieldError> = values
        .into_iter()
        .filter(|(_, v)| v.len() > MAX_VALUE_LEN)
        .map(|(field, _)| FieldError {
            field,
            message: format!("at most {MAX_VALUE_LEN} bytes"),
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(errors))
    }
}

fn named_values<'a>(
    first: Option<&'a String>,
    last: Option<&'a String>,
    fields: Option<&'a BTreeMap<String, String>>,
) -> Vec<(String, &'a str)> {
    let names = [("first_name", first), ("last_name", last)]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n.to_owned(), v.as_str())));
    let custom = fields
        .into_iter()
        .flatten()
        .map(|(k, v)| (format!("fields.{k}"), v.as_str()));
    names.chain(custom).collect()
}

#[utoipa::path(
    post,
    path = "/v1/leads",
    operation_id = "create_lead",
    tag = "leads",
    params(AccountQuery),
    request_body = CreateLead,
    responses(
        (status = 201, description = "the new lead", body = LeadView),
        (status = 409, description = "an address already used in the account", body = Problem, content_type = "application/problem+json"),
        KeyedErrors,
        BodyErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    scope: Scoped,
    ApiJson(body): ApiJson<CreateLead>,
) -> Result<(StatusCode, Json<LeadView>), ApiError> {
    let address =
        EmailAddress::parse(&body.email).map_err(|e| ApiError::invalid("email", e.to_string()))?;
    check_values(named_values(
        body.first_name.as_ref(),
        body.last_name.as_ref(),
        Some(&body.fields),
    ))?;
    let lead = NewLead {
        address,
        first_name: body.first_name,
        last_name: body.last_name,
        fields: body.fields,
        permission: body.permission_to_email.unwrap_or(Permission::Yes),
    };
    let created = state.store.create_lead(&scope.account_id, &lead).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[utoipa::path(
    get,
    path = "/v1/leads/{id}",
    operation_id = "get_lead",
    tag = "leads",
    params(("id" = String, Path, description = "the lead's id"), AccountQuery),
    responses((status = 200, description = "the lead", body = LeadView), KeyedErrors)
)]
pub async fn show(
    State(state): State<AppState>,
    scope: Scoped,
    Path(id): Path<String>,
) -> Result<Json<LeadView>, ApiError> {
    let lead = state.store.lead(&scope.account_id, &id).await?;
    Ok(Json(lead.into()))
}

#[utoipa::path(
    patch,
    path = "/v1/leads/{id}",
    operation_id = "update_lead",
    tag = "leads",
    params(("id" = String, Path, description = "the lead's id"), AccountQuery),
    request_body = UpdateLead,
    responses(
        (status = 200, description = "the lead as changed", body = LeadView),
        KeyedErrors,
        BodyErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    scope: Scoped,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateLead>,
) -> Result<Json<LeadView>, ApiError> {
    check_values(named_values(
        body.first_name.as_ref(),
        body.last_name.as_ref(),
        body.fields.as_ref(),
    ))?;
    let patch = LeadPatch {
        first_name: body.first_name,
        last_name: body.last_name,
        fields: body.fields,
        permission: body.permission_to_email,
    };
    let lead = state
        .store
        .update_lead(&scope.account_id, &id, &patch)
        .await?;
    Ok(Json(lead.into()))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Part of an address or name, case-insensitive.
    pub q: Option<String>,
    /// Leads per page (50 when absent).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// The account an operator key acts on.
    pub account: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LeadPage {
    pub leads: Vec<LeadView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/leads`: the account's leads in address order, optionally matching `q`.
#[utoipa::path(
    get,
    path = "/v1/leads",
    operation_id = "search_leads",
    tag = "leads",
    params(SearchQuery),
    responses(
        (status = 200, description = "a page of leads in address order", body = LeadPage),
        KeyedErrors,
        QueryErrors,
    )
)]
pub async fn search(
    State(state): State<AppState>,
    scope: Scoped,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<LeadPage>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(
            EmailAddress::parse(c)
                .map_err(|_| ApiError::invalid("cursor", "not a cursor this API gave out"))?
                .normalized(),
        ),
        None => None,
    };
    let leads = state
        .store
        .search_leads(
            &scope.account_id,
            query.q.as_deref(),
            after.as_deref(),
            limit,
        )
        .await?;
    let next_cursor = (leads.len() == limit as usize)
        .then(|| leads.last().map(|l| l.email.clone()))
        .flatten();
    Ok(Json(LeadPage {
        leads: leads.into_iter().map(LeadView::from).collect(),
        next_cursor,
    }))
}

/// What erasing a lead did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasedView {
    /// Emails whose recipient, merge fields, quoted address and raw replies were removed.
    pub erased_emails: u64,
    /// Of those, emails still queued, now cancelled.
    pub cancelled: u64,
}

#[utoipa::path(
    delete,
    path = "/v1/leads/{id}",
    operation_id = "erase_lead",
    tag = "leads",
    params(("id" = String, Path, description = "the lead's id"), AccountQuery),
    responses(
        (status = 200, description = "the lead and its personal data are gone; its emails stay (recipient `[erased]`) and a block on its address stays as a hash", body = ErasedView),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn erase(
    State(state): State<AppState>,
    scope: Scoped,
    Path(id): Path<String>,
) -> Result<Json<ErasedView>, ApiError> {
    scope.caller.require(Role::Admin)?;
    let actor = format!("api:{}", scope.caller.key_id);
    let erased = state
        .store
        .erase_lead(&scope.account_id, &id, &actor)
        .await?;
    Ok(Json(ErasedView {
        erased_emails: erased.emails,
        cancelled: erased.cancelled,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_json;

    fn permission(json: &str) -> Result<Option<Permission>, ApiError> {
        let body = format!(r#"{{"email": "a@example.com", "permission_to_email": {json}}}"#);
        parse_json::<CreateLead>(body.as_bytes()).map(|lead| lead.permission_to_email)
    }

    #[test]
    fn permission_is_a_word_or_a_boolean_and_a_wrong_one_names_the_field_and_its_values() {
        for (json, want) in [
            (r#""yes""#, Some(Permission::Yes)),
            (r#""No""#, Some(Permission::No)),
            ("true", Some(Permission::Yes)),
            ("false", Some(Permission::No)),
            ("null", None),
        ] {
            assert_eq!(permission(json).unwrap(), want, "{json}");
        }
        let absent = parse_json::<UpdateLead>(br#"{"first_name": "Ana"}"#).unwrap();
        assert_eq!(absent.permission_to_email, None);
        for (json, says) in [
            (r#""maybe""#, "'maybe'"),
            ("1", r#""yes", "no", true or false"#),
            ("[]", r#""yes", "no", true or false"#),
        ] {
            match permission(json) {
                Err(ApiError::Invalid(errors)) => {
                    assert_eq!(errors[0].field, "permission_to_email", "{json}");
                    assert!(errors[0].message.contains(says), "{json}: {errors:?}");
                }
                other => panic!("{json}: {other:?}"),
            }
        }
    }
}
