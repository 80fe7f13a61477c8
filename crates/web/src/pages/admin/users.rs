//! `GET /admin/users`: the account's logins, with a form to add one (`POST /admin/users`: an
//! email and a role; Mailtrail makes the first password and shows it once, to hand over) and
//! one per login to remove it (`POST /admin/users/remove`, confirmed by a checkbox; it is
//! signed out at once). Admins cannot remove themselves, so an account keeps someone who can
//! manage it.

use argon2::password_hash::SaltString;
use argon2::password_hash::rand_core::OsRng;
use argon2::{Argon2, PasswordHasher};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use mailtrail_api::AppState;
use mailtrail_domain::{EmailAddress, Role};
use mailtrail_store::StoreError;
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde::Deserialize;

use super::{ConfirmForm, Done, Frame, Said, Tab, TabLink, account_role, answer, back_with_notice};
use crate::csrf::Posted;
use crate::error::WebError;
use crate::format::time;
use crate::layout::Chrome;
use crate::session::Viewer;

/// Characters of a first password: about 119 random bits.
const PASSWORD_LEN: usize = 20;

struct UserRow {
    id: String,
    email: String,
    role: &'static str,
    added: String,
    /// The viewer: no remove form.
    you: bool,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    chrome: Chrome,
    tabs: Vec<TabLink>,
    users: Vec<UserRow>,
    said: Said,
    new_email: String,
    new_role: String,
}

async fn load(state: &AppState, viewer: &Viewer) -> Result<UsersPage, WebError> {
    let Frame { chrome, tabs } = Frame::new(viewer, Tab::Users, "Users")?;
    let users = state.store.users(&viewer.account_id).await?;
    Ok(UsersPage {
        chrome,
        tabs,
        users: users
            .into_iter()
            .map(|u| UserRow {
                you: u.email == viewer.email,
                id: u.id,
                email: u.email,
                role: u.role.as_str(),
                added: time(u.created_at_ms),
            })
            .collect(),
        said: Said::default(),
        new_email: String::new(),
        new_role: "user".to_owned(),
    })
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let mut page = load(&state, &viewer).await?;
    page.said.notice = done.notice(|email| format!("{email} was removed and signed out."));
    answer(&page, false)
}

#[derive(Deserialize)]
pub(crate) struct AddForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

/// A random first password and its argon2 hash, hashed off the async workers.
async fn first_password() -> Result<(String, String), WebError> {
    let password: String = rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect();
    let plain = password.clone();
    let hash = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(plain.as_bytes(), &SaltString::generate(&mut OsRng))
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(|e| WebError::Internal(format!("hashing panicked: {e}")))?
    .map_err(|e| WebError::Internal(format!("cannot hash a password: {e}")))?;
    Ok((password, hash))
}

/// A login just added, with the password to hand over.
struct Added {
    email: String,
    role: Role,
    password: String,
}

/// Adds the login the form asks for, or says why not.
async fn add_login(
    state: &AppState,
    viewer: &Viewer,
    form: &AddForm,
) -> Result<Result<Added, String>, WebError> {
    let Some(role) = account_role(&form.role) else {
        return Ok(Err("Choose the role: user or admin.".to_owned()));
    };
    let typed = form.email.trim();
    let email = match EmailAddress::parse(typed) {
        // As the store keeps logins: lower-case, so sign-in finds them however typed.
        Ok(email) => email.to_string().to_lowercase(),
        Err(e) => return Ok(Err(format!("'{typed}' is not an email address: {e}."))),
    };
    let (password, hash) = first_password().await?;
    match state
        .store
        .create_user(&email, Some(&viewer.account_id), role, &hash)
        .await
    {
        Ok(_) => Ok(Ok(Added {
            email,
            role,
            password,
        })),
        Err(StoreError::Conflict(_)) => Ok(Err(format!(
            "{email} already signs in to Mailtrail: a login belongs to one account."
        ))),
        Err(e) => Err(e.into()),
    }
}

/// `POST /admin/users`: adds a login to the account with a first password shown once.
pub(crate) async fn add(
    State(state): State<AppState>,
    posted: Posted<AddForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let mut page = load(&state, &viewer).await?;
    match add_login(&state, &viewer, &form).await? {
        Ok(added) => {
            let mut page = load(&state, &viewer).await?;
            page.said = Said::made(
                format!(
                    "{} was added as {}. Give them this password to sign in with:",
                    added.email,
                    added.role.as_str()
                ),
                "Password",
                added.password,
            );
            answer(&page, false)
        }
        Err(why) => {
            page.said = Said::refused(why);
            page.new_email = form.email;
            page.new_role = form.role;
            answer(&page, true)
        }
    }
}

/// `POST /admin/users/remove`: removes one of the account's logins and ends its sessions.
pub(crate) async fn remove(
    State(state): State<AppState>,
    posted: Posted<ConfirmForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let mut page = load(&state, &viewer).await?;
    let user = form.named(&page.users, |u| &u.id)?;
    let email = user.email.clone();
    let why = if user.you {
        Some("You cannot remove yourself: another admin of the account can.".to_owned())
    } else if form.confirm.is_none() {
        Some(format!(
            "{} was not removed: tick the box that confirms it first.",
            user.email
        ))
    } else {
        None
    };
    if let Some(why) = why {
        page.said = Said::refused(why);
        return answer(&page, true);
    }
    state
        .store
        .remove_user(&viewer.account_id, &form.id)
        .await?;
    Ok(back_with_notice("/admin/users", &email))
}
