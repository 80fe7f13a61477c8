//! SMTP submission end to end with clients no one here wrote: `mailtrail serve` with both
//! submission listeners (a self-signed certificate made by `openssl`), credentials from
//! `mailtrail smtp-credential create`, and smtp-sink as the recipients' server.
//!
//! - swaks over STARTTLS with AUTH LOGIN, a display-name From, an `X-Mailtrail-Tags` header
//!   and a binary attachment; and swaks over implicit TLS with AUTH PLAIN;
//! - Python's smtplib as Django's SMTP backend uses it (STARTTLS, login, a message with Cc
//!   and an attachment): the To and the Cc address each become a delivered email;
//! - every refusal with its code (a From domain the account may not use among them), and
//!   nothing queued; `smtp-credential list` and `revoke`;
//!   the lockout of a client address after five failed logins.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{KillOnDrop, create_account, get_json, mailtrail, serve_with_args};
use mail_parser::{MessageParser, MimeHeaders};
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::Value;

struct Service {
    _serve: KillOnDrop,
    base: String,
    key: String,
    starttls: String,
    implicit: String,
    username: String,
    password: String,
    /// The credential's id, and the account's.
    credential: String,
    account: String,
    /// The configuration the CLI needs.
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

/// Serves with both submission listeners, an account, one credential, and a lead at
/// `nope@ok.test` whose Permission to Email is No; `outbound` is more `[outbound]` keys.
fn start(sink: &Sink, outbound: &str) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = mailtrail_testkit::self_signed_certificate(dir.path(), "submit.shop.test");
    let config = dir.path().join("mailtrail.toml");
    // The listeners' ports are picked free, then bound by the service: another process on
    // this machine may take one in between, so a start that fails is tried again on others.
    let write_config = || {
        let starttls = format!("127.0.0.1:{}", mailtrail_testkit::free_port());
        let implicit = format!("127.0.0.1:{}", mailtrail_testkit::free_port());
        let text = format!(
            "[outbound]\nhelo_name = \"mta.shop.test\"\nbounce_domain = \"bounce.shop.test\"\n{outbound}\n\
             [outbound.routes]\n\"ok.test\" = \"{sink}\"\n\
             [submission]\nlisten = \"{starttls}\"\nimplicit_tls_listen = \"{implicit}\"\n\
             tls_certificate = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display(),
            sink = sink.address(),
        );
        std::fs::write(&config, text).unwrap();
        (starttls, implicit)
    };
    let (mut starttls, mut implicit) = write_config();
    let data = dir.path().join("data");
    let env = [
        ("MAILTRAIL_CONFIG", config.to_str().unwrap()),
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
    ];
    let (account, api_key) = create_account(&env, "Shop");
    let leads = dir.path().join("leads.csv");
    std::fs::write(&leads, "email,permission_to_email\nnope@ok.test,no\n").unwrap();
    let imported = mailtrail(&env)
        .args([
            "lead",
            "import",
            leads.to_str().unwrap(),
            "--account",
            &account,
        ])
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let output = mailtrail(&env)
        .args(["smtp-credential", "create", "--account", &account, "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let credential: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut attempts = 0;
    let (child, base) = loop {
        let serve = || serve_with_args(&env, &[]);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(serve)) {
            Ok((child, base, _)) => break (child, base),
            Err(panic) if attempts == 2 => std::panic::resume_unwind(panic),
            Err(_) => (starttls, implicit) = write_config(),
        }
        attempts += 1;
    };
    Service {
        _serve: KillOnDrop(child),
        base,
        key: api_key,
        starttls,
        implicit,
        username: credential["username"].as_str().unwrap().into(),
        password: credential["password"].as_str().unwrap().into(),
        credential: credential["id"].as_str().unwrap().into(),
        account,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        dir,
    }
}

impl Service {
    /// `mailtrail ARGS` with the service's configuration; its standard output.
    fn cli(&self, args: &[&str]) -> String {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let output = mailtrail(&env).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs swaks against `address` with `args`; its transcript and whether it succeeded.
    fn swaks(&self, address: &str, args: &[&str]) -> (String, bool) {
        let (host, port) = address.rsplit_once(':').unwrap();
        let output = Command::new("swaks")
            .args([
                "--server",
                host,
                "--port",
                port,
                "--from",
                "sales@shop.test",
            ])
            .args(args)
            .output()
            .expect("swaks is installed (scripts/install-test-deps)");
        let transcript = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (transcript, output.status.success())
    }

    /// The email report's rows, as JSON.
    async fn report(&self, query: &str) -> Vec<Value> {
        let report = get_json(
            &self.base,
            &self.key,
            &format!("/v1/reports/emails?{query}"),
        )
        .await;
        report["emails"]
            .as_array()
            .unwrap_or_else(|| panic!("no emails in {report}"))
            .clone()
    }

    /// Email `id` once `until` holds of it (or after 15 s).
    async fn email(&self, id: &str, until: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let email = get_json(&self.base, &self.key, &format!("/v1/emails/{id}")).await;
            if until(&email) || Instant::now() > deadline {
                return email;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Every byte value, then a pseudo-random tail: what no text encoding leaves alone.
fn binary_file(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..4000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push(x as u8);
    }
    let path = dir.join("report.bin");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// The id in a `250 2.0.0 Ok: queued as ID` reply.
fn queued_id(transcript: &str) -> String {
    transcript
        .lines()
        .find_map(|l| l.split("Ok: queued as ").nth(1))
        .unwrap_or_else(|| panic!("not queued:\n{transcript}"))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn swaks_and_smtplib_submit_mail_that_is_delivered_as_sent() {
    let sink = Sink::start(&[]);
    let service = start(&sink, "");
    let (file, bytes) = binary_file(service.dir.path());
    let attach = format!("@{}", file.display());

    // swaks: STARTTLS, AUTH LOGIN, a display name, tags, a binary attachment.
    let (transcript, ok) = service.swaks(
        &service.starttls,
        &[
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            &service.username,
            "--auth-password",
            &service.password,
            "--to",
            "ana@ok.test",
            "--h-From",
            "\"Sales Team\" <sales@shop.test>",
            "--h-Subject",
            "Spring prices",
            "--h-X-Mailtrail-Tags",
            "spring,promo",
            "--body",
            "Our spring prices are attached.",
            "--attach-type",
            "application/octet-stream",
            "--attach-name",
            "report.bin",
            "--attach",
            &attach,
        ],
    );
    assert!(ok, "swaks failed:\n{transcript}");
    assert!(transcript.contains("TLS started"), "{transcript}");
    assert!(transcript.contains("235 2.7.0"), "{transcript}");
    let id = queued_id(&transcript);
    let message = common::received(&sink, &id).await;
    assert!(!message.contains("X-Mailtrail-Tags"), "{message}");
    let parsed = MessageParser::default().parse(message.as_bytes()).unwrap();
    let from = parsed.from().and_then(|f| f.first()).unwrap();
    assert_eq!(from.name.as_deref(), Some("Sales Team"), "{message}");
    assert_eq!(from.address.as_deref(), Some("sales@shop.test"));
    let attachment = parsed.attachment(0).expect("the attachment arrives");
    assert_eq!(attachment.attachment_name(), Some("report.bin"));
    assert!(
        attachment.contents() == bytes.as_slice(),
        "the attachment changed"
    );
    let email = service.email(&id, |e| e["stage"] == "delivered").await;
    assert_eq!(email["stage"], "delivered", "{email}");
    assert_eq!(
        email["tags"],
        serde_json::json!(["spring", "promo"]),
        "{email}"
    );

    // swaks over implicit TLS (RFC 8314), AUTH PLAIN.
    let (transcript, ok) = service.swaks(
        &service.implicit,
        &[
            "--tlsc",
            "--auth",
            "PLAIN",
            "--auth-user",
            &service.username,
            "--auth-password",
            &service.password,
            "--to",
            "di@ok.test",
            "--h-Subject",
            "Over implicit TLS",
        ],
    );
    assert!(ok, "swaks failed:\n{transcript}");
    let id = queued_id(&transcript);
    common::received(&sink, &id).await;
    let email = service.email(&id, |e| e["stage"] == "delivered").await;
    assert_eq!(email["stage"], "delivered", "{email}");

    // A server's MTA logs in on many connections at once: none is locked out.
    let (host, port) = service.implicit.rsplit_once(':').unwrap();
    let clients: Vec<_> = (0..12)
        .map(|i| {
            Command::new("swaks")
                .args([
                    "--server", host, "--port", port, "--tlsc", "--auth", "PLAIN",
                ])
                .args(["--auth-user", &service.username])
                .args(["--auth-password", &service.password])
                .args(["--from", "sales@shop.test", "--to"])
                .arg(format!("many{i}@ok.test"))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for client in clients {
        let output = client.wait_with_output().unwrap();
        let transcript = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{transcript}");
        queued_id(&transcript);
    }

    // smtplib as Django's SMTP backend uses it.
    let script = r#"
import smtplib, ssl, sys
from email.message import EmailMessage
host, port, user, password, path = sys.argv[1:]
msg = EmailMessage()
msg["Subject"] = "Your invoice"
msg["From"] = "Billing <billing@shop.test>"
msg["To"] = "bo@ok.test"
msg["Cc"] = "cy@ok.test"
msg["X-Mailtrail-Batch"] = "invoices"
msg.set_content("Your invoice is attached.")
with open(path, "rb") as f:
    msg.add_attachment(f.read(), maintype="application", subtype="octet-stream", filename="invoice.bin")
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
with smtplib.SMTP(host, int(port), timeout=30) as smtp:
    smtp.starttls(context=context)
    smtp.login(user, password)
    refused = smtp.send_message(msg)
    assert not refused, refused
print("sent")
"#;
    let (host, port) = service.starttls.rsplit_once(':').unwrap();
    let output = Command::new("python3")
        .args([
            "-c",
            script,
            host,
            port,
            &service.username,
            &service.password,
        ])
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "smtplib failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let rows = loop {
        let rows = service.report("batch=invoices").await;
        if rows.len() == 2 && rows.iter().all(|r| r["stage"] == "delivered")
            || Instant::now() > deadline
        {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut to: Vec<&str> = rows.iter().map(|r| r["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(to, ["bo@ok.test", "cy@ok.test"], "{rows:?}");
    assert!(rows.iter().all(|r| r["stage"] == "delivered"), "{rows:?}");
    for row in &rows {
        let message = common::received(&sink, row["id"].as_str().unwrap()).await;
        let parsed = MessageParser::default().parse(message.as_bytes()).unwrap();
        assert!(
            parsed.attachment(0).unwrap().contents() == bytes.as_slice(),
            "the attachment changed"
        );
        assert!(!message.contains("X-Mailtrail-Batch"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_submissions_get_their_codes_and_queue_nothing() {
    let sink = Sink::start(&[]);
    let service = start(&sink, "");
    let login = |password: &str| {
        vec![
            "--tls".to_owned(),
            "--auth".into(),
            "LOGIN".into(),
            "--auth-user".into(),
            service.username.clone(),
            "--auth-password".into(),
            password.to_owned(),
        ]
    };

    // A wrong password.
    let mut args = login("not-the-password");
    args.extend(["--to".into(), "ana@ok.test".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (transcript, ok) = service.swaks(&service.starttls, &args);
    assert!(!ok, "{transcript}");
    assert!(
        transcript.contains("535 5.7.8 Authentication credentials invalid"),
        "{transcript}"
    );

    // MAIL without AUTH, over TLS.
    let (transcript, ok) = service.swaks(&service.starttls, &["--tls", "--to", "ana@ok.test"]);
    assert!(!ok, "{transcript}");
    assert!(
        transcript.contains("530 5.7.0 Authentication required"),
        "{transcript}"
    );

    // A lead whose Permission to Email is No, refused at RCPT.
    let mut args = login(&service.password);
    args.extend(["--to".into(), "nope@ok.test".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (transcript, ok) = service.swaks(&service.starttls, &args);
    assert!(!ok, "{transcript}");
    assert!(
        transcript.contains("550 5.7.1 <nope@ok.test>: Permission to Email is No"),
        "{transcript}"
    );

    // AUTH before STARTTLS: swaks will not send it unoffered, smtplib will.
    let script = r#"
import base64, smtplib, sys
host, port, user, password = sys.argv[1:]
smtp = smtplib.SMTP(host, int(port), timeout=30)
smtp.ehlo()
print("offered" if smtp.has_extn("auth") else "not offered")
token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
code, text = smtp.docmd("AUTH", "PLAIN " + token)
print(code, text.decode())
code, text = smtp.docmd("MAIL", "FROM:<sales@shop.test>")
print(code, text.decode())
smtp.quit()
"#;
    let (host, port) = service.starttls.rsplit_once(':').unwrap();
    let output = Command::new("python3")
        .args([
            "-c",
            script,
            host,
            port,
            &service.username,
            &service.password,
        ])
        .output()
        .expect("python3 runs");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}{output:?}");
    assert_eq!(
        said.lines().collect::<Vec<_>>(),
        [
            "not offered",
            "530 5.7.0 Must issue a STARTTLS command first",
            "530 5.7.0 Authentication required"
        ]
    );

    // Listed without its password and with its last use; revoked, it no longer logs in.
    let listed = service.cli(&["smtp-credential", "list", "--account", &service.account]);
    let row = listed
        .lines()
        .find(|l| l.contains(&service.username))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(!listed.contains(&service.password), "{listed}");
    let columns: Vec<&str> = row.split('\t').collect();
    assert!(
        columns[3] != "-" && columns[4] == "-",
        "used, not revoked: {row}"
    );
    service.cli(&["smtp-credential", "revoke", &service.credential]);
    let mut args = login(&service.password);
    args.extend(["--to".into(), "ana@ok.test".into()]);
    let right: Vec<&str> = args.iter().map(String::as_str).collect();
    let (transcript, ok) = service.swaks(&service.starttls, &right);
    assert!(!ok && transcript.contains("535 5.7.8"), "{transcript}");

    // That is two failed logins from this address; three more lock it out, and then even a
    // valid credential is not checked: 421 and the connection closed.
    let fresh = service.cli(&[
        "smtp-credential",
        "create",
        "--account",
        &service.account,
        "--json",
    ]);
    let fresh: Value = serde_json::from_str(&fresh).unwrap();
    let mut wrong = login("wrong");
    wrong.extend(["--to".into(), "ana@ok.test".into()]);
    let wrong: Vec<&str> = wrong.iter().map(String::as_str).collect();
    for _ in 0..3 {
        let (transcript, ok) = service.swaks(&service.starttls, &wrong);
        assert!(!ok && transcript.contains("535 5.7.8"), "{transcript}");
    }
    let (transcript, ok) = service.swaks(
        &service.starttls,
        &[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            fresh["username"].as_str().unwrap(),
            "--auth-password",
            fresh["password"].as_str().unwrap(),
            "--to",
            "ana@ok.test",
        ],
    );
    assert!(!ok, "{transcript}");
    assert!(
        transcript.contains("421 4.7.0 Too many failed logins"),
        "{transcript}"
    );

    // Nothing was queued, and the sink got nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = service.report("").await;
    assert!(rows.is_empty(), "{rows:?}");
    assert!(sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_from_domain_the_account_may_not_use_is_refused_after_data() {
    let sink = Sink::start(&[]);
    let service = start(&sink, "require_verified_domains = true");
    let (transcript, ok) = service.swaks(
        &service.starttls,
        &[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            &service.username,
            "--auth-password",
            &service.password,
            "--to",
            "ana@ok.test",
            "--h-From",
            "\"Sales Team\" <sales@shop.test>",
        ],
    );
    assert!(!ok, "{transcript}");
    assert!(
        transcript.contains("550 5.7.1 sales@shop.test: the domain shop.test is not a verified"),
        "{transcript}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(service.report("").await.is_empty());
    assert!(sink.messages().is_empty());
}
