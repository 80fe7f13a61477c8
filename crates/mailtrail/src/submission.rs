//! SMTP submission's sink (PRODUCT.md §7): what the submission session asks of Mailtrail.
//! Logins are checked against the account's SMTP credentials, throttled per client address
//! in the store (so every node counts the same failures); each recipient is checked against
//! the account's leads (Permission to Email No is refused at RCPT); a message becomes one
//! queued email per envelope recipient through the same path as `POST /v1/emails`
//! ([`submit::submit_with`]), in one transaction, before the session answers `250`.
//!
//! The stored message is the sender's, byte for byte, save its `Bcc` header (never sent) and
//! its `X-Mailtrail-*` headers, which are instructions: `X-Mailtrail-Batch` names the batch,
//! `X-Mailtrail-Tags` lists tags (comma-separated), `X-Mailtrail-Metadata-<name>` sets one
//! metadata value.

use std::net::IpAddr;
use std::sync::Arc;

use mail_parser::MessageParser;
use mailtrail_domain::merge::one_line;
use mailtrail_domain::{EmailAddress, Permission};
use mailtrail_inbound::session::{Login, Refusal, Sink};
use mailtrail_outbound::submit::{self, Recipient, Request, Senders, SubmitError};
use mailtrail_store::login_throttle::LoginLimit;
use mailtrail_store::{Store, now_ms};
use tokio::sync::Notify;

/// Failed logins from one client address: five within a quarter of an hour lock it out for a
/// minute, each later lock twice as long, up to an hour (as the web UI's sign-in does).
const LOGIN_LIMIT: LoginLimit = LoginLimit {
    failures: 5,
    window_ms: 15 * 60 * 1000,
    lock_ms: 60 * 1000,
    lock_max_ms: 60 * 60 * 1000,
};

/// The sink of the submission listeners.
pub struct Submissions {
    pub store: Store,
    /// Which From addresses an account may use: the API's rule.
    pub senders: Senders,
    /// Woken when emails are queued.
    pub queued: Arc<Notify>,
}

/// What [`Submissions`] answers if it were asked to keep inbound mail.
#[derive(Debug)]
pub struct KeepsNoInboundMail;

impl std::fmt::Display for KeepsNoInboundMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the submission listener keeps no inbound mail")
    }
}

impl std::error::Error for KeepsNoInboundMail {}

impl Sink for Submissions {
    type Error = KeepsNoInboundMail;

    /// Never asked: a submission session hands its messages to [`Sink::submit`].
    async fn store(&self, _: &str, _: &[String], _: &[u8]) -> Result<(), KeepsNoInboundMail> {
        Err(KeepsNoInboundMail)
    }

    async fn authenticate(&self, username: &str, password: &str, client: Option<IpAddr>) -> Login {
        let key = format!(
            "smtp:{}",
            client.map_or_else(String::new, |ip| ip.to_string())
        );
        // Only failures are counted: a server's MTA opens many connections at once, all with
        // the right password, and must never lock itself out. Guesses sent together can each
        // be checked before the lock starts, at most one per connection in flight.
        match self.store.login_locked_until(&[&key], now_ms()).await {
            Ok(Some(_)) => return Login::Locked,
            Ok(None) => {}
            Err(e) => return Login::Unavailable(e.to_string()),
        }
        match self.store.verify_smtp_credential(username, password).await {
            Ok(Some(account)) => Login::Account(account),
            Ok(None) => {
                let counted = self
                    .store
                    .count_login_attempt(&[(&key, &LOGIN_LIMIT)], now_ms())
                    .await;
                if let Err(e) = counted {
                    tracing::warn!(error = %e, "cannot count a failed SMTP login");
                }
                Login::Invalid
            }
            Err(e) => Login::Unavailable(e.to_string()),
        }
    }

    async fn check_recipient(&self, account: &str, recipient: &str) -> Result<(), Refusal> {
        let address = EmailAddress::parse(recipient)
            .map_err(|e| Refusal::Permanent(format!("553 5.1.3 <{recipient}>: {e}")))?;
        let key = address.normalized();
        let leads = self
            .store
            .leads_by_address_keys(account, std::slice::from_ref(&key))
            .await
            .map_err(|e| Refusal::Temporary(e.to_string()))?;
        match leads.get(&key) {
            Some(lead) if lead.permission == Permission::No => Err(Refusal::Permanent(format!(
                "550 5.7.1 <{recipient}>: Permission to Email is No"
            ))),
            _ => Ok(()),
        }
    }

    async fn submit(
        &self,
        account: &str,
        _mail_from: &str,
        rcpt_to: &[String],
        raw: &[u8],
    ) -> Result<String, Refusal> {
        let mut request = request(raw)?;
        request.recipients = rcpt_to
            .iter()
            .map(|to| Recipient {
                to: Some(to.clone()),
                ..Default::default()
            })
            .collect();
        let accepted =
            match submit::submit_with(&self.store, self.senders, account, request, None, |_| {
                String::new()
            })
            .await
            {
                Ok(accepted) => accepted,
                Err(SubmitError::Invalid { field, message }) if field == "from" => {
                    return Err(Refusal::Permanent(format!("550 5.7.1 {message}")));
                }
                Err(SubmitError::Invalid { field, message }) => {
                    return Err(Refusal::Permanent(format!("550 5.6.0 {field}: {message}")));
                }
                Err(SubmitError::Store(e)) => return Err(Refusal::Temporary(e.to_string())),
            };
        self.queued.notify_one();
        match (accepted.queued.first(), accepted.refused.first()) {
            (Some(first), _) => Ok(first.id.clone()),
            (None, Some(refusal)) => Err(Refusal::Permanent(format!(
                "550 5.7.1 {}",
                one_line(&refusal.message)
            ))),
            (None, None) => Err(Refusal::Permanent("554 5.5.0 No recipient".into())),
        }
    }
}

/// The header name prefix of Mailtrail's instructions.
const INSTRUCTION: &str = "x-mailtrail-";

/// A submission request for `raw` (its recipients still to add), or the reply refusing it.
fn request(raw: &[u8]) -> Result<Request, Refusal> {
    let refuse = |reply: &str| Refusal::Permanent(reply.to_owned());
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| refuse("550 5.6.0 Cannot read the message"))?;
    let from = message
        .from()
        .and_then(|from| from.first())
        .and_then(|from| Some((from.name.as_deref(), from.address.as_deref()?)))
        .ok_or_else(|| refuse("550 5.7.1 The message needs a From header with an address"))?;
    let reply_to = message
        .reply_to()
        .and_then(|to| to.first())
        .and_then(|to| to.address.as_deref())
        .map(str::to_owned);
    // A message without a Subject is sent as it is; the emails' reports show "(no subject)".
    let subject = message
        .subject()
        .map(one_line)
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "(no subject)".into());
    let (kept, instructions) = strip(raw);
    let mut request = Request {
        from: from.1.to_owned(),
        from_name: from.0.map(one_line).filter(|name| !name.is_empty()),
        subject,
        reply_to,
        raw: Some(kept),
        ..Default::default()
    };
    for (name, value) in instructions {
        let name = &name[INSTRUCTION.len()..];
        if name.eq_ignore_ascii_case("batch") {
            request.batch = Some(value).filter(|batch| !batch.is_empty());
        } else if name.eq_ignore_ascii_case("tags") {
            request.tags.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|tag| !tag.is_empty())
                    .map(str::to_owned),
            );
        } else if let Some(key) = name
            .get(..9)
            .filter(|prefix| prefix.eq_ignore_ascii_case("metadata-"))
            .map(|_| &name[9..])
            .filter(|key| !key.is_empty())
        {
            request.metadata.insert(key.to_owned(), value);
        }
    }
    Ok(request)
}

/// `raw` without its `Bcc` and `X-Mailtrail-*` header fields, every other byte as sent, and
/// the instruction fields removed: (name, unfolded and trimmed value).
fn strip(raw: &[u8]) -> (Vec<u8>, Vec<(String, String)>) {
    /// What becomes of the field being read: its first line and its continuation lines.
    #[derive(PartialEq)]
    enum Field {
        Kept,
        /// `Bcc`.
        Dropped,
        /// `X-Mailtrail-*`: its lines are the last instruction's value.
        Instruction,
    }
    let mut kept = Vec::with_capacity(raw.len());
    let mut instructions: Vec<(String, String)> = Vec::new();
    let mut field = Field::Kept;
    let mut rest = raw;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, after) = rest.split_at(end);
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.is_empty() {
            // The end of the header section: the body follows as it is.
            kept.extend_from_slice(rest);
            break;
        }
        if !matches!(content[0], b' ' | b'\t') {
            let (name, value) = match content.iter().position(|&b| b == b':') {
                Some(colon) => (&content[..colon], &content[colon + 1..]),
                None => (content, &b""[..]),
            };
            let name = String::from_utf8_lossy(name).trim().to_owned();
            field = if name.eq_ignore_ascii_case("bcc") {
                Field::Dropped
            } else if name.len() > INSTRUCTION.len()
                && name[..INSTRUCTION.len()].eq_ignore_ascii_case(INSTRUCTION)
            {
                instructions.push((name, String::from_utf8_lossy(value).trim().to_owned()));
                Field::Instruction
            } else {
                Field::Kept
            };
        } else if field == Field::Instruction
            && let Some((_, value)) = instructions.last_mut()
        {
            // Unfolded: the line break goes, the continuation joins with one space.
            let more = String::from_utf8_lossy(content);
            value.push(' ');
            value.push_str(more.trim());
            *value = value.trim().to_owned();
        }
        if field == Field::Kept {
            kept.extend_from_slice(line);
        }
        rest = after;
    }
    (kept, instructions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_and_instructions_are_cut_out_and_every_other_byte_is_kept() {
        let raw = b"From: \"Sales Team\" <sales@shop.test>\r\nBcc: secret@x.test,\r\n other@x.test\r\n\
                    To: ana@x.test\r\nX-Mailtrail-Tags: spring,\r\n promo , \r\n\
                    x-mailtrail-batch: may\r\nX-Mailtrail-Metadata-Order: 42\r\n\
                    Subject: =?utf-8?q?caf=C3=A9?=\r\n\tfolded\r\n\r\nBcc: not a header\r\nX-Mailtrail-Tags: body\r\n";
        let (kept, instructions) = strip(raw);
        assert_eq!(
            String::from_utf8(kept).unwrap(),
            "From: \"Sales Team\" <sales@shop.test>\r\nTo: ana@x.test\r\n\
             Subject: =?utf-8?q?caf=C3=A9?=\r\n\tfolded\r\n\r\nBcc: not a header\r\nX-Mailtrail-Tags: body\r\n"
        );
        assert_eq!(
            instructions,
            [
                ("X-Mailtrail-Tags".to_owned(), "spring, promo ,".to_owned()),
                ("x-mailtrail-batch".to_owned(), "may".to_owned()),
                ("X-Mailtrail-Metadata-Order".to_owned(), "42".to_owned()),
            ]
        );
        let request = request(raw).unwrap();
        assert_eq!(request.from, "sales@shop.test");
        assert_eq!(request.from_name.as_deref(), Some("Sales Team"));
        assert_eq!(request.subject, "café folded");
        assert_eq!(request.tags, ["spring", "promo"]);
        assert_eq!(request.batch.as_deref(), Some("may"));
        assert_eq!(request.metadata["Order"], "42");
    }

    #[test]
    fn bare_lf_lines_and_bytes_that_are_not_utf8_are_read_without_panicking() {
        let (kept, instructions) =
            strip(b"To: a@x.test\nX-Mailtrail-Batch: \xff\xfe\nBcc: b\n\nbody\n");
        assert_eq!(kept, b"To: a@x.test\n\nbody\n");
        assert_eq!(
            instructions,
            [(
                "X-Mailtrail-Batch".to_owned(),
                "\u{fffd}\u{fffd}".to_owned()
            )]
        );
        for raw in [
            &b"X-Mailtrail-"[..],
            b"\r\n",
            b" folded first\r\n",
            b"X-Mailtrail-Tags:\r\n\r\n",
        ] {
            let _ = strip(raw);
            let _ = request(raw);
        }
    }

    #[test]
    fn a_message_without_a_from_address_or_unreadable_is_refused() {
        for raw in [
            &b"To: a@x.test\r\nSubject: hi\r\n\r\nbody\r\n"[..],
            b"From: Nobody\r\n\r\nx\r\n",
            b"",
        ] {
            let refusal = request(raw).unwrap_err();
            assert!(
                matches!(&refusal, Refusal::Permanent(reply) if reply.starts_with("550 5.")),
                "{refusal:?}"
            );
        }
    }
}
