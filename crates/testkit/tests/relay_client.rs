//! The relay-client Postfix against a real SMTP submission server no one here wrote: the
//! testkit's Postfix smarthost (STARTTLS, AUTH only after it). What `sendmail` queues must
//! come out at the smarthost's next hop, an smtp-sink, with its body unchanged; with a wrong
//! password nothing gets through.

use std::time::{Duration, Instant};

use mailtrail_testkit::postfix::Postfix;
use mailtrail_testkit::smtp_sink::Sink;

const LOGIN: (&str, &str) = ("app", "s3cret pass");

fn message(marker: &str) -> String {
    format!(
        "From: Shop Team <team@shop.test>\r\nTo: someone@relay.test\r\nSubject: {marker}\r\n\
         \r\nBody of {marker}.\r\n"
    )
}

fn wait_for(sink: &Sink, marker: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = sink.messages().into_iter().find(|m| m.contains(marker)) {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sendmail_relays_through_a_smarthost_with_tls_and_login() {
    let sink = Sink::start(&[]);
    let smarthost = Postfix::start_smarthost(
        "relay.test",
        &sink.address(),
        ("bounce.test", "127.0.0.1:9"),
        LOGIN,
    );
    let client = Postfix::start_relay_client(&smarthost.address(), LOGIN);
    client.sendmail(
        "team@shop.test",
        &["someone@relay.test"],
        message("relayed-1").as_bytes(),
    );
    let received = wait_for(&sink, "relayed-1", Duration::from_secs(20)).unwrap_or_else(|| {
        panic!(
            "nothing reached the sink\nclient:\n{}\nsmarthost:\n{}",
            client.log(),
            smarthost.log()
        )
    });
    assert!(
        received.contains("From: Shop Team <team@shop.test>"),
        "{received}"
    );
    assert!(received.contains("Body of relayed-1."), "{received}");
    // The client logged in over TLS, as the smarthost's log says.
    let log = smarthost.log();
    assert!(
        log.contains("sasl_method=PLAIN") || log.contains("sasl_method=LOGIN"),
        "{log}"
    );
    assert!(
        client.log().contains("TLS connection established"),
        "{}",
        client.log()
    );
}

#[test]
fn a_wrong_password_gets_nothing_through() {
    let sink = Sink::start(&[]);
    let smarthost = Postfix::start_smarthost(
        "relay.test",
        &sink.address(),
        ("bounce.test", "127.0.0.1:9"),
        LOGIN,
    );
    let client = Postfix::start_relay_client(&smarthost.address(), ("app", "wrong"));
    client.sendmail(
        "team@shop.test",
        &["someone@relay.test"],
        message("refused-1").as_bytes(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client.log().contains("authentication failed") {
        assert!(Instant::now() < deadline, "{}", client.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(wait_for(&sink, "refused-1", Duration::from_secs(1)).is_none());
}
