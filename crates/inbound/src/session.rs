//! One SMTP conversation with a client (RFC 5321): EHLO/HELO, MAIL, RCPT, DATA with
//! PIPELINING, 8BITMIME and SIZE, and STARTTLS (RFC 3207) when a certificate is configured:
//! the session ends with [`Ending::StartTls`], the listener wraps the connection, and a new
//! session (no greeting, the client says EHLO again) continues over TLS. Every way a client can misbehave — unknown commands, bad
//! order, relaying, oversized or endless messages, silence — gets a clear reply and leaves
//! nothing behind; only a complete message is stored, and only then is it acknowledged.
//!
//! The same session serves message submission (RFC 6409, [`run_submission`]): AUTH PLAIN and
//! LOGIN (RFC 4954) are offered and taken only over TLS, MAIL needs a login, any recipient
//! is taken (no relay check: the login is the permission), each is checked by the sink, and
//! the message is handed to the sink as the logged-in account's.

use std::net::IpAddr;

use data_encoding::BASE64;
use smtp_proto::request::receiver::{DataReceiver, RequestReceiver};
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN, Error as ProtoError, Request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::{InboundConfig, accepts, bounce_to_return_path};

/// Where a complete message goes: stored durably, or refused.
pub trait Sink {
    /// Why a message cannot be kept, or a return path looked up, right now: logged, and the
    /// client is told to try again later.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores a message; `Err` when it cannot be kept right now.
    fn store(
        &self,
        mail_from: &str,
        rcpt_to: &[String],
        raw: &[u8],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Whether `domain` is a sending domain's registered return path, whose `bounces+TOKEN@`
    /// addresses Mailtrail accepts; `Err` when that cannot be known right now. A sink that
    /// knows none accepts only the bounce domain's addresses.
    fn is_return_path(
        &self,
        domain: &str,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        let _ = domain;
        async { Ok(false) }
    }

    /// Submission: the account a client at `client` logs in as with `username` and
    /// `password`. A sink that takes no submissions knows no one.
    fn authenticate(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> impl Future<Output = Login> + Send {
        let _ = (username, password, client);
        async { Login::Invalid }
    }

    /// Submission: whether `account` may send to `recipient`.
    fn check_recipient(
        &self,
        account: &str,
        recipient: &str,
    ) -> impl Future<Output = Result<(), Refusal>> + Send {
        let _ = (account, recipient);
        async { Ok(()) }
    }

    /// Submission: queues a message as `account`'s, durably, and returns the id of its
    /// first email.
    fn submit(
        &self,
        account: &str,
        mail_from: &str,
        rcpt_to: &[String],
        raw: &[u8],
    ) -> impl Future<Output = Result<String, Refusal>> + Send {
        let _ = (account, mail_from, rcpt_to, raw);
        async {
            Err(Refusal::Temporary(
                "this listener takes no submissions".into(),
            ))
        }
    }
}

/// What a login attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// The credentials are the account's with this id.
    Account(String),
    /// Unknown, revoked or wrong: `535 5.7.8`.
    Invalid,
    /// Too many failures from this client: it is told so and disconnected, unchecked.
    Locked,
    /// Cannot be checked now (why, for the log): `454 4.7.0`.
    Unavailable(String),
}

/// Why the sink would not take a recipient or a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A complete reply for the client, such as `550 5.7.1 …` (no CRLF).
    Permanent(String),
    /// Cannot be done now (why, for the log): the client is told `451 4.3.0` and retries.
    Temporary(String),
}

/// Where a submission session stands with its client's login.
enum Auth {
    /// `AUTH PLAIN` without an initial response: waiting for it after `334 `.
    Plain,
    /// `AUTH LOGIN`: waiting for the username after `334 VXNlcm5hbWU6` ("Username:").
    LoginUsername,
    /// Waiting for the password after `334 UGFzc3dvcmQ6` ("Password:").
    LoginPassword(String),
}

/// The longest AUTH continuation line taken (RFC 4954 §4: at least 12288 octets).
const MAX_AUTH_LINE: usize = 12288;

/// What the session needs to know.
pub struct Settings<'a> {
    pub config: &'a InboundConfig,
    /// The domain of Mailtrail's own addresses.
    pub bounce_domain: &'a str,
    pub tls: Tls,
}

/// Where the connection stands with TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// No certificate configured: STARTTLS is not offered.
    Unavailable,
    /// In the clear, STARTTLS offered.
    Offered,
    /// Already encrypted: no greeting (the client goes on with EHLO), no second STARTTLS.
    Active,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client quit, hung up, timed out or erred too often.
    Closed,
    /// The client asked for TLS and was told `220`: the caller starts the handshake.
    StartTls,
}

#[derive(Default)]
struct Transaction {
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

/// Reads from `stream` until the client quits, hangs up, times out or errs too often, or asks
/// for TLS.
pub async fn run<S, K>(stream: &mut S, settings: &Settings<'_>, sink: &K) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: Sink,
{
    converse(stream, settings, None, sink).await
}

/// [`run`] for message submission by the client at `client` (for login throttling).
/// `settings.bounce_domain` is unused: every recipient is the sink's to check.
pub async fn run_submission<S, K>(
    stream: &mut S,
    settings: &Settings<'_>,
    client: Option<IpAddr>,
    sink: &K,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: Sink,
{
    converse(stream, settings, Some(client), sink).await
}

/// The `220` a session opens with; over implicit TLS (RFC 8314) the listener sends it after
/// the handshake, and the session, already under TLS, does not.
pub fn greeting(config: &InboundConfig) -> String {
    format!("220 {} ESMTP Mailtrail\r\n", config.hostname)
}

/// The session; `submission` is `Some(client address)` for a submission listener.
async fn converse<S, K>(
    stream: &mut S,
    settings: &Settings<'_>,
    submission: Option<Option<IpAddr>>,
    sink: &K,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: Sink,
{
    let config = settings.config;
    if settings.tls != Tls::Active && stream.write_all(greeting(config).as_bytes()).await.is_err() {
        return Ending::Closed;
    }
    let mut commands = RequestReceiver::default();
    let mut greeted = false;
    let mut transaction = Transaction::default();
    // Some while a message is being received: the receiver and what has come so far.
    let mut data: Option<(DataReceiver, Vec<u8>, bool)> = None;
    let mut errors = 0;
    // Submission: the logged-in account, and a login waiting for its next line.
    let mut account: Option<String> = None;
    let mut auth: Option<Auth> = None;
    let mut auth_line = Vec::new();
    // The command line being read, as sent: smtp-proto's parser keeps it only in part.
    let mut line = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let wait = if data.is_some() {
            config.data_timeout
        } else {
            config.command_timeout
        };
        let read = match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ending::Closed, // hung up: an unfinished message is dropped
            Ok(Ok(n)) => n,
            Err(_) => {
                let _ = stream
                    .write_all(b"421 4.4.2 Timeout: closing the connection\r\n")
                    .await;
                return Ending::Closed;
            }
        };
        let mut bytes = buf[..read].iter();
        let mut replies = String::new();
        while bytes.len() > 0 {
            if let Some((receiver, message, too_big)) = &mut data {
                let done = receiver.ingest(&mut bytes, message);
                if message.len() > config.max_message_size {
                    // Keep reading to the end of the message, but stop keeping it.
                    *too_big = true;
                    message.clear();
                }
                if !done {
                    continue;
                }
                let (_, message, too_big) = data.take().expect("receiving");
                let reply = match (&account, too_big) {
                    (Some(account), false) => submit(&transaction, account, &message, sink).await,
                    _ => finish(&transaction, message, too_big, config, sink).await,
                };
                replies.push_str(&reply);
                transaction = Transaction::default();
                continue;
            }
            if let Some(step) = &auth {
                // An AUTH continuation line: read as it is, not as a command.
                let Some(end) = bytes.as_slice().iter().position(|&b| b == b'\n') else {
                    auth_line.extend(bytes.by_ref().take(MAX_AUTH_LINE + 1));
                    if auth_line.len() > MAX_AUTH_LINE {
                        auth = None;
                        auth_line.clear();
                        replies.push_str("500 5.5.6 Authentication exchange line is too long\r\n");
                    }
                    continue;
                };
                auth_line.extend(bytes.by_ref().take(end + 1));
                let step = match step {
                    Auth::Plain => Auth::Plain,
                    Auth::LoginUsername => Auth::LoginUsername,
                    Auth::LoginPassword(user) => Auth::LoginPassword(user.clone()),
                };
                auth = None;
                let answer = std::mem::take(&mut auth_line);
                let answer = answer.trim_ascii_end();
                let reply = if answer.len() > MAX_AUTH_LINE {
                    "500 5.5.6 Authentication exchange line is too long\r\n".to_owned()
                } else if answer == b"*" {
                    "501 5.7.0 Authentication cancelled\r\n".to_owned()
                } else {
                    match (step, decode(answer)) {
                        (_, None) => BAD_BASE64.to_owned(),
                        (Auth::Plain, Some(plain)) => match parse_plain(&plain) {
                            Some((user, password)) => {
                                let login = sink
                                    .authenticate(&user, &password, submission.flatten())
                                    .await;
                                logged_in(login, &mut account)
                            }
                            None => BAD_PLAIN.to_owned(),
                        },
                        (Auth::LoginUsername, Some(user)) => match String::from_utf8(user) {
                            Ok(user) => {
                                auth = Some(Auth::LoginPassword(user));
                                "334 UGFzc3dvcmQ6\r\n".to_owned()
                            }
                            Err(_) => BAD_BASE64.to_owned(),
                        },
                        (Auth::LoginPassword(user), Some(password)) => {
                            match String::from_utf8(password) {
                                Ok(password) => {
                                    let login = sink
                                        .authenticate(&user, &password, submission.flatten())
                                        .await;
                                    logged_in(login, &mut account)
                                }
                                Err(_) => BAD_BASE64.to_owned(),
                            }
                        }
                    }
                };
                if queue_reply(&reply, &mut replies, &mut errors, config.max_errors) {
                    let _ = stream.write_all(replies.as_bytes()).await;
                    return Ending::Closed;
                }
                continue;
            }
            let before = bytes.as_slice();
            let request = commands.ingest(&mut bytes);
            let consumed = &before[..before.len() - bytes.len()];
            line.extend_from_slice(
                &consumed[..consumed.len().min(MAX_LINE.saturating_sub(line.len()))],
            );
            if let Err(ProtoError::NeedsMoreData { .. }) = request {
                break;
            }
            let command_line = std::mem::take(&mut line);
            let too_big = declared_size(&command_line)
                .is_some_and(|size| size > config.max_message_size as u64);
            let reply: String = match request {
                // RFC 1870: a size over the limit is 552, however many digits it has.
                Err(ProtoError::InvalidParameter { param: "SIZE" }) if too_big => {
                    TOO_BIG.into()
                }
                Err(e) => protocol_error(&e).into(),
                Ok(Request::Ehlo { host }) => {
                    greeted = true;
                    transaction = Transaction::default();
                    let starttls = if settings.tls == Tls::Offered {
                        "250-STARTTLS\r\n"
                    } else {
                        ""
                    };
                    // RFC 4954 §4: no AUTH in the clear, where a password could be read.
                    let auth = if submission.is_some() && settings.tls == Tls::Active {
                        "250-AUTH PLAIN LOGIN\r\n"
                    } else {
                        ""
                    };
                    format!(
                        "250-{} greets {host}\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE {}\r\n{starttls}{auth}250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n",
                        config.hostname, config.max_message_size
                    )
                }
                Ok(Request::Helo { host } | Request::Lhlo { host }) => {
                    greeted = true;
                    transaction = Transaction::default();
                    format!("250 {} greets {host}\r\n", config.hostname)
                }
                Ok(Request::Mail { from }) => {
                    if !greeted {
                        "503 5.5.1 Say EHLO first\r\n".into()
                    } else if transaction.mail_from.is_some() {
                        "503 5.5.1 Nested MAIL command\r\n".into()
                    } else if too_big {
                        TOO_BIG.into()
                    } else if submission.is_some() && account.is_none() {
                        "530 5.7.0 Authentication required\r\n".into()
                    } else {
                        transaction.mail_from = Some(from.address.into_owned());
                        "250 2.1.0 Ok\r\n".into()
                    }
                }
                Ok(Request::Rcpt { to }) if submission.is_some() => match &account {
                    _ if transaction.mail_from.is_none() => {
                        "503 5.5.1 Need MAIL before RCPT\r\n".into()
                    }
                    _ if transaction.rcpt_to.len() >= config.max_recipients => {
                        "452 4.5.3 Too many recipients\r\n".into()
                    }
                    None => "530 5.7.0 Authentication required\r\n".into(),
                    Some(account) => match sink.check_recipient(account, &to.address).await {
                        Ok(()) => {
                            transaction.rcpt_to.push(to.address.into_owned());
                            "250 2.1.5 Ok\r\n".into()
                        }
                        Err(Refusal::Permanent(reply)) => format!("{reply}\r\n"),
                        Err(Refusal::Temporary(why)) => {
                            tracing::error!(%why, "cannot check a submitted recipient; the client is told to retry");
                            "451 4.3.0 Cannot check the recipient now, try again later\r\n".into()
                        }
                    },
                },
                Ok(Request::Rcpt { to }) => {
                    let ours = if transaction.mail_from.is_none() {
                        Ok(false)
                    } else {
                        is_ours(&to.address, settings.bounce_domain, sink).await
                    };
                    if transaction.mail_from.is_none() {
                        "503 5.5.1 Need MAIL before RCPT\r\n".into()
                    } else if let Err(why) = ours {
                        tracing::error!(%why, "cannot look return paths up; the client is told to retry");
                        "451 4.3.0 Cannot check the recipient now, try again later\r\n".into()
                    } else if matches!(ours, Ok(false)) {
                        format!("550 5.7.1 <{}>: Relay access denied\r\n", to.address)
                    } else if transaction.rcpt_to.len() >= config.max_recipients {
                        "452 4.5.3 Too many recipients\r\n".into()
                    } else {
                        transaction.rcpt_to.push(to.address.into_owned());
                        "250 2.1.5 Ok\r\n".into()
                    }
                }
                Ok(Request::Data) => {
                    if transaction.rcpt_to.is_empty() {
                        "503 5.5.1 No valid recipients\r\n".into()
                    } else {
                        data = Some((data_receiver(), Vec::new(), false));
                        "354 End data with <CR><LF>.<CR><LF>\r\n".into()
                    }
                }
                Ok(Request::Bdat { .. }) => "502 5.5.1 CHUNKING is not offered\r\n".into(),
                Ok(Request::Rset) => {
                    transaction = Transaction::default();
                    "250 2.0.0 Ok\r\n".into()
                }
                Ok(Request::Noop { .. }) => "250 2.0.0 Ok\r\n".into(),
                Ok(Request::Vrfy { .. }) => "252 2.5.0 Cannot verify, but will accept the message\r\n".into(),
                Ok(Request::Quit) => {
                    replies.push_str("221 2.0.0 Bye\r\n");
                    let _ = stream.write_all(replies.as_bytes()).await;
                    return Ending::Closed;
                }
                Ok(Request::StartTls) => match settings.tls {
                    Tls::Unavailable => "502 5.5.1 STARTTLS is not offered\r\n".into(),
                    Tls::Active => "503 5.5.1 TLS is already active\r\n".into(),
                    Tls::Offered if !greeted => "503 5.5.1 Say EHLO first\r\n".into(),
                    Tls::Offered => {
                        // Whatever the client pipelined after STARTTLS is dropped unread: it
                        // was sent in the clear and must not be taken as said over TLS.
                        replies.push_str("220 2.0.0 Ready to start TLS\r\n");
                        return match stream.write_all(replies.as_bytes()).await {
                            Ok(()) => Ending::StartTls,
                            Err(_) => Ending::Closed,
                        };
                    }
                },
                Ok(Request::Auth {
                    mechanism,
                    initial_response,
                }) if submission.is_some() => {
                    if settings.tls != Tls::Active {
                        "530 5.7.0 Must issue a STARTTLS command first\r\n".into()
                    } else if !greeted {
                        "503 5.5.1 Say EHLO first\r\n".into()
                    } else if account.is_some() {
                        "503 5.5.1 Already authenticated\r\n".into()
                    } else if transaction.mail_from.is_some() {
                        "503 5.5.1 AUTH is not allowed during a mail transaction\r\n".into()
                    } else if mechanism == AUTH_PLAIN && initial_response.is_empty() {
                        auth = Some(Auth::Plain);
                        "334 \r\n".into()
                    } else if mechanism == AUTH_PLAIN {
                        // "=" is an empty initial response (RFC 4954 §4).
                        let given = if initial_response == "=" { "" } else { &initial_response };
                        match decode(given.as_bytes()).as_deref().map(parse_plain) {
                            None => BAD_BASE64.into(),
                            Some(None) => BAD_PLAIN.into(),
                            Some(Some((user, password))) => {
                                let login = sink.authenticate(&user, &password, submission.flatten()).await;
                                logged_in(login, &mut account)
                            }
                        }
                    } else if mechanism == AUTH_LOGIN && initial_response.is_empty() {
                        auth = Some(Auth::LoginUsername);
                        "334 VXNlcm5hbWU6\r\n".into()
                    } else if mechanism == AUTH_LOGIN {
                        // Some clients send the username with the command.
                        match decode(initial_response.as_bytes()).map(String::from_utf8) {
                            Some(Ok(user)) => {
                                auth = Some(Auth::LoginPassword(user));
                                "334 UGFzc3dvcmQ6\r\n".into()
                            }
                            _ => BAD_BASE64.into(),
                        }
                    } else {
                        "504 5.5.4 Unrecognized authentication type\r\n".into()
                    }
                }
                Ok(Request::Auth { .. }) => "502 5.5.1 AUTH is not offered: this server only receives mail for its own addresses\r\n".into(),
                Ok(_) => "502 5.5.1 Command not implemented\r\n".into(),
            };
            if queue_reply(&reply, &mut replies, &mut errors, config.max_errors) {
                let _ = stream.write_all(replies.as_bytes()).await;
                return Ending::Closed;
            }
        }
        if !replies.is_empty() && stream.write_all(replies.as_bytes()).await.is_err() {
            return Ending::Closed;
        }
    }
}

const TOO_BIG: &str = "552 5.3.4 Message size exceeds fixed limit\r\n";
const BAD_BASE64: &str = "501 5.5.2 Cannot decode the response as base64\r\n";
const BAD_PLAIN: &str = "501 5.5.2 Not a PLAIN response: authzid NUL authcid NUL password\r\n";

/// The bytes of a base64 AUTH response; `None` when it is not base64.
fn decode(text: &[u8]) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

/// The username and password of a PLAIN response (RFC 4616): `[authzid] NUL authcid NUL
/// passwd`. An authorization identity other than the username would be acting for someone
/// else, which no credential here allows: refused, as is anything not UTF-8.
fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|&b| b == 0);
    let (authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || user.is_empty() || !(authzid.is_empty() || authzid == user) {
        return None;
    }
    Some((
        String::from_utf8(user.to_vec()).ok()?,
        String::from_utf8(password.to_vec()).ok()?,
    ))
}

/// The reply to a login attempt, noting the account on success.
fn logged_in(login: Login, account: &mut Option<String>) -> String {
    match login {
        Login::Account(id) => {
            *account = Some(id);
            "235 2.7.0 Authentication successful\r\n".into()
        }
        Login::Invalid => "535 5.7.8 Authentication credentials invalid\r\n".into(),
        Login::Locked => {
            "421 4.7.0 Too many failed logins from your address, try again later\r\n".into()
        }
        Login::Unavailable(why) => {
            tracing::error!(%why, "cannot check a login; the client is told to retry");
            "454 4.7.0 Temporary authentication failure\r\n".into()
        }
    }
}

/// Ends a submission's DATA: the sink queues it, or says why not.
async fn submit(
    transaction: &Transaction,
    account: &str,
    message: &[u8],
    sink: &impl Sink,
) -> String {
    let from = transaction.mail_from.as_deref().unwrap_or_default();
    match sink
        .submit(account, from, &transaction.rcpt_to, message)
        .await
    {
        Ok(id) => format!("250 2.0.0 Ok: queued as {id}\r\n"),
        Err(Refusal::Permanent(reply)) => format!("{reply}\r\n"),
        Err(Refusal::Temporary(why)) => {
            tracing::error!(%why, "cannot queue a submitted message; the client is told to retry");
            "451 4.3.0 Cannot queue the message now, try again later\r\n".into()
        }
    }
}
const TOO_MANY_ERRORS: &str = "421 4.7.0 Too many errors, closing the connection\r\n";

/// Queues `reply` behind the pipelined ones; whether the session ends with it (a `421`, or
/// one refusal too many, which adds its own `421`): the caller writes what is queued and
/// closes. Every refused command counts, relay probes and garbage alike: a client cannot
/// try addresses or commands for ever.
fn queue_reply(reply: &str, replies: &mut String, errors: &mut usize, max_errors: usize) -> bool {
    replies.push_str(reply);
    if reply.starts_with("421") {
        return true;
    }
    if reply.starts_with('5') {
        *errors += 1;
        if *errors >= max_errors {
            replies.push_str(TOO_MANY_ERRORS);
            return true;
        }
    }
    false
}

/// The longest command line kept for [`declared_size`]; smtp-proto refuses longer ones.
const MAX_LINE: usize = smtp_proto::request::receiver::MAX_LINE_LENGTH;

/// A receiver for the data after `354`. smtp-proto's starts as if in the middle of a line, so
/// a `.` right after the `354` (an empty message) would not end the data and a leading `..`
/// would not be un-stuffed; fed the CRLF that ended the DATA command, it starts at a line.
fn data_receiver() -> DataReceiver {
    let mut receiver = DataReceiver::new();
    let mut primed = Vec::new();
    receiver.ingest(&mut b"\r\n".iter(), &mut primed);
    receiver
}

/// The `SIZE=` a MAIL command declares (RFC 1870), read from the line as sent, saturating:
/// smtp-proto's own reading wraps an overflowing value round to a small number, which would
/// be accepted, or refuses as unsupported. `None` without a number; the largest value when it
/// is given twice.
fn declared_size(line: &[u8]) -> Option<u64> {
    line.split(|b| b.is_ascii_whitespace())
        .filter_map(|param| {
            let (name, value) = param.split_at_checked(5)?;
            name.eq_ignore_ascii_case(b"size=").then_some(value)
        })
        .filter_map(|value| {
            value.iter().try_fold(0u64, |size, &digit| {
                digit.is_ascii_digit().then(|| {
                    size.saturating_mul(10)
                        .saturating_add(u64::from(digit - b'0'))
                })
            })
        })
        .max()
}

/// Whether mail for `recipient` is Mailtrail's: one of its addresses at the bounce domain, or
/// a VERP bounce address at a registered return path (asked of the sink: RCPT is not hot).
async fn is_ours<K: Sink>(
    recipient: &str,
    bounce_domain: &str,
    sink: &K,
) -> Result<bool, K::Error> {
    if accepts(recipient, bounce_domain) {
        return Ok(true);
    }
    match bounce_to_return_path(recipient) {
        Some(domain) => sink.is_return_path(domain).await,
        None => Ok(false),
    }
}

/// Ends a DATA: stores the message, or says why not.
async fn finish(
    transaction: &Transaction,
    message: Vec<u8>,
    too_big: bool,
    config: &InboundConfig,
    sink: &impl Sink,
) -> String {
    if too_big {
        return format!(
            "552 5.3.4 Message size exceeds fixed limit of {} bytes\r\n",
            config.max_message_size
        );
    }
    let from = transaction.mail_from.as_deref().unwrap_or_default();
    match sink.store(from, &transaction.rcpt_to, &message).await {
        Ok(()) => "250 2.0.0 Ok: stored\r\n".into(),
        Err(why) => {
            tracing::error!(%why, "cannot store an inbound message; the client is told to retry");
            "451 4.3.0 Cannot store the message now, try again later\r\n".into()
        }
    }
}

fn protocol_error(error: &ProtoError) -> &'static str {
    match error {
        ProtoError::UnknownCommand => "500 5.5.1 Unknown command\r\n",
        ProtoError::InvalidSenderAddress => "501 5.1.7 Bad sender address syntax\r\n",
        ProtoError::InvalidRecipientAddress => "501 5.1.3 Bad recipient address syntax\r\n",
        ProtoError::ResponseTooLong => "500 5.5.2 Line too long\r\n",
        ProtoError::InvalidParameter { .. } | ProtoError::UnsupportedParameter { .. } => {
            "555 5.5.4 Unsupported parameter\r\n"
        }
        _ => "501 5.5.4 Syntax error\r\n",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// How long a session fed by hand may take.
    const TEST_TIMEOUT: Duration = Duration::from_secs(5);

    /// A stored message: sender, recipients, bytes.
    type Stored = (String, Vec<String>, Vec<u8>);

    /// Keeps what it is given.
    #[derive(Default)]
    struct Memory(Mutex<Vec<Stored>>);

    /// What [`Memory`] says when its database is down.
    #[derive(Debug, thiserror::Error)]
    #[error("the database is down")]
    struct Down;

    impl Sink for Memory {
        type Error = Down;

        async fn store(&self, from: &str, to: &[String], raw: &[u8]) -> Result<(), Down> {
            self.0
                .lock()
                .unwrap()
                .push((from.into(), to.to_vec(), raw.to_vec()));
            Ok(())
        }

        /// One registered return path; the database is down for another.
        async fn is_return_path(&self, domain: &str) -> Result<bool, Down> {
            match domain {
                "db-down.test" => Err(Down),
                _ => Ok(domain.eq_ignore_ascii_case("bounces.shop.test")),
            }
        }
    }

    /// Plays `input` to a session and returns everything it answered.
    async fn converse(input: &[u8], config: &InboundConfig) -> (String, Vec<Stored>) {
        let (replies, stored, _) = converse_with_tls(input, config, Tls::Unavailable).await;
        (replies, stored)
    }

    /// [`converse`] in a given TLS state, also returning how the session ended.
    async fn converse_with_tls(
        input: &[u8],
        config: &InboundConfig,
        tls: Tls,
    ) -> (String, Vec<Stored>, Ending) {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let sink = Memory::default();
        let settings = Settings {
            config,
            bounce_domain: "bounce.test",
            tls,
        };
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let ending = tokio::time::timeout(TEST_TIMEOUT, run(&mut server, &settings, &sink))
            .await
            .unwrap();
        drop(server);
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        (out, sink.0.into_inner().unwrap(), ending)
    }

    fn codes(replies: &str) -> Vec<&str> {
        replies
            .lines()
            .filter(|l| l.as_bytes().get(3) == Some(&b' '))
            .map(|l| &l[..3])
            .collect()
    }

    #[tokio::test]
    async fn a_pipelined_bounce_is_stored_and_acknowledged() {
        let input =
            b"EHLO mx.example\r\nMAIL FROM:<>\r\nRCPT TO:<bounces+tok@bounce.test>\r\nDATA\r\n\
                      Subject: failed\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n";
        let (replies, stored) = converse(input, &InboundConfig::default()).await;
        assert_eq!(
            codes(&replies),
            ["220", "250", "250", "250", "354", "250", "221"],
            "{replies}"
        );
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].0, "");
        assert_eq!(stored[0].1, ["bounces+tok@bounce.test"]);
        assert_eq!(
            stored[0].2,
            b"Subject: failed\r\n\r\n.leading dot\r\nbody\r\n"
        );
    }

    #[tokio::test]
    async fn relaying_is_refused_and_nothing_is_stored() {
        let input = b"EHLO x\r\nMAIL FROM:<spam@evil.test>\r\nRCPT TO:<victim@gmail.com>\r\nDATA\r\nQUIT\r\n";
        let (replies, stored) = converse(input, &InboundConfig::default()).await;
        assert_eq!(
            codes(&replies),
            ["220", "250", "250", "550", "503", "221"],
            "{replies}"
        );
        assert!(replies.contains("550 5.7.1 <victim@gmail.com>: Relay access denied"));
        assert!(stored.is_empty());
    }

    #[tokio::test]
    async fn bounces_are_accepted_at_registered_return_paths_only() {
        let input = b"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<bounces+tok@Bounces.Shop.Test>\r\n\
                      RCPT TO:<reply+tok@bounces.shop.test>\r\nRCPT TO:<fbl@bounces.shop.test>\r\n\
                      RCPT TO:<bounces+tok@bounces.other.test>\r\nRCPT TO:<bounces+tok@db-down.test>\r\n\
                      DATA\r\nSubject: failed\r\n\r\nx\r\n.\r\nQUIT\r\n";
        let (replies, stored) = converse(input, &InboundConfig::default()).await;
        assert_eq!(
            codes(&replies),
            [
                "220", "250", "250", "250", "550", "550", "550", "451", "354", "250", "221"
            ],
            "{replies}"
        );
        assert!(
            replies.contains("550 5.7.1 <bounces+tok@bounces.other.test>: Relay access denied")
        );
        assert!(replies.contains("451 4.3.0"), "{replies}");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].1, ["bounces+tok@Bounces.Shop.Test"]);
    }

    #[tokio::test]
    async fn out_of_order_and_unknown_commands_get_clear_errors() {
        let input = b"MAIL FROM:<a@b.test>\r\nHELO x\r\nRCPT TO:<fbl@bounce.test>\r\nFOO bar\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\nAUTH PLAIN AAAA\r\nQUIT\r\n";
        let (replies, _) = converse(input, &InboundConfig::default()).await;
        assert_eq!(
            codes(&replies),
            [
                "220", "503", "250", "503", "500", "250", "503", "502", "221"
            ],
            "{replies}"
        );
    }

    #[tokio::test]
    async fn oversize_messages_and_too_many_recipients_are_refused() {
        let config = InboundConfig {
            max_message_size: 100,
            max_recipients: 2,
            ..InboundConfig::default()
        };
        let mut input = b"EHLO x\r\nMAIL FROM:<> SIZE=5000\r\nMAIL FROM:<>\r\nRCPT TO:<fbl@bounce.test>\r\nRCPT TO:<reply+a@bounce.test>\r\nRCPT TO:<reply+b@bounce.test>\r\nDATA\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 500));
        input.extend(b"\r\n.\r\nQUIT\r\n");
        let (replies, stored) = converse(&input, &config).await;
        assert_eq!(
            codes(&replies),
            [
                "220", "250", "552", "250", "250", "250", "452", "354", "552", "221"
            ],
            "{replies}"
        );
        assert!(stored.is_empty());
    }

    #[tokio::test]
    async fn a_client_that_hangs_up_mid_data_leaves_nothing() {
        let input =
            b"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<fbl@bounce.test>\r\nDATA\r\nSubject: half\r\n";
        let (_, stored) = converse(input, &InboundConfig::default()).await;
        assert!(stored.is_empty());
    }

    #[tokio::test]
    async fn a_bare_lf_dot_does_not_end_the_message() {
        let input = b"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<fbl@bounce.test>\r\nDATA\r\nA\n.\nMAIL FROM:<smuggled@x>\r\n.\r\nQUIT\r\n";
        let (replies, stored) = converse(input, &InboundConfig::default()).await;
        assert_eq!(stored.len(), 1);
        assert!(
            String::from_utf8_lossy(&stored[0].2).contains("smuggled"),
            "the smuggled command stays data"
        );
        assert_eq!(
            codes(&replies),
            ["220", "250", "250", "250", "354", "250", "221"],
            "{replies}"
        );
    }

    #[test]
    fn the_declared_size_is_read_from_the_line_and_saturates() {
        for (line, size) in [
            (&b"MAIL FROM:<> SIZE=1000\r\n"[..], Some(1000)),
            (b"MAIL FROM:<>\r\n", None),
            (
                b"mail from:<> size=99999999999999999999999\r\n",
                Some(u64::MAX),
            ),
            (b"MAIL FROM:<> SIZE=abc\r\n", None),
            (b"MAIL FROM:<> SIZE=\r\n", Some(0)),
            (b"MAIL FROM:<> SIZE=5 SIZE=7000\r\n", Some(7000)),
            (b"MAIL FROM:<> BODY=8BITMIME SIZE=12\r\n", Some(12)),
        ] {
            assert_eq!(
                declared_size(line),
                size,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[tokio::test]
    async fn an_empty_message_and_a_leading_dot_after_354() {
        let input = b"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<fbl@bounce.test>\r\nDATA\r\n.\r\n\
                      MAIL FROM:<>\r\nRCPT TO:<fbl@bounce.test>\r\nDATA\r\n..x\r\n.\r\nQUIT\r\n";
        let (replies, stored) = converse(input, &InboundConfig::default()).await;
        assert_eq!(
            codes(&replies),
            [
                "220", "250", "250", "250", "354", "250", "250", "250", "354", "250", "221"
            ],
            "{replies}"
        );
        let raws: Vec<&[u8]> = stored.iter().map(|(_, _, raw)| raw.as_slice()).collect();
        assert_eq!(raws, [&b""[..], b".x\r\n"]);
    }

    #[tokio::test]
    async fn garbage_closes_the_session_after_too_many_errors() {
        let mut input = Vec::new();
        for _ in 0..20 {
            input.extend(b"\x00\xff\xfe garbage\r\n");
        }
        let (replies, _) = converse(&input, &InboundConfig::default()).await;
        assert!(replies.contains("421 4.7.0 Too many errors"), "{replies}");
        assert!(codes(&replies).len() <= 12);
    }

    #[tokio::test]
    async fn starttls_is_offered_only_with_a_certificate_and_drops_what_was_pipelined() {
        let config = InboundConfig::default();
        let (replies, _, ending) =
            converse_with_tls(b"EHLO c\r\nSTARTTLS\r\n", &config, Tls::Unavailable).await;
        assert!(!replies.contains("STARTTLS\r\n"), "{replies}");
        assert_eq!(codes(&replies), ["220", "250", "502"]);
        assert_eq!(ending, Ending::Closed);

        // Offered: the commands pipelined after STARTTLS were sent in the clear and are
        // neither answered nor acted on (RFC 3207 §4.2, the STARTTLS injection attack).
        let injected = b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@b.test>\r\n\
                         RCPT TO:<bounces+t@bounce.test>\r\nDATA\r\nx\r\n.\r\n";
        let (replies, stored, ending) = converse_with_tls(injected, &config, Tls::Offered).await;
        assert!(replies.contains("250-STARTTLS\r\n"), "{replies}");
        assert_eq!(codes(&replies), ["220", "250", "220"]);
        assert_eq!(ending, Ending::StartTls);
        assert!(stored.is_empty());

        // Before EHLO it is refused; over TLS there is no greeting and no second STARTTLS.
        let (replies, _, _) =
            converse_with_tls(b"STARTTLS\r\nQUIT\r\n", &config, Tls::Offered).await;
        assert_eq!(codes(&replies), ["220", "503", "221"]);
        let (replies, _, ending) =
            converse_with_tls(b"EHLO c\r\nSTARTTLS\r\nQUIT\r\n", &config, Tls::Active).await;
        assert!(!replies.contains("STARTTLS"), "{replies}");
        assert_eq!(codes(&replies), ["250", "503", "221"]);
        assert_eq!(ending, Ending::Closed);
    }

    /// A submission sink: one credential, one lead that may not be mailed, and what it queued.
    #[derive(Default)]
    struct Submissions(Mutex<Vec<Stored>>);

    impl Sink for Submissions {
        type Error = Down;

        async fn store(&self, _: &str, _: &[String], _: &[u8]) -> Result<(), Down> {
            unreachable!("a submission session stores no inbound mail")
        }

        async fn authenticate(&self, user: &str, password: &str, _: Option<IpAddr>) -> Login {
            match (user, password) {
                ("ana", "s3cret") => Login::Account("acct-1".into()),
                ("locked", _) => Login::Locked,
                _ => Login::Invalid,
            }
        }

        async fn check_recipient(&self, account: &str, recipient: &str) -> Result<(), Refusal> {
            assert_eq!(account, "acct-1");
            match recipient {
                "no@x.test" => Err(Refusal::Permanent(
                    "550 5.7.1 <no@x.test>: Permission to Email is No".into(),
                )),
                _ => Ok(()),
            }
        }

        async fn submit(
            &self,
            account: &str,
            from: &str,
            to: &[String],
            raw: &[u8],
        ) -> Result<String, Refusal> {
            assert_eq!(account, "acct-1");
            let mut queued = self.0.lock().unwrap();
            queued.push((from.into(), to.to_vec(), raw.to_vec()));
            Ok(format!("e-{}", queued.len()))
        }
    }

    /// Plays `input` to a submission session in the given TLS state.
    async fn submission(input: &[u8], tls: Tls) -> (String, Vec<Stored>) {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let sink = Submissions::default();
        let config = InboundConfig {
            max_recipients: 3,
            ..InboundConfig::default()
        };
        let settings = Settings {
            config: &config,
            bounce_domain: "bounce.test",
            tls,
        };
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        tokio::time::timeout(
            TEST_TIMEOUT,
            run_submission(&mut server, &settings, None, &sink),
        )
        .await
        .unwrap();
        drop(server);
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        (out, sink.0.into_inner().unwrap())
    }

    fn base64(text: &[u8]) -> String {
        BASE64.encode(text)
    }

    #[tokio::test]
    async fn auth_plain_with_and_without_an_authzid_then_any_recipient_is_queued() {
        for response in [base64(b"\0ana\0s3cret"), base64(b"ana\0ana\0s3cret")] {
            let input = format!(
                "EHLO c\r\nAUTH PLAIN {response}\r\nMAIL FROM:<ana@shop.test>\r\n\
                 RCPT TO:<bo@gmail.test>\r\nRCPT TO:<cy@elsewhere.test>\r\nDATA\r\n\
                 Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n"
            );
            let (replies, queued) = submission(input.as_bytes(), Tls::Active).await;
            assert!(replies.contains("250-AUTH PLAIN LOGIN\r\n"), "{replies}");
            assert_eq!(
                codes(&replies),
                ["250", "235", "250", "250", "250", "354", "250", "221"],
                "{replies}"
            );
            assert!(replies.contains("235 2.7.0 Authentication successful"));
            assert!(replies.contains("250 2.0.0 Ok: queued as e-1"), "{replies}");
            assert_eq!(queued.len(), 1);
            assert_eq!(queued[0].1, ["bo@gmail.test", "cy@elsewhere.test"]);
            assert_eq!(queued[0].2, b"Subject: hi\r\n\r\nbody\r\n");
        }
    }

    #[tokio::test]
    async fn auth_plain_refuses_bad_base64_a_foreign_authzid_and_a_wrong_password() {
        let input = format!(
            "EHLO c\r\nAUTH PLAIN %%%not-base64\r\nAUTH PLAIN {}\r\nAUTH PLAIN {}\r\n\
             AUTH PLAIN\r\n{}\r\nAUTH PLAIN\r\n*\r\nMAIL FROM:<a@shop.test>\r\nQUIT\r\n",
            base64(b"boss\0ana\0s3cret"),
            base64(b"\0ana\0wrong"),
            base64(b"no-nul-at-all"),
        );
        let (replies, queued) = submission(input.as_bytes(), Tls::Active).await;
        assert_eq!(
            codes(&replies),
            [
                "250", "501", "501", "535", "334", "501", "334", "501", "530", "221"
            ],
            "{replies}"
        );
        assert!(replies.contains("535 5.7.8 Authentication credentials invalid"));
        assert!(replies.contains("501 5.7.0 Authentication cancelled"));
        assert!(replies.contains("530 5.7.0 Authentication required"));
        assert!(queued.is_empty());
    }

    #[tokio::test]
    async fn auth_login_takes_the_username_then_the_password() {
        let input = format!(
            "EHLO c\r\nAUTH LOGIN\r\n{}\r\n{}\r\nAUTH LOGIN\r\n",
            base64(b"ana"),
            base64(b"wrong"),
        );
        let input = format!(
            "{input}{}\r\n{}\r\nAUTH LOGIN {}\r\n{}\r\nMAIL FROM:<a@shop.test>\r\nQUIT\r\n",
            base64(b"ana"),
            base64(b"s3cret"),
            base64(b"ana"),
            base64(b"s3cret"),
        );
        let (replies, _) = submission(input.as_bytes(), Tls::Active).await;
        assert!(replies.contains("334 VXNlcm5hbWU6\r\n"), "{replies}");
        assert!(replies.contains("334 UGFzc3dvcmQ6\r\n"), "{replies}");
        // A second AUTH after a successful one is out of order, and its would-be
        // continuation line is then an unknown command.
        assert_eq!(
            codes(&replies),
            [
                "250", "334", "334", "535", "334", "334", "235", "503", "500", "250", "221"
            ],
            "{replies}"
        );
    }

    #[tokio::test]
    async fn no_auth_before_tls_and_no_mail_before_auth() {
        let input = format!(
            "EHLO c\r\nAUTH PLAIN {}\r\nMAIL FROM:<a@shop.test>\r\nRCPT TO:<b@x.test>\r\nQUIT\r\n",
            base64(b"\0ana\0s3cret")
        );
        let (replies, queued) = submission(input.as_bytes(), Tls::Offered).await;
        assert!(!replies.contains("AUTH"), "{replies}");
        assert!(replies.contains("250-STARTTLS"), "{replies}");
        assert_eq!(
            codes(&replies),
            ["220", "250", "530", "530", "503", "221"],
            "{replies}"
        );
        assert!(replies.contains("530 5.7.0 Must issue a STARTTLS command first"));
        assert!(replies.contains("530 5.7.0 Authentication required"));
        assert!(queued.is_empty());
    }

    #[tokio::test]
    async fn submitted_recipients_are_checked_and_limited() {
        let input = format!(
            "EHLO c\r\nAUTH PLAIN {}\r\nMAIL FROM:<a@shop.test>\r\nRCPT TO:<no@x.test>\r\n\
             RCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nRCPT TO:<d@x.test>\r\n\
             QUIT\r\n",
            base64(b"\0ana\0s3cret")
        );
        let (replies, _) = submission(input.as_bytes(), Tls::Active).await;
        assert_eq!(
            codes(&replies),
            [
                "250", "235", "250", "550", "250", "250", "250", "452", "221"
            ],
            "{replies}"
        );
        assert!(replies.contains("550 5.7.1 <no@x.test>: Permission to Email is No"));
        assert!(replies.contains("452 4.5.3 Too many recipients"));
    }

    #[tokio::test]
    async fn a_locked_client_is_disconnected() {
        let input = format!(
            "EHLO c\r\nAUTH PLAIN {}\r\nNOOP\r\n",
            base64(b"\0locked\0x")
        );
        let (replies, _) = submission(input.as_bytes(), Tls::Active).await;
        assert_eq!(codes(&replies), ["250", "421"], "{replies}");
    }
}
