//! Sending protection over a real store: an account whose recent emails hard-bounce too often
//! is paused (its queue waits), others are not.

use std::time::Duration;

use mailtrail_domain::{Event, EventKind, Reason};
use mailtrail_outbound::protection::{ProtectionConfig, check};
use mailtrail_outbound::submit::{self, Recipient, Request};
use mailtrail_store::EmailId;
use mailtrail_store::{Effects, QueueChange, Store};

async fn send(store: &Store, account: &str, n: usize) -> Vec<String> {
    let request = Request {
        from: "s@shop.test".into(),
        subject: "Hi".into(),
        text: Some("x".into()),
        recipients: (0..n)
            .map(|i| Recipient {
                to: Some(format!("r{i}@x.test")),
                ..Recipient::default()
            })
            .collect(),
        ..Request::default()
    };
    submit::submit(store, account, request, None, |_| String::new())
        .await
        .unwrap()
        .queued
        .into_iter()
        .map(|q| q.id)
        .collect()
}

#[tokio::test]
async fn an_account_that_bounces_too_much_is_paused_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), mailtrail_store::MasterKey::generate())
        .await
        .unwrap();
    let (bad, _) = store.create_account("Bad list").await.unwrap();
    let (good, _) = store.create_account("Good list").await.unwrap();
    let bad_ids = send(&store, &bad, 20).await;
    let good_ids = send(&store, &good, 20).await;
    let bounce = Event::new(EventKind::Failed, 1).with_reason(Reason::UserUnknown);
    let leave = Effects {
        queue: QueueChange::Leave,
        suppress: true,
        ..Effects::default()
    };
    for id in &bad_ids[..5] {
        store
            .record(&bad, &EmailId::from(id), &bounce, leave)
            .await
            .unwrap();
    }
    store
        .record(&good, &EmailId::from(&good_ids[0]), &bounce, leave)
        .await
        .unwrap();

    let config = ProtectionConfig {
        min_sent: 10,
        window: Duration::from_secs(3600),
        ..ProtectionConfig::default()
    };
    assert_eq!(
        check(&store, &config).await.unwrap(),
        std::slice::from_ref(&bad)
    );
    let pause = store.sending_pause(&bad).await.unwrap().unwrap();
    assert!(
        pause.reason.starts_with("hard-bounce rate 25.0%"),
        "{}",
        pause.reason
    );
    assert_eq!(
        store.sending_pause(&good).await.unwrap(),
        None,
        "5% is fine"
    );
    assert!(
        check(&store, &config).await.unwrap().is_empty(),
        "paused once"
    );

    let claimed = store.claim_due(100, 60_000).await.unwrap();
    assert!(claimed.iter().all(|c| c.account_id == good));
    assert_eq!(claimed.len(), 19);
}
