//! The sandbox domains and what the world does at each: the reply to every recipient and to
//! every message, and what happens after a message is accepted. One table, read by the
//! servers and printed by the README and `--help`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// How long the `slow` server waits before its greeting and before its final 250: long
/// enough to be seen, well under the minutes RFC 5321 §4.5.3.2 lets a client wait.
pub(crate) const SLOW_DELAY: Duration = Duration::from_secs(2);

macro_rules! behaviours {
    ($($(#[$doc:meta])* $variant:ident => $name:literal : $text:literal,)*) => {
        /// What one sandbox domain does.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Behaviour { $($(#[$doc])* $variant,)* }

        impl Behaviour {
            /// Every behaviour, in the order of [`DOMAINS`].
            pub(crate) const ALL: &'static [Behaviour] = &[$(Behaviour::$variant,)*];

            /// `ok.sandbox.test`, …
            pub(crate) fn domain(self) -> &'static str {
                match self { $(Behaviour::$variant => concat!($name, ".sandbox.test"),)* }
            }
        }

        /// The sandbox domains and what each does, for the README and `--help`.
        pub const DOMAINS: &[(&str, &str)] = &[$((concat!($name, ".sandbox.test"), $text),)*];
    };
}

behaviours! {
    Ok => "ok": "accepts every message",
    UserUnknown => "user-unknown": "rejects every recipient: 550 5.1.1 User unknown (a hard bounce)",
    MailboxFull => "mailbox-full": "defers each recipient once with 452 4.2.2 Mailbox full, then accepts",
    Greylist => "greylist": "defers each recipient once with 451 4.7.1 Greylisted, then accepts",
    TooLarge => "too-large": "rejects every message after DATA: 552 5.3.4 Message size exceeds fixed maximum",
    /// Its port was bound once and closed again, so connections are refused; another process
    /// could in theory take the port in between.
    Down => "down": "refuses connections (nothing listens on its port)",
    Slow => "slow": "accepts, but waits 2 s before its greeting and before its final 250",
    SpamBlock => "spam-block": "rejects every message after DATA: 550 5.7.1 rejected as spam",
    BounceLater => "bounce-later": "accepts, then about 1 s later sends a DSN: 5.1.1 User unknown",
    Complain => "complain": "accepts, then sends an ARF abuse complaint to fbl@ the bounce domain",
    Reply => "reply": "accepts, then the recipient replies to the Reply-To address",
    AutoReply => "autoreply": "accepts, then sends an out-of-office auto-reply to the Reply-To address",
    Opens => "opens": "accepts; the recipient opens it (fetches the pixel) a little later",
    Clicks => "clicks": "accepts; the recipient opens it and clicks the first tracked link",
    Unsubscribes => "unsubscribes": "accepts; the recipient unsubscribes with one click (RFC 8058)",
    MachineOpen => "machine-open": "accepts; a privacy proxy fetches the pixel at once",
}

/// What happens after a message is accepted, for each of its recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FollowUp {
    /// A DSN to the envelope sender.
    Bounce,
    /// An ARF report to the bounce domain's feedback-loop address.
    Complaint,
    /// A person's reply to the Reply-To address.
    Reply,
    /// An out-of-office notice to the Reply-To address.
    AutoReply,
    /// A person's mail client fetches the pixel.
    Open,
    /// A person opens the message and clicks its first tracked link.
    Click,
    /// A person's mail client unsubscribes with one click.
    Unsubscribe,
    /// A privacy proxy fetches the pixel the moment the message arrives.
    MachineOpen,
}

impl Behaviour {
    /// The reply to `RCPT TO:<address>`, or `None` to accept it. `deferred` holds the
    /// recipients already deferred once: their next attempt is accepted.
    pub(crate) fn at_rcpt(
        self,
        address: &str,
        deferred: &Mutex<HashSet<String>>,
    ) -> Option<String> {
        let first_time = || {
            deferred
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(address.to_ascii_lowercase())
        };
        match self {
            Behaviour::UserUnknown => Some(format!(
                "550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table"
            )),
            Behaviour::MailboxFull if first_time() => {
                Some(format!("452 4.2.2 <{address}>: Mailbox full"))
            }
            Behaviour::Greylist if first_time() => Some(format!(
                "451 4.7.1 <{address}>: Recipient address rejected: Greylisted, try again later"
            )),
            _ => None,
        }
    }

    /// The reply to a complete message, or `None` to accept it.
    pub(crate) fn after_data(self) -> Option<&'static str> {
        match self {
            Behaviour::TooLarge => {
                Some("552 5.3.4 Message size exceeds fixed maximum message size")
            }
            Behaviour::SpamBlock => Some("550 5.7.1 Message rejected as spam by content filter"),
            _ => None,
        }
    }

    /// How long to wait before the greeting and before accepting a message.
    pub(crate) fn delay(self) -> Option<Duration> {
        (self == Behaviour::Slow).then_some(SLOW_DELAY)
    }

    pub(crate) fn follow_up(self) -> Option<FollowUp> {
        Some(match self {
            Behaviour::BounceLater => FollowUp::Bounce,
            Behaviour::Complain => FollowUp::Complaint,
            Behaviour::Reply => FollowUp::Reply,
            Behaviour::AutoReply => FollowUp::AutoReply,
            Behaviour::Opens => FollowUp::Open,
            Behaviour::Clicks => FollowUp::Click,
            Behaviour::Unsubscribes => FollowUp::Unsubscribe,
            Behaviour::MachineOpen => FollowUp::MachineOpen,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_the_behaviours_agree() {
        assert_eq!(DOMAINS.len(), Behaviour::ALL.len());
        for (behaviour, (domain, _)) in Behaviour::ALL.iter().zip(DOMAINS) {
            assert_eq!(behaviour.domain(), *domain);
        }
    }

    #[test]
    fn a_deferring_domain_defers_each_recipient_once() {
        let deferred = Mutex::default();
        for behaviour in [Behaviour::MailboxFull, Behaviour::Greylist] {
            let address = format!("ana@{}", behaviour.domain());
            assert!(behaviour.at_rcpt(&address, &deferred).is_some());
            assert_eq!(behaviour.at_rcpt(&address.to_uppercase(), &deferred), None);
        }
        let other = "bo@mailbox-full.sandbox.test";
        assert!(Behaviour::MailboxFull.at_rcpt(other, &deferred).is_some());
    }
}
