//! Emails and their append-only events. The stored stage, Status and reason are a cache of
//! [`mailtrail_domain::stage::derive`] over the events, rewritten in the same transaction as
//! every event insert, with the email's row locked, so they can never disagree.

use mailtrail_domain::stage::{Derived, derive};
use mailtrail_domain::{EmailAddress, Event, EventKind, Reason, Stage};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Result, Store, StoreError, new_id, now_ms};

#[derive(Debug, Clone)]
pub struct NewEmail {
    pub lead_id: Option<String>,
    pub to: EmailAddress,
    pub from: String,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub batch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRecord {
    pub id: String,
    pub account_id: String,
    pub lead_id: Option<String>,
    pub to: String,
    pub from: String,
    pub subject: String,
    pub batch: Option<String>,
    pub stage: Stage,
    pub status: Option<String>,
    pub reason: Option<Reason>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
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
        subject: row.try_get("subject")?,
        batch: row.try_get("batch")?,
        stage: stage.parse().map_err(StoreError::Corrupt)?,
        status: row.try_get("status")?,
        reason: reason
            .map(|r| r.parse().map_err(StoreError::Corrupt))
            .transpose()?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn event_from_row(row: &AnyRow) -> Result<StoredEvent> {
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

async fn insert_event(
    tx: &mut Transaction<'static, Any>,
    account_id: &str,
    email_id: &str,
    event: &Event,
) -> Result<()> {
    let detail = serde_json::to_string(&event.detail).expect("event details always serialise");
    sqlx::query(
        "INSERT INTO events (email_id, seq, account_id, kind, at_ms, detail)
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM events WHERE email_id = $1",
    )
    .bind(email_id)
    .bind(account_id)
    .bind(event.kind.as_str())
    .bind(event.at_ms)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn events_in(tx: &mut Transaction<'static, Any>, email_id: &str) -> Result<Vec<Event>> {
    let rows =
        sqlx::query("SELECT seq, kind, at_ms, detail FROM events WHERE email_id = $1 ORDER BY seq")
            .bind(email_id)
            .fetch_all(&mut **tx)
            .await?;
    rows.iter()
        .map(|row| event_from_row(row).map(|stored| stored.event))
        .collect()
}

impl Store {
    /// Stores an email with its `queued` event, in one transaction.
    pub async fn create_email(&self, account_id: &str, email: &NewEmail) -> Result<EmailRecord> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO emails (id, account_id, lead_id, to_address, to_key, from_address,
                                 subject, text_body, html_body, batch, stage, created_at_ms,
                                 updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(&id)
        .bind(account_id)
        .bind(email.lead_id.as_deref())
        .bind(email.to.to_string())
        .bind(email.to.normalized())
        .bind(&email.from)
        .bind(&email.subject)
        .bind(email.text.as_deref())
        .bind(email.html.as_deref())
        .bind(email.batch.as_deref())
        .bind(Stage::Sent.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            account_id,
            &id,
            &Event::new(EventKind::Queued, now),
        )
        .await?;
        tx.commit().await?;
        self.email(account_id, &id).await
    }

    /// One email of one account; another account's email is `NotFound`.
    pub async fn email(&self, account_id: &str, email_id: &str) -> Result<EmailRecord> {
        let row = sqlx::query("SELECT * FROM emails WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(email_id)
            .fetch_optional(&self.reader)
            .await?
            .ok_or(StoreError::NotFound)?;
        email_from_row(&row)
    }

    /// Appends an event and rewrites the email's stage, Status and reason from all its
    /// events, in one transaction with the email's row locked. Returns the new derivation.
    pub async fn append_event(
        &self,
        account_id: &str,
        email_id: &str,
        event: &Event,
    ) -> Result<Derived> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(&format!(
            "SELECT id FROM emails WHERE account_id = $1 AND id = $2{}",
            self.lock_clause()
        ))
        .bind(account_id)
        .bind(email_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        insert_event(&mut tx, account_id, email_id, event).await?;
        let derived = derive(&events_in(&mut tx, email_id).await?);
        sqlx::query(
            "UPDATE emails SET stage = $1, status = $2, reason = $3, updated_at_ms = $4
             WHERE id = $5",
        )
        .bind(derived.stage.as_str())
        .bind(derived.status.as_deref())
        .bind(derived.reason.map(Reason::as_str))
        .bind(now_ms())
        .bind(email_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(derived)
    }

    /// An email's events in the order they were written.
    pub async fn events(&self, account_id: &str, email_id: &str) -> Result<Vec<StoredEvent>> {
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
