//! The suppression list (docs/emails.md): addresses an account must not email again, each
//! with the reason and reply that put it there, and a log of who added or removed it.

use std::collections::HashMap;

use mailtrail_domain::{EmailAddress, Reason};
use sqlx::{Any, Row, Transaction};

use crate::leads::PermissionCause;
use crate::{Result, Store, StoreError, new_id, now_ms};

/// Addresses looked up per statement, far below both backends' parameter limits.
const LOOKUP_CHUNK: usize = 500;

/// Why an address is blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub reason: Reason,
    /// The reply that condemned the address, when there was one.
    pub status: Option<String>,
    /// The email whose bounce, complaint or unsubscribe did it.
    pub email_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub account_id: String,
    pub address: String,
    pub block: Block,
    pub created_at_ms: i64,
}

/// Suppresses an address inside a transaction and sets the matching lead's Permission to
/// Email to No, with the block's reason as its cause. Suppressing an address already blocked
/// keeps the first block.
pub(crate) async fn suppress_in(
    tx: &mut Transaction<'static, Any>,
    account_id: &str,
    address_key: &str,
    block: &Block,
    actor: &str,
) -> Result<()> {
    let now = now_ms();
    let added = sqlx::query(
        "INSERT INTO suppressions (account_id, address_key, reason, status, email_id, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account_id, address_key) DO NOTHING",
    )
    .bind(account_id)
    .bind(address_key)
    .bind(block.reason.as_str())
    .bind(block.status.as_deref())
    .bind(block.email_id.as_deref())
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if added > 0 {
        log(
            tx,
            account_id,
            address_key,
            "added",
            actor,
            block.reason.as_str(),
        )
        .await?;
    }
    // A lead already at No keeps the cause that set it: that is what its page says.
    sqlx::query(
        "UPDATE leads SET permission = 'no', permission_cause = $3,
                          permission_changed_at_ms = $4, updated_at_ms = $4
         WHERE account_id = $1 AND address_key = $2 AND permission <> 'no'",
    )
    .bind(account_id)
    .bind(address_key)
    .bind(PermissionCause::of_block(block.reason).as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn log(
    tx: &mut Transaction<'static, Any>,
    account_id: &str,
    address_key: &str,
    action: &str,
    actor: &str,
    note: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO suppression_log (id, account_id, address_key, action, actor, note, at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id())
    .bind(account_id)
    .bind(address_key)
    .bind(action)
    .bind(actor)
    .bind(note)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionLogEntry {
    pub action: String,
    pub actor: String,
    pub note: String,
    pub at_ms: i64,
}

/// How a block is kept once its lead was erased: a hash of the normalised address, so the
/// address stays blocked without being stored (docs/emails.md, erasure).
pub(crate) fn erased_key(address_key: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(address_key.as_bytes()))
    )
}

impl Store {
    /// Blocks an address by hand (or for an unsubscribe or complaint).
    pub async fn suppress(
        &self,
        account_id: &str,
        address: &EmailAddress,
        block: &Block,
        actor: &str,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        suppress_in(&mut tx, account_id, &address.normalized(), block, actor).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The block on an address, if any.
    pub async fn suppression(
        &self,
        account_id: &str,
        address: &EmailAddress,
    ) -> Result<Option<Suppression>> {
        let key = address.normalized();
        let row = sqlx::query(
            "SELECT * FROM suppressions WHERE account_id = $1 AND address_key IN ($2, $3)",
        )
        .bind(account_id)
        .bind(&key)
        .bind(erased_key(&key))
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(suppression_from_row).transpose()
    }

    /// The blocks on these normalised addresses of one account (a page of leads), by
    /// address.
    pub async fn suppressions_among(
        &self,
        account_id: &str,
        address_keys: &[String],
    ) -> Result<HashMap<String, Suppression>> {
        let mut found = HashMap::new();
        for chunk in address_keys.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT * FROM suppressions WHERE account_id = {} AND address_key IN ({})",
                self.placeholders(1, 1),
                self.placeholders(2, chunk.len())
            );
            let mut select = sqlx::query(&sql).bind(account_id);
            for key in chunk {
                select = select.bind(key.as_str());
            }
            for row in select.fetch_all(&self.reader).await? {
                let block = suppression_from_row(&row)?;
                found.insert(block.address.clone(), block);
            }
        }
        Ok(found)
    }

    /// Every block, newest first: one account's, or all accounts' for operators.
    pub async fn suppressions(
        &self,
        account_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Suppression>> {
        let rows = sqlx::query(
            "SELECT * FROM suppressions WHERE ($1 IS NULL OR account_id = $1)
             ORDER BY created_at_ms DESC LIMIT $2",
        )
        .bind(account_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(suppression_from_row).collect()
    }

    /// Lifts a block, recording who did it and why. `NotFound` if the address is not blocked.
    pub async fn remove_suppression(
        &self,
        account_id: &str,
        address: &EmailAddress,
        actor: &str,
        why: &str,
    ) -> Result<()> {
        let key = address.normalized();
        let mut tx = self.writer.begin().await?;
        let removed = sqlx::query(
            "DELETE FROM suppressions WHERE account_id = $1 AND address_key IN ($2, $3)",
        )
        .bind(account_id)
        .bind(&key)
        .bind(erased_key(&key))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        log(&mut tx, account_id, &key, "removed", actor, why).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The audit trail of one address, oldest first.
    pub async fn suppression_log(
        &self,
        account_id: &str,
        address: &EmailAddress,
    ) -> Result<Vec<SuppressionLogEntry>> {
        let rows = sqlx::query(
            "SELECT action, actor, note, at_ms FROM suppression_log
             WHERE account_id = $1 AND address_key IN ($2, $3) ORDER BY at_ms, id",
        )
        .bind(account_id)
        .bind(address.normalized())
        .bind(erased_key(&address.normalized()))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SuppressionLogEntry {
                    action: row.try_get("action")?,
                    actor: row.try_get("actor")?,
                    note: row.try_get("note")?,
                    at_ms: row.try_get("at_ms")?,
                })
            })
            .collect()
    }
}

fn suppression_from_row(row: &sqlx::any::AnyRow) -> Result<Suppression> {
    let reason: String = row.try_get("reason")?;
    Ok(Suppression {
        account_id: row.try_get("account_id")?,
        address: row.try_get("address_key")?,
        block: Block {
            reason: reason
                .parse::<Reason>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            status: row.try_get("status")?,
            email_id: row.try_get("email_id")?,
        },
        created_at_ms: row.try_get("created_at_ms")?,
    })
}
