//! What an SMTP reply means for an email (PRODUCT.md §2–§3): its reason, whether to try again,
//! and whether the address itself is condemned. Decided from the enhanced status code first,
//! then the reply code, then the text — and the text wins over a vague code, because many
//! servers answer `550 5.7.1` or `554 5.0.0` whatever the problem is.

use crate::{EnhancedStatus, Reason, SmtpReply};

/// The two decisions a reply leads to, kept apart: retrying, and suppressing the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: the server took it.
    Delivered,
    /// A temporary failure: retry on the backoff schedule.
    Retry,
    /// A 5xx whose text shows the problem is temporary (mailbox full, too large, rate
    /// limited): RFC 5321 says not to repeat it blindly, so only a few more tries.
    RetryFewTimes,
    /// Permanent. `suppress` when the address itself is bad (a hard bounce).
    Fail { suppress: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub reason: Option<Reason>,
    pub verdict: Verdict,
    /// The reply asks the whole destination to slow down (421, "too many", rate limits).
    pub throttle: bool,
}

/// Reasons that describe a temporary condition even when a server answers 5xx.
fn is_temporary(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::MailboxFull
            | Reason::MesgTooBig
            | Reason::ExceedLimit
            | Reason::SystemFull
            | Reason::RateLimited
            | Reason::Speeding
            | Reason::TooManyConn
    )
}

pub fn classify(reply: &SmtpReply) -> Classification {
    if reply.is_positive() {
        return Classification {
            reason: None,
            verdict: Verdict::Delivered,
            throttle: false,
        };
    }
    let specific = reply.enhanced().filter(|s| !is_vague(*s));
    let reason = specific
        .and_then(exact_reason)
        .or_else(|| policy_denial(reply))
        .or_else(|| reason_from_text(reply.text()))
        .or_else(|| reply.enhanced().and_then(reason_from_status))
        .or_else(|| reason_from_code(reply.code()));
    let throttle = reply.code() == 421
        || matches!(
            reason,
            Some(Reason::RateLimited | Reason::TooManyConn | Reason::Speeding)
        );
    let verdict = if reply.is_transient() {
        Verdict::Retry
    } else if reason.is_some_and(is_temporary) {
        Verdict::RetryFewTimes
    } else {
        Verdict::Fail {
            suppress: reason.is_some_and(Reason::is_hard),
        }
    };
    Classification {
        reason,
        verdict,
        throttle,
    }
}

/// Postfix's "… rejected: Access denied" under a security/policy code (`5.7.x`) is the
/// server's own rule — an access map, a relay that wants a login — not a verdict on the
/// address, though the text begins "Recipient address rejected". Office 365 uses the same
/// words with `5.4.1` for an address that does not exist, so the code decides.
fn policy_denial(reply: &SmtpReply) -> Option<Reason> {
    let policy_code = reply.enhanced().is_some_and(|s| s.subject == 7);
    (policy_code
        && reply
            .text()
            .to_lowercase()
            .contains("rejected: access denied"))
    .then_some(Reason::PolicyViolation)
}

/// Codes that say little or are often misused: `X.Y.0`, the catch-all `5.7.1` "not
/// authorised", and network (`X.4.*`) or protocol (`X.5.*`) codes on a rejection of the
/// recipient (Microsoft answers an unknown user with `5.4.1`).
fn is_vague(status: EnhancedStatus) -> bool {
    status.detail == 0
        || (status.subject, status.detail) == (7, 1)
        || matches!(status.subject, 4 | 5)
}

/// RFC 3463's subject and detail codes, mapped to the reasons vocabulary: the exact code
/// when it is known, else its family.
pub fn reason_from_status(status: EnhancedStatus) -> Option<Reason> {
    exact_reason(status).or(match status.subject {
        3 => Some(Reason::SystemError),
        4 => Some(Reason::NetworkError),
        5 => Some(Reason::SyntaxError),
        6 => Some(Reason::ContentError),
        7 => Some(Reason::SecurityError),
        _ => None,
    })
}

fn exact_reason(status: EnhancedStatus) -> Option<Reason> {
    use Reason::*;
    Some(match (status.subject, status.detail) {
        (1, 1) | (1, 3) => UserUnknown,
        (1, 2) => HostUnknown,
        (1, 6) => HasMoved,
        (1, 7) | (1, 8) => Rejected,
        (1, 10) => NotAccept,
        (2, 1) => Suspend,
        (2, 2) => MailboxFull,
        (2, 3) | (3, 4) => MesgTooBig,
        (2, 4) => SystemError,
        (3, 1) => SystemFull,
        (3, 2) | (3, 3) | (3, 5) => SystemError,
        (4, 1) | (4, 2) | (4, 6) => NetworkError,
        (4, 3) => SystemError,
        (4, 4) => HostUnknown,
        (4, 5) => TooManyConn,
        (4, 7) => Expired,
        (5, 3) => ExceedLimit,
        (7, 1) => Rejected,
        (7, 7) => ContentError,
        (7, 8) | (7, 9) | (7, 23) | (7, 26) => AuthFailure,
        (7, 25) => RequirePtr,
        (7, 28) => RateLimited,
        _ => return None,
    })
}

/// The reason a reply's code alone suggests, when nothing better is known.
fn reason_from_code(code: u16) -> Option<Reason> {
    match code {
        421 => Some(Reason::SystemError),
        452 => Some(Reason::SystemFull),
        551 => Some(Reason::HasMoved),
        552 => Some(Reason::MailboxFull),
        554 => Some(Reason::Rejected),
        400..=599 => Some(Reason::Undefined),
        _ => None,
    }
}

/// Phrases real servers use, most specific first, in lower case: [`reason_from_text`] takes
/// the first reason with a phrase in the text. The bounce reader, which searches whole
/// notices, builds one automaton of them instead.
pub const PHRASES: &[(Reason, &[&str])] = &[
    // Greylisting is a deliberate, temporary block: it must not read as an unknown user.
    (Reason::Blocked, &["greylist", "graylist"]),
    (
        Reason::HasMoved,
        &[
            "has moved",
            "address changed",
            "no longer valid at this address",
        ],
    ),
    (
        Reason::MailboxFull,
        &[
            "mailbox full",
            "mailbox is full",
            "over quota",
            "overquota",
            "quota exceeded",
            "quotaexceeded",
            "exceeded storage",
            "exceeds storage",
            "insufficient storage",
            "mailbox has exceeded",
            "mailbox size limit",
            "user is over",
            "disk quota",
            "mailfolder is full",
            "not enough space",
        ],
    ),
    (
        Reason::MesgTooBig,
        &[
            "message too large",
            "message is too large",
            "message too big",
            "message size exceeds",
            "size exceeds",
            "exceeds the maximum size",
            "message exceeds",
            "too big for",
            "message length exceeds",
            "size limit",
        ],
    ),
    (
        Reason::RateLimited,
        &[
            "rate limit",
            "ratelimit",
            "rate-limit",
            "too many messages",
            "too many emails",
            "sending rate",
            "unusual rate",
            "throttl",
            "slow down",
            "try again later",
            "try again in",
            "temporarily deferred",
        ],
    ),
    (
        Reason::TooManyConn,
        &[
            "too many connections",
            "too many concurrent",
            "connection limit",
        ],
    ),
    (
        Reason::Suspend,
        &[
            "suspended",
            "mailbox disabled",
            "account disabled",
            "account is disabled",
            "inactive",
            "deactivated",
            "mailbox unavailable due to inactivity",
        ],
    ),
    (
        Reason::UserUnknown,
        &[
            "user unknown",
            "unknown user",
            "no such user",
            "no such mailbox",
            "no such recipient",
            "does not exist",
            "doesn't exist",
            "not exist",
            "unknown recipient",
            "recipient unknown",
            "invalid recipient",
            "invalid mailbox",
            "recipient address rejected",
            "address rejected",
            "mailbox not found",
            "mailbox unavailable",
            "unrouteable address",
            "not a valid mailbox",
            "user not found",
            "doesn't have a",
            "no mailbox",
            "account does not exist",
            "bad destination mailbox",
            "unknown or illegal alias",
            "undeliverable address",
        ],
    ),
    (
        Reason::HostUnknown,
        &[
            "host unknown",
            "unknown host",
            "domain not found",
            "no such domain",
            "domain does not exist",
            "name or service not known",
            "host not found",
            "unrouteable mail domain",
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
        ],
    ),
    (
        Reason::SpamDetected,
        &["spam", "unsolicited", "junk mail", "bulk mail"],
    ),
    (Reason::VirusDetected, &["virus", "malware", "infected"]),
    (
        Reason::Blocked,
        &[
            "blacklist",
            "blocklist",
            "black list",
            "block list",
            "listed at",
            "listed on",
            "listed in",
            "spamhaus",
            "spamcop",
            "barracuda",
            "rbl",
            "dnsbl",
            "blocked",
            "reputation",
            "poor reputation",
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
        ],
    ),
    (
        Reason::AuthFailure,
        &[
            "spf",
            "dkim",
            "dmarc",
            "authentication failed",
            "not authenticated",
        ],
    ),
    (
        Reason::PolicyViolation,
        &["policy", "not allowed", "prohibited"],
    ),
    (
        Reason::ContentError,
        &["content rejected", "message content", "mime", "header"],
    ),
    (
        Reason::Expired,
        &[
            "expired",
            "timed out",
            "too long in queue",
            "retry timeout exceeded",
            "could not be delivered for",
        ],
    ),
    (
        Reason::NetworkError,
        &[
            "connection refused",
            "connection timed out",
            "network is unreachable",
            "no route to host",
            "connection reset",
        ],
    ),
];

/// The reason a server's text reveals, if any.
pub fn reason_from_text(text: &str) -> Option<Reason> {
    let text = text.to_lowercase();
    PHRASES
        .iter()
        .find(|(_, phrases)| phrases.iter().any(|p| text.contains(p)))
        .map(|(reason, _)| *reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    fn verdict_of(reply: &str) -> (Option<Reason>, Verdict, bool) {
        let c = classify(&reply.parse().unwrap());
        (c.reason, c.verdict, c.throttle)
    }

    const HARD: Verdict = Fail { suppress: true };
    const PERMANENT: Verdict = Fail { suppress: false };

    #[test]
    fn real_replies_from_real_servers() {
        use Reason::*;
        let cases: &[(&str, Option<Reason>, Verdict, bool)] = &[
            // Gmail
            (
                "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n550 5.1.1 double-checking the recipient's email address.",
                Some(UserUnknown),
                HARD,
                false,
            ),
            (
                "452-4.2.2 The email account that you tried to reach is over quota. Please direct\r\n452 4.2.2 the recipient to https://support.google.com/mail/?p=OverQuotaTemp",
                Some(MailboxFull),
                Retry,
                false,
            ),
            (
                "552-5.2.2 The email account that you tried to reach is over quota and inactive.",
                Some(MailboxFull),
                RetryFewTimes,
                false,
            ),
            (
                "421-4.7.0 Our system has detected an unusual rate of\r\n421 4.7.0 unsolicited mail originating from your IP address.",
                Some(RateLimited),
                Retry,
                true,
            ),
            (
                "550-5.7.1 Our system has detected that this message is\r\n550 5.7.1 likely unsolicited mail.",
                Some(SpamDetected),
                PERMANENT,
                false,
            ),
            (
                "550-5.7.26 This mail is unauthenticated, which poses a security risk",
                Some(AuthFailure),
                PERMANENT,
                false,
            ),
            (
                "552-5.2.3 Your message exceeded Google's message size limits.",
                Some(MesgTooBig),
                RetryFewTimes,
                false,
            ),
            (
                "550 5.2.1 The email account that you tried to reach is disabled.",
                Some(Suspend),
                PERMANENT,
                false,
            ),
            // Outlook / Exchange
            (
                "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302).",
                Some(UserUnknown),
                HARD,
                false,
            ),
            (
                "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
                Some(UserUnknown),
                HARD,
                false,
            ),
            // Postfix refusing by its own rule (an access map, or a smarthost's
            // `permit_sasl_authenticated, reject` to a client that did not log in).
            (
                "554 5.7.1 <a@b.example>: Recipient address rejected: Access denied",
                Some(PolicyViolation),
                PERMANENT,
                false,
            ),
            (
                "554 5.2.0 STOREDRV.Deliver.Exception:QuotaExceededException",
                Some(MailboxFull),
                RetryFewTimes,
                false,
            ),
            (
                "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3140).",
                Some(Blocked),
                PERMANENT,
                false,
            ),
            (
                "451 4.7.500 Server busy. Please try again later from [192.0.2.1]. (S77714)",
                Some(RateLimited),
                Retry,
                true,
            ),
            // Yahoo (codes that lie: 554 with no enhanced code for an unknown user)
            (
                "554 delivery error: dd This user doesn't have a yahoo.com account (a@yahoo.com) [0] - mta1.mail.example",
                Some(UserUnknown),
                HARD,
                false,
            ),
            (
                "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints",
                Some(RateLimited),
                Retry,
                true,
            ),
            (
                "552 1 Requested mail action aborted, mailbox not found",
                Some(UserUnknown),
                HARD,
                false,
            ),
            // Postfix
            (
                "550 5.1.1 <a@b.example>: Recipient address rejected: User unknown in local recipient table",
                Some(UserUnknown),
                HARD,
                false,
            ),
            (
                "552 5.3.4 Message size exceeds fixed limit",
                Some(MesgTooBig),
                RetryFewTimes,
                false,
            ),
            (
                "450 4.1.8 <x@nowhere.example>: Sender address rejected: Domain not found",
                Some(Rejected),
                Retry,
                false,
            ),
            (
                "554 5.7.1 <a@b.example>: Relay access denied",
                Some(NoRelaying),
                PERMANENT,
                false,
            ),
            (
                "451 4.3.0 Temporary lookup failure",
                Some(SystemError),
                Retry,
                false,
            ),
            (
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
                Some(NotAccept),
                HARD,
                false,
            ),
            // Exim
            ("550 Unrouteable address", Some(UserUnknown), HARD, false),
            (
                "450 4.2.0 <a@b.example>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/",
                Some(Blocked),
                Retry,
                false,
            ),
            ("550 5.1.2 Host unknown", Some(HostUnknown), HARD, false),
            ("550 5.1.6 Recipient has moved", Some(HasMoved), HARD, false),
            // A lying code: a "user unknown" 5.7.1
            (
                "550 5.7.1 No such user here",
                Some(UserUnknown),
                HARD,
                false,
            ),
            (
                "421 Service not available, closing transmission channel",
                Some(SystemError),
                Retry,
                true,
            ),
            ("554 Transaction failed", Some(Rejected), PERMANENT, false),
            (
                "250 2.0.0 Ok: queued as 4Xk",
                None,
                Verdict::Delivered,
                false,
            ),
        ];
        for (reply, reason, verdict, throttle) in cases {
            assert_eq!(verdict_of(reply), (*reason, *verdict, *throttle), "{reply}");
        }
    }

    #[test]
    fn every_4xx_is_retried_and_no_5xx_is_retried_blindly() {
        for code in [421, 450, 451, 452] {
            let (_, verdict, _) = verdict_of(&format!("{code} something odd"));
            assert_eq!(verdict, Retry, "{code}");
        }
        for code in [500, 550, 553, 554] {
            let (_, verdict, _) = verdict_of(&format!("{code} something odd"));
            assert!(matches!(verdict, Fail { .. }), "{code}");
        }
    }
}
