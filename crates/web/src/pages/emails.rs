//! `GET /emails/{id}`: one email's facts, every event (time, kind, Status, reason, machine
//! flags on opens and clicks) and the messages received about it (bounces, complaints,
//! replies); `GET /emails/{id}/inbound/{inbound_id}` shows one of those raw, as text.
//! `POST /emails/{id}/cancel` cancels an email still waiting in the queue (scheduled, or
//! between retries) through the store's cancel, as `POST /v1/emails/{id}/cancel` does: it
//! fails `Dropped` with reason `cancelled`, never sent, and its page reads "Cancelled".

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use mailtrail_api::AppState;
use mailtrail_domain::{EventKind, Reason, Stage};
use mailtrail_store::{Cancel, EmailId, now_ms};
use serde::Deserialize;

use crate::csrf::Posted;
use crate::error::WebError;
use crate::format::{Badge, Words, in_words, iso, time};
use crate::layout::{Chrome, Section};
use crate::pages::render;
use crate::session::Viewer;

/// Bytes of a raw message shown; the rest is cut (a message can be megabytes).
const RAW_LIMIT: usize = 256 * 1024;

struct EventRow {
    at: String,
    at_iso: String,
    kind: &'static str,
    status: String,
    reason: String,
    words: Option<Words>,
    /// Why an open or click is thought a machine's.
    machine: Option<String>,
    /// Attempt number, feedback type and free-form note.
    notes: Vec<String>,
    /// Where an open or click came from: `from IP · user agent`.
    client: Option<String>,
}

/// An open's or click's client as the page says it.
fn client_of(ip: Option<String>, user_agent: Option<String>) -> String {
    match (ip, user_agent) {
        (None, None) => "client not recorded".to_owned(),
        (ip, agent) => format!(
            "from {} · {}",
            ip.as_deref().unwrap_or("an unknown address"),
            agent.as_deref().unwrap_or("no user agent")
        ),
    }
}

struct InboundRow {
    href: String,
    at: String,
    from: String,
    kind: String,
    state: String,
    note: String,
}

#[derive(Template)]
#[template(path = "email.html")]
struct EmailPage {
    chrome: Chrome,
    facts: Vec<(&'static str, String)>,
    lead_href: Option<String>,
    badge: Badge,
    /// When a queued email that was never tried is due, if that is still ahead: it reads
    /// "Scheduled for …" rather than "Sent", which it is not yet.
    scheduled: Option<String>,
    /// Cancelled before it was sent: it reads "Cancelled", not "Failed".
    cancelled: bool,
    /// Still waiting in the queue, so it can be cancelled.
    cancellable: bool,
    /// Why the last cancel did nothing.
    cancel_error: Option<String>,
    events: Vec<EventRow>,
    inbound: Vec<InboundRow>,
}

pub(crate) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Path(id): Path<EmailId>,
) -> Result<Html<String>, WebError> {
    render(&page(&state, &viewer, &uri, &id).await?)
}

async fn page(
    state: &AppState,
    viewer: &Viewer,
    uri: &Uri,
    id: &EmailId,
) -> Result<EmailPage, WebError> {
    let email = state.store.email(&viewer.account_id, id).await?;
    let events = state.store.events(&viewer.account_id, id).await?;
    let inbound = state
        .store
        .inbound_for_email(&viewer.account_id, id)
        .await?;
    let words = in_words(email.reason, email.status.as_deref());
    let facts = [
        ("To", Some(email.to.clone())),
        ("From", Some(email.from.clone())),
        ("Batch", email.batch.clone()),
        ("Queued", Some(time(email.created_at_ms))),
        ("Status", email.status.clone()),
        ("Reason", email.reason.map(|r| r.as_str().to_owned())),
        ("What happened", words.as_ref().map(|w| w.summary.clone())),
        ("What happens next", words.map(|w| w.next.to_owned())),
        ("Attempts", Some(email.attempts.to_string())),
        ("Next attempt", email.next_attempt_at_ms.map(time)),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name, value?)))
    .collect();
    Ok(EmailPage {
        chrome: Chrome::new(
            viewer,
            email.subject.clone(),
            Section::EmailReport,
            uri.path(),
        ),
        facts,
        lead_href: email.lead_id.as_ref().map(|l| format!("/leads/{l}")),
        badge: Badge::new(email.stage.as_str(), email.stage.last_action()),
        scheduled: email
            .next_attempt_at_ms
            .filter(|&due| email.attempts == 0 && email.stage == Stage::Sent && due > now_ms())
            .map(time),
        cancelled: email.reason == Some(Reason::Cancelled),
        cancellable: email.next_attempt_at_ms.is_some(),
        cancel_error: None,
        events: events
            .into_iter()
            .map(|stored| {
                let e = stored.event;
                let d = e.detail;
                EventRow {
                    at: time(e.at_ms),
                    at_iso: iso(e.at_ms),
                    kind: e.kind.as_str(),
                    words: in_words(d.reason, d.status.as_deref()),
                    status: d.status.unwrap_or_default(),
                    reason: d.reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
                    client: matches!(e.kind, EventKind::Opened | EventKind::Clicked)
                        .then(|| client_of(d.ip, d.user_agent)),
                    machine: d.machine,
                    notes: [
                        d.attempt.map(|a| format!("attempt {a}")),
                        d.feedback_type.map(|t| format!("feedback type {t}")),
                        d.note,
                    ]
                    .into_iter()
                    .flatten()
                    .collect(),
                }
            })
            .collect(),
        inbound: inbound
            .into_iter()
            .map(|m| InboundRow {
                href: format!("/emails/{}/inbound/{}", email.id, m.id),
                at: time(m.received_at_ms),
                from: m.mail_from,
                kind: m.kind.unwrap_or_else(|| "unknown".into()),
                state: m.state,
                note: m.note.unwrap_or_default(),
            })
            .collect(),
    })
}

/// The cancel button's form: only its CSRF token.
#[derive(Deserialize)]
pub(crate) struct CancelForm {}

pub(crate) async fn cancel(
    State(state): State<AppState>,
    uri: Uri,
    Path(id): Path<EmailId>,
    posted: Posted<CancelForm>,
) -> Result<Response, WebError> {
    let viewer = posted.viewer;
    // Another account's (or no) email is a 404 before anything is done.
    state.store.email(&viewer.account_id, &id).await?;
    let cancelled = state
        .store
        .cancel_queued(&viewer.account_id, Cancel::Email(&id))
        .await?;
    if !cancelled.is_empty() {
        return Ok(Redirect::to(&format!("/emails/{id}")).into_response());
    }
    let email_uri: Uri = format!("/emails/{id}").parse().unwrap_or(uri);
    let mut page = page(&state, &viewer, &email_uri, &id).await?;
    page.cancel_error = Some(if page.cancellable {
        "It is being sent right now, so it can no longer be cancelled.".to_owned()
    } else {
        "It is not waiting to be sent any more, so there is nothing to cancel.".to_owned()
    });
    Ok((StatusCode::CONFLICT, render(&page)?).into_response())
}

#[derive(Deserialize)]
pub(crate) struct InboundPath {
    id: EmailId,
    inbound_id: String,
}

#[derive(Template)]
#[template(path = "inbound.html")]
struct InboundPage {
    chrome: Chrome,
    email_href: String,
    email_subject: String,
    facts: Vec<(&'static str, String)>,
    raw: String,
    truncated: bool,
}

pub(crate) async fn inbound(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Path(path): Path<InboundPath>,
) -> Result<Html<String>, WebError> {
    let email = state.store.email(&viewer.account_id, &path.id).await?;
    // Looked up among this email's messages (in this account), so any other id is a 404.
    let message = state
        .store
        .inbound_for_email(&viewer.account_id, &email.id)
        .await?
        .into_iter()
        .find(|m| m.id == path.inbound_id)
        .ok_or(WebError::NotFound)?;
    let truncated = message.raw.len() > RAW_LIMIT;
    let raw = String::from_utf8_lossy(&message.raw[..message.raw.len().min(RAW_LIMIT)]);
    let page = InboundPage {
        chrome: Chrome::new(
            &viewer,
            "Received message",
            Section::EmailReport,
            uri.path(),
        ),
        email_href: format!("/emails/{}", email.id),
        email_subject: email.subject,
        facts: [
            ("Received", time(message.received_at_ms)),
            ("Envelope sender", message.mail_from),
            ("Kind", message.kind.unwrap_or_else(|| "unknown".into())),
            ("Processing", message.state),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect(),
        raw: raw.into_owned(),
        truncated,
    };
    render(&page)
}
