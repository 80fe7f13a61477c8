//! Installation-wide secrets, made once and shared by every node through the database, and
//! keeping every secret column sealed under the master key ([`crate::sealed`]).
//!
//! The secret columns are listed once, in [`SEALED`]; each value is sealed as what it is (its
//! table, column and row, see [`context`]). The `secrets` table also holds the key check: a
//! known text sealed under the master key, so a node that starts with another key stops at
//! once with an error that names both keys, before it can seal anything the others cannot
//! open.

use rand::RngCore;
use sqlx::{Any, Row, Transaction};

use crate::sealed::{MasterKey, is_sealed};
use crate::{Backend, Result, Store, StoreError, now_ms};

/// Every sealed column: its table, the column that names its row, and the column itself. A
/// NULL (a domain with no rotation under way has no next key) is no value to seal.
const SEALED: &[(&str, &str, &str)] = &[
    ("secrets", "name", "value"),
    ("webhooks", "id", "secret"),
    ("sending_domains", "id", "private_key"),
    ("sending_domains", "id", "next_private_key"),
];

/// The `secrets` row holding the key check.
const KEY_CHECK: &str = "master_key_check";
const KEY_CHECK_TEXT: &[u8] = b"mailtrail master key check";

/// What a value of `table.column` in row `row` is sealed as: a value opens only in its row.
pub(crate) fn context(table: &str, column: &str, row: &str) -> String {
    format!("{table}.{column}/{row}")
}

/// Where a node is told to look when its key is not the database's.
const KEY_HINT: &str = "every node must start with the same master key: copy the key file \
                        (secret_key_file, by default DATA_DIR/secret.key) from a node that \
                        works, or set the same MAILTRAIL_SECRET_KEY";

impl Store {
    /// The key secret columns are sealed under.
    pub(crate) fn key(&self) -> &MasterKey {
        &self.key
    }

    /// The secret called `name`: 32 random bytes made on first use. Two nodes racing to make
    /// it both end up with the one that was stored first.
    pub async fn shared_secret(&self, name: &str) -> Result<Vec<u8>> {
        let context = context("secrets", "value", name);
        let mut fresh = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut fresh);
        let mut tx = self.writer.begin().await?;
        self.refuse_stale_key(&mut tx).await?;
        sqlx::query(
            "INSERT INTO secrets (name, value, created_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(self.key.seal(&context, hex::encode(fresh).as_bytes()))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let value: String = sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        hex::decode(self.key.open_text(&context, &value)?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Run when the store opens: records the key check if this is the first node, refuses a
    /// key that is not the database's, and seals any secret an older version stored in clear.
    pub(crate) async fn take_up_key(&self) -> Result<()> {
        let check_context = context("secrets", "value", KEY_CHECK);
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO secrets (name, value, created_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(KEY_CHECK)
        .bind(self.key.seal(&check_context, KEY_CHECK_TEXT))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let check: String = sqlx::query_scalar(&format!(
            "SELECT value FROM secrets WHERE name = $1{}",
            self.lock_clause()
        ))
        .bind(KEY_CHECK)
        .fetch_one(&mut *tx)
        .await?;
        match self.key.open(&check_context, &check) {
            Ok(text) if text == KEY_CHECK_TEXT => {}
            Ok(_) | Err(StoreError::Corrupt(_)) => {
                return Err(StoreError::MasterKey(format!(
                    "this node's key {} does not open the database's key check: {KEY_HINT}",
                    self.key.id()
                )));
            }
            Err(e) => return Err(StoreError::MasterKey(format!("{e}: {KEY_HINT}"))),
        }
        let mut sealed_now = 0;
        for stored in self.sealed_values(&mut tx).await? {
            if self.key.sealed_this(&stored.value) {
                continue;
            }
            if is_sealed(&stored.value) {
                // Left half-rotated, or written by a node with another key.
                self.key.open(&stored.context(), &stored.value)?;
            }
            let sealed = self.key.seal(&stored.context(), stored.value.as_bytes());
            stored.replace(&mut tx, sealed).await?;
            sealed_now += 1;
        }
        tx.commit().await?;
        if sealed_now > 0 {
            tracing::warn!(
                secrets = sealed_now,
                key = self.key.id(),
                "sealed secrets an older version stored in clear; backups taken before now \
                 still hold them in clear"
            );
            self.erase_old_values("the secrets it stored in clear")
                .await;
        }
        Ok(())
    }

    /// Fails if the database's secrets are no longer sealed under this node's key (the key
    /// was rotated since it started), so nothing is sealed under a key the others lost. Run
    /// in the transaction that seals a new value.
    pub(crate) async fn refuse_stale_key(&self, tx: &mut Transaction<'static, Any>) -> Result<()> {
        let check: Option<String> = sqlx::query_scalar(&format!(
            "SELECT value FROM secrets WHERE name = $1{}",
            self.lock_clause()
        ))
        .bind(KEY_CHECK)
        .fetch_optional(&mut **tx)
        .await?;
        match check {
            Some(check) if !self.key.sealed_this(&check) => Err(StoreError::MasterKey(format!(
                "the database's secrets are no longer sealed under this node's key {} (was the \
                 key rotated?): restart it with the new key",
                self.key.id()
            ))),
            _ => Ok(()),
        }
    }

    /// Re-seals every secret column under `new`, in one transaction, and makes `new` this
    /// handle's key; how many values it re-sealed (the key check among them). Other nodes
    /// must be stopped first and started again with `new`: until then they can neither open
    /// nor seal secrets.
    pub async fn rotate_master_key(&mut self, new: MasterKey) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        let mut resealed = 0;
        for stored in self.sealed_values(&mut tx).await? {
            let plaintext = self.key.open(&stored.context(), &stored.value)?;
            let sealed = new.seal(&stored.context(), &plaintext);
            stored.replace(&mut tx, sealed).await?;
            resealed += 1;
        }
        tx.commit().await?;
        self.key = new.into();
        self.erase_old_values("the values sealed under the old key")
            .await;
        Ok(resealed)
    }

    /// Every value of every sealed column, its row locked until `tx` ends.
    async fn sealed_values(&self, tx: &mut Transaction<'static, Any>) -> Result<Vec<Stored>> {
        let mut values = Vec::new();
        for &(table, row_column, column) in SEALED {
            let rows = sqlx::query(&format!(
                "SELECT {row_column} AS row_name, {column} AS value FROM {table}
                 WHERE {column} IS NOT NULL{}",
                self.lock_clause()
            ))
            .fetch_all(&mut **tx)
            .await?;
            for row in rows {
                values.push(Stored {
                    table,
                    row_column,
                    column,
                    row: row.try_get("row_name")?,
                    value: row.try_get("value")?,
                });
            }
        }
        Ok(values)
    }

    /// After values were replaced in place (sealed, or re-sealed under a new key): erases
    /// what the database files still hold of the old ones. An UPDATE leaves the old bytes in
    /// the page's free space, in free pages and in the WAL's frames; `secure_delete` zeroes
    /// what this version frees, but not what an older one left. On SQLite the database is
    /// rebuilt (`VACUUM`) and the WAL emptied; on PostgreSQL old row versions stay in the
    /// tables' files until `VACUUM FULL`, which takes locks other nodes would wait on, so the
    /// log says what to run. Failing here loses nothing: the values are sealed already.
    async fn erase_old_values(&self, what: &str) {
        match self.backend {
            Backend::Sqlite => {
                let erased = async {
                    sqlx::query("VACUUM").execute(&self.writer).await?;
                    let (busy, _, _): (i64, i64, i64) =
                        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                            .fetch_one(&self.writer)
                            .await?;
                    Ok::<_, StoreError>(busy == 0)
                };
                match erased.await {
                    Ok(true) => tracing::info!("erased {what} from the database files"),
                    Ok(false) => tracing::warn!(
                        "the WAL could not be emptied while the database was in use: it may \
                         still hold {what} until the service is restarted"
                    ),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "could not rebuild the database to erase {what}: free disk space (as \
                         much as the database takes) and run `sqlite3 mailtrail.db VACUUM` \
                         with the service stopped"
                    ),
                }
            }
            Backend::Postgres => tracing::warn!(
                "old row versions may still hold {what}: run `VACUUM FULL secrets, webhooks, \
                 sending_domains` at a quiet time; the WAL archive and replicas keep them until \
                 they are recycled"
            ),
        }
    }
}

/// One value of a sealed column, and where it is.
struct Stored {
    table: &'static str,
    row_column: &'static str,
    column: &'static str,
    row: String,
    value: String,
}

impl Stored {
    /// What the value is sealed as.
    fn context(&self) -> String {
        context(self.table, self.column, &self.row)
    }

    /// Writes `sealed` in this value's place.
    async fn replace(&self, tx: &mut Transaction<'static, Any>, sealed: String) -> Result<()> {
        sqlx::query(&format!(
            "UPDATE {} SET {} = $1 WHERE {} = $2",
            self.table, self.column, self.row_column
        ))
        .bind(sealed)
        .bind(&self.row)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewDomain, NextKey};

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n";
    const NEXT_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQE=\n-----END PRIVATE KEY-----\n";

    /// An account with a webhook, a sending domain with a rotation under way and the token
    /// key; their plaintexts.
    async fn populate(store: &Store) -> (crate::AccountId, Vec<String>) {
        let (account, _) = store.create_account("Acme").await.unwrap();
        let hook = store
            .create_webhook(&account, "https://hooks.example.com/x", None)
            .await
            .unwrap();
        let domain = NewDomain {
            domain: "shop.test",
            selector: "s1",
            algorithm: "ed25519",
            private_key_pem: PEM,
            public_key_b64: "MCowBQ==",
        };
        store.create_domain(&account, &domain).await.unwrap();
        let next = NextKey {
            selector: "s2".into(),
            private_key_pem: NEXT_PEM.into(),
            public_key_b64: "MCowBg==".into(),
        };
        store
            .set_next_key(&account, "shop.test", &next)
            .await
            .unwrap();
        let token = hex::encode(store.shared_secret("token").await.unwrap());
        (
            account,
            vec![hook.secret, PEM.to_owned(), token, NEXT_PEM.to_owned()],
        )
    }

    /// The plaintexts as the store reads them back.
    async fn read_back(store: &Store, account: &str) -> Vec<String> {
        let domain = store.domain(account, "shop.test").await.unwrap();
        vec![
            store.webhooks(account).await.unwrap()[0].secret.clone(),
            domain.private_key_pem,
            hex::encode(store.shared_secret("token").await.unwrap()),
            domain.next_key.unwrap().private_key_pem,
        ]
    }

    /// Every sealed column's stored values.
    async fn stored(store: &Store) -> Vec<String> {
        let mut values = Vec::new();
        for (table, _, column) in SEALED {
            values.extend(
                sqlx::query_scalar::<_, String>(&format!(
                    "SELECT {column} FROM {table} WHERE {column} IS NOT NULL"
                ))
                .fetch_all(&store.reader)
                .await
                .unwrap(),
            );
        }
        values
    }

    /// Neither the database nor its WAL holds any of `values`, anywhere in their bytes.
    fn assert_erased(dir: &std::path::Path, values: &[String]) {
        for file in ["mailtrail.db", "mailtrail.db-wal"] {
            let bytes = std::fs::read(dir.join(file)).unwrap_or_default();
            for value in values {
                assert!(
                    !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                    "{file} still holds {value:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn secrets_stored_in_clear_by_an_older_version_are_sealed_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate();
        let store = Store::open_sqlite(dir.path(), key.clone()).await.unwrap();
        let (account, plain) = populate(&store).await;
        // What an older version wrote: the plaintexts, and no key check.
        sqlx::query("DELETE FROM secrets WHERE name = $1")
            .bind(KEY_CHECK)
            .execute(&store.writer)
            .await
            .unwrap();
        for ((table, _, column), value) in SEALED
            .iter()
            .zip([&plain[2], &plain[0], &plain[1], &plain[3]])
        {
            sqlx::query(&format!("UPDATE {table} SET {column} = $1"))
                .bind(value)
                .execute(&store.writer)
                .await
                .unwrap();
        }
        store.close().await;

        let store = Store::open_sqlite(dir.path(), key.clone()).await.unwrap();
        assert_erased(dir.path(), &plain);
        let wal = std::fs::metadata(dir.path().join("mailtrail.db-wal")).unwrap();
        assert_eq!(wal.len(), 0, "the WAL was emptied");
        let values = stored(&store).await;
        assert_eq!(
            values.len(),
            5,
            "the token, the key check, the hook, the domain's two keys"
        );
        assert!(values.iter().all(|v| key.sealed_this(v)), "{values:?}");
        assert_eq!(read_back(&store, &account).await, plain);
    }

    #[tokio::test]
    async fn a_store_opened_with_another_key_is_refused_naming_both_keys() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate();
        let store = Store::open_sqlite(dir.path(), key.clone()).await.unwrap();
        populate(&store).await;
        store.close().await;
        let other = MasterKey::generate();
        let error = Store::open_sqlite(dir.path(), other.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(key.id())
                && error.contains(other.id())
                && error.contains("secret_key_file"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn rotation_reseals_everything_and_a_node_left_on_the_old_key_seals_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let old = MasterKey::generate();
        let mut store = Store::open_sqlite(dir.path(), old.clone()).await.unwrap();
        let (account, plain) = populate(&store).await;
        let stale = Store::open_sqlite(dir.path(), old.clone()).await.unwrap();

        let new = MasterKey::generate();
        let under_old = stored(&store).await;
        assert_eq!(store.rotate_master_key(new.clone()).await.unwrap(), 5);
        assert_erased(dir.path(), &under_old);
        assert!(stored(&store).await.iter().all(|v| new.sealed_this(v)));
        assert_eq!(read_back(&store, &account).await, plain);

        let refused = stale
            .create_webhook(&account, "https://hooks.example.com/y", None)
            .await
            .unwrap_err();
        assert!(matches!(refused, StoreError::MasterKey(_)), "{refused}");
        assert!(
            stale.webhooks(&account).await.is_err(),
            "opened under the old key"
        );
        assert_eq!(
            stored(&store).await.len(),
            5,
            "nothing written by the stale node"
        );
        stale.close().await;
        store.close().await;

        assert!(Store::open_sqlite(dir.path(), old).await.is_err());
        let reopened = Store::open_sqlite(dir.path(), new).await.unwrap();
        assert_eq!(read_back(&reopened, &account).await, plain);
    }
}
