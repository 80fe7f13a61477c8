//! What the world does after a sandbox server accepts a message: a DSN (RFC 3464), an ARF
//! complaint (RFC 5965), a person's reply or an out-of-office notice, delivered by SMTP to
//! Mailtrail's inbound listener; or, through [`crate::web`], an open, a click or a one-click
//! unsubscribe. Each runs in the background, tracked for shutdown, and is retried a few times
//! when Mailtrail is briefly unreachable.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mail_builder::MessageBuilder;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::make_boundary;
use mail_parser::MessageParser;
use mail_send::SmtpClientBuilder;

use crate::Shared;
use crate::behaviour::FollowUp;
use crate::web;

/// How long after accepting a message a mail server reports on it (a DSN, a complaint, an
/// auto-reply): after the 250, as in the real world.
const REPORT_DELAY: Duration = Duration::from_secs(1);
/// Tries per follow-up: the inbound listener may be briefly busy or restarting.
const ATTEMPTS: u32 = 4;
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// One accepted message, for one of its recipients.
pub(crate) struct Received {
    /// The sandbox domain that accepted it.
    pub(crate) domain: &'static str,
    /// The envelope sender: Mailtrail's `bounces+TOKEN@bounce_domain`.
    pub(crate) mail_from: String,
    pub(crate) rcpt_to: String,
    /// The message as received, shared by its recipients.
    pub(crate) raw: Arc<[u8]>,
}

/// A message for Mailtrail's inbound listener.
struct Mail {
    /// The envelope sender; empty for `<>`.
    from: String,
    to: String,
    body: Vec<u8>,
}

/// Starts the follow-up in the background.
pub(crate) fn start(kind: FollowUp, received: Received, shared: &Arc<Shared>) {
    let task_shared = Arc::clone(shared);
    shared.spawn(async move { run(kind, received, &task_shared).await });
}

async fn run(kind: FollowUp, received: Received, shared: &Shared) {
    let delay = match kind {
        FollowUp::Bounce | FollowUp::Complaint | FollowUp::AutoReply => REPORT_DELAY,
        FollowUp::Reply | FollowUp::Open | FollowUp::Click | FollowUp::Unsubscribe => {
            shared.config.person_delay
        }
        FollowUp::MachineOpen => Duration::ZERO,
    };
    tokio::time::sleep(delay).await;
    let raw = &received.raw;
    let mail = match kind {
        FollowUp::Bounce => dsn(&received),
        FollowUp::Complaint => arf(&received),
        FollowUp::Reply => answer(&received, false),
        FollowUp::AutoReply => answer(&received, true),
        FollowUp::Open => return web::open(raw, &shared.http).await,
        FollowUp::MachineOpen => return web::machine_open(raw, &shared.http).await,
        FollowUp::Click => return web::click(raw, &shared.http).await,
        FollowUp::Unsubscribe => return web::unsubscribe(raw, &shared.http).await,
    };
    let Some(mail) = mail else { return };
    let inbound = shared.config.inbound_smtp;
    retrying("send a follow-up message", &mail.to, || {
        send(inbound, received.domain, &mail)
    })
    .await;
}

/// Why one try of a follow-up failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TryError {
    /// mail-send describes a bad client setup only in words.
    #[error("cannot set up the SMTP client: {0}")]
    SmtpSetup(String),
    #[error("SMTP with the inbound listener failed")]
    Smtp(#[source] mail_send::Error),
    #[error("the HTTP request failed")]
    Http(#[source] reqwest::Error),
    #[error("HTTP {0}")]
    ServerError(reqwest::StatusCode),
}

/// Runs `attempt` until it succeeds, [`ATTEMPTS`] times at most; failures are logged.
pub(crate) async fn retrying<F, Fut>(what: &str, target: &str, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), TryError>>,
{
    for n in 1..=ATTEMPTS {
        match attempt().await {
            Ok(()) => return,
            Err(error) => {
                let error = &error as &dyn std::error::Error;
                tracing::warn!(
                    what,
                    target,
                    attempt = n,
                    of = ATTEMPTS,
                    error,
                    "sandbox follow-up failed"
                );
            }
        }
        if n < ATTEMPTS {
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }
}

/// Delivers one message over plain SMTP (no TLS on loopback).
async fn send(inbound: SocketAddr, helo: &str, mail: &Mail) -> Result<(), TryError> {
    let host = match inbound.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip @ IpAddr::V4(_) => ip.to_string(),
    };
    let mut client = SmtpClientBuilder::new(host, inbound.port())
        .map_err(TryError::SmtpSetup)?
        .implicit_tls(false)
        .helo_host(helo)
        .timeout(Duration::from_secs(30))
        .connect_plain()
        .await
        .map_err(TryError::Smtp)?;
    let message = mail_send::smtp::message::Message::new(
        mail.from.as_str(),
        [mail.to.as_str()],
        mail.body.as_slice(),
    );
    client.send(message).await.map_err(TryError::Smtp)?;
    client.quit().await.map_err(TryError::Smtp)
}

/// A Postfix-style DSN reporting the recipient unknown, to the envelope sender.
fn dsn(received: &Received) -> Option<Mail> {
    if received.mail_from.is_empty() {
        // RFC 5321 §4.5.5: a message with a null sender is never bounced.
        tracing::debug!("no DSN for a message with a null sender");
        return None;
    }
    let (domain, rcpt) = (received.domain, &received.rcpt_to);
    let diagnostic = format!(
        "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"
    );
    let boundary = make_boundary(".");
    let date = Date::now().to_rfc822();
    let mut body = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{domain}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}@{domain}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host {domain}.\r\n\
         \r\n\
         I'm sorry to have to inform you that your message could not\r\n\
         be delivered to one or more recipients.\r\n\
         \r\n\
         <{rcpt}>: host {domain}[127.0.0.1] said: {diagnostic}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {domain}\r\n\
         Arrival-Date: {date}\r\n\
         \r\n\
         Final-Recipient: rfc822; {rcpt}\r\n\
         Original-Recipient: rfc822; {rcpt}\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         Remote-MTA: dns; {domain}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Undelivered Message Headers\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n",
        to = received.mail_from,
        id = make_boundary("."),
    )
    .into_bytes();
    body.extend_from_slice(header_block(&received.raw));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Some(Mail {
        from: String::new(),
        to: received.mail_from.clone(),
        body,
    })
}

/// An ARF abuse report, as a mailbox provider's feedback loop sends it, to `fbl@` the domain
/// of the envelope sender, with the original headers (and so the token) returned.
fn arf(received: &Received) -> Option<Mail> {
    let Some((_, bounce_domain)) = received.mail_from.rsplit_once('@') else {
        tracing::warn!(mail_from = %received.mail_from, "no complaint: the envelope sender has no domain");
        return None;
    };
    let (domain, rcpt) = (received.domain, &received.rcpt_to);
    let to = format!("fbl@{bounce_domain}");
    let boundary = make_boundary(".");
    let date = Date::now().to_rfc822();
    let mut body = format!(
        "From: Feedback Loop <feedback@{domain}>\r\n\
         To: <{to}>\r\n\
         Subject: Abuse report\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}@{domain}>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is an email abuse report for an email message received by {domain}.\r\n\
         The recipient marked it as spam.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: message/feedback-report\r\n\
         \r\n\
         Feedback-Type: abuse\r\n\
         User-Agent: Mailtrail-Sandbox/{version}\r\n\
         Version: 1\r\n\
         Original-Mail-From: <{mail_from}>\r\n\
         Original-Rcpt-To: <{rcpt}>\r\n\
         Arrival-Date: {date}\r\n\
         Reporting-MTA: dns; {domain}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n",
        version = env!("CARGO_PKG_VERSION"),
        mail_from = received.mail_from,
        id = make_boundary("."),
    )
    .into_bytes();
    body.extend_from_slice(header_block(&received.raw));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Some(Mail {
        from: format!("feedback@{domain}"),
        to,
        body,
    })
}

/// A person's reply, or (`automatic`) an out-of-office notice, from the recipient to the
/// message's Reply-To address (its From when it has none).
fn answer(received: &Received, automatic: bool) -> Option<Mail> {
    let Some(original) = parse(&received.raw) else {
        tracing::warn!("no reply: the message cannot be parsed");
        return None;
    };
    let Some(to) = original
        .reply_to()
        .or_else(|| original.from())
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_owned)
    else {
        tracing::warn!("no reply: the message has neither Reply-To nor From");
        return None;
    };
    let subject = original.subject().unwrap_or_default();
    let domain = received.domain;
    let mut reply = MessageBuilder::new()
        .from(received.rcpt_to.as_str())
        .to(to.as_str())
        .message_id(format!("{}@{domain}", make_boundary(".")));
    if let Some(id) = original.message_id() {
        reply = reply.in_reply_to(id.to_owned()).references(id.to_owned());
    }
    let (reply, from) = if automatic {
        let reply = reply
            .subject(format!("Out of office: {subject}"))
            .header("Auto-Submitted", Raw::new("auto-replied"))
            .text_body(
                "I am out of the office this week, with limited access to email.\r\n\
                 I will read your message when I am back.\r\n",
            );
        // RFC 3834 §3.3: automatic responses go out with a null envelope sender.
        (reply, String::new())
    } else {
        let subject = if subject.to_ascii_lowercase().starts_with("re:") {
            subject.to_owned()
        } else {
            format!("Re: {subject}")
        };
        let text = original.body_text(0).unwrap_or_default();
        let quoted = text.lines().map(str::trim).find(|l| !l.is_empty());
        let body = format!(
            "Thanks, this is interesting. Could you tell me more about the pricing?\r\n\r\n> {}\r\n",
            quoted.unwrap_or_default()
        );
        let reply = reply.subject(subject).text_body(body);
        (reply, received.rcpt_to.clone())
    };
    let body = match reply.write_to_vec() {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(%error, "no reply: it cannot be written");
            return None;
        }
    };
    Some(Mail { from, to, body })
}

/// Parses a received message. mail-parser asserts on some malformed MIME nesting in debug
/// builds; whatever a message holds, it must not take a follow-up down with a panic.
pub(crate) fn parse(raw: &[u8]) -> Option<mail_parser::Message<'_>> {
    std::panic::catch_unwind(|| MessageParser::default().parse(raw)).unwrap_or_default()
}

/// The header block of a raw message, with its final line break.
fn header_block(raw: &[u8]) -> &[u8] {
    if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        &raw[..end + 2]
    } else if let Some(end) = raw.windows(2).position(|w| w == b"\n\n") {
        &raw[..end + 1]
    } else {
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_block_ends_at_the_first_empty_line() {
        assert_eq!(
            header_block(b"A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_block(b"A: 1\n\nbody"), b"A: 1\n");
        assert_eq!(header_block(b"A: 1\r\n"), b"A: 1\r\n");
    }

    #[test]
    fn nothing_is_sent_back_for_garbage_or_a_null_sender() {
        let received = |mail_from: &str, raw: &[u8]| Received {
            domain: "x.sandbox.test",
            mail_from: mail_from.into(),
            rcpt_to: "ana@x.sandbox.test".into(),
            raw: raw.into(),
        };
        assert!(dsn(&received("", b"Subject: x\r\n\r\nhi\r\n")).is_none());
        assert!(arf(&received("nodomain", b"")).is_none());
        let _ = answer(&received("a@b", b"\x00\xff garbage\r\n\r\n"), true);
        assert!(answer(&received("a@b", b"Subject: no sender\r\n\r\nhi\r\n"), false).is_none());
    }
}
