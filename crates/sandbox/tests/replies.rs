//! What each sandbox server answers, over real SMTP: acceptance, rejections at RCPT and after
//! DATA, one-time deferrals, a closed port, a slow server, and the protocol itself.

mod common;

use std::time::{Duration, Instant};

use common::{Capture, Client, MAIL_FROM, route, sandbox};
use mailtrail_sandbox::DOMAINS;

#[tokio::test]
async fn every_domain_has_a_loopback_route() {
    let capture = Capture::start().await;
    let sandbox = sandbox(capture.address).await;
    let routes = sandbox.routes();
    assert_eq!(routes.len(), DOMAINS.len());
    for ((domain, address), (listed, text)) in routes.iter().zip(DOMAINS) {
        assert_eq!(domain, listed);
        assert!(domain.ends_with(".sandbox.test"), "{domain}");
        assert!(address.starts_with("127.0.0.1:"), "{address}");
        assert!(!text.is_empty());
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn ok_accepts_and_speaks_esmtp_with_pipelining() {
    let capture = Capture::start().await;
    let sandbox = sandbox(capture.address).await;
    let (mut client, greeting) = Client::connect(&route(&sandbox, "ok.sandbox.test")).await;
    assert!(greeting.starts_with("220 ok.sandbox.test"), "{greeting}");
    let ehlo = client.command("EHLO mta.shop.test").await;
    for line in ["250-PIPELINING", "250-8BITMIME", "250 SIZE 10485760"] {
        assert!(ehlo.contains(line), "{ehlo}");
    }
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");

    // Everything up to DATA in one write; the replies come back in order.
    client
        .write(
            format!(
                "MAIL FROM:<{MAIL_FROM}>\r\nRCPT TO:<ana@ok.sandbox.test>\r\n\
                 RCPT TO:<bo@ok.sandbox.test>\r\nDATA\r\n"
            )
            .as_bytes(),
        )
        .await;
    for expected in ["250", "250", "250", "354"] {
        let reply = client.reply().await;
        assert!(reply.starts_with(expected), "{reply}");
    }
    client
        .write(b"Subject: one\r\n\r\n..a stuffed line\r\n.\r\n")
        .await;
    assert!(client.reply().await.starts_with("250"));

    // A second message on the same connection, after RSET and NOOP.
    assert!(client.command("RSET").await.starts_with("250"));
    assert!(client.command("NOOP").await.starts_with("250"));
    assert!(
        client
            .command(&format!("MAIL FROM:<{MAIL_FROM}>"))
            .await
            .starts_with("250")
    );
    assert!(
        client
            .command("RCPT TO:<cy@ok.sandbox.test>")
            .await
            .starts_with("250")
    );
    assert!(client.data().await.starts_with("250"));
    assert!(client.command("QUIT").await.starts_with("221"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn commands_out_of_order_or_unknown_are_refused_not_fatal() {
    let capture = Capture::start().await;
    let sandbox = sandbox(capture.address).await;
    let (mut client, _) = Client::connect(&route(&sandbox, "ok.sandbox.test")).await;
    assert!(
        client
            .command("MAIL FROM:<a@b.test>")
            .await
            .starts_with("503")
    );
    assert!(
        client
            .command("HELO mta.shop.test")
            .await
            .starts_with("250")
    );
    assert!(
        client
            .command("RCPT TO:<a@ok.sandbox.test>")
            .await
            .starts_with("503")
    );
    assert!(client.command("FROBNICATE").await.starts_with("500"));
    assert!(client.command("DATA").await.starts_with("554"));
    assert!(
        client
            .command("RCPT TO:<ana@ok.sandbox.test>")
            .await
            .starts_with("503")
    );
    assert!(
        client
            .start_mail("ana@ok.sandbox.test")
            .await
            .starts_with("250")
    );
    assert!(client.data().await.starts_with("250"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn user_unknown_rejects_at_rcpt_with_5_1_1() {
    let capture = Capture::start().await;
    let sandbox = sandbox(capture.address).await;
    let (mut client, _) = Client::connect(&route(&sandbox, "user-unknown.sandbox.test")).await;
    let reply = client.start_mail("ana@user-unknown.sandbox.test").await;
    assert_eq!(
        reply,
        "550 5.1.1 <ana@user-unknown.sandbox.test>: Recipient address rejected: \
         User unknown in virtual mailbox table\r\n"
    );
    assert!(client.command("DATA").await.starts_with("554"));
    sandbox.shutdown().await;
}

/// Two connections to `domain`: the first attempt is deferred with `code`, the second accepted.
async fn deferred_once(domain: &str, code: &str) {
    let capture = Capture::start().await;
    let sandbox = sandbox(capture.address).await;
    let address = route(&sandbox, domain);
    let to = format!("ana@{domain}");

    let (mut first, _) = Client::connect(&address).await;
    let reply = first.start_mail(&to).await;
    assert!(reply.starts_with(code), "{reply}");
    assert!(reply.contains(&format!("<{to}>")), "{reply}");
    assert!(first.command("QUIT").await.starts_with("221"));

    let (mut second, _) = Client::connect(&address).await;
    assert!(second.start_mail(&to).await.starts_with("250"));
    assert!(second.data().await.starts_with("250"));

    // Another recipient is deferred on its own first attempt.
    assert!(second.command("RSET").await.starts_with("250"));
    let other = second.start_mail(&format!("bo@{domain}")).await;
    assert!(other.starts_with(code), "{other}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn mailbox_full_defers_the_first_attempt_with_452_then_accepts() {
    deferred_once("mailbox-full.sandbox.test", "452 4.2.2").await;
}

#[tokio::test]
async fn greylist_defers_the_first_attempt_with_451_then_accepts() {
    deferred_once("greylist.sandbox.test", "451 4.7.1").await;
}

#[tokio::test]
async fn too_large_and_spam_block_reject_after_data() {
    let capture = Capture::start().await;
    let sandbox = sandbox(capture.address).await;
    for (domain, expected) in [
        (
            "too-large.sandbox.test",
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n",
        ),
        (
            "spam-block.sandbox.test",
            "550 5.7.1 Message rejected as spam by content filter\r\n",
        ),
    ] {
        let (mut client, _) = Client::connect(&route(&sandbox, domain)).await;
        assert!(
            client
                .start_mail(&format!("ana@{domain}"))
                .await
                .starts_with("250")
        );
        assert_eq!(client.data().await, expected);
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn down_refuses_connections() {
    let capture = Capture::start().await;
    let sandbox = sandbox(capture.address).await;
    let error = tokio::net::TcpStream::connect(route(&sandbox, "down.sandbox.test"))
        .await
        .expect_err("nothing listens");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn slow_waits_before_the_greeting_and_before_the_final_250() {
    let capture = Capture::start().await;
    let sandbox = sandbox(capture.address).await;
    let started = Instant::now();
    let (mut client, greeting) = Client::connect(&route(&sandbox, "slow.sandbox.test")).await;
    assert!(greeting.starts_with("220"));
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert!(
        client
            .start_mail("ana@slow.sandbox.test")
            .await
            .starts_with("250")
    );
    let data = Instant::now();
    assert!(client.data().await.starts_with("250"));
    assert!(data.elapsed() >= Duration::from_millis(1900));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_the_servers() {
    let capture = Capture::start().await;
    let sandbox = sandbox(capture.address).await;
    let address = route(&sandbox, "ok.sandbox.test");
    let (mut open, _) = Client::connect(&address).await;
    sandbox.shutdown().await;
    assert!(tokio::net::TcpStream::connect(&address).await.is_err());
    assert!(open.hung_up().await, "an open connection is closed too");
}

#[tokio::test]
async fn a_client_that_keeps_erring_is_told_421_and_dropped() {
    let capture = Capture::start().await;
    let sandbox = sandbox(capture.address).await;
    let (mut client, _) = Client::connect(&route(&sandbox, "ok.sandbox.test")).await;
    client.write("BOGUS\r\n".repeat(10).as_bytes()).await;
    for _ in 0..10 {
        assert!(client.reply().await.starts_with("500"));
    }
    assert!(client.reply().await.starts_with("421"));
    assert!(client.hung_up().await);
    sandbox.shutdown().await;
}
