//! The storage suite: every test runs once against SQLite and once against a throwaway
//! PostgreSQL, through the same public API.

use std::collections::BTreeMap;
use std::sync::Arc;

use mailtrail_domain::stage::derive;
use mailtrail_domain::{EmailAddress, Event, EventKind, Permission, Reason, Role, Stage};
use mailtrail_store::{LeadPatch, NewEmail, NewLead, Store, StoreError};
use sqlx::Executor;

/// A store on a fresh database, and a raw connection URL to it for tests that tamper.
struct Fixture {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path()).await.unwrap();
    let url = format!("sqlite://{}", dir.path().join("mailtrail.db").display());
    Fixture {
        store,
        url,
        _dir: Some(dir),
    }
}

async fn postgres() -> Fixture {
    let url = mailtrail_testkit::postgres::fresh_database();
    let store = Store::open_postgres(&url, 20).await.unwrap();
    Fixture {
        store,
        url,
        _dir: None,
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::sqlite().await).await })*
        }
        mod postgres_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::postgres().await).await })*
        }
    };
}

on_both_backends!(
    api_keys_resolve_to_their_account_and_role,
    leads_are_unique_per_account_and_invisible_to_others,
    patching_a_lead_merges_fields_and_sets_permission,
    import_updates_existing_leads_but_never_turns_no_into_yes,
    events_derive_the_stored_stage,
    concurrent_writers_leave_the_stored_stage_equal_to_the_derivation,
    check_finds_a_stage_that_disagrees_with_the_events,
);

fn address(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn new_lead(email: &str, permission: Permission) -> NewLead {
    NewLead {
        address: address(email),
        first_name: Some("Ana".into()),
        last_name: None,
        fields: BTreeMap::new(),
        permission,
    }
}

fn new_email(to: &str) -> NewEmail {
    NewEmail {
        lead_id: None,
        to: address(to),
        from: "sales@mailtrail.test".into(),
        subject: "Hello".into(),
        text: Some("Hi".into()),
        html: None,
        batch: Some("spring".into()),
    }
}

async fn api_keys_resolve_to_their_account_and_role(f: Fixture) {
    let (account, admin_key) = f.store.create_account("Acme").await.unwrap();
    let caller = f
        .store
        .resolve_api_key(&admin_key.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(caller.account_id.as_deref(), Some(account.as_str()));
    assert_eq!(caller.role, Role::Admin);

    let user_key = f
        .store
        .create_api_key(Some(&account), Role::User)
        .await
        .unwrap();
    assert_ne!(user_key.key, admin_key.key);
    let caller = f
        .store
        .resolve_api_key(&user_key.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(caller.role, Role::User);

    let operator = f.store.create_api_key(None, Role::Operator).await.unwrap();
    let caller = f
        .store
        .resolve_api_key(&operator.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((caller.account_id, caller.role), (None, Role::Operator));

    assert!(
        f.store
            .resolve_api_key("mt_not-a-key")
            .await
            .unwrap()
            .is_none()
    );
    assert!(f.store.resolve_api_key("").await.unwrap().is_none());
    assert!(f.store.create_api_key(None, Role::User).await.is_err());
}

async fn leads_are_unique_per_account_and_invisible_to_others(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (globex, _) = f.store.create_account("Globex").await.unwrap();
    let lead = f
        .store
        .create_lead(&acme, &new_lead("Ana@Example.com", Permission::Yes))
        .await
        .unwrap();
    assert_eq!(lead.email, "Ana@example.com");
    assert_eq!(f.store.lead(&acme, &lead.id).await.unwrap(), lead);

    let duplicate = f
        .store
        .create_lead(&acme, &new_lead("ana@EXAMPLE.com", Permission::Yes))
        .await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(m)) if m.contains("already exists")));

    // Another account may have the same address, and cannot see the first account's lead.
    f.store
        .create_lead(&globex, &new_lead("ana@example.com", Permission::Yes))
        .await
        .unwrap();
    assert!(matches!(
        f.store.lead(&globex, &lead.id).await,
        Err(StoreError::NotFound)
    ));
    let found = f
        .store
        .lead_by_address(&acme, &address("ANA@example.com"))
        .await
        .unwrap();
    assert_eq!(found.map(|l| l.id), Some(lead.id));
}

async fn patching_a_lead_merges_fields_and_sets_permission(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (globex, _) = f.store.create_account("Globex").await.unwrap();
    let mut lead = new_lead("bo@example.com", Permission::Yes);
    lead.fields.insert("company".into(), "Initech".into());
    let lead = f.store.create_lead(&acme, &lead).await.unwrap();

    let patch = LeadPatch {
        last_name: Some("Berg".into()),
        fields: Some(BTreeMap::from([("city".into(), "Oslo".into())])),
        permission: Some(Permission::No),
        ..LeadPatch::default()
    };
    let updated = f.store.update_lead(&acme, &lead.id, &patch).await.unwrap();
    assert_eq!(updated.first_name.as_deref(), Some("Ana"));
    assert_eq!(updated.last_name.as_deref(), Some("Berg"));
    assert_eq!(
        updated.fields.get("company").map(String::as_str),
        Some("Initech")
    );
    assert_eq!(updated.fields.get("city").map(String::as_str), Some("Oslo"));
    assert_eq!(updated.permission, Permission::No);
    assert_eq!(f.store.lead(&acme, &lead.id).await.unwrap(), updated);

    let foreign = f.store.update_lead(&globex, &lead.id, &patch).await;
    assert!(matches!(foreign, Err(StoreError::NotFound)));
}

async fn import_updates_existing_leads_but_never_turns_no_into_yes(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let blocked = f
        .store
        .create_lead(&acme, &new_lead("no@example.com", Permission::No))
        .await
        .unwrap();
    let mut rows: Vec<NewLead> = (0..1200)
        .map(|i| new_lead(&format!("lead{i}@example.com"), Permission::Yes))
        .collect();
    let mut renamed = new_lead("NO@example.com", Permission::Yes);
    renamed.first_name = Some("Nora".into());
    rows.push(renamed);
    rows.push(new_lead("lead0@example.com", Permission::No));

    let mut last_progress = 0;
    let summary = f
        .store
        .import_leads(&acme, &rows, |n| last_progress = n)
        .await
        .unwrap();
    assert_eq!((summary.created, summary.updated), (1200, 1));
    assert_eq!(last_progress, 1201);
    assert_eq!(f.store.count_leads(&acme).await.unwrap(), 1201);

    let still_blocked = f.store.lead(&acme, &blocked.id).await.unwrap();
    assert_eq!(still_blocked.permission, Permission::No);
    assert_eq!(still_blocked.first_name.as_deref(), Some("Nora"));
    let later_row_wins = f
        .store
        .lead_by_address(&acme, &address("lead0@example.com"))
        .await
        .unwrap();
    assert_eq!(later_row_wins.unwrap().permission, Permission::No);
}

async fn events_derive_the_stored_stage(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (globex, _) = f.store.create_account("Globex").await.unwrap();
    let email = f
        .store
        .create_email(&acme, &new_email("ana@example.com"))
        .await
        .unwrap();
    assert_eq!(email.stage, Stage::Sent);

    let delivered = Event::new(EventKind::Delivered, 10).with_status("250 2.0.0 Ok");
    f.store
        .append_event(&acme, &email.id, &delivered)
        .await
        .unwrap();
    let bounce = Event::new(EventKind::Failed, 20)
        .with_status("550 5.1.1 User unknown")
        .with_reason(Reason::UserUnknown);
    let derived = f
        .store
        .append_event(&acme, &email.id, &bounce)
        .await
        .unwrap();
    assert_eq!(derived.stage, Stage::Failed);

    let stored = f.store.email(&acme, &email.id).await.unwrap();
    assert_eq!(stored.stage, Stage::Failed);
    assert_eq!(stored.status.as_deref(), Some("550 5.1.1 User unknown"));
    assert_eq!(stored.reason, Some(Reason::UserUnknown));
    let events = f.store.events(&acme, &email.id).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::Queued, EventKind::Delivered, EventKind::Failed]
    );
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);

    // Another account can neither read nor write this email's events.
    assert!(matches!(
        f.store.email(&globex, &email.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(f.store.events(&globex, &email.id).await.unwrap().is_empty());
    let foreign = f.store.append_event(&globex, &email.id, &delivered).await;
    assert!(matches!(foreign, Err(StoreError::NotFound)));
    assert_eq!(f.store.events(&acme, &email.id).await.unwrap().len(), 3);
}

async fn concurrent_writers_leave_the_stored_stage_equal_to_the_derivation(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let store = Arc::new(f.store);
    for round in 0..3 {
        let email = store
            .create_email(&acme, &new_email("ana@example.com"))
            .await
            .unwrap();
        let kinds = [
            EventKind::Deferred,
            EventKind::Delivered,
            EventKind::Opened,
            EventKind::Failed,
            EventKind::Clicked,
            EventKind::AutoReplied,
        ];
        let tasks: Vec<_> = (0..48)
            .map(|i| {
                let (store, acme, id) = (store.clone(), acme.clone(), email.id.clone());
                let mut event = Event::new(kinds[(i + round) % kinds.len()], 1000 - i as i64);
                if i % 4 == 0 {
                    event = event.by_machine("scanner");
                }
                tokio::spawn(async move { store.append_event(&acme, &id, &event).await.unwrap() })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let events: Vec<Event> = store
            .events(&acme, &email.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(events.len(), 49);
        let stored = store.email(&acme, &email.id).await.unwrap();
        let derived = derive(&events);
        assert_eq!(stored.stage, derived.stage, "round {round}");
        assert_eq!(stored.status, derived.status, "round {round}");
    }
    assert!(store.check_stages(|_| {}).await.unwrap().is_empty());
}

async fn check_finds_a_stage_that_disagrees_with_the_events(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..2500 {
        ids.push(
            f.store
                .create_email(&acme, &new_email(&format!("l{i}@example.com")))
                .await
                .unwrap()
                .id,
        );
    }
    let mut seen = 0;
    assert!(f.store.check_stages(|n| seen = n).await.unwrap().is_empty());
    assert_eq!(seen, 2500);

    let tampered = &ids[1234];
    let mut raw = <sqlx::AnyConnection as sqlx::Connection>::connect(&f.url)
        .await
        .unwrap();
    raw.execute(&*format!(
        "UPDATE emails SET stage = 'clicked' WHERE id = '{tampered}'"
    ))
    .await
    .unwrap();
    let mismatches = f.store.check_stages(|_| {}).await.unwrap();
    assert_eq!(mismatches.len(), 1);
    assert_eq!(mismatches[0].email_id, *tampered);
    assert_eq!(mismatches[0].stored, "clicked");
    assert_eq!(mismatches[0].derived, Stage::Sent);
}
