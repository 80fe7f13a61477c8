//! Forwarding replies (PRODUCT.md §5): a person's reply to an email goes on to the email's
//! sender — the account's `reply_forward_to`, else the Reply-To the sender gave, else the
//! email's From ([`recipient`]) — as a new message from
//! Mailtrail with `Auto-Submitted: auto-forwarded` (RFC 3834), the reply attached whole and
//! its sender as Reply-To, so answering the forward answers the lead. Only replies are queued
//! for this (bounces and auto-replies never are), and the forward has a null envelope sender,
//! so nothing it causes can come back and loop.
//!
//! Forwards are sent directly (routes, relay or MX, STARTTLS when offered, as every email) and
//! retried with backoff for a day when the sender's server is unreachable or says 4xx.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_parser::MessageParser;
use mail_send::SmtpClientBuilder;
use mail_send::smtp::message::Message;
use mailtrail_domain::EmailAddress;
use mailtrail_domain::classify::{Verdict, classify};
use mailtrail_domain::merge::one_line;
use mailtrail_domain::retry::backoff;
use mailtrail_store::{Forward, ForwardOutcome, ForwardTargets, Store, now_ms};

use crate::OutboundConfig;
use crate::message::parse_mailboxes;
use crate::resolve::{DnsClientError, ResolveError, Resolver};
use crate::session::to_reply;

/// Replies claimed per round, and how long a claim lasts.
const BATCH: i64 = 20;
const LEASE: Duration = Duration::from_secs(600);
/// Retries: the first after a minute, doubling, at most an hour apart, for a day.
const FIRST_RETRY: Duration = Duration::from_secs(60);
const MAX_RETRY: Duration = Duration::from_secs(3600);
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);

pub struct Forwarder {
    store: Store,
    config: OutboundConfig,
    resolver: Resolver,
    poll_interval: Duration,
}

/// Why a send did not go through: `permanent` when retrying cannot help.
#[derive(Debug)]
struct NotSent {
    permanent: bool,
    detail: String,
}

impl Forwarder {
    pub fn new(
        store: Store,
        config: OutboundConfig,
        dns_servers: &[SocketAddr],
    ) -> Result<Self, DnsClientError> {
        let resolver = Resolver::new(&config, dns_servers)?;
        let poll_interval = config.poll_interval;
        Ok(Self {
            store,
            config,
            resolver,
            poll_interval,
        })
    }

    /// Forwards replies as they become due until `shutdown`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self
                .store
                .claim_forwards(BATCH, LEASE.as_millis() as i64)
                .await
            {
                Ok(due) if !due.is_empty() => {
                    for reply in due {
                        let outcome = self.forward(&reply).await;
                        if let Err(e) = self.store.finish_forward(&reply.id, &outcome).await {
                            tracing::warn!(error = %e, reply = %reply.id,
                                "cannot record a forward; it is tried again after its lease");
                        }
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the replies to forward"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    async fn forward(&self, reply: &Forward) -> ForwardOutcome {
        let email = match self.store.email(&reply.account_id, &reply.email_id).await {
            Ok(email) => email,
            Err(e) => {
                return ForwardOutcome::Failed {
                    note: format!("the email it answers cannot be read: {e}"),
                };
            }
        };
        let to = match self
            .store
            .forward_targets(&reply.account_id, &reply.email_id)
            .await
        {
            Ok(targets) => recipient(&targets),
            Err(e) => return self.retry(reply, format!("cannot read the settings: {e}")),
        };
        let message = build(
            &reply.raw,
            &to,
            &email.subject,
            &email.to,
            &email.id,
            self.config.bounce_domain(),
        );
        match self.send(&to, &message).await {
            Ok(note) => ForwardOutcome::Sent {
                note: format!("forwarded to {to}: {note}"),
            },
            Err(NotSent {
                permanent: true,
                detail,
            }) => ForwardOutcome::Failed {
                note: format!("{to}: {detail}"),
            },
            Err(NotSent { detail, .. }) => self.retry(reply, format!("{to}: {detail}")),
        }
    }

    fn retry(&self, reply: &Forward, note: String) -> ForwardOutcome {
        // The one doubling schedule; this try is attempt `attempts + 1`.
        let delay = backoff(FIRST_RETRY, MAX_RETRY, reply.attempts + 1);
        let at_ms = now_ms() + delay.as_millis() as i64;
        if at_ms > reply.received_at_ms + GIVE_UP_AFTER.as_millis() as i64 {
            ForwardOutcome::Failed {
                note: format!("gave up after a day: {note}"),
            }
        } else {
            ForwardOutcome::Retry { at_ms, note }
        }
    }

    /// One message to one recipient, over the first target that answers.
    async fn send(&self, to: &str, message: &[u8]) -> Result<String, NotSent> {
        let domain = to
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .ok_or_else(|| NotSent {
                permanent: true,
                detail: format!("'{to}' is not an address"),
            })?;
        let targets = self.resolver.targets(&domain).await.map_err(|e| match e {
            ResolveError::Permanent { detail, .. } => NotSent {
                permanent: true,
                detail,
            },
            ResolveError::Temporary { detail } => NotSent {
                permanent: false,
                detail,
            },
        })?;
        let mut failures = Vec::new();
        for target in &targets {
            let builder =
                match SmtpClientBuilder::new(target.addr.ip().to_string(), target.addr.port()) {
                    Ok(builder) => builder,
                    Err(e) => {
                        failures.push(format!("{}: {e}", target.host));
                        continue;
                    }
                };
            let mut builder = builder
                .implicit_tls(false)
                .allow_invalid_certs()
                .helo_host(&self.config.helo_name)
                .timeout(self.config.command_timeout);
            if let Some(ip) = self.config.source_address {
                builder = builder.local_ip(ip);
            }
            // The null reverse path: nothing about a forward may come back (RFC 3834 §3).
            let envelope = Message::new("", [to], message);
            let sent = match builder.connect().await {
                Ok(mut client) => client.send(envelope).await,
                Err(mail_send::Error::MissingStartTls) if !self.config.require_tls => {
                    match builder.connect_plain().await {
                        Ok(mut client) => client.send(envelope).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            match sent {
                Ok(()) => return Ok(format!("accepted by {} [{}]", target.host, target.addr)),
                Err(mail_send::Error::UnexpectedReply(reply)) => {
                    let detail = format!("{} {}", reply.code, reply.message);
                    // The one interpreter decides, as for every email: a 5xx that says it is
                    // temporary (a full mailbox, a rate limit) is tried again.
                    let verdict = classify(&to_reply(reply)).verdict;
                    return Err(NotSent {
                        permanent: matches!(verdict, Verdict::Fail { .. }),
                        detail,
                    });
                }
                Err(e) => failures.push(format!("{} [{}]: {e}", target.host, target.addr)),
            }
        }
        Err(NotSent {
            permanent: false,
            detail: format!("could not deliver: {}", failures.join("; ")),
        })
    }
}

/// Who a reply is forwarded to: the account's `reply_forward_to` when it has one (an
/// account that asked for every reply in one place gets them there), else the email's own
/// Reply-To as its sender gave it (its first address), else the email's From. A Reply-To
/// that holds no usable address is passed over for the From, so the reply still arrives.
fn recipient(targets: &ForwardTargets) -> String {
    if let Some(account) = targets.account.as_deref().filter(|a| !a.trim().is_empty()) {
        return account.to_owned();
    }
    targets
        .reply_to
        .as_deref()
        .and_then(|reply_to| parse_mailboxes(reply_to).ok())
        .and_then(|mailboxes| mailboxes.into_iter().next())
        .map_or_else(|| targets.from.clone(), |(_, address)| address.to_string())
}

/// The forward: who replied and to what, the reply's text inline, the reply itself attached.
/// The reply's From and Subject are outside text, decoded (an RFC 2047 word may hold CR LF):
/// the replier's address is used only when it is one, and every header is a typed value
/// made one line, so nothing in the reply can write a header of the forward.
fn build(
    raw: &[u8],
    to: &str,
    original_subject: &str,
    original_to: &str,
    email_id: &str,
    bounce_domain: &str,
) -> Vec<u8> {
    let reply = MessageParser::default().parse(raw);
    let sender = reply
        .as_ref()
        .and_then(|m| m.from())
        .and_then(|f| f.first());
    let replier = sender
        .and_then(|a| a.address())
        .and_then(|a| EmailAddress::parse(a).ok())
        .map_or_else(|| original_to.to_owned(), |a| a.to_string());
    let name = sender
        .and_then(|a| a.name())
        .map(|n| one_line(n).trim().to_owned())
        .filter(|n| !n.is_empty());
    let subject = one_line(
        reply
            .as_ref()
            .and_then(|m| m.subject())
            .unwrap_or(original_subject),
    );
    let text = reply
        .as_ref()
        .and_then(|m| m.body_text(0))
        .map(|t| t.into_owned())
        .unwrap_or_default();
    let body = format!(
        "{replier} replied to your email \"{original_subject}\" (sent to {original_to}).\n\
         Answer this message to write back to them; the reply is attached as it arrived.\n\n\
         ----\n{text}\n"
    );
    let from = format!("mailtrail@{bounce_domain}");
    let mut builder = MessageBuilder::new()
        .from(("Mailtrail", from.as_str()))
        .to(to)
        .reply_to(Address::new_address(name, replier.as_str()))
        .subject(Text::new(format!("Reply from {replier}: {subject}")))
        .header("Auto-Submitted", Raw::new("auto-forwarded"))
        .header("X-Mailtrail-Email", Raw::new(email_id.to_owned()))
        .text_body(body)
        .attachment("message/rfc822", "reply.eml", raw.to_vec());
    builder = builder.message_id(format!("forward.{email_id}.{}@{bounce_domain}", now_ms()));
    builder.write_to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forward_says_who_replied_and_carries_the_reply() {
        let raw = b"From: Ana <ana@lead.test>\r\nTo: reply+tok@bounce.shop.test\r\n\
                    Subject: Re: Offer\r\n\r\nYes, call me tomorrow.\r\n";
        let out = build(
            raw,
            "sales@shop.test",
            "Offer",
            "ana@lead.test",
            "e1",
            "bounce.shop.test",
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Auto-Submitted: auto-forwarded"), "{text}");
        assert!(text.contains("Reply-To: \"Ana\" <ana@lead.test>"), "{text}");
        assert!(
            text.contains("Subject: Reply from ana@lead.test: Re: Offer"),
            "{text}"
        );
        assert!(text.contains("To: <sales@shop.test>"), "{text}");
        assert!(text.contains("Yes, call me tomorrow."), "{text}");
        assert!(text.contains("message/rfc822"), "{text}");
    }

    #[test]
    fn replies_go_to_the_accounts_address_then_the_senders_reply_to_then_the_from() {
        let targets = |account: Option<&str>, reply_to: Option<&str>| ForwardTargets {
            account: account.map(str::to_owned),
            reply_to: reply_to.map(str::to_owned),
            from: "sales@shop.test".into(),
        };
        let cases = [
            (None, None, "sales@shop.test"),
            (None, Some("Ventas <Ventas@Shop.TEST>"), "Ventas@shop.test"),
            (None, Some("a@shop.test, b@shop.test"), "a@shop.test"),
            (None, Some("not an address"), "sales@shop.test"),
            (None, Some(""), "sales@shop.test"),
            (
                Some("crm@shop.test"),
                Some("ventas@shop.test"),
                "crm@shop.test",
            ),
            (Some(" "), Some("ventas@shop.test"), "ventas@shop.test"),
        ];
        for (account, reply_to, expected) in cases {
            assert_eq!(
                recipient(&targets(account, reply_to)),
                expected,
                "{account:?} {reply_to:?}"
            );
        }
    }

    /// The forward's top-level header names, in order (folded lines joined).
    fn header_names(message: &str) -> Vec<String> {
        let head = message.split("\r\n\r\n").next().unwrap_or_default();
        head.split("\r\n")
            .filter(|l| !l.starts_with([' ', '\t']))
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_ascii_lowercase()))
            .collect()
    }

    #[test]
    fn nothing_in_a_reply_writes_a_header_of_the_forward() {
        let cases = [
            (
                "From: =?utf-8?Q?Ana=0D=0ABcc:_victim@x.example?= <ana@lead.test>\r\n\
                 Subject: =?utf-8?Q?Hi=0D=0ABcc:_victim@x.example=0D=0A=0D=0ABODY?=",
                "ana@lead.test",
                "Reply from ana@lead.test: Hi Bcc: victim@x.example BODY",
            ),
            (
                "From: =?utf-8?B?QW5hDQpYLUV2aWw6IDE=?= <ana@lead.test>\r\n\
                 Subject: =?utf-8?B?SGkNClgtRXZpbDogMQ==?=",
                "ana@lead.test",
                "Reply from ana@lead.test: Hi X-Evil: 1",
            ),
            (
                "From: =?utf-8?Q?ana@lead.test=0D=0ABcc:_victim@x.example?=\r\n\
                 Subject: =?utf-8?Q?=00Hi=E2=80=A8there=C2=85?=",
                "ana@lead.test",
                "Reply from ana@lead.test:  Hi there ",
            ),
        ];
        for (headers, reply_to, subject) in cases {
            let raw = format!("{headers}\r\nTo: reply+tok@bounce.shop.test\r\n\r\nYes.\r\n");
            let out = build(
                raw.as_bytes(),
                "sales@shop.test",
                "Offer",
                "ana@lead.test",
                "e1",
                "bounce.shop.test",
            );
            let text = String::from_utf8(out.clone()).unwrap();
            let names = header_names(&text);
            for name in ["from", "to", "subject", "reply-to"] {
                let count = names.iter().filter(|n| *n == name).count();
                assert_eq!(count, 1, "{count} {name} in\n{text}");
            }
            assert!(!names.iter().any(|n| n == "bcc" || n == "x-evil"), "{text}");
            let forward = MessageParser::default().parse(&out).unwrap();
            let address = forward.reply_to().and_then(|r| r.first()).unwrap();
            assert_eq!(address.address(), Some(reply_to), "{text}");
            assert!(
                !address.name().unwrap_or_default().contains(['\r', '\n']),
                "{text}"
            );
            assert_eq!(forward.subject(), Some(subject), "{text}");
        }
    }
}
