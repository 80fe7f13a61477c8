//! Failures in words (docs/web-ui.md): the one table that turns a [`Reason`] into a category a
//! user recognises, a plain sentence and what Mailtrail does next. Every page that shows a raw
//! Status shows this beside it, so the words live here once instead of in each template.

use crate::reason::Reason;

/// The kind of outcome a reason stands for, as a Postmark or SendGrid user would name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The address itself is bad; it is blocked and Permission to Email set to No.
    HardBounce,
    /// A temporary failure that was retried until the retry window ran out.
    SoftBounce,
    /// The recipient's server refused on policy (spam, reputation, content, authentication).
    Policy,
    /// Mailtrail did not send it: the address is blocked, permission is No, or it was cancelled.
    Dropped,
    /// The recipient reported the email as spam or abuse.
    Complaint,
    /// The recipient asked to receive no more email.
    Unsubscribed,
    /// Not a failure: a delivery, an auto-reply, or feedback that ends nothing.
    NotAFailure,
}

impl Category {
    /// The category's name as shown on the pages.
    pub fn label(self) -> &'static str {
        match self {
            Category::HardBounce => "Hard bounce",
            Category::SoftBounce => "Soft bounce, retries ran out",
            Category::Policy => "Blocked by the recipient's policy",
            Category::Dropped => "Dropped, not sent",
            Category::Complaint => "Complaint",
            Category::Unsubscribed => "Unsubscribed",
            Category::NotAFailure => "Not a failure",
        }
    }
}

/// One row of the table: what a reason means and what follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explanation {
    pub category: Category,
    /// What happened, in a sentence without jargon.
    pub sentence: &'static str,
    /// What Mailtrail does next, or what the user can do.
    pub next: &'static str,
}

const BLOCKED_NEXT: &str = "The address is blocked and Permission to Email is set to No. \
     Setting Permission to Email back to Yes does not lift the block; only an operator can.";
const RETRIED_NEXT: &str = "Mailtrail retried until the retry window ran out and gave up. \
     The address stays open: a later email is tried again.";
const POLICY_NEXT: &str = "The address is not blocked. Check the sending domain's \
     authentication and reputation before sending to this recipient again.";

/// The table. An exhaustive `match`, so a new [`Reason`] does not build until it has words.
pub fn explain(reason: Reason) -> Explanation {
    use Category::*;
    let (category, sentence, next) = match reason {
        Reason::UserUnknown => (HardBounce, "The mailbox does not exist.", BLOCKED_NEXT),
        Reason::HostUnknown => (
            HardBounce,
            "The recipient's domain does not exist or has no mail server.",
            BLOCKED_NEXT,
        ),
        Reason::HasMoved => (
            HardBounce,
            "The recipient has moved to another address.",
            BLOCKED_NEXT,
        ),
        Reason::NotAccept => (
            HardBounce,
            "The recipient's domain accepts no email at all.",
            BLOCKED_NEXT,
        ),
        Reason::MailboxFull => (SoftBounce, "The recipient's mailbox is full.", RETRIED_NEXT),
        Reason::MesgTooBig => (
            SoftBounce,
            "The email is larger than the recipient's server accepts.",
            "Send a smaller email; retrying the same one will not help.",
        ),
        Reason::ExceedLimit => (
            SoftBounce,
            "The email exceeds a limit of the recipient's mailbox.",
            RETRIED_NEXT,
        ),
        Reason::SystemFull => (
            SoftBounce,
            "The recipient's mail server is out of space.",
            RETRIED_NEXT,
        ),
        Reason::Expired => (
            SoftBounce,
            "The email could not be delivered before its retry window ended.",
            RETRIED_NEXT,
        ),
        Reason::Filtered => (
            Policy,
            "A filter at the recipient refused the email.",
            POLICY_NEXT,
        ),
        Reason::Rejected => (
            Policy,
            "The recipient's server refused the sender address.",
            POLICY_NEXT,
        ),
        Reason::Blocked => (
            Policy,
            "The recipient's server refused the sending server's IP address.",
            POLICY_NEXT,
        ),
        Reason::SpamDetected => (
            Policy,
            "The recipient's server judged the email to be spam.",
            POLICY_NEXT,
        ),
        Reason::VirusDetected => (
            Policy,
            "The recipient's server found a virus in the email.",
            POLICY_NEXT,
        ),
        Reason::ContentError => (
            Policy,
            "The recipient's server refused the email's content or format.",
            POLICY_NEXT,
        ),
        Reason::PolicyViolation => (
            Policy,
            "The email breaks a policy of the recipient's server.",
            POLICY_NEXT,
        ),
        Reason::SecurityError => (
            Policy,
            "The recipient's server refused on a security check.",
            POLICY_NEXT,
        ),
        Reason::AuthFailure => (
            Policy,
            "The email failed the recipient's SPF, DKIM or DMARC check.",
            POLICY_NEXT,
        ),
        Reason::RequirePtr => (
            Policy,
            "The sending server's IP address has no matching reverse DNS name.",
            POLICY_NEXT,
        ),
        Reason::NotCompliantRfc => (
            Policy,
            "The recipient's server says the email does not follow the email standards.",
            POLICY_NEXT,
        ),
        Reason::NoRelaying => (
            Policy,
            "The server reached refuses to accept email for this domain.",
            POLICY_NEXT,
        ),
        Reason::FailedStartTls => (
            SoftBounce,
            "A secure (TLS) connection to the recipient's mail server could not be set up.",
            RETRIED_NEXT,
        ),
        Reason::NetworkError => (
            SoftBounce,
            "Could not connect to the recipient's mail server.",
            RETRIED_NEXT,
        ),
        Reason::SystemError => (
            SoftBounce,
            "The recipient's mail server had an internal error.",
            RETRIED_NEXT,
        ),
        Reason::MailerError => (
            SoftBounce,
            "The recipient's mail program failed while handling the email.",
            RETRIED_NEXT,
        ),
        Reason::TooManyConn => (
            SoftBounce,
            "The recipient's server refused more connections at that moment.",
            RETRIED_NEXT,
        ),
        Reason::Speeding | Reason::RateLimited => (
            SoftBounce,
            "The recipient's server asked to slow down.",
            RETRIED_NEXT,
        ),
        Reason::Suspend => (
            SoftBounce,
            "The recipient's mailbox is suspended.",
            RETRIED_NEXT,
        ),
        Reason::OnHold => (
            SoftBounce,
            "The recipient's server held the email without deciding.",
            RETRIED_NEXT,
        ),
        Reason::SyntaxError => (
            Policy,
            "The recipient's server did not understand a command it was sent.",
            POLICY_NEXT,
        ),
        Reason::BadReputation => (
            Policy,
            "The recipient's server refused because of the sender's reputation.",
            POLICY_NEXT,
        ),
        Reason::Undefined => (
            SoftBounce,
            "The email failed for a reason the reply did not make clear.",
            "Read the SMTP reply below for the recipient server's own words.",
        ),
        Reason::Feedback => (
            NotAFailure,
            "The recipient's provider sent feedback about the email.",
            "Nothing; the feedback is recorded.",
        ),
        Reason::Vacation => (
            NotAFailure,
            "The recipient's auto-reply answered (for example an out-of-office note).",
            "Nothing; the email was delivered.",
        ),
        Reason::Delivered => (
            NotAFailure,
            "The recipient's server accepted the email.",
            "Nothing.",
        ),
        Reason::Suppressed => (
            Dropped,
            "Not sent: the address is blocked on the account's suppression list.",
            "Setting Permission to Email back to Yes does not lift the block; only an operator can.",
        ),
        Reason::NoPermission => (
            Dropped,
            "Not sent: the lead's Permission to Email is No.",
            "Set Permission to Email to Yes to send to this lead again.",
        ),
        Reason::Complaint => (
            Complaint,
            "The recipient reported the email as spam or abuse.",
            BLOCKED_NEXT,
        ),
        Reason::Unsubscribed => (
            Unsubscribed,
            "The recipient unsubscribed.",
            "Permission to Email is set to No; no more email is sent to this lead.",
        ),
        Reason::Cancelled => (
            Dropped,
            "Not sent: it was cancelled while it waited in the queue.",
            "Nothing.",
        ),
    };
    Explanation {
        category,
        sentence,
        next,
    }
}

/// A stored SMTP status for a connection failure, in words, keeping the cause readable.
///
/// The delivery path records connection failures as the operating system's error text
/// (for example "Connection refused (os error 111)"); users should read what happened instead.
/// Returns `None` for anything that is not a recognised connection failure.
pub fn connection_in_words(status: &str) -> Option<String> {
    let lower = status.to_ascii_lowercase();
    let cause = [
        ("connection refused", "connection refused"),
        ("timed out", "no answer in time"),
        ("connection reset", "connection reset"),
        ("network is unreachable", "network unreachable"),
        ("no route to host", "no route to host"),
        ("host is unreachable", "host unreachable"),
    ]
    .into_iter()
    .find(|(needle, _)| lower.contains(needle))?
    .1;
    Some(format!(
        "Could not connect to the recipient's mail server ({cause})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_sentence_and_a_next_step() {
        for &reason in Reason::ALL {
            let e = explain(reason);
            assert!(e.sentence.ends_with('.'), "{reason}: {}", e.sentence);
            assert!(!e.next.is_empty(), "{reason}");
        }
    }

    #[test]
    fn hard_reasons_and_only_they_are_hard_bounces() {
        for &reason in Reason::ALL {
            assert_eq!(
                explain(reason).category == Category::HardBounce,
                reason.is_hard(),
                "{reason}"
            );
        }
    }

    #[test]
    fn blocking_outcomes_state_that_only_an_operator_lifts_the_block() {
        for reason in [Reason::UserUnknown, Reason::Complaint, Reason::Suppressed] {
            assert!(
                explain(reason).next.contains("only an operator can"),
                "{reason}"
            );
        }
        assert!(!explain(Reason::MailboxFull).next.contains("operator"));
    }

    #[test]
    fn os_connection_errors_read_as_what_happened() {
        assert_eq!(
            connection_in_words("Connection refused (os error 111)").as_deref(),
            Some("Could not connect to the recipient's mail server (connection refused)")
        );
        assert_eq!(
            connection_in_words("connect to mx.example: operation timed out").as_deref(),
            Some("Could not connect to the recipient's mail server (no answer in time)")
        );
        assert_eq!(connection_in_words("550 5.1.1 user unknown"), None);
    }
}
