//! `GET /admin/smtp-credentials`: the logins mail clients submit the account's mail with
//! (AUTH PLAIN or LOGIN on the submission listener) — username, when made, last used,
//! revoked — never a password. `POST /admin/smtp-credentials` makes one, its password on
//! that answer only; `POST /admin/smtp-credentials/revoke` (confirmed by a checkbox) stops one
//! logging in, and it stays listed as revoked.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use mailtrail_api::AppState;
use serde::Deserialize;

use super::{ConfirmForm, Done, Frame, Said, Tab, TabLink, answer, back_with_notice};
use crate::csrf::Posted;
use crate::error::WebError;
use crate::format::time;
use crate::layout::Chrome;
use crate::session::Viewer;

struct CredentialRow {
    id: String,
    username: String,
    created: String,
    last_used: Option<String>,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/smtp_credentials.html")]
struct CredentialsPage {
    chrome: Chrome,
    tabs: Vec<TabLink>,
    credentials: Vec<CredentialRow>,
    said: Said,
}

async fn load(state: &AppState, viewer: &Viewer) -> Result<CredentialsPage, WebError> {
    let Frame { chrome, tabs } = Frame::new(viewer, Tab::SmtpCredentials, "SMTP credentials")?;
    let credentials = state
        .store
        .list_smtp_credentials(&viewer.account_id)
        .await?;
    Ok(CredentialsPage {
        chrome,
        tabs,
        credentials: credentials
            .into_iter()
            .map(|c| CredentialRow {
                id: c.id,
                username: c.username,
                created: time(c.created_at_ms),
                last_used: c.last_used_at_ms.map(time),
                revoked: c.revoked_at_ms.map(time),
            })
            .collect(),
        said: Said::default(),
    })
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let mut page = load(&state, &viewer).await?;
    page.said.notice = done.notice(|user| format!("{user} was revoked: it no longer logs in."));
    answer(&page, false)
}

/// The create form carries nothing but its CSRF token.
#[derive(Deserialize)]
pub(crate) struct CreateForm {}

/// `POST /admin/smtp-credentials`: a new username and password, the password shown once.
pub(crate) async fn create(
    State(state): State<AppState>,
    posted: Posted<CreateForm>,
) -> Result<Response, WebError> {
    let viewer = posted.viewer;
    // Refuse a non-admin before anything is made.
    Frame::new(&viewer, Tab::SmtpCredentials, "SMTP credentials")?;
    let made = state
        .store
        .create_smtp_credential(&viewer.account_id)
        .await?;
    let mut page = load(&state, &viewer).await?;
    page.said = Said::made(
        format!(
            "The credential {} was made. Its password, for the mail client's SMTP login:",
            made.username
        ),
        "Password",
        made.password,
    );
    answer(&page, false)
}

/// `POST /admin/smtp-credentials/revoke`: one of the account's credentials stops logging in.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    posted: Posted<ConfirmForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let mut page = load(&state, &viewer).await?;
    let username = form.named(&page.credentials, |c| &c.id)?.username.clone();
    if form.confirm.is_none() {
        page.said = Said::refused(format!(
            "{username} was not revoked: tick the box that confirms it first."
        ));
        return answer(&page, true);
    }
    state
        .store
        .revoke_smtp_credential(&form.id, Some(&viewer.account_id))
        .await?;
    Ok(back_with_notice("/admin/smtp-credentials", &username))
}
