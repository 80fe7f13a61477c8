//! The storage suite: every test runs once against SQLite and once against a throwaway
//! PostgreSQL, through the same public API.

use std::collections::BTreeMap;
use std::sync::Arc;

use mailtrail_domain::stage::derive;
use mailtrail_domain::{EmailAddress, Event, EventKind, Permission, Reason, Role, Stage};
use mailtrail_store::{AccountId, EmailId};
use mailtrail_store::{
    Block, Cancel, Content, Cursor, Effects, EmailFilter, Idempotent, LeadPatch, NewLead,
    QueueChange, QueueEntry, Store, StoreError, Submission,
};
use sqlx::Executor;

/// A store on a fresh database, and a raw connection URL to it for tests that tamper.
struct Fixture {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), mailtrail_store::MasterKey::generate())
        .await
        .unwrap();
    let url = format!("sqlite://{}", dir.path().join("mailtrail.db").display());
    Fixture {
        store,
        url,
        _dir: Some(dir),
    }
}

async fn postgres() -> Fixture {
    let url = mailtrail_testkit::postgres::fresh_database();
    let store = Store::open_postgres(&url, 20, mailtrail_store::MasterKey::generate())
        .await
        .unwrap();
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
    claims_are_leased_and_outcomes_move_emails_through_the_queue,
    concurrent_claimers_never_share_an_email,
    destination_slots_turns_and_pauses_hold_for_every_holder,
    a_hard_bounce_suppresses_and_only_an_audited_removal_lifts_it,
    drops_and_idempotency_are_recorded_with_the_submission,
    submissions_sent_together_are_each_kept_or_refused_alone,
    batch_report_counts_emails_that_ever_reached_each_stage,
    email_report_filters_and_pages_newest_first,
    lead_activity_is_scoped_to_the_account,
    lead_search_matches_address_or_name_and_pages,
    cancelling_drops_queued_emails_but_never_one_in_flight,
    erasing_a_lead_removes_its_data_but_keeps_its_block,
    a_paused_account_keeps_its_queue_until_resumed,
    retention_deletes_old_finished_emails_and_raw_mail_but_keeps_counts,
    web_users_are_found_by_their_normalised_email,
    web_sessions_expire_are_touched_and_end,
    sign_in_failures_lock_keys_and_forms_are_spent_once,
    first_sign_in_failures_sent_together_are_each_counted,
    a_right_password_takes_its_counted_attempt_back,
    operators_choose_among_every_account,
    sending_domains_are_per_account_and_give_their_key_only_once_verified,
    an_accounts_users_are_listed_without_other_accounts_or_operators,
    a_content_keeps_every_part_of_the_message_model_and_attachments_load_once,
    smtp_credentials_log_in_as_their_account_until_revoked,
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

fn submission(to: &[&str]) -> Submission {
    Submission {
        content: Content {
            from: "sales@mailtrail.test".into(),
            subject: "Hello".into(),
            text: Some("Hi".into()),
            html: None,
            ..Default::default()
        },
        batch: Some("spring".into()),
        send_at_ms: None,
        entries: to
            .iter()
            .map(|to| QueueEntry {
                to: address(to),
                lead_id: None,
                fields: BTreeMap::new(),
                dropped: None,
                header_to: None,
            })
            .collect(),
    }
}

/// Queues a submission of one email to each address; returns their ids.
async fn queue_all(store: &Store, account: &str, to: &[&str]) -> Vec<String> {
    store
        .enqueue(account, &submission(to), None, |_| String::new())
        .await
        .unwrap()
}

/// Queues one email and returns it as stored.
async fn queue_one(store: &Store, account: &str, to: &str) -> mailtrail_store::EmailRecord {
    let ids = queue_all(store, account, &[to]).await;
    store
        .email(&AccountId::from(account), &EmailId::from(&ids[0]))
        .await
        .unwrap()
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
    let email = queue_one(&f.store, &acme, "ana@example.com").await;
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
        let email = queue_one(&store, &acme, "ana@example.com").await;
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
    let recipients: Vec<String> = (0..2500).map(|i| format!("l{i}@example.com")).collect();
    let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let ids = f
        .store
        .enqueue(&acme, &submission(&recipients), None, |_| String::new())
        .await
        .unwrap();
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

async fn claims_are_leased_and_outcomes_move_emails_through_the_queue(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let ids = queue_all(
        &f.store,
        &acme,
        &["a@one.example", "b@two.example", "c@one.example"],
    )
    .await;
    assert_eq!(f.store.queue_depth().await.unwrap(), 3);

    let claimed = f.store.claim_due(10, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let domains: Vec<&str> = claimed.iter().map(|c| c.to_domain.as_str()).collect();
    assert_eq!(
        domains,
        ["one.example", "one.example", "two.example"],
        "grouped by destination"
    );
    assert_eq!(claimed[0].content.subject, "Hello");
    assert!(
        f.store.claim_due(10, 60_000).await.unwrap().is_empty(),
        "leased emails are not claimed twice"
    );
    // Given back untried (their destination is busy): every one of them is free again.
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    f.store.postpone(&all, 0).await.unwrap();
    assert_eq!(f.store.claim_due(10, 60_000).await.unwrap().len(), 3);

    let retry = Event::new(EventKind::Deferred, 1)
        .with_status("451 4.3.0 Try later")
        .with_attempt(1);
    let effects = Effects {
        queue: QueueChange::RetryAt {
            at_ms: 0,
            soft_5xx: false,
        },
        attempted: true,
        suppress: false,
    };
    f.store
        .record(&acme, &EmailId::from(&ids[0]), &retry, effects)
        .await
        .unwrap();
    let delivered = Event::new(EventKind::Delivered, 2).with_status("250 ok");
    let leave = Effects {
        queue: QueueChange::Leave,
        attempted: true,
        suppress: false,
    };
    f.store
        .record(&acme, &EmailId::from(&ids[1]), &delivered, leave)
        .await
        .unwrap();

    let again = f.store.claim_due(10, 60_000).await.unwrap();
    assert_eq!(
        again.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [ids[0].as_str()],
        "only the retried one is due"
    );
    assert_eq!(again[0].attempts, 1);
    let stored = f.store.email(&acme, &EmailId::from(&ids[1])).await.unwrap();
    assert_eq!(
        (stored.stage, stored.next_attempt_at_ms, stored.attempts),
        (Stage::Delivered, None, 1)
    );
    assert_eq!(f.store.queue_depth().await.unwrap(), 2);

    // A crashed worker's lease runs out and its email is claimed again.
    f.store.postpone(&[ids[2].as_str()], 0).await.unwrap();
    let expired_lease = f.store.claim_due(10, -1).await.unwrap();
    assert_eq!(expired_lease.len(), 1);
    let reclaimed = f.store.claim_due(10, 60_000).await.unwrap();
    assert_eq!(reclaimed.len(), 1, "an expired lease is claimable");
}

async fn destination_slots_turns_and_pauses_hold_for_every_holder(f: Fixture) {
    use mailtrail_store::SlotClaim;
    let taken = |claim: SlotClaim| match claim {
        SlotClaim::Taken(slot) => slot,
        other => panic!("expected a slot, got {other:?}"),
    };
    // Two slots: two holders (two nodes' sessions) get one each, a third waits.
    let a = taken(
        f.store
            .claim_destination_slot("mx.test", 2, "node-a", 60_000)
            .await
            .unwrap(),
    );
    let b = taken(
        f.store
            .claim_destination_slot("mx.test", 2, "node-b", 60_000)
            .await
            .unwrap(),
    );
    assert_ne!(a.index, b.index);
    assert_eq!(
        f.store
            .claim_destination_slot("mx.test", 2, "node-c", 60_000)
            .await
            .unwrap(),
        SlotClaim::Busy
    );
    // Another destination has its own slots.
    taken(
        f.store
            .claim_destination_slot("other.test", 2, "node-c", 60_000)
            .await
            .unwrap(),
    );
    // A released slot is free again; a released slot cannot be renewed by its old holder.
    f.store.release_destination_slot(&a).await.unwrap();
    assert!(!f.store.renew_destination_slot(&a, 60_000).await.unwrap());
    let c = taken(
        f.store
            .claim_destination_slot("mx.test", 2, "node-c", 60_000)
            .await
            .unwrap(),
    );
    assert_eq!(c.index, a.index);
    // A holder that stops renewing (a crashed node) loses its slot when the lease runs out.
    assert!(f.store.renew_destination_slot(&b, -1).await.unwrap());
    let d = taken(
        f.store
            .claim_destination_slot("mx.test", 2, "node-d", 60_000)
            .await
            .unwrap(),
    );
    assert_eq!(d.index, b.index);
    assert!(
        !f.store.renew_destination_slot(&b, 60_000).await.unwrap(),
        "b's slot is d's now"
    );
    f.store.release_destination_slot(&b).await.unwrap();
    assert_eq!(
        f.store
            .claim_destination_slot("mx.test", 2, "node-e", 60_000)
            .await
            .unwrap(),
        SlotClaim::Busy,
        "the old holder's release does not free the new holder's slot"
    );
    // Starting on the embedded database (the only worker) frees the slots a crash left; on
    // PostgreSQL they may be other nodes' and are left to their leases.
    f.store.release_all_leases().await.unwrap();
    let after_start = f
        .store
        .claim_destination_slot("mx.test", 2, "node-f", 60_000)
        .await
        .unwrap();
    if f.url.starts_with("sqlite") {
        taken(after_start);
    } else {
        assert_eq!(after_start, SlotClaim::Busy);
    }

    // A pause holds for everyone until it ends, and a shorter one does not cut it.
    let until = mailtrail_store::now_ms() + 60_000;
    f.store
        .pause_destination("paused.test", until)
        .await
        .unwrap();
    f.store
        .pause_destination("paused.test", until - 30_000)
        .await
        .unwrap();
    assert_eq!(
        f.store
            .claim_destination_slot("paused.test", 2, "node-a", 60_000)
            .await
            .unwrap(),
        SlotClaim::Paused { until_ms: until }
    );
    f.store
        .pause_destination("ended.test", mailtrail_store::now_ms() - 1)
        .await
        .unwrap();
    taken(
        f.store
            .claim_destination_slot("ended.test", 2, "node-a", 60_000)
            .await
            .unwrap(),
    );

    // Turns under a rate limit, asked for at once by many holders, are one interval apart.
    let interval = 10_000;
    let asks = (0..20).map(|_| {
        let store = f.store.clone();
        tokio::spawn(async move { store.next_destination_turn("paced.test", interval).await })
    });
    let mut turns = Vec::new();
    for ask in asks {
        turns.push(ask.await.unwrap().unwrap());
    }
    turns.sort_unstable();
    let gaps: Vec<i64> = turns.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|gap| *gap >= interval),
        "turns too close: {gaps:?}"
    );
    assert!(
        turns[0] <= mailtrail_store::now_us(),
        "the first turn is now, not later"
    );
}

async fn concurrent_claimers_never_share_an_email(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let recipients: Vec<String> = (0..600).map(|i| format!("r{i}@example.com")).collect();
    let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
    f.store
        .enqueue(&acme, &submission(&recipients), None, |_| String::new())
        .await
        .unwrap();
    let store = Arc::new(f.store);
    let claimers: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store.claim_due(25, 60_000).await.unwrap();
                    if batch.is_empty() {
                        break mine;
                    }
                    mine.extend(batch.into_iter().map(|c| c.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!((total, all.len()), (600, 600));
}

async fn a_hard_bounce_suppresses_and_only_an_audited_removal_lifts_it(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (globex, _) = f.store.create_account("Globex").await.unwrap();
    let lead = f
        .store
        .create_lead(&acme, &new_lead("Ana@example.com", Permission::Yes))
        .await
        .unwrap();
    let email = queue_one(&f.store, &acme, "ana@EXAMPLE.com").await;
    let bounce = Event::new(EventKind::Failed, 5)
        .with_status("550 5.1.1 User unknown")
        .with_reason(Reason::UserUnknown);
    let effects = Effects {
        queue: QueueChange::Leave,
        attempted: true,
        suppress: true,
    };
    f.store
        .record(&acme, &email.id, &bounce, effects)
        .await
        .unwrap();

    let ana = address("ana@example.com");
    let block = f.store.suppression(&acme, &ana).await.unwrap().unwrap();
    assert_eq!(block.block.reason, Reason::UserUnknown);
    assert_eq!(
        block.block.status.as_deref(),
        Some("550 5.1.1 User unknown")
    );
    assert_eq!(
        f.store.lead(&acme, &lead.id).await.unwrap().permission,
        Permission::No
    );
    assert_eq!(
        f.store
            .block_reason(&acme, "ANA@example.com", None)
            .await
            .unwrap(),
        Some(Reason::Suppressed)
    );
    // Another account knows nothing of it.
    assert!(f.store.suppression(&globex, &ana).await.unwrap().is_none());
    assert!(
        f.store
            .suppressions(Some(&globex), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(f.store.suppressions(None, 10).await.unwrap().len(), 1);

    // Permission back to Yes does not lift the block.
    let yes = LeadPatch {
        permission: Some(Permission::Yes),
        ..LeadPatch::default()
    };
    f.store.update_lead(&acme, &lead.id, &yes).await.unwrap();
    assert_eq!(
        f.store
            .block_reason(&acme, "ana@example.com", Some(&lead.id))
            .await
            .unwrap(),
        Some(Reason::Suppressed)
    );

    assert!(matches!(
        f.store
            .remove_suppression(&globex, &ana, "op@example.com", "x")
            .await,
        Err(StoreError::NotFound)
    ));
    f.store
        .remove_suppression(&acme, &ana, "op@example.com", "customer asked again")
        .await
        .unwrap();
    assert_eq!(
        f.store
            .block_reason(&acme, "ana@example.com", Some(&lead.id))
            .await
            .unwrap(),
        None
    );
    let log = f.store.suppression_log(&acme, &ana).await.unwrap();
    let trail: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str(), e.note.as_str()))
        .collect();
    assert_eq!(
        trail,
        [
            ("added", "mailtrail", "userunknown"),
            ("removed", "op@example.com", "customer asked again")
        ]
    );

    // Permission No alone blocks too, with its own reason.
    let no = LeadPatch {
        permission: Some(Permission::No),
        ..LeadPatch::default()
    };
    f.store.update_lead(&acme, &lead.id, &no).await.unwrap();
    assert_eq!(
        f.store
            .block_reason(&acme, "ana@example.com", Some(&lead.id))
            .await
            .unwrap(),
        Some(Reason::NoPermission)
    );
    f.store
        .suppress(
            &acme,
            &ana,
            &Block {
                reason: Reason::Complaint,
                status: None,
                email_id: None,
            },
            "mailtrail",
        )
        .await
        .unwrap();
    assert_eq!(
        f.store
            .suppression(&acme, &ana)
            .await
            .unwrap()
            .unwrap()
            .block
            .reason,
        Reason::Complaint
    );
}

async fn drops_and_idempotency_are_recorded_with_the_submission(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let mut batch = submission(&["ok@example.com", "blocked@example.com"]);
    batch.entries[1].dropped = Some(Reason::Suppressed);
    let key = Idempotent {
        key: "req-1".into(),
        request_hash: "h1".into(),
    };
    let ids = f
        .store
        .enqueue(&acme, &batch, Some(&key), |ids| ids.join(","))
        .await
        .unwrap();

    let dropped = f.store.email(&acme, &EmailId::from(&ids[1])).await.unwrap();
    assert_eq!(dropped.stage, Stage::Failed);
    assert_eq!(
        (dropped.status.as_deref(), dropped.reason),
        (Some("Dropped"), Some(Reason::Suppressed))
    );
    assert_eq!(dropped.next_attempt_at_ms, None);
    let kinds: Vec<EventKind> = f
        .store
        .events(&acme, &EmailId::from(&ids[1]))
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.kind)
        .collect();
    assert_eq!(kinds, [EventKind::Queued, EventKind::Failed]);
    let claimed = f.store.claim_due(10, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 1, "a dropped email is never tried");
    assert!(f.store.check_stages(|_| {}).await.unwrap().is_empty());

    let (hash, response) = f
        .store
        .idempotent_response(&acme, "req-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((hash.as_str(), response), ("h1", ids.join(",")));
    let replay = f
        .store
        .enqueue(&acme, &batch, Some(&key), |_| String::new())
        .await;
    assert!(matches!(replay, Err(StoreError::Conflict(_))));
    assert_eq!(
        f.store.queue_depth().await.unwrap(),
        1,
        "the conflicting request queued nothing"
    );
}

/// Submissions that arrive together share commits; each is still all or nothing on its own:
/// of five requests racing with one idempotency key exactly one queues, and every other
/// submission queues its email with its `queued` event.
async fn submissions_sent_together_are_each_kept_or_refused_alone(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let racing = (0..40).map(|i| {
        let store = f.store.clone();
        let acme = acme.clone();
        tokio::spawn(async move {
            let to = format!("lead{i}@example.com");
            let key = (i % 8 == 0).then(|| Idempotent {
                key: "same-request".into(),
                request_hash: "h".into(),
            });
            let queued = store
                .enqueue(&acme, &submission(&[&to]), key.as_ref(), |ids| {
                    ids.join(",")
                })
                .await;
            (key.is_some(), queued)
        })
    });
    let mut kept = Vec::new();
    let mut conflicts = 0;
    for racer in racing.collect::<Vec<_>>() {
        match racer.await.unwrap() {
            (_, Ok(ids)) => kept.extend(ids),
            (true, Err(StoreError::Conflict(_))) => conflicts += 1,
            (keyed, Err(e)) => panic!("keyed {keyed}: {e}"),
        }
    }
    assert_eq!((kept.len(), conflicts), (36, 4));
    assert_eq!(f.store.queue_depth().await.unwrap(), 36);
    for id in &kept {
        let events = f.store.events(&acme, &EmailId::from(id)).await.unwrap();
        assert_eq!(events.len(), 1, "{id} has its queued event");
    }
    let (_, response) = f
        .store
        .idempotent_response(&acme, "same-request")
        .await
        .unwrap()
        .unwrap();
    assert!(
        kept.contains(&response),
        "the key answers with the email it queued"
    );
}

async fn batch_report_counts_emails_that_ever_reached_each_stage(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (other, _) = f.store.create_account("Other").await.unwrap();
    let mut spring = submission(&[
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
        "blocked@example.com",
    ]);
    spring.entries[4].dropped = Some(Reason::Suppressed);
    let ids = f
        .store
        .enqueue(&acme, &spring, None, |_| String::new())
        .await
        .unwrap();
    let mut summer = submission(&["a@example.com"]);
    summer.batch = Some("summer".into());
    f.store
        .enqueue(&acme, &summer, None, |_| String::new())
        .await
        .unwrap();
    let record = |id: &str, event: Event| {
        let (store, acme, id) = (f.store.clone(), acme.clone(), id.to_owned());
        async move {
            store
                .append_event(&acme, &EmailId::from(&id), &event)
                .await
                .unwrap()
        }
    };
    // a: delivered, opened by a person, clicked, then a late bounce report fails it.
    record(&ids[0], Event::new(EventKind::Delivered, 1)).await;
    record(&ids[0], Event::new(EventKind::Clicked, 3)).await;
    record(&ids[0], Event::new(EventKind::Opened, 2)).await;
    record(&ids[0], Event::new(EventKind::Opened, 4)).await;
    // b: only a proxy's open; c: deferred, then failed; d: still waiting.
    record(
        &ids[1],
        Event::new(EventKind::Opened, 2).by_machine("apple-mpp"),
    )
    .await;
    record(&ids[2], Event::new(EventKind::Deferred, 1)).await;
    let failed = Event::new(EventKind::Failed, 2).with_reason(Reason::UserUnknown);
    record(&ids[2], failed.clone()).await;
    record(&ids[2], failed).await;

    let report = f.store.batch_report(&acme, None).await.unwrap();
    let names: Vec<_> = report.iter().map(|b| b.batch.as_deref()).collect();
    assert_eq!(
        names,
        [Some("summer"), Some("spring")],
        "newest batch first"
    );
    let s = &report[1];
    assert_eq!((s.emails, s.dropped, s.sent()), (5, 1, 4));
    assert_eq!(
        (
            s.delivered,
            s.failed,
            s.deferred,
            s.opened,
            s.clicked,
            s.machine_opened
        ),
        (2, 1, 1, 1, 1, 1),
        "{s:?}"
    );
    assert!(!s.open_tracking && !s.click_tracking);
    let only = f
        .store
        .batch_report(&acme, Some(&["spring".into(), "nope".into()]))
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    assert!(f.store.batch_report(&other, None).await.unwrap().is_empty());
}

async fn email_report_filters_and_pages_newest_first(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (other, _) = f.store.create_account("Other").await.unwrap();
    let mut all = Vec::new();
    for i in 0..7 {
        let mut one = submission(&[&format!("lead{i}@example.com")]);
        one.batch = Some(if i % 2 == 0 { "even" } else { "odd" }.into());
        all.extend(
            f.store
                .enqueue(&acme, &one, None, |_| String::new())
                .await
                .unwrap(),
        );
    }
    f.store
        .append_event(
            &acme,
            &EmailId::from(&all[2]),
            &Event::new(EventKind::Delivered, 1),
        )
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = f
            .store
            .email_report(&acme, &EmailFilter::default(), after.as_ref(), 3)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.cursor());
        seen.extend(page.iter().map(|r| r.id.clone()));
    }
    let mut newest_first = all.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every email once, newest first");

    let even = EmailFilter {
        batch: Some("even".into()),
        ..EmailFilter::default()
    };
    let rows = f.store.email_report(&acme, &even, None, 100).await.unwrap();
    assert_eq!(rows.len(), 4);
    let delivered_even = EmailFilter {
        stage: Some(Stage::Delivered),
        ..even.clone()
    };
    let rows = f
        .store
        .email_report(&acme, &delivered_even, None, 100)
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| &r.id).collect::<Vec<_>>(), [&all[2]]);
    assert_eq!(rows[0].subject, "Hello");
    let future = EmailFilter {
        from_ms: Some(i64::MAX - 1),
        ..EmailFilter::default()
    };
    assert!(
        f.store
            .email_report(&acme, &future, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        f.store
            .email_report(&other, &EmailFilter::default(), None, 100)
            .await
            .unwrap()
            .is_empty(),
        "another account sees none of them"
    );
}

async fn lead_activity_is_scoped_to_the_account(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (other, _) = f.store.create_account("Other").await.unwrap();
    let lead = f
        .store
        .create_lead(&acme, &new_lead("ana@example.com", Permission::Yes))
        .await
        .unwrap();
    let mut one = submission(&["ana@example.com"]);
    one.entries[0].lead_id = Some(lead.id.clone());
    let first = f
        .store
        .enqueue(&acme, &one, None, |_| String::new())
        .await
        .unwrap();
    let second = f
        .store
        .enqueue(&acme, &one, None, |_| String::new())
        .await
        .unwrap();
    let (emails, replies) = f.store.lead_activity(&acme, &lead.id, 50).await.unwrap();
    let ids: Vec<_> = emails.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, [second[0].clone(), first[0].clone()]);
    assert!(replies.is_empty());
    assert!(matches!(
        f.store.lead_activity(&other, &lead.id, 50).await,
        Err(StoreError::NotFound)
    ));
}

async fn lead_search_matches_address_or_name_and_pages(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (other, _) = f.store.create_account("Other").await.unwrap();
    for email in [
        "zed@example.com",
        "Ana.Silva@Example.com",
        "bo_x@shop.test",
        "cy@shop.test",
    ] {
        f.store
            .create_lead(&acme, &new_lead(email, Permission::Yes))
            .await
            .unwrap();
    }
    f.store
        .create_lead(&other, &new_lead("ana@other.test", Permission::Yes))
        .await
        .unwrap();
    let emails = |leads: Vec<mailtrail_store::Lead>| -> Vec<String> {
        leads.into_iter().map(|l| l.email).collect()
    };
    let all = f.store.search_leads(&acme, None, None, 3).await.unwrap();
    assert_eq!(
        emails(all),
        ["Ana.Silva@example.com", "bo_x@shop.test", "cy@shop.test"]
    );
    let rest = f
        .store
        .search_leads(&acme, None, Some("cy@shop.test"), 3)
        .await
        .unwrap();
    assert_eq!(emails(rest), ["zed@example.com"]);
    let silva = f
        .store
        .search_leads(&acme, Some("SILVA"), None, 10)
        .await
        .unwrap();
    assert_eq!(emails(silva), ["Ana.Silva@example.com"]);
    let by_first_name = f
        .store
        .search_leads(&acme, Some("ana"), None, 10)
        .await
        .unwrap();
    assert_eq!(by_first_name.len(), 4, "other accounts' leads never match");
    let by_name = f.store.search_leads(&acme, Some("ana s"), None, 10).await;
    assert!(
        by_name.unwrap().is_empty(),
        "first names here are all Ana, no last name"
    );
    let underscore = f
        .store
        .search_leads(&acme, Some("_"), None, 10)
        .await
        .unwrap();
    assert_eq!(
        emails(underscore),
        ["bo_x@shop.test"],
        "LIKE wildcards are literal"
    );
}

async fn web_users_are_found_by_their_normalised_email(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let id = f
        .store
        .create_user("Ana@Acme.test", Some(&acme), Role::Admin, "$argon2id$fake")
        .await
        .unwrap();
    let user = f.store.web_user(" ana@acme.TEST ").await.unwrap().unwrap();
    assert_eq!(user.id, id);
    assert_eq!(user.email, "ana@acme.test");
    assert_eq!(user.account_id.as_deref(), Some(acme.as_str()));
    assert_eq!(user.role, Role::Admin);
    assert_eq!(user.password_hash, "$argon2id$fake");
    assert!(
        f.store
            .web_user("nobody@acme.test")
            .await
            .unwrap()
            .is_none()
    );
}

async fn web_sessions_expire_are_touched_and_end(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let user = f
        .store
        .create_user("bo@acme.test", Some(&acme), Role::User, "$argon2id$fake")
        .await
        .unwrap();
    let now = mailtrail_store::now_ms();
    f.store
        .create_web_session("hash-1", &user, now + 1000)
        .await
        .unwrap();
    let session = f.store.web_session("hash-1", now).await.unwrap().unwrap();
    assert_eq!(session.user_id, user);
    assert_eq!(session.email, "bo@acme.test");
    assert_eq!(session.role, Role::User);
    assert_eq!(session.user_account_id.as_deref(), Some(acme.as_str()));
    assert_eq!(session.chosen_account_id, None);
    assert!(f.store.web_session("hash-2", now).await.unwrap().is_none());
    assert!(
        f.store
            .web_session("hash-1", now + 1000)
            .await
            .unwrap()
            .is_none(),
        "a session is over at its expiry time"
    );

    f.store
        .touch_web_session("hash-1", now + 5000)
        .await
        .unwrap();
    assert!(
        f.store
            .web_session("hash-1", now + 4000)
            .await
            .unwrap()
            .is_some()
    );
    f.store
        .create_web_session("hash-old", &user, now - 1)
        .await
        .unwrap();
    assert_eq!(f.store.expire_web_sessions(now).await.unwrap(), 1);
    f.store.delete_web_session("hash-1").await.unwrap();
    assert!(f.store.web_session("hash-1", now).await.unwrap().is_none());
    f.store.delete_web_session("hash-1").await.unwrap();
}

async fn operators_choose_among_every_account(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (globex, _) = f.store.create_account("Globex").await.unwrap();
    let briefs = f.store.account_briefs().await.unwrap();
    let names: Vec<_> = briefs
        .iter()
        .map(|a| (a.id.as_str(), a.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [(acme.as_str(), "Acme"), (globex.as_str(), "Globex")]
    );

    let operator = f
        .store
        .create_user("op@mailtrail.test", None, Role::Operator, "$argon2id$fake")
        .await
        .unwrap();
    let now = mailtrail_store::now_ms();
    f.store
        .create_web_session("op-hash", &operator, now + 60_000)
        .await
        .unwrap();
    f.store
        .choose_web_account("op-hash", &globex)
        .await
        .unwrap();
    let session = f.store.web_session("op-hash", now).await.unwrap().unwrap();
    assert_eq!(session.role, Role::Operator);
    assert_eq!(session.user_account_id, None);
    assert_eq!(session.chosen_account_id.as_deref(), Some(globex.as_str()));
}

async fn cancelling_drops_queued_emails_but_never_one_in_flight(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (other, _) = f.store.create_account("Other").await.unwrap();
    let ids = queue_all(
        &f.store,
        &acme,
        &["a@example.com", "b@example.com", "c@example.com"],
    )
    .await;
    let in_flight = f.store.claim_due(1, 60_000).await.unwrap();
    assert_eq!(in_flight.len(), 1);

    let none = f
        .store
        .cancel_queued(&other, Cancel::Batch("spring"))
        .await
        .unwrap();
    assert!(none.is_empty(), "another account cancels nothing");
    let mut cancelled = f
        .store
        .cancel_queued(&acme, Cancel::Batch("spring"))
        .await
        .unwrap();
    cancelled.sort();
    let mut expected: Vec<String> = ids
        .iter()
        .filter(|id| **id != in_flight[0].id)
        .cloned()
        .collect();
    expected.sort();
    assert_eq!(cancelled, expected, "all but the one being attempted");
    let email = f
        .store
        .email(&acme, &EmailId::from(&cancelled[0]))
        .await
        .unwrap();
    assert_eq!(
        (email.stage, email.status.as_deref(), email.reason),
        (Stage::Failed, Some("Dropped"), Some(Reason::Cancelled))
    );
    assert_eq!(email.next_attempt_at_ms, None);
    let again = f
        .store
        .cancel_queued(&acme, Cancel::Email(&cancelled[0]))
        .await
        .unwrap();
    assert!(again.is_empty(), "a cancelled email is not queued any more");
    let report = f.store.batch_report(&acme, None).await.unwrap();
    assert_eq!((report[0].dropped, report[0].sent()), (2, 1));
    assert!(f.store.check_stages(|_| {}).await.unwrap().is_empty());
}

async fn erasing_a_lead_removes_its_data_but_keeps_its_block(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (other, _) = f.store.create_account("Other").await.unwrap();
    let ana = f
        .store
        .create_lead(&acme, &new_lead("Ana@Example.com", Permission::Yes))
        .await
        .unwrap();
    let bo = f
        .store
        .create_lead(&acme, &new_lead("bo@example.com", Permission::Yes))
        .await
        .unwrap();
    let mut to_both = submission(&["Ana@Example.com", "bo@example.com"]);
    to_both.entries[0].lead_id = Some(ana.id.clone());
    to_both.entries[1].lead_id = Some(bo.id.clone());
    let sent = f
        .store
        .enqueue(&acme, &to_both, None, |_| String::new())
        .await
        .unwrap();
    let bounce = Event::new(EventKind::Failed, 5)
        .with_status("550 5.1.1 <Ana@example.com>: User unknown")
        .with_reason(Reason::UserUnknown);
    let effects = Effects {
        queue: QueueChange::Leave,
        suppress: true,
        ..Effects::default()
    };
    f.store
        .record(&acme, &EmailId::from(&sent[0]), &bounce, effects)
        .await
        .unwrap();
    let mut alone = submission(&["ana@example.com"]);
    alone.content.subject = "Ana, your private offer".into();
    alone.entries[0].lead_id = Some(ana.id.clone());
    let queued = f
        .store
        .enqueue(&acme, &alone, None, |_| String::new())
        .await
        .unwrap();

    assert!(matches!(
        f.store.erase_lead(&other, &ana.id, "test").await,
        Err(StoreError::NotFound)
    ));
    let erased = f.store.erase_lead(&acme, &ana.id, "test").await.unwrap();
    assert_eq!((erased.emails, erased.cancelled), (2, 1));

    assert!(matches!(
        f.store.lead(&acme, &ana.id).await,
        Err(StoreError::NotFound)
    ));
    for id in [&sent[0], &queued[0]] {
        let email = f.store.email(&acme, &EmailId::from(id)).await.unwrap();
        assert_eq!(email.to, "[erased]");
        assert_eq!(email.lead_id, None);
        let events = f.store.events(&acme, &EmailId::from(id)).await.unwrap();
        let text = format!("{events:?}{email:?}").to_lowercase();
        assert!(!text.contains("ana@example.com"), "{text}");
    }
    let cancelled = f
        .store
        .email(&acme, &EmailId::from(&queued[0]))
        .await
        .unwrap();
    assert_eq!(cancelled.reason, Some(Reason::Cancelled));
    assert_eq!(
        cancelled.subject, "[erased]",
        "content sent to Ana alone goes"
    );
    assert_eq!(
        f.store
            .email(&acme, &EmailId::from(&sent[0]))
            .await
            .unwrap()
            .subject,
        "Hello",
        "a batch's shared template stays"
    );
    assert_eq!(
        f.store
            .email(&acme, &EmailId::from(&sent[1]))
            .await
            .unwrap()
            .to,
        "bo@example.com"
    );

    // The block holds, without the address being stored.
    let block = f
        .store
        .suppression(&acme, &address("ana@example.com"))
        .await
        .unwrap()
        .expect("still blocked");
    assert!(block.address.starts_with("sha256:"), "{}", block.address);
    let again = f
        .store
        .suppressed_among(&acme, &["ana@example.com".to_owned()])
        .await
        .unwrap();
    assert!(again.contains("ana@example.com"));
    assert_eq!(
        f.store
            .block_reason(&acme, "ANA@example.com", None)
            .await
            .unwrap(),
        Some(Reason::Suppressed)
    );
    let trail = f
        .store
        .suppression_log(&acme, &address("ana@example.com"))
        .await
        .unwrap();
    assert_eq!(trail.last().unwrap().action, "erased");
    assert!(f.store.check_stages(|_| {}).await.unwrap().is_empty());
}

async fn a_paused_account_keeps_its_queue_until_resumed(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (other, _) = f.store.create_account("Other").await.unwrap();
    let to: Vec<String> = (0..10).map(|i| format!("a{i}@example.com")).collect();
    let to: Vec<&str> = to.iter().map(String::as_str).collect();
    let mut batch = submission(&to);
    batch.entries[9].dropped = Some(Reason::Suppressed);
    let ids = f
        .store
        .enqueue(&acme, &batch, None, |_| String::new())
        .await
        .unwrap();
    f.store
        .enqueue(&other, &submission(&["o@example.com"]), None, |_| {
            String::new()
        })
        .await
        .unwrap();
    for id in &ids[..3] {
        let bounce = Event::new(EventKind::Failed, 1).with_reason(Reason::UserUnknown);
        let leave = Effects {
            queue: QueueChange::Leave,
            ..Effects::default()
        };
        f.store
            .record(&acme, &EmailId::from(id), &bounce, leave)
            .await
            .unwrap();
    }
    let complaint = Event::new(EventKind::Complained, 2).with_feedback_type("abuse");
    f.store
        .append_event(&acme, &EmailId::from(&ids[3]), &complaint)
        .await
        .unwrap();
    let rates = f.store.recent_rates(&acme, 0).await.unwrap();
    assert_eq!(
        (rates.sent, rates.hard_bounced, rates.complained),
        (9, 3, 1),
        "the dropped email was never sent"
    );

    f.store
        .pause_sending(&acme, "too many bounces")
        .await
        .unwrap();
    f.store.pause_sending(&acme, "again").await.unwrap();
    let pause = f.store.sending_pause(&acme).await.unwrap().unwrap();
    assert_eq!(pause.reason, "too many bounces", "the first reason stands");
    let claimed = f.store.claim_due(100, 60_000).await.unwrap();
    let accounts: Vec<&str> = claimed.iter().map(|c| c.account_id.as_str()).collect();
    assert_eq!(
        accounts,
        [other.as_str()],
        "only the other account's email is claimed"
    );
    assert_eq!(
        f.store.queue_depth().await.unwrap(),
        7,
        "nothing was dropped: six of Acme's wait, the other account's is claimed"
    );

    f.store.resume_sending(&acme).await.unwrap();
    assert!(matches!(
        f.store.resume_sending(&acme).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(f.store.claim_due(100, 60_000).await.unwrap().len(), 6);
}

async fn retention_deletes_old_finished_emails_and_raw_mail_but_keeps_counts(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let ids = queue_all(
        &f.store,
        &acme,
        &["done@example.com", "waiting@example.com"],
    )
    .await;
    let delivered = Effects {
        queue: QueueChange::Leave,
        ..Effects::default()
    };
    f.store
        .record(
            &acme,
            &EmailId::from(&ids[0]),
            &Event::new(EventKind::Delivered, 1),
            delivered,
        )
        .await
        .unwrap();
    let raw = f
        .store
        .save_inbound("", &["reply+x@b.test".into()], b"a reply")
        .await
        .unwrap();
    f.store
        .finish_inbound(
            &raw,
            &mailtrail_store::Processed {
                state: "matched",
                kind: "reply".into(),
                account_id: Some(acme.clone()),
                email_id: Some(ids[1].clone().into()),
                note: None,
            },
        )
        .await
        .unwrap();
    f.store.queue_forward(&raw).await.unwrap();
    let before = f.store.batch_report(&acme, None).await.unwrap();

    let later = mailtrail_store::now_ms() + 1_000;
    assert_eq!(
        f.store.expire_inbound(later).await.unwrap(),
        0,
        "a reply still to forward stays"
    );
    assert_eq!(
        f.store.expire_emails(later).await.unwrap(),
        1,
        "the queued one stays"
    );
    assert!(matches!(
        f.store.email(&acme, &EmailId::from(&ids[0])).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        f.store
            .events(&acme, &EmailId::from(&ids[0]))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        f.store
            .email(&acme, &EmailId::from(&ids[1]))
            .await
            .unwrap()
            .stage,
        Stage::Sent
    );
    assert_eq!(
        f.store.batch_report(&acme, None).await.unwrap(),
        before,
        "counts stay"
    );
    assert!(f.store.check_stages(|_| {}).await.unwrap().is_empty());

    f.store
        .finish_forward(
            &raw,
            &mailtrail_store::ForwardOutcome::Sent { note: "ok".into() },
        )
        .await
        .unwrap();
    assert_eq!(f.store.expire_inbound(later).await.unwrap(), 1);
}

async fn sending_domains_are_per_account_and_give_their_key_only_once_verified(f: Fixture) {
    use mailtrail_store::{DomainStatus, NewDomain};
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (globex, _) = f.store.create_account("Globex").await.unwrap();
    let new = NewDomain {
        domain: "shop.test",
        selector: "mt1",
        algorithm: "ed25519",
        private_key_pem: "-----BEGIN PRIVATE KEY-----\nAcme\n-----END PRIVATE KEY-----\n",
        public_key_b64: "QUJD",
    };
    let created = f.store.create_domain(&acme, &new).await.unwrap();
    assert!(matches!(
        f.store.create_domain(&acme, &new).await,
        Err(StoreError::Conflict(_))
    ));
    // Another account may claim the same name: each proves it by DNS on its own.
    f.store.create_domain(&globex, &new).await.unwrap();
    f.store
        .create_domain(
            &acme,
            &NewDomain {
                domain: "news.test",
                ..new.clone()
            },
        )
        .await
        .unwrap();
    let names: Vec<String> = f
        .store
        .domains(&acme)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.domain)
        .collect();
    assert_eq!(names, ["news.test", "shop.test"]);
    assert_eq!(f.store.domain(&acme, "shop.test").await.unwrap(), created);

    assert_eq!(
        f.store.domain_status(&acme, "shop.test").await.unwrap(),
        DomainStatus::Unverified
    );
    assert_eq!(
        f.store.domain_status(&acme, "other.test").await.unwrap(),
        DomainStatus::Unregistered
    );
    assert_eq!(
        f.store
            .verified_domain_key(&acme, "shop.test")
            .await
            .unwrap(),
        None,
        "no key is used before the records check out"
    );

    let first = f
        .store
        .record_domain_check(&acme, "shop.test", true, r#"{"verified":true}"#)
        .await
        .unwrap();
    let verified_at = first.verified_at_ms.expect("verified");
    assert_eq!(first.last_check.as_deref(), Some(r#"{"verified":true}"#));
    let again = f
        .store
        .record_domain_check(&acme, "shop.test", true, "{}")
        .await
        .unwrap();
    assert_eq!(
        again.verified_at_ms,
        Some(verified_at),
        "the first time stays"
    );
    let key = f
        .store
        .verified_domain_key(&acme, "shop.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (key.selector.as_str(), key.algorithm.as_str()),
        ("mt1", "ed25519")
    );
    assert!(key.private_key_pem.contains("Acme"));
    assert_eq!(
        f.store.domain_status(&globex, "shop.test").await.unwrap(),
        DomainStatus::Unverified,
        "Acme's check verifies Acme's domain only"
    );
    assert!(matches!(
        f.store
            .record_domain_check(&globex, "other.test", true, "{}")
            .await,
        Err(StoreError::NotFound)
    ));

    // A rotation's next key is stored sealed beside the current one, and signs only once
    // promoted; promoting a key that is no longer the next one changes nothing.
    let next = mailtrail_store::NextKey {
        selector: "mt2".into(),
        private_key_pem: "-----BEGIN PRIVATE KEY-----\nNext\n-----END PRIVATE KEY-----\n".into(),
        public_key_b64: "REVG".into(),
    };
    let rotating = f
        .store
        .set_next_key(&acme, "shop.test", &next)
        .await
        .unwrap();
    assert_eq!(rotating.next_key.as_ref(), Some(&next));
    assert_eq!(rotating.selector, "mt1");
    let signing = f
        .store
        .verified_domain_key(&acme, "shop.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(signing.selector, "mt1");
    let unchanged = f
        .store
        .promote_next_key(&acme, "shop.test", "mt9", "[]")
        .await
        .unwrap();
    assert_eq!(unchanged, rotating);
    let promoted = f
        .store
        .promote_next_key(&acme, "shop.test", "mt2", r#"[{"selector":"mt1"}]"#)
        .await
        .unwrap();
    assert_eq!(
        (promoted.selector.as_str(), promoted.public_key_b64.as_str()),
        ("mt2", "REVG")
    );
    assert_eq!(promoted.next_key, None);
    assert_eq!(
        promoted.retired_keys.as_deref(),
        Some(r#"[{"selector":"mt1"}]"#)
    );
    assert_eq!(promoted.verified_at_ms, Some(verified_at), "still verified");
    let signing = f
        .store
        .verified_domain_key(&acme, "shop.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (signing.selector, signing.private_key_pem),
        ("mt2".to_owned(), next.private_key_pem)
    );

    let failed = f
        .store
        .record_domain_check(&acme, "shop.test", false, "{}")
        .await
        .unwrap();
    assert_eq!(failed.verified_at_ms, None, "a failed check unverifies");
    assert_eq!(
        f.store
            .verified_domain_key(&acme, "shop.test")
            .await
            .unwrap(),
        None
    );

    f.store.delete_domain(&acme, "shop.test").await.unwrap();
    assert!(matches!(
        f.store.delete_domain(&acme, "shop.test").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        f.store.domain(&acme, "shop.test").await,
        Err(StoreError::NotFound)
    ));
    assert!(f.store.domain(&globex, "shop.test").await.is_ok());
}

async fn an_accounts_users_are_listed_without_other_accounts_or_operators(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (globex, _) = f.store.create_account("Globex").await.unwrap();
    let ana = f
        .store
        .create_user("Ana@Acme.test", Some(&acme), Role::Admin, "$argon2id$fake")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let bo = f
        .store
        .create_user("bo@acme.test", Some(&acme), Role::User, "$argon2id$fake")
        .await
        .unwrap();
    f.store
        .create_user(
            "hal@globex.test",
            Some(&globex),
            Role::Admin,
            "$argon2id$fake",
        )
        .await
        .unwrap();
    f.store
        .create_user("op@mailtrail.test", None, Role::Operator, "$argon2id$fake")
        .await
        .unwrap();
    let users = f.store.users(&acme).await.unwrap();
    let listed: Vec<(&str, &str, Role)> = users
        .iter()
        .map(|u| (u.id.as_str(), u.email.as_str(), u.role))
        .collect();
    assert_eq!(
        listed,
        [
            (ana.as_str(), "ana@acme.test", Role::Admin),
            (bo.as_str(), "bo@acme.test", Role::User),
        ],
        "oldest first, this account's only"
    );
    assert!(users[0].created_at_ms <= users[1].created_at_ms);
    assert!(users[0].created_at_ms > 0);
    assert_eq!(f.store.users(&globex).await.unwrap().len(), 1);
    assert!(f.store.users("no-such-account").await.unwrap().is_empty());
}

async fn sign_in_failures_lock_keys_and_forms_are_spent_once(f: Fixture) {
    use mailtrail_store::login_throttle::{Counted, LoginLimit};
    let store = &f.store;
    let limit = LoginLimit {
        failures: 2,
        window_ms: 60_000,
        lock_ms: 1_000,
        lock_max_ms: 3_000,
    };
    let (login, other) = ("login:a", "address:192.0.2.1");
    // What counting one attempt against `keys` did: the lock each key's failure started, or
    // `Err(until)` when one was already locked.
    let count = async |keys: &[&str], now| {
        let keys: Vec<_> = keys.iter().map(|&k| (k, &limit)).collect();
        match store.count_login_attempt(&keys, now).await.unwrap() {
            Counted::AlreadyLocked(until) => Err(until),
            Counted::Counted(counts) => Ok(counts.iter().map(|c| c.lock()).collect::<Vec<_>>()),
        }
    };
    let locked = async |keys: &[&str], now| store.login_locked_until(keys, now).await.unwrap();
    assert_eq!(count(&[login], 0).await, Ok(vec![None]));
    assert_eq!(locked(&[login, other], 10).await, None);
    assert_eq!(count(&[login], 10).await, Ok(vec![Some(1_010)]));
    assert_eq!(locked(&[other, login], 20).await, Some(1_010));
    // A guess that passed the check alongside the one that locked is not counted, for any of
    // its keys.
    assert_eq!(count(&[login, other], 20).await, Err(1_010));
    assert_eq!(count(&[other], 30).await, Ok(vec![None]), "first failure");
    assert_eq!(locked(&[login], 1_010).await, None);
    // Locked again, twice as long, by the next failure after the lock.
    assert_eq!(count(&[login], 1_100).await, Ok(vec![Some(3_100)]));
    store.clear_login_failures(login).await.unwrap();
    assert_eq!(locked(&[login], 1_200).await, None);
    assert_eq!(
        count(&[login, other], 1_300).await,
        Ok(vec![None, Some(2_300)]),
        "counting starts again for the login; the address's second failure locks it"
    );

    let spend = async |nonce, expires, now| store.spend_login_form(nonce, expires, now).await;
    assert!(spend("form-a", 5_000, 2_000).await.unwrap());
    assert!(!spend("form-a", 5_000, 2_000).await.unwrap(), "spent");
    assert!(spend("form-b", 3_000, 2_000).await.unwrap());
    // Spent forms are kept until they expire, then forgotten.
    assert!(!spend("form-b", 3_000, 2_999).await.unwrap(), "still spent");
    assert!(spend("form-c", 9_000, 3_000).await.unwrap());
    assert!(spend("form-b", 3_000, 3_000).await.unwrap(), "forgotten");
}

/// A right password takes its counted attempt back: the key is as before, also when that
/// attempt had started a lock; with failures counted since, it has one fewer.
async fn a_right_password_takes_its_counted_attempt_back(f: Fixture) {
    use mailtrail_store::login_throttle::{Count, Counted, LoginLimit};
    let store = &f.store;
    let limit = LoginLimit {
        failures: 3,
        window_ms: 60_000,
        lock_ms: 1_000,
        lock_max_ms: 8_000,
    };
    let key = "address:198.51.100.7";
    let count = async |now| -> Count {
        match store
            .count_login_attempt(&[(key, &limit)], now)
            .await
            .unwrap()
        {
            Counted::Counted(mut counts) => counts.remove(0),
            other => panic!("not counted at {now}: {other:?}"),
        }
    };
    let locked = async |now| store.login_locked_until(&[key], now).await.unwrap();
    for now in [0, 10] {
        let right = count(now).await;
        store.uncount_login_attempt(&right).await.unwrap();
    }
    count(20).await;
    count(30).await;
    // The third attempt locks, but its password was right: no lock, and still two failures.
    let right = count(40).await;
    assert_eq!(right.lock(), Some(1_040));
    store.uncount_login_attempt(&right).await.unwrap();
    assert_eq!(locked(50).await, None);
    assert_eq!(
        count(60).await.lock(),
        Some(1_060),
        "the third failure locks"
    );

    // Attempts counted between a right one and its taking back stay counted.
    let key = "address:198.51.100.8";
    let count = async |now| match store
        .count_login_attempt(&[(key, &limit)], now)
        .await
        .unwrap()
    {
        Counted::Counted(mut counts) => counts.remove(0),
        other => panic!("not counted at {now}: {other:?}"),
    };
    let right = count(0).await;
    count(10).await;
    store.uncount_login_attempt(&right).await.unwrap();
    count(20).await;
    assert_eq!(
        count(30).await.lock(),
        Some(1_030),
        "10, 20 and 30 were failures"
    );
}

/// Failures of a key with no row yet, sent together: each is counted (a lock on a row that
/// does not exist yet locks nothing, so they must not all start from nothing), and the ones
/// after the limit find the key locked.
async fn first_sign_in_failures_sent_together_are_each_counted(f: Fixture) {
    use mailtrail_store::login_throttle::{Counted, LoginLimit};
    let limit = LoginLimit {
        failures: 5,
        window_ms: 60_000,
        lock_ms: 60_000,
        lock_max_ms: 60_000,
    };
    let store = Arc::new(f.store);
    // A race is a matter of luck: a few keys, each its own burst.
    for round in 0..5 {
        let key = format!("login:together-{round}");
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (store, key) = (store.clone(), key.clone());
                tokio::spawn(async move {
                    store
                        .count_login_attempt(&[(&key, &limit)], 1_000)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut counted = Vec::new();
        for task in tasks {
            counted.push(task.await.unwrap());
        }
        let locks: Vec<_> = counted
            .iter()
            .filter_map(|c| match c {
                Counted::Counted(counts) => Some(counts[0].lock()),
                Counted::AlreadyLocked(_) => None,
            })
            .collect();
        let plain = locks.iter().filter(|lock| lock.is_none());
        let locking = locks.iter().filter(|lock| lock.is_some());
        assert_eq!(
            (plain.count(), locking.count()),
            (4, 1),
            "limit - 1 failures, then the one that locks: {counted:?}"
        );
    }
}

async fn a_content_keeps_every_part_of_the_message_model_and_attachments_load_once(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let pdf: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let mut sent = submission(&["a@one.example", "b@one.example"]);
    sent.content = Content {
        from: "sales@shop.example".into(),
        from_name: Some("Sales Team".into()),
        subject: "Spring".into(),
        text: Some("Hi".into()),
        cc: vec!["Boss <boss@shop.example>".into()],
        reply_to: Some("ana@shop.example".into()),
        headers: vec![("X-Campaign".into(), "spring".into())],
        tags: vec!["spring".into(), "promo".into(), "spring".into()],
        metadata: [("crm_id".to_owned(), "42".to_owned())].into(),
        attachments: vec![
            mailtrail_store::Attachment {
                filename: "offer.pdf".into(),
                content_type: "application/pdf".into(),
                content_id: None,
                data: pdf.clone(),
            },
            mailtrail_store::Attachment {
                filename: "logo.png".into(),
                content_type: "image/png".into(),
                content_id: Some("logo".into()),
                data: vec![0x89, b'P', b'N', b'G', 0, 0xff],
            },
        ]
        .into(),
        raw: Some(b"Subject: raw\r\n\r\nbody\r\n".to_vec().into()),
        html: None,
    };
    f.store
        .enqueue(&acme, &sent, None, |_| String::new())
        .await
        .unwrap();
    let claimed = f.store.claim_due(10, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 2);
    for email in &claimed {
        assert_eq!(
            email.content, sent.content,
            "every field comes back as written"
        );
    }
    assert!(
        std::sync::Arc::ptr_eq(
            &claimed[0].content.attachments,
            &claimed[1].content.attachments
        ),
        "the emails of one content share one loaded copy of its attachments"
    );
}

async fn smtp_credentials_log_in_as_their_account_until_revoked(f: Fixture) {
    let (acme, _) = f.store.create_account("Acme").await.unwrap();
    let (globex, _) = f.store.create_account("Globex").await.unwrap();
    let made = f.store.create_smtp_credential(&acme).await.unwrap();
    assert!(
        made.username.starts_with("smtp-") && made.username.len() == 17,
        "{made:?}"
    );
    assert_eq!(made.password.len(), 32);
    let other = f.store.create_smtp_credential(&acme).await.unwrap();
    assert_ne!(made.username, other.username);
    assert_ne!(made.password, other.password);
    assert!(matches!(
        f.store.create_smtp_credential("no-such-account").await,
        Err(StoreError::NotFound)
    ));

    let listed = f.store.list_smtp_credentials(&acme).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|c| c.last_used_at_ms.is_none() && c.revoked_at_ms.is_none())
    );
    assert!(
        f.store
            .list_smtp_credentials(&globex)
            .await
            .unwrap()
            .is_empty()
    );

    let verify = |user: String, password: String| {
        let store = f.store.clone();
        async move {
            store
                .verify_smtp_credential(&user, &password)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        verify(made.username.clone(), made.password.clone()).await,
        Some(acme.to_string())
    );
    assert_eq!(
        verify(made.username.clone(), other.password.clone()).await,
        None
    );
    assert_eq!(
        verify("smtp-unknown".into(), made.password.clone()).await,
        None
    );
    assert_eq!(verify(made.username.clone(), String::new()).await, None);
    let used = f.store.list_smtp_credentials(&acme).await.unwrap();
    let used = used.iter().find(|c| c.id == made.id).unwrap();
    assert!(used.last_used_at_ms.is_some());

    f.store
        .revoke_smtp_credential(&made.id, None)
        .await
        .unwrap();
    assert_eq!(
        verify(made.username.clone(), made.password.clone()).await,
        None
    );
    assert_eq!(
        verify(other.username.clone(), other.password.clone()).await,
        Some(acme.to_string())
    );
    let revoked = f.store.list_smtp_credentials(&acme).await.unwrap();
    assert!(
        revoked
            .iter()
            .find(|c| c.id == made.id)
            .unwrap()
            .revoked_at_ms
            .is_some()
    );
    assert!(matches!(
        f.store.revoke_smtp_credential("nope", None).await,
        Err(StoreError::NotFound)
    ));
}
