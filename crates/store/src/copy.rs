//! Moving data: an online, consistent backup of the embedded database (`mailtrail backup`),
//! and copying an embedded installation into PostgreSQL (`mailtrail migrate --to`).
//!
//! The backup is SQLite's `VACUUM INTO`, run in one read transaction: a consistent snapshot
//! while the service keeps writing, compacted, in a file that opens like any data directory's
//! `mailtrail.db`. The copy reads every table in the order their references need and writes
//! it into a freshly migrated PostgreSQL that holds no accounts yet, in one transaction, so it
//! either all arrives or nothing does; column types come from the target's own schema.
//!
//! Both keep secrets sealed as they are: a backup is its owner's alone (0600) and opens only
//! with the installation's master key; the copy needs the target opened with that same key.

use std::path::Path;

use sqlx::Row;

use crate::{Backend, Result, Store, StoreError};

/// Every table, parents before children. The web UI's sessions are left behind: people
/// sign in again after a move.
const TABLES: &[&str] = &[
    "accounts",
    "api_keys",
    "users",
    "leads",
    "contents",
    "emails",
    "events",
    "suppressions",
    "suppression_log",
    "refusals",
    "idempotency_keys",
    "secrets",
    "inbound_messages",
    "account_settings",
    "links",
    "batch_stats",
    "account_days",
    "webhooks",
    "webhook_deliveries",
    "sending_domains",
];

/// PostgreSQL allows 65,535 parameters per statement.
const MAX_PARAMETERS: usize = 60_000;

/// Rows read from SQLite per round trip.
const READ_PAGE: i64 = 5_000;

enum Column {
    Integer,
    Text,
    Bytes,
}

impl Store {
    /// Writes a consistent copy of the embedded database to `to` while the service runs.
    pub async fn backup_sqlite(&self, to: &Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::Conflict(
                "backup copies the embedded SQLite database; back PostgreSQL up with pg_dump"
                    .into(),
            ));
        }
        if to.exists() {
            return Err(StoreError::Conflict(format!(
                "{} exists already; choose a new file",
                to.display()
            )));
        }
        let path = to
            .to_str()
            .ok_or_else(|| StoreError::Conflict(format!("{} is not a UTF-8 path", to.display())))?;
        // Made empty and private first: VACUUM INTO fills an empty file and keeps its mode.
        crate::private::create_file(to)
            .map_err(|e| StoreError::Conflict(format!("cannot create {}: {e}", to.display())))?;
        let written = sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.reader)
            .await;
        if let Err(e) = written {
            let _ = std::fs::remove_file(to);
            return Err(e.into());
        }
        Ok(())
    }

    /// Copies every row of this (SQLite) store into `target` (PostgreSQL, migrated, with no
    /// accounts), in one transaction on the target. `progress` gets (table, rows copied).
    pub async fn copy_into(
        &self,
        target: &Store,
        mut progress: impl FnMut(&str, u64),
    ) -> Result<u64> {
        if self.backend != Backend::Sqlite || target.backend != Backend::Postgres {
            return Err(StoreError::Conflict(
                "migrate copies an embedded SQLite installation into PostgreSQL".into(),
            ));
        }
        if self.key().id() != target.key().id() {
            return Err(StoreError::MasterKey(format!(
                "the copy keeps secrets sealed under key {}; open the target with that key, not {}",
                self.key().id(),
                target.key().id()
            )));
        }
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
            .fetch_one(&target.reader)
            .await?;
        if existing > 0 {
            return Err(StoreError::Conflict(
                "the PostgreSQL database already holds accounts; migrate into an empty one".into(),
            ));
        }
        let mut tx = target.writer.begin().await?;
        // Opening the target wrote its own key check (under the same key); the copied one
        // takes its place.
        sqlx::query("DELETE FROM secrets").execute(&mut *tx).await?;
        let mut total = 0;
        for table in TABLES {
            let columns: Vec<(String, Column)> = sqlx::query(
                "SELECT column_name::text AS column_name, data_type::text AS data_type
                 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                 ORDER BY ordinal_position",
            )
            .bind(*table)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                let name: String = row.try_get("column_name")?;
                let kind: String = row.try_get("data_type")?;
                let column = match kind.as_str() {
                    "bigint" | "integer" | "smallint" => Column::Integer,
                    "bytea" => Column::Bytes,
                    _ => Column::Text,
                };
                Ok((name, column))
            })
            .collect::<Result<_>>()?;
            if columns.is_empty() {
                return Err(StoreError::Corrupt(format!(
                    "the target has no table {table}: is it migrated?"
                )));
            }
            let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            let list = names.join(", ");
            let rows_per_insert = (MAX_PARAMETERS / columns.len()).max(1);
            let mut copied = 0u64;
            let mut offset = 0i64;
            loop {
                // rowid order: stable, and the order the rows were written.
                let rows = sqlx::query(&format!(
                    "SELECT {list} FROM {table} ORDER BY rowid LIMIT $1 OFFSET $2"
                ))
                .bind(READ_PAGE)
                .bind(offset)
                .fetch_all(&self.reader)
                .await?;
                if rows.is_empty() {
                    break;
                }
                offset += rows.len() as i64;
                for chunk in rows.chunks(rows_per_insert) {
                    let sql = format!(
                        "INSERT INTO {table} ({list}) VALUES {}",
                        target.row_placeholders(chunk.len(), columns.len())
                    );
                    let mut insert = sqlx::query(&sql);
                    for row in chunk {
                        for (i, (_, column)) in columns.iter().enumerate() {
                            insert = match column {
                                Column::Integer => insert.bind(row.try_get::<Option<i64>, _>(i)?),
                                Column::Text => insert.bind(row.try_get::<Option<String>, _>(i)?),
                                Column::Bytes => insert.bind(row.try_get::<Option<Vec<u8>>, _>(i)?),
                            };
                        }
                    }
                    insert.execute(&mut *tx).await?;
                }
                copied += rows.len() as u64;
                progress(table, copied);
            }
            total += copied;
        }
        tx.commit().await?;
        Ok(total)
    }
}
