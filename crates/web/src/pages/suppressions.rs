//! `GET /suppressions`: the blocked addresses — reason in words, since when, the SMTP reply —
//! and the audit trail of an address. Every user reads their account's list (a block bites
//! every sender of the account, so each should see why); operators see every account's and
//! get a form per row to lift the block for a stated reason. `POST /suppressions/remove`
//! (operators only) lifts it, recorded as `web:{operator's email}`.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::{Html, Redirect};
use mailtrail_api::AppState;
use mailtrail_domain::{EmailAddress, Role};
use serde::Deserialize;

use crate::csrf::Posted;
use crate::error::WebError;
use crate::format::{in_words, query, time};
use crate::layout::{Chrome, Section};
use crate::pages::render;
use crate::session::Viewer;

/// Blocks listed at most.
const LIMIT: i64 = 1000;
const OPERATORS_ONLY: &str = "Only an operator can lift a block.";

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    /// Show this address's audit trail (in the account in view).
    address: Option<String>,
    /// Set after a removal, to say so.
    removed: Option<String>,
}

struct Row {
    account_id: String,
    account: String,
    address: String,
    reason: &'static str,
    words: String,
    since: String,
    status: String,
    history_href: String,
}

struct LogRow {
    at: String,
    action: String,
    actor: String,
    note: String,
}

#[derive(Template)]
#[template(path = "suppressions.html")]
struct SuppressionsPage {
    chrome: Chrome,
    rows: Vec<Row>,
    /// Operators lift blocks; everyone else reads.
    can_remove: bool,
    trail_address: String,
    trail_account: String,
    trail: Vec<LogRow>,
    removed: bool,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Query(params): Query<PageQuery>,
) -> Result<Html<String>, WebError> {
    let operator = viewer.role >= Role::Operator;
    let name_of = |id: &str| {
        viewer
            .accounts
            .iter()
            .find(|a| a.id == id)
            .map_or_else(|| id.to_owned(), |a| a.name.clone())
    };
    let scope = (!operator).then_some(viewer.account_id.as_str());
    let blocks = state.store.suppressions(scope, LIMIT).await?;
    let trail_address = params.address.unwrap_or_default().trim().to_owned();
    let trail = match EmailAddress::parse(&trail_address) {
        Ok(address) if !trail_address.is_empty() => state
            .store
            .suppression_log(&viewer.account_id, &address)
            .await?
            .into_iter()
            .map(|e| LogRow {
                at: time(e.at_ms),
                action: e.action,
                actor: e.actor,
                note: e.note,
            })
            .collect(),
        _ => Vec::new(),
    };
    let page = SuppressionsPage {
        chrome: Chrome::new(
            &viewer,
            "Suppression list",
            Section::Suppressions,
            uri.path(),
        ),
        rows: blocks
            .into_iter()
            .map(|s| Row {
                account: name_of(&s.account_id),
                history_href: format!(
                    "/suppressions{}#trail",
                    query(&[("account", &s.account_id), ("address", &s.address)])
                ),
                reason: s.block.reason.as_str(),
                words: in_words(Some(s.block.reason), s.block.status.as_deref())
                    .map(|w| w.summary)
                    .unwrap_or_default(),
                since: time(s.created_at_ms),
                status: s.block.status.unwrap_or_default(),
                account_id: s.account_id,
                address: s.address,
            })
            .collect(),
        can_remove: operator,
        trail_account: viewer.account_name().unwrap_or_default().to_owned(),
        trail_address,
        trail,
        removed: params.removed.is_some(),
    };
    render(&page)
}

#[derive(Deserialize)]
pub(crate) struct RemoveForm {
    account: String,
    address: String,
    reason: String,
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    posted: Posted<RemoveForm>,
) -> Result<Redirect, WebError> {
    let Posted { viewer, form } = posted;
    viewer.require(Role::Operator, OPERATORS_ONLY)?;
    let reason = form.reason.trim();
    if reason.is_empty() {
        return Err(WebError::BadRequest(
            "Say why the block is lifted: the reason is kept in the audit trail.".into(),
        ));
    }
    let address = EmailAddress::parse(&form.address)
        .map_err(|e| WebError::BadRequest(format!("That is not an email address: {e}.")))?;
    state
        .store
        .remove_suppression(
            &form.account,
            &address,
            &format!("web:{}", viewer.email),
            reason,
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/suppressions{}#trail",
        query(&[
            ("account", &form.account),
            ("address", &address.normalized()),
            ("removed", "1"),
        ])
    )))
}
