//! Delivery against real peers: Postfix's smtp-sink as the recipient's server and NSD for MX
//! records, through the real worker, real sockets and the embedded database. Retry timing is
//! compressed so a soft bounce's whole life fits in seconds.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Harness, config};

use mailtrail_domain::{EmailAddress, EventKind, Permission, Reason, Stage};
use mailtrail_store::NewLead;
use mailtrail_store::{AccountId, EmailId};
use mailtrail_testkit::dns::Dns;
use mailtrail_testkit::smtp_sink::Sink;

#[tokio::test]
async fn an_accepted_email_is_delivered_with_its_token_and_the_servers_reply() {
    let sink = Sink::start(&[]);
    let h = Harness::start(config(&[("ok.test", &sink.address())]), &[]).await;
    let ids = h.send(&["ana@ok.test"]).await;
    let email = h.settled(&ids[0]).await;
    assert_eq!(email.stage, Stage::Delivered);
    assert!(
        email.status.as_deref().unwrap().starts_with("250"),
        "{:?}",
        email.status
    );
    assert_eq!(
        h.kinds(&ids[0]).await,
        [EventKind::Queued, EventKind::Delivered]
    );
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].contains("X-Mailtrail-Token: "),
        "{}",
        messages[0]
    );
    // `<EMAIL_ID.TOKEN@helo_name>`: the email's id, then its signed token.
    let message_id = format!("Message-ID: <{}.", ids[0]);
    assert!(messages[0].contains(&message_id), "{}", messages[0]);
    h.stop().await;
}

#[tokio::test]
async fn a_hard_bounce_fails_suppresses_and_drops_the_next_email_unsent() {
    let sink = Sink::start(&[
        "-f",
        "RCPT",
        "-B",
        "550 5.1.1 <bo@hard.test>: Recipient address rejected: User unknown",
    ]);
    let h = Harness::start(config(&[("hard.test", &sink.address())]), &[]).await;
    let lead = NewLead {
        address: EmailAddress::parse("bo@hard.test").unwrap(),
        first_name: Some("Bo".into()),
        last_name: None,
        fields: BTreeMap::new(),
        permission: Permission::Yes,
    };
    let lead = h.store.create_lead(&h.account, &lead).await.unwrap();
    let ids = h.send(&["bo@hard.test", "BO@hard.test"]).await;

    let bounced = h.settled(&ids[0]).await;
    assert_eq!(bounced.stage, Stage::Failed);
    assert_eq!(bounced.reason, Some(Reason::UserUnknown));
    assert_eq!(
        bounced.status.as_deref(),
        Some("550 5.1.1 <bo@hard.test>: Recipient address rejected: User unknown")
    );
    let dropped = h.settled(&ids[1]).await;
    assert_eq!(
        (dropped.stage, dropped.status.as_deref()),
        (Stage::Failed, Some("Dropped"))
    );
    assert_eq!(dropped.reason, Some(Reason::Suppressed));
    assert_eq!(
        dropped.attempts, 0,
        "the queued-behind email was never sent"
    );

    let address = EmailAddress::parse("bo@hard.test").unwrap();
    let block = h
        .store
        .suppression(&h.account, &address)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block.block.reason, Reason::UserUnknown);
    assert_eq!(
        h.store
            .lead(&AccountId::from(&h.account), &lead.id)
            .await
            .unwrap()
            .permission,
        Permission::No
    );
    assert!(sink.messages().is_empty());

    // Permission back to Yes does not lift the block: the next email is dropped at once.
    let yes = mailtrail_store::LeadPatch {
        permission: Some(Permission::Yes),
        ..Default::default()
    };
    h.store
        .update_lead(&AccountId::from(&h.account), &lead.id, &yes)
        .await
        .unwrap();
    let later = h.send(&["bo@hard.test"]).await;
    let later = h
        .store
        .email(&AccountId::from(&h.account), &EmailId::from(&later[0]))
        .await
        .unwrap();
    assert_eq!(
        (later.stage, later.status.as_deref()),
        (Stage::Failed, Some("Dropped"))
    );
    h.stop().await;
}

#[tokio::test]
async fn a_soft_bounce_is_retried_and_then_delivered() {
    let port = mailtrail_testkit::free_port();
    let sink = Sink::start_on(port, &["-r", "RCPT", "-b", "452 4.2.2 Mailbox full"]);
    let h = Harness::start(config(&[("soft.test", &sink.address())]), &[]).await;
    let ids = h.send(&["cy@soft.test"]).await;
    let deferred = h.wait(&ids[0], |e| e.attempts >= 2).await;
    assert_eq!(
        deferred.stage,
        Stage::Sent,
        "a soft bounce keeps the email in sent"
    );
    assert_eq!(deferred.reason, Some(Reason::MailboxFull));
    assert_eq!(deferred.status.as_deref(), Some("452 4.2.2 Mailbox full"));

    // The mailbox has room again.
    sink.stop();
    let sink = Sink::start_on(port, &[]);
    let delivered = h.settled(&ids[0]).await;
    assert_eq!(delivered.stage, Stage::Delivered);
    let kinds = h.kinds(&ids[0]).await;
    assert_eq!(kinds.first(), Some(&EventKind::Queued));
    assert_eq!(kinds.last(), Some(&EventKind::Delivered));
    assert!(
        kinds.iter().filter(|k| **k == EventKind::Deferred).count() >= 2,
        "{kinds:?}"
    );
    let attempts: Vec<u32> = h
        .store
        .events(&AccountId::from(&h.account), &EmailId::from(&ids[0]))
        .await
        .unwrap()
        .iter()
        .filter_map(|e| e.event.detail.attempt)
        .collect();
    assert_eq!(
        attempts,
        (1..=attempts.len() as u32).collect::<Vec<_>>(),
        "each attempt numbered once"
    );
    assert_eq!(sink.messages().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn soft_bounces_that_never_end_expire() {
    let sink = Sink::start(&["-r", "."]);
    let h = Harness::start(config(&[("full.test", &sink.address())]), &[]).await;
    let ids = h.send(&["di@full.test"]).await;
    let email = h.settled(&ids[0]).await;
    assert_eq!(email.stage, Stage::Failed);
    assert_eq!(email.reason, Some(Reason::Expired));
    assert!(
        email.status.as_deref().unwrap().starts_with("450"),
        "{:?}",
        email.status
    );
    assert!(email.attempts >= 3, "{}", email.attempts);
    assert!(
        h.store
            .suppression(&h.account, &EmailAddress::parse("di@full.test").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    h.stop().await;
}

#[tokio::test]
async fn a_421_and_hang_up_defers_and_slows_the_destination() {
    let sink = Sink::start(&["-Q", "RCPT"]);
    let h = Harness::start(config(&[("busy.test", &sink.address())]), &[]).await;
    let ids = h
        .send(&["e1@busy.test", "e2@busy.test", "e3@busy.test"])
        .await;
    let first = h.wait(&ids[0], |e| e.attempts >= 1).await;
    assert_eq!(first.stage, Stage::Sent);
    assert!(
        first.status.as_deref().unwrap().starts_with("421"),
        "{:?}",
        first.status
    );
    // The others were not tried in the same breath: the destination was paused.
    let others = [
        h.store
            .email(&AccountId::from(&h.account), &EmailId::from(&ids[1]))
            .await
            .unwrap(),
        h.store
            .email(&AccountId::from(&h.account), &EmailId::from(&ids[2]))
            .await
            .unwrap(),
    ];
    assert!(
        others
            .iter()
            .all(|e| e.attempts == 0 && e.stage == Stage::Sent)
    );
    h.stop().await;
}

#[tokio::test]
async fn a_slow_server_is_waited_for_and_a_refused_connection_is_retried() {
    let slow = Sink::start(&["-w", "2"]);
    let h = Harness::start(
        config(&[("slow.test", &slow.address()), ("down.test", "127.0.0.1:1")]),
        &[],
    )
    .await;
    let ids = h.send(&["fa@slow.test", "gu@down.test"]).await;
    assert_eq!(h.settled(&ids[0]).await.stage, Stage::Delivered);
    let down = h.settled(&ids[1]).await;
    assert_eq!(
        (down.stage, down.reason),
        (Stage::Failed, Some(Reason::Expired))
    );
    assert!(
        down.status
            .as_deref()
            .unwrap()
            .contains("Connection refused"),
        "{:?}",
        down.status
    );
    h.stop().await;
}

#[tokio::test]
async fn mx_records_from_a_real_dns_server_decide_where_mail_goes() {
    let sink = Sink::start(&[]);
    let dns = Dns::start(&[(
        "example.test",
        // mx1 (preferred) has nothing listening; mx2 is the sink.
        "@ IN MX 10 mx1\n@ IN MX 20 mx2\nmx1 IN A 127.0.0.2\nmx2 IN A 127.0.0.1\n\
             nomail IN MX 0 .\nbare IN A 127.0.0.1\n",
    )]);
    let mut config = config(&[]);
    config.mx_port = sink.port;
    let h = Harness::start(config, &[dns.address]).await;
    let ids = h
        .send(&[
            "ana@example.test",
            "bo@nomail.example.test",
            "cy@missing.example.test",
            "di@bare.example.test",
        ])
        .await;

    let preferred_down = h.settled(&ids[0]).await;
    assert_eq!(
        preferred_down.stage,
        Stage::Delivered,
        "{:?}",
        preferred_down.status
    );
    let null_mx = h.settled(&ids[1]).await;
    assert_eq!(
        (null_mx.stage, null_mx.reason),
        (Stage::Failed, Some(Reason::NotAccept))
    );
    let missing = h.settled(&ids[2]).await;
    assert_eq!(
        (missing.stage, missing.reason),
        (Stage::Failed, Some(Reason::HostUnknown))
    );
    let a_record_only = h.settled(&ids[3]).await;
    assert_eq!(
        a_record_only.stage,
        Stage::Delivered,
        "no MX: the domain's own address"
    );

    for hard in ["bo@nomail.example.test", "cy@missing.example.test"] {
        let blocked = h
            .store
            .suppression(&h.account, &EmailAddress::parse(hard).unwrap())
            .await
            .unwrap();
        assert!(blocked.is_some(), "{hard} is suppressed");
    }
    assert_eq!(sink.messages().len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn a_dns_server_that_does_not_answer_defers() {
    // A UDP port with nothing behind it: queries time out.
    let silent: SocketAddr = format!("127.0.0.1:{}", mailtrail_testkit::free_port())
        .parse()
        .unwrap();
    let mut config = config(&[]);
    config.retry.give_up_after = Duration::from_secs(60);
    let h = Harness::start(config, &[silent]).await;
    let ids = h.send(&["ana@example.test"]).await;
    let email = h.wait(&ids[0], |e| e.attempts >= 1).await;
    assert_eq!(
        (email.stage, email.reason),
        (Stage::Sent, Some(Reason::NetworkError))
    );
    assert!(
        email.status.as_deref().unwrap().contains("DNS"),
        "{:?}",
        email.status
    );
    h.stop().await;
}

#[tokio::test]
async fn through_a_relay_the_relays_250_is_recorded_as_relayed() {
    let relay = Sink::start(&[]);
    let mut config = config(&[]);
    config.relay = Some(mailtrail_outbound::config::RelayConfig {
        address: relay.address(),
        username: None,
        password: None,
        tls: mailtrail_outbound::config::RelayTls::None,
    });
    let h = Harness::start(config, &[]).await;
    let ids = h
        .send(&["ana@anywhere.example", "bo@elsewhere.example"])
        .await;
    for id in &ids {
        let email = h.settled(id).await;
        assert_eq!(email.stage, Stage::Delivered, "relayed counts as delivered");
        assert_eq!(h.kinds(id).await, [EventKind::Queued, EventKind::Relayed]);
    }
    assert_eq!(relay.messages().len(), 2);
    h.stop().await;
}

/// smtp-sink offers no STARTTLS: with credentials configured, nothing is sent rather than
/// the password in the clear, and the email waits for the relay to offer TLS.
#[tokio::test]
async fn relay_credentials_are_never_sent_without_tls() {
    let relay = Sink::start(&[]);
    let mut config = config(&[]);
    config.relay = Some(mailtrail_outbound::config::RelayConfig {
        address: relay.address(),
        username: Some("mailtrail".into()),
        password: Some("secret".into()),
        tls: mailtrail_outbound::config::RelayTls::Starttls,
    });
    let h = Harness::start(config, &[]).await;
    let ids = h.send(&["ana@anywhere.example"]).await;
    let email = h.wait(&ids[0], |e| e.attempts >= 1).await;
    assert_eq!(
        (email.stage, email.reason),
        (Stage::Sent, Some(Reason::FailedStartTls))
    );
    assert!(
        email
            .status
            .as_deref()
            .unwrap()
            .contains("not sent unencrypted"),
        "{:?}",
        email.status
    );
    assert!(email.next_attempt_at_ms.is_some(), "still queued");
    assert!(relay.messages().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn mail_from_a_domain_with_a_key_carries_a_dkim_signature_that_verifies() {
    use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};

    let der = Ed25519Key::generate_pkcs8().unwrap();
    let public = Ed25519Key::from_pkcs8_der(&der).unwrap().public_key();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("shop.pem");
    let b64 = data_encoding::BASE64.encode(&der);
    std::fs::write(
        &key_file,
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let record = format!(
        "mt1._domainkey IN TXT \"v=DKIM1; k=ed25519; p={}\"",
        data_encoding::BASE64.encode(&public)
    );
    let dns = Dns::start(&[("shop.test", &record)]);

    let sink = Sink::start(&[]);
    let mut config = config(&[("ok.test", &sink.address())]);
    config.dkim.insert(
        "shop.test".into(),
        mailtrail_outbound::dkim::DkimKeyConfig {
            selector: "mt1".into(),
            private_key: key_file,
        },
    );
    let h = Harness::start(config, &[]).await;
    let ids = h.send(&["ana@ok.test"]).await;
    assert_eq!(h.settled(&ids[0]).await.stage, Stage::Delivered);
    let received = sink.messages().pop().unwrap();
    assert!(
        received.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;")
            || received.contains("\nDKIM-Signature: v=1; a=ed25519-sha256;"),
        "{received}"
    );

    // A receiver verifies it against the key published in real DNS.
    let mut server = NameServerConfig::udp_and_tcp(dns.address.ip());
    for connection in &mut server.connections {
        connection.port = dns.address.port();
    }
    let authenticator = MessageAuthenticator::new(
        ResolverConfig::from_parts(None, vec![], vec![server]),
        ResolverOpts::default(),
    )
    .unwrap();
    let message = AuthenticatedMessage::parse(received.as_bytes()).unwrap();
    let results = authenticator.verify_dkim(&message).await;
    assert!(!results.is_empty());
    assert!(
        results.iter().all(|r| r.result() == &DkimResult::Pass),
        "{:?}",
        results.iter().map(|r| r.result()).collect::<Vec<_>>()
    );
    h.stop().await;
}

#[tokio::test]
async fn a_destination_rate_limit_spaces_the_emails_out() {
    let sink = Sink::start(&[]);
    let mut config = config(&[("paced.test", &sink.address())]);
    config.messages_per_second_per_destination = Some(20.0);
    let h = Harness::start(config, &[]).await;
    let started = Instant::now();
    let ids = h
        .send(&[
            "a@paced.test",
            "b@paced.test",
            "c@paced.test",
            "d@paced.test",
            "e@paced.test",
            "f@paced.test",
        ])
        .await;
    for id in &ids {
        assert_eq!(h.settled(id).await.stage, Stage::Delivered);
    }
    // Six emails at 20 per second: the last one goes no earlier than 250 ms after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    h.stop().await;
}

#[tokio::test]
async fn require_tls_defers_mail_to_a_server_without_starttls() {
    let sink = Sink::start(&[]);
    let mut config = config(&[("plain.test", &sink.address())]);
    config.require_tls = true;
    config.retry.give_up_after = Duration::from_secs(60);
    let h = Harness::start(config, &[]).await;
    let ids = h.send(&["a@plain.test"]).await;
    let email = h.wait(&ids[0], |e| e.attempts >= 1).await;
    assert_eq!(
        (email.stage, email.reason),
        (Stage::Sent, Some(Reason::FailedStartTls))
    );
    assert!(sink.messages().is_empty(), "nothing goes out in the clear");
    h.stop().await;
}
