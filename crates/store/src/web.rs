//! The web UI's side of the database: logins read for sign-in, server-side sessions shared by
//! every node (looked up by the SHA-256 of their cookie token, never the token itself), the
//! list of accounts an operator picks from, each login's timezone, and what the admin pages
//! manage: an account's logins (listed, removed with their sessions) and its API keys (listed
//! without their hashes, revoked).

use mailtrail_domain::Role;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{AccountId, Result, Store, StoreError, now_ms};

/// A web UI login, with what sign-in checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUser {
    pub id: String,
    pub email: String,
    /// `None` for operators, who belong to no account.
    pub account_id: Option<String>,
    pub role: Role,
    /// An argon2 PHC string.
    pub password_hash: String,
}

/// A live session and the user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub user_id: String,
    pub email: String,
    pub role: Role,
    /// The user's own account; `None` for operators.
    pub user_account_id: Option<String>,
    /// The account an operator last chose to look at.
    pub chosen_account_id: Option<String>,
    pub expires_at_ms: i64,
    /// The user's IANA timezone (`UTC` until they choose one).
    pub timezone: String,
}

/// An account as a picker lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBrief {
    pub id: String,
    pub name: String,
}

/// An API key as the admin pages list it: what it may do and since when, never its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: String,
    pub role: Role,
    pub created_at_ms: i64,
}

/// A login of an account, as its settings page lists it (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUser {
    pub id: String,
    pub email: String,
    pub role: Role,
    pub created_at_ms: i64,
}

fn role(row: &AnyRow) -> Result<Role> {
    let role: String = row.try_get("role")?;
    role.parse().map_err(StoreError::Corrupt)
}

impl Store {
    /// The login with this email (compared as `create_user` stored it: trimmed, lower-case).
    pub async fn web_user(&self, email: &str) -> Result<Option<WebUser>> {
        let row = sqlx::query(
            "SELECT id, email, account_id, role, password_hash FROM users WHERE email = $1",
        )
        .bind(email.trim().to_lowercase())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(WebUser {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
                account_id: row.try_get("account_id")?,
                role: role(&row)?,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    /// Starts a session for a user, valid until `expires_at_ms`.
    pub async fn create_web_session(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at_ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO web_sessions (token_hash, user_id, created_at_ms, expires_at_ms)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now_ms())
        .bind(expires_at_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The session with this token hash, unless it has expired by `now` (ms).
    pub async fn web_session(&self, token_hash: &str, now: i64) -> Result<Option<WebSession>> {
        let row = sqlx::query(
            "SELECT s.user_id, s.account_id AS chosen, s.expires_at_ms,
                    u.email, u.role, u.account_id, u.timezone
             FROM web_sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at_ms > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(WebSession {
                user_id: row.try_get("user_id")?,
                email: row.try_get("email")?,
                role: role(&row)?,
                user_account_id: row.try_get("account_id")?,
                chosen_account_id: row.try_get("chosen")?,
                expires_at_ms: row.try_get("expires_at_ms")?,
                timezone: row.try_get("timezone")?,
            })
        })
        .transpose()
    }

    /// Pushes a session's end to `expires_at_ms` (idle expiry).
    pub async fn touch_web_session(&self, token_hash: &str, expires_at_ms: i64) -> Result<()> {
        sqlx::query("UPDATE web_sessions SET expires_at_ms = $2 WHERE token_hash = $1")
            .bind(token_hash)
            .bind(expires_at_ms)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Remembers the account an operator chose to look at.
    pub async fn choose_web_account(&self, token_hash: &str, account_id: &AccountId) -> Result<()> {
        sqlx::query("UPDATE web_sessions SET account_id = $2 WHERE token_hash = $1")
            .bind(token_hash)
            .bind(account_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Ends a session (logout). Ending one that does not exist is not an error.
    pub async fn delete_web_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Deletes the sessions that ended by `now` (ms); returns how many.
    pub async fn expire_web_sessions(&self, now: i64) -> Result<u64> {
        let removed = sqlx::query("DELETE FROM web_sessions WHERE expires_at_ms <= $1")
            .bind(now)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(removed)
    }

    /// Every account, oldest first: the operator's account picker.
    pub async fn account_briefs(&self) -> Result<Vec<AccountBrief>> {
        let rows = sqlx::query("SELECT id, name FROM accounts ORDER BY created_at_ms, id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AccountBrief {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                })
            })
            .collect()
    }

    /// The account's logins, oldest first (operators belong to no account: never listed).
    pub async fn users(&self, account_id: &str) -> Result<Vec<AccountUser>> {
        let rows = sqlx::query(
            "SELECT id, email, role, created_at_ms FROM users WHERE account_id = $1
             ORDER BY created_at_ms, email",
        )
        .bind(account_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AccountUser {
                    id: row.try_get("id")?,
                    email: row.try_get("email")?,
                    role: role(row)?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    /// Sets the timezone a login reads times in (an IANA name, checked by the caller).
    pub async fn set_user_timezone(&self, user_id: &str, timezone: &str) -> Result<()> {
        let updated = sqlx::query("UPDATE users SET timezone = $2 WHERE id = $1")
            .bind(user_id)
            .bind(timezone)
            .execute(&self.writer)
            .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Removes a login of the account, with its sessions (it is signed out everywhere at
    /// once). Another account's login, or an operator, is `NotFound`, as an unknown id is.
    pub async fn remove_user(&self, account_id: &str, user_id: &str) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let found = sqlx::query("SELECT 1 FROM users WHERE id = $1 AND account_id = $2")
            .bind(user_id)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account's API keys, oldest first.
    pub async fn api_keys(&self, account_id: &str) -> Result<Vec<ApiKeyInfo>> {
        let rows = sqlx::query(
            "SELECT id, role, created_at_ms FROM api_keys WHERE account_id = $1
             ORDER BY created_at_ms, id",
        )
        .bind(account_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ApiKeyInfo {
                    id: row.try_get("id")?,
                    role: role(row)?,
                    created_at_ms: row.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    /// Revokes one of the account's API keys: it is forgotten, so it no longer authenticates.
    /// Another account's key is `NotFound`, as an unknown id is.
    pub async fn revoke_api_key(&self, account_id: &str, id: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND account_id = $2")
            .bind(id)
            .bind(account_id)
            .execute(&self.writer)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
