//! A server's own Postfix sending through Mailtrail, as a `relayhost` with SASL client
//! credentials and `smtp_tls_security_level = encrypt`: the testkit's private Postfix, fed by
//! its own `sendmail`, relays three messages to `mailtrail serve`'s submission listener
//! (STARTTLS, AUTH with a credential from `mailtrail smtp-credential create`), which delivers
//! them to smtp-sink as the recipients' server. Each must arrive with its display-name From and
//! its attachment byte for byte, without the `X-Mailtrail-*` headers that set its batch and
//! tags, and each email must reach `delivered` in the API with that batch and those tags.

mod common;

use std::time::{Duration, Instant};

use common::{KillOnDrop, create_account, get_json, mailtrail, serve_with_args};
use mail_parser::{MessageParser, MimeHeaders};
use mailtrail_testkit::postfix::Postfix;
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::Value;

/// The recipients' domain, routed to the sink.
const DOMAIN: &str = "customers.test";

/// A credential made with `mailtrail smtp-credential create --account ID --json`.
fn smtp_credential(env: &[(&str, &str)], account: &str) -> (String, String) {
    let output = mailtrail(env)
        .args(["smtp-credential", "create", "--account", account, "--json"])
        .output()
        .expect("mailtrail smtp-credential create runs");
    assert!(
        output.status.success(),
        "smtp-credential create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let field = |key: &str| {
        created[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {created}"))
            .to_owned()
    };
    (field("username"), field("password"))
}

/// Bytes no text encoding would leave alone: every byte value, then a pseudo-random tail.
fn attachment_bytes() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    let mut x: u32 = 0x2545_f491;
    for _ in 0..5000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push(x as u8);
    }
    bytes
}

/// Base64 with 76-character lines, as a mail client writes an attachment.
fn base64_lines(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            encoded.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    encoded
        .as_bytes()
        .chunks(76)
        .map(|line| format!("{}\r\n", std::str::from_utf8(line).expect("ASCII")))
        .collect()
}

/// Message `n` as an application would hand it to sendmail; the first has an attachment.
fn message(n: usize, attachment: &[u8]) -> String {
    let head = format!(
        "From: \"Sales Team, Shop\" <sales@shop.test>\r\nTo: Customer {n} <c{n}@{DOMAIN}>\r\n\
         Subject: Relayed {n}\r\nX-Mailtrail-Batch: relayed-batch\r\n\
         X-Mailtrail-Tags: postfix, order-{n}\r\nMIME-Version: 1.0\r\n"
    );
    if n > 0 {
        return format!(
            "{head}Content-Type: text/plain; charset=utf-8\r\n\r\nHello customer {n}.\r\n"
        );
    }
    format!(
        "{head}Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n\
         --b0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour invoice is attached.\r\n\
         --b0\r\nContent-Type: application/octet-stream; name=\"invoice.bin\"\r\n\
         Content-Disposition: attachment; filename=\"invoice.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}--b0--\r\n",
        base64_lines(attachment)
    )
}

/// Polls the account's email report until `count` rows are delivered; returns the rows.
async fn delivered(base: &str, key: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = get_json(base, key, "/v1/reports/emails?limit=100").await;
        let rows = report["emails"].as_array().cloned().unwrap_or_default();
        if rows.len() == count && rows.iter().all(|r| r["stage"] == "delivered") {
            return rows;
        }
        assert!(Instant::now() < deadline, "not all delivered: {report}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postfix_with_a_relayhost_sends_through_submission() {
    let sink = Sink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let (certificate, key_file) =
        mailtrail_testkit::self_signed_certificate(dir.path(), "submit.shop.test");
    let port = mailtrail_testkit::free_port();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "[submission]\nlisten = \"127.0.0.1:{port}\"\ntls_certificate = {:?}\n\
             tls_key = {:?}\n",
            certificate.display().to_string(),
            key_file.display().to_string()
        ),
    )
    .unwrap();
    let routes = format!("{DOMAIN}={}", sink.address());
    let env = [
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
        ("MAILTRAIL_OUTBOUND_ROUTES", routes.as_str()),
    ];
    let (account, key) = create_account(&env, "Relayed");
    let login = smtp_credential(&env, &account);
    let (child, base, _) = serve_with_args(&env, &["--config", config.to_str().unwrap()]);
    let _serve = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "no submission listener on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let postfix = Postfix::start_relay_client(&format!("127.0.0.1:{port}"), (&login.0, &login.1));
    let attachment = attachment_bytes();
    for n in 0..3 {
        postfix.sendmail(
            "sales@shop.test",
            &[&format!("c{n}@{DOMAIN}")],
            message(n, &attachment).as_bytes(),
        );
    }

    let rows = delivered(&base, &key, 3).await;
    let log = postfix.log();
    assert!(log.contains("TLS connection established"), "{log}");
    assert_eq!(log.matches("status=sent").count(), 3, "{log}");
    for n in 0..3 {
        let subject = format!("Relayed {n}");
        let row = rows
            .iter()
            .find(|r| r["subject"] == subject.as_str())
            .unwrap_or_else(|| panic!("no email {subject:?} in {rows:?}"));
        assert_eq!(row["to"], format!("c{n}@{DOMAIN}"), "{row}");
        assert_eq!(row["batch"], "relayed-batch", "{row}");
        let email = get_json(
            &base,
            &key,
            &format!("/v1/emails/{}", row["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(
            email["tags"],
            serde_json::json!(["postfix", format!("order-{n}")]),
            "{email}"
        );

        let raw = sink
            .messages()
            .into_iter()
            .find(|m| m.contains(&format!("Subject: {subject}")))
            .unwrap_or_else(|| panic!("the sink never got {subject:?}"));
        let headers = &raw[..raw.find("\r\n\r\n").or(raw.find("\n\n")).unwrap()];
        let lower = headers.to_ascii_lowercase();
        // The headers that set batch and tags are cut; Mailtrail's own are added: its
        // tracked Message-ID (the email's id) and the unsubscribe headers.
        assert!(
            !lower.contains("x-mailtrail-batch") && !lower.contains("x-mailtrail-tags"),
            "{headers}"
        );
        let id = row["id"].as_str().unwrap();
        assert!(
            headers.contains(&format!("Message-ID: <{id}.")),
            "{headers}"
        );
        assert!(lower.contains("\nlist-unsubscribe: <http"), "{headers}");
        assert!(
            lower.contains("\nlist-unsubscribe-post: list-unsubscribe=one-click"),
            "{headers}"
        );
        let parsed = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let from = parsed.from().and_then(|f| f.first()).unwrap();
        assert_eq!(from.name(), Some("Sales Team, Shop"), "{headers}");
        assert_eq!(from.address(), Some("sales@shop.test"), "{headers}");
        if n == 0 {
            let file = parsed
                .attachments()
                .find(|a| a.attachment_name() == Some("invoice.bin"))
                .unwrap_or_else(|| panic!("no invoice.bin in {raw}"));
            assert!(
                file.contents() == attachment.as_slice(),
                "the attachment changed on the way"
            );
        }
    }
}
