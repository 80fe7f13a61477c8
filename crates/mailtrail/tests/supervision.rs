//! Supervision, against the real binary (issue #21): a part of the service that dies takes the
//! whole process down, exit status 1 and a log line naming the part and its panic, so systemd
//! restarts it; `/readyz` says 503 and which part while the rest stops; `/readyz` follows the
//! database and `/livez` does not.
//!
//! The panic comes from the `test-hooks` feature (`MAILTRAIL_TEST_PANIC_DELIVERY_AFTER`), which
//! `scripts/test` turns on; without it this test does not build.

mod common;

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::KillOnDrop;
use mailtrail_testkit::postgres::Restartable;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// When the hook makes the delivery loop panic, from its start: time enough to see the service
/// ready first.
const PANIC_AFTER: Duration = Duration::from_secs(5);

/// `GET base + path`: the status and the JSON answer.
async fn get(base: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Asks `/readyz` every 100 ms until it answers `status`, for at most `within`; its answer.
async fn readyz_until(base: &str, status: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (answered, body) = get(base, "/readyz").await;
        if answered == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still answers {answered} {body} after {within:?}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How `child` exited, waiting for it at most `within`.
async fn exit_of(child: &mut KillOnDrop, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "serve still runs {within:?} later"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An SMTP client in the middle of a session: connected and greeted, EHLO answered.
struct SmtpClient {
    reader: BufReader<TcpStream>,
}

impl SmtpClient {
    async fn connect(address: &str) -> SmtpClient {
        let stream = TcpStream::connect(address).await.unwrap();
        let mut client = SmtpClient {
            reader: BufReader::new(stream),
        };
        assert!(client.reply().await.starts_with("220"));
        client.command("EHLO client.test").await;
        client
    }

    /// Sends `command`; the last line of its reply.
    async fn command(&mut self, command: &str) -> String {
        let stream = self.reader.get_mut();
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    /// The last line of a (possibly multi-line) reply.
    async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            assert!(!line.is_empty(), "the SMTP server hung up");
            if line.as_bytes().get(3) != Some(&b'-') {
                return line;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_delivery_loop_ends_the_process_with_status_1_and_readyz_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("serve.log");
    let after = PANIC_AFTER.as_secs().to_string();
    let env = [
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
        ("MAILTRAIL_TEST_PANIC_DELIVERY_AFTER", after.as_str()),
    ];
    let log = std::fs::File::create(&log_path).unwrap();
    let started = Instant::now();
    let (child, base, smtp) = common::serve_logging_to(&env, &[], log);
    let mut serve = KillOnDrop(child);

    // Before the panic: alive and ready.
    assert_eq!(get(&base, "/livez").await, (200, json!({"status": "ok"})));
    assert_eq!(get(&base, "/readyz").await, (200, json!({"status": "ok"})));
    assert!(
        started.elapsed() < PANIC_AFTER,
        "the service took too long to start to see it ready before the panic"
    );

    // An SMTP session in flight: the service lets it finish before it exits, and the HTTP
    // side answers meanwhile.
    let mut session = SmtpClient::connect(&smtp).await;
    let unready = readyz_until(&base, 503, PANIC_AFTER + Duration::from_secs(10)).await;
    assert_eq!(
        unready,
        json!({"status": "unavailable", "failed": [
            {"check": "delivery worker", "detail": "not running"},
            {"check": "service", "detail": "stopping"},
        ]})
    );
    assert!(
        serve.0.try_wait().unwrap().is_none(),
        "serve exited before the SMTP session ended"
    );
    assert_eq!(get(&base, "/livez").await.0, 200, "alive while it stops");

    assert!(session.command("QUIT").await.starts_with("221"));
    let status = exit_of(&mut serve, Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(1), "{status}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let stopped = log
        .lines()
        .find(|line| line.contains("a part of the service stopped unexpectedly"))
        .unwrap_or_else(|| panic!("no line says a part stopped; the log:\n{log}"));
    assert!(stopped.contains("delivery worker"), "{stopped}");
    assert!(
        stopped.contains("it panicked: test hook: the delivery loop panics after 5 s"),
        "{stopped}"
    );
    assert!(
        log.contains("error: the delivery worker stopped unexpectedly: it panicked"),
        "serve's last words name the part: {log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_while_postgresql_is_stopped_and_200_once_it_is_back() {
    let postgres = Restartable::start();
    let url = postgres.fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MAILTRAIL_DATABASE_URL", url.as_str()),
        ("MAILTRAIL_DATA_DIR", dir.path().to_str().unwrap()),
    ];
    let (child, base, _) = common::serve_with_args(&env, &[]);
    let mut serve = KillOnDrop(child);
    assert_eq!(get(&base, "/readyz").await, (200, json!({"status": "ok"})));

    postgres.stop();
    let asked = Instant::now();
    let unready = readyz_until(&base, 503, Duration::from_secs(10)).await;
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "/readyz took {:?} to say the database is gone",
        asked.elapsed()
    );
    assert_eq!(unready["failed"][0]["check"], "database", "{unready}");
    assert_eq!(
        unready["failed"].as_array().map(Vec::len),
        Some(1),
        "{unready}"
    );
    let asked = Instant::now();
    assert_eq!(get(&base, "/livez").await.0, 200);
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "/livez waited for the database: {:?}",
        asked.elapsed()
    );

    postgres.restart();
    readyz_until(&base, 200, Duration::from_secs(30)).await;

    // A normal stop is still a clean one.
    unsafe { libc::kill(serve.0.id() as i32, libc::SIGTERM) };
    let status = exit_of(&mut serve, Duration::from_secs(15)).await;
    assert!(status.success(), "serve exits 0 on SIGTERM: {status}");
}
