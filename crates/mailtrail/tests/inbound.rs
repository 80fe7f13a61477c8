//! Inbound mail end to end: the real service sends through smtp-sink, then `swaks` (a real
//! SMTP client) delivers bounce reports, a complaint, replies and forgeries to its SMTP
//! listener, and each email ends in the stage docs/emails.md, docs/inbound.md call for. The listener has
//! a certificate (made by `openssl` for the test), and swaks requires STARTTLS: every message
//! here arrives over TLS, as it would from a remote MTA that prefers it.

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{mailtrail, serve_with_smtp};
use mailtrail_domain::{EmailAddress, Reason};
use mailtrail_store::Store;
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::{Value, json};

struct Service {
    child: Child,
    base: String,
    smtp: String,
    key: String,
    account: String,
    dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(sink: &Sink) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailtrail.toml");
    let (cert, key) = mailtrail_testkit::self_signed_certificate(dir.path(), "bounce.shop.test");
    let (cert, key) = (cert.display(), key.display());
    std::fs::write(
        &config,
        format!(
            "[outbound]\nhelo_name = \"mta.shop.test\"\nbounce_domain = \"bounce.shop.test\"\n\
             [outbound.routes]\n\"ok.test\" = \"{0}\"\n\"shop.test\" = \"{0}\"\n\
             [inbound]\ntls_certificate = \"{cert}\"\ntls_key = \"{key}\"\n",
            sink.address()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let env = [
        ("MAILTRAIL_CONFIG", config.to_str().unwrap()),
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
    ];
    let output = mailtrail(&env)
        .args(["account", "create", "Shop", "--json"])
        .output()
        .unwrap();
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let (child, base, smtp) = serve_with_smtp(&env);
    Service {
        child,
        base,
        smtp,
        key: created["api_key"].as_str().unwrap().into(),
        account: created["id"].as_str().unwrap().into(),
        dir,
    }
}

impl Service {
    /// Sends one email and waits until the sink has it; returns its id and token.
    async fn delivered_email(&self, sink: &Sink, to: &str) -> (String, String) {
        let email =
            json!({"to": to, "from": "sales@shop.test", "subject": "Offer", "text": "Hello"});
        let id = common::send_email(&self.base, &self.key, &email).await;
        let message = common::received(sink, &id).await;
        let token = message
            .lines()
            .find_map(|l| l.strip_prefix("X-Mailtrail-Token: "))
            .unwrap()
            .trim()
            .to_owned();
        (id, token)
    }

    /// Delivers `message` to the listener with swaks over STARTTLS, as a remote mail server
    /// would.
    fn deliver(&self, to: &str, message: &str) {
        let file = self.dir.path().join(format!("msg-{}.eml", rand_suffix()));
        std::fs::write(&file, message).unwrap();
        let (host, port) = self.smtp.rsplit_once(':').unwrap();
        let output = Command::new("swaks")
            .args([
                "--server", host, "--port", port, "--tls", "--from", "", "--to", to, "--data",
            ])
            .arg(&file)
            .output()
            .expect("swaks is installed (scripts/install-test-deps)");
        let transcript = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "swaks failed:\n{transcript}");
        assert!(transcript.contains("TLS started"), "{transcript}");
        assert!(transcript.contains("250 2.0.0 Ok: stored"), "{transcript}");
    }

    async fn email(&self, id: &str, until: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let email = common::get_json(&self.base, &self.key, &format!("/v1/emails/{id}")).await;
            if until(&email) || Instant::now() > deadline {
                return email;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn dsn(recipient: &str, action: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.ok.test (Mail Delivery System)\r\nTo: someone\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.ok.test.\r\n\
         I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; mx.ok.test\r\n\r\n\
         Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n\
         Action: {action}\r\nStatus: {status}\r\nDiagnostic-Code: smtp; {diagnostic}\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: sales@shop.test\r\nTo: {recipient}\r\nSubject: Offer\r\n\r\n--B--\r\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bounces_complaints_and_replies_come_back_to_their_emails() {
    let sink = Sink::start(&[]);
    let service = start(&sink);

    // An asynchronous hard bounce after the recipient's server said 250.
    let (bounced, token) = service.delivered_email(&sink, "ana@ok.test").await;
    let email = service.email(&bounced, |e| e["stage"] == "delivered").await;
    assert_eq!(email["stage"], "delivered");
    let report = dsn(
        "ana@ok.test",
        "failed",
        "5.1.1",
        "550 5.1.1 <ana@ok.test>: Recipient address rejected: User unknown",
    );
    service.deliver(&format!("bounces+{token}@bounce.shop.test"), &report);
    let email = service.email(&bounced, |e| e["stage"] == "failed").await;
    assert_eq!(email["stage"], "failed");
    assert_eq!(email["reason"], "userunknown");
    assert!(
        email["status"].as_str().unwrap().contains("550 5.1.1"),
        "{email}"
    );

    // A delay notice is an event only.
    let (delayed, token) = service.delivered_email(&sink, "bo@ok.test").await;
    service.deliver(
        &format!("bounces+{token}@bounce.shop.test"),
        &dsn(
            "bo@ok.test",
            "delayed",
            "4.4.7",
            "451 4.4.7 Delivery delayed",
        ),
    );
    let email = service
        .email(&delayed, |e| {
            e["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|ev| ev["kind"] == "delayed")
        })
        .await;
    assert_eq!(email["stage"], "delivered");

    // A person's reply, and an out-of-office.
    let (replied, token) = service.delivered_email(&sink, "cy@ok.test").await;
    service.deliver(
        &format!("reply+{token}@bounce.shop.test"),
        "From: cy@ok.test\r\nTo: sales@shop.test\r\nSubject: Re: Offer\r\n\r\nSounds good, call me.\r\n",
    );
    assert_eq!(
        service.email(&replied, |e| e["stage"] == "replied").await["stage"],
        "replied"
    );
    let (away, token) = service.delivered_email(&sink, "di@ok.test").await;
    service.deliver(
        &format!("reply+{token}@bounce.shop.test"),
        "From: di@ok.test\r\nTo: sales@shop.test\r\nSubject: Out of office: Offer\r\nAuto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n",
    );
    let email = service
        .email(&away, |e| {
            e["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|ev| ev["kind"] == "auto_replied")
        })
        .await;
    assert_eq!(email["stage"], "delivered", "an auto-reply is not a reply");

    // The reply went on to the email's sender (shop.test routes to the sink too); the
    // out-of-office did not: nothing automatic is ever forwarded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let forwards = loop {
        let forwards: Vec<String> = sink
            .messages()
            .into_iter()
            .filter(|m| m.contains("Auto-Submitted: auto-forwarded"))
            .collect();
        if !forwards.is_empty() || Instant::now() > deadline {
            break forwards;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(forwards.len(), 1, "one forward, for the person's reply");
    let forward = &forwards[0];
    assert!(forward.contains("To: <sales@shop.test>"), "{forward}");
    assert!(forward.contains("Reply-To: <cy@ok.test>"), "{forward}");
    assert!(forward.contains("Sounds good, call me."), "{forward}");
    assert!(!forward.contains("I am away until Monday"), "{forward}");

    // A feedback-loop complaint that names the email only by its header.
    let (complained, token) = service.delivered_email(&sink, "ed@ok.test").await;
    let arf = format!(
        "From: fbl@isp.test\r\nTo: fbl@bounce.shop.test\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
         --F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n\
         --F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n\r\n\
         --F\r\nContent-Type: message/rfc822\r\n\r\nFrom: sales@shop.test\r\nTo: redacted@ok.test\r\nSubject: Offer\r\nX-Mailtrail-Token: {token}\r\n\r\nHello\r\n\r\n--F--\r\n"
    );
    service.deliver("fbl@bounce.shop.test", &arf);
    let email = service
        .email(&complained, |e| e["stage"] == "unsubscribed")
        .await;
    assert_eq!(
        (email["stage"].as_str(), email["reason"].as_str()),
        (Some("unsubscribed"), Some("complaint"))
    );

    // A forged token is kept as unmatched and changes nothing.
    let (untouched, _) = service.delivered_email(&sink, "fa@ok.test").await;
    service.deliver(
        "bounces+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@bounce.shop.test",
        &dsn("fa@ok.test", "failed", "5.1.1", "550 5.1.1 User unknown"),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        service.email(&untouched, |_| true).await["stage"],
        "delivered"
    );

    // Hard bounce and complaint suppressed their addresses; nothing else did.
    let data = service.dir.path().join("data");
    let key = mailtrail_store::MasterKey::in_data_dir(&data).unwrap();
    let store = Store::open_sqlite(&data, key).await.unwrap();
    let block = |a: &str| {
        let store = store.clone();
        let account = service.account.clone();
        let address = EmailAddress::parse(a).unwrap();
        async move {
            store
                .suppression(&account, &address)
                .await
                .unwrap()
                .map(|s| s.block.reason)
        }
    };
    assert_eq!(block("ana@ok.test").await, Some(Reason::UserUnknown));
    assert_eq!(block("ed@ok.test").await, Some(Reason::Complaint));
    for kept in ["bo@ok.test", "cy@ok.test", "di@ok.test", "fa@ok.test"] {
        assert_eq!(block(kept).await, None, "{kept}");
    }
}
