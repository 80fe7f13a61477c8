//! `GET /v1/settings` and `PATCH /v1/settings` (admins): open and click tracking (off by
//! default), the tracking base URL, and the machine-hit threshold; whether sending is paused
//! by the bounce/complaint protection, and `POST /v1/sending/resume` (admins) to lift it.

use axum::Json;
use axum::extract::State;
use mailtrail_domain::Role;
use mailtrail_domain::base_url::parse_base_url;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{AccountQuery, Scoped};
use crate::error::{ApiError, BodyErrors, KeyedErrors, RoleErrors};

#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    pub open_tracking: bool,
    pub click_tracking: bool,
    /// Base URL of tracking and unsubscribe links; `null` = the service's own.
    pub tracking_base_url: Option<String>,
    /// Opens and clicks this soon after delivery count as a machine's.
    pub machine_threshold_secs: i64,
    /// Set while the account's sending is paused because its bounce or complaint rate was
    /// too high: queued emails wait until an admin resumes (`POST /v1/sending/resume`).
    pub sending_paused: Option<PauseView>,
    /// Where people's replies are forwarded; `null` = to each email's From address.
    pub reply_forward_to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PauseView {
    pub since: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Resumed {
    /// Whether sending was paused (and now is not).
    pub resumed: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub open_tracking: Option<bool>,
    pub click_tracking: Option<bool>,
    /// An `http://` or `https://` URL; `null` goes back to the service's own URL.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>, required = false, pattern = "^https?://")]
    pub tracking_base_url: Option<Option<String>>,
    #[schema(minimum = 0, maximum = 3600)]
    pub machine_threshold_secs: Option<i64>,
    /// An address for every reply; `null` goes back to each email's From address.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>, required = false)]
    pub reply_forward_to: Option<Option<String>>,
}

/// Tells a missing field (keep) from an explicit `null` (clear).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

async fn view(
    state: &AppState,
    account_id: &str,
    s: mailtrail_store::Settings,
) -> Result<SettingsView, ApiError> {
    let pause = state.store.sending_pause(account_id).await?;
    let reply_forward_to = state.store.reply_forward_to(account_id).await?;
    Ok(SettingsView {
        open_tracking: s.open_tracking,
        click_tracking: s.click_tracking,
        tracking_base_url: s.tracking_base_url,
        machine_threshold_secs: s.machine_threshold_secs,
        reply_forward_to,
        sending_paused: pause.map(|p| PauseView {
            since: crate::rfc3339(p.since_ms),
            reason: p.reason,
        }),
    })
}

#[utoipa::path(
    get,
    path = "/v1/settings",
    operation_id = "get_settings",
    tag = "settings",
    params(AccountQuery),
    responses((status = 200, description = "the account's settings", body = SettingsView), KeyedErrors)
)]
pub async fn show(
    State(state): State<AppState>,
    scope: Scoped,
) -> Result<Json<SettingsView>, ApiError> {
    let settings = state.store.settings(&scope.account_id).await?;
    Ok(Json(view(&state, &scope.account_id, settings).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/settings",
    operation_id = "update_settings",
    tag = "settings",
    params(AccountQuery),
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "the settings as changed", body = SettingsView),
        KeyedErrors,
        BodyErrors,
        RoleErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    scope: Scoped,
    crate::extract::ApiJson(patch): crate::extract::ApiJson<SettingsPatch>,
) -> Result<Json<SettingsView>, ApiError> {
    scope.caller.require(Role::Admin)?;
    let mut settings = state.store.settings(&scope.account_id).await?;
    if let Some(on) = patch.open_tracking {
        settings.open_tracking = on;
    }
    if let Some(on) = patch.click_tracking {
        settings.click_tracking = on;
    }
    if let Some(url) = patch.tracking_base_url {
        settings.tracking_base_url = url
            .map(|u| parse_base_url(&u))
            .transpose()
            .map_err(|e| ApiError::invalid("tracking_base_url", e.to_string()))?;
    }
    if let Some(secs) = patch.machine_threshold_secs {
        if !(0..=3600).contains(&secs) {
            return Err(ApiError::invalid(
                "machine_threshold_secs",
                "0 to 3600 seconds",
            ));
        }
        settings.machine_threshold_secs = secs;
    }
    let forward_to = match patch.reply_forward_to {
        Some(Some(to)) => Some(Some(
            mailtrail_domain::EmailAddress::parse(&to)
                .map_err(|e| ApiError::invalid("reply_forward_to", e.to_string()))?
                .to_string(),
        )),
        Some(None) => Some(None),
        None => None,
    };
    state
        .store
        .save_settings(&scope.account_id, &settings)
        .await?;
    if let Some(to) = forward_to {
        state
            .store
            .set_reply_forward_to(&scope.account_id, to.as_deref())
            .await?;
    }
    Ok(Json(view(&state, &scope.account_id, settings).await?))
}

#[utoipa::path(
    post,
    path = "/v1/sending/resume",
    operation_id = "resume_sending",
    tag = "settings",
    params(AccountQuery),
    responses(
        (status = 200, description = "sending goes on: queued emails are claimed again", body = Resumed),
        KeyedErrors,
        RoleErrors,
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    scope: Scoped,
) -> Result<Json<Resumed>, ApiError> {
    scope.caller.require(Role::Admin)?;
    let resumed = match state.store.resume_sending(&scope.account_id).await {
        Ok(()) => true,
        Err(mailtrail_store::StoreError::NotFound) => false,
        Err(e) => return Err(e.into()),
    };
    if resumed {
        state.queued.notify_one();
    }
    Ok(Json(Resumed { resumed }))
}
