//! Sending and reading emails: `POST /v1/emails` (one), `POST /v1/emails/batch` (up to
//! 100,000 recipients with merge fields), `GET /v1/emails/{id}`. A 202 means every queued
//! email is on disk. `Idempotency-Key` makes a client's retry return the first answer
//! instead of sending twice.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mailtrail_outbound::submit::{self, Accepted, Recipient, Request, SubmitError};
use mailtrail_store::{
    Attachment, Cancel, EmailId, EmailRecord, Idempotent, StoreError, StoredEvent,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::{AccountQuery, Scoped};
use crate::error::{ApiError, BodyErrors, KeyedErrors, Problem};
use crate::extract::parse_json;
use crate::{AppState, rfc3339};

/// One email: to a lead (`lead_id`) or an address (`to`), with a text or HTML body or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendEmail {
    pub lead_id: Option<String>,
    #[schema(example = "ana@example.com")]
    pub to: Option<String>,
    /// The address, with a display name if wanted: `Sales Team <sales@shop.example>`.
    #[schema(example = "Sales Team <sales@shop.example>", min_length = 1)]
    pub from: String,
    /// Up to 50 Cc mailboxes (`addr` or `Name <addr>`), shown in the Cc header. Each is
    /// sent its own copy: an email with its own id, events and tracking, whose To header
    /// is the primary recipient. Leads with Permission to Email No are refused; suppressed
    /// addresses are dropped.
    #[serde(default)]
    #[schema(max_items = 50, example = json!(["Bo <bo@partner.example>"]))]
    pub cc: Vec<String>,
    /// Where replies should go: Mailtrail still receives them at its own Reply-To address
    /// (so they are counted) and forwards them here.
    #[schema(example = "support@shop.example")]
    pub reply_to: Option<String>,
    /// Headers of your own, name to value (e.g. `X-Campaign`). Refused: names Mailtrail
    /// writes (From, To, Cc, Bcc, Subject, Message-ID, Reply-To, List-Unsubscribe,
    /// List-Unsubscribe-Post, DKIM-Signature, Return-Path, MIME-Version, Date, Feedback-ID,
    /// Content-*, X-Mailtrail-*), a name that is not an RFC 5322 field name, and a value
    /// with a line break or another control character.
    #[serde(default)]
    #[schema(example = json!({"X-Campaign": "spring-sale"}))]
    pub headers: BTreeMap<String, String>,
    /// Files, and inline images (with `content_id`): at most 10 MiB in all, decoded.
    #[serde(default)]
    pub attachments: Vec<AttachmentInput>,
    /// Up to 10 tags, each 1 to 64 characters on one line; duplicates count once. The email
    /// report filters by one (`tag=`).
    #[serde(default)]
    #[schema(max_items = 10, example = json!(["welcome"]))]
    pub tags: Vec<String>,
    /// Up to 20 keys of 1 to 64 characters `A-Za-z0-9_-`, values up to 1000 characters;
    /// kept with the email and shown by `GET /v1/emails/{id}`.
    #[serde(default)]
    #[schema(example = json!({"order_id": "1234"}))]
    pub metadata: BTreeMap<String, String>,
    /// One line without control characters; `{{name}}` merge fields are replaced, and a
    /// merge value's line breaks and control characters become spaces there.
    #[schema(pattern = r"^(?=.*\S)[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// A name grouping emails in the batch report.
    pub batch: Option<String>,
    /// Merge fields for this recipient.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// RFC 3339 time of the first attempt.
    pub send_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRecipient {
    pub lead_id: Option<String>,
    pub to: Option<String>,
    /// Merge fields for this recipient.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// One message to up to 100,000 recipients, queued in one transaction.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBatch {
    /// The address, with a display name if wanted: `Sales Team <sales@shop.example>`.
    #[schema(example = "Sales Team <sales@shop.example>", min_length = 1)]
    pub from: String,
    /// Not taken by a batch (a 422 says so): Cc is for one email, `POST /v1/emails`.
    #[serde(default)]
    #[schema(ignore)]
    pub cc: Option<serde_json::Value>,
    /// Where replies should go: Mailtrail still receives them at its own Reply-To address
    /// (so they are counted) and forwards them here.
    pub reply_to: Option<String>,
    /// Headers of your own, name to value (e.g. `X-Campaign`). Refused: names Mailtrail
    /// writes (From, To, Cc, Bcc, Subject, Message-ID, Reply-To, List-Unsubscribe,
    /// List-Unsubscribe-Post, DKIM-Signature, Return-Path, MIME-Version, Date, Feedback-ID,
    /// Content-*, X-Mailtrail-*), a name that is not an RFC 5322 field name, and a value
    /// with a line break or another control character.
    #[serde(default)]
    #[schema(example = json!({"X-Campaign": "spring-sale"}))]
    pub headers: BTreeMap<String, String>,
    /// Files, and inline images (with `content_id`): at most 10 MiB in all, decoded.
    #[serde(default)]
    pub attachments: Vec<AttachmentInput>,
    /// Up to 10 tags, each 1 to 64 characters on one line; duplicates count once. The email
    /// report filters by one (`tag=`).
    #[serde(default)]
    #[schema(max_items = 10, example = json!(["welcome"]))]
    pub tags: Vec<String>,
    /// Up to 20 keys of 1 to 64 characters `A-Za-z0-9_-`, values up to 1000 characters;
    /// kept with the email and shown by `GET /v1/emails/{id}`.
    #[serde(default)]
    #[schema(example = json!({"order_id": "1234"}))]
    pub metadata: BTreeMap<String, String>,

    /// One line without control characters; `{{name}}` merge fields are replaced, and a
    /// merge value's line breaks and control characters become spaces there.
    #[schema(pattern = r"^(?=.*\S)[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$")]
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub batch: Option<String>,
    /// RFC 3339 time of the first attempt.
    pub send_at: Option<String>,
    #[schema(min_items = 1, max_items = 100_000)]
    pub recipients: Vec<BatchRecipient>,
}

/// A file to attach, or with `content_id` an inline image that the HTML shows as
/// `<img src="cid:…">`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentInput {
    /// One line, e.g. `invoice.pdf`.
    #[schema(example = "invoice.pdf")]
    pub filename: String,
    /// `type/subtype`.
    #[schema(example = "application/pdf")]
    pub content_type: String,
    /// The file's bytes in base64 (RFC 4648; line breaks and spaces are ignored).
    #[schema(example = "JVBERi0xLjQK")]
    pub content: String,
    /// Makes it an inline image: the HTML refers to it as `cid:` and this id.
    #[schema(example = "logo")]
    pub content_id: Option<String>,
}

/// The bare From address and its display name. A value that is not one mailbox is passed on
/// whole, for [`submit`]'s check of `from` to say what is wrong with it.
fn sender(from: String) -> (String, Option<String>) {
    match submit::mailbox(&from) {
        Ok((name, address)) => (address.to_string(), name),
        Err(_) => (from, None),
    }
}

/// The attachments decoded; their total decoded size over the limit is a 413.
fn decode_attachments(attachments: Vec<AttachmentInput>) -> Result<Vec<Attachment>, ApiError> {
    let mut total = 0;
    let mut decoded = Vec::with_capacity(attachments.len());
    for (i, a) in attachments.into_iter().enumerate() {
        let text: Vec<u8> = a
            .content
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let data = data_encoding::BASE64.decode(&text).map_err(|e| {
            ApiError::invalid(
                &format!("attachments[{i}].content"),
                format!("not base64: {e}"),
            )
        })?;
        total += data.len();
        if total > submit::MAX_ATTACHMENT_BYTES {
            return Err(ApiError::TooLargePart(format!(
                "attachments: over the limit of {} bytes (10 MiB) per message, decoded",
                submit::MAX_ATTACHMENT_BYTES
            )));
        }
        decoded.push(Attachment {
            filename: a.filename,
            content_type: a.content_type,
            content_id: a.content_id,
            data,
        });
    }
    Ok(decoded)
}

fn send_at_ms(send_at: Option<&str>) -> Result<Option<i64>, ApiError> {
    send_at
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| t.timestamp_millis())
                .map_err(|e| ApiError::invalid("send_at", format!("not an RFC 3339 time: {e}")))
        })
        .transpose()
}

/// Which endpoint answers: one email, or a batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Single,
    Batch,
}

impl Shape {
    /// The answer as JSON text, serialised straight from the result: a 100,000-email answer
    /// built as a `serde_json::Value` first would cost tens of megabytes.
    fn respond(self, accepted: &Accepted) -> String {
        fn queued(q: &submit::Queued) -> QueuedView<'_> {
            QueuedView {
                index: q.index,
                id: &q.id,
                dropped: q.dropped.map(|r| r.as_str()),
            }
        }
        let text = match self {
            Shape::Single => serde_json::to_string(&SingleAnswer {
                id: &accepted.queued[0].id,
                dropped: accepted.queued[0].dropped.map(|r| r.as_str()),
                cc: accepted
                    .queued
                    .iter()
                    .filter_map(|q| {
                        Some(CcView {
                            to: q.cc.as_deref()?,
                            id: &q.id,
                            dropped: q.dropped.map(|r| r.as_str()),
                        })
                    })
                    .collect(),
            }),
            Shape::Batch => serde_json::to_string(&BatchAnswer {
                emails: accepted.queued.iter().map(queued).collect(),
                refused: accepted
                    .refused
                    .iter()
                    .map(|r| RefusedView {
                        index: r.index,
                        message: &r.message,
                    })
                    .collect(),
            }),
        };
        text.expect("answers always serialise")
    }
}

/// A queued email.
#[derive(Serialize, ToSchema)]
#[schema(as = Queued)]
struct SingleAnswer<'a> {
    id: &'a str,
    /// `suppressed` when the address is blocked: recorded as failed, never tried.
    dropped: Option<&'static str>,
    /// The copies to the Cc addresses, each an email of its own; absent without `cc`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    cc: Vec<CcView<'a>>,
}

/// The email sent to one Cc address.
#[derive(Serialize, ToSchema)]
#[schema(as = QueuedCc)]
struct CcView<'a> {
    to: &'a str,
    id: &'a str,
    dropped: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = QueuedRecipient)]
struct QueuedView<'a> {
    /// The recipient's position in `recipients`.
    index: usize,
    id: &'a str,
    dropped: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = RefusedRecipient)]
struct RefusedView<'a> {
    index: usize,
    /// Why nothing was queued for this recipient.
    message: &'a str,
}

/// The recipients queued and those refused.
#[derive(Serialize, ToSchema)]
#[schema(as = BatchQueued)]
struct BatchAnswer<'a> {
    emails: Vec<QueuedView<'a>>,
    refused: Vec<RefusedView<'a>>,
}

/// A 202 with a JSON body already serialised.
fn accepted_json(body: String) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Runs a submission with its idempotency key, if the request has one.
async fn submit_once(
    state: &AppState,
    account_id: &str,
    headers: &HeaderMap,
    body: &[u8],
    request: Request,
    shape: Shape,
) -> Result<Response, ApiError> {
    let idempotent = match headers.get("idempotency-key") {
        None => None,
        Some(key) => {
            let key = key
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::invalid("Idempotency-Key", "1 to 255 visible ASCII characters")
                })?;
            Some(Idempotent {
                key: key.to_owned(),
                request_hash: hex::encode(Sha256::digest(body)),
            })
        }
    };
    if let Some(idempotent) = &idempotent
        && let Some(stored) = replay(state, account_id, idempotent).await?
    {
        return Ok(stored);
    }
    // The answer stored for the idempotency key is also the one sent: serialised once.
    let mut answer = None;
    let result = submit::submit_with(
        &state.store,
        state.domains.senders(),
        account_id,
        request,
        idempotent.as_ref(),
        |accepted| {
            let text = shape.respond(accepted);
            answer = Some(text.clone());
            text
        },
    )
    .await;
    let accepted = match result {
        Ok(accepted) => accepted,
        Err(SubmitError::Invalid { field, message }) => {
            return Err(ApiError::invalid(&field, message));
        }
        Err(SubmitError::Store(StoreError::Conflict(_))) if idempotent.is_some() => {
            // A concurrent request with the same key won the race: answer as it did.
            let idempotent = idempotent.as_ref().expect("checked");
            return replay(state, account_id, idempotent)
                .await?
                .ok_or(ApiError::Conflict(
                    "a request with this Idempotency-Key is being processed".into(),
                ));
        }
        Err(SubmitError::Store(e)) => return Err(e.into()),
    };
    if shape == Shape::Single
        && let Some(refusal) = accepted.refused.first()
    {
        return Err(ApiError::invalid("recipient", refusal.message.clone()));
    }
    state.queued.notify_one();
    Ok(accepted_json(
        answer.unwrap_or_else(|| shape.respond(&accepted)),
    ))
}

/// The stored answer to an earlier request with the same key, if there was one.
async fn replay(
    state: &AppState,
    account_id: &str,
    idempotent: &Idempotent,
) -> Result<Option<Response>, ApiError> {
    let Some((hash, response)) = state
        .store
        .idempotent_response(account_id, &idempotent.key)
        .await?
    else {
        return Ok(None);
    };
    if hash != idempotent.request_hash {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "this key was already used with a different request",
        ));
    }
    Ok(Some(accepted_json(response)))
}

#[utoipa::path(
    post,
    path = "/v1/emails",
    operation_id = "send_email",
    tag = "emails",
    params(AccountQuery, ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body gets the first answer and sends nothing; the same key with another body is a 422")),
    request_body = SendEmail,
    responses(
        (status = 202, description = "queued, on disk", body = SingleAnswer),
        KeyedErrors,
        BodyErrors,
    )
)]
pub async fn send(
    State(state): State<AppState>,
    scope: Scoped,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let email: SendEmail = parse_json(&body)?;
    let (from, from_name) = sender(email.from);
    let request = Request {
        send_at_ms: send_at_ms(email.send_at.as_deref())?,
        from,
        from_name,
        cc: email.cc,
        reply_to: email.reply_to,
        headers: email.headers.into_iter().collect(),
        attachments: decode_attachments(email.attachments)?,
        tags: email.tags,
        metadata: email.metadata,
        subject: email.subject,
        text: email.text,
        html: email.html,
        batch: email.batch,
        recipients: vec![Recipient {
            lead_id: email.lead_id,
            to: email.to,
            fields: email.fields,
        }],
        ..Request::default()
    };
    submit_once(
        &state,
        &scope.account_id,
        &headers,
        &body,
        request,
        Shape::Single,
    )
    .await
}

#[utoipa::path(
    post,
    path = "/v1/emails/batch",
    operation_id = "send_batch",
    tag = "emails",
    params(AccountQuery, ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body gets the first answer and sends nothing; the same key with another body is a 422")),
    request_body = SendBatch,
    responses(
        (status = 202, description = "every queued email is on disk", body = BatchAnswer),
        KeyedErrors,
        BodyErrors,
    )
)]
pub async fn send_batch(
    State(state): State<AppState>,
    scope: Scoped,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let batch: SendBatch = parse_json(&body)?;
    if batch.cc.is_some() {
        return Err(ApiError::invalid(
            "cc",
            "a batch takes no cc: send an email with cc through POST /v1/emails, where each \
             Cc address gets its own copy of that one message",
        ));
    }
    let (from, from_name) = sender(batch.from);
    let request = Request {
        send_at_ms: send_at_ms(batch.send_at.as_deref())?,
        from,
        from_name,
        reply_to: batch.reply_to,
        headers: batch.headers.into_iter().collect(),
        attachments: decode_attachments(batch.attachments)?,
        tags: batch.tags,
        metadata: batch.metadata,
        subject: batch.subject,
        text: batch.text,
        html: batch.html,
        batch: batch.batch,
        recipients: batch
            .recipients
            .into_iter()
            .map(|r| Recipient {
                lead_id: r.lead_id,
                to: r.to,
                fields: r.fields,
            })
            .collect(),
        ..Request::default()
    };
    submit_once(
        &state,
        &scope.account_id,
        &headers,
        &body,
        request,
        Shape::Batch,
    )
    .await
}

/// One event of an email: an attempt, a delivery, an open, …
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub kind: String,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
    /// Where an open, click or unsubscribe came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl From<StoredEvent> for EventView {
    fn from(stored: StoredEvent) -> Self {
        let e = stored.event;
        Self {
            kind: e.kind.as_str().to_owned(),
            at: rfc3339(e.at_ms),
            status: e.detail.status,
            reason: e.detail.reason.map(|r| r.as_str().to_owned()),
            attempt: e.detail.attempt,
            machine: e.detail.machine,
            feedback_type: e.detail.feedback_type,
            ip: e.detail.ip,
            user_agent: e.detail.user_agent,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailView {
    pub id: String,
    pub lead_id: Option<String>,
    pub to: String,
    pub from: String,
    pub subject: String,
    pub batch: Option<String>,
    pub stage: String,
    pub last_action: &'static str,
    /// The reply that decided the stage, or `Dropped`.
    pub status: Option<String>,
    pub reason: Option<String>,
    pub attempts: u32,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    /// The From display name, if one was given.
    pub from_name: Option<String>,
    /// The Cc list as given; each address has an email of its own.
    pub cc: Vec<String>,
    pub reply_to: Option<String>,
    /// The custom headers, name to value.
    pub headers: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    /// The files attached (their names, types and sizes; never their bytes).
    pub attachments: Vec<AttachmentView>,
    /// The sender's own MIME message came over SMTP: it is delivered as it is.
    pub submitted_over_smtp: bool,
    pub events: Vec<EventView>,
}

/// An attachment of a sent email.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentView {
    pub filename: String,
    pub content_type: String,
    /// Set for an inline image.
    pub content_id: Option<String>,
    /// Its size in bytes, decoded.
    pub size: u64,
}

fn email_view(email: EmailRecord, events: Vec<StoredEvent>) -> EmailView {
    EmailView {
        last_action: email.stage.last_action(),
        stage: email.stage.as_str().to_owned(),
        id: email.id.into(),
        lead_id: email.lead_id,
        to: email.to,
        from: email.from,
        subject: email.subject,
        batch: email.batch,
        status: email.status,
        reason: email.reason.map(|r| r.as_str().to_owned()),
        attempts: email.attempts,
        next_attempt_at: email.next_attempt_at_ms.map(rfc3339),
        created_at: rfc3339(email.created_at_ms),
        from_name: email.from_name,
        cc: email.cc,
        reply_to: email.reply_to,
        headers: email.headers.into_iter().collect(),
        tags: email.tags,
        metadata: email.metadata,
        attachments: email
            .attachments
            .into_iter()
            .map(|a| AttachmentView {
                filename: a.filename,
                content_type: a.content_type,
                content_id: a.content_id,
                size: a.size,
            })
            .collect(),
        submitted_over_smtp: email.submitted_over_smtp,
        events: events.into_iter().map(EventView::from).collect(),
    }
}

#[utoipa::path(
    get,
    path = "/v1/emails/{id}",
    operation_id = "get_email",
    tag = "emails",
    params(("id" = String, Path, description = "the email's id"), AccountQuery),
    responses(
        (status = 200, description = "the email, its stage and every event", body = EmailView),
        KeyedErrors,
    )
)]
pub async fn show(
    State(state): State<AppState>,
    scope: Scoped,
    Path(id): Path<EmailId>,
) -> Result<Json<EmailView>, ApiError> {
    let email = state.store.email(&scope.account_id, &id).await?;
    let events = state.store.events(&scope.account_id, &id).await?;
    Ok(Json(email_view(email, events)))
}

/// What a cancel did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    /// The emails cancelled: each failed `Dropped` with reason `cancelled`, never sent.
    pub cancelled: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/v1/emails/{id}/cancel",
    operation_id = "cancel_email",
    tag = "emails",
    params(("id" = String, Path, description = "the email's id"), AccountQuery),
    responses(
        (status = 200, description = "cancelled: it fails `Dropped`, reason `cancelled`, unsent", body = Cancelled),
        (status = 409, description = "not queued any more (sent, failed or cancelled), or being attempted right now", body = Problem, content_type = "application/problem+json"),
        KeyedErrors,
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    scope: Scoped,
    Path(id): Path<EmailId>,
) -> Result<Json<Cancelled>, ApiError> {
    // 404 for another account's (or no) email, before anything else.
    let email = state.store.email(&scope.account_id, &id).await?;
    let cancelled = state
        .store
        .cancel_queued(&scope.account_id, Cancel::Email(&id))
        .await?;
    if cancelled.is_empty() {
        return Err(ApiError::Conflict(match email.next_attempt_at_ms {
            Some(_) => {
                "the email is being attempted right now; it can no longer be cancelled".into()
            }
            None => format!(
                "the email is not queued any more: its stage is {}",
                email.stage.as_str()
            ),
        }));
    }
    Ok(Json(Cancelled { cancelled }))
}

#[utoipa::path(
    post,
    path = "/v1/batches/{batch}/cancel",
    operation_id = "cancel_batch",
    tag = "emails",
    params(("batch" = String, Path, description = "the batch's name"), AccountQuery),
    responses(
        (status = 200, description = "every email of the batch still queued and not being attempted right now is cancelled (possibly none)", body = Cancelled),
        KeyedErrors,
    )
)]
pub async fn cancel_batch(
    State(state): State<AppState>,
    scope: Scoped,
    Path(batch): Path<String>,
) -> Result<Json<Cancelled>, ApiError> {
    let cancelled = state
        .store
        .cancel_queued(&scope.account_id, Cancel::Batch(&batch))
        .await?;
    Ok(Json(Cancelled { cancelled }))
}
