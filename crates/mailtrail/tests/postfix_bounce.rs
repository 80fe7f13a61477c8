//! A real asynchronous bounce, end to end: a real Postfix accepts an email from the real
//! `mailtrail serve` with 250, then fails to pass it on (its next hop, an smtp-sink, refuses
//! the recipient) and mails its own DSN to the VERP envelope sender, which it routes to
//! Mailtrail's inbound SMTP listener. Mailtrail must match that DSN to the email by its token,
//! fail the email with Postfix's diagnostic and suppress the address — nothing here is a
//! hand-written report.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{create_account, serve_with_smtp};
use mailtrail_domain::{EmailAddress, Reason};
use mailtrail_store::Store;
use mailtrail_store::{AccountId, EmailId};
use mailtrail_testkit::postfix::Postfix;
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::{Value, json};

/// The domain the relay Postfix takes mail for.
const DOMAIN: &str = "relay.test";
/// Mailtrail's bounce domain, which the relay Postfix routes to Mailtrail's listener.
const BOUNCE_DOMAIN: &str = "bounce.shop.test";
/// What the next hop says to every recipient: a permanent "no such user".
const REFUSAL: &str = "550 5.1.1 Recipient address rejected: User unknown";

/// `mailtrail serve`, killed when dropped (before its temp dir goes).
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn email(base: &str, key: &str, id: &str) -> Value {
    common::get_json(base, key, &format!("/v1/emails/{id}")).await
}

/// Polls the email until `until` holds or `within` has passed; returns its last state.
async fn wait_for(
    base: &str,
    key: &str,
    id: &str,
    within: Duration,
    until: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let email = email(base, key, id).await;
        if until(&email) || Instant::now() > deadline {
            return email;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kinds(email: &Value) -> Vec<&str> {
    email["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["kind"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dsn_from_a_real_postfix_fails_the_email_it_had_accepted() {
    let sink = Sink::start(&["-f", "RCPT", "-B", REFUSAL]);

    // Mailtrail's route must name the relay's port, and the relay must name Mailtrail's
    // inbound port, which is only known once `serve` prints it: so the relay's port is chosen
    // first and the relay started second.
    let relay_port = mailtrail_testkit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "[outbound]\nhelo_name = \"mta.shop.test\"\nbounce_domain = \"{BOUNCE_DOMAIN}\"\n\
             [outbound.routes]\n\"{DOMAIN}\" = \"127.0.0.1:{relay_port}\"\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let env = [
        ("MAILTRAIL_CONFIG", config.to_str().unwrap()),
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
    ];
    let (account, key) = create_account(&env, "Shop");
    let (child, base, smtp) = serve_with_smtp(&env);
    let _serve = Serve(child);
    let postfix =
        Postfix::start_relay_on(relay_port, DOMAIN, &sink.address(), (BOUNCE_DOMAIN, &smtp));

    let recipient = format!("ana@{DOMAIN}");
    let email = json!({
        "to": recipient, "from": "sales@shop.test", "subject": "Offer", "text": "Hello"
    });
    let id = common::send_email(&base, &key, &email).await;

    // Postfix answers 250 at once and bounces a moment later, so the `delivered` stage may
    // be gone by the time it is polled: it is checked in the event history instead.
    let failed = wait_for(&base, &key, &id, Duration::from_secs(15), |e| {
        e["stage"] == "failed"
    })
    .await;
    let log = postfix.log();
    assert_eq!(failed["stage"], "failed", "{failed}\nPostfix log:\n{log}");
    let events = failed["events"].as_array().unwrap();
    let delivered = events
        .iter()
        .find(|e| e["kind"] == "delivered")
        .unwrap_or_else(|| panic!("no delivered event: {failed}"));
    // The synchronous outcome was Postfix's own acceptance…
    let accepted = delivered["status"].as_str().unwrap_or_default();
    assert!(
        accepted.starts_with("250 2.0.0 Ok: queued as "),
        "{delivered}"
    );
    // …and the failure came afterwards, from the DSN it mailed back.
    assert_eq!(
        kinds(&failed),
        ["queued", "delivered", "failed"],
        "{failed}"
    );
    assert_eq!(failed["reason"], "userunknown", "{failed}");
    // The DSN's Diagnostic-Code, without its `smtp;` type.
    assert_eq!(failed["status"], REFUSAL, "{failed}");
    assert!(
        log.contains(&format!("to=<{recipient}>"))
            && log.contains("status=bounced")
            && log.contains(&format!("[127.0.0.1]:{}", sink.port)),
        "Postfix did not bounce the relayed message itself:\n{log}"
    );
    assert!(
        log.contains(&format!("@{BOUNCE_DOMAIN}>")) && log.contains("status=sent"),
        "Postfix did not hand its DSN to Mailtrail:\n{log}"
    );

    // What was matched is the report Postfix wrote, not something this test made up.
    let key = mailtrail_store::MasterKey::in_data_dir(&data).unwrap();
    let store = Store::open_sqlite(&data, key).await.unwrap();
    let inbound = store
        .inbound_for_email(&AccountId::from(&account), &EmailId::from(&id))
        .await
        .unwrap();
    assert_eq!(inbound.len(), 1, "one message matched to the email");
    let dsn = String::from_utf8_lossy(&inbound[0].raw);
    assert_eq!(inbound[0].mail_from, "", "a DSN has the null sender");
    for line in [
        format!("From: Mail Delivery System <MAILER-DAEMON@mail.{DOMAIN}>"),
        format!("Reporting-MTA: dns; mail.{DOMAIN}"),
        format!("Final-Recipient: rfc822; {recipient}"),
        "Action: failed".into(),
        "Status: 5.1.1".into(),
        format!("Diagnostic-Code: smtp; {REFUSAL}"),
    ] {
        assert!(dsn.contains(&line), "no {line:?} in the DSN:\n{dsn}");
    }

    // A hard reason suppresses the address.
    let address = EmailAddress::parse(&recipient).unwrap();
    let block = store
        .suppression(&account, &address)
        .await
        .unwrap()
        .expect("the address is suppressed");
    assert_eq!(block.block.reason, Reason::UserUnknown);
}
