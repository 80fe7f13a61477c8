//! Forged bounces and complaints (issue #16, item 1): an email id is public (URLs, API answers,
//! webhooks, exports), so a report that names an email only by `Message-ID: <EMAIL_ID@host>`,
//! or by an altered token, or by a token made for another use, must change nothing — not the
//! stage, not the suppression list, not the lead's Permission to Email, not the sending
//! protection's complaint count — and is kept as `unmatched`. The genuine Message-ID, which
//! carries the email's signed token, still matches. Each report is delivered over real SMTP to
//! the running binary's listener, after a real send through smtp-sink.

use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::{Value, json};

use crate::common;
use crate::smtp_edges::deliver;

const FBL: &str = "fbl@bounce.shop.test";

struct Service {
    _server: common::KillOnDrop,
    base: String,
    smtp: String,
    key: String,
    account: String,
    dir: tempfile::TempDir,
}

/// What the recipient's server received for one email.
struct Sent {
    id: String,
    lead: String,
    /// As received, without angle brackets.
    message_id: String,
    token: String,
    /// The token of the https unsubscribe link: valid, but made for another use.
    unsubscribe_token: String,
}

/// The service, with a sending protection that pauses an account at its first complaint.
fn start(sink: &Sink) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "[outbound]\nhelo_name = \"mta.shop.test\"\nbounce_domain = \"bounce.shop.test\"\n\
             [outbound.routes]\n\"ok.test\" = \"{}\"\n\
             [protection]\nmin_sent = 1\nmax_complaint_rate = 0.0\nmax_bounce_rate = 1.0\n\
             check_interval = \"100ms\"\n",
            sink.address()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let env = [
        ("MAILTRAIL_CONFIG", config.to_str().unwrap()),
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
    ];
    let (account, key) = common::create_account(&env, "Shop");
    let (child, base, smtp) = common::serve_with_smtp(&env);
    Service {
        _server: common::KillOnDrop(child),
        base,
        smtp,
        key,
        account,
        dir,
    }
}

impl Service {
    /// Creates a lead for `to`, sends it an email and reads what the sink received.
    async fn send(&self, sink: &Sink, to: &str) -> Sent {
        let lead = json!({"email": to});
        let (_, lead) = common::call(
            reqwest::Method::POST,
            &self.base,
            &self.key,
            "/v1/leads",
            &lead,
        )
        .await;
        let email =
            json!({"to": to, "from": "sales@shop.test", "subject": "Offer", "text": "Hello"});
        let id = common::send_email(&self.base, &self.key, &email).await;
        let raw = common::received(sink, &id).await;
        let message = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let header = |name: &str| {
            message
                .header_raw(name)
                .unwrap_or_else(|| panic!("no {name} in {raw}"))
                .split_whitespace()
                .collect::<String>()
        };
        let unsubscribe = header("List-Unsubscribe");
        let unsubscribe_token = unsubscribe
            .split_once("/u/")
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(token, _)| token.to_owned())
            .unwrap_or_else(|| panic!("no unsubscribe link in {unsubscribe}"));
        Sent {
            id,
            lead: lead["id"].as_str().unwrap().to_owned(),
            message_id: message.message_id().unwrap().to_owned(),
            token: header("X-Mailtrail-Token"),
            unsubscribe_token,
        }
    }

    async fn get(&self, path: &str) -> Value {
        common::get_json(&self.base, &self.key, path).await
    }

    /// Stage, reason, the lead's Permission to Email: what a report may change.
    async fn fate(&self, sent: &Sent) -> (Value, Value, Value) {
        let email = self.get(&format!("/v1/emails/{}", sent.id)).await;
        let lead = self.get(&format!("/v1/leads/{}", sent.lead)).await;
        (
            email["stage"].clone(),
            email["reason"].clone(),
            lead["permission_to_email"].clone(),
        )
    }

    async fn database(&self) -> sqlx::SqlitePool {
        let db = self.dir.path().join("data/mailtrail.db");
        sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
            .await
            .unwrap()
    }

    /// Waits until `count` inbound messages are processed; returns each one's state and
    /// note, oldest first.
    async fn processed(&self, count: usize) -> Vec<(String, Option<String>)> {
        let db = self.database().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rows: Vec<(String, Option<String>)> = sqlx::query_as(
                "SELECT state, note FROM inbound_messages ORDER BY received_at_ms, id",
            )
            .fetch_all(&db)
            .await
            .unwrap();
            let done = rows.len() == count && rows.iter().all(|(state, _)| state != "new");
            if done || Instant::now() > deadline {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The account's suppressed addresses and why.
    async fn suppressions(&self) -> Vec<(String, String)> {
        sqlx::query_as("SELECT address_key, reason FROM suppressions WHERE account_id = $1")
            .bind(&self.account)
            .fetch_all(&self.database().await)
            .await
            .unwrap()
    }
}

/// A feedback-loop abuse report with the recipient blanked out, returning `headers`.
fn arf(headers: &str) -> String {
    format!(
        "From: fbl@isp.test\r\nTo: {FBL}\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
         --F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n\
         --F\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: abuse\r\nUser-Agent: isp-fbl/1.0\r\nVersion: 1\r\n\r\n\
         --F\r\nContent-Type: message/rfc822\r\n\r\n\
         From: sales@shop.test\r\nTo: [redacted]\r\nSubject: Offer\r\n{headers}\r\nHello\r\n\r\n--F--\r\n"
    )
}

/// A DSN saying `recipient` does not exist (`Action: failed`, 5.1.1), returning `headers`.
fn dsn(recipient: &str, headers: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.ok.test (Mail Delivery System)\r\nTo: {FBL}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.ok.test\r\n\r\n\
         Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n\
         Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\n\
         From: sales@shop.test\r\nTo: {recipient}\r\nSubject: Offer\r\n{headers}\r\n--B--\r\n"
    )
}

/// `token` with one character changed.
fn altered(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    chars[20] = if chars[20] == 'a' { 'b' } else { 'a' };
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_without_a_verified_token_change_nothing() {
    let sink = Sink::start(&[]);
    let service = start(&sink);
    let ana = service.send(&sink, "ana@ok.test").await;
    let bo = service.send(&sink, "bo@ok.test").await;
    assert!(
        ana.message_id
            .starts_with(&format!("{}.{}@", ana.id, ana.token)),
        "the Message-ID carries the email id and its token: {}",
        ana.message_id
    );
    let before = (service.fate(&ana).await, service.fate(&bo).await);
    let delivered = (json!("delivered"), Value::Null, json!("yes"));
    assert_eq!(before, (delivered.clone(), delivered), "both delivered");

    let unsigned = |s: &Sent| format!("Message-ID: <{}@mta.shop.test>\r\n", s.id);
    let forgeries = [
        // (a) and (b): the public email id alone.
        arf(&unsigned(&ana)),
        dsn("bo@ok.test", &unsigned(&bo)),
        // (c): the genuine token with one character changed, in the Message-ID or the header.
        arf(&format!(
            "Message-ID: <{}.{}@mta.shop.test>\r\n",
            ana.id,
            altered(&ana.token)
        )),
        arf(&format!(
            "{}X-Mailtrail-Token: {}\r\n",
            unsigned(&ana),
            altered(&ana.token)
        )),
        dsn(
            "bo@ok.test",
            &format!(
                "Message-ID: <{}.{}@mta.shop.test>\r\nX-Mailtrail-Token: {}\r\n",
                bo.id,
                altered(&bo.token),
                altered(&bo.token)
            ),
        ),
        // A valid token made for another use (the unsubscribe link's).
        arf(&format!(
            "Message-ID: <{}.{}@mta.shop.test>\r\n",
            ana.id, ana.unsubscribe_token
        )),
    ];
    for forgery in &forgeries {
        deliver(&service.smtp, FBL, forgery).await;
    }
    let processed = service.processed(forgeries.len()).await;
    assert_eq!(processed.len(), forgeries.len(), "{processed:?}");
    for (state, note) in &processed {
        assert_eq!(state, "unmatched", "{processed:?}");
        assert!(
            note.is_some(),
            "an unmatched message says why: {processed:?}"
        );
    }
    // Longer than a few protection checks: a forged complaint must not pause the account.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        (service.fate(&ana).await, service.fate(&bo).await),
        before,
        "stage and Permission to Email unchanged"
    );
    assert_eq!(service.suppressions().await, [], "nothing suppressed");
    assert_eq!(
        service.get("/v1/settings").await["sending_paused"],
        Value::Null
    );

    // (d) The genuine Message-ID, as the recipient's server received it, still matches.
    deliver(
        &service.smtp,
        FBL,
        &arf(&format!("Message-ID: <{}>\r\n", ana.message_id)),
    )
    .await;
    let processed = service.processed(forgeries.len() + 1).await;
    assert_eq!(processed.last().unwrap().0, "matched", "{processed:?}");
    assert_eq!(
        service.fate(&ana).await,
        (json!("unsubscribed"), json!("complaint"), json!("no"))
    );
    assert_eq!(
        service.suppressions().await,
        [("ana@ok.test".to_owned(), "complaint".to_owned())]
    );
    // And a verified complaint is what the sending protection counts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while service.get("/v1/settings").await["sending_paused"].is_null() {
        assert!(
            Instant::now() < deadline,
            "a verified complaint pauses sending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
