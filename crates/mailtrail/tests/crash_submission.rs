//! Crash safety of SMTP submission: several Python `smtplib` clients (STARTTLS, AUTH, then one
//! uniquely numbered message after another) flood `mailtrail serve`'s submission listener; the
//! service is killed with SIGKILL mid-flood and started again on the same data directory.
//! Every message a client saw answered `250` must then be in the store, and reach the
//! recipients' server (smtp-sink). A message whose `250` never arrived may or may not be kept.
//!
//! CI runs the short version (a 3-second flood by 4 clients). The long one (a 30-second flood
//! by 8 clients): `MAILTRAIL_LONG_TESTS=1 cargo test --release -p mailtrail --test
//! crash_submission -- --nocapture`.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, create_account, get_json, long, mailtrail, serve_with_args};
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::Value;

/// The recipients' domain, routed to the sink.
const DOMAIN: &str = "crash.test";

/// One client: logs in over STARTTLS and submits `crash CLIENT-N` for N = 0, 1, … on one
/// connection, printing N once the server has answered 250 to the message's DATA; it stops
/// at the first error (the server is gone), reconnecting never.
const CLIENT: &str = r#"
import smtplib, ssl, sys
host, port, user, password, client = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
try:
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.login(user, password)
        n = 0
        while True:
            subject = f"crash {client}-{n}"
            message = (f"From: Crash <crash@shop.test>\r\nTo: r{client}x{n}@crash.test\r\n"
                       f"Subject: {subject}\r\n\r\n" + "x" * 1500 + "\r\n")
            smtp.sendmail("crash@shop.test", [f"r{client}x{n}@crash.test"], message)
            print(n, flush=True)
            n += 1
except (smtplib.SMTPException, OSError) as error:
    print(f"client {client} stopped: {error!r}", file=sys.stderr)
"#;

fn credential(env: &[(&str, &str)], account: &str) -> (String, String) {
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
    (
        created["username"].as_str().expect("a username").to_owned(),
        created["password"].as_str().expect("a password").to_owned(),
    )
}

/// `mailtrail serve` with the submission listener on `port`, once that port answers.
fn serve(env: &[(&str, &str)], config: &Path, port: u16) -> (KillOnDrop, String) {
    let (child, base, _) = serve_with_args(env, &["--config", config.to_str().unwrap()]);
    let child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "no submission listener on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, base)
}

/// Subject → stage of every email in the account, read page by page from the email report.
async fn stages(base: &str, key: &str) -> HashMap<String, String> {
    let mut stages = HashMap::new();
    let mut cursor = String::new();
    loop {
        let page = get_json(base, key, &format!("/v1/reports/emails?limit=1000{cursor}")).await;
        for row in page["emails"].as_array().expect("an email report") {
            let subject = row["subject"].as_str().unwrap_or_default().to_owned();
            stages.insert(
                subject,
                row["stage"].as_str().unwrap_or_default().to_owned(),
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return stages,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_submission_flood_loses_no_acknowledged_message() {
    let (clients, flood) = if long() {
        (8, Duration::from_secs(30))
    } else {
        (4, Duration::from_secs(3))
    };
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
    let (account, key) = create_account(&env, "Crash");
    let (user, password) = credential(&env, &account);
    let (mut server, _) = serve(&env, &config, port);

    let readers: Vec<_> = (0..clients)
        .map(|client| {
            let mut child = Command::new("python3")
                .args([
                    "-c",
                    CLIENT,
                    "127.0.0.1",
                    &port.to_string(),
                    &user,
                    &password,
                ])
                .arg(client.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("python3 runs (scripts/install-test-deps)");
            let stdout = child.stdout.take().expect("piped");
            let child = KillOnDrop(child);
            // Each acknowledged number as soon as it is printed, so what was acknowledged
            // before the kill is known however the client ends.
            std::thread::spawn(move || {
                let _child = child;
                BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|line| line.trim().parse::<u64>().ok())
                    .map(|n| format!("crash {client}-{n}"))
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    tokio::time::sleep(flood).await;
    server.kill(); // SIGKILL, mid-flood
    let acknowledged: HashSet<String> = readers
        .into_iter()
        .flat_map(|reader| reader.join().expect("a reader thread"))
        .collect();
    assert!(
        acknowledged.len() >= clients,
        "the flood barely started: {} messages acknowledged",
        acknowledged.len()
    );

    let (_server, base) = serve(&env, &config, port);
    let stored = stages(&base, &key).await;
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|s| !stored.contains_key(*s))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages are not in the store, e.g. {:?}",
        missing.len(),
        acknowledged.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );

    // Every acknowledged message is eventually delivered, and its email says so.
    let deadline = Instant::now() + Duration::from_secs(if long() { 600 } else { 120 });
    loop {
        let arrived: HashSet<String> = sink
            .messages()
            .iter()
            .filter_map(|m| {
                m.lines()
                    .take_while(|l| !l.is_empty())
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .map(|s| s.trim().to_owned())
            })
            .collect();
        let stages = stages(&base, &key).await;
        let pending = acknowledged
            .iter()
            .filter(|s| {
                !arrived.contains(*s) || stages.get(*s).map(String::as_str) != Some("delivered")
            })
            .count();
        if pending == 0 {
            println!(
                "submission crash: {clients} clients, {flood:?} flood, {} acknowledged, {} \
                 stored, {} at the sink, 0 lost",
                acknowledged.len(),
                stages.len(),
                arrived.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} of {} acknowledged messages not delivered",
            acknowledged.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
