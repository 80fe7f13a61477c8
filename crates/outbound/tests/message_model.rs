//! The message model real senders use, through the real worker to Postfix's smtp-sink: a
//! template with a display name, Cc (and the Cc recipient's own copy), custom headers, files
//! and an inline image; and a message as an app submits it over SMTP — written by Python's
//! own `email` package, as Django's `send_mail` writes one — delivered with its structure
//! intact, tracked, and DKIM-signed so that dkimpy (PyPI) verifies it against the key
//! published in NSD.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Harness, config};
use mail_parser::{MessageParser, MimeHeaders};
use mailtrail_domain::{EmailAddress, Reason, Stage};
use mailtrail_outbound::dkim::{self, DkimKeyConfig, KeyAlgorithm};
use mailtrail_store::{Attachment, Content, QueueEntry, Submission};
use mailtrail_testkit::dns::Dns;
use mailtrail_testkit::smtp_sink::Sink;

const PYTHON: &str = "/opt/mailtrail-venv/bin/python";

fn python(script: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    assert!(
        std::path::Path::new(PYTHON).exists(),
        "{PYTHON} not found: run scripts/install-test-deps (it installs dkimpy there)"
    );
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python failed: {script}");
    output.stdout
}

/// Bytes that are not text, so only a faithful transfer brings them back.
fn binary(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// Queues `content` for `entries` and returns the email ids, in order.
async fn enqueue(h: &Harness, content: Content, entries: Vec<QueueEntry>) -> Vec<String> {
    let submission = Submission {
        content,
        batch: Some("autumn".into()),
        send_at_ms: None,
        entries,
    };
    h.store
        .enqueue(&h.account, &submission, None, |_| String::new())
        .await
        .unwrap()
}

fn entry(to: &str, header_to: Option<&str>) -> QueueEntry {
    QueueEntry {
        to: EmailAddress::parse(to).unwrap(),
        lead_id: None,
        fields: BTreeMap::new(),
        dropped: None,
        header_to: header_to.map(str::to_owned),
    }
}

/// The message the sink received for `rcpt`, waiting for it at most 10 s.
async fn received(sink: &Sink, rcpt: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let marker = format!("X-Rcpt-Args: <{rcpt}>");
        if let Some(message) = sink.messages().into_iter().find(|m| m.contains(&marker)) {
            return message;
        }
        assert!(Instant::now() < deadline, "nothing arrived for {rcpt}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The MIME type of a part, `type/subtype`.
fn mime_type(part: &mail_parser::MessagePart<'_>) -> String {
    part.content_type()
        .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_template_with_cc_headers_files_and_an_inline_image_arrives_as_sent() {
    let sink = Sink::start(&[]);
    let h = Harness::start(
        config(&[("ok.test", &sink.address()), ("cc.test", &sink.address())]),
        &[],
    )
    .await;
    let pdf = binary(7, 70_000);
    let png = binary(99, 3_000);
    let csv = "name;city\nAna;Málaga\r\n.\nlast line without a break".as_bytes();
    let content = Content {
        from: "sales@shop.test".into(),
        from_name: Some("Ana Pérez".into()),
        subject: "Your offer".into(),
        text: Some("See the offer.".into()),
        html: Some("<p>See the offer <img src=\"cid:logo@shop.test\"></p>".into()),
        cc: vec!["Bo Li <bo@cc.test>".into()],
        headers: vec![("X-Campaign".into(), "autumn-2026".into())],
        attachments: Arc::from(vec![
            Attachment {
                filename: "oferta otoño.pdf".into(),
                content_type: "application/pdf".into(),
                content_id: None,
                data: pdf.clone(),
            },
            Attachment {
                filename: "prices.csv".into(),
                content_type: "text/csv".into(),
                content_id: None,
                data: csv.to_vec(),
            },
            Attachment {
                filename: "logo.png".into(),
                content_type: "image/png".into(),
                content_id: Some("logo@shop.test".into()),
                data: png.clone(),
            },
        ]),
        ..Content::default()
    };
    let ids = enqueue(
        &h,
        content,
        vec![
            entry("ana@ok.test", None),
            entry("bo@cc.test", Some("ana@ok.test")),
        ],
    )
    .await;
    for (id, rcpt) in ids.iter().zip(["ana@ok.test", "bo@cc.test"]) {
        assert_eq!(h.settled(id).await.stage, Stage::Delivered, "{rcpt}");
        let raw = received(&sink, rcpt).await;
        let message = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let from = message.from().and_then(|f| f.first()).unwrap();
        assert_eq!(
            (from.name(), from.address()),
            (Some("Ana Pérez"), Some("sales@shop.test"))
        );
        // Both copies show the same To and Cc: the Cc recipient's is not addressed to them.
        let to: Vec<_> = message.to().unwrap().iter().map(|a| a.address()).collect();
        assert_eq!(to, [Some("ana@ok.test")], "{rcpt}");
        let cc = message.cc().and_then(|c| c.first()).unwrap();
        assert_eq!(
            (cc.name(), cc.address()),
            (Some("Bo Li"), Some("bo@cc.test"))
        );
        assert_eq!(
            message.header_raw("X-Campaign").map(str::trim),
            Some("autumn-2026")
        );
        let attachment = |name: &str| {
            message
                .attachments()
                .find(|a| a.attachment_name() == Some(name))
                .unwrap_or_else(|| panic!("{name} in {raw}"))
        };
        assert_eq!(attachment("oferta otoño.pdf").contents(), &pdf[..]);
        assert_eq!(attachment("prices.csv").contents(), csv);
        let logo = attachment("logo.png");
        assert_eq!(logo.contents(), &png[..]);
        assert_eq!(logo.content_id(), Some("logo@shop.test"));
        let related = message
            .parts
            .iter()
            .find(|p| mime_type(p) == "multipart/related")
            .unwrap_or_else(|| panic!("no multipart/related in {raw}"));
        let members: Vec<String> = related
            .sub_parts()
            .unwrap()
            .iter()
            .map(|id| mime_type(&message.parts[*id as usize]))
            .collect();
        assert_eq!(members, ["text/html", "image/png"]);
        assert_eq!(mime_type(&message.parts[0]), "multipart/mixed");
        assert!(message.body_html(0).unwrap().contains("cid:logo@shop.test"));
    }
    h.stop().await;
}

/// Writes the message Django's `EmailMultiAlternatives` makes, with Python's `email` package:
/// a base64 text part, a quoted-printable HTML part with an inline image, a PDF, and the Bcc
/// and Mailtrail headers an app sets. The attachments' bytes come on stdin.
const SUBMITTED: &str = r#"
import sys
from email.message import EmailMessage
from email.policy import SMTP
data = sys.stdin.buffer.read()
split = int(sys.argv[1])
pdf, png = data[:split], data[split:]
m = EmailMessage()
m["From"] = "Ana Pérez <ana@shop.test>"
m["To"] = "bo@ok.test"
m["Bcc"] = "secret@shop.test"
m["Subject"] = "Precios de otoño"
m["Message-ID"] = "<django.1@app.shop.test>"
m["Reply-To"] = "ventas@shop.test"
m["X-Mailtrail-Tags"] = "autumn"
m.set_content("Hola, mira https://shop.test/oferta ahora. Año nuevo.\n", cte="base64")
m.add_alternative(
    '<html><body><p>Hola, mira la <a href="https://shop.test/oferta">oferta</a> '
    '<img src="cid:logo@shop.test"> de otoño.</p></body></html>\n',
    subtype="html", cte="quoted-printable")
m.get_payload()[1].add_related(png, maintype="image", subtype="png", cid="<logo@shop.test>")
m.add_attachment(pdf, maintype="application", subtype="pdf", filename="oferta.pdf")
sys.stdout.buffer.write(m.as_bytes(policy=SMTP))
"#;

/// dkimpy's verdict on each DKIM-Signature of the message on stdin, the keys asked of the
/// DNS server on 127.0.0.1:PORT.
const VERIFY: &str = r#"
import sys, dkim, dns.message, dns.query
port = int(sys.argv[1])
def txt(name, timeout=5):
    query = dns.message.make_query(name.decode(), "TXT")
    answer = dns.query.udp(query, "127.0.0.1", port=port, timeout=timeout)
    for rrset in answer.answer:
        for record in rrset:
            return b"".join(record.strings)
    return None
message = dkim.DKIM(sys.stdin.buffer.read())
count = sum(1 for name, _ in message.headers if name.lower() == b"dkim-signature")
print(" ".join("pass" if message.verify(idx=i, dnsfunc=txt) else "fail" for i in range(count)))
"#;

#[tokio::test]
async fn a_submitted_message_keeps_its_structure_is_tracked_and_verifies_with_dkimpy() {
    let sink = Sink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let pair = dkim::generate(KeyAlgorithm::Rsa).unwrap();
    let key = dir.path().join("shop.pem");
    std::fs::write(&key, &pair.private_key_pem).unwrap();
    let record: Vec<String> = format!("v=DKIM1; k=rsa; p={}", pair.public_key_b64)
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", std::str::from_utf8(c).unwrap()))
        .collect();
    let dns = Dns::start(&[(
        "shop.test",
        &format!("mt1._domainkey IN TXT {}\n", record.join(" ")),
    )]);
    let mut config = config(&[("ok.test", &sink.address())]);
    config.dkim.insert(
        "shop.test".into(),
        DkimKeyConfig {
            selector: "mt1".into(),
            private_key: key,
        },
    );
    let h = Harness::start(config, &[dns.address]).await;
    let mut settings = h.store.settings(&h.account).await.unwrap();
    settings.open_tracking = true;
    settings.click_tracking = true;
    settings.tracking_base_url = Some("https://t.shop.test".into());
    h.store.save_settings(&h.account, &settings).await.unwrap();

    let pdf = binary(3, 50_000);
    let png = binary(42, 2_000);
    let raw = python(
        SUBMITTED,
        &[&pdf.len().to_string()],
        &[pdf.as_slice(), png.as_slice()].concat(),
    );
    let content = |raw: Vec<u8>| Content {
        from: "ana@shop.test".into(),
        from_name: Some("Ana Pérez".into()),
        subject: "Precios de otoño".into(),
        reply_to: Some("ventas@shop.test".into()),
        raw: Some(raw.into()),
        ..Content::default()
    };
    let ids = enqueue(&h, content(raw.clone()), vec![entry("bo@ok.test", None)]).await;
    assert_eq!(h.settled(&ids[0]).await.stage, Stage::Delivered);
    let received = received(&sink, "bo@ok.test").await;
    // smtp-sink's dump: its own trace lines, then the message with LF line ends.
    let message_start = received.find("DKIM-Signature:").unwrap();
    let delivered = &received[message_start..];
    assert_eq!(
        String::from_utf8(python(
            VERIFY,
            &[&dns.address.port().to_string()],
            delivered.as_bytes()
        ))
        .unwrap()
        .trim(),
        "pass",
        "{delivered}"
    );

    let message = MessageParser::default()
        .parse(delivered.as_bytes())
        .unwrap();
    let from = message.from().and_then(|f| f.first()).unwrap();
    assert_eq!(from.name(), Some("Ana Pérez"));
    assert!(message.header("Bcc").is_none(), "{delivered}");
    assert!(!delivered.contains("secret@shop.test"));
    assert!(message.header_raw("X-Mailtrail-Tags").is_none());
    assert!(
        message
            .message_id()
            .is_some_and(|id| id.starts_with(&format!("{}.", ids[0]))),
        "{delivered}"
    );
    assert!(
        message
            .reply_to()
            .and_then(|r| r.first())
            .and_then(|a| a.address())
            .is_some_and(|a| a.starts_with("reply+")),
        "{delivered}"
    );
    assert!(message.header_raw("List-Unsubscribe").is_some());
    // Every attachment comes back as sent, and the image keeps its Content-ID.
    assert_eq!(message.attachment_count(), 2, "{delivered}");
    let pdf_part = message
        .attachments()
        .find(|a| a.attachment_name() == Some("oferta.pdf"))
        .unwrap();
    assert_eq!(pdf_part.contents(), &pdf[..]);
    let logo = message
        .attachments()
        .find(|a| a.content_id() == Some("logo@shop.test"))
        .unwrap();
    assert_eq!(logo.contents(), &png[..]);
    // Untouched parts are the sender's bytes (line ends as the sink writes them).
    let original = MessageParser::default().parse(&raw).unwrap();
    for part in original.parts.iter().filter(|p| p.is_binary()) {
        let block =
            String::from_utf8_lossy(&raw[part.offset_header as usize..part.offset_end as usize])
                .replace("\r\n", "\n");
        assert!(delivered.contains(&block), "{block}");
    }
    // The link, in the base64 text and the quoted-printable HTML alike, is a redirect; the
    // text is still Python's UTF-8 Spanish.
    let html = message.body_html(0).unwrap();
    let text = message.body_text(0).unwrap();
    assert!(
        !html.contains("href=\"https://shop.test/oferta\""),
        "{html}"
    );
    assert!(html.contains("href=\"https://t.shop.test/c/"), "{html}");
    assert!(html.contains("de otoño") && html.contains("/o/"), "{html}");
    assert!(
        text.starts_with("Hola, mira https://t.shop.test/c/"),
        "{text}"
    );
    assert!(text.contains("Año nuevo."), "{text}");
    assert_eq!(
        h.store.link(&ids[0], 0).await.unwrap().as_deref(),
        Some("https://shop.test/oferta")
    );

    // A stored message that is not one fails with why; the next is still delivered.
    let ids = enqueue(
        &h,
        content(b"\x00\x01 no headers at all".to_vec()),
        vec![entry("cy@ok.test", None)],
    )
    .await;
    let failed = h.settled(&ids[0]).await;
    assert_eq!(
        (failed.stage, failed.reason),
        (Stage::Failed, Some(Reason::ContentError))
    );
    assert!(
        failed
            .status
            .as_deref()
            .is_some_and(|s| s.contains("cannot be built")),
        "{:?}",
        failed.status
    );
    h.stop().await;
}

/// A person's reply, stored and matched to `email_id` as the inbound processor does, then
/// marked for forwarding.
async fn reply_to(h: &Harness, email_id: &str, text: &str) {
    let raw = format!(
        "From: Bo <bo@ok.test>\r\nTo: reply+x@mta.mailtrail.test\r\nSubject: Re: Offer\r\n\r\n{text}\r\n"
    );
    let id = h
        .store
        .save_inbound(
            "bo@ok.test",
            &["reply+x@mta.mailtrail.test".into()],
            raw.as_bytes(),
        )
        .await
        .unwrap();
    let processed = mailtrail_store::Processed {
        state: "matched",
        kind: "reply".into(),
        account_id: Some(h.account.clone().into()),
        email_id: Some(email_id.to_owned().into()),
        note: None,
    };
    h.store.finish_inbound(&id, &processed).await.unwrap();
    h.store.queue_forward(&id).await.unwrap();
}

#[tokio::test]
async fn replies_are_forwarded_to_the_senders_reply_to_unless_the_account_says_where() {
    let sink = Sink::start(&[]);
    let config = config(&[
        ("sales.test", &sink.address()),
        ("shop.test", &sink.address()),
        ("crm.test", &sink.address()),
    ]);
    let h = Harness::start(config.clone(), &[]).await;
    let forwarder =
        mailtrail_outbound::forward::Forwarder::new(h.store.clone(), config, &[]).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let forwarding = tokio::spawn(forwarder.run(async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    }));
    let content = |reply_to: Option<&str>| Content {
        from: "ana@shop.test".into(),
        subject: "Offer".into(),
        text: Some("Hi".into()),
        reply_to: reply_to.map(str::to_owned),
        ..Content::default()
    };
    let with_reply_to = enqueue(
        &h,
        content(Some("Ventas <ventas@sales.test>")),
        vec![entry("bo@ok.test", None)],
    )
    .await;
    let without = enqueue(&h, content(None), vec![entry("bo@ok.test", None)]).await;
    reply_to(&h, &with_reply_to[0], "To the Reply-To, please.").await;
    reply_to(&h, &without[0], "To the sender, please.").await;
    let forwarded = received(&sink, "ventas@sales.test").await;
    assert!(
        forwarded.contains("To the Reply-To, please."),
        "{forwarded}"
    );
    assert!(
        forwarded.contains("Auto-Submitted: auto-forwarded"),
        "{forwarded}"
    );
    let forwarded = received(&sink, "ana@shop.test").await;
    assert!(forwarded.contains("To the sender, please."), "{forwarded}");

    // The account's own address wins over both.
    h.store
        .set_reply_forward_to(&h.account, Some("crm@crm.test"))
        .await
        .unwrap();
    reply_to(&h, &with_reply_to[0], "To the CRM, please.").await;
    let forwarded = received(&sink, "crm@crm.test").await;
    assert!(forwarded.contains("To the CRM, please."), "{forwarded}");
    stop.send(true).unwrap();
    forwarding.await.unwrap();
    h.stop().await;
}
