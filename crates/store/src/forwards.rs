//! Replies waiting to be forwarded to the sender of the email they answer (docs/inbound.md),
//! and where an account wants them. A reply is marked for forwarding before its processing is
//! recorded as finished, so a crash in between forwards it still; a forwarder claims due
//! ones with a lease and records sent, a later retry, or failure.

use sqlx::Row;

use crate::{AccountId, EmailId, Result, Store, StoreError, now_ms};

/// A reply to forward.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The received message's id.
    pub id: String,
    pub account_id: AccountId,
    pub email_id: EmailId,
    pub raw: Vec<u8>,
    /// Attempts made before this one.
    pub attempts: u32,
    pub received_at_ms: i64,
}

/// Where a reply to one email may be forwarded; the forwarder chooses among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTargets {
    /// The account's `reply_forward_to`, when it has one.
    pub account: Option<String>,
    /// The Reply-To its sender gave (the API's `reply_to`, a submitted message's header), as
    /// given: a bare address or `Name <address>`.
    pub reply_to: Option<String>,
    /// Its From address.
    pub from: String,
}

/// How a forwarding attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardOutcome {
    Sent { note: String },
    Retry { at_ms: i64, note: String },
    Failed { note: String },
}

impl Store {
    /// Marks a received reply for forwarding (once: a second call changes nothing).
    pub async fn queue_forward(&self, inbound_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE inbound_messages SET forward_state = 'pending', forward_next_at_ms = $1
             WHERE id = $2 AND forward_state IS NULL",
        )
        .bind(now_ms())
        .bind(inbound_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Claims up to `limit` replies due for forwarding, for `lease_ms`.
    pub async fn claim_forwards(&self, limit: i64, lease_ms: i64) -> Result<Vec<Forward>> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT id, account_id, email_id, raw, forward_attempts, received_at_ms
             FROM inbound_messages
             WHERE forward_state = 'pending' AND forward_next_at_ms <= $1 AND state = 'matched'
             ORDER BY forward_next_at_ms LIMIT $2{}",
            self.skip_locked_clause()
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            sqlx::query("UPDATE inbound_messages SET forward_next_at_ms = $1 WHERE id = $2")
                .bind(now + lease_ms)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            let account_id: Option<String> = row.try_get("account_id")?;
            let email_id: Option<String> = row.try_get("email_id")?;
            let (Some(account_id), Some(email_id)) = (account_id, email_id) else {
                return Err(StoreError::Corrupt(format!(
                    "matched reply {id} has no account or email"
                )));
            };
            claimed.push(Forward {
                id,
                account_id: account_id.into(),
                email_id: email_id.into(),
                raw: row.try_get("raw")?,
                attempts: row.try_get::<i64, _>("forward_attempts")? as u32,
                received_at_ms: row.try_get("received_at_ms")?,
            });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records how a forwarding attempt ended.
    pub async fn finish_forward(&self, inbound_id: &str, outcome: &ForwardOutcome) -> Result<()> {
        let (state, next, note) = match outcome {
            ForwardOutcome::Sent { note } => ("sent", None, note),
            ForwardOutcome::Retry { at_ms, note } => ("pending", Some(*at_ms), note),
            ForwardOutcome::Failed { note } => ("failed", None, note),
        };
        sqlx::query(
            "UPDATE inbound_messages SET forward_state = $1, forward_next_at_ms = $2,
                    forward_note = $3, forward_attempts = forward_attempts + 1
             WHERE id = $4",
        )
        .bind(state)
        .bind(next)
        .bind(note)
        .bind(inbound_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// A reply's forwarding state and note (`pending`, `sent`, `failed`), if it has one.
    pub async fn forward_state(&self, inbound_id: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT forward_state, forward_note FROM inbound_messages
             WHERE id = $1 AND forward_state IS NOT NULL",
        )
        .bind(inbound_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok((
                row.try_get("forward_state")?,
                row.try_get::<Option<String>, _>("forward_note")?
                    .unwrap_or_default(),
            ))
        })
        .transpose()
    }

    /// Where a reply to `email_id` of `account_id` may be forwarded, in one read: the
    /// account's setting and the email's Reply-To and From.
    pub async fn forward_targets(
        &self,
        account_id: &AccountId,
        email_id: &EmailId,
    ) -> Result<ForwardTargets> {
        let row = sqlx::query(
            "SELECT c.from_address, c.reply_to, s.reply_forward_to
             FROM emails e JOIN contents c ON c.id = e.content_id
             LEFT JOIN account_settings s ON s.account_id = e.account_id
             WHERE e.id = $1 AND e.account_id = $2",
        )
        .bind(email_id)
        .bind(account_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(ForwardTargets {
            account: row.try_get("reply_forward_to")?,
            reply_to: row.try_get("reply_to")?,
            from: row.try_get("from_address")?,
        })
    }

    /// Where the account wants replies forwarded, when not to each email's sender.
    pub async fn reply_forward_to(&self, account_id: &str) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT reply_forward_to FROM account_settings WHERE account_id = $1")
                .bind(account_id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row
            .map(|row| row.try_get::<Option<String>, _>("reply_forward_to"))
            .transpose()?
            .flatten())
    }

    /// Sets (or with `None` clears) where the account's replies are forwarded.
    pub async fn set_reply_forward_to(&self, account_id: &str, to: Option<&str>) -> Result<()> {
        if !self.account_exists(account_id).await? {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO account_settings (account_id, updated_at_ms, reply_forward_to)
             VALUES ($1, $2, $3)
             ON CONFLICT (account_id) DO UPDATE SET reply_forward_to = excluded.reply_forward_to,
                                                    updated_at_ms = excluded.updated_at_ms",
        )
        .bind(account_id)
        .bind(now_ms())
        .bind(to)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
