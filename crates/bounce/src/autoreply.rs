//! Auto-replies (RFC 3834): out-of-office and vacation notices and other automatic answers.
//! They prove the email arrived but are not a person's reply (docs/inbound.md). DSNs carry
//! `Auto-Submitted: auto-replied` too, so this runs only once the message is known not to be
//! a report, and a header alone is not enough when it is as vague as `Precedence: bulk`.

use mailtrail_domain::Reason;

use crate::RecipientResult;
use crate::sections::Sections;

/// Headers whose presence alone marks an automatic answer.
const AUTO_HEADERS: &[&str] = &[
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "x-vacation",
    "x-mail-autoreply",
    "x-ms-exchange-inbox-rules-loop",
];

/// Words of out-of-office subjects and bodies, lower-cased.
const VACATION_WORDS: &[&str] = &[
    "out of office",
    "out of the office",
    "out-of-office",
    "automatic reply",
    "auto reply",
    "autoreply",
    "auto-reply",
    "auto:",
    "automatische antwort",
    "abwesenheit",
    "réponse automatique",
    "absence",
    "vacation",
    "away until",
    "on leave",
    "currently away",
    "i am away",
    "i'm away",
    "i am currently out",
    "i am out of",
    "will be out of",
    "limited access to email",
    "will respond to your message",
    "return on",
    "returning on",
];

/// An auto-reply, and how sure that is.
#[derive(Clone)]
pub(crate) struct AutoReply {
    /// The sender of the auto-reply, as the recipient it reports on.
    pub result: RecipientResult,
    /// Its words or a dedicated header say so. Otherwise only `Auto-Submitted` or
    /// `Precedence` does, which bounces carry too: it counts only if no bounce is found.
    pub certain: bool,
}

/// Reads the headers and words of an automatic answer, or `None` when there are none.
pub(crate) fn read(sections: &Sections) -> Option<AutoReply> {
    let auto_submitted = sections
        .header("auto-submitted")
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("auto-replied"));
    let auto_header = AUTO_HEADERS.iter().any(|h| sections.header(h).is_some());
    let bulk = sections.header("precedence").is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "bulk" | "junk" | "list"
        )
    });
    let subject = sections.subject.to_lowercase();
    let body = sections
        .human
        .first()
        .map(|b| b.to_lowercase())
        .unwrap_or_default();
    let says_vacation = |text: &str| VACATION_WORDS.iter().any(|w| text.contains(w));
    let certain = auto_header
        || says_vacation(&subject)
        || ((auto_submitted || bulk) && says_vacation(&body));
    if !(certain || auto_submitted) {
        return None;
    }
    let result = RecipientResult {
        recipient: (!sections.from.is_empty()).then(|| sections.from.clone()),
        original_recipient: None,
        action: None,
        status: None,
        reply_code: None,
        reason: Reason::Vacation,
        hard_bounce: false,
        feedback_type: None,
        diagnostic: (!sections.subject.is_empty()).then(|| sections.subject.clone()),
    };
    Some(AutoReply { result, certain })
}
