//! Erasing a lead (the right to erasure): its personal data goes, what the account needs to
//! keep its promises stays.
//!
//! Gone: the lead row, the address and merge fields on its emails, the content of emails sent
//! to it alone, the raw bounces and replies matched to them, their tracked links, and the
//! address wherever it was quoted (event Status fields, pending webhook payloads). Kept: the
//! emails themselves and their events, so stages and batch counts stay true, and the block on
//! the address — as a SHA-256 of the normalised address, so a later email to it is still
//! dropped while the address itself is no longer stored. Queued emails are cancelled first.

use sqlx::Row;

use crate::queue::Cancel;
use crate::suppressions::erased_key;
use crate::{AccountId, Result, Store, StoreError};

/// What an erasure touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    /// Emails whose personal data was removed.
    pub emails: u64,
    /// Of those, emails that were still queued and are now cancelled.
    pub cancelled: u64,
}

/// What an erased email's recipient reads as.
pub const ERASED: &str = "[erased]";

impl Store {
    /// Erases a lead of an account; `NotFound` for another account's or a missing lead.
    pub async fn erase_lead(
        &self,
        account_id: &AccountId,
        lead_id: &str,
        actor: &str,
    ) -> Result<Erased> {
        let lead = self.lead(account_id, lead_id).await?;
        let key = mailtrail_domain::EmailAddress::parse(&lead.email)
            .map_err(|e| StoreError::Corrupt(format!("lead {lead_id}: {e}")))?
            .normalized();
        let hashed = erased_key(&key);

        let ids: Vec<(String, String, String)> = sqlx::query(
            "SELECT id, content_id, to_address FROM emails
             WHERE account_id = $1 AND (lead_id = $2 OR to_key = $3)",
        )
        .bind(account_id)
        .bind(lead_id)
        .bind(&key)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("id")?,
                row.try_get("content_id")?,
                row.try_get("to_address")?,
            ))
        })
        .collect::<Result<_>>()?;
        let mut cancelled = 0;
        for (id, ..) in &ids {
            cancelled += self
                .cancel_queued(account_id, Cancel::Email(id))
                .await?
                .len() as u64;
        }

        let mut tx = self.writer.begin().await?;
        let mut spellings: Vec<String> = ids.iter().map(|(.., to)| to.clone()).collect();
        spellings.extend([lead.email.clone(), key.clone()]);
        spellings.sort();
        spellings.dedup();
        for (id, content_id, _) in &ids {
            sqlx::query(
                "UPDATE emails SET lead_id = NULL, to_address = $1, to_key = $2, to_domain = '',
                        fields = '{}' WHERE id = $3",
            )
            .bind(ERASED)
            .bind(&hashed)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            for spelling in &spellings {
                for sql in [
                    "UPDATE events SET detail = REPLACE(detail, $1, $2) WHERE email_id = $3",
                    "UPDATE emails SET status = REPLACE(status, $1, $2) WHERE id = $3",
                ] {
                    sqlx::query(sql)
                        .bind(spelling)
                        .bind(ERASED)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            sqlx::query("UPDATE inbound_messages SET raw = $1, mail_from = '' WHERE email_id = $2")
                .bind(Vec::<u8>::new())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM links WHERE email_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            // Content written for this email alone (a single send) goes too; a batch's shared
            // template holds placeholders, not the lead's data.
            let alone = "NOT EXISTS
                   (SELECT 1 FROM emails e WHERE e.content_id = $1 AND e.to_key <> $2)";
            let erased = sqlx::query(&format!(
                "UPDATE contents SET subject = $3, text_body = NULL, html_body = NULL,
                        cc = NULL, reply_to = NULL, headers = NULL, metadata = NULL,
                        raw_message = NULL, attachment_count = 0
                 WHERE id = $1 AND {alone}"
            ))
            .bind(content_id)
            .bind(&hashed)
            .bind(ERASED)
            .execute(&mut *tx)
            .await?;
            if erased.rows_affected() > 0 {
                sqlx::query("DELETE FROM content_attachments WHERE content_id = $1")
                    .bind(content_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for spelling in &spellings {
            sqlx::query(
                "UPDATE webhook_deliveries SET payload = REPLACE(payload, $1, $2)
                 WHERE account_id = $3 AND state = 'pending'",
            )
            .bind(spelling)
            .bind(ERASED)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO suppressions (account_id, address_key, reason, status, email_id, created_at_ms)
             SELECT account_id, $1, reason, NULL, email_id, created_at_ms FROM suppressions
             WHERE account_id = $2 AND address_key = $3
             ON CONFLICT (account_id, address_key) DO NOTHING",
        )
        .bind(&hashed)
        .bind(account_id)
        .bind(&key)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM suppressions WHERE account_id = $1 AND address_key = $2")
            .bind(account_id)
            .bind(&key)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE suppression_log SET address_key = $1 WHERE account_id = $2 AND address_key = $3",
        )
        .bind(&hashed)
        .bind(account_id)
        .bind(&key)
        .execute(&mut *tx)
        .await?;
        crate::suppressions::log(&mut tx, account_id, &hashed, "erased", actor, "lead erased")
            .await?;
        crate::refusals::erase_lead_in(&mut tx, account_id, lead_id).await?;
        sqlx::query("DELETE FROM leads WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(lead_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Erased {
            emails: ids.len() as u64,
            cancelled,
        })
    }
}
