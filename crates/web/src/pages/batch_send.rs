//! `GET/POST /batches/new`: send one message to a chosen set of leads as a named batch. The
//! form searches the account's leads (its Search button keeps what was typed and what was
//! ticked), the leads are ticked one by one, and Send queues them in one submission through
//! the path of `POST /v1/emails/batch` ([`message::send`]): refused leads (Permission to
//! Email No) are listed with the reason, blocked ones are recorded as dropped.
//! `POST /batches/cancel` cancels every email of a batch still waiting to be sent, through
//! the store's cancel, as `POST /v1/batches/{batch}/cancel` does.

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use mailtrail_api::AppState;
use mailtrail_domain::Permission;
use mailtrail_domain::merge::breaks_header;
use mailtrail_outbound::submit::{Accepted, Recipient};
use mailtrail_store::queue::LeadBrief;
use mailtrail_store::{Cancel, Lead};
use serde::Deserialize;

use crate::csrf::Posted;
use crate::error::WebError;
use crate::format::query;
use crate::layout::{Chrome, Section};
use crate::pages::leads::full_name;
use crate::pages::message::{self, MessageForm, SenderDomains};
use crate::pages::render;
use crate::session::Viewer;

/// Search results shown at once.
const RESULTS: u32 = 50;
/// Most leads one batch from this page goes to; the API takes far more.
const MAX_CHOSEN: usize = 5_000;
/// Longest batch name: it is a column heading in the batch report.
const MAX_BATCH_NAME: usize = 100;

/// A lead to tick.
struct Pick {
    id: String,
    name: String,
    email: String,
    permission: bool,
    chosen: bool,
}

/// What a sent batch did.
struct Outcome {
    batch: String,
    queued: usize,
    dropped: usize,
    /// Each lead not sent to, and why.
    refused: Vec<(String, String)>,
    report_href: String,
    emails_href: String,
}

#[derive(Template)]
#[template(path = "batch_send.html")]
struct BatchPage {
    chrome: Chrome,
    q: String,
    batch: String,
    /// The leads ticked, first; then the search's other results.
    picks: Vec<Pick>,
    chosen: usize,
    senders: SenderDomains,
    /// The merge fields every lead has.
    fields: Vec<String>,
    form: MessageForm,
    errors: Vec<String>,
    outcome: Option<Outcome>,
}

/// The form as sent: the message, the batch name, the search and the ticked leads.
#[derive(Default)]
struct BatchForm {
    message: MessageForm,
    batch: String,
    q: String,
    chosen: Vec<String>,
    send: bool,
}

impl BatchForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = BatchForm::default();
        for (key, value) in pairs {
            match key.as_str() {
                "batch" => form.batch = value,
                "q" => form.q = value,
                "lead" if !form.chosen.contains(&value) => form.chosen.push(value),
                "action" => form.send = value == "send",
                _ => {
                    form.message.take(&key, value);
                }
            }
        }
        form
    }

    /// The batch name, or what is wrong with it.
    fn batch_name(&self) -> Result<String, String> {
        let name = self.batch.trim();
        if name.is_empty() {
            return Err("Name the batch: the batch report compares batches by name.".into());
        }
        if name.chars().count() > MAX_BATCH_NAME || name.chars().any(breaks_header) {
            return Err(format!(
                "The batch name must be one line of at most {MAX_BATCH_NAME} characters."
            ));
        }
        Ok(name.to_owned())
    }
}

/// A ticked lead, as the submission's lookup gives it.
fn chosen_pick(lead: &LeadBrief) -> Pick {
    let field = |name: &str| lead.fields.get(name).map(String::as_str);
    Pick {
        id: lead.id.clone(),
        name: full_name(field("first_name"), field("last_name")),
        email: lead.address.clone(),
        permission: lead.permission == Permission::Yes,
        chosen: true,
    }
}

/// A search result, not ticked.
fn found_pick(lead: &Lead) -> Pick {
    Pick {
        id: lead.id.clone(),
        name: full_name(lead.first_name.as_deref(), lead.last_name.as_deref()),
        email: lead.email.clone(),
        permission: lead.permission == Permission::Yes,
        chosen: false,
    }
}

/// The page for this form: the ticked leads (this account's only), then the search's others.
async fn page(
    state: &AppState,
    viewer: &Viewer,
    uri: &Uri,
    form: &BatchForm,
) -> Result<(BatchPage, Vec<String>), WebError> {
    let account = &viewer.account_id;
    let found = state.store.leads_by_ids(account, &form.chosen).await?;
    // In the order ticked; ids of no lead of this account are dropped here.
    let chosen: Vec<&LeadBrief> = form.chosen.iter().filter_map(|id| found.get(id)).collect();
    let mut picks: Vec<Pick> = chosen.iter().map(|l| chosen_pick(l)).collect();
    let results = state
        .store
        .search_leads(account, Some(&form.q), None, RESULTS)
        .await?;
    picks.extend(
        results
            .iter()
            .filter(|l| !found.contains_key(&l.id))
            .map(found_pick),
    );
    let ids = chosen.iter().map(|l| l.id.clone()).collect();
    let page = BatchPage {
        chrome: Chrome::new(viewer, "Send a batch", Section::Batches, uri.path()),
        q: form.q.clone(),
        batch: form.batch.clone(),
        chosen: chosen.len(),
        picks,
        senders: message::senders(state, account).await?,
        fields: ["email", "first_name", "last_name", "unsubscribe_url"]
            .map(str::to_owned)
            .to_vec(),
        form: form.message.clone(),
        errors: Vec::new(),
        outcome: None,
    };
    Ok((page, ids))
}

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
}

pub(crate) async fn form(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    axum::extract::Query(params): axum::extract::Query<SearchQuery>,
) -> Result<Response, WebError> {
    let form = BatchForm {
        q: params.q.unwrap_or_default(),
        ..BatchForm::default()
    };
    let (mut page, _) = page(&state, &viewer, &uri, &form).await?;
    if let Some(first) = page.senders.domains.first() {
        page.form.from_domain = first.clone();
    }
    Ok(render(&page)?.into_response())
}

/// What the submission did, for the page.
fn outcome(batch: String, chosen: &[String], picks: &[Pick], accepted: Accepted) -> Outcome {
    let address = |index: usize| {
        chosen
            .get(index)
            .and_then(|id| picks.iter().find(|p| &p.id == id))
            .map_or_else(String::new, |p| p.email.clone())
    };
    Outcome {
        report_href: format!("/reports/batches{}", query(&[("batch", &batch)])),
        emails_href: format!("/reports/emails{}", query(&[("batch", &batch)])),
        queued: accepted.queued.len(),
        dropped: accepted
            .queued
            .iter()
            .filter(|q| q.dropped.is_some())
            .count(),
        refused: accepted
            .refused
            .into_iter()
            .map(|r| (address(r.index), r.message))
            .collect(),
        batch,
    }
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    uri: Uri,
    posted: Posted<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let form = BatchForm::from_pairs(form);
    let (mut page, chosen) = page(&state, &viewer, &uri, &form).await?;
    if !form.send {
        return Ok(render(&page)?.into_response());
    }
    let mut errors = Vec::new();
    let batch = form.batch_name().map_err(|e| errors.push(e)).ok();
    if chosen.is_empty() {
        errors.push("Tick at least one lead to send to.".into());
    }
    if chosen.len() > MAX_CHOSEN {
        errors.push(format!(
            "{} leads are ticked; one batch from this page goes to at most {MAX_CHOSEN}.",
            chosen.len()
        ));
    }
    let recipients = chosen
        .iter()
        .map(|id| Recipient {
            lead_id: Some(id.clone()),
            ..Recipient::default()
        })
        .collect();
    let request = form.message.request(recipients, batch.clone());
    let accepted = match (request, errors.is_empty()) {
        (Ok(request), true) => message::send(&state, &viewer.account_id, request).await?,
        (request, _) => Err(errors
            .into_iter()
            .chain(request.err().into_iter().flatten())
            .collect()),
    };
    match accepted {
        Ok(accepted) => {
            let batch = batch.unwrap_or_default();
            page.outcome = Some(outcome(batch, &chosen, &page.picks, accepted));
            Ok(render(&page)?.into_response())
        }
        Err(errors) => {
            page.errors = errors;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CancelForm {
    #[serde(default)]
    batch: String,
    /// The confirmation checkbox.
    confirm: Option<String>,
}

#[derive(Template)]
#[template(path = "batch_cancelled.html")]
struct CancelledPage {
    chrome: Chrome,
    batch: String,
    cancelled: usize,
    /// Why nothing was done.
    error: Option<String>,
    emails_href: String,
}

/// `POST /batches/cancel`: every email of the batch still waiting is cancelled.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    uri: Uri,
    posted: Posted<CancelForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let batch = form.batch.trim().to_owned();
    let mut page = CancelledPage {
        chrome: Chrome::new(&viewer, "Cancel a batch", Section::Batches, uri.path()),
        emails_href: format!("/reports/emails{}", query(&[("batch", &batch)])),
        cancelled: 0,
        error: None,
        batch,
    };
    if page.batch.is_empty() || form.confirm.is_none() {
        page.error = Some(if page.batch.is_empty() {
            "Choose the batch to cancel.".to_owned()
        } else {
            "Nothing was cancelled: tick the box that confirms it first.".to_owned()
        });
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
    }
    page.cancelled = state
        .store
        .cancel_queued(&viewer.account_id, Cancel::Batch(&page.batch))
        .await?
        .len();
    Ok(render(&page)?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::pairs;

    #[test]
    fn the_form_keeps_the_ticked_leads_once_and_in_order() {
        let form = BatchForm::from_pairs(pairs(&[
            ("q", "shop"),
            ("lead", "b"),
            ("lead", "a"),
            ("lead", "b"),
            ("batch", "spring"),
            ("subject", "Hi"),
            ("action", "send"),
        ]));
        assert_eq!(form.chosen, ["b", "a"]);
        assert!(form.send);
        assert_eq!(form.message.subject, "Hi");
        assert_eq!(form.batch_name(), Ok("spring".to_owned()));
    }

    #[test]
    fn a_batch_needs_a_one_line_name() {
        let named = |batch: &str| BatchForm {
            batch: batch.into(),
            ..BatchForm::default()
        };
        assert!(
            named("  ")
                .batch_name()
                .unwrap_err()
                .starts_with("Name the batch")
        );
        assert!(named("a\nb").batch_name().is_err());
        assert!(named(&"x".repeat(MAX_BATCH_NAME + 1)).batch_name().is_err());
    }
}
