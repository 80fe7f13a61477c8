//! `GET/POST /leads/{id}/compose`: write one email to a lead and send it, or first preview it.
//! Preview renders the subject and bodies with this lead's merge fields through the merge
//! engine delivery uses, and sends nothing; Send goes through the path of `POST /v1/emails`
//! ([`message::send`]), so Permission to Email, suppression, protection, tracking and DKIM
//! all apply, and lands on the new email's page.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use mailtrail_api::AppState;
use mailtrail_domain::{EmailAddress, Permission};
use mailtrail_outbound::submit::Recipient;
use mailtrail_outbound::tracking::UNSUBSCRIBE_FIELD;
use mailtrail_store::Lead;

use crate::csrf::Posted;
use crate::error::WebError;
use crate::layout::{Chrome, Section};
use crate::pages::leads::full_name;
use crate::pages::message::{self, MessageForm, Preview, SenderDomains};
use crate::pages::render;
use crate::session::Viewer;

#[derive(Template)]
#[template(path = "compose.html")]
struct ComposePage {
    chrome: Chrome,
    lead_href: String,
    to: String,
    /// Permission to Email is No: sending is refused.
    refused: bool,
    /// The address is on the account's suppression list: the email would be dropped.
    blocked: bool,
    senders: SenderDomains,
    /// The names this lead's merge fields answer to.
    fields: Vec<String>,
    form: MessageForm,
    errors: Vec<String>,
    preview: Option<Preview>,
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    uri: &Uri,
    lead: &Lead,
    form: MessageForm,
) -> Result<ComposePage, WebError> {
    let blocked = match EmailAddress::parse(&lead.email) {
        Ok(address) => state
            .store
            .suppression(&viewer.account_id, &address)
            .await?
            .is_some(),
        Err(_) => false,
    };
    let name = full_name(lead.first_name.as_deref(), lead.last_name.as_deref());
    let to = if name.is_empty() {
        lead.email.clone()
    } else {
        format!("{name} <{}>", lead.email)
    };
    let mut fields: Vec<String> = message::lead_fields(state, &viewer.account_id, &lead.id)
        .await?
        .into_keys()
        .collect();
    fields.push(UNSUBSCRIBE_FIELD.to_owned());
    Ok(ComposePage {
        chrome: Chrome::new(viewer, format!("Email to {to}"), Section::Leads, uri.path()),
        lead_href: format!("/leads/{}", lead.id),
        refused: lead.permission == Permission::No,
        blocked,
        senders: message::senders(state, &viewer.account_id).await?,
        fields,
        form,
        errors: Vec::new(),
        preview: None,
        to,
    })
}

pub(crate) async fn form(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let lead = state.store.lead(&viewer.account_id, &id).await?;
    let mut shown = page(&state, &viewer, &uri, &lead, MessageForm::default()).await?;
    if let Some(first) = shown.senders.domains.first() {
        shown.form.from_domain = first.clone();
    }
    Ok(render(&shown)?.into_response())
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    uri: Uri,
    Path(id): Path<String>,
    posted: Posted<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let Posted {
        viewer,
        form: pairs,
    } = posted;
    let lead = state.store.lead(&viewer.account_id, &id).await?;
    let mut form = MessageForm::default();
    let mut preview = false;
    for (key, value) in pairs {
        if key == "action" {
            preview = value == "preview";
        } else {
            form.take(&key, value);
        }
    }
    let mut shown = page(&state, &viewer, &uri, &lead, form.clone()).await?;
    if preview {
        let fields = message::lead_fields(&state, &viewer.account_id, &lead.id).await?;
        match form.preview(&fields) {
            Ok(preview) => shown.preview = Some(preview),
            Err(errors) => shown.errors = errors,
        }
        return Ok(render(&shown)?.into_response());
    }
    let recipient = Recipient {
        lead_id: Some(lead.id.clone()),
        ..Recipient::default()
    };
    let accepted = match form.request(vec![recipient], None) {
        Ok(request) => message::send(&state, &viewer.account_id, request).await?,
        Err(errors) => Err(errors),
    };
    let errors = match accepted {
        Ok(accepted) => match (accepted.queued.first(), accepted.refused.first()) {
            (Some(queued), _) => {
                return Ok(Redirect::to(&format!("/emails/{}", queued.id)).into_response());
            }
            (None, Some(refusal)) => vec![format!("Not sent: {}.", refusal.message)],
            (None, None) => vec!["Nothing was queued.".to_owned()],
        },
        Err(errors) => errors,
    };
    shown.errors = errors;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&shown)?).into_response())
}
