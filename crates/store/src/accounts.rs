//! Accounts, the API keys that act for them, and the users who log in to the web UI.

use mailtrail_domain::Role;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{AccountId, Result, Store, StoreError, new_id, now_ms};

/// Who is calling, resolved from an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCaller {
    pub key_id: String,
    /// `None` for operators, who belong to no account.
    pub account_id: Option<String>,
    pub role: Role,
}

/// A freshly generated key: the only time its plain text exists.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub key: String,
}

const KEY_PREFIX: &str = "mt_";

fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    /// Creates an account and its first key, with the admin role.
    pub async fn create_account(&self, name: &str) -> Result<(AccountId, NewKey)> {
        let id = new_id();
        sqlx::query("INSERT INTO accounts (id, name, created_at_ms) VALUES ($1, $2, $3)")
            .bind(&id)
            .bind(name)
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        let key = self.create_api_key(Some(&id), Role::Admin).await?;
        Ok((id.into(), key))
    }

    pub async fn account_exists(&self, account_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM accounts WHERE id = $1")
            .bind(account_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    /// Generates a key, stores only its hash, and returns the plain text once.
    pub async fn create_api_key(&self, account_id: Option<&str>, role: Role) -> Result<NewKey> {
        if (role == Role::Operator) != account_id.is_none() {
            return Err(StoreError::Conflict(
                "operator keys belong to no account; other keys belong to exactly one".into(),
            ));
        }
        let mut secret = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let key = format!("{KEY_PREFIX}{}", hex::encode(secret));
        let id = new_id();
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, role, key_hash, created_at_ms)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(account_id)
        .bind(role.as_str())
        .bind(hash_key(&key))
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(NewKey { id, key })
    }

    /// The caller a key stands for, or `None` for an unknown key.
    pub async fn resolve_api_key(&self, key: &str) -> Result<Option<ApiCaller>> {
        if !key.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        let row = sqlx::query("SELECT id, account_id, role FROM api_keys WHERE key_hash = $1")
            .bind(hash_key(key))
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            let role: String = row.try_get("role")?;
            Ok(ApiCaller {
                key_id: row.try_get("id")?,
                account_id: row.try_get("account_id")?,
                role: role.parse().map_err(StoreError::Corrupt)?,
            })
        })
        .transpose()
    }

    /// Adds a web UI login. `password_hash` is a PHC string (argon2), made by the caller.
    pub async fn create_user(
        &self,
        email: &str,
        account_id: Option<&str>,
        role: Role,
        password_hash: &str,
    ) -> Result<String> {
        if (role == Role::Operator) != account_id.is_none() {
            return Err(StoreError::Conflict(
                "operators belong to no account; users and admins need --account".into(),
            ));
        }
        if let Some(account) = account_id
            && !self.account_exists(account).await?
        {
            return Err(StoreError::NotFound);
        }
        let id = new_id();
        let inserted = sqlx::query(
            "INSERT INTO users (id, account_id, email, role, password_hash, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(account_id)
        .bind(email.trim().to_lowercase())
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now_ms())
        .execute(&self.writer)
        .await
        .map_err(StoreError::from);
        match inserted {
            Ok(_) => Ok(id),
            Err(e) if e.is_unique_violation() => Err(StoreError::Conflict(format!(
                "a user {email} already exists"
            ))),
            Err(e) => Err(e),
        }
    }

    /// The stored password hash and role of a login, for the web UI's sign-in.
    pub async fn user_credentials(&self, email: &str) -> Result<Option<(String, Role)>> {
        let row = sqlx::query("SELECT password_hash, role FROM users WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            let role: String = row.try_get("role")?;
            Ok((
                row.try_get("password_hash")?,
                role.parse().map_err(StoreError::Corrupt)?,
            ))
        })
        .transpose()
    }
}
