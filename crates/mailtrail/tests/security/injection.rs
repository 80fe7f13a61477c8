//! Header and body injection (issue 16, items 2 and 3). A merge value holding CR LF — from
//! API `fields`, a batch recipient's `fields`, a lead's name set through the API, a custom
//! field from a CSV import — and a lead's reply whose encoded Subject or From decodes to CR
//! LF, each replayed against the running service: the raw message at smtp-sink (real SMTP)
//! has exactly one From, To and Subject, and its body is the sender's.

use std::process::Command;
use std::time::{Duration, Instant};

use mail_parser::{HeaderName, MessageParser};
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::{Value, json};

use crate::common::{self, KillOnDrop};

const PAYLOAD: &str = "Ana\r\nFrom: ceo@bank.example\r\nTo: x@evil.example\r\n\r\nNEW BODY";
/// The payload as one header line: every run of control characters is one space.
const PAYLOAD_ONE_LINE: &str = "Ana From: ceo@bank.example To: x@evil.example NEW BODY";
const BODY: &str = "The offer stands until Friday.";

/// The service mailing every domain to one sink, its inbound listener on plain SMTP.
struct Service {
    sink: Sink,
    dir: tempfile::TempDir,
    account: String,
    key: String,
    base: String,
    smtp: String,
    _child: KillOnDrop,
}

impl Service {
    fn start() -> Self {
        let sink = Sink::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("mailtrail.toml");
        std::fs::write(
            &config,
            format!(
                "[outbound]\nhelo_name = \"mta.shop.test\"\nbounce_domain = \"bounce.shop.test\"\n\
                 [outbound.routes]\n\"*\" = \"{}\"\n",
                sink.address()
            ),
        )
        .unwrap();
        let env = self::env(&dir);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (account, key) = common::create_account(&env, "Shop");
        let (child, base, smtp) = common::serve_with_smtp(&env);
        Service {
            sink,
            dir,
            account,
            key,
            base,
            smtp,
            _child: KillOnDrop(child),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        common::call(reqwest::Method::POST, &self.base, &self.key, path, body).await
    }

    /// `mailtrail lead import` of `csv`, as an operator runs it.
    fn import(&self, csv: &str) {
        let file = self.dir.path().join("leads.csv");
        std::fs::write(&file, csv).unwrap();
        let env = env(&self.dir);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let output = common::mailtrail(&env)
            .args(["lead", "import"])
            .arg(&file)
            .args(["--account", &self.account])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "lead import failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Delivers `message` to the inbound listener with swaks, as a remote mail server would.
    fn deliver(&self, to: &str, message: &str) {
        let file = self.dir.path().join("reply.eml");
        std::fs::write(&file, message).unwrap();
        let (host, port) = self.smtp.rsplit_once(':').unwrap();
        let output = Command::new("swaks")
            .args([
                "--server", host, "--port", port, "--from", "", "--to", to, "--data",
            ])
            .arg(&file)
            .output()
            .expect("swaks is installed (scripts/install-test-deps)");
        let transcript = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "swaks failed:\n{transcript}");
    }
}

fn env(dir: &tempfile::TempDir) -> [(&'static str, String); 2] {
    [
        (
            "MAILTRAIL_CONFIG",
            dir.path().join("mailtrail.toml").display().to_string(),
        ),
        (
            "MAILTRAIL_DATA_DIR",
            dir.path().join("data").display().to_string(),
        ),
    ]
}

/// The message's top-level header names as written (unfolded), smtp-sink's own `X-` lines
/// included: a header injected by a CR LF is a line of its own here, and an injected empty
/// line ends the headers. (smtp-sink writes its dumps with LF line ends.)
fn header_names(raw: &str) -> Vec<String> {
    let raw = raw.replace("\r\n", "\n");
    let head = raw.split("\n\n").next().unwrap_or_default();
    head.lines()
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter_map(|line| {
            line.split_once(':')
                .map(|(name, _)| name.to_ascii_lowercase())
        })
        .collect()
}

/// Asserts `raw` has exactly one of each of `names` and none of `absent`.
fn assert_headers(raw: &str, names: &[&str], absent: &[&str]) {
    let found = header_names(raw);
    for name in names {
        let count = found.iter().filter(|n| n == name).count();
        assert_eq!(count, 1, "{count} '{name}' headers in:\n{raw}");
    }
    for name in absent {
        assert!(
            !found.iter().any(|n| n == name),
            "a '{name}' header in:\n{raw}"
        );
    }
}

/// The message at the sink that contains `needle`, waiting up to 10 s for it.
async fn arrived(sink: &Sink, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(message) = sink.messages().into_iter().find(|m| m.contains(needle)) {
            return message;
        }
        assert!(Instant::now() < deadline, "the sink never got {needle}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn email(to: &str, subject: &str) -> Value {
    json!({"to": to, "from": "sales@shop.test", "subject": subject, "text": BODY})
}

#[tokio::test(flavor = "multi_thread")]
async fn cr_lf_in_any_merge_value_never_writes_a_header_or_a_body() {
    let service = Service::start();

    // A lead's first name through POST /v1/leads, another's through PATCH, and a custom field
    // from a CSV import (a quoted CSV cell may hold CR LF).
    let (status, _) = service
        .post(
            "/v1/leads",
            &json!({"email": "cy@ok.test", "first_name": PAYLOAD}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, lead) = service
        .post(
            "/v1/leads",
            &json!({"email": "di@ok.test", "first_name": "Di"}),
        )
        .await;
    assert_eq!(status, 201);
    let patched = reqwest::Client::new()
        .patch(format!(
            "{}/v1/leads/{}",
            service.base,
            lead["id"].as_str().unwrap()
        ))
        .bearer_auth(&service.key)
        .json(&json!({"first_name": PAYLOAD}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    service.import(&format!(
        "email,company\r\ned@ok.test,\"{}\"\r\n",
        PAYLOAD.replace('"', "\"\"")
    ));

    let mut ids = Vec::new();
    // API `fields` on a single send.
    let mut single = email("ana@ok.test", "Hello {{first_name}}");
    single["fields"] = json!({"first_name": PAYLOAD});
    ids.push((
        "API fields",
        common::send_email(&service.base, &service.key, &single).await,
    ));
    // A batch recipient's `fields`.
    let (status, batch) = service
        .post(
            "/v1/emails/batch",
            &json!({
                "from": "sales@shop.test", "subject": "Hello {{first_name}}", "text": BODY,
                "recipients": [{"to": "bo@ok.test", "fields": {"first_name": PAYLOAD}}],
            }),
        )
        .await;
    assert_eq!(status, 202, "{batch}");
    ids.push((
        "batch fields",
        batch["emails"][0]["id"].as_str().unwrap().to_owned(),
    ));
    for (path, to, subject) in [
        (
            "lead first_name by POST",
            "cy@ok.test",
            "Hello {{first_name}}",
        ),
        (
            "lead first_name by PATCH",
            "di@ok.test",
            "Hello {{first_name}}",
        ),
        ("CSV import custom field", "ed@ok.test", "Hello {{company}}"),
    ] {
        let id = common::send_email(&service.base, &service.key, &email(to, subject)).await;
        ids.push((path, id));
    }

    for (path, id) in ids {
        let raw = common::received(&service.sink, &id).await;
        assert_headers(&raw, &["from", "to", "subject"], &[]);
        let message = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let from = message
            .from()
            .and_then(|f| f.first())
            .and_then(|a| a.address());
        assert_eq!(from, Some("sales@shop.test"), "{path}:\n{raw}");
        assert_eq!(
            message.to().map(|t| t.iter().count()),
            Some(1),
            "{path}:\n{raw}"
        );
        assert_eq!(
            message.subject(),
            Some(format!("Hello {PAYLOAD_ONE_LINE}").as_str()),
            "{path}:\n{raw}"
        );
        let count = |name: HeaderName| message.headers().iter().filter(|h| h.name == name).count();
        assert_eq!(
            (
                count(HeaderName::From),
                count(HeaderName::To),
                count(HeaderName::Subject)
            ),
            (1, 1, 1),
            "{path}:\n{raw}"
        );
        // The sender's text, then Mailtrail's unsubscribe footer: nothing injected.
        let body = message.body_text(0).unwrap_or_default();
        assert!(
            body.starts_with(BODY) && !body.contains("NEW BODY"),
            "{path}: the body is the sender's:\n{raw}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subject_template_with_a_control_character_is_refused() {
    let service = Service::start();
    for subject in [
        "Hello\r\nBcc: x@evil.example",
        "Hello\nBcc: x@evil.example",
        "Hello\0there",
        "Hello\u{85}there",
        "Hello\u{2028}there",
    ] {
        let (status, problem) = service
            .post("/v1/emails", &email("ana@ok.test", subject))
            .await;
        assert_eq!(status, 422, "{subject:?}: {problem}");
        assert!(
            problem.to_string().contains("subject"),
            "{subject:?}: {problem}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lead_named_like_markup_arrives_as_text_in_the_html_part() {
    let service = Service::start();
    let name = "<img src=x onerror=alert(1)>";
    let sent = json!({
        "to": "ana@ok.test", "from": "sales@shop.test", "subject": "Hello {{first_name}}",
        "html": "<p>Hello {{first_name}}</p>", "fields": {"first_name": name},
    });
    let id = common::send_email(&service.base, &service.key, &sent).await;
    let raw = common::received(&service.sink, &id).await;
    let message = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let html = message.body_html(0).unwrap();
    assert!(
        html.contains("<p>Hello &lt;img src=x onerror=alert(1)&gt;</p>"),
        "{html}"
    );
    assert!(!html.contains("onerror=alert(1)>"), "{html}");
    // In the subject it is text too: one line, as written.
    assert_eq!(message.subject(), Some(format!("Hello {name}").as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reply_with_encoded_cr_lf_never_writes_a_header_into_the_forward() {
    let service = Service::start();
    let id = common::send_email(&service.base, &service.key, &email("ana@ok.test", "Offer")).await;
    let sent = common::received(&service.sink, &id).await;
    let sent = MessageParser::default().parse(sent.as_bytes()).unwrap();
    let reply_to = sent
        .reply_to()
        .and_then(|r| r.first())
        .and_then(|a| a.address())
        .expect("the email has a Reply-To")
        .to_owned();

    service.deliver(
        &reply_to,
        &format!(
            "From: =?utf-8?Q?Ana=0D=0ABcc:_victim@x.example=0D=0AX-Evil:_1?= <ana@ok.test>\r\n\
             To: {reply_to}\r\n\
             Subject: =?utf-8?Q?Hi=0D=0ABcc:_victim@x.example=0D=0A=0D=0ANEW_BODY?=\r\n\
             Message-ID: <reply-1@ok.test>\r\n\r\n\
             Yes, call me tomorrow.\r\n"
        ),
    );
    let forward = arrived(&service.sink, "Auto-Submitted: auto-forwarded").await;
    assert_headers(
        &forward,
        &["from", "to", "subject", "reply-to"],
        &["bcc", "x-evil"],
    );
    let message = MessageParser::default().parse(forward.as_bytes()).unwrap();
    let address = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_owned)
    };
    assert_eq!(address(message.to()).as_deref(), Some("sales@shop.test"));
    assert_eq!(address(message.reply_to()).as_deref(), Some("ana@ok.test"));
    assert_eq!(message.bcc(), None, "{forward}");
    let subject = message.subject().unwrap_or_default();
    assert!(!subject.contains(['\r', '\n']), "{subject:?}");
    assert!(
        subject.contains("Hi Bcc: victim@x.example NEW BODY"),
        "{subject:?}"
    );
    assert!(
        message
            .body_text(0)
            .is_some_and(|t| t.contains("Yes, call me tomorrow.")),
        "{forward}"
    );
}
