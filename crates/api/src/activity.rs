//! `GET /v1/leads/{id}/activity`: a lead's timeline, newest first (docs/web-ui.md). Each
//! email shows its date and stage label (none while it is only sent); each reply is an item
//! of its own, with who wrote it, the subject and the start of its text.

use axum::Json;
use axum::extract::{Path, State};
use mail_parser::MessageParser;
use mailtrail_store::{EmailRow, ReplyRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Scoped;
use crate::error::{ApiError, KeyedErrors, QueryErrors};
use crate::extract::ApiQuery;
use crate::{AppState, rfc3339};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// Characters of a reply's text shown in the timeline.
const SNIPPET: usize = 200;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// How many of the lead's most recent emails (their replies come with them); 100 when
    /// absent.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The account an operator key acts on.
    pub account: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActivityItem {
    Email {
        id: String,
        at: String,
        subject: String,
        batch: Option<String>,
        stage: &'static str,
        /// The label shown next to the date; `null` while the email is only sent.
        label: Option<&'static str>,
        last_action: &'static str,
        status: Option<String>,
        reason: Option<&'static str>,
    },
    Reply {
        /// The received message's id.
        id: String,
        email_id: String,
        at: String,
        from: String,
        subject: String,
        snippet: String,
    },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Activity {
    pub lead_id: String,
    pub items: Vec<ActivityItem>,
}

/// A lead's timeline as items, newest first; shared with the web UI.
pub fn timeline(emails: Vec<EmailRow>, replies: Vec<ReplyRow>) -> Vec<(i64, ActivityItem)> {
    let mut items: Vec<(i64, ActivityItem)> = emails
        .into_iter()
        .map(|e| {
            (
                e.created_at_ms,
                ActivityItem::Email {
                    at: rfc3339(e.created_at_ms),
                    stage: e.stage.as_str(),
                    label: e.stage.activity_label(),
                    last_action: e.stage.last_action(),
                    reason: e.reason.map(|r| r.as_str()),
                    id: e.id,
                    subject: e.subject,
                    batch: e.batch,
                    status: e.status,
                },
            )
        })
        .collect();
    items.extend(
        replies
            .into_iter()
            .map(|r| (r.received_at_ms, reply_item(r))),
    );
    // Newest first; a reply sorts before the email it answers when both share a time.
    items.sort_by_key(|item| std::cmp::Reverse(item.0));
    items
}

fn reply_item(reply: ReplyRow) -> ActivityItem {
    let parsed = MessageParser::default().parse(&reply.raw);
    let from = parsed
        .as_ref()
        .and_then(|m| m.from())
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .map_or_else(|| reply.mail_from.clone(), str::to_owned);
    let subject = parsed
        .as_ref()
        .and_then(|m| m.subject())
        .unwrap_or("")
        .to_owned();
    let snippet = parsed
        .as_ref()
        .and_then(|m| m.body_text(0))
        .map(|text| {
            let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            text.chars().take(SNIPPET).collect()
        })
        .unwrap_or_default();
    ActivityItem::Reply {
        id: reply.inbound_id,
        email_id: reply.email_id,
        at: rfc3339(reply.received_at_ms),
        from,
        subject,
        snippet,
    }
}

#[utoipa::path(
    get,
    path = "/v1/leads/{id}/activity",
    operation_id = "lead_activity",
    tag = "leads",
    params(("id" = String, Path, description = "the lead's id"), ActivityQuery),
    responses(
        (status = 200, description = "the lead's timeline, newest first", body = Activity),
        KeyedErrors,
        QueryErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    scope: Scoped,
    Path(lead_id): Path<String>,
    ApiQuery(query): ApiQuery<ActivityQuery>,
) -> Result<Json<Activity>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let (emails, replies) = state
        .store
        .lead_activity(&scope.account_id, &lead_id, limit)
        .await?;
    Ok(Json(Activity {
        lead_id,
        items: timeline(emails, replies)
            .into_iter()
            .map(|(_, item)| item)
            .collect(),
    }))
}
