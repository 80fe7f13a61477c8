//! `GET /leads` (search and page through the account's leads, with Permission to Email) and
//! `GET /leads/{id}` (a lead and its activity timeline, newest first: each email with its date
//! and stage label, each reply an item of its own).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Html;
use mailtrail_api::AppState;
use mailtrail_api::activity::{ActivityItem, timeline};
use mailtrail_domain::{EmailAddress, Permission};
use serde::Deserialize;

use crate::error::WebError;
use crate::format::{Badge, in_words, iso, query, time};
use crate::layout::{Chrome, Section};
use crate::pages::render;
use crate::session::Viewer;

/// Leads per page.
const PAGE: u32 = 50;
/// Emails shown in a lead's timeline (their replies come with them).
const TIMELINE: u32 = 200;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
    /// The address key of the previous page's last lead.
    after: Option<String>,
}

struct LeadRow {
    href: String,
    name: String,
    email: String,
    permission: bool,
    added: String,
    added_iso: String,
}

#[derive(Template)]
#[template(path = "leads.html")]
struct LeadsPage {
    chrome: Chrome,
    q: String,
    leads: Vec<LeadRow>,
    next: Option<String>,
    first_page: Option<String>,
}

pub(crate) fn full_name(first: Option<&str>, last: Option<&str>) -> String {
    [first, last]
        .into_iter()
        .flatten()
        .filter(|p| !p.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Query(params): Query<ListQuery>,
) -> Result<Html<String>, WebError> {
    let q = params.q.unwrap_or_default();
    let after = params.after.filter(|a| !a.is_empty());
    let mut leads = state
        .store
        .search_leads(&viewer.account_id, Some(&q), after.as_deref(), PAGE + 1)
        .await?;
    let more = leads.len() > PAGE as usize;
    leads.truncate(PAGE as usize);
    let next = more.then(|| leads.last()).flatten().map(|last| {
        let key = EmailAddress::parse(&last.email)
            .map_or_else(|_| last.email.to_lowercase(), |a| a.normalized());
        format!("/leads{}", query(&[("q", &q), ("after", &key)]))
    });
    let page = LeadsPage {
        chrome: Chrome::new(&viewer, "Leads", Section::Leads, uri.path()),
        first_page: after.map(|_| format!("/leads{}", query(&[("q", &q)]))),
        leads: leads
            .into_iter()
            .map(|l| LeadRow {
                href: format!("/leads/{}", l.id),
                name: full_name(l.first_name.as_deref(), l.last_name.as_deref()),
                permission: l.permission == Permission::Yes,
                added: time(l.created_at_ms),
                added_iso: iso(l.created_at_ms),
                email: l.email,
            })
            .collect(),
        q,
        next,
    };
    render(&page)
}

/// One entry of the timeline: an email, or a reply to one.
struct TimelineItem {
    at: String,
    at_iso: String,
    href: String,
    title: String,
    /// `None` for a sent email (no label), and for replies (they say so themselves).
    badge: Option<Badge>,
    reply: bool,
    /// Batch, Status and reason of an email; sender and start of the text of a reply.
    details: Vec<(&'static str, String)>,
}

/// The account's block on the lead's address, shown to every user of the account, with
/// the rule that keeps it (PRODUCT.md §3): only an operator lifts it.
struct BlockMark {
    since: String,
    since_iso: String,
    /// "Hard bounce: The mailbox does not exist."
    words: String,
    status: Option<String>,
    email_href: Option<String>,
}

#[derive(Template)]
#[template(path = "lead.html")]
struct LeadPage {
    chrome: Chrome,
    email: String,
    permission: bool,
    added: String,
    fields: Vec<(String, String)>,
    block: Option<BlockMark>,
    items: Vec<TimelineItem>,
}

fn item(at_ms: i64, item: ActivityItem) -> TimelineItem {
    match item {
        ActivityItem::Email {
            id,
            subject,
            batch,
            stage,
            label,
            status,
            reason,
            ..
        } => {
            let words = in_words(reason.and_then(|r| r.parse().ok()), status.as_deref());
            TimelineItem {
                at: time(at_ms),
                at_iso: iso(at_ms),
                href: format!("/emails/{id}"),
                title: subject,
                badge: label.map(|text| Badge::new(stage, text)),
                reply: false,
                details: [
                    ("Batch", batch),
                    ("Status", status),
                    ("Reason", reason.map(str::to_owned)),
                    ("What happened", words.as_ref().map(|w| w.summary.clone())),
                    ("What happens next", words.map(|w| w.next.to_owned())),
                ]
                .into_iter()
                .filter_map(|(name, value)| Some((name, value?)))
                .collect(),
            }
        }
        ActivityItem::Reply {
            id,
            email_id,
            from,
            subject,
            snippet,
            ..
        } => TimelineItem {
            at: time(at_ms),
            at_iso: iso(at_ms),
            href: format!("/emails/{email_id}/inbound/{id}"),
            title: if subject.is_empty() {
                "(no subject)".to_owned()
            } else {
                subject
            },
            badge: None,
            reply: true,
            details: [("From", from), ("Text", snippet)]
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .collect(),
        },
    }
}

pub(crate) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Html<String>, WebError> {
    let lead = state.store.lead(&viewer.account_id, &id).await?;
    let (emails, replies) = state
        .store
        .lead_activity(&viewer.account_id, &id, TIMELINE)
        .await?;
    let block = match EmailAddress::parse(&lead.email) {
        Ok(address) => state
            .store
            .suppression(&viewer.account_id, &address)
            .await?
            .map(|s| BlockMark {
                since: time(s.created_at_ms),
                since_iso: iso(s.created_at_ms),
                words: in_words(Some(s.block.reason), s.block.status.as_deref())
                    .map_or_else(|| s.block.reason.as_str().to_owned(), |w| w.summary),
                status: s.block.status,
                email_href: s.block.email_id.map(|e| format!("/emails/{e}")),
            }),
        Err(_) => None,
    };
    let name = full_name(lead.first_name.as_deref(), lead.last_name.as_deref());
    let title = if name.is_empty() {
        lead.email.clone()
    } else {
        name
    };
    let page = LeadPage {
        chrome: Chrome::new(&viewer, title, Section::Leads, uri.path()),
        permission: lead.permission == Permission::Yes,
        added: time(lead.created_at_ms),
        fields: lead.fields.into_iter().collect(),
        block,
        items: timeline(emails, replies)
            .into_iter()
            .map(|(at, i)| item(at, i))
            .collect(),
        email: lead.email,
    };
    render(&page)
}
