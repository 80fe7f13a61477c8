//! The overview's counts and the email report they link to, on SQLite and on a throwaway
//! PostgreSQL: each count equals the report's total for its filter and the rows the report
//! lists, whether the total is read from the per-day counts or counted over the emails.

use mailtrail_domain::{Event, EventKind, Reason};
use mailtrail_store::EmailId;
use mailtrail_store::overview::{DAY_MS, day_of};
use mailtrail_store::{Content, EmailFilter, Page, Reached, Settings, Store, Submission, now_ms};

mod common;

use common::{entry, on_both_backends};

on_both_backends!(
    overview_counts_equal_the_reports_totals_and_rows,
    a_rare_stage_is_listed_page_by_page_as_without_the_day_counts,
    the_report_pages_both_ways_and_finds_recipients_by_their_start,
    scheduled_mail_is_counted_and_listed_soonest_first,
);

fn submission(to: &[&str], send_at_ms: Option<i64>) -> Submission {
    Submission {
        content: Content {
            from: "sales@mailtrail.test".into(),
            subject: "Hello".into(),
            text: Some("Hi".into()),
            ..Default::default()
        },
        batch: Some("spring".into()),
        send_at_ms,
        entries: to.iter().map(|to| entry(to)).collect(),
    }
}

async fn queue(store: &Store, account: &str, submission: &Submission) -> Vec<String> {
    store
        .enqueue(account, submission, None, |_| String::new())
        .await
        .unwrap()
}

fn today_start() -> i64 {
    day_of(now_ms()) * DAY_MS
}

/// Every row the report lists for `filter`, paging through it.
async fn all_rows(store: &Store, account: &str, filter: &EmailFilter) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page = Page::First;
    loop {
        let rows = store
            .email_report_page(account, filter, &page, 2)
            .await
            .unwrap();
        ids.extend(rows.iter().map(|r| r.id.clone()));
        match rows.last() {
            Some(last) if rows.len() == 2 => page = Page::After(last.cursor()),
            _ => return ids,
        }
    }
}

async fn overview_counts_equal_the_reports_totals_and_rows(store: Store) {
    let (acme, _) = store.create_account("Acme").await.unwrap();
    let (other, _) = store.create_account("Other").await.unwrap();
    let tracking = Settings {
        open_tracking: true,
        ..Settings::default()
    };
    store.save_settings(&acme, &tracking).await.unwrap();
    let mut spring = submission(
        &[
            "a@example.com",
            "b@example.com",
            "c@example.com",
            "d@example.com",
            "e@example.com",
            "blocked@example.com",
        ],
        None,
    );
    spring.entries[5].dropped = Some(Reason::Suppressed);
    let ids = queue(&store, &acme, &spring).await;
    queue(&store, &other, &submission(&["x@example.com"], None)).await;
    let record = |id: &str, events: Vec<Event>| {
        let (store, acme, id) = (store.clone(), acme.clone(), id.to_owned());
        async move {
            for event in events {
                store
                    .append_event(&acme, &EmailId::from(&id), &event)
                    .await
                    .unwrap();
            }
        }
    };
    let t = now_ms();
    // a: delivered, opened, clicked, unsubscribed; b: delivered, then a complaint;
    // c: failed; d: delivered and replied; e: still waiting.
    record(
        &ids[0],
        vec![
            Event::new(EventKind::Delivered, t),
            Event::new(EventKind::Opened, t + 1),
            Event::new(EventKind::Clicked, t + 2),
            Event::new(EventKind::Unsubscribed, t + 3),
        ],
    )
    .await;
    record(
        &ids[1],
        vec![
            Event::new(EventKind::Delivered, t),
            Event::new(EventKind::Complained, t + 1).with_feedback_type("abuse"),
        ],
    )
    .await;
    record(
        &ids[2],
        vec![Event::new(EventKind::Failed, t).with_reason(Reason::UserUnknown)],
    )
    .await;
    record(
        &ids[3],
        vec![
            Event::new(EventKind::Delivered, t),
            Event::new(EventKind::Replied, t + 1),
        ],
    )
    .await;

    let today = day_of(now_ms());
    let counts = store.day_counts(&acme, Some(today), None).await.unwrap();
    let expected = [
        (Reached::Sent, 5),
        (Reached::Delivered, 3),
        (Reached::Failed, 1),
        (Reached::Opened, 1),
        (Reached::Clicked, 1),
        (Reached::Replied, 1),
        (Reached::Unsubscribed, 2),
        (Reached::Complained, 1),
    ];
    for (reached, n) in expected {
        assert_eq!(counts.count(reached), n, "{reached}: {counts:?}");
        let by_day = EmailFilter {
            from_ms: Some(today_start()),
            reached: Some(reached),
            ..EmailFilter::default()
        };
        assert_eq!(
            store
                .email_report_total(&acme, &by_day)
                .await
                .unwrap()
                .count,
            n,
            "{reached}: the total read from the day's counts"
        );
        assert_eq!(
            all_rows(&store, &acme, &by_day).await.len() as i64,
            n,
            "{reached}: the rows listed"
        );
        // Not a whole day: counted over the emails themselves.
        let by_time = EmailFilter {
            from_ms: Some(today_start() + 1),
            ..by_day.clone()
        };
        assert_eq!(
            store
                .email_report_total(&acme, &by_time)
                .await
                .unwrap()
                .count,
            n,
            "{reached}: the total counted over the emails"
        );
    }
    assert!(counts.open_tracking && !counts.click_tracking);
    assert_eq!(counts.rate(Reached::Delivered), Some(0.6));
    assert_eq!(
        counts.rate(Reached::Clicked),
        None,
        "click tracking was off"
    );
    assert_eq!(
        store
            .email_report_total(&acme, &EmailFilter::default())
            .await
            .unwrap()
            .count,
        6,
        "the dropped email is in the report, not in Sent"
    );

    let tomorrow = store
        .day_counts(&acme, Some(today + 1), None)
        .await
        .unwrap();
    assert_eq!(
        tomorrow.count(Reached::Sent),
        0,
        "an email counts on its own day"
    );
    let others = store.day_counts(&other, None, None).await.unwrap();
    assert_eq!((others.emails, others.delivered), (1, 0), "{others:?}");
}

/// Every row page by page forwards, and every row newer than the oldest page by page back.
async fn both_ways(
    store: &Store,
    account: &str,
    filter: &EmailFilter,
) -> (Vec<String>, Vec<String>) {
    let forwards = all_rows(store, account, filter).await;
    let mut backwards = Vec::new();
    let mut page = Page::Before(
        store
            .email_report_page(account, filter, &Page::First, 100)
            .await
            .unwrap()
            .last()
            .map(|r| r.cursor())
            .unwrap(),
    );
    loop {
        let rows = store
            .email_report_page(account, filter, &page, 2)
            .await
            .unwrap();
        if rows.is_empty() {
            break;
        }
        page = Page::Before(rows[0].cursor());
        for row in rows.into_iter().rev() {
            backwards.push(row.id);
        }
    }
    backwards.reverse();
    (forwards, backwards)
}

async fn a_rare_stage_is_listed_page_by_page_as_without_the_day_counts(store: Store) {
    let (acme, _) = store.create_account("Acme").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..12 {
        let to = format!("lead{i}@example.com");
        ids.extend(queue(&store, &acme, &submission(&[&to], None)).await);
    }
    for id in ids.iter().step_by(2) {
        let complaint = Event::new(EventKind::Complained, now_ms()).with_feedback_type("abuse");
        store
            .append_event(&acme, &EmailId::from(id), &complaint)
            .await
            .unwrap();
    }
    let by_day = EmailFilter {
        from_ms: Some(today_start()),
        reached: Some(Reached::Complained),
        ..EmailFilter::default()
    };
    // Not a whole day: the day counts are not consulted.
    let by_time = EmailFilter {
        from_ms: Some(today_start() + 1),
        ..by_day.clone()
    };
    let (forwards, backwards) = both_ways(&store, &acme, &by_day).await;
    assert_eq!(forwards.len(), 6);
    assert_eq!(forwards, all_rows(&store, &acme, &by_time).await);
    assert_eq!(
        backwards,
        forwards[..5],
        "every row newer than the oldest, paging back"
    );
    let none = EmailFilter {
        reached: Some(Reached::Replied),
        ..by_day
    };
    assert!(all_rows(&store, &acme, &none).await.is_empty());
}

async fn the_report_pages_both_ways_and_finds_recipients_by_their_start(store: Store) {
    let (acme, _) = store.create_account("Acme").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let to = format!("lead{i}@example.com");
        ids.extend(queue(&store, &acme, &submission(&[&to], None)).await);
    }
    ids.reverse();
    let all = EmailFilter::default();
    let page = |p: Page| {
        let (store, acme, all) = (store.clone(), acme.clone(), all.clone());
        async move {
            store
                .email_report_page(&acme, &all, &p, 3)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    let first = page(Page::First).await;
    assert_eq!(first, ids[0..3], "newest first");
    let rows = store.email_report(&acme, &all, None, 3).await.unwrap();
    let second = page(Page::After(rows[2].cursor())).await;
    assert_eq!(second, ids[3..6]);
    let rows = store
        .email_report_page(&acme, &all, &Page::After(rows[2].cursor()), 3)
        .await
        .unwrap();
    let back = page(Page::Before(rows[0].cursor())).await;
    assert_eq!(
        back, first,
        "the page before the second is the first, newest first"
    );
    let before_first = store
        .email_report(&acme, &all, None, 1)
        .await
        .unwrap()
        .remove(0)
        .cursor();
    assert!(page(Page::Before(before_first)).await.is_empty());

    let search = |prefix: &str| EmailFilter {
        recipient: Some(prefix.to_owned()),
        ..EmailFilter::default()
    };
    let found = store
        .email_report(&acme, &search("lead3"), None, 10)
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|r| r.to.as_str()).collect::<Vec<_>>(),
        ["lead3@example.com"]
    );
    assert_eq!(
        store
            .email_report_total(&acme, &search("lead"))
            .await
            .unwrap()
            .count,
        7
    );
    for nothing in ["lead3@example.co.uk", "%", "_ead3", "ead3"] {
        assert_eq!(
            store
                .email_report_total(&acme, &search(nothing))
                .await
                .unwrap()
                .count,
            0,
            "{nothing} is a start, not a pattern"
        );
    }
}

async fn scheduled_mail_is_counted_and_listed_soonest_first(store: Store) {
    let (acme, _) = store.create_account("Acme").await.unwrap();
    let now = now_ms();
    let later = queue(
        &store,
        &acme,
        &submission(&["later@example.com"], Some(now + 7_200_000)),
    )
    .await;
    let sooner = queue(
        &store,
        &acme,
        &submission(&["soon@example.com"], Some(now + 3_600_000)),
    )
    .await;
    queue(&store, &acme, &submission(&["now@example.com"], None)).await;

    let scheduled = store.scheduled(&acme, now_ms(), 5).await.unwrap();
    assert_eq!(scheduled.count, 2);
    let next: Vec<_> = scheduled.next.iter().map(|s| s.id.clone()).collect();
    assert_eq!(next, [sooner[0].clone(), later[0].clone()]);
    assert_eq!(scheduled.next[0].send_at_ms, now + 3_600_000);
    let filter = EmailFilter {
        scheduled: true,
        ..EmailFilter::default()
    };
    assert_eq!(
        store
            .email_report_total(&acme, &filter)
            .await
            .unwrap()
            .count,
        2
    );
    assert_eq!(all_rows(&store, &acme, &filter).await.len(), 2);
}
