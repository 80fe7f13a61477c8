//! Delivery to a real Postfix as the recipient's server: its mailboxes show what arrived, and
//! its own replies (not scripted ones, as with smtp-sink) drive the outcome — an unknown user
//! at RCPT time, a message over its size limit at the end of DATA. And through a real Postfix
//! as a smarthost that requires STARTTLS and AUTH, with the right and a wrong password.

mod common;

use std::time::{Duration, Instant};

use common::{Harness, config};
use mailtrail_domain::{EmailAddress, EventKind, Reason, Stage};
use mailtrail_outbound::config::{RelayConfig, RelayTls};
use mailtrail_testkit::postfix::{MESSAGE_SIZE_LIMIT, Postfix};
use mailtrail_testkit::smtp_sink::Sink;

const DOMAIN: &str = "mx.test";
/// The smarthost's one account.
const USER: &str = "mailtrail";
const PASSWORD: &str = "correct horse battery staple";

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
    // `<EMAIL_ID.TOKEN@helo_name>`: the email's id, then its signed token.
    assert!(
        messages[0].contains(&format!("Message-ID: <{id}.")),
        "{}",
        messages[0]
    );
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

/// A smarthost's peers: the recipient's server it relays to, and a sink for its DSNs.
struct Peers {
    mx: Postfix,
    smarthost: Postfix,
    _bounces: Sink,
}

/// Postfix as `DOMAIN`'s server behind a Postfix smarthost that requires `USER`/`PASSWORD`,
/// and the worker sending everything through the smarthost as `USER` with `password`
/// (STARTTLS, or TLS from the first byte on the smarthost's second port), retrying for a
/// minute.
async fn through_smarthost(password: &str, tls: RelayTls) -> (Peers, Harness) {
    let mx = Postfix::start(DOMAIN, &["ana"]);
    let bounces = Sink::start(&[]);
    let mut config = config(&[]);
    let smarthost = Postfix::start_smarthost(
        DOMAIN,
        &mx.address(),
        (config.bounce_domain(), &bounces.address()),
        (USER, PASSWORD),
    );
    config.relay = Some(RelayConfig {
        address: match tls {
            RelayTls::Implicit => smarthost.implicit_tls_address(),
            _ => smarthost.address(),
        },
        username: Some(USER.into()),
        password: Some(password.into()),
        tls,
    });
    config.retry.give_up_after = Duration::from_secs(60);
    let peers = Peers {
        mx,
        smarthost,
        _bounces: bounces,
    };
    (peers, Harness::start(config, &[]).await)
}

#[tokio::test]
async fn through_a_smarthost_that_requires_auth_the_right_password_gets_the_email_relayed() {
    relayed_through_smarthost(RelayTls::Starttls).await;
}

#[tokio::test]
async fn a_smarthost_with_tls_from_the_first_byte_relays_too() {
    relayed_through_smarthost(RelayTls::Implicit).await;
}

async fn relayed_through_smarthost(tls: RelayTls) {
    let (peers, h) = through_smarthost(PASSWORD, tls).await;
    let id = h.send_text(&["ana@mx.test"], "Hi Ana").await.remove(0);
    let email = h.settled(&id).await;
    assert_eq!(
        email.stage,
        Stage::Delivered,
        "{:?}\n{}",
        email.status,
        peers.smarthost.log()
    );
    assert_eq!(h.kinds(&id).await, [EventKind::Queued, EventKind::Relayed]);
    let status = email.status.as_deref().unwrap();
    assert!(status.starts_with("250 2.0.0 Ok: queued as "), "{status}");

    let messages = mailbox(&peers.mx, "ana", 1).await;
    assert_eq!(messages.len(), 1, "{}", peers.smarthost.log());
    // The smarthost's Received line: ESMTPSA is ESMTP over TLS with AUTH (RFC 3848).
    assert!(messages[0].contains("with ESMTPSA id "), "{}", messages[0]);
    // `<EMAIL_ID.TOKEN@helo_name>`: the email's id, then its signed token.
    assert!(
        messages[0].contains(&format!("Message-ID: <{id}.")),
        "{}",
        messages[0]
    );
    assert!(
        peers
            .smarthost
            .log()
            .contains(&format!("sasl_method=PLAIN, sasl_username={USER}")),
        "{}",
        peers.smarthost.log()
    );
    h.stop().await;
}

/// A refused login is the operator's configuration to fix, not the recipient's fault: the
/// email stays queued and is retried, and the address is not suppressed.
#[tokio::test]
async fn through_a_smarthost_a_wrong_password_keeps_the_email_queued_for_retry() {
    let (peers, h) = through_smarthost("wrong password", RelayTls::Starttls).await;
    let id = h.send_text(&["ana@mx.test"], "Hi Ana").await.remove(0);
    let email = h.wait(&id, |e| e.attempts >= 2).await;
    assert_eq!(
        (email.stage, email.reason),
        (Stage::Sent, Some(Reason::AuthFailure)),
        "{:?}\n{}",
        email.status,
        peers.smarthost.log()
    );
    assert!(email.next_attempt_at_ms.is_some(), "still queued");
    let status = email.status.as_deref().unwrap();
    assert!(
        status.contains("refused our credentials")
            && status.contains("535")
            && status.contains("Error: authentication failed"),
        "{status}"
    );
    let kinds = h.kinds(&id).await;
    assert_eq!(kinds[0], EventKind::Queued);
    assert!(
        kinds[1..].iter().all(|k| *k == EventKind::Deferred),
        "{kinds:?}"
    );

    let address = EmailAddress::parse("ana@mx.test").unwrap();
    assert!(
        h.store
            .suppression(&h.account, &address)
            .await
            .unwrap()
            .is_none()
    );
    assert!(peers.mx.delivered("ana").is_empty());
    h.stop().await;
}
