//! Retention: how long raw received mail and old emails are kept (issue #6). A sweep deletes
//! raw messages processed longer ago than `raw_inbound` (never one still waiting to be
//! processed or forwarded), and — when `emails` is set — emails that left the queue longer
//! ago than that, with their events, links and matched raw mail. Batch counts stay: the batch
//! report keeps describing what was sent. Zero keeps forever.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Result, Store, now_ms};

/// Emails deleted per transaction, so a large sweep never holds the writer for long.
const CHUNK: i64 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Raw bounces, complaints and replies, after processing. Zero keeps them forever.
    #[serde(with = "humantime_serde")]
    pub raw_inbound: Duration,
    /// Emails (and their events) after they were queued. Zero, the default, keeps them.
    #[serde(with = "humantime_serde")]
    pub emails: Duration,
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            raw_inbound: Duration::from_secs(90 * 24 * 3600),
            emails: Duration::ZERO,
            sweep_interval: Duration::from_secs(3600),
        }
    }
}

/// What one sweep deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub raw_inbound: u64,
    pub emails: u64,
}

impl Store {
    /// Deletes emails queued before `before_ms` that have left the queue, with everything
    /// that hangs off them; returns how many.
    pub async fn expire_emails(&self, before_ms: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.writer.begin().await?;
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM emails
                 WHERE created_at_ms < $1 AND next_attempt_at_ms IS NULL
                 ORDER BY created_at_ms LIMIT $2",
            )
            .bind(before_ms)
            .bind(CHUNK)
            .fetch_all(&mut *tx)
            .await?;
            if ids.is_empty() {
                break;
            }
            let list = self.placeholders(1, ids.len());
            let contents: Vec<String> = {
                let sql = format!("SELECT DISTINCT content_id FROM emails WHERE id IN ({list})");
                ids.iter()
                    .fold(sqlx::query_scalar(&sql), |q, id| q.bind(id))
                    .fetch_all(&mut *tx)
                    .await?
            };
            for table in ["events", "links", "inbound_messages"] {
                let sql = format!("DELETE FROM {table} WHERE email_id IN ({list})");
                ids.iter()
                    .fold(sqlx::query(&sql), |q, id| q.bind(id))
                    .execute(&mut *tx)
                    .await?;
            }
            let sql = format!("DELETE FROM emails WHERE id IN ({list})");
            ids.iter()
                .fold(sqlx::query(&sql), |q, id| q.bind(id))
                .execute(&mut *tx)
                .await?;
            for content in &contents {
                for table in ["content_attachments", "content_tags"] {
                    sqlx::query(&format!(
                        "DELETE FROM {table} WHERE content_id = $1
                         AND NOT EXISTS (SELECT 1 FROM emails WHERE content_id = $1)"
                    ))
                    .bind(content)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "DELETE FROM contents WHERE id = $1
                     AND NOT EXISTS (SELECT 1 FROM emails WHERE content_id = $1)",
                )
                .bind(content)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            total += ids.len() as u64;
            if (ids.len() as i64) < CHUNK {
                break;
            }
        }
        Ok(total)
    }
}

/// One sweep now.
pub async fn sweep(store: &Store, config: &RetentionConfig) -> Result<Swept> {
    let now = now_ms();
    let mut swept = Swept::default();
    if !config.raw_inbound.is_zero() {
        swept.raw_inbound = store
            .expire_inbound(now - config.raw_inbound.as_millis() as i64)
            .await?;
    }
    if !config.emails.is_zero() {
        swept.emails = store
            .expire_emails(now - config.emails.as_millis() as i64)
            .await?;
    }
    Ok(swept)
}

/// Sweeps every `sweep_interval` until `shutdown`.
pub async fn run(store: Store, config: RetentionConfig, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        match sweep(&store, &config).await {
            Ok(Swept {
                raw_inbound: 0,
                emails: 0,
            }) => {}
            Ok(swept) => tracing::info!(
                raw_inbound = swept.raw_inbound,
                emails = swept.emails,
                "retention: deleted what is past its time"
            ),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; trying again later"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(config.sweep_interval.max(Duration::from_secs(1))) => {}
        }
    }
}
