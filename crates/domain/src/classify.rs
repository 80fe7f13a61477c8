//! What a live SMTP reply means for an email (docs/emails.md): its reason, whether to try
//! again, and whether the address itself is condemned — as the one interpreter of SMTP
//! evidence ([`crate::interpret`]) reads it, put in the terms of the outbound queue.

use std::time::Duration;

use crate::interpret::{Again, Evidence, Seen, interpret};
use crate::{Reason, SmtpReply};

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
    /// The server's own "try again in N minutes", which replaces the backoff's delay.
    pub hint: Option<Duration>,
}

/// A reply in Mailtrail's own session, the command it answered not said
/// ([`Seen::Live`]`(None)`).
pub fn classify(reply: &SmtpReply) -> Classification {
    let texts = [reply.text()];
    let evidence = Evidence {
        reply_code: Some(reply.code()),
        status: reply.enhanced(),
        texts: &texts,
        ..Evidence::default()
    };
    let verdict = interpret(&evidence, Seen::Live(None));
    if verdict.reason == Reason::Delivered {
        return Classification {
            reason: None,
            verdict: Verdict::Delivered,
            throttle: false,
            hint: None,
        };
    }
    Classification {
        reason: Some(verdict.reason),
        verdict: match verdict.retry {
            Again::Yes => Verdict::Retry,
            Again::FewTimes => Verdict::RetryFewTimes,
            Again::No => Verdict::Fail {
                suppress: verdict.hard,
            },
        },
        throttle: verdict.throttle,
        hint: verdict.hint,
    }
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
                // X.2.3 is the recipient's own limit (RFC 3463), as in reports.
                "552-5.2.3 Your message exceeded Google's message size limits.",
                Some(ExceedLimit),
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
                // A refusal of this sender's mail, as reports of it read; 421 throttles anyway.
                "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints",
                Some(Rejected),
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
                // Microsoft's "recipient not found", whatever RFC 7505 registered X.1.10 for.
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
                Some(UserUnknown),
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
            // RFC 5321's own words for 554 say nothing more than the code.
            (
                "554 Transaction failed",
                Some(SystemError),
                PERMANENT,
                false,
            ),
            (
                "250 2.0.0 Ok: queued as 4Xk",
                None,
                Verdict::Delivered,
                false,
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(reply, reason, verdict, throttle)| {
                verdict_of(reply) != (*reason, *verdict, *throttle)
            })
            .map(|(reply, ..)| format!("{reply}: {:?}", verdict_of(reply)))
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
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
