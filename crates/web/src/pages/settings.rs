//! `GET/POST /settings` (admins and operators): open and click tracking, the tracking base
//! URL and the machine-hit threshold of the account in view, checked by the same rules as
//! `PATCH /v1/settings` and saved through the store.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use mailtrail_api::AppState;
use mailtrail_domain::Role;
use mailtrail_store::Settings;
use serde::Deserialize;

use crate::csrf::Posted;
use crate::error::WebError;
use crate::layout::{Chrome, Section};
use crate::pages::render;
use crate::session::Viewer;

const ADMINS_ONLY: &str = "Settings are changed by the account's admins.";

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    open_tracking: bool,
    click_tracking: bool,
    tracking_base_url: String,
    machine_threshold_secs: String,
    errors: Vec<&'static str>,
    saved: bool,
}

#[derive(Deserialize)]
pub(crate) struct SavedQuery {
    saved: Option<String>,
}

fn chrome(viewer: &Viewer, uri: &Uri) -> Chrome {
    let title = match viewer.account_name() {
        Some(name) => format!("Settings — {name}"),
        None => "Settings".to_owned(),
    };
    Chrome::new(viewer, title, Section::Settings, uri.path())
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Query(params): Query<SavedQuery>,
) -> Result<Response, WebError> {
    viewer.require(Role::Admin, ADMINS_ONLY)?;
    let s = state.store.settings(&viewer.account_id).await?;
    let page = SettingsPage {
        chrome: chrome(&viewer, &uri),
        open_tracking: s.open_tracking,
        click_tracking: s.click_tracking,
        tracking_base_url: s.tracking_base_url.unwrap_or_default(),
        machine_threshold_secs: s.machine_threshold_secs.to_string(),
        errors: Vec::new(),
        saved: params.saved.is_some(),
    };
    Ok(render(&page)?.into_response())
}

/// The form as sent: an unticked checkbox sends nothing.
#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    open_tracking: Option<String>,
    click_tracking: Option<String>,
    #[serde(default)]
    tracking_base_url: String,
    #[serde(default)]
    machine_threshold_secs: String,
}

impl SettingsForm {
    /// The settings this form asks for, or what is wrong with it.
    fn settings(&self) -> Result<Settings, Vec<&'static str>> {
        let mut errors = Vec::new();
        let url = self.tracking_base_url.trim();
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            errors.push("The tracking base URL must start with https:// or http://.");
        }
        let threshold = self.machine_threshold_secs.trim().parse::<i64>();
        if !matches!(threshold, Ok(0..=3600)) {
            errors.push("The machine-hit threshold is a whole number of seconds, 0 to 3600.");
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Settings {
            open_tracking: self.open_tracking.is_some(),
            click_tracking: self.click_tracking.is_some(),
            tracking_base_url: (!url.is_empty()).then(|| url.trim_end_matches('/').to_owned()),
            machine_threshold_secs: threshold.unwrap_or_default(),
        })
    }
}

pub(crate) async fn save(
    State(state): State<AppState>,
    uri: Uri,
    posted: Posted<SettingsForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    viewer.require(Role::Admin, ADMINS_ONLY)?;
    match form.settings() {
        Ok(settings) => {
            state
                .store
                .save_settings(&viewer.account_id, &settings)
                .await?;
            Ok(Redirect::to("/settings?saved=1").into_response())
        }
        Err(errors) => {
            let page = SettingsPage {
                chrome: chrome(&viewer, &uri),
                open_tracking: form.open_tracking.is_some(),
                click_tracking: form.click_tracking.is_some(),
                tracking_base_url: form.tracking_base_url,
                machine_threshold_secs: form.machine_threshold_secs,
                errors,
                saved: false,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(url: &str, secs: &str) -> SettingsForm {
        SettingsForm {
            open_tracking: Some("on".into()),
            click_tracking: None,
            tracking_base_url: url.into(),
            machine_threshold_secs: secs.into(),
        }
    }

    #[test]
    fn forms_become_settings_by_the_api_rules() {
        let s = form("https://t.example.com/", "5").settings().unwrap();
        assert!(s.open_tracking && !s.click_tracking);
        assert_eq!(
            s.tracking_base_url.as_deref(),
            Some("https://t.example.com")
        );
        assert_eq!(s.machine_threshold_secs, 5);
        assert_eq!(form("", "0").settings().unwrap().tracking_base_url, None);
        assert_eq!(form("ftp://x", "5").settings().unwrap_err().len(), 1);
        assert_eq!(form("", "3601").settings().unwrap_err().len(), 1);
        assert_eq!(form("x", "soon").settings().unwrap_err().len(), 2);
    }
}
