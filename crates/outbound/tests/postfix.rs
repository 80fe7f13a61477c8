//! Delivery to a real Postfix as the recipient's server: its mailboxes show what arrived, and
//! its own replies (not scripted ones, as with smtp-sink) drive the outcome — an unknown user
//! at RCPT time, a message over its size limit at the end of DATA.

use std::time::{Duration, Instant};

use mailtrail_domain::{EmailAddress, EventKind, Reason, Stage};
use mailtrail_outbound::config::RetryConfig;
use mailtrail_outbound::submit::{self, Recipient, Request};
use mailtrail_outbound::{Outbound, OutboundConfig};
use mailtrail_store::{EmailRecord, Store};
use mailtrail_testkit::postfix::{MESSAGE_SIZE_LIMIT, Postfix};
use tokio::sync::watch;

const DOMAIN: &str = "mx.test";

struct Harness {
    store: Store,
    account: String,
    stop: watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// The worker, with `DOMAIN` routed to `postfix` and retries compressed into seconds.
    async fn start(postfix: &Postfix) -> Self {
        let config = OutboundConfig {
            helo_name: "mta.mailtrail.test".into(),
            routes: [(DOMAIN.to_string(), postfix.address())].into(),
            retry: RetryConfig {
                first_delay: Duration::from_millis(200),
                max_delay: Duration::from_millis(400),
                give_up_after: Duration::from_secs(5),
                soft_5xx_attempts: 3,
                soft_5xx_window: Duration::from_secs(2),
            },
            poll_interval: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(3),
            command_timeout: Duration::from_secs(5),
            data_timeout: Duration::from_secs(5),
            ..OutboundConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let (account, _) = store.create_account("Acme").await.unwrap();
        let outbound = Outbound::new(store.clone(), config, &[]).await.unwrap();
        let (stop, mut stopped) = watch::channel(false);
        let worker = tokio::spawn(outbound.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Harness {
            store,
            account,
            stop,
            worker,
            _dir: dir,
        }
    }

    async fn send(&self, to: &str, text: String) -> String {
        let request = Request {
            from: "sales@shop.test".into(),
            subject: "Hello".into(),
            text: Some(text),
            html: None,
            batch: None,
            send_at_ms: None,
            recipients: vec![Recipient {
                to: Some(to.into()),
                ..Default::default()
            }],
        };
        let accepted = submit::submit(&self.store, &self.account, request, None, |_| String::new())
            .await
            .unwrap();
        assert!(accepted.refused.is_empty(), "{:?}", accepted.refused);
        accepted.queued[0].id.clone()
    }

    /// Waits until the email has left the queue, at most 15 s.
    async fn settled(&self, id: &str) -> EmailRecord {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let email = self.store.email(&self.account, id).await.unwrap();
            if email.next_attempt_at_ms.is_none() || Instant::now() > deadline {
                return email;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn kinds(&self, id: &str) -> Vec<EventKind> {
        self.store
            .events(&self.account, id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event.kind)
            .collect()
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.worker.await.unwrap();
    }
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
    let h = Harness::start(&postfix).await;
    let id = h.send("ana@mx.test", "Hi Ana".into()).await;
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
    let h = Harness::start(&postfix).await;
    let id = h.send("bob@mx.test", "Hi Bob".into()).await;
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
    let h = Harness::start(&postfix).await;
    let id = h
        .send("ana@mx.test", "x".repeat(MESSAGE_SIZE_LIMIT * 3 / 2))
        .await;
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
