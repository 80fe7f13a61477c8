//! Delivery to a real Postfix as the recipient's server: its mailboxes show what arrived, and
//! its own replies (not scripted ones, as with smtp-sink) drive the outcome — an unknown user
//! at RCPT time, a message over its size limit at the end of DATA.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, config};
use mailtrail_domain::{EmailAddress, EventKind, Reason, Stage};
use mailtrail_testkit::postfix::{MESSAGE_SIZE_LIMIT, Postfix};

const DOMAIN: &str = "mx.test";

/// The worker with `DOMAIN` routed to `postfix`.
async fn harness(postfix: &Postfix) -> Harness {
    let mut config = config(&[(DOMAIN, &postfix.address())]);
    config.retry.give_up_after = Duration::from_secs(5);
    Harness::start(config, &[]).await
}

/// Waits for Postfix's queue manager to hand the message to the mailbox, at most 10 s.
async fn mailbox(postfix: &Postfix, user: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let messages = postfix.delivered(user);
        if messages.len() >= count || Instant::now() > deadline {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_email_to_an_existing_user_reaches_the_mailbox() {
    let postfix = Postfix::start(DOMAIN, &["ana"]);
    let h = harness(&postfix).await;
    let id = h.send_text(&["ana@mx.test"], "Hi Ana").await.remove(0);
    let email = h.settled(&id).await;
    assert_eq!(email.stage, Stage::Delivered, "{}", postfix.log());
    let status = email.status.as_deref().unwrap();
    assert!(status.starts_with("250 2.0.0 Ok: queued as "), "{status}");
    assert_eq!(
        h.kinds(&id).await,
        [EventKind::Queued, EventKind::Delivered]
    );

    let messages = mailbox(&postfix, "ana", 1).await;
    assert_eq!(messages.len(), 1, "{}", postfix.log());
    // Added by Postfix's delivery agent: the message went all the way into the mailbox.
    assert!(
        messages[0].contains("Delivered-To: ana@mx.test"),
        "{}",
        messages[0]
    );
    assert!(messages[0].contains(&format!("Message-ID: <{id}@mta.mailtrail.test>")));
    assert!(messages[0].contains("Hi Ana"));
    h.stop().await;
}

#[tokio::test]
async fn an_unknown_user_is_refused_at_rcpt_and_suppressed() {
    let postfix = Postfix::start(DOMAIN, &["ana"]);
    let h = harness(&postfix).await;
    let id = h.send_text(&["bob@mx.test"], "Hi Bob").await.remove(0);
    let email = h.settled(&id).await;
    assert_eq!(email.stage, Stage::Failed);
    assert_eq!(email.reason, Some(Reason::UserUnknown));
    assert_eq!(
        email.status.as_deref(),
        Some(
            "550 5.1.1 <bob@mx.test>: Recipient address rejected: User unknown in virtual \
             mailbox table"
        )
    );
    assert_eq!(email.attempts, 1);
    let address = EmailAddress::parse("bob@mx.test").unwrap();
    let block = h
        .store
        .suppression(&h.account, &address)
        .await
        .unwrap()
        .expect("the address is suppressed");
    assert_eq!(block.block.reason, Reason::UserUnknown);
    assert!(postfix.delivered("bob").is_empty());
    h.stop().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_retried_a_few_times_then_fails() {
    let postfix = Postfix::start(DOMAIN, &["ana"]);
    let h = harness(&postfix).await;
    let id = h
        .send_text(&["ana@mx.test"], &"x".repeat(MESSAGE_SIZE_LIMIT * 3 / 2))
        .await
        .remove(0);
    let email = h.settled(&id).await;
    assert_eq!(email.stage, Stage::Failed, "{:?}", email.status);
    assert_eq!(email.reason, Some(Reason::MesgTooBig));
    // Postfix's reply when the client announced no SIZE and the data ran over the limit.
    assert_eq!(
        email.status.as_deref(),
        Some("552 5.3.4 Error: message file too big")
    );
    assert_eq!(email.attempts, 3, "soft_5xx_attempts");
    assert_eq!(
        h.kinds(&id).await,
        [
            EventKind::Queued,
            EventKind::Deferred,
            EventKind::Deferred,
            EventKind::Failed
        ]
    );
    // Too big is a property of the message, not of the address.
    let address = EmailAddress::parse("ana@mx.test").unwrap();
    assert!(
        h.store
            .suppression(&h.account, &address)
            .await
            .unwrap()
            .is_none()
    );
    assert!(postfix.delivered("ana").is_empty());
    h.stop().await;
}
