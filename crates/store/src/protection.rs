//! Sending protection: an account's recent bounce and complaint counts, and the pause that
//! stops its emails from being claimed (queued emails wait; nothing is dropped) until an admin
//! resumes it.

use sqlx::Row;

use crate::{Result, Store, StoreError, now_ms};

/// An account's emails queued since some time, and how they fared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecentRates {
    /// Emails not dropped.
    pub sent: i64,
    /// Failed with a hard reason (the address does not exist, the domain takes no mail).
    pub hard_bounced: i64,
    /// Feedback-loop complaints of any type.
    pub complained: i64,
}

/// Why and since when an account's sending is paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    pub since_ms: i64,
    pub reason: String,
}

impl Store {
    /// Every account's id, for the periodic check.
    pub async fn account_ids(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM accounts ORDER BY id")
            .fetch_all(&self.reader)
            .await?)
    }

    /// How the account's emails queued since `since_ms` fared (docs/emails.md vocabulary).
    pub async fn recent_rates(&self, account_id: &str, since_ms: i64) -> Result<RecentRates> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS emails,
                    COALESCE(SUM(CASE WHEN (milestones & 4) <> 0 THEN 1 ELSE 0 END), 0) AS dropped,
                    COALESCE(SUM(CASE WHEN stage = 'failed' AND reason IN
                        ('userunknown', 'hostunknown', 'hasmoved', 'notaccept')
                        THEN 1 ELSE 0 END), 0) AS hard,
                    COALESCE(SUM(CASE WHEN (milestones & 512) <> 0 THEN 1 ELSE 0 END), 0)
                        AS complained
             FROM emails WHERE account_id = $1 AND created_at_ms >= $2",
        )
        .bind(account_id)
        .bind(since_ms)
        .fetch_one(&self.reader)
        .await?;
        let count = |name: &str| row.try_get::<i64, _>(name);
        Ok(RecentRates {
            sent: count("emails")? - count("dropped")?,
            hard_bounced: count("hard")?,
            complained: count("complained")?,
        })
    }

    /// Pauses the account's sending (a no-op if it is paused already).
    pub async fn pause_sending(&self, account_id: &str, reason: &str) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO account_settings (account_id, updated_at_ms, paused_at_ms, paused_reason)
             VALUES ($1, $2, $2, $3)
             ON CONFLICT (account_id) DO UPDATE SET
                paused_at_ms = COALESCE(account_settings.paused_at_ms, excluded.paused_at_ms),
                paused_reason = COALESCE(account_settings.paused_reason, excluded.paused_reason)",
        )
        .bind(account_id)
        .bind(now)
        .bind(reason)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Lifts a pause; `NotFound` when the account's sending was not paused.
    pub async fn resume_sending(&self, account_id: &str) -> Result<()> {
        let resumed = sqlx::query(
            "UPDATE account_settings SET paused_at_ms = NULL, paused_reason = NULL,
                    updated_at_ms = $2
             WHERE account_id = $1 AND paused_at_ms IS NOT NULL",
        )
        .bind(account_id)
        .bind(now_ms())
        .execute(&self.writer)
        .await?
        .rows_affected();
        if resumed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Whether (and why) the account's sending is paused.
    pub async fn sending_pause(&self, account_id: &str) -> Result<Option<Pause>> {
        let row = sqlx::query(
            "SELECT paused_at_ms, paused_reason FROM account_settings
             WHERE account_id = $1 AND paused_at_ms IS NOT NULL",
        )
        .bind(account_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(Pause {
                since_ms: row.try_get("paused_at_ms")?,
                reason: row
                    .try_get::<Option<String>, _>("paused_reason")?
                    .unwrap_or_default(),
            })
        })
        .transpose()
    }
}
