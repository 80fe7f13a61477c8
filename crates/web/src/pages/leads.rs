//! `GET /leads` (search and page through the account's leads, with Permission to Email and
//! the mark of a blocked address) and `GET /leads/{id}` (a lead, why its Permission to Email
//! is No, its block, and its activity timeline, newest first: each email with its date and
//! stage label, each reply an item of its own, each refused send as "Not sent").

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::Html;
use mailtrail_api::AppState;
use mailtrail_api::activity::{ActivityItem, timeline};
use mailtrail_domain::failure::explain;
use mailtrail_domain::{EmailAddress, Permission, Reason};
use mailtrail_store::{Lead, PermissionCause, Refusal, RefusalReason, Suppression};
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
    permission: PermissionMark,
    /// "Blocked since 2025-03-01 — Hard bounce".
    blocked: Option<String>,
    added: String,
    added_iso: String,
}

/// A lead's Permission to Email as shown: Yes, or No with why and since when.
struct PermissionMark {
    yes: bool,
    /// "Unsubscribed": set when the permission is No and its cause is known.
    cause: Option<&'static str>,
    since: Option<String>,
    since_iso: Option<String>,
}

impl PermissionMark {
    fn of(lead: &Lead) -> PermissionMark {
        let no = lead.permission == Permission::No;
        let since = lead.permission_changed_at_ms.filter(|_| no);
        PermissionMark {
            yes: !no,
            cause: lead.permission_cause.filter(|_| no).map(cause_in_words),
            since: since.map(time),
            since_iso: since.map(iso),
        }
    }
}

/// What set a Permission to Email, as the lead's page says it.
fn cause_in_words(cause: PermissionCause) -> &'static str {
    match cause {
        PermissionCause::Unsubscribe => "Unsubscribed",
        PermissionCause::Complaint => "Complaint: reported an email as spam",
        PermissionCause::HardBounce => "Hard bounce",
        PermissionCause::Import => "Set by a CSV import",
        PermissionCause::Manual => "Set by hand",
        PermissionCause::Suppression => "Address blocked",
    }
}

/// Why a send was refused, after "Not sent — ".
fn refusal_in_words(reason: RefusalReason) -> &'static str {
    match reason {
        RefusalReason::NoPermission => "Permission to Email is No",
        RefusalReason::UnknownLead => "no such lead in this account",
        RefusalReason::BadAddress => "not a valid email address",
        RefusalReason::BadRecipient => "the request named no single recipient",
    }
}

/// A block's cause in words: "Hard bounce: The mailbox does not exist."
fn block_words(s: &Suppression) -> String {
    in_words(Some(s.block.reason), s.block.status.as_deref())
        .map_or_else(|| s.block.reason.as_str().to_owned(), |w| w.summary)
}

/// The short mark of a block in the leads list: its date and category.
fn block_short(s: &Suppression) -> String {
    let category = explain(s.block.reason).category.label();
    let day = time(s.created_at_ms);
    let day = day.split(' ').next().unwrap_or_default();
    format!("Blocked since {day} — {category}")
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
    let keys: Vec<String> = leads.iter().map(|l| address_key(&l.email)).collect();
    let blocks = state
        .store
        .suppressions_among(&viewer.account_id, &keys)
        .await?;
    let next = more
        .then(|| keys.last())
        .flatten()
        .map(|key| format!("/leads{}", query(&[("q", &q), ("after", key)])));
    let page = LeadsPage {
        chrome: Chrome::new(&viewer, "Leads", Section::Leads, uri.path()),
        first_page: after.map(|_| format!("/leads{}", query(&[("q", &q)]))),
        leads: leads
            .into_iter()
            .zip(&keys)
            .map(|(l, key)| LeadRow {
                href: format!("/leads/{}", l.id),
                name: full_name(l.first_name.as_deref(), l.last_name.as_deref()),
                permission: PermissionMark::of(&l),
                blocked: blocks.get(key).map(block_short),
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

/// A lead's normalised address, as suppressions and paging key it.
fn address_key(email: &str) -> String {
    EmailAddress::parse(email).map_or_else(|_| email.to_lowercase(), |a| a.normalized())
}

/// One entry of the timeline: an email, a reply to one, or a send that was refused.
struct TimelineItem {
    at: String,
    at_iso: String,
    /// `None` for a refused send: no email exists to open.
    href: Option<String>,
    title: String,
    /// "Not sent — Permission to Email is No", for a refused send.
    not_sent: Option<String>,
    /// `None` for a sent email (no label), and for replies (they say so themselves).
    badge: Option<Badge>,
    reply: bool,
    /// Batch, Status and reason of an email; sender and start of the text of a reply.
    details: Vec<(&'static str, String)>,
}

/// The account's block on the lead's address, shown to every user of the account, with
/// the rule that keeps it (docs/emails.md): only an operator lifts it.
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
    permission: PermissionMark,
    added: String,
    fields: Vec<(String, String)>,
    block: Option<BlockMark>,
    items: Vec<TimelineItem>,
}

/// The badge of an email cancelled before it was sent: its stage is `failed`, but like its
/// own page the timeline reads "Cancelled", not "Failed".
const CANCELLED: Badge = Badge {
    stage: "failed",
    icon: "⊘",
    text: "Cancelled",
};

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
            let reason_kind = reason.and_then(|r| r.parse().ok());
            let words = in_words(reason_kind, status.as_deref());
            TimelineItem {
                at: time(at_ms),
                at_iso: iso(at_ms),
                href: Some(format!("/emails/{id}")),
                title: subject,
                not_sent: None,
                badge: if reason_kind == Some(Reason::Cancelled) {
                    Some(CANCELLED)
                } else {
                    label.map(|text| Badge::new(stage, text))
                },
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
            href: Some(format!("/emails/{email_id}/inbound/{id}")),
            not_sent: None,
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

/// A refused send on the timeline: what it was, and why it was not sent.
fn refused_item(refusal: Refusal) -> TimelineItem {
    TimelineItem {
        at: time(refusal.at_ms),
        at_iso: iso(refusal.at_ms),
        href: None,
        title: refusal.subject,
        not_sent: Some(format!("Not sent — {}", refusal_in_words(refusal.reason))),
        badge: None,
        reply: false,
        details: [
            ("Batch", refusal.batch),
            ("Sent to", Some(refusal.recipient)),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect(),
    }
}

/// The timeline: emails and replies, and refused sends, newest first.
fn merged(activity: Vec<(i64, ActivityItem)>, refusals: Vec<Refusal>) -> Vec<TimelineItem> {
    let mut all: Vec<(i64, TimelineItem)> = activity
        .into_iter()
        .map(|(at, i)| (at, item(at, i)))
        .chain(refusals.into_iter().map(|r| (r.at_ms, refused_item(r))))
        .collect();
    all.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    all.into_iter().map(|(_, item)| item).collect()
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
    let refusals = state
        .store
        .lead_refusals(&viewer.account_id, &id, TIMELINE)
        .await?;
    let block = match EmailAddress::parse(&lead.email) {
        Ok(address) => state
            .store
            .suppression(&viewer.account_id, &address)
            .await?
            .map(|s| BlockMark {
                since: time(s.created_at_ms),
                since_iso: iso(s.created_at_ms),
                words: block_words(&s),
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
        permission: PermissionMark::of(&lead),
        added: time(lead.created_at_ms),
        fields: lead.fields.into_iter().collect(),
        block,
        items: merged(timeline(emails, replies), refusals),
        email: lead.email,
    };
    render(&page)
}
