//! SMTP submission credentials (docs/api.md): a username and password per account that a
//! mail client logs in with (AUTH PLAIN or LOGIN) to submit mail as that account. The password
//! is generated here, shown once, and kept only as an argon2 hash; a revoked credential stays
//! listed (with when it was revoked) but no longer logs in.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng as HashRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sqlx::Row;

use crate::{Result, Store, StoreError, new_id, now_ms};

/// A credential just made: the only time its password exists in plain text.
#[derive(Debug, Clone)]
pub struct NewSmtpCredential {
    pub id: String,
    pub username: String,
    pub password: String,
}

/// A credential as listed: no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpCredential {
    pub id: String,
    pub username: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// `len` random bytes as lowercase hex.
fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Store {
    /// Makes a credential for `account_id`: username `smtp-` and 12 hex digits, a password of
    /// 32 hex digits (128 random bits). `NotFound` when there is no such account.
    pub async fn create_smtp_credential(&self, account_id: &str) -> Result<NewSmtpCredential> {
        if !self.account_exists(account_id).await? {
            return Err(StoreError::NotFound);
        }
        let username = format!("smtp-{}", random_hex(6));
        let password = random_hex(16);
        let hash = {
            let password = password.clone();
            // Argon2 takes tens of milliseconds of CPU: keep it off the async workers.
            tokio::task::spawn_blocking(move || {
                let salt = SaltString::generate(&mut HashRng);
                Argon2::default()
                    .hash_password(password.as_bytes(), &salt)
                    .map(|hash| hash.to_string())
            })
            .await
            .map_err(|e| StoreError::Corrupt(format!("hashing panicked: {e}")))?
            .map_err(|e| StoreError::Corrupt(format!("cannot hash the password: {e}")))?
        };
        let id = new_id();
        sqlx::query(
            "INSERT INTO smtp_credentials (id, account_id, username, password_hash, created_at_ms)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(account_id)
        .bind(&username)
        .bind(&hash)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(NewSmtpCredential {
            id,
            username,
            password,
        })
    }

    /// The account a username and password log in as; `None` for an unknown or revoked
    /// username or a wrong password. A successful login is noted as the credential's last use.
    pub async fn verify_smtp_credential(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT id, account_id, password_hash FROM smtp_credentials
             WHERE username = $1 AND revoked_at_ms IS NULL",
        )
        .bind(username)
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        let account_id: String = row.try_get("account_id")?;
        let hash: String = row.try_get("password_hash")?;
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("verifying panicked: {e}")))?
        .map_err(|e| StoreError::Corrupt(format!("smtp credential {id}: bad hash: {e}")))?;
        if !matches {
            return Ok(None);
        }
        sqlx::query("UPDATE smtp_credentials SET last_used_at_ms = $2 WHERE id = $1")
            .bind(&id)
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        Ok(Some(account_id))
    }

    /// An account's credentials, newest first, without their secrets.
    pub async fn list_smtp_credentials(&self, account_id: &str) -> Result<Vec<SmtpCredential>> {
        let rows = sqlx::query(
            "SELECT id, username, created_at_ms, last_used_at_ms, revoked_at_ms
             FROM smtp_credentials WHERE account_id = $1 ORDER BY created_at_ms DESC, id DESC",
        )
        .bind(account_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SmtpCredential {
                    id: row.try_get("id")?,
                    username: row.try_get("username")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                    last_used_at_ms: row.try_get("last_used_at_ms")?,
                    revoked_at_ms: row.try_get("revoked_at_ms")?,
                })
            })
            .collect()
    }

    /// Revokes a credential (by id): it no longer logs in. With `account_id`, only that
    /// account's: another account's id is `NotFound`, as an unknown one is. Revoking twice
    /// keeps the first time.
    pub async fn revoke_smtp_credential(&self, id: &str, account_id: Option<&str>) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE smtp_credentials SET revoked_at_ms = COALESCE(revoked_at_ms, $2)
             WHERE id = $1 AND ($3 IS NULL OR account_id = $3)",
        )
        .bind(id)
        .bind(now_ms())
        .bind(account_id)
        .execute(&self.writer)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
