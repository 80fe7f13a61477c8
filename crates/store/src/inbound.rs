//! Raw inbound mail: stored before the SMTP server's 250, then processed (classified,
//! matched to an email, applied) by a separate, retried step.

use sqlx::Row;

use crate::{AccountId, EmailId, Result, Store, StoreError, new_id, now_ms};

/// A received message waiting to be processed.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub raw: Vec<u8>,
    pub attempts: u32,
}

/// How processing ended for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// `matched`, `unmatched` (a forged or unknown token) or `ignored`.
    pub state: &'static str,
    /// What the message was: bounce, complaint, reply, auto_reply, …
    pub kind: String,
    pub account_id: Option<AccountId>,
    pub email_id: Option<EmailId>,
    pub note: Option<String>,
}

/// A stored message as the operator or the email's page shows it.
#[derive(Debug, Clone)]
pub struct InboundRecord {
    pub id: String,
    pub received_at_ms: i64,
    pub mail_from: String,
    pub state: String,
    pub kind: Option<String>,
    pub email_id: Option<String>,
    pub note: Option<String>,
    pub raw: Vec<u8>,
}

impl Store {
    /// Received messages not processed yet.
    pub async fn inbound_backlog(&self) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM inbound_messages WHERE state = 'new'")
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get::<i64, _>("n")? as u64)
    }

    /// Stores a received message; when this returns it is on disk.
    pub async fn save_inbound(
        &self,
        mail_from: &str,
        rcpt_to: &[String],
        raw: &[u8],
    ) -> Result<String> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO inbound_messages (id, received_at_ms, mail_from, rcpt_to, raw, state)
             VALUES ($1, $2, $3, $4, $5, 'new')",
        )
        .bind(&id)
        .bind(now_ms())
        .bind(mail_from)
        .bind(serde_json::to_string(rcpt_to).expect("strings serialise"))
        .bind(raw.to_vec())
        .execute(&self.writer)
        .await?;
        Ok(id)
    }

    /// Claims up to `limit` messages waiting to be processed, for `lease_ms`.
    pub async fn claim_inbound(&self, limit: i64, lease_ms: i64) -> Result<Vec<Pending>> {
        let now = now_ms();
        let skip_locked = match self.backend {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "UPDATE inbound_messages SET lease_until_ms = $1, attempts = attempts + 1
             WHERE id IN (SELECT id FROM inbound_messages
                          WHERE state = 'new' AND (lease_until_ms IS NULL OR lease_until_ms < $2)
                          ORDER BY received_at_ms LIMIT $3{skip_locked})
             RETURNING id, mail_from, rcpt_to, raw, attempts"
        ))
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|row| {
                let rcpt: String = row.try_get("rcpt_to")?;
                Ok(Pending {
                    id: row.try_get("id")?,
                    mail_from: row.try_get("mail_from")?,
                    rcpt_to: serde_json::from_str(&rcpt)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    raw: row.try_get("raw")?,
                    attempts: row.try_get::<i64, _>("attempts")? as u32,
                })
            })
            .collect()
    }

    /// Records how a message was processed; it is not processed again.
    pub async fn finish_inbound(&self, id: &str, processed: &Processed) -> Result<()> {
        sqlx::query(
            "UPDATE inbound_messages SET state = $1, kind = $2, account_id = $3, email_id = $4,
                    note = $5, processed_at_ms = $6, lease_until_ms = NULL
             WHERE id = $7",
        )
        .bind(processed.state)
        .bind(&processed.kind)
        .bind(processed.account_id.as_deref())
        .bind(processed.email_id.as_deref())
        .bind(processed.note.as_deref())
        .bind(now_ms())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The raw messages matched to an email, oldest first.
    pub async fn inbound_for_email(
        &self,
        account_id: &AccountId,
        email_id: &EmailId,
    ) -> Result<Vec<InboundRecord>> {
        let rows = sqlx::query(
            "SELECT id, received_at_ms, mail_from, state, kind, email_id, note, raw
             FROM inbound_messages WHERE account_id = $1 AND email_id = $2 ORDER BY received_at_ms",
        )
        .bind(account_id)
        .bind(email_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(inbound_from_row).collect()
    }

    /// One stored message by id (operators, and tests).
    pub async fn inbound(&self, id: &str) -> Result<InboundRecord> {
        let row = sqlx::query(
            "SELECT id, received_at_ms, mail_from, state, kind, email_id, note, raw
             FROM inbound_messages WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        inbound_from_row(&row)
    }

    /// Deletes raw messages processed before `before_ms` (the retention setting); one still
    /// waiting to be forwarded stays.
    pub async fn expire_inbound(&self, before_ms: i64) -> Result<u64> {
        let removed = sqlx::query(
            "DELETE FROM inbound_messages WHERE state <> 'new' AND received_at_ms < $1
               AND (forward_state IS NULL OR forward_state <> 'pending')",
        )
        .bind(before_ms)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(removed)
    }

    /// The account and id of the email with this id, whatever the account (a token found in
    /// returned mail names the email, not its account).
    pub async fn email_account(&self, email_id: &str) -> Result<Option<AccountId>> {
        let row = sqlx::query("SELECT account_id FROM emails WHERE id = $1")
            .bind(email_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| r.try_get("account_id").map_err(StoreError::from))
            .transpose()
    }
}

fn inbound_from_row(row: &sqlx::any::AnyRow) -> Result<InboundRecord> {
    Ok(InboundRecord {
        id: row.try_get("id")?,
        received_at_ms: row.try_get("received_at_ms")?,
        mail_from: row.try_get("mail_from")?,
        state: row.try_get("state")?,
        kind: row.try_get("kind")?,
        email_id: row.try_get("email_id")?,
        note: row.try_get("note")?,
        raw: row.try_get("raw")?,
    })
}
