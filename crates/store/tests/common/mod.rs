//! What the store's integration tests share: a fresh store on SQLite and on a throwaway
//! PostgreSQL, [`on_both_backends`], which runs each named test on both, and a plain
//! recipient to queue.

use std::collections::BTreeMap;

use mailtrail_domain::EmailAddress;
use mailtrail_store::{MasterKey, QueueEntry, Store};

/// A recipient queued as is: no lead, no fields, not dropped.
pub fn entry(to: &str) -> QueueEntry {
    QueueEntry {
        to: EmailAddress::parse(to).unwrap(),
        lead_id: None,
        fields: BTreeMap::new(),
        dropped: None,
        header_to: None,
    }
}

/// A store in a fresh SQLite file, with the folder that holds it (deleted when dropped).
pub async fn sqlite() -> (Store, Option<tempfile::TempDir>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), MasterKey::generate())
        .await
        .unwrap();
    (store, Some(dir))
}

/// A store in a fresh PostgreSQL database.
pub async fn postgres() -> (Store, Option<tempfile::TempDir>) {
    let url = mailtrail_testkit::postgres::fresh_database();
    let store = Store::open_postgres(&url, 20, MasterKey::generate())
        .await
        .unwrap();
    (store, None)
}

/// Runs each `async fn name(store: Store)` of the test file as two tests: on SQLite
/// (`sqlite_backend::name`) and on PostgreSQL (`postgres_backend::name`).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _dir) = crate::common::sqlite().await;
                super::$name(store).await
            })*
        }
        mod postgres_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _dir) = crate::common::postgres().await;
                super::$name(store).await
            })*
        }
    };
}
pub(crate) use on_both_backends;
