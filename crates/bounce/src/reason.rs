//! The reason for a recipient's failure and whether it is hard (PRODUCT.md §3): from the
//! enhanced status code first, then the text, then the reply code — except that codes known to
//! be vague or misused (`X.0.0`, `5.7.1`, `5.2.1`, …) give way to the text. Bounces word
//! things differently from live SMTP replies (transcripts, sender-side rejections, queue
//! expiry), so the phrases and code meanings particular to them live here and are tried before
//! the domain's reply phrases.

use std::cell::OnceCell;
use std::sync::LazyLock;

use mailtrail_domain::classify::{self, reason_from_status};
use mailtrail_domain::{EnhancedStatus, Reason};

use crate::phrases::{PhraseSet, PhraseTable};
use crate::smtp::{self, Codes};

static BOUNCE_PHRASES: LazyLock<PhraseTable<Reason>> = LazyLock::new(|| PhraseTable::new(PHRASES));
static STATE: LazyLock<PhraseTable<Reason>> = LazyLock::new(|| PhraseTable::new(STATE_PHRASES));
/// The domain's phrases for SMTP replies, as one automaton: what
/// [`mailtrail_domain::classify::reason_from_text`] finds, without a lower-cased copy of the
/// notice and a search per phrase.
static REPLY_PHRASES: LazyLock<PhraseTable<Reason>> =
    LazyLock::new(|| PhraseTable::new(classify::PHRASES));
static NO_SUCH_ADDRESS: LazyLock<PhraseSet> =
    LazyLock::new(|| PhraseSet::new(DEFINITELY_NO_SUCH_ADDRESS));
static NOT_FOUND_HERE: LazyLock<PhraseSet> = LazyLock::new(|| PhraseSet::new(NO_SUCH_ADDRESS_HERE));
static ATTEMPTS: LazyLock<PhraseTable<()>> =
    LazyLock::new(|| PhraseTable::new(&[((), &[" attempts"][..])]));

/// Phrases of bounce texts, most specific first, matched ignoring ASCII case on text with runs of
/// white space collapsed.
const PHRASES: &[(Reason, &[&str])] = &[
    (
        Reason::MailboxFull,
        &[
            "mailbox full",
            "mailbox is full",
            "over quota",
            "quota exceeded",
            "exceeded storage",
            "recipient's mailbox exceeded",
            "mailbox exceeds allowed size",
            "user mailbox exceeds",
            "mailbox has exceeded",
            "disk quota",
        ],
    ),
    // qmail-remote's own words for what went wrong, which it follows with "this message has
    // been in the queue too long" once it gives up: the cause is what matters.
    (
        Reason::NetworkError,
        &["wasn't able to establish an smtp connection"],
    ),
    (Reason::SystemError, &["unable to contact ldap server"]),
    // A mailbox the receiving site holds mail for, for now: says nothing of the address.
    (Reason::OnHold, &["rejected: on hold", "is on hold"]),
    // Postfix's words for a server that refused the connection itself; the "delivery
    // temporarily suspended" it puts before them is about its own queue, not an account.
    (Reason::Blocked, &["refused to talk to me"]),
    // Lotus Notes / Domino: the address is not in the directory.
    (
        Reason::UserUnknown,
        &[
            "not listed in public name & address book",
            "not listed in domino directory",
        ],
    ),
    (
        Reason::FailedStartTls,
        &[
            "does not support tls",
            "does not support starttls",
            "starttls failed",
            "tls negotiation failed",
        ],
    ),
    (
        Reason::SyntaxError,
        &["malformed address", "malformed recipient address"],
    ),
    (
        Reason::BadReputation,
        &[
            "low reputation",
            "poor reputation",
            "bad reputation",
            "reputation of the sending",
        ],
    ),
    (
        Reason::Expired,
        &[
            "delivery time expired",
            "retry time not reached",
            "message expired",
            "retry timeout exceeded",
            "too long in queue",
            "in the queue too long",
            "was not delivered within",
            "could not be delivered within",
            "has not been delivered for",
            "delivery expired",
            "message timed out",
            "queue lifetime exceeded",
            "will be retried for",
            "did not accept our requests to connect",
            "have been failing for a long time",
            "could not deliver for the last",
            "delivery attempts will continue",
            "maximum time limit",
        ],
    ),
    (
        Reason::MailerError,
        &[
            "command died with status",
            "mailer error",
            "x-unix;",
            "exit status",
            "procmail",
            "pipe to |",
            "command output:",
        ],
    ),
    (
        Reason::NotAccept,
        &[
            "does not accept mail",
            "accepts no mail",
            "null mx",
            "not accepting mail",
            "indicated no smtp service",
            "no mx found",
        ],
    ),
    (
        Reason::HostUnknown,
        &[
            "host unknown",
            "unknown host",
            "host or domain name not found",
            "domain not found",
            "no such domain",
            "domain does not exist",
            "domain is not reachable",
            "unrouteable mail domain",
            "recipient domain must exist",
            "dns lookup failure",
        ],
    ),
    (
        Reason::NetworkError,
        &[
            "network error",
            "host name lookup failure",
            "malformed or unexpected name server reply",
            "could not connect",
            "couldn't connect",
            "unable to connect",
            "connection refused",
            "lost connection",
            "host not reachable",
            "dns error",
            "mx lookup",
        ],
    ),
    (
        Reason::NoRelaying,
        &[
            "relay access denied",
            "relaying denied",
            "not permitted to relay",
            "relay not permitted",
            "unable to relay",
            "not configured to relay",
            "insecure mail relay",
            // Amazon SES relays only for the identities verified with it.
            "email address is not verified",
            "no relaying",
            "relay denied",
        ],
    ),
    (
        Reason::Suspend,
        &[
            "account disabled",
            "account has been disabled",
            "account is disabled",
            "account is locked",
            "account is blocked",
            "temporary locked",
            "tried to reach is disabled",
            "temporarily locked",
            "mailbox disabled",
            "disabled recipient",
            "suspended",
            "inactive",
            "deactivated",
            "mailbox is frozen",
        ],
    ),
    (
        Reason::NotCompliantRfc,
        &[
            "rfc 5322",
            "rfc5322",
            "rfc 2822",
            "rfc2822",
            "duplicate header",
            "multiple addresses in from",
        ],
    ),
    (
        Reason::Speeding,
        &[
            "receiving mail at a rate",
            "too many recipients this hour",
            "per hour",
        ],
    ),
    (
        Reason::TooManyConn,
        &[
            "too many connections",
            "too many recipients",
            "frequency limited",
        ],
    ),
    (Reason::VirusDetected, &["virus"]),
    (
        Reason::MesgTooBig,
        &[
            "line limit exceeded",
            "message too large",
            "message size exceeds",
        ],
    ),
    (
        Reason::Blocked,
        &[
            "client host rejected",
            "client host blocked",
            "blocked using",
            "blacklisted by",
            "open relay",
            "ip address blacklisted",
            "spamhaus",
            "service refused",
            "weren't sent",
        ],
    ),
    (
        Reason::AuthFailure,
        &[
            "dmarc",
            "spf",
            "dkim",
            "unauthenticated",
            "authentication information",
            "not pass authentication",
        ],
    ),
    (
        Reason::RequirePtr,
        &[
            "reverse dns",
            "reverse lookup",
            "ptr record",
            "no ptr",
            "rdns",
            "mismatches client ip",
        ],
    ),
    (
        Reason::Rejected,
        &[
            "sender address rejected",
            "sender rejected",
            "sender was rejected",
            "domain of sender address",
            "sender verify failed",
            "sender not allowed",
            "sender is not allowed",
            "invalid sender",
            "sender denied",
            "send mail as",
            "permission to post",
            "google groups",
            "unexpected volume or user complaints",
            // A listed sender or recipient address, not the client's IP address.
            "address that has been blacklisted",
        ],
    ),
    (
        Reason::SpamDetected,
        &[
            "spam",
            "unsolicited",
            "content rejected",
            ", ube,",
            "blacklisted url",
        ],
    ),
    (
        Reason::PolicyViolation,
        &[
            "potential security issue",
            "violates our policy",
            "policy violation",
        ],
    ),
    (
        Reason::Filtered,
        &[
            "user reject",
            "rejected by recipient",
            "has restricted",
            "message filtered",
            "content filter",
        ],
    ),
    (
        Reason::UserUnknown,
        &[
            "invalid final delivery userid",
            "address not found",
            "address couldn't be found",
            "mailbox does not exist",
            "recipient not found",
            "no mailbox here",
            "address is correct",
            "please check the recipient address",
            "no valid recipients",
        ],
    ),
    (
        Reason::SecurityError,
        &[
            "authentication required",
            "must issue a starttls",
            "tls required",
            "encryption required",
            "delivery not authorized",
        ],
    ),
    (
        Reason::SystemError,
        &[
            "too many hops",
            "mail loop",
            "loops back to myself",
            "local error",
            "system error",
            "internal error",
            "server configuration",
            "multiple retries",
        ],
    ),
];

/// Phrases that tell only the state of a delivery, not its cause: tried when no other phrase
/// matches.
const STATE_PHRASES: &[(Reason, &[&str])] = &[
    (
        Reason::Expired,
        &[
            "still undelivered after",
            "will keep trying until",
            "still could not be delivered",
        ],
    ),
    // The words of reply codes 421 and 554 themselves, which any failure can carry.
    (
        Reason::SystemError,
        &[
            "service currently unavailable",
            "service unavailable",
            "transaction failed",
        ],
    ),
];

/// Reasons a text can show that outweigh a `5.1.1`: servers answer "user unknown" codes for
/// relaying, blocks, full mailboxes and moved or refused addresses too.
const OVER_USER_UNKNOWN: &[Reason] = &[
    Reason::NoRelaying,
    Reason::Blocked,
    Reason::MailboxFull,
    Reason::HasMoved,
    Reason::Rejected,
    Reason::NotAccept,
    Reason::Speeding,
];

/// Reasons that say no more than "refused", which the stage of the refusal can sharpen.
const VAGUE_REFUSALS: &[Reason] = &[
    Reason::Undefined,
    Reason::Rejected,
    Reason::UserUnknown,
    Reason::Filtered,
    Reason::SystemError,
    Reason::SecurityError,
];

/// Statements about the address itself that no content filter makes.
const DEFINITELY_NO_SUCH_ADDRESS: &[&str] = &[
    "recipient name is not recognized",
    "invalid final delivery userid",
    "check if address is correct",
    "account that you tried to reach does not exist",
    "no valid recipients",
    // Local delivery agents (Postfix local(8), Sendmail's mail.local, IMail): no content
    // filter runs there.
    "unknown user:",
    "not listed in public name & address book",
    "not listed in domino directory",
];

/// A notice's own heading for an address it could not find (Gmail's "Address not found").
/// Without a remote server's reply, the system that sends the notice is the one that looked
/// the address up; with one, the notice only paraphrases the reply, which then decides.
const NO_SUCH_ADDRESS_HERE: &[&str] = &["address not found", "address couldn't be found"];

/// What the reporting MTA itself says of a recipient, besides the remote server's words.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Notice {
    /// RFC 3464 `Action: delayed`: the message still waits in the queue.
    pub delayed: bool,
    /// The MTA classed the address as not existing (PowerMTA's `X-PowerMTA-BounceCategory:
    /// bad-mailbox`), which it decides from the whole session, not from a content filter.
    pub no_such_mailbox: bool,
    /// The remote server is one whose "unknown user" after the message means the recipient's
    /// own reception settings refused this sender ([`refuses_as_unknown_user`]).
    pub refuses_as_unknown_user: bool,
}

/// Servers that answer "550 Unknown user" at the end of DATA when the recipient's reception
/// settings (a sender or domain filter the person chose) refuse the sender: NTT docomo's
/// mail servers (`*.docomo.ne.jp`). There the sender was refused, not filtered as spam, and
/// the address exists; at RCPT the same words still mean an unknown user.
pub(crate) fn refuses_as_unknown_user(remote_host: &str) -> bool {
    let host = remote_host
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    host == "docomo.ne.jp" || host.ends_with(".docomo.ne.jp")
}

/// The reason for one recipient's report, from its codes, its texts (most specific first: the
/// server's reply, then the notice around it), and the transcript of the session that tells
/// which command failed.
///
/// A "user unknown" is believed only when the code places it in the envelope (`X.1.1`,
/// `X.5.*`), when words or the reporting MTA state that the address does not exist, or when
/// the server said it in reply to `RCPT TO`; said after the message was sent (or where the
/// report does not tell when), it is usually a content filter's excuse, so it counts as
/// `filtered` and does not condemn the address.
pub(crate) fn decide(codes: Codes, texts: &[&str], transcript: &str, notice: Notice) -> Reason {
    // Codes are read apart; dropping them joins phrases that multi-line replies split
    // (`552-5.7.0 … a potential 552-5.7.0 security issue`).
    // Each made only when read: the whole notice rarely is.
    let plain: Vec<OnceCell<String>> = texts.iter().map(|_| OnceCell::new()).collect();
    let plain = |i: usize| {
        plain[i]
            .get_or_init(|| {
                texts[i]
                    .split_whitespace()
                    .filter(|word| !is_code(word))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .as_str()
    };
    // The server's own words come first; the notice around them only when they say nothing.
    let from_text = (0..texts.len()).find_map(|i| text_reason(plain(i)));
    // A "recipient rejected" about the message's content (`5.6.0`) is not about the address.
    let from_text = match (from_text, codes.status) {
        (Some(Reason::UserUnknown), Some(status)) if status.subject == 6 => {
            reason_from_status(status).or(from_text)
        }
        _ => from_text,
    };
    let reason = match (codes.status.and_then(from_status), from_text) {
        (Some(Reason::UserUnknown), Some(text)) if OVER_USER_UNKNOWN.contains(&text) => text,
        // A queue that gave up (`4.4.1`, `4.4.7`) says nothing of why it kept failing; the
        // text that does is the reason.
        (Some(Reason::Expired), Some(text)) => text,
        // `X.4.4` ("unable to route") is given for a domain that does not exist and for a
        // name server that did not answer alike: the text tells which.
        (Some(Reason::HostUnknown), Some(text)) if routing_status(codes) => text,
        // A refusal of the content under a security or policy code (`X.7.*`, RFC 3463): the
        // site's policy on what it accepts, not a malformed message (`X.6.*`).
        (None, Some(Reason::ContentError)) if policy_status(codes) => Reason::PolicyViolation,
        (Some(status), _) => status,
        (None, Some(text)) => text,
        // A message that still waits in the queue: when no words say why, the wait itself is
        // the reason, not the family of its code.
        (None, None) if notice.delayed => Reason::Expired,
        (None, None) => codes
            .status
            .and_then(|s| bare_status(s).or_else(|| reason_from_status(s)))
            .or_else(|| codes.reply_code.and_then(from_reply_code))
            .unwrap_or(Reason::Undefined),
    };
    // Refused before the sender was even named: the server refuses this client, not this
    // message or address. A queue that gave up on such a server was refused all along.
    let command = smtp::command(transcript);
    let before_mail = matches!(command, Some("CONN" | "HELO" | "EHLO"));
    if before_mail && (VAGUE_REFUSALS.contains(&reason) || reason == Reason::Expired) {
        return Reason::Blocked;
    }
    // An addressing status (`X.1.*`) or a protocol one (`X.5.*`, RFC 3463: about the commands
    // exchanged) places the refusal in the envelope, where no content filter has run yet.
    let envelope_status = codes
        .status
        .is_some_and(|s| (s.subject == 1 && matches!(s.detail, 0 | 1 | 3 | 10)) || s.subject == 5);
    let definite = || {
        (0..texts.len()).map(plain).any(|p| {
            NO_SUCH_ADDRESS.any_in(p) || (codes.reply_code.is_none() && NOT_FOUND_HERE.any_in(p))
        })
    };
    let believed = || envelope_status || notice.no_such_mailbox || definite();
    if reason == Reason::UserUnknown && command != Some("RCPT") && !believed() {
        if notice.refuses_as_unknown_user {
            Reason::Rejected
        } else {
            Reason::Filtered
        }
    } else {
        reason
    }
}

/// What no code or words decide: `onhold` when the server said something about the recipient
/// that no rule reads, `undefined` when it said nothing.
pub(crate) fn undecided(reason: Reason, said: bool) -> Reason {
    if reason == Reason::Undefined && said {
        Reason::OnHold
    } else {
        reason
    }
}

fn policy_status(codes: Codes) -> bool {
    codes.status.is_some_and(|s| s.subject == 7)
}

fn routing_status(codes: Codes) -> bool {
    codes
        .status
        .is_some_and(|s| s.subject == 4 && s.detail == 4)
}

/// A reply code or enhanced status code, alone or joined (`550`, `5.1.1`, `550-5.1.1`).
fn is_code(word: &str) -> bool {
    // Most words hold no digit at all: no need to parse them.
    word.bytes().any(|b| b.is_ascii_digit())
        && word.split('-').all(|part| {
            let part = part.trim_matches(|c: char| matches!(c, '#' | '(' | ')' | ':' | ';' | ','));
            part.len() == 3 && part.bytes().all(|b| b.is_ascii_digit())
                || part.parse::<EnhancedStatus>().is_ok()
        })
}

/// The reason a text shows: this crate's bounce phrases, then the domain's reply phrases.
fn text_reason(plain: &str) -> Option<Reason> {
    BOUNCE_PHRASES
        .first(plain)
        .or_else(|| REPLY_PHRASES.first(plain))
        .or_else(|| STATE.first(plain))
        .or_else(|| counts_attempts(plain).then_some(Reason::Expired))
}

/// A notice that counts its tries ("Delivery failed 20 attempts", "failed after 5 attempts")
/// tells that the queue gave up retrying, and nothing more.
fn counts_attempts(plain: &str) -> bool {
    ATTEMPTS
        .occurrences(plain)
        .any(|(start, _, _)| plain[..start].ends_with(|c: char| c.is_ascii_digit()))
}

/// A hard bounce condemns the address; `notaccept` only when the refusal is permanent.
pub(crate) fn is_hard(reason: Reason, codes: Codes) -> bool {
    let transient = codes.status.map_or_else(
        || codes.reply_code.is_some_and(|c| c < 500),
        |s| s.class == 4,
    );
    reason.is_hard() && !(reason == Reason::NotAccept && transient)
}

/// What a status code means in a bounce, when it is specific enough to trust over the text.
/// Differs from a live reply: a transient network failure (`4.4.1`, `4.4.2`) that ends in a
/// bounce means the queue gave up, and `5.2.3` in a bounce is the recipient's size limit.
fn from_status(status: EnhancedStatus) -> Option<Reason> {
    use Reason::*;
    Some(match (status.class, status.subject, status.detail) {
        (_, 1, 1) => UserUnknown,
        (_, 1, 2) => HostUnknown,
        (_, 1, 6) => HasMoved,
        (_, 1, 7) | (_, 1, 8) => Rejected,
        (_, 2, 2) => MailboxFull,
        (_, 2, 3) => ExceedLimit,
        (_, 3, 1) => SystemFull,
        (_, 3, 4) => MesgTooBig,
        (4, 4, 1) | (4, 4, 2) | (_, 4, 7) => Expired,
        (_, 4, 4) => HostUnknown,
        (_, 4, 5) => SystemFull,
        (_, 7, 13) => Suspend,
        (_, 7, 25) => RequirePtr,
        (_, 7, 26) => AuthFailure,
        (_, 7, 27) => NotAccept,
        _ => return None,
    })
}

/// What a status code means when no words say more: `X.7.0`, `X.7.1` ("delivery not
/// authorized") and `X.7.9` ("authentication mechanism is too weak", RFC 4954) are security
/// refusals that the domain's reply reading calls rejections or authentication failures.
fn bare_status(status: EnhancedStatus) -> Option<Reason> {
    (status.subject == 7 && matches!(status.detail, 0 | 1 | 9)).then_some(Reason::SecurityError)
}

fn from_reply_code(code: u16) -> Option<Reason> {
    match code {
        421 => Some(Reason::SystemError),
        500..=504 => Some(Reason::SyntaxError),
        551 => Some(Reason::HasMoved),
        552 => Some(Reason::MailboxFull),
        553 => Some(Reason::UserUnknown),
        554 => Some(Reason::Rejected),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_docomo_hosts_refuse_senders_as_unknown_users() {
        for (host, expected) in [
            ("mfsmax.docomo.ne.jp", true),
            ("docomo.ne.jp.", true),
            (" MFSMAX.DOCOMO.NE.JP", true),
            ("notdocomo.ne.jp", false),
            ("docomo.ne.jp.mx.example", false),
            ("mx.example.com", false),
        ] {
            assert_eq!(refuses_as_unknown_user(host), expected, "{host}");
        }
    }

    #[test]
    fn a_docomo_unknown_user_is_a_refused_sender_after_data_and_an_unknown_user_at_rcpt() {
        let reply = "550 Unknown user kijitora@docomo.ne.jp";
        let notice = Notice {
            refuses_as_unknown_user: true,
            ..Notice::default()
        };
        let at = |command: &str| {
            let transcript = format!("{reply} (in reply to {command} command)");
            decide(smtp::find(reply), &[reply], &transcript, notice)
        };
        assert_eq!(at("end of DATA"), Reason::Rejected);
        assert_eq!(at("RCPT TO"), Reason::UserUnknown);
        // Elsewhere the same words after DATA are a content filter's excuse.
        let transcript = format!("{reply} (in reply to end of DATA command)");
        let elsewhere = decide(smtp::find(reply), &[reply], &transcript, Notice::default());
        assert_eq!(elsewhere, Reason::Filtered);
    }
}
