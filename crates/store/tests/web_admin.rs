//! What the web UI's admin pages and settings store, on SQLite and on PostgreSQL: a login's
//! timezone, removing a login with its sessions, and listing and revoking an account's API
//! keys — each confined to its own account.

use mailtrail_domain::Role;
use mailtrail_store::{MasterKey, Store, StoreError, now_ms};

async fn on_sqlite(check: impl AsyncFnOnce(Store)) {
    let dir = tempfile::tempdir().unwrap();
    check(
        Store::open_sqlite(dir.path(), MasterKey::generate())
            .await
            .unwrap(),
    )
    .await;
}

async fn on_postgres(check: impl AsyncFnOnce(Store)) {
    let url = mailtrail_testkit::postgres::fresh_database();
    check(
        Store::open_postgres(&url, 5, MasterKey::generate())
            .await
            .unwrap(),
    )
    .await;
}

/// Two accounts, Acme with an admin and a user who is signed in, Globex with a user:
/// (Acme, Globex, the user's id, their session's token hash).
async fn two_accounts(store: &Store) -> (String, String, String, String) {
    let (acme, _) = store.create_account("Acme").await.unwrap();
    let (globex, _) = store.create_account("Globex").await.unwrap();
    store
        .create_user("ana@acme.test", Some(&acme), Role::Admin, "$argon2id$x")
        .await
        .unwrap();
    let user = store
        .create_user("bo@acme.test", Some(&acme), Role::User, "$argon2id$x")
        .await
        .unwrap();
    store
        .create_user("hal@globex.test", Some(&globex), Role::User, "$argon2id$x")
        .await
        .unwrap();
    store
        .create_web_session("bo-session", &user, now_ms() + 60_000)
        .await
        .unwrap();
    (acme.into(), globex.into(), user, "bo-session".to_owned())
}

async fn timezones_are_per_login_and_utc_until_chosen(store: Store) {
    let (_, _, user, session) = two_accounts(&store).await;
    let read = async |store: &Store| {
        store
            .web_session(&session, now_ms())
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(read(&store).await.timezone, "UTC");
    store
        .set_user_timezone(&user, "Europe/Paris")
        .await
        .unwrap();
    assert_eq!(read(&store).await.timezone, "Europe/Paris");
    assert!(matches!(
        store.set_user_timezone("no-such-user", "Asia/Tokyo").await,
        Err(StoreError::NotFound)
    ));
}

async fn a_removed_login_is_signed_out_and_only_its_account_can_remove_it(store: Store) {
    let (acme, globex, user, session) = two_accounts(&store).await;
    assert!(matches!(
        store.remove_user(&globex, &user).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .web_session(&session, now_ms())
            .await
            .unwrap()
            .is_some()
    );
    store.remove_user(&acme, &user).await.unwrap();
    assert!(
        store
            .web_session(&session, now_ms())
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.web_user("bo@acme.test").await.unwrap().is_none());
    let left: Vec<String> = store
        .users(&acme)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(left, ["ana@acme.test"]);
    assert_eq!(store.users(&globex).await.unwrap().len(), 1);
    assert!(matches!(
        store.remove_user(&acme, &user).await,
        Err(StoreError::NotFound)
    ));
}

async fn api_keys_are_listed_without_secrets_and_revoked_within_their_account(store: Store) {
    let (acme, globex, _, _) = two_accounts(&store).await;
    let made = store.create_api_key(Some(&acme), Role::User).await.unwrap();
    let keys = store.api_keys(&acme).await.unwrap();
    assert_eq!(keys.len(), 2, "the account's first key and the new one");
    assert_eq!(keys[1].id, made.id);
    assert_eq!(keys[1].role, Role::User);
    assert!(matches!(
        store.revoke_api_key(&globex, &made.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.resolve_api_key(&made.key).await.unwrap().is_some());
    store.revoke_api_key(&acme, &made.id).await.unwrap();
    assert!(store.resolve_api_key(&made.key).await.unwrap().is_none());
    assert_eq!(store.api_keys(&acme).await.unwrap().len(), 1);
    assert_eq!(store.api_keys(&globex).await.unwrap().len(), 1);
}

macro_rules! on_each_backend {
    ($($name:ident),*) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() { super::on_sqlite(super::$name).await })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() { super::on_postgres(super::$name).await })*
        }
    };
}

on_each_backend!(
    timezones_are_per_login_and_utc_until_chosen,
    a_removed_login_is_signed_out_and_only_its_account_can_remove_it,
    api_keys_are_listed_without_secrets_and_revoked_within_their_account
);
