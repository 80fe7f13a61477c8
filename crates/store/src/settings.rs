//! Account settings (tracking switches, the tracking base URL) and the stored links of sent
//! emails that click tracking redirects to.

use sqlx::Row;

use crate::{Result, Store, StoreError, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub open_tracking: bool,
    pub click_tracking: bool,
    /// Where tracking links point (`https://track.example.com`); the service's public URL
    /// when unset.
    pub tracking_base_url: Option<String>,
    /// Opens and clicks this soon after delivery are counted as a machine's.
    pub machine_threshold_secs: i64,
}

impl Default for Settings {
    /// Tracking is off until an admin turns it on (docs/tracking.md).
    fn default() -> Self {
        Self {
            open_tracking: false,
            click_tracking: false,
            tracking_base_url: None,
            machine_threshold_secs: 2,
        }
    }
}

impl Store {
    pub async fn settings(&self, account_id: &str) -> Result<Settings> {
        let row = sqlx::query(
            "SELECT open_tracking, click_tracking, tracking_base_url, machine_threshold_secs
             FROM account_settings WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else {
            return Ok(Settings::default());
        };
        Ok(Settings {
            open_tracking: row.try_get::<i64, _>("open_tracking")? != 0,
            click_tracking: row.try_get::<i64, _>("click_tracking")? != 0,
            tracking_base_url: row.try_get("tracking_base_url")?,
            machine_threshold_secs: row.try_get("machine_threshold_secs")?,
        })
    }

    pub async fn save_settings(&self, account_id: &str, settings: &Settings) -> Result<()> {
        if !self.account_exists(account_id).await? {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO account_settings (account_id, open_tracking, click_tracking,
                                           tracking_base_url, machine_threshold_secs, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (account_id) DO UPDATE SET
                open_tracking = excluded.open_tracking,
                click_tracking = excluded.click_tracking,
                tracking_base_url = excluded.tracking_base_url,
                machine_threshold_secs = excluded.machine_threshold_secs,
                updated_at_ms = excluded.updated_at_ms",
        )
        .bind(account_id)
        .bind(i64::from(settings.open_tracking))
        .bind(i64::from(settings.click_tracking))
        .bind(settings.tracking_base_url.as_deref())
        .bind(settings.machine_threshold_secs)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Stores an email's links (idempotent: a retry builds the same message).
    pub async fn save_links(&self, email_id: &str, urls: &[String]) -> Result<()> {
        if urls.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO links (email_id, idx, url) VALUES {} ON CONFLICT (email_id, idx) DO NOTHING",
            self.row_placeholders(urls.len(), 3)
        );
        let mut query = sqlx::query(&sql);
        for (idx, url) in urls.iter().enumerate() {
            query = query.bind(email_id).bind(idx as i64).bind(url.as_str());
        }
        query.execute(&self.writer).await?;
        Ok(())
    }

    /// The URL of link `idx` of an email, if it was stored.
    pub async fn link(&self, email_id: &str, idx: u16) -> Result<Option<String>> {
        let row = sqlx::query("SELECT url FROM links WHERE email_id = $1 AND idx = $2")
            .bind(email_id)
            .bind(i64::from(idx))
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| r.try_get("url").map_err(StoreError::from))
            .transpose()
    }

    /// What a tracking hit needs to know about its email, in one round trip: its account,
    /// when it was first delivered, the account's machine-hit threshold and how many links
    /// the email has.
    pub async fn hit_context(&self, email_id: &str) -> Result<Option<HitContext>> {
        let row = sqlx::query(
            "SELECT e.account_id, e.delivered_at_ms, s.machine_threshold_secs,
                    (SELECT COUNT(*) FROM links l WHERE l.email_id = e.id) AS links
             FROM emails e LEFT JOIN account_settings s ON s.account_id = e.account_id
             WHERE e.id = $1",
        )
        .bind(email_id)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(HitContext {
                account_id: row.try_get("account_id")?,
                delivered_at_ms: row.try_get("delivered_at_ms")?,
                machine_threshold_secs: row
                    .try_get::<Option<i64>, _>("machine_threshold_secs")?
                    .unwrap_or(Settings::default().machine_threshold_secs),
                links: row.try_get("links")?,
            })
        })
        .transpose()
    }
}

/// See [`Store::hit_context`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitContext {
    pub account_id: String,
    pub delivered_at_ms: Option<i64>,
    pub machine_threshold_secs: i64,
    /// Tracked links in the email (none without click tracking): a scanner follows them all
    /// at once.
    pub links: i64,
}
