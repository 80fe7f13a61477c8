//! SPF and DMARC alignment end to end: a sending domain set up exactly as the API says (its
//! records served by NSD) is verified, its mail leaves with the envelope sender
//! `bounces+TOKEN@bounces.DOMAIN`, a DSN to that address is accepted and matched (one to an
//! unregistered domain's is relay-denied), and rspamd — a real receiving filter no one here
//! wrote — given the connecting IP, HELO and envelope sender, reports SPF pass, DKIM pass and
//! DMARC pass (aligned).

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{KillOnDrop, call, create_account, get_json, received, send_email};
use mailtrail_testkit::dns::Dns;
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::{Value, json};

/// A record's zone-file line in zone `shop.test`: TXT values quoted in pieces of at most 255
/// characters, an MX's host made absolute.
fn zone_line(record: &Value) -> String {
    let name = record["name"].as_str().unwrap();
    let relative = name.strip_suffix(".shop.test").unwrap_or("@");
    let value = record["value"].as_str().unwrap();
    if record["type"] == "MX" {
        return format!("{relative} IN MX {value}.");
    }
    let quoted: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", std::str::from_utf8(c).unwrap()))
        .collect();
    format!("{relative} IN TXT {}", quoted.join(" "))
}

/// What smtp-sink logged of the SMTP conversation (`X-Mail-Args: <…>`), and the message as
/// sent, without those lines.
fn envelope_and_message(dump: &str) -> (String, String, String) {
    let mut helo = String::new();
    let mut from = String::new();
    let mut lines = dump.split_inclusive('\n').peekable();
    while let Some(line) = lines
        .next_if(|l| l.starts_with("X-") && l.contains("-Args: ") || l.starts_with("X-Client-"))
    {
        if let Some(args) = line.strip_prefix("X-Helo-Args: ") {
            helo = args.trim().to_owned();
        }
        if let Some(args) = line.strip_prefix("X-Mail-Args: ") {
            from = args
                .split_whitespace()
                .next()
                .unwrap()
                .trim_matches(['<', '>'])
                .to_owned();
        }
    }
    (helo, from, lines.collect())
}

/// Delivers `message` to `to` at the inbound listener with swaks; its transcript, and
/// whether the message was stored.
fn deliver(smtp: &str, to: &str, message: &Path) -> (String, bool) {
    let (host, port) = smtp.rsplit_once(':').unwrap();
    let output = Command::new("swaks")
        .args([
            "--server", host, "--port", port, "--from", "", "--to", to, "--data",
        ])
        .arg(message)
        .output()
        .expect("swaks is installed (scripts/install-test-deps)");
    let transcript = String::from_utf8_lossy(&output.stdout).into_owned();
    let stored = output.status.success() && transcript.contains("250 2.0.0 Ok: stored");
    (transcript, stored)
}

/// rspamd on free loopback ports, its own configuration and state in `dir`, asking `dns` for
/// every lookup; killed with its workers when dropped.
struct Rspamd {
    main: Child,
    normal: String,
}

impl Drop for Rspamd {
    /// Asked to stop, rspamd stops its workers and reaps them; if it has not within a few
    /// seconds, its whole process group (the workers are in it) is killed.
    fn drop(&mut self) {
        let pid = self.main.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.main.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        let _ = self.main.wait();
    }
}

fn rspamd(dir: &Path, dns: std::net::SocketAddr) -> Rspamd {
    let binary = "/usr/bin/rspamd";
    assert!(
        Path::new(binary).exists(),
        "{binary} not found: install it with scripts/install-test-deps (Debian package `rspamd`)"
    );
    let ports: Vec<u16> = (0..4).map(|_| mailtrail_testkit::free_port()).collect();
    let local = dir.join("local");
    for sub in ["local.d", "override.d", "db", "run", "log"] {
        std::fs::create_dir_all(local.join(sub)).unwrap();
    }
    let write = |name: &str, text: String| std::fs::write(local.join(name), text).unwrap();
    write(
        "local.d/options.inc",
        format!("dns {{ nameserver = [\"{dns}\"]; timeout = 1s; retransmits = 2; }}\n"),
    );
    // Replaced, not merged, so nothing binds the default ports (11332-11335).
    for (worker, port) in ["normal", "controller", "proxy", "fuzzy"]
        .iter()
        .zip(&ports)
    {
        write(
            &format!("override.d/worker-{worker}.inc"),
            format!("bind_socket = \"127.0.0.1:{port}\";\ncount = 1;\n"),
        );
    }
    write("override.d/worker-fuzzy.inc", "count = -1;\n".into());
    write(
        "local.d/logging.inc",
        "type = \"file\";\nlevel = \"error\";\n".into(),
    );
    write("local.d/fuzzy_check.conf", "enabled = false;\n".into());
    // The test's mail comes from 127.0.0.1, which rspamd counts as local and would not check.
    for module in ["spf", "dkim", "dmarc"] {
        write(
            &format!("local.d/{module}.conf"),
            "check_local = true;\ncheck_authed = true;\n".into(),
        );
    }
    let var = |name: &str, sub: &str| format!("--var={name}={}", local.join(sub).display());
    let main = Command::new(binary)
        .args([
            "-f",
            "-i",
            "-u",
            "root",
            "-g",
            "root",
            "-c",
            "/etc/rspamd/rspamd.conf",
        ])
        .arg(format!("--var=LOCAL_CONFDIR={}", local.display()))
        .args([
            var("DBDIR", "db"),
            var("RUNDIR", "run"),
            var("LOGDIR", "log"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("rspamd starts");
    let filter = Rspamd {
        main,
        normal: format!("127.0.0.1:{}", ports[0]),
    };
    // It loads its rules for several seconds before it listens.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&filter.normal).is_err() {
        assert!(
            Instant::now() < deadline,
            "rspamd did not start on {}: see {}",
            filter.normal,
            local.join("log/rspamd.log").display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    filter
}

#[tokio::test(flavor = "multi_thread")]
async fn a_domain_set_up_as_the_records_say_aligns_and_gets_its_bounces() {
    let sink = Sink::start(&[]);
    let mut dns = Dns::start(&[("shop.test", "www IN A 127.0.0.1")]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "dns_servers = [\"{}\"]\n\
             [outbound]\nhelo_name = \"mta.shop.test\"\nbounce_domain = \"bounces.mailtrail.test\"\n\
             [outbound.routes]\n\"ok.test\" = \"{}\"\n",
            dns.address,
            sink.address()
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let env = [
        ("MAILTRAIL_CONFIG", config.to_str().unwrap()),
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
    ];
    let (_, key) = create_account(&env, "Shop");
    let (child, base, smtp) = common::serve_with_smtp(&env);
    let _service = KillOnDrop(child);

    // Registered with the default return path; every record published as shown, plus the
    // address the SPF record's a: names.
    let post = reqwest::Method::POST;
    let (status, domain) = call(
        post.clone(),
        &base,
        &key,
        "/v1/domains",
        &json!({"domain": "shop.test"}),
    )
    .await;
    assert_eq!(status, 201, "{domain}");
    assert_eq!(domain["return_path"], "bounces.shop.test");
    let records: Vec<String> = domain["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(zone_line)
        .collect();
    dns.restart(&[(
        "shop.test",
        &format!("{}\nmta IN A 127.0.0.1", records.join("\n")),
    )]);
    let (status, verified) = call(
        post,
        &base,
        &key,
        "/v1/domains/shop.test/verify",
        &json!({}),
    )
    .await;
    assert_eq!(
        (status, &verified["verified"]),
        (200, &json!(true)),
        "{verified}"
    );

    // Mail From the verified domain leaves from its return path; from another domain, from
    // the installation's bounce domain as before.
    let id = send_email(
        &base,
        &key,
        &json!({"to": "ana@ok.test", "from": "sales@shop.test", "subject": "Offer", "text": "Hello"}),
    )
    .await;
    let dump = received(&sink, &id).await;
    let (helo, envelope, message) = envelope_and_message(&dump);
    let token = message
        .lines()
        .find_map(|l| l.strip_prefix("X-Mailtrail-Token: "))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        envelope,
        format!("bounces+{token}@bounces.shop.test"),
        "{dump}"
    );
    assert_eq!(helo, "mta.shop.test");
    let other = send_email(
        &base,
        &key,
        &json!({"to": "bo@ok.test", "from": "sales@other.test", "subject": "Offer", "text": "Hello"}),
    )
    .await;
    let (_, other_envelope, _) = envelope_and_message(&received(&sink, &other).await);
    assert!(
        other_envelope.ends_with("@bounces.mailtrail.test"),
        "{other_envelope}"
    );

    // rspamd judges the message as a receiver would: the connecting IP, the HELO and the
    // envelope sender as Mailtrail gave them, every lookup answered by the NSD above.
    let filter = rspamd(dir.path(), dns.address);
    let file = dir.path().join("sent.eml");
    std::fs::write(&file, &message).unwrap();
    let output = Command::new("rspamc")
        .args([
            "-h",
            &filter.normal,
            "-j",
            "--ip",
            "127.0.0.1",
            "--helo",
            &helo,
        ])
        .args(["--from", &envelope, "--rcpt", "ana@ok.test", "symbols"])
        .arg(&file)
        .output()
        .expect("rspamc runs");
    let verdict = String::from_utf8_lossy(&output.stdout);
    let verdict: Value = serde_json::from_str(&verdict)
        .unwrap_or_else(|e| panic!("rspamc answered {verdict:?}: {e}"));
    let symbols = &verdict["symbols"];
    for symbol in ["R_SPF_ALLOW", "R_DKIM_ALLOW", "DMARC_POLICY_ALLOW"] {
        assert!(symbols.get(symbol).is_some(), "no {symbol}: {verdict:#}");
    }
    for symbol in [
        "R_SPF_FAIL",
        "R_SPF_SOFTFAIL",
        "R_DKIM_REJECT",
        "DMARC_POLICY_REJECT",
        "DMARC_POLICY_SOFTFAIL",
        "DMARC_NA",
    ] {
        assert!(symbols.get(symbol).is_none(), "{symbol}: {verdict:#}");
    }

    // A DSN to the return path's VERP address is accepted and fails its email; one to an
    // unregistered domain's is relaying, refused.
    let dsn = dir.path().join("dsn.eml");
    std::fs::write(
        &dsn,
        "From: MAILER-DAEMON@mx.ok.test\r\nTo: someone\r\nSubject: Undelivered Mail\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.ok.test\r\n\r\n\
         Final-Recipient: rfc822; ana@ok.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 <ana@ok.test>: Recipient address rejected: User unknown\r\n\r\n--B--\r\n",
    )
    .unwrap();
    let (transcript, stored) = deliver(&smtp, &format!("bounces+{token}@bounces.other.test"), &dsn);
    assert!(!stored, "{transcript}");
    assert!(
        transcript.contains("550 5.7.1 <bounces+") && transcript.contains("Relay access denied"),
        "{transcript}"
    );
    let (transcript, stored) = deliver(&smtp, &format!("bounces+{token}@bounces.shop.test"), &dsn);
    assert!(stored, "{transcript}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let email = loop {
        let email = get_json(&base, &key, &format!("/v1/emails/{id}")).await;
        if email["stage"] == "failed" || Instant::now() > deadline {
            break email;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (email["stage"].as_str(), email["reason"].as_str()),
        (Some("failed"), Some("userunknown")),
        "{email}"
    );
}
