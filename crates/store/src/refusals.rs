//! Refused sends (docs/web-ui.md: never invisible): a recipient that a send request named but
//! that was not queued — Permission to Email No, a lead id the account does not have, an
//! address that is not one. There is no email for it, so it is kept here, written with the
//! accepted part of its request, and read back for the lead's activity and the batch
//! report's "Not sent" count.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::erasure::ERASED;
use crate::{Result, Store, StoreError, new_id, now_ms};

/// The longest recipient and message kept: what a request names is the client's text, and a
/// refusal only needs enough of it to be recognised.
const MAX_TEXT: usize = 500;

/// Why a recipient was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The lead's Permission to Email is No.
    NoPermission,
    /// The request named a lead id this account has no lead by.
    UnknownLead,
    /// The request's `to` is not an email address.
    BadAddress,
    /// The request gave neither a lead id nor an address, or both.
    BadRecipient,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::NoPermission => "nopermission",
            RefusalReason::UnknownLead => "unknownlead",
            RefusalReason::BadAddress => "badaddress",
            RefusalReason::BadRecipient => "badrecipient",
        }
    }
}

impl FromStr for RefusalReason {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s {
            "nopermission" => RefusalReason::NoPermission,
            "unknownlead" => RefusalReason::UnknownLead,
            "badaddress" => RefusalReason::BadAddress,
            "badrecipient" => RefusalReason::BadRecipient,
            other => return Err(format!("unknown refusal reason '{other}'")),
        })
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal to record, as submission decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefusal {
    /// Set when the recipient is one of the account's leads.
    pub lead_id: Option<String>,
    /// What the request named: the address, or the lead id asked for.
    pub recipient: String,
    pub reason: RefusalReason,
    /// The message the client was answered with.
    pub message: String,
}

/// The request a set of refusals came from.
#[derive(Debug, Clone, Copy)]
pub struct RefusedRequest<'a> {
    pub batch: Option<&'a str>,
    /// The subject as written (a template).
    pub subject: &'a str,
}

/// A batch's refusals: how many, and the time of the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRefusals {
    pub refused: i64,
    pub last_at_ms: i64,
}

/// A recorded refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub id: String,
    pub lead_id: Option<String>,
    pub recipient: String,
    pub batch: Option<String>,
    pub subject: String,
    pub reason: RefusalReason,
    pub message: String,
    pub at_ms: i64,
}

/// `text` cut to [`MAX_TEXT`] characters.
fn bounded(text: &str) -> &str {
    text.char_indices()
        .nth(MAX_TEXT)
        .map_or(text, |(end, _)| &text[..end])
}

fn refusal_from_row(row: &AnyRow) -> Result<Refusal> {
    let reason: String = row.try_get("reason")?;
    Ok(Refusal {
        id: row.try_get("id")?,
        lead_id: row.try_get("lead_id")?,
        recipient: row.try_get("recipient")?,
        batch: row.try_get("batch")?,
        subject: row.try_get("subject")?,
        reason: reason.parse().map_err(StoreError::Corrupt)?,
        message: row.try_get("message")?,
        at_ms: row.try_get("at_ms")?,
    })
}

/// Rows per INSERT: 9 parameters a row, far below both backends' limits.
const CHUNK: usize = 1000;

impl Store {
    /// Records `refusals` of one request inside `tx`, the transaction that queues the rest of
    /// it, so a request is recorded whole or not at all.
    pub(crate) async fn insert_refusals(
        &self,
        tx: &mut Transaction<'_, Any>,
        account_id: &str,
        request: RefusedRequest<'_>,
        refusals: &[NewRefusal],
        now: i64,
    ) -> Result<()> {
        for chunk in refusals.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO refusals (id, account_id, lead_id, recipient, batch, subject, reason,
                                       message, at_ms)
                 VALUES {}",
                self.row_placeholders(chunk.len(), 9)
            );
            let mut query = sqlx::query(&sql);
            for refusal in chunk {
                query = query
                    .bind(new_id())
                    .bind(account_id)
                    .bind(refusal.lead_id.as_deref())
                    .bind(bounded(&refusal.recipient))
                    .bind(request.batch)
                    .bind(request.subject)
                    .bind(refusal.reason.as_str())
                    .bind(bounded(&refusal.message))
                    .bind(now);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Records the refusals of a request that queued nothing.
    pub async fn record_refusals(
        &self,
        account_id: &str,
        request: RefusedRequest<'_>,
        refusals: &[NewRefusal],
    ) -> Result<()> {
        if refusals.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        self.insert_refusals(&mut tx, account_id, request, refusals, now_ms())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A lead's refusals, newest first, at most `limit`.
    pub async fn lead_refusals(
        &self,
        account_id: &str,
        lead_id: &str,
        limit: u32,
    ) -> Result<Vec<Refusal>> {
        let rows = sqlx::query(
            "SELECT * FROM refusals WHERE account_id = $1 AND lead_id = $2
             ORDER BY at_ms DESC, id DESC LIMIT $3",
        )
        .bind(account_id)
        .bind(lead_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(refusal_from_row).collect()
    }

    /// How many recipients each batch refused, and when last; `None` for requests without
    /// a batch.
    pub async fn refusals_by_batch(
        &self,
        account_id: &str,
    ) -> Result<BTreeMap<Option<String>, BatchRefusals>> {
        let rows = sqlx::query(
            "SELECT batch, COUNT(*) AS refused, MAX(at_ms) AS last_at_ms FROM refusals
             WHERE account_id = $1 GROUP BY batch",
        )
        .bind(account_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let counted = BatchRefusals {
                    refused: row.try_get("refused")?,
                    last_at_ms: row.try_get("last_at_ms")?,
                };
                Ok((row.try_get("batch")?, counted))
            })
            .collect()
    }
}

/// Erases a lead from its refusals inside an erasure's transaction: the refusals stay, so
/// batch counts stay true, but no longer say whom or what they named.
pub(crate) async fn erase_lead_in(
    tx: &mut Transaction<'_, Any>,
    account_id: &str,
    lead_id: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE refusals SET lead_id = NULL, recipient = $1, subject = $1, message = $1
         WHERE account_id = $2 AND lead_id = $3",
    )
    .bind(ERASED)
    .bind(account_id)
    .bind(lead_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_client_text_is_cut_on_a_character_boundary() {
        assert_eq!(bounded("bo@shop.example"), "bo@shop.example");
        let long = "é".repeat(MAX_TEXT + 10);
        assert_eq!(bounded(&long).chars().count(), MAX_TEXT);
        for reason in [
            RefusalReason::NoPermission,
            RefusalReason::UnknownLead,
            RefusalReason::BadAddress,
            RefusalReason::BadRecipient,
        ] {
            assert_eq!(reason.as_str().parse::<RefusalReason>(), Ok(reason));
        }
    }
}
