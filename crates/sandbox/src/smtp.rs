//! The SMTP server every sandbox domain runs (RFC 5321): EHLO/HELO, MAIL, RCPT, DATA with
//! dot-unstuffing, RSET, NOOP, QUIT, several messages per connection, and pipelined commands
//! answered in order. The domain's [`Behaviour`] decides each recipient's and each message's
//! reply; accepted messages start their follow-ups once the client has its 250.

use std::sync::Arc;
use std::time::Duration;

use smtp_proto::request::receiver::{DataReceiver, RequestReceiver};
use smtp_proto::{Error as ProtoError, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::Shared;
use crate::behaviour::Behaviour;
use crate::follow_up::{self, Received};

/// The largest message accepted, as announced in EHLO.
const MAX_MESSAGE_SIZE: usize = 10_485_760;
/// How long a client may stay silent (RFC 5321 §4.5.3.2 asks at least 5 minutes).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Protocol errors tolerated in one session before it is closed.
const MAX_ERRORS: usize = 10;

/// Accepts connections until the task is aborted; dropping it closes every connection.
pub(crate) async fn serve(listener: TcpListener, behaviour: Behaviour, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                while sessions.try_join_next().is_some() {}
                sessions.spawn(session(stream, behaviour, Arc::clone(&shared)));
            }
            Err(error) => {
                tracing::warn!(%error, domain = behaviour.domain(), "sandbox accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The envelope of the message being received.
#[derive(Default)]
struct Envelope {
    mail_from: Option<String>,
    /// The recipients accepted so far.
    rcpt_to: Vec<String>,
}

/// A message being received: the receiver that finds its end, and its bytes so far.
struct Incoming {
    receiver: DataReceiver,
    bytes: Vec<u8>,
    /// It passed the size limit: read to its end, keep nothing, refuse it.
    too_big: bool,
}

/// One conversation, until the client quits, hangs up, stays silent or errs too often.
async fn session(mut stream: TcpStream, behaviour: Behaviour, shared: Arc<Shared>) {
    let domain = behaviour.domain();
    if let Some(delay) = behaviour.delay() {
        tokio::time::sleep(delay).await;
    }
    let greeting = format!("220 {domain} ESMTP Mailtrail sandbox\r\n");
    if stream.write_all(greeting.as_bytes()).await.is_err() {
        return;
    }
    let mut commands = RequestReceiver::default();
    let mut envelope = Envelope::default();
    let mut incoming: Option<Incoming> = None;
    let mut greeted = false;
    let mut errors = 0;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return,
            Ok(Ok(n)) => n,
            Err(_) => {
                let _ = stream.write_all(b"421 4.4.2 Timeout, closing\r\n").await;
                return;
            }
        };
        let mut bytes = buf[..read].iter();
        // Replies to everything in this read go out together, in order (PIPELINING).
        let mut replies = String::new();
        let mut accepted = Vec::new();
        let mut quit = false;
        while bytes.len() > 0 && !quit {
            if let Some(mut message) = incoming.take() {
                let done = message.receiver.ingest(&mut bytes, &mut message.bytes);
                if message.bytes.len() > MAX_MESSAGE_SIZE {
                    message.too_big = true;
                    message.bytes.clear();
                }
                if done {
                    let envelope = std::mem::take(&mut envelope);
                    replies.push_str(&finish(behaviour, envelope, message, &mut accepted).await);
                } else {
                    incoming = Some(message);
                }
                continue;
            }
            let request = match commands.ingest(&mut bytes) {
                Ok(request) => request,
                Err(ProtoError::NeedsMoreData { .. }) => break,
                Err(error) => {
                    errors += 1;
                    replies.push_str(protocol_error(&error));
                    if errors >= MAX_ERRORS {
                        replies.push_str("421 4.7.0 Too many errors, closing the connection\r\n");
                        quit = true;
                    }
                    continue;
                }
            };
            let reply = match request {
                Request::Ehlo { host } => {
                    greeted = true;
                    envelope = Envelope::default();
                    format!(
                        "250-{domain} greets {host}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE {MAX_MESSAGE_SIZE}\r\n"
                    )
                }
                Request::Helo { host } => {
                    greeted = true;
                    envelope = Envelope::default();
                    format!("250 {domain} greets {host}\r\n")
                }
                Request::Mail { from } => {
                    if !greeted {
                        "503 5.5.1 Say EHLO first\r\n".into()
                    } else if envelope.mail_from.is_some() {
                        "503 5.5.1 Nested MAIL command\r\n".into()
                    } else if from.size > MAX_MESSAGE_SIZE {
                        "552 5.3.4 Message size exceeds fixed maximum message size\r\n".into()
                    } else {
                        envelope.mail_from = Some(from.address.into_owned());
                        "250 2.1.0 Ok\r\n".into()
                    }
                }
                Request::Rcpt { to } => {
                    if envelope.mail_from.is_none() {
                        "503 5.5.1 Need MAIL before RCPT\r\n".into()
                    } else if let Some(refusal) = behaviour.at_rcpt(&to.address, &shared.deferred) {
                        format!("{refusal}\r\n")
                    } else {
                        envelope.rcpt_to.push(to.address.into_owned());
                        "250 2.1.5 Ok\r\n".into()
                    }
                }
                Request::Data => {
                    if envelope.rcpt_to.is_empty() {
                        "554 5.5.1 No valid recipients\r\n".into()
                    } else {
                        incoming = Some(Incoming {
                            receiver: DataReceiver::new(),
                            bytes: Vec::new(),
                            too_big: false,
                        });
                        "354 End data with <CR><LF>.<CR><LF>\r\n".into()
                    }
                }
                Request::Rset => {
                    envelope = Envelope::default();
                    "250 2.0.0 Ok\r\n".into()
                }
                Request::Noop { .. } => "250 2.0.0 Ok\r\n".into(),
                Request::Quit => {
                    quit = true;
                    "221 2.0.0 Bye\r\n".into()
                }
                _ => "502 5.5.1 Command not implemented\r\n".into(),
            };
            replies.push_str(&reply);
        }
        if !replies.is_empty() && stream.write_all(replies.as_bytes()).await.is_err() {
            return;
        }
        if let Some(kind) = behaviour.follow_up() {
            for received in accepted {
                follow_up::start(kind, received, &shared);
            }
        }
        if quit {
            return;
        }
    }
}

/// The reply to a complete message; an accepted one adds one [`Received`] per recipient.
async fn finish(
    behaviour: Behaviour,
    envelope: Envelope,
    message: Incoming,
    accepted: &mut Vec<Received>,
) -> String {
    if message.too_big {
        return "552 5.3.4 Message size exceeds fixed maximum message size\r\n".into();
    }
    if let Some(refusal) = behaviour.after_data() {
        return format!("{refusal}\r\n");
    }
    if let Some(delay) = behaviour.delay() {
        tokio::time::sleep(delay).await;
    }
    let raw: Arc<[u8]> = message.bytes.into();
    let mail_from = envelope.mail_from.unwrap_or_default();
    accepted.extend(envelope.rcpt_to.into_iter().map(|rcpt_to| Received {
        domain: behaviour.domain(),
        mail_from: mail_from.clone(),
        rcpt_to,
        raw: Arc::clone(&raw),
    }));
    "250 2.0.0 Ok: queued\r\n".into()
}

fn protocol_error(error: &ProtoError) -> &'static str {
    match error {
        ProtoError::UnknownCommand => "500 5.5.1 Unknown command\r\n",
        ProtoError::InvalidSenderAddress => "501 5.1.7 Bad sender address syntax\r\n",
        ProtoError::InvalidRecipientAddress => "501 5.1.3 Bad recipient address syntax\r\n",
        ProtoError::ResponseTooLong => "500 5.5.2 Line too long\r\n",
        _ => "501 5.5.4 Syntax error\r\n",
    }
}
