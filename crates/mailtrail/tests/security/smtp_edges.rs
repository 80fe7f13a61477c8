//! Inbound SMTP edge cases against the running binary's listener (issue #16, item 7): an empty
//! message must end at its `.` (not swallow the commands after it), an overflowing `SIZE=`
//! must be refused rather than wrap round to a small number, and a client probing for relays
//! must be cut off after the error limit. Also the small SMTP client the security suite's
//! report tests deliver with.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::common;

/// How long any one reply may take: a server that does not answer fails the test.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// One SMTP client connection over a real socket.
pub struct Client {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Client {
    /// Connects and reads the greeting.
    pub async fn connect(address: &str) -> Self {
        let (read, write) = TcpStream::connect(address)
            .await
            .expect("the SMTP listener accepts")
            .into_split();
        let mut client = Client {
            read: BufReader::new(read),
            write,
        };
        let greeting = client.reply().await;
        assert!(greeting.starts_with("220"), "greeting: {greeting}");
        client
    }

    /// Writes `line` and CRLF; returns the last line of the reply ("" when the server hung
    /// up).
    pub async fn send(&mut self, line: &str) -> String {
        // A write error is not the test's verdict: a server that closed the connection may
        // still have left its last reply in the socket.
        let _ = self.write.write_all(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// The last line of the next reply, or "" when the connection is closed.
    async fn reply(&mut self) -> String {
        let read = async {
            loop {
                let mut line = String::new();
                if self.read.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return String::new();
                }
                if line.as_bytes().get(3) != Some(&b'-') {
                    return line.trim_end().to_owned();
                }
            }
        };
        tokio::time::timeout(REPLY_TIMEOUT, read)
            .await
            .expect("the server answers")
    }
}

/// Delivers `message` from the null sender to `to`, as a remote server returns a report, and
/// checks it was stored.
pub async fn deliver(smtp: &str, to: &str, message: &str) {
    let mut client = Client::connect(smtp).await;
    assert!(client.send("EHLO mx.isp.test").await.starts_with("250"));
    assert!(client.send("MAIL FROM:<>").await.starts_with("250"));
    let rcpt = client.send(&format!("RCPT TO:<{to}>")).await;
    assert!(rcpt.starts_with("250"), "RCPT {to}: {rcpt}");
    assert!(client.send("DATA").await.starts_with("354"));
    let stuffed = message.replace("\r\n.", "\r\n..");
    let body = stuffed.strip_suffix("\r\n").unwrap_or(&stuffed);
    let stored = client.send(&format!("{body}\r\n.")).await;
    assert!(stored.starts_with("250 2.0.0 Ok: stored"), "{stored}");
    client.send("QUIT").await;
}

/// `mailtrail serve` with its inbound listener for `bounce.shop.test`.
struct Listener {
    server: common::KillOnDrop,
    smtp: String,
    dir: tempfile::TempDir,
}

fn start() -> Listener {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        "[outbound]\nhelo_name = \"mta.shop.test\"\nbounce_domain = \"bounce.shop.test\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let env = [
        ("MAILTRAIL_CONFIG", config.to_str().unwrap()),
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
    ];
    let (child, _, smtp) = common::serve_with_smtp(&env);
    Listener {
        server: common::KillOnDrop(child),
        smtp,
        dir,
    }
}

impl Listener {
    /// The raw bytes of every message the listener stored, oldest first.
    async fn stored(&self) -> Vec<Vec<u8>> {
        let db = self.dir.path().join("data/mailtrail.db");
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
            .await
            .unwrap();
        let raws = sqlx::query_scalar("SELECT raw FROM inbound_messages ORDER BY received_at_ms")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        raws
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_message_ends_at_its_dot() {
    let listener = start();
    let mut client = Client::connect(&listener.smtp).await;
    client.send("EHLO mx.isp.test").await;
    client.send("MAIL FROM:<>").await;
    client.send("RCPT TO:<fbl@bounce.shop.test>").await;
    assert!(client.send("DATA").await.starts_with("354"));
    // Before the fix no reply came: the dot and what followed were taken as the message.
    let stored = client.send(".").await;
    assert!(stored.starts_with("250 2.0.0"), "{stored}");
    assert!(client.send("RSET").await.starts_with("250"));
    assert!(client.send("QUIT").await.starts_with("221"));
    assert_eq!(listener.stored().await, [Vec::<u8>::new()]);
    drop(listener.server);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overflowing_size_is_refused() {
    let listener = start();
    let mut client = Client::connect(&listener.smtp).await;
    client.send("EHLO mx.isp.test").await;
    // 23 digits: smtp-proto's parser wraps this round to 999, which was accepted.
    let reply = client
        .send("MAIL FROM:<> SIZE=99999999999999999999999")
        .await;
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    // An honest size still goes through.
    let reply = client.send("MAIL FROM:<> SIZE=1000").await;
    assert!(reply.starts_with("250"), "{reply}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_prober_is_cut_off() {
    let listener = start();
    let mut client = Client::connect(&listener.smtp).await;
    client.send("EHLO prober.test").await;
    client.send("MAIL FROM:<spam@prober.test>").await;
    let mut replies = Vec::new();
    for i in 0..50 {
        let reply = client.send(&format!("RCPT TO:<victim{i}@gmail.com>")).await;
        let closed = reply.is_empty() || reply.starts_with("421");
        replies.push(reply);
        if closed {
            break;
        }
    }
    let denied = replies.iter().filter(|r| r.starts_with("550")).count();
    assert!(
        replies.last().is_some_and(|r| r.starts_with("421 4.7.0")),
        "{replies:?}"
    );
    assert!(denied <= 10, "{denied} relay probes answered: {replies:?}");
}
