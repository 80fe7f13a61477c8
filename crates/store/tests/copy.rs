//! Moving an installation: an online backup of the embedded database opens as a working
//! store, and a copy into PostgreSQL carries every row (bytes, counts and stages included).

use mailtrail_domain::{Event, EventKind, Permission, Reason};
use mailtrail_store::{AccountId, EmailId};
use mailtrail_store::{
    Content, EmailFilter, MasterKey, NewDomain, NewLead, QueueEntry, Store, StoreError, Submission,
};

/// An account with a lead, an email with events (one a hard bounce), a raw inbound message,
/// a webhook and a sending domain (their secrets sealed); returns (account, email id).
async fn populate(store: &Store) -> (String, String) {
    let (account, _) = store.create_account("Acme").await.unwrap();
    let lead = store
        .create_lead(
            &account,
            &NewLead {
                address: "ana@example.com".parse().unwrap(),
                first_name: Some("Ana".into()),
                last_name: None,
                fields: [("plan".to_owned(), "gold".to_owned())].into(),
                permission: Permission::Yes,
            },
        )
        .await
        .unwrap();
    let submission = Submission {
        content: Content {
            from: "s@shop.test".into(),
            subject: "Hi {{first_name}}".into(),
            text: Some("Hello".into()),
            html: None,
            ..Default::default()
        },
        batch: Some("spring".into()),
        send_at_ms: None,
        entries: vec![QueueEntry {
            to: "ana@example.com".parse().unwrap(),
            lead_id: Some(lead.id.clone()),
            fields: [("first_name".to_owned(), "Ana".to_owned())].into(),
            dropped: None,
            header_to: None,
        }],
    };
    let email = store
        .enqueue(&account, &submission, None, |_| String::new())
        .await
        .unwrap()
        .remove(0);
    store
        .append_event(
            &account,
            &EmailId::from(&email),
            &Event::new(EventKind::Delivered, 10),
        )
        .await
        .unwrap();
    let bounce = Event::new(EventKind::Failed, 20).with_reason(Reason::UserUnknown);
    let effects = mailtrail_store::Effects {
        suppress: true,
        ..Default::default()
    };
    store
        .record(&account, &EmailId::from(&email), &bounce, effects)
        .await
        .unwrap();
    store
        .save_inbound("", &["bounces+x@b.test".into()], b"raw \x00\xff bytes")
        .await
        .unwrap();
    store
        .create_webhook(&account, "http://127.0.0.1:9/h", None)
        .await
        .unwrap();
    let domain = NewDomain {
        domain: "shop.test",
        selector: "s1",
        algorithm: "ed25519",
        private_key_pem: "-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n",
        public_key_b64: "MCowBQ==",
    };
    store.create_domain(&account, &domain).await.unwrap();
    (account.into(), email)
}

/// What a person would compare after a move.
async fn summary(store: &Store, account: &str, email: &str) -> String {
    let record = store
        .email(&AccountId::from(account), &EmailId::from(email))
        .await
        .unwrap();
    let events = store
        .events(&AccountId::from(account), &EmailId::from(email))
        .await
        .unwrap();
    let batches = store.batch_report(account, None).await.unwrap();
    let rows = store
        .email_report(account, &EmailFilter::default(), None, 10)
        .await
        .unwrap();
    let blocked = store
        .suppression(account, &"ana@example.com".parse().unwrap())
        .await
        .unwrap();
    format!(
        "{:?} {} {:?} {:?} {:?} {:?} {}",
        record.stage,
        events.len(),
        batches,
        rows,
        blocked.map(|b| b.block.reason),
        store
            .webhooks(account)
            .await
            .unwrap()
            .into_iter()
            .map(|hook| hook.secret)
            .chain(
                store
                    .domains(account)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|domain| domain.private_key_pem)
            )
            .collect::<Vec<_>>(),
        store.webhook_backlog().await.unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_while_running_opens_as_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    let store = Store::open_sqlite(&dir.path().join("live"), key.clone())
        .await
        .unwrap();
    let (account, email) = populate(&store).await;
    let restored_dir = dir.path().join("restored");
    std::fs::create_dir(&restored_dir).unwrap();
    let file = restored_dir.join("mailtrail.db");
    store.backup_sqlite(&file).await.unwrap();
    assert!(
        matches!(
            store.backup_sqlite(&file).await,
            Err(StoreError::Conflict(_))
        ),
        "an existing file is never overwritten"
    );

    // Its secrets stay sealed: it opens with the installation's key, and only with it.
    let stranger = Store::open_sqlite(&restored_dir, MasterKey::generate()).await;
    assert!(
        matches!(stranger, Err(StoreError::MasterKey(_))),
        "{stranger:?}"
    );
    let restored = Store::open_sqlite(&restored_dir, key).await.unwrap();
    assert_eq!(
        summary(&restored, &account, &email).await,
        summary(&store, &account, &email).await
    );
    assert!(restored.check_stages(|_| {}).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn migrating_to_postgres_copies_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    let store = Store::open_sqlite(dir.path(), key.clone()).await.unwrap();
    let (account, email) = populate(&store).await;
    let url = mailtrail_testkit::postgres::fresh_database();
    let stranger = Store::open_postgres(&url, 5, MasterKey::generate())
        .await
        .unwrap();
    assert!(
        matches!(
            store.copy_into(&stranger, |_, _| {}).await,
            Err(StoreError::MasterKey(_))
        ),
        "the copy needs the target opened with the same key"
    );
    stranger.close().await;
    let url = mailtrail_testkit::postgres::fresh_database();
    let target = Store::open_postgres(&url, 5, key).await.unwrap();

    let copied = store.copy_into(&target, |_, _| {}).await.unwrap();
    assert!(copied >= 10, "{copied} rows");
    assert_eq!(
        summary(&target, &account, &email).await,
        summary(&store, &account, &email).await
    );
    assert!(target.check_stages(|_| {}).await.unwrap().is_empty());
    let raw = target.claim_inbound(10, 60_000).await.unwrap();
    assert_eq!(raw[0].raw, b"raw \x00\xff bytes", "bytes survive the move");

    assert!(
        matches!(
            store.copy_into(&target, |_, _| {}).await,
            Err(StoreError::Conflict(_))
        ),
        "a second copy into a non-empty database is refused"
    );
}
