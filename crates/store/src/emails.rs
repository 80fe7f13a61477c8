//! Emails and their append-only events. The stored stage, Status and reason are a cache of
//! [`mailtrail_domain::stage::derive`] over the events, rewritten in the same transaction as
//! every event insert, with the email's row locked, so they can never disagree.

use std::collections::{BTreeMap, HashMap};

use mailtrail_domain::merge::{Context, render};
use mailtrail_domain::stage::{Derived, derive};
use mailtrail_domain::{Event, Reason, Stage};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::queue::json_or_default;
use crate::reports::BatchCounts;
use crate::webhooks::LiveHook;
use crate::{AccountId, EmailId, Result, Store, StoreError};

/// What recording an event does to the email's place in the queue and to its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Effects {
    pub queue: QueueChange,
    /// A delivery attempt was made: count it.
    pub attempted: bool,
    /// A hard bounce: suppress the address and set the lead's Permission to Email to No.
    pub suppress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueChange {
    /// Not a queue event (an open, a click, a late bounce report).
    #[default]
    Keep,
    /// The email leaves the queue: delivered, failed or dropped.
    Leave,
    /// Try again at this time; `soft_5xx` counts towards the limit on temporary-looking 5xx.
    RetryAt { at_ms: i64, soft_5xx: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRecord {
    pub id: EmailId,
    pub account_id: AccountId,
    pub lead_id: Option<String>,
    pub to: String,
    pub from: String,
    pub subject: String,
    pub batch: Option<String>,
    pub attempts: u32,
    /// When the next delivery attempt is due; `None` once the email has left the queue.
    pub next_attempt_at_ms: Option<i64>,
    pub stage: Stage,
    pub status: Option<String>,
    pub reason: Option<Reason>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The message as submitted, shown back to its sender.
    pub from_name: Option<String>,
    pub cc: Vec<String>,
    pub reply_to: Option<String>,
    pub headers: Vec<(String, String)>,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    /// The files attached, without their bytes.
    pub attachments: Vec<AttachmentInfo>,
    /// The sender's own MIME message was submitted over SMTP and is delivered as it is.
    pub submitted_over_smtp: bool,
}

/// An attachment of an email as the API shows it: what it is and how big, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentInfo {
    pub filename: String,
    pub content_type: String,
    pub content_id: Option<String>,
    pub size: u64,
}

/// One event to record with [`Store::record_many`].
#[derive(Debug, Clone)]
pub struct Record {
    pub account_id: String,
    pub email_id: String,
    pub event: Event,
    pub effects: Effects,
}

/// An event as stored: its position among the email's events, then the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: Event,
}

/// An email whose stored stage differs from the derivation of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub email_id: String,
    pub stored: String,
    pub derived: Stage,
}

/// Emails checked per round trip by [`Store::check_stages`].
const CHECK_PAGE: i64 = 1000;

fn email_from_row(row: &AnyRow) -> Result<EmailRecord> {
    let stage: String = row.try_get("stage")?;
    let reason: Option<String> = row.try_get("reason")?;
    Ok(EmailRecord {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        lead_id: row.try_get("lead_id")?,
        to: row.try_get("to_address")?,
        from: row.try_get("from_address")?,
        subject: subject_from_row(row)?,
        batch: row.try_get("batch")?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        next_attempt_at_ms: row.try_get("next_attempt_at_ms")?,
        stage: stage.parse().map_err(StoreError::Corrupt)?,
        status: row.try_get("status")?,
        reason: reason
            .map(|r| {
                r.parse::<Reason>()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
        from_name: row.try_get("from_name")?,
        cc: json_or_default(row.try_get("cc")?)?,
        reply_to: row.try_get("reply_to")?,
        headers: json_or_default(row.try_get("headers")?)?,
        tags: json_or_default(row.try_get("tags")?)?,
        metadata: json_or_default(row.try_get("metadata")?)?,
        attachments: Vec::new(),
        submitted_over_smtp: row.try_get::<i64, _>("submitted_over_smtp")? != 0,
    })
}

/// The subject as the recipient saw it: the submission's template with this email's merge
/// fields (`subject` and `fields` columns); one that cannot be rendered, as it was written.
pub(crate) fn subject_from_row(row: &AnyRow) -> Result<String> {
    let template: String = row.try_get("subject")?;
    if !["{{", "{%", "{#"].iter().any(|tag| template.contains(tag)) {
        return Ok(template);
    }
    let fields: String = row.try_get("fields")?;
    let fields: BTreeMap<String, String> =
        serde_json::from_str(&fields).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(render(&template, |name| fields.get(name).cloned(), Context::Header).unwrap_or(template))
}

pub(crate) fn event_from_row(row: &AnyRow) -> Result<StoredEvent> {
    let kind: String = row.try_get("kind")?;
    let detail: String = row.try_get("detail")?;
    Ok(StoredEvent {
        seq: row.try_get("seq")?,
        event: Event {
            kind: kind.parse().map_err(StoreError::Corrupt)?,
            at_ms: row.try_get("at_ms")?,
            detail: serde_json::from_str(&detail)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        },
    })
}

/// What one recording transaction gathers as it goes: the batch counts it writes at the end,
/// and each account's live webhooks, read once per transaction rather than once per event.
#[derive(Default)]
pub(crate) struct InTransaction {
    pub counts: BatchCounts,
    hooks: HashMap<String, Vec<LiveHook>>,
}

impl InTransaction {
    /// The account's live webhooks, read in `tx` the first time they are asked for.
    pub async fn hooks(
        &mut self,
        tx: &mut Transaction<'static, Any>,
        account_id: &str,
    ) -> Result<&[LiveHook]> {
        if !self.hooks.contains_key(account_id) {
            let live = crate::webhooks::live_hooks(tx, account_id).await?;
            self.hooks.insert(account_id.to_owned(), live);
        }
        Ok(&self.hooks[account_id])
    }
}

impl Store {
    /// One email of one account; another account's email is `NotFound`.
    pub async fn email(&self, account_id: &AccountId, email_id: &EmailId) -> Result<EmailRecord> {
        let row = sqlx::query(
            "SELECT e.*, c.subject, c.from_address, c.from_name, c.cc, c.reply_to, c.headers,
                    c.tags, c.metadata, c.attachment_count,
                    CAST(CASE WHEN c.raw_message IS NULL THEN 0 ELSE 1 END AS BIGINT)
                        AS submitted_over_smtp
             FROM emails e
             JOIN contents c ON c.id = e.content_id
             WHERE e.account_id = $1 AND e.id = $2",
        )
        .bind(account_id)
        .bind(email_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        let mut email = email_from_row(&row)?;
        if row.try_get::<i64, _>("attachment_count")? > 0 {
            // The sizes only: the bytes stay in the database.
            let rows = sqlx::query(
                "SELECT filename, content_type, content_id_header,
                        CAST(LENGTH(data) AS BIGINT) AS size
                 FROM content_attachments WHERE content_id = $1 ORDER BY position",
            )
            .bind(row.try_get::<String, _>("content_id")?)
            .fetch_all(&self.reader)
            .await?;
            email.attachments = rows
                .iter()
                .map(|a| {
                    Ok(AttachmentInfo {
                        filename: a.try_get("filename")?,
                        content_type: a.try_get("content_type")?,
                        content_id: a.try_get("content_id_header")?,
                        size: a.try_get::<i64, _>("size")?.max(0) as u64,
                    })
                })
                .collect::<Result<_>>()?;
        }
        Ok(email)
    }

    /// Appends an event and rewrites the email's stage, Status and reason from all its
    /// events, in one transaction with the email's row locked. Returns the new derivation.
    pub async fn append_event(
        &self,
        account_id: &AccountId,
        email_id: &EmailId,
        event: &Event,
    ) -> Result<Derived> {
        self.record(account_id, email_id, event, Effects::default())
            .await
    }

    /// [`Store::append_event`] together with its effects on the queue and the address, all
    /// in the same transaction: an attempt's outcome is never half-recorded.
    pub async fn record(
        &self,
        account_id: &AccountId,
        email_id: &EmailId,
        event: &Event,
        effects: Effects,
    ) -> Result<Derived> {
        let record = Record {
            account_id: account_id.to_string(),
            email_id: email_id.to_string(),
            event: event.clone(),
            effects,
        };
        let mut tx = self.writer.begin().await?;
        let mut state = InTransaction::default();
        let derived = self
            .record_in(&mut tx, &mut state, std::slice::from_ref(&record))
            .await?
            .remove(email_id.as_str())
            .ok_or(StoreError::NotFound)?;
        state.counts.apply(&mut tx).await?;
        tx.commit().await?;
        self.counters.count(event, effects.attempted);
        Ok(derived)
    }

    /// An email's events in the order they were written.
    pub async fn events(
        &self,
        account_id: &AccountId,
        email_id: &EmailId,
    ) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT seq, kind, at_ms, detail FROM events
             WHERE account_id = $1 AND email_id = $2 ORDER BY seq",
        )
        .bind(account_id)
        .bind(email_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Recomputes every email's stage from its events and lists those whose stored stage
    /// differs. Walks the emails by id a page at a time, so memory stays flat however many
    /// there are; `progress` gets the count checked so far.
    pub async fn check_stages(&self, mut progress: impl FnMut(u64)) -> Result<Vec<Mismatch>> {
        let mut mismatches = Vec::new();
        let mut after = String::new();
        let mut checked = 0;
        loop {
            let page =
                sqlx::query("SELECT id, stage FROM emails WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(&after)
                    .bind(CHECK_PAGE)
                    .fetch_all(&self.reader)
                    .await?;
            let (Some(first), Some(last)) = (page.first(), page.last()) else {
                break;
            };
            let first: String = first.try_get("id")?;
            let last: String = last.try_get("id")?;
            let rows = sqlx::query(
                "SELECT email_id, seq, kind, at_ms, detail FROM events
                 WHERE email_id >= $1 AND email_id <= $2 ORDER BY email_id, seq",
            )
            .bind(&first)
            .bind(&last)
            .fetch_all(&self.reader)
            .await?;
            let mut events = rows.iter().peekable();
            for email in &page {
                let id: String = email.try_get("id")?;
                let stored: String = email.try_get("stage")?;
                let mut mine = Vec::new();
                while let Some(row) = events
                    .next_if(|row| row.try_get::<String, _>("email_id").is_ok_and(|e| e == id))
                {
                    mine.push(event_from_row(row)?.event);
                }
                let derived = derive(&mine).stage;
                if derived.as_str() != stored {
                    mismatches.push(Mismatch {
                        email_id: id,
                        stored,
                        derived,
                    });
                }
            }
            checked += page.len() as u64;
            progress(checked);
            after = last;
        }
        Ok(mismatches)
    }
}
