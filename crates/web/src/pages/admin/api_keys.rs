//! `GET /admin/api-keys`: the account's API keys — their id, role and age, never the key —
//! with a form to make one (`POST /admin/api-keys`, with a role; the key is on that answer
//! only) and one per key to revoke it (`POST /admin/api-keys/revoke`, confirmed by a
//! checkbox; the key stops working at once).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use mailtrail_api::AppState;
use serde::Deserialize;

use super::{ConfirmForm, Done, Frame, Said, Tab, TabLink, account_role, answer, back_with_notice};
use crate::csrf::Posted;
use crate::error::WebError;
use crate::format::time;
use crate::layout::Chrome;
use crate::session::Viewer;

struct KeyRow {
    id: String,
    role: &'static str,
    created: String,
}

#[derive(Template)]
#[template(path = "admin/api_keys.html")]
struct KeysPage {
    chrome: Chrome,
    tabs: Vec<TabLink>,
    keys: Vec<KeyRow>,
    said: Said,
    new_role: String,
}

async fn load(state: &AppState, viewer: &Viewer) -> Result<KeysPage, WebError> {
    let Frame { chrome, tabs } = Frame::new(viewer, Tab::ApiKeys, "API keys")?;
    let keys = state.store.api_keys(&viewer.account_id).await?;
    Ok(KeysPage {
        chrome,
        tabs,
        keys: keys
            .into_iter()
            .map(|k| KeyRow {
                id: k.id,
                role: k.role.as_str(),
                created: time(k.created_at_ms),
            })
            .collect(),
        said: Said::default(),
        new_role: "user".to_owned(),
    })
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let mut page = load(&state, &viewer).await?;
    page.said.notice = done.notice(|id| {
        format!("The key {id} was revoked: requests with it are refused from now on.")
    });
    answer(&page, false)
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    #[serde(default)]
    role: String,
}

/// `POST /admin/api-keys`: a new key for the account, shown on this answer only.
pub(crate) async fn create(
    State(state): State<AppState>,
    posted: Posted<CreateForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let mut page = load(&state, &viewer).await?;
    let Some(role) = account_role(&form.role) else {
        page.said = Said::refused("Choose the key's role: user or admin.".to_owned());
        page.new_role = form.role;
        return answer(&page, true);
    };
    let key = state
        .store
        .create_api_key(Some(&viewer.account_id), role)
        .await?;
    let mut page = load(&state, &viewer).await?;
    page.said = Said::made(
        format!(
            "A new {} key ({}) was made. Send it as 'Authorization: Bearer KEY':",
            role.as_str(),
            key.id
        ),
        "API key",
        key.key,
    );
    page.new_role = form.role;
    answer(&page, false)
}

/// `POST /admin/api-keys/revoke`: forgets one of the account's keys.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    posted: Posted<ConfirmForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let mut page = load(&state, &viewer).await?;
    form.named(&page.keys, |k| &k.id)?;
    if form.confirm.is_none() {
        page.said = Said::refused(format!(
            "The key {} was not revoked: tick the box that confirms it first.",
            form.id
        ));
        return answer(&page, true);
    }
    state
        .store
        .revoke_api_key(&viewer.account_id, &form.id)
        .await?;
    Ok(back_with_notice("/admin/api-keys", &form.id))
}
