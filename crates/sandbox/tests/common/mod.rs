//! Peers for the sandbox tests, all on real loopback sockets: a line-by-line SMTP client that
//! shows every reply, a capturing SMTP server standing in for Mailtrail's inbound listener,
//! an HTTP server standing in for its tracking URLs, and a message built like Mailtrail's.

#![allow(dead_code)] // each test file uses its own share of these

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::IntoResponse;
use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use mailtrail_sandbox::{Sandbox, SandboxConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// The token of the test message, in its envelope sender, Reply-To and header.
pub const TOKEN: &str = "tok123";
pub const MAIL_FROM: &str = "bounces+tok123@bounce.test";
pub const MESSAGE_ID: &str = "0199a3b2-tok123@mta.shop.test";
pub const PERSON_DELAY: Duration = Duration::from_millis(200);

/// Starts a sandbox that reports to `inbound`.
pub async fn sandbox(inbound: SocketAddr) -> Sandbox {
    Sandbox::start(SandboxConfig {
        inbound_smtp: inbound,
        http_base: "http://127.0.0.1:8025".into(),
        person_delay: PERSON_DELAY,
    })
    .await
    .expect("the sandbox starts")
}

/// The `127.0.0.1:PORT` of a sandbox domain.
pub fn route(sandbox: &Sandbox, domain: &str) -> String {
    sandbox
        .routes()
        .into_iter()
        .find(|(d, _)| d == domain)
        .map(|(_, address)| address)
        .unwrap_or_else(|| panic!("no route for {domain}"))
}

/// A message as Mailtrail builds one, with tracking URLs under `tracking_base`.
pub fn message(to: &str, tracking_base: &str) -> Vec<u8> {
    MessageBuilder::new()
        .from(("Shop", "sales@shop.test"))
        .to(to)
        .reply_to(format!("reply+{TOKEN}@bounce.test"))
        .subject("Spring offer")
        .message_id(MESSAGE_ID)
        .header("X-Mailtrail-Token", Raw::new(TOKEN))
        .header(
            "List-Unsubscribe",
            Raw::new(format!(
                "<{tracking_base}/u/ghi>, <mailto:unsubscribe+{TOKEN}@bounce.test>"
            )),
        )
        .header(
            "List-Unsubscribe-Post",
            Raw::new("List-Unsubscribe=One-Click"),
        )
        .text_body(".Twenty percent off everything\r\nuntil Sunday.\r\n")
        .html_body(format!(
            "<p>Twenty percent off</p><a href=\"{tracking_base}/c/def\">Shop now</a>\
             <img src=\"{tracking_base}/o/abc.gif\" width=\"1\" height=\"1\" alt=\"\">\
             <p><a href=\"{tracking_base}/u/ghi\">Unsubscribe</a></p>"
        ))
        .write_to_vec()
        .expect("a message")
}

/// Sends `raw` with mail-send, as the delivery engine does.
pub async fn deliver(address: &str, to: &str, raw: &[u8]) {
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let mut client = mail_send::SmtpClientBuilder::new(host, port.parse().expect("a port"))
        .expect("a client")
        .implicit_tls(false)
        .helo_host("mta.shop.test")
        .connect_plain()
        .await
        .expect("the sandbox server answers");
    client
        .send(mail_send::smtp::message::Message::new(MAIL_FROM, [to], raw))
        .await
        .expect("the message is accepted");
    client.quit().await.expect("quit");
}

/// Polls `check` until it gives something, for at most 10 s.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(found) = check() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// An SMTP client that shows every reply.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Connects and returns the client with the greeting.
    pub async fn connect(address: &str) -> (Client, String) {
        let (read, writer) = TcpStream::connect(address)
            .await
            .expect("connects")
            .into_split();
        let mut client = Client {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// Reads one reply, every line of it.
    pub async fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).await.expect("reads");
            assert!(n > 0, "the server hung up after {reply:?}");
            reply.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    /// Whether the server has closed the connection.
    pub async fn hung_up(&mut self) -> bool {
        let mut line = String::new();
        matches!(self.reader.read_line(&mut line).await, Ok(0) | Err(_))
    }

    /// Writes `bytes` as they are.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("writes");
    }

    /// Sends one command line and returns its reply.
    pub async fn command(&mut self, line: &str) -> String {
        self.write(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// EHLO, MAIL, RCPT; returns the RCPT reply.
    pub async fn start_mail(&mut self, to: &str) -> String {
        assert!(self.command("EHLO mta.shop.test").await.starts_with("250"));
        assert!(
            self.command(&format!("MAIL FROM:<{MAIL_FROM}>"))
                .await
                .starts_with("250")
        );
        self.command(&format!("RCPT TO:<{to}>")).await
    }

    /// DATA and a small message; returns the reply to the message.
    pub async fn data(&mut self) -> String {
        assert!(self.command("DATA").await.starts_with("354"));
        self.write(b"Subject: hi\r\n\r\nHello\r\n.\r\n").await;
        self.reply().await
    }
}

/// One message the capture server received.
#[derive(Debug, Clone)]
pub struct Captured {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// A minimal SMTP server that keeps what it receives, in Mailtrail's inbound place.
pub struct Capture {
    pub address: SocketAddr,
    messages: Arc<Mutex<Vec<Captured>>>,
}

impl Capture {
    pub async fn start() -> Capture {
        Self::start_on("127.0.0.1:0".parse().expect("an address")).await
    }

    /// Starts on `address`, for a port chosen before the server was there.
    pub async fn start_on(address: SocketAddr) -> Capture {
        let listener = TcpListener::bind(address).await.expect("binds");
        let address = listener.local_addr().expect("an address");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&messages);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(capture_session(stream, Arc::clone(&kept)));
            }
        });
        Capture { address, messages }
    }

    pub fn messages(&self) -> Vec<Captured> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits for the first message.
    pub async fn first(&self) -> Captured {
        eventually("a follow-up message", || self.messages().into_iter().next()).await
    }
}

async fn capture_session(stream: TcpStream, messages: Arc<Mutex<Vec<Captured>>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let _ = write.write_all(b"220 capture ESMTP\r\n").await;
    let mut current = Captured {
        mail_from: String::new(),
        rcpt_to: Vec::new(),
        data: Vec::new(),
    };
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_ascii_uppercase();
        let path = || {
            let start = line.find('<').map_or(0, |i| i + 1);
            let end = line.rfind('>').unwrap_or(start);
            line[start..end].to_string()
        };
        let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
            b"250 capture\r\n"
        } else if command.starts_with("MAIL FROM:") {
            current.mail_from = path();
            b"250 ok\r\n"
        } else if command.starts_with("RCPT TO:") {
            current.rcpt_to.push(path());
            b"250 ok\r\n"
        } else if command == "DATA" {
            let _ = write.write_all(b"354 go on\r\n").await;
            loop {
                line.clear();
                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                current.data.extend_from_slice(unstuffed.as_bytes());
            }
            let done = std::mem::replace(
                &mut current,
                Captured {
                    mail_from: String::new(),
                    rcpt_to: Vec::new(),
                    data: Vec::new(),
                },
            );
            messages.lock().unwrap().push(done);
            b"250 kept\r\n"
        } else if command == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 ok\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// One HTTP request the tracking stand-in received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: Method,
    pub path: String,
    pub user_agent: String,
    pub content_type: String,
    pub body: String,
}

/// An HTTP server that records every request; `/c/…` redirects to `/landing`, as Mailtrail's
/// click URLs do.
pub struct Web {
    pub base: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Web {
    pub async fn start() -> Web {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().fallback(record).with_state(Arc::clone(&hits));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Web { base, hits }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until `count` requests have arrived, and returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<Hit> {
        eventually("the HTTP requests", || {
            let hits = self.hits();
            (hits.len() >= count).then_some(hits)
        })
        .await
    }
}

async fn record(
    State(hits): State<Arc<Mutex<Vec<Hit>>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let path = uri.path().to_string();
    hits.lock().unwrap().push(Hit {
        method,
        path: path.clone(),
        user_agent: header(header::USER_AGENT),
        content_type: header(header::CONTENT_TYPE),
        body,
    });
    if path.starts_with("/c/") {
        (StatusCode::FOUND, [(header::LOCATION, "/landing")]).into_response()
    } else {
        StatusCode::OK.into_response()
    }
}
