//! Installation-wide secrets, made once and shared by every node through the database.

use rand::RngCore;

use crate::{Result, Store, now_ms};

impl Store {
    /// The secret called `name`: 32 random bytes (hex) made on first use. Two nodes racing
    /// to make it both end up with the one that was stored first.
    pub async fn shared_secret(&self, name: &str) -> Result<Vec<u8>> {
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        sqlx::query(
            "INSERT INTO secrets (name, value, created_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(hex::encode(fresh))
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        let value: String = sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.writer)
            .await?;
        hex::decode(value).map_err(|e| crate::StoreError::Corrupt(e.to_string()))
    }
}
