//! `GET /admin/webhooks`: the account's webhook URLs and the events each is sent, with a form
//! to add one (`POST /admin/webhooks`: the URL, checked as `POST /v1/webhooks` checks it, and
//! the events, all when none is ticked; the signing secret is on that answer only) and one per
//! hook to stop it (`POST /admin/webhooks/remove`, confirmed). `GET /admin/webhooks/{id}`: a
//! hook's deliveries with their state, attempts and the receiver's last status, and a button
//! that sends it a signed `test` event now (`POST /admin/webhooks/{id}/test`, the same sender
//! as `POST /v1/webhooks/{id}/test`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use mailtrail_api::AppState;
use mailtrail_store::webhooks::event_types;
use mailtrail_store::{Delivery, Webhook};
use serde::Deserialize;

use super::{ConfirmForm, Done, Frame, Said, Tab, TabLink, answer, back_with_notice};
use crate::csrf::Posted;
use crate::error::WebError;
use crate::format::{query, time};
use crate::layout::Chrome;
use crate::session::Viewer;

/// The longest URL a hook may have, as the API allows.
const MAX_URL_LEN: usize = 2000;
/// Deliveries a hook's page lists, most recent first.
const DELIVERIES_SHOWN: u32 = 100;

struct HookRow {
    id: String,
    url: String,
    /// "every event", or the types, comma-separated.
    events: String,
    created: String,
}

impl From<Webhook> for HookRow {
    fn from(hook: Webhook) -> Self {
        HookRow {
            events: hook
                .events
                .map_or_else(|| "every event".to_owned(), |types| types.join(", ")),
            created: time(hook.created_at_ms),
            id: hook.id,
            url: hook.url,
        }
    }
}

/// An event type's checkbox in the add form.
struct EventChoice {
    name: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "admin/webhooks.html")]
struct HooksPage {
    chrome: Chrome,
    tabs: Vec<TabLink>,
    hooks: Vec<HookRow>,
    said: Said,
    new_url: String,
    events: Vec<EventChoice>,
}

fn event_choices(ticked: &[String]) -> Vec<EventChoice> {
    event_types()
        .map(|name| EventChoice {
            name,
            checked: ticked.iter().any(|t| t == name),
        })
        .collect()
}

async fn load(state: &AppState, viewer: &Viewer) -> Result<HooksPage, WebError> {
    let Frame { chrome, tabs } = Frame::new(viewer, Tab::Webhooks, "Webhooks")?;
    let hooks = state.store.webhooks(&viewer.account_id).await?;
    Ok(HooksPage {
        chrome,
        tabs,
        hooks: hooks.into_iter().map(HookRow::from).collect(),
        said: Said::default(),
        new_url: String::new(),
        events: event_choices(&[]),
    })
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let mut page = load(&state, &viewer).await?;
    page.said.notice = done.notice(|url| {
        format!("The hook to {url} was stopped: its pending deliveries are cancelled.")
    });
    answer(&page, false)
}

/// `POST /admin/webhooks`'s fields: `event` once per ticked box.
fn add_form(body: &[(String, String)]) -> (String, Vec<String>) {
    let url = body.iter().find(|(name, _)| name == "url");
    let events = body.iter().filter(|(name, _)| name == "event");
    (
        url.map(|(_, v)| v.clone()).unwrap_or_default(),
        events.map(|(_, v)| v.clone()).collect(),
    )
}

/// `POST /admin/webhooks`: registers a hook; its secret is shown on this answer only.
pub(crate) async fn add(
    State(state): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let mut page = load(&state, &viewer).await?;
    let (url, events) = add_form(&form);
    let url = url.trim().to_owned();
    let refusal = if url.len() > MAX_URL_LEN {
        Err(format!("The URL is longer than {MAX_URL_LEN} characters."))
    } else if let Some(unknown) = events.iter().find(|e| !event_types().any(|t| t == *e)) {
        Err(format!("'{unknown}' is not an event type."))
    } else {
        match state.webhook_targets.parse(&url) {
            Ok(parsed) => match state.webhook_targets.check(&parsed).await {
                Ok(()) => Ok(parsed),
                Err(refused) => Err(format!("The URL is refused: {refused}.")),
            },
            Err(refused) => Err(format!("The URL is refused: it {refused}.")),
        }
    };
    let parsed = match refusal {
        Ok(parsed) => parsed,
        Err(why) => {
            page.said = Said::refused(why);
            page.new_url = url;
            page.events = event_choices(&events);
            return answer(&page, true);
        }
    };
    let only = (!events.is_empty()).then_some(events.as_slice());
    let mut hook = state
        .store
        .create_webhook(&viewer.account_id, parsed.as_str(), only)
        .await?;
    let secret = std::mem::take(&mut hook.secret);
    let mut page = load(&state, &viewer).await?;
    page.said = Said::made(
        format!(
            "Events are now POSTed to {}, signed with this secret (Standard Webhooks):",
            hook.url
        ),
        "Signing secret",
        secret,
    );
    answer(&page, false)
}

/// `POST /admin/webhooks/remove`: stops one of the account's hooks.
pub(crate) async fn remove(
    State(state): State<AppState>,
    posted: Posted<ConfirmForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let mut page = load(&state, &viewer).await?;
    let url = form.named(&page.hooks, |h| &h.id)?.url.clone();
    if form.confirm.is_none() {
        page.said = Said::refused(format!(
            "The hook to {url} was not stopped: tick the box that confirms it first."
        ));
        return answer(&page, true);
    }
    state
        .store
        .delete_webhook(&viewer.account_id, &form.id)
        .await?;
    Ok(back_with_notice("/admin/webhooks", &url))
}

struct DeliveryRow {
    id: String,
    event_type: String,
    /// `pending`, `delivered`, `failed` or `cancelled`.
    state: String,
    attempts: u32,
    last_status: Option<u16>,
    last_error: Option<String>,
    created: String,
    delivered: Option<String>,
    next_attempt: Option<String>,
}

impl From<Delivery> for DeliveryRow {
    fn from(d: Delivery) -> Self {
        DeliveryRow {
            created: time(d.created_at_ms),
            delivered: d.delivered_at_ms.map(time),
            next_attempt: d.next_attempt_at_ms.map(time),
            id: d.id,
            event_type: d.event_type,
            state: d.state,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/webhook.html")]
struct HookPage {
    chrome: Chrome,
    tabs: Vec<TabLink>,
    hook: HookRow,
    deliveries: Vec<DeliveryRow>,
    /// How the test just sent went.
    tested: Option<DeliveryRow>,
}

/// Set by the redirect after a test, naming its delivery.
#[derive(Deserialize)]
pub(crate) struct TestedQuery {
    tested: Option<String>,
}

/// The account's live hook with this id (a stopped or another account's hook is missing).
async fn live_hook(state: &AppState, viewer: &Viewer, id: &str) -> Result<Webhook, WebError> {
    state
        .store
        .webhooks(&viewer.account_id)
        .await?
        .into_iter()
        .find(|h| h.id == id)
        .ok_or(WebError::NotFound)
}

/// `GET /admin/webhooks/{id}`: the hook's deliveries, newest first.
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(asked): Query<TestedQuery>,
) -> Result<Response, WebError> {
    let Frame { chrome, tabs } = Frame::new(&viewer, Tab::Webhooks, "Webhook deliveries")?;
    let hook = live_hook(&state, &viewer, &id).await?;
    let deliveries: Vec<DeliveryRow> = state
        .store
        .webhook_deliveries(&viewer.account_id, &hook.id, DELIVERIES_SHOWN)
        .await?
        .into_iter()
        .map(DeliveryRow::from)
        .collect();
    let tested = match asked.tested {
        Some(delivery) => Some(
            state
                .store
                .webhook_delivery(&viewer.account_id, &delivery)
                .await?
                .into(),
        ),
        None => None,
    };
    let page = HookPage {
        chrome,
        tabs,
        hook: hook.into(),
        deliveries,
        tested,
    };
    answer(&page, false)
}

/// The test form carries nothing but its CSRF token.
#[derive(Deserialize)]
pub(crate) struct TestForm {}

/// `POST /admin/webhooks/{id}/test`: POSTs the hook a signed `test` event now, then shows how
/// it went on the hook's page.
pub(crate) async fn test(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<TestForm>,
) -> Result<Response, WebError> {
    let viewer = posted.viewer;
    Frame::new(&viewer, Tab::Webhooks, "Webhook deliveries")?;
    let hook = live_hook(&state, &viewer, &id).await?;
    let delivery = mailtrail_webhooks::send_test(
        &state.store,
        &state.webhook_targets,
        &viewer.account_id,
        &hook.id,
    )
    .await?;
    Ok(Redirect::to(&format!(
        "/admin/webhooks/{}{}",
        hook.id,
        query(&[("tested", &delivery.id)])
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_add_form_reads_its_url_and_every_ticked_event() {
        let body: Vec<(String, String)> = serde_urlencoded::from_str(
            "csrf=t&url=https%3A%2F%2Fcrm.example%2Fh&event=delivered&event=failed",
        )
        .unwrap();
        assert_eq!(
            add_form(&body),
            (
                "https://crm.example/h".to_owned(),
                vec!["delivered".to_owned(), "failed".to_owned()]
            )
        );
        assert_eq!(add_form(&[]), (String::new(), vec![]));
    }
}
