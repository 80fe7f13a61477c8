//! One SMTP session: connect to the first target that answers, EHLO, STARTTLS when offered
//! (or required), AUTH for a relay, then MAIL/RCPT/DATA for each email in turn, checking
//! each against suppression and Permission to Email right before it is sent.

use std::collections::HashSet;
use std::time::Duration;

use mail_send::Credentials;
use mail_send::SmtpClient;
use mail_send::smtp::tls::build_tls_connector;
use mailtrail_domain::{EnhancedStatus, Reason, SmtpReply};
use mailtrail_store::{BlockCheck, Claimed};
use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EXT_PIPELINING, EXT_START_TLS, EhloResponse, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{OutboundConfig, RelayTls};
use crate::message::build;
use crate::outcome::Outcome;
use crate::resolve::Target;

/// What a session needs besides its emails.
pub struct Context<'a> {
    /// The destination's rate limit, if it has one.
    pub pace: Option<crate::limits::Pace<'a>>,
    pub config: &'a OutboundConfig,
    pub tokens: &'a mailtrail_domain::token::TokenKey,
    pub signers: &'a crate::dkim::Signers,
    /// Tracking switches and base URL, by account.
    pub tracking: &'a std::collections::HashMap<String, crate::tracking::Tracking>,
    pub store: &'a mailtrail_store::Store,
}

/// Receives each email's outcome as soon as it is known; returns once the session may go
/// on (after a suppressing outcome is committed), with what the decision means for the
/// rest of the session.
pub trait Report {
    fn outcome(
        &mut self,
        email: &Claimed,
        outcome: Outcome,
    ) -> impl Future<Output = Reported> + Send;

    /// The session has a TCP connection to `target`: the MX host later outcomes came from,
    /// for the per-attempt log line.
    fn connected(&mut self, target: &Target);
}

/// What an outcome's decision (`outcome::decide`, the reply read once by the interpreter)
/// means for the session's other emails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reported {
    /// The email's address is now blocked: later emails to it in this session are dropped.
    pub blocked: bool,
    /// The server asked the whole destination to slow down.
    pub throttle: bool,
}

/// How the session ended for the emails it did not get to.
#[derive(Debug)]
pub enum Ending {
    /// Every email has its outcome.
    Done,
    /// The connection broke or the server asked to slow down; these were not attempted.
    Stopped {
        untried: Vec<Claimed>,
        throttled: bool,
    },
}

/// An SMTP client's reply as the interpreter reads it.
pub(crate) fn to_reply(response: Response<String>) -> SmtpReply {
    let [class, subject, detail] = response.esc;
    let enhanced = EnhancedStatus::new(class, subject.into(), detail.into()).ok();
    SmtpReply::new(
        response.code,
        enhanced,
        response.message.replace(['\r', '\n'], " "),
    )
}

fn broken(target: &Target, e: impl std::fmt::Display) -> Outcome {
    Outcome::NoReply {
        reason: Reason::NetworkError,
        detail: format!(
            "lost connection with {} [{}]: {e}",
            target.host, target.addr
        ),
        permanent: false,
    }
}

/// Delivers `emails` (all for one destination) over one connection to the first of
/// `targets` that answers.
pub async fn deliver(
    ctx: &Context<'_>,
    targets: &[Target],
    emails: Vec<Claimed>,
    report: &mut impl Report,
) -> Ending {
    let config = ctx.config;
    let mut failures = Vec::new();
    for target in targets {
        let connected = match config.source_address {
            Some(local) => {
                SmtpClient::connect_using(local, target.addr, config.connect_timeout).await
            }
            None => SmtpClient::connect(target.addr, config.connect_timeout).await,
        };
        let mut client = match connected {
            Ok(client) => {
                report.connected(target);
                client
            }
            Err(e) => {
                failures.push(format!("{} [{}]: {e}", target.host, target.addr));
                continue;
            }
        };
        client.timeout = config.command_timeout;
        // The message and its final dot go out in separate writes: without NODELAY, Nagle's
        // algorithm holds the dot until the server's delayed ACK (~40 ms per email).
        let _ = client.stream.set_nodelay(true);
        if config.relay.as_ref().map(|r| r.tls) == Some(RelayTls::Implicit) {
            // A relay on port 465: TLS from the first byte, then the greeting.
            let mut client = match client.into_tls(&tls_connector(), &target.host).await {
                Ok(client) => client,
                Err(e) => {
                    failures.push(format!(
                        "{} [{}]: TLS failed: {e}",
                        target.host, target.addr
                    ));
                    continue;
                }
            };
            if let Err(failure) = greeting(&mut client, target).await {
                failures.push(failure.to_string());
                continue;
            }
            let capabilities = ehlo(&mut client, &config.helo_name).await;
            return send_all(ctx, target, client, &capabilities, emails, report).await;
        }
        if let Err(failure) = greeting(&mut client, target).await {
            failures.push(failure.to_string());
            continue;
        }
        return start(ctx, target, client, emails, report).await;
    }
    let detail = format!("could not connect: {}", failures.join("; "));
    let outcome = Outcome::NoReply {
        reason: Reason::NetworkError,
        detail,
        permanent: false,
    };
    fail_all(&emails, report, outcome).await
}

/// Why a server would not start a session. Its text is one failure in the attempt's detail,
/// so it says everything itself, the cause included.
#[derive(Debug, thiserror::Error)]
enum NoGreeting {
    #[error("{} [{}] refused to talk: {reply}", target.host, target.addr)]
    Refused { target: Target, reply: SmtpReply },
    #[error("{} [{}]: no greeting: {error}", target.host, target.addr)]
    Silent {
        target: Target,
        error: mail_send::Error,
    },
}

/// Waits for the server's greeting.
async fn greeting<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    target: &Target,
) -> Result<(), NoGreeting> {
    match client.read().await {
        Ok(greeting) if (200..300).contains(&greeting.code) => Ok(()),
        Ok(greeting) => Err(NoGreeting::Refused {
            target: target.clone(),
            reply: to_reply(greeting),
        }),
        Err(error) => Err(NoGreeting::Silent {
            target: target.clone(),
            error,
        }),
    }
}

/// TLS between MTAs does not verify certificates (as Postfix's `may` and `encrypt` levels):
/// it protects against passive eavesdropping.
fn tls_connector() -> tokio_rustls::TlsConnector {
    build_tls_connector(true).expect("a TLS configuration")
}

async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    helo: &str,
) -> EhloResponse<String> {
    match client.ehlo(helo).await {
        Ok(response) => response,
        // A server without ESMTP: plain HELO, no extensions.
        Err(_) => {
            let _ = client.cmd(format!("HELO {helo}\r\n")).await;
            EhloResponse::new(helo.to_owned())
        }
    }
}

async fn start(
    ctx: &Context<'_>,
    target: &Target,
    mut client: SmtpClient<TcpStream>,
    emails: Vec<Claimed>,
    report: &mut impl Report,
) -> Ending {
    let config = ctx.config;
    let capabilities = ehlo(&mut client, &config.helo_name).await;
    let relay_tls = config.relay.as_ref().map(|r| r.tls);
    let want_tls = relay_tls != Some(RelayTls::None);
    if want_tls && capabilities.has_capability(EXT_START_TLS) {
        match client.start_tls(&tls_connector(), &target.host).await {
            Ok(mut tls) => {
                tls.timeout = config.command_timeout;
                let capabilities = ehlo(&mut tls, &config.helo_name).await;
                return send_all(ctx, target, tls, &capabilities, emails, report).await;
            }
            Err(e) => {
                return fail_all(
                    &emails,
                    report,
                    Outcome::NoReply {
                        reason: Reason::FailedStartTls,
                        detail: format!(
                            "STARTTLS with {} [{}] failed: {e}",
                            target.host, target.addr
                        ),
                        permanent: false,
                    },
                )
                .await;
            }
        }
    }
    // Relay credentials never cross in the clear (unless the relay is configured with
    // `tls = "none"`, on a trusted network).
    let credentials = config
        .relay
        .as_ref()
        .is_some_and(|r| r.username.is_some() && r.password.is_some());
    if want_tls && (config.require_tls || credentials) {
        let _ = client.quit().await;
        let why = if credentials {
            "the relay's credentials are not sent unencrypted"
        } else {
            "require_tls is set"
        };
        return fail_all(
            &emails,
            report,
            Outcome::NoReply {
                reason: Reason::FailedStartTls,
                detail: format!(
                    "{} [{}] does not offer STARTTLS and {why}",
                    target.host, target.addr
                ),
                permanent: false,
            },
        )
        .await;
    }
    send_all(ctx, target, client, &capabilities, emails, report).await
}

async fn fail_all(emails: &[Claimed], report: &mut impl Report, outcome: Outcome) -> Ending {
    for email in emails {
        report.outcome(email, outcome.clone()).await;
    }
    Ending::Done
}

/// Sends a command and returns the reply, or the outcome that ends the session.
async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    target: &Target,
    line: String,
) -> Result<SmtpReply, Outcome> {
    client
        .cmd(line.as_bytes())
        .await
        .map(to_reply)
        .map_err(|e| broken(target, e))
}

async fn send_all<S: AsyncRead + AsyncWrite + Unpin>(
    ctx: &Context<'_>,
    target: &Target,
    mut client: SmtpClient<S>,
    capabilities: &EhloResponse<String>,
    emails: Vec<Claimed>,
    report: &mut impl Report,
) -> Ending {
    let config = ctx.config;
    if let Some(relay) = &config.relay
        && let (Some(user), Some(password)) = (&relay.username, &relay.password)
        && let Err(e) = client
            .authenticate(
                Credentials::new(user.as_str(), password.as_str()),
                capabilities,
            )
            .await
    {
        return fail_all(
            &emails,
            report,
            Outcome::NoReply {
                reason: Reason::AuthFailure,
                detail: format!("the relay {} refused our credentials: {e}", target.host),
                permanent: false,
            },
        )
        .await;
    }
    // Checked right before the attempts (docs/emails.md), all at once; what this session's own
    // outcomes block is added as it goes.
    let checks: Vec<BlockCheck<'_>> = emails
        .iter()
        .map(|email| BlockCheck {
            account_id: &email.account_id,
            to: &email.to,
            lead_id: email.lead_id.as_deref(),
        })
        .collect();
    let blocked = match ctx.store.block_reasons(&checks).await {
        Ok(blocked) => blocked,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check suppression; leaving the emails for later");
            return Ending::Stopped {
                untried: emails,
                throttled: false,
            };
        }
    };
    let mut blocked_now: HashSet<String> = HashSet::new();
    let mut queue = emails.into_iter().zip(blocked);
    // The DKIM keys and return path for the emails' (account, From): the account's verified
    // sending domain's, else the configured keys and the bounce domain. A session's emails
    // mostly share both, so one lookup serves.
    let mut signing: Option<((String, String), crate::dkim::Signers, Option<String>)> = None;
    let pipelining = capabilities.has_capability(EXT_PIPELINING);
    while let Some((email, blocked)) = queue.next() {
        let blocked = blocked.or_else(|| {
            blocked_now
                .contains(&email.to.to_lowercase())
                .then_some(Reason::Suppressed)
        });
        if let Some(reason) = blocked {
            report.outcome(&email, Outcome::Dropped(reason)).await;
            continue;
        }
        if let Some(pace) = &ctx.pace
            && let Err(e) = pace.turn().await
        {
            tracing::warn!(error = %e, "cannot take the destination's next turn; leaving the rest for later");
            return Ending::Stopped {
                untried: std::iter::once(email)
                    .chain(queue.map(|(e, _)| e))
                    .collect(),
                throttled: false,
            };
        }
        let key = (email.account_id.clone(), email.content.from.clone());
        if signing.as_ref().is_none_or(|(k, ..)| *k != key) {
            match sending_identity(ctx, &email.account_id, &email.content.from).await {
                Ok((signers, return_path)) => signing = Some((key, signers, return_path)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the sending domain's key; leaving the rest for later");
                    return Ending::Stopped {
                        untried: std::iter::once(email)
                            .chain(queue.map(|(e, _)| e))
                            .collect(),
                        throttled: false,
                    };
                }
            }
        }
        let Some((_, signers, return_path)) = &signing else {
            unreachable!("set just above")
        };
        let built = build(
            &email,
            &config.helo_name,
            config.bounce_domain(),
            return_path.as_deref().unwrap_or(config.bounce_domain()),
            ctx.tokens,
            signers,
            &ctx.tracking[&email.account_id],
        );
        // What is stored for the email cannot make a message (a submitted one that cannot be
        // read): it fails with why, and the session goes on with the next.
        let built = match built {
            Ok(built) => built,
            Err(e) => {
                let outcome = Outcome::NoReply {
                    reason: Reason::ContentError,
                    detail: e.to_string(),
                    permanent: true,
                };
                report.outcome(&email, outcome).await;
                continue;
            }
        };
        if let Err(e) = ctx.store.save_links(&email.id, &built.links).await {
            tracing::warn!(error = %e, "cannot store the email's links; leaving the rest for later");
            return Ending::Stopped {
                untried: std::iter::once(email)
                    .chain(queue.map(|(e, _)| e))
                    .collect(),
                throttled: false,
            };
        }
        let outcome = transaction(&mut client, target, config, &email, &built, pipelining).await;
        let (outcome, connection_lost) = match outcome {
            Ok(reply) => (Outcome::Reply(reply), false),
            Err(outcome) => (outcome, true),
        };
        let reported = report.outcome(&email, outcome).await;
        let throttle = reported.throttle && !connection_lost;
        if reported.blocked {
            blocked_now.insert(email.to.to_lowercase());
        }
        if connection_lost || throttle {
            if !connection_lost {
                let _ = client.quit().await;
            }
            return Ending::Stopped {
                untried: queue.map(|(e, _)| e).collect(),
                throttled: throttle,
            };
        }
    }
    let _ = client.quit().await;
    Ending::Done
}

/// How mail from `from` goes out for the account: its DKIM signers and, when `from`'s domain
/// is one of its verified sending domains, that domain's return path.
async fn sending_identity(
    ctx: &Context<'_>,
    account_id: &str,
    from: &str,
) -> Result<(crate::dkim::Signers, Option<String>), mailtrail_store::StoreError> {
    let signers = ctx
        .signers
        .with_account_key(ctx.store, account_id, from)
        .await?;
    let return_path = match mailtrail_domain::EmailAddress::parse(from) {
        Ok(from) => {
            ctx.store
                .verified_return_path(account_id, from.domain())
                .await?
        }
        Err(_) => None,
    };
    Ok((signers, return_path))
}

/// MAIL, RCPT and DATA for one email — in one write when the server offers PIPELINING
/// (RFC 2920), else one at a time. `Ok` with the reply that decides it; `Err` when the
/// connection is no longer usable.
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    target: &Target,
    config: &OutboundConfig,
    email: &Claimed,
    built: &crate::message::Built,
    pipelining: bool,
) -> Result<SmtpReply, Outcome> {
    let mail = format!("MAIL FROM:<{}>\r\n", built.envelope_from);
    let rcpt = format!("RCPT TO:<{}>\r\n", email.to);
    let data = if pipelining {
        let [mail, rcpt, data] = pipelined(client, target, [&mail, &rcpt, "DATA\r\n"]).await?;
        if !mail.is_positive() || !rcpt.is_positive() {
            if data.code() == 354 {
                // The server took DATA with no recipient: an empty message ends it, refused.
                command(client, target, ".\r\n".into()).await?;
            }
            let refusal = if mail.is_positive() { rcpt } else { mail };
            reset(client, &refusal).await;
            return Ok(refusal);
        }
        data
    } else {
        let mail = command(client, target, mail).await?;
        if !mail.is_positive() {
            reset(client, &mail).await;
            return Ok(mail);
        }
        let rcpt = command(client, target, rcpt).await?;
        if !rcpt.is_positive() {
            reset(client, &rcpt).await;
            return Ok(rcpt);
        }
        command(client, target, "DATA\r\n".into()).await?
    };
    if data.code() != 354 {
        reset(client, &data).await;
        return Ok(data);
    }
    client.timeout = config.data_timeout;
    let written = async {
        client
            .write_message(&built.bytes)
            .await
            .map_err(mail_send::Error::Io)?;
        client.read().await
    };
    let result = tokio::time::timeout(config.data_timeout, written).await;
    client.timeout = config.command_timeout;
    match result {
        Ok(Ok(reply)) => Ok(to_reply(reply)),
        Ok(Err(e)) => Err(broken(target, e)),
        Err(_) => Err(broken(
            target,
            format!("no answer to the message within {:?}", config.data_timeout),
        )),
    }
}

/// Sends a group of commands in one write and reads their replies in order. A server that
/// answers one with `421` and hangs up ends the session with that reply, not as a broken
/// connection, so the destination is still slowed down.
async fn pipelined<S: AsyncRead + AsyncWrite + Unpin, const N: usize>(
    client: &mut SmtpClient<S>,
    target: &Target,
    lines: [&str; N],
) -> Result<[SmtpReply; N], Outcome> {
    let timeout = client.timeout;
    let exchange = async {
        client.stream.write_all(lines.concat().as_bytes()).await?;
        client.stream.flush().await?;
        let mut replies = Vec::with_capacity(N);
        let mut parser = ResponseReceiver::default();
        let mut buf = [0u8; 1024];
        while replies.len() < N {
            let read = client.stream.read(&mut buf).await?;
            if read == 0 {
                break;
            }
            let mut bytes = buf[..read].iter();
            while replies.len() < N {
                match parser.parse(&mut bytes) {
                    Ok(reply) => {
                        replies.push(to_reply(reply));
                        parser.reset();
                    }
                    Err(smtp_proto::Error::NeedsMoreData { .. }) => break,
                    Err(_) => return Err(mail_send::Error::UnparseableReply),
                }
            }
        }
        Ok(replies)
    };
    let replies = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(replies)) => replies,
        Ok(Err(e)) => return Err(broken(target, e)),
        Err(_) => return Err(broken(target, mail_send::Error::Timeout)),
    };
    let closing = replies.iter().find(|reply| reply.code() == 421).cloned();
    replies.try_into().map_err(|_| match closing {
        Some(reply) => Outcome::Reply(reply),
        None => broken(target, "the server closed the connection mid-transaction"),
    })
}

/// RSET after a refused command, so the next email starts clean; skipped after 421, when the
/// server is closing the connection.
async fn reset<S: AsyncRead + AsyncWrite + Unpin>(client: &mut SmtpClient<S>, reply: &SmtpReply) {
    if reply.code() != 421 {
        let _ = tokio::time::timeout(Duration::from_secs(30), client.cmd(b"RSET\r\n")).await;
    }
}
