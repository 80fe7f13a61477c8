//! The admin pages, for the account in view (admins, and operators looking at an account):
//! its [`users`], [`api_keys`], [`smtp_credentials`] and [`webhooks`]. Everyone else gets the
//! 403 page. Each act is a form with the session's CSRF token; another account's ids answer
//! 404 as missing ones do. A secret (an API key, an SMTP password, a webhook's signing key, a
//! new user's first password) is on the answer to the form that made it, once: it is never
//! stored in plain text, put in a URL or logged, so no later page can show it again.

pub(crate) mod api_keys;
pub(crate) mod smtp_credentials;
pub(crate) mod users;
pub(crate) mod webhooks;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use mailtrail_domain::Role;
use serde::Deserialize;

use crate::error::WebError;
use crate::format::query;
use crate::layout::{Chrome, Section};
use crate::pages::render;
use crate::session::Viewer;

const ADMINS_ONLY: &str =
    "Users, API keys, SMTP credentials and webhooks are managed by the account's admins.";

/// The admin pages, as the tab bar on each of them lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    Users,
    ApiKeys,
    SmtpCredentials,
    Webhooks,
}

impl Tab {
    const ALL: [Tab; 4] = [
        Tab::Users,
        Tab::ApiKeys,
        Tab::SmtpCredentials,
        Tab::Webhooks,
    ];

    fn href(self) -> &'static str {
        match self {
            Tab::Users => "/admin/users",
            Tab::ApiKeys => "/admin/api-keys",
            Tab::SmtpCredentials => "/admin/smtp-credentials",
            Tab::Webhooks => "/admin/webhooks",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Tab::Users => "Users",
            Tab::ApiKeys => "API keys",
            Tab::SmtpCredentials => "SMTP credentials",
            Tab::Webhooks => "Webhooks",
        }
    }
}

pub(crate) struct TabLink {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What every admin page's template shows around its content: the layout and the tabs.
pub(crate) struct Frame {
    pub chrome: Chrome,
    pub tabs: Vec<TabLink>,
}

impl Frame {
    /// The frame of `tab`'s page, once the viewer is known to be an admin (else the 403 page).
    /// `title` names the page; the account's name follows it.
    pub(crate) fn new(viewer: &Viewer, tab: Tab, title: &str) -> Result<Frame, WebError> {
        viewer.require(Role::Admin, ADMINS_ONLY)?;
        let title = match viewer.account_name() {
            Some(account) => format!("{title} — {account}"),
            None => title.to_owned(),
        };
        Ok(Frame {
            chrome: Chrome::new(viewer, title, Section::Admin, tab.href()),
            tabs: Tab::ALL
                .into_iter()
                .map(|t| TabLink {
                    href: t.href(),
                    label: t.label(),
                    current: t == tab,
                })
                .collect(),
        })
    }
}

/// A secret just made, for the one page that shows it.
pub(crate) struct Secret {
    /// What it is: "API key", "Password", "Signing secret".
    pub label: &'static str,
    pub value: String,
}

/// What an admin page says above its list about the last form (templates/admin/notices.html).
#[derive(Default)]
pub(crate) struct Said {
    /// What it did.
    pub notice: Option<String>,
    /// Why it was not acted on.
    pub error: Option<String>,
    /// The secret it made, this once.
    pub secret: Option<Secret>,
}

impl Said {
    /// The form made a secret: `notice` says what, and the secret is shown below it.
    pub(crate) fn made(notice: String, label: &'static str, value: String) -> Said {
        Said {
            notice: Some(notice),
            secret: Some(Secret { label, value }),
            ..Said::default()
        }
    }

    /// The form was not acted on, for this reason.
    pub(crate) fn refused(why: String) -> Said {
        Said {
            error: Some(why),
            ..Said::default()
        }
    }
}

/// A page answering a form: 200 when it did what was asked, 422 with the page's error when not.
pub(crate) fn answer(page: &impl askama::Template, refused: bool) -> Result<Response, WebError> {
    let status = if refused {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, render(page)?).into_response())
}

/// A form that removes or revokes one of the account's rows, confirmed by a checkbox.
#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    pub id: String,
    /// The confirmation checkbox.
    pub confirm: Option<String>,
}

impl ConfirmForm {
    /// The row of the account's `rows` whose `id` this form names; another account's or a
    /// missing one is the 404 page.
    pub(crate) fn named<'r, R>(
        &self,
        rows: &'r [R],
        id: impl Fn(&R) -> &str,
    ) -> Result<&'r R, WebError> {
        rows.iter()
            .find(|r| id(r) == self.id)
            .ok_or(WebError::NotFound)
    }
}

/// Back to the page at `path` after a removal or revocation, naming what went (`?done=`) for
/// its notice to say.
pub(crate) fn back_with_notice(path: &str, gone: &str) -> Response {
    Redirect::to(&format!("{path}{}", query(&[("done", gone)]))).into_response()
}

/// Set by [`back_with_notice`]'s redirect: what the last removal or revocation took away.
#[derive(Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
}

impl Done {
    /// The page's notice, in the words `say` gives the thing that went.
    pub(crate) fn notice(self, say: impl FnOnce(String) -> String) -> Option<String> {
        self.done.map(say)
    }
}

/// The roles an admin can give: never operator, which belongs to no account.
pub(crate) const ROLES: [Role; 2] = [Role::User, Role::Admin];

/// The role a form names, if an admin may give it.
pub(crate) fn account_role(name: &str) -> Option<Role> {
    ROLES.into_iter().find(|r| r.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_give_only_account_roles() {
        assert_eq!(account_role("user"), Some(Role::User));
        assert_eq!(account_role("admin"), Some(Role::Admin));
        for refused in ["operator", "Admin", "", "root"] {
            assert_eq!(account_role(refused), None, "{refused}");
        }
    }
}
