//! Refused sends and the cause of Permission to Email No, on SQLite and on a throwaway
//! PostgreSQL: a refusal is kept with the request that named it (all or nothing), counted per
//! batch, scoped to its account and blanked by an erasure; every change of a lead's
//! permission says what made it and when.

use std::collections::BTreeMap;

use mailtrail_domain::{EmailAddress, Permission, Reason};
use mailtrail_store::AccountId;
use mailtrail_store::{
    Block, Content, Idempotent, LeadPatch, NewLead, NewRefusal, PermissionCause, RefusalReason,
    RefusedRequest, Store, StoreError, Submission,
};

mod common;

use common::{entry, on_both_backends};

on_both_backends!(
    refusals_are_kept_with_their_request_and_counted_per_batch,
    every_permission_change_keeps_its_cause_and_time,
    an_import_records_the_no_it_sets_and_keeps_an_earlier_cause,
);

fn address(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn lead(email: &str, permission: Permission) -> NewLead {
    NewLead {
        address: address(email),
        first_name: None,
        last_name: None,
        fields: BTreeMap::new(),
        permission,
    }
}

fn submission(to: &str) -> Submission {
    Submission {
        content: Content {
            from: "sales@shop.test".into(),
            subject: "Spring offer".into(),
            text: Some("Hi".into()),
            ..Content::default()
        },
        batch: Some("spring".into()),
        send_at_ms: None,
        entries: vec![entry(to)],
    }
}

fn no_permission(lead_id: &str, to: &str) -> NewRefusal {
    NewRefusal {
        lead_id: Some(lead_id.into()),
        recipient: to.into(),
        reason: RefusalReason::NoPermission,
        message: format!("the lead {to} has Permission to Email set to No"),
    }
}

async fn refusals_are_kept_with_their_request_and_counted_per_batch(store: Store) {
    let (acme, _) = store.create_account("Acme").await.unwrap();
    let (globex, _) = store.create_account("Globex").await.unwrap();
    let bo = store
        .create_lead(&acme, &lead("bo@shop.test", Permission::No))
        .await
        .unwrap();
    let refused = [
        no_permission(&bo.id, "bo@shop.test"),
        NewRefusal {
            lead_id: None,
            recipient: "not an address".into(),
            reason: RefusalReason::BadAddress,
            message: "to 'not an address': no @".into(),
        },
    ];
    let key = Idempotent {
        key: "k1".into(),
        request_hash: "h".into(),
    };
    store
        .enqueue_with_refusals(
            &acme,
            &submission("ana@shop.test"),
            &refused,
            Some(&key),
            |_| "{}".into(),
        )
        .await
        .unwrap();

    let kept = store.lead_refusals(&acme, &bo.id, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].reason, RefusalReason::NoPermission);
    assert_eq!(
        (kept[0].batch.as_deref(), kept[0].subject.as_str()),
        (Some("spring"), "Spring offer")
    );
    assert_eq!(kept[0].recipient, "bo@shop.test");
    let counts = store.refusals_by_batch(&acme).await.unwrap();
    assert_eq!(counts.len(), 1);
    let spring = counts[&Some("spring".to_owned())];
    assert_eq!(spring.refused, 2);
    assert_eq!(spring.last_at_ms, kept[0].at_ms);

    // The same key again: the request is refused as a whole, its refusals with it.
    let again = store
        .enqueue_with_refusals(
            &acme,
            &submission("ana@shop.test"),
            &refused,
            Some(&key),
            |_| "{}".into(),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        store.refusals_by_batch(&acme).await.unwrap()[&Some("spring".into())].refused,
        2
    );

    // A request that queued nothing keeps its refusals alone; without a batch, under None.
    let single = RefusedRequest {
        batch: None,
        subject: "Hi Bo",
    };
    store
        .record_refusals(&acme, single, &[no_permission(&bo.id, "bo@shop.test")])
        .await
        .unwrap();
    let kept = store.lead_refusals(&acme, &bo.id, 10).await.unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].subject, "Hi Bo", "newest first");
    assert_eq!(
        store.refusals_by_batch(&acme).await.unwrap()[&None].refused,
        1
    );

    // Another account sees none of it, even by the lead's id.
    assert!(store.refusals_by_batch(&globex).await.unwrap().is_empty());
    assert!(
        store
            .lead_refusals(&globex, &bo.id, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Erasing the lead keeps the counts but not whom or what they named.
    store.erase_lead(&acme, &bo.id, "test").await.unwrap();
    assert!(
        store
            .lead_refusals(&acme, &bo.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let counts = store.refusals_by_batch(&acme).await.unwrap();
    let refused = |batch: Option<&str>| counts[&batch.map(str::to_owned)].refused;
    assert_eq!((refused(Some("spring")), refused(None)), (2, 1));
}

async fn permission_of(
    store: &Store,
    account: &str,
    id: &str,
) -> (Permission, Option<PermissionCause>, Option<i64>) {
    let lead = store.lead(&AccountId::from(account), id).await.unwrap();
    (
        lead.permission,
        lead.permission_cause,
        lead.permission_changed_at_ms,
    )
}

fn block(reason: Reason) -> Block {
    Block {
        reason,
        status: None,
        email_id: None,
    }
}

async fn every_permission_change_keeps_its_cause_and_time(store: Store) {
    let (acme, _) = store.create_account("Acme").await.unwrap();
    let created = |email: &'static str, permission| {
        let store = store.clone();
        let acme = acme.clone();
        async move {
            store
                .create_lead(&acme, &lead(email, permission))
                .await
                .unwrap()
        }
    };
    let by_hand = created("no@shop.test", Permission::No).await;
    assert_eq!(by_hand.permission_cause, Some(PermissionCause::Manual));
    assert_eq!(
        by_hand.permission_changed_at_ms,
        Some(by_hand.created_at_ms)
    );
    let yes = created("yes@shop.test", Permission::Yes).await;
    assert_eq!(
        (yes.permission_cause, yes.permission_changed_at_ms),
        (None, None)
    );

    // Each block sets No with its own cause.
    for (email, reason, cause) in [
        (
            "bounced@shop.test",
            Reason::UserUnknown,
            PermissionCause::HardBounce,
        ),
        (
            "complained@shop.test",
            Reason::Complaint,
            PermissionCause::Complaint,
        ),
        (
            "left@shop.test",
            Reason::Unsubscribed,
            PermissionCause::Unsubscribe,
        ),
    ] {
        let lead = created(email, Permission::Yes).await;
        store
            .suppress(&acme, &address(email), &block(reason), "test")
            .await
            .unwrap();
        let (permission, got, at) = permission_of(&store, &acme, &lead.id).await;
        assert_eq!((permission, got), (Permission::No, Some(cause)), "{email}");
        assert!(at.is_some_and(|at| at >= lead.created_at_ms), "{email}");
    }

    // A block on a lead already at No keeps the cause that set it.
    store
        .suppress(
            &acme,
            &address("no@shop.test"),
            &block(Reason::HostUnknown),
            "test",
        )
        .await
        .unwrap();
    let before = permission_of(&store, &acme, &by_hand.id).await;
    assert_eq!(before.1, Some(PermissionCause::Manual));
    assert_eq!(before.2, by_hand.permission_changed_at_ms);

    // Back to Yes by hand: recorded; the block stays.
    let patch = |permission| LeadPatch {
        permission: Some(permission),
        ..LeadPatch::default()
    };
    let reopened = store
        .update_lead(&acme, &by_hand.id, &patch(Permission::Yes))
        .await
        .unwrap();
    assert_eq!(
        (reopened.permission, reopened.permission_cause),
        (Permission::Yes, Some(PermissionCause::Manual))
    );
    assert_eq!(
        reopened.permission_changed_at_ms,
        Some(reopened.updated_at_ms)
    );
    assert!(
        store
            .suppression(&acme, &address("no@shop.test"))
            .await
            .unwrap()
            .is_some()
    );

    // Setting the value it already has changes neither cause nor time.
    let bounced = store
        .lead_by_address(&acme, &address("bounced@shop.test"))
        .await
        .unwrap()
        .unwrap();
    let same = store
        .update_lead(&acme, &bounced.id, &patch(Permission::No))
        .await
        .unwrap();
    assert_eq!(
        (same.permission_cause, same.permission_changed_at_ms),
        (
            Some(PermissionCause::HardBounce),
            bounced.permission_changed_at_ms
        )
    );
}

async fn an_import_records_the_no_it_sets_and_keeps_an_earlier_cause(store: Store) {
    let (acme, _) = store.create_account("Acme").await.unwrap();
    let staying = store
        .create_lead(&acme, &lead("stay@shop.test", Permission::Yes))
        .await
        .unwrap();
    let turning = store
        .create_lead(&acme, &lead("turn@shop.test", Permission::Yes))
        .await
        .unwrap();
    let left = store
        .create_lead(&acme, &lead("left@shop.test", Permission::Yes))
        .await
        .unwrap();
    store
        .suppress(
            &acme,
            &address("left@shop.test"),
            &block(Reason::Unsubscribed),
            "test",
        )
        .await
        .unwrap();
    let unsubscribed_at = permission_of(&store, &acme, &left.id).await.2;

    store
        .import_leads(
            &acme,
            &[
                lead("stay@shop.test", Permission::Yes),
                lead("turn@shop.test", Permission::No),
                lead("left@shop.test", Permission::No),
                lead("new-no@shop.test", Permission::No),
                lead("new-yes@shop.test", Permission::Yes),
            ],
            |_| {},
        )
        .await
        .unwrap();

    assert_eq!(
        permission_of(&store, &acme, &staying.id).await,
        (Permission::Yes, None, None)
    );
    let turned = permission_of(&store, &acme, &turning.id).await;
    assert_eq!(
        (turned.0, turned.1),
        (Permission::No, Some(PermissionCause::Import))
    );
    assert!(turned.2.is_some());
    assert_eq!(
        permission_of(&store, &acme, &left.id).await,
        (
            Permission::No,
            Some(PermissionCause::Unsubscribe),
            unsubscribed_at
        ),
        "the unsubscribe is why it is No, not the import"
    );
    let new_no = store
        .lead_by_address(&acme, &address("new-no@shop.test"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new_no.permission_cause, Some(PermissionCause::Import));
    let new_yes = store
        .lead_by_address(&acme, &address("new-yes@shop.test"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new_yes.permission_cause, None);
}
