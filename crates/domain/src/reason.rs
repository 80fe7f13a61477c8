//! Why an email failed or was deferred: the vocabulary of the bounce corpus
//! (`crates/bounce/tests/corpus/README.md`, after Sisimai) plus the reasons only Mailtrail itself decides.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A name that is not in the reasons vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason '{0}'")]
pub struct UnknownReason(pub String);

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A failure or deferral reason, serialised as its lower-case name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum Reason { $($(#[$doc])* $variant,)* }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Reason::$variant => $name,)* }
            }
        }

        impl FromStr for Reason {
            type Err = UnknownReason;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Reason::$variant),)*
                    other => Err(UnknownReason(other.to_string())),
                }
            }
        }
    };
}

reasons! {
    UserUnknown => "userunknown",
    HostUnknown => "hostunknown",
    HasMoved => "hasmoved",
    NotAccept => "notaccept",
    MailboxFull => "mailboxfull",
    MesgTooBig => "mesgtoobig",
    ExceedLimit => "exceedlimit",
    SystemFull => "systemfull",
    Expired => "expired",
    Filtered => "filtered",
    Rejected => "rejected",
    Blocked => "blocked",
    SpamDetected => "spamdetected",
    VirusDetected => "virusdetected",
    ContentError => "contenterror",
    PolicyViolation => "policyviolation",
    SecurityError => "securityerror",
    AuthFailure => "authfailure",
    RequirePtr => "requireptr",
    NotCompliantRfc => "notcompliantrfc",
    NoRelaying => "norelaying",
    FailedStartTls => "failedstarttls",
    NetworkError => "networkerror",
    SystemError => "systemerror",
    MailerError => "mailererror",
    TooManyConn => "toomanyconn",
    Speeding => "speeding",
    RateLimited => "ratelimited",
    Suspend => "suspend",
    OnHold => "onhold",
    SyntaxError => "syntaxerror",
    BadReputation => "badreputation",
    Undefined => "undefined",
    Feedback => "feedback",
    Vacation => "vacation",
    Delivered => "delivered",
    // Decided by Mailtrail, not by a remote server:
    /// Dropped before sending: the address is on the account's suppression list.
    Suppressed => "suppressed",
    /// Dropped before sending: the lead's Permission to Email is No.
    NoPermission => "nopermission",
    /// A feedback-loop complaint (abuse, fraud, opt-out) ended the email's life.
    Complaint => "complaint",
    /// The recipient unsubscribed (link, one-click, or mailto).
    Unsubscribed => "unsubscribed",
    /// Dropped before sending: the sender cancelled it while it was queued.
    Cancelled => "cancelled",
}

impl Reason {
    /// Reasons that condemn the address itself (docs/emails.md): a failure with one of these
    /// suppresses the address and sets Permission to Email to No.
    pub fn is_hard(self) -> bool {
        matches!(
            self,
            Reason::UserUnknown | Reason::HostUnknown | Reason::HasMoved | Reason::NotAccept
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_through_its_name_and_json() {
        for &reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>(), Ok(reason));
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_name() {
        let error = "bounced".parse::<Reason>().unwrap_err();
        assert_eq!(error, UnknownReason("bounced".into()));
        assert_eq!(error.to_string(), "unknown reason 'bounced'");
    }

    #[test]
    fn only_address_reasons_are_hard() {
        let hard: Vec<_> = Reason::ALL.iter().filter(|r| r.is_hard()).collect();
        assert_eq!(
            hard,
            [
                &Reason::UserUnknown,
                &Reason::HostUnknown,
                &Reason::HasMoved,
                &Reason::NotAccept
            ]
        );
    }
}
