//! `GET /v1/settings` and `PATCH /v1/settings` (admins): open and click tracking (off by
//! default), the tracking base URL, and the machine-hit threshold.

use axum::Json;
use axum::extract::State;
use mailtrail_domain::Role;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Scoped;
use crate::error::ApiError;

#[derive(Debug, Serialize)]
pub struct SettingsView {
    pub open_tracking: bool,
    pub click_tracking: bool,
    pub tracking_base_url: Option<String>,
    pub machine_threshold_secs: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub open_tracking: Option<bool>,
    pub click_tracking: Option<bool>,
    /// `null` goes back to the service's own URL.
    #[serde(default, with = "double_option")]
    pub tracking_base_url: Option<Option<String>>,
    pub machine_threshold_secs: Option<i64>,
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

fn view(s: mailtrail_store::Settings) -> SettingsView {
    SettingsView {
        open_tracking: s.open_tracking,
        click_tracking: s.click_tracking,
        tracking_base_url: s.tracking_base_url,
        machine_threshold_secs: s.machine_threshold_secs,
    }
}

pub async fn show(
    State(state): State<AppState>,
    scope: Scoped,
) -> Result<Json<SettingsView>, ApiError> {
    Ok(Json(view(state.store.settings(&scope.account_id).await?)))
}

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
        if let Some(url) = &url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ApiError::invalid(
                "tracking_base_url",
                "an http:// or https:// URL",
            ));
        }
        settings.tracking_base_url = url.map(|u| u.trim_end_matches('/').to_owned());
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
    state
        .store
        .save_settings(&scope.account_id, &settings)
        .await?;
    Ok(Json(view(settings)))
}
