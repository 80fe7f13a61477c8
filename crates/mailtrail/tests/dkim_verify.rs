//! DKIM as a receiver checks it, by a verifier no one here wrote: sending domains are set up
//! exactly as `POST /v1/domains` says (every record it answers, published in NSD), mail goes
//! out through the real binary to smtp-sink, and dkimpy (PyPI, in /opt/mailtrail-venv from
//! `scripts/install-test-deps`) verifies each captured message, asking that NSD for the keys.
//! Then the message is tampered with as a forwarder or an attacker would, and the one-click
//! unsubscribe of its signed List-Unsubscribe is used.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{KillOnDrop, serve_with_args};
use mailtrail_testkit::dns::Dns;
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::{Value, json};

const PYTHON: &str = "/opt/mailtrail-venv/bin/python";

/// Verifies every DKIM-Signature of the message on stdin with dkimpy, the keys asked of the
/// DNS server on 127.0.0.1:PORT; prints `pass` or `fail` for each, in header order.
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

/// dkimpy's verdict on each signature of `raw`.
fn dkimpy(dns: &Dns, raw: &str) -> String {
    assert!(
        std::path::Path::new(PYTHON).exists(),
        "{PYTHON} not found: run scripts/install-test-deps (it installs dkimpy there)"
    );
    let mut child = Command::new(PYTHON)
        .args(["-c", VERIFY, &dns.address.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "dkimpy failed to run");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A zone file body holding every record the API said to publish under `zone`: TXT values in
/// strings of at most 255 characters, as its description says, names absolute.
fn zone_body(domains: &[&Value], zone: &str) -> String {
    let mut body = String::new();
    for domain in domains {
        for record in domain["records"].as_array().unwrap() {
            let name = record["name"].as_str().unwrap();
            let value = record["value"].as_str().unwrap();
            if !name.ends_with(zone) {
                continue;
            }
            match record["type"].as_str().unwrap() {
                "TXT" => {
                    let strings: Vec<String> = value
                        .as_bytes()
                        .chunks(255)
                        .map(|c| format!("\"{}\"", std::str::from_utf8(c).unwrap()))
                        .collect();
                    body.push_str(&format!("{name}. IN TXT {}\n", strings.join(" ")));
                }
                "MX" => body.push_str(&format!("{name}. IN MX {value}.\n")),
                other => panic!("a {other} record to publish: {record}"),
            }
        }
    }
    body
}

/// The names in the `h=` of each DKIM-Signature of `raw`, lower-case, and its `a=`.
fn signed_headers(raw: &str) -> Vec<(String, Vec<String>)> {
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    message
        .header_values("DKIM-Signature")
        .map(|value| {
            let text: String = value
                .as_text()
                .unwrap()
                .split_whitespace()
                .collect::<String>();
            let tag = |name: &str| {
                text.split(';')
                    .find_map(|t| t.strip_prefix(&format!("{name}=")))
                    .unwrap_or_else(|| panic!("no {name}= in {text}"))
                    .to_owned()
            };
            let h = tag("h")
                .to_ascii_lowercase()
                .split(':')
                .map(str::to_owned)
                .collect();
            (tag("a"), h)
        })
        .collect()
}

async fn post(base: &str, key: &str, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn dkimpy_verifies_what_the_domain_check_says_to_publish_and_nothing_can_be_added() {
    let sink = Sink::start(&[]);
    let mut dns = Dns::start(&[("shop.test", ""), ("news.test", "")]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // SMTP submission too, for the message an app submits (the last case).
    let (certificate, tls_key) =
        mailtrail_testkit::self_signed_certificate(dir.path(), "submit.shop.test");
    let submission = mailtrail_testkit::free_port();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "[submission]\nlisten = \"127.0.0.1:{submission}\"\ntls_certificate = {:?}\n\
             tls_key = {:?}\n",
            certificate.display().to_string(),
            tls_key.display().to_string()
        ),
    )
    .unwrap();
    let env = [
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap().to_owned()),
        (
            "MAILTRAIL_OUTBOUND_ROUTES",
            format!("ok.test={}", sink.address()),
        ),
        ("MAILTRAIL_DNS_SERVERS", format!("[{}]", dns.address)),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (account, key) = common::create_account(&env, "Shop");
    let (child, base, _) = serve_with_args(&env, &["--config", config.to_str().unwrap()]);
    let _service = KillOnDrop(child);
    let patch = reqwest::Client::new()
        .patch(format!("{base}/v1/settings"))
        .bearer_auth(&key)
        .json(&json!({"open_tracking": true, "click_tracking": true, "tracking_base_url": base}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);

    // The default, and an Ed25519 signature beside the RSA one.
    let (status, shop) = post(&base, &key, "/v1/domains", json!({"domain": "shop.test"})).await;
    assert_eq!(status, 201, "{shop}");
    assert_eq!(shop["algorithm"], "rsa", "RSA-2048 by default");
    let (status, news) = post(
        &base,
        &key,
        "/v1/domains",
        json!({"domain": "news.test", "algorithm": "rsa+ed25519"}),
    )
    .await;
    assert_eq!(status, 201, "{news}");
    dns.restart(&[
        ("shop.test", &zone_body(&[&shop], "shop.test")),
        ("news.test", &zone_body(&[&news], "news.test")),
    ]);
    for domain in ["shop.test", "news.test"] {
        let (status, checked) = post(
            &base,
            &key,
            &format!("/v1/domains/{domain}/verify"),
            json!({}),
        )
        .await;
        assert_eq!(status, 200, "{checked}");
        assert_eq!(checked["verified"], true, "{checked}");
    }

    let cases = [
        ("sales@shop.test", vec!["rsa-sha256"], "pass"),
        (
            "news@news.test",
            vec!["rsa-sha256", "ed25519-sha256"],
            "pass pass",
        ),
    ];
    for (from, algorithms, verdict) in cases {
        // Each to its own recipient: the first one unsubscribes below.
        let to = from.replace('@', ".").replace(".test", "@ok.test");
        let email = json!({"to": to, "from": from, "subject": "Offer",
                           "batch": "Spring: sale\r\nBcc: x",
                           "html": "<p>See <a href=\"https://shop.example/offer\">the offer</a></p>",
                           "text": "See the offer"});
        let id = common::send_email(&base, &key, &email).await;
        let raw = common::received(&sink, &id).await;
        assert_eq!(dkimpy(&dns, &raw), verdict, "{from}: {raw}");
        assert!(
            raw.contains(&format!(
                "\nFeedback-ID: Spring__sale__Bcc__x:{account}:mailtrail:mt\r\n"
            )) || raw.contains(&format!(
                "\nFeedback-ID: Spring__sale__Bcc__x:{account}:mailtrail:mt\n"
            )),
            "{raw}"
        );

        let signatures = signed_headers(&raw);
        let kinds: Vec<&str> = signatures.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(kinds, algorithms, "{from}");
        for (_, h) in &signatures {
            let count = |name: &str| h.iter().filter(|n| *n == name).count();
            for (name, times) in [
                ("from", 2),
                ("to", 2),
                ("subject", 2),
                ("list-unsubscribe", 1),
                ("list-unsubscribe-post", 1),
                ("feedback-id", 1),
                ("message-id", 1),
                ("date", 1),
            ] {
                assert_eq!(count(name), times, "{name} in h={h:?}");
            }
        }

        // A header no signature covers may be added; a second From, To or Subject, or a Cc
        // the message did not have, breaks every signature. Each copy is added above the
        // original, where a verifier's bottom-up matching (RFC 6376 §5.4.2) would not reach it
        // without the over-signing; dkimpy checks a second From by itself, To and Subject
        // only as h= says.
        let all_fail = vec!["fail"; algorithms.len()].join(" ");
        let (head, body) = raw.split_once("Subject: Offer").unwrap();
        let tampered = [
            (format!("X-Scanned: yes\r\n{raw}"), verdict),
            (format!("From: ceo@bank.test\r\n{raw}"), &*all_fail),
            (
                raw.replacen("\nTo: ", "\nTo: eve@evil.test\r\nTo: ", 1),
                &*all_fail,
            ),
            (
                format!("{head}Subject: Urgent\r\nSubject: Offer{body}"),
                &*all_fail,
            ),
            (format!("Cc: eve@evil.test\r\n{raw}"), &*all_fail),
        ];
        for (message, expected) in tampered {
            assert_eq!(
                dkimpy(&dns, &message),
                expected,
                "{}",
                &message[..message.find("\r\n\r\n").unwrap_or(message.len())]
            );
        }

        // The signed one-click unsubscribe still works (RFC 8058).
        let parsed = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        let list_unsubscribe = parsed.header_raw("List-Unsubscribe").unwrap();
        let url = list_unsubscribe
            .split(['<', '>'])
            .find(|part| part.starts_with(&format!("{base}/u/")))
            .unwrap_or_else(|| panic!("no one-click URL in {list_unsubscribe}"));
        let done = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 200);
        let mut stage = Value::Null;
        for _ in 0..50 {
            stage =
                common::get_json(&base, &key, &format!("/v1/emails/{id}")).await["stage"].clone();
            if stage == "unsubscribed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(stage, "unsubscribed", "{from}");
    }

    // A message an app submits over SMTP with an attachment (Python's smtplib and email
    // package, as Django sends): delivered as the app wrote it, and signed so dkimpy verifies.
    let output = common::mailtrail(&env)
        .args(["smtp-credential", "create", "--account", &account, "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let credential: Value = serde_json::from_slice(&output.stdout).unwrap();
    let attachment: Vec<u8> = (0..=255u8).cycle().take(20_000).collect();
    let mut client = Command::new(PYTHON)
        .args(["-c", SUBMIT, &submission.to_string()])
        .args([&credential["username"], &credential["password"]].map(|v| v.as_str().unwrap()))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    client.stdin.take().unwrap().write_all(&attachment).unwrap();
    assert!(client.wait().unwrap().success(), "smtplib submits");
    let raw = common::received(&sink, "X-Rcpt-Args: <app@ok.test>").await;
    assert_eq!(dkimpy(&dns, &raw), "pass", "{raw}");
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    let part = message.attachments().next().unwrap();
    assert_eq!(part.contents(), &attachment[..]);
    // Tracked as this account's mail is: the link is a redirect, the unsubscribe link added.
    let text = message.body_text(0).unwrap();
    assert!(text.contains(&format!("{base}/c/")), "{text}");
    assert!(!text.contains("https://shop.example/invoices/7"), "{text}");
    assert!(text.contains(&format!("{base}/u/")), "{text}");
    assert_eq!(
        message
            .from()
            .and_then(|f| f.first())
            .and_then(|a| a.name()),
        Some("Shop Sales")
    );
}

/// Submits, over STARTTLS with the credential in argv, a message with the bytes on stdin
/// attached.
const SUBMIT: &str = r#"
import smtplib, ssl, sys
from email.message import EmailMessage
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
m = EmailMessage()
m["From"] = "Shop Sales <sales@shop.test>"
m["To"] = "app@ok.test"
m["Subject"] = "Your invoice"
m.set_content("Your invoice is attached: https://shop.example/invoices/7\n")
m.add_attachment(sys.stdin.buffer.read(), maintype="application", subtype="octet-stream",
                 filename="invoice.bin")
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
    smtp.starttls(context=context)
    smtp.login(user, password)
    smtp.send_message(m)
"#;
