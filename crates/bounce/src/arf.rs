//! Feedback-loop complaints (ARF, RFC 5965): a recipient marked the email as spam, or asked to
//! be removed. Mailbox providers often blank the recipient out, so the token in the returned
//! headers ([`crate::origin`]) is what ties a complaint to its email.

use mail_auth::report::{Feedback, FeedbackType};
use mailtrail_domain::Reason;

use crate::RecipientResult;
use crate::sections::{Sections, fields};

/// One result per reported recipient, or `None` when the message is not a complaint.
pub(crate) fn read(sections: &Sections) -> Option<Vec<RecipientResult>> {
    let report = sections.feedback_report.first()?;
    let parsed = Feedback::parse_arf(report.as_bytes());
    let fields = fields(report);
    // mail-auth knows the RFC 5965 types; `opt-out` and other registered or private types
    // are kept as the reporter wrote them.
    let feedback_type = parsed
        .as_ref()
        .map(|f| type_name(f.feedback_type()).to_string())
        .filter(|t| t != "other")
        .or_else(|| field(&fields, "feedback-type").map(|t| t.to_ascii_lowercase()))
        .unwrap_or_else(|| "other".into());
    // A report may list several Original-Rcpt-To; mail-auth keeps one, so all are read here.
    let mut recipients: Vec<String> = fields
        .iter()
        .filter(|(name, _)| name == "original-rcpt-to" || name == "removal-recipient")
        .map(|(_, value)| clean(value))
        .filter(|a| !a.is_empty())
        .collect();
    if recipients.is_empty() {
        recipients.extend(returned_to(sections));
    }
    let result = |recipient: Option<String>| RecipientResult {
        original_recipient: recipient.clone(),
        recipient,
        action: None,
        status: None,
        reply_code: None,
        reason: Reason::Feedback,
        hard_bounce: false,
        feedback_type: Some(feedback_type.clone()),
        diagnostic: None,
    };
    if recipients.is_empty() {
        return Some(vec![result(None)]);
    }
    Some(recipients.into_iter().map(|r| result(Some(r))).collect())
}

fn type_name(kind: FeedbackType) -> &'static str {
    match kind {
        FeedbackType::Abuse => "abuse",
        FeedbackType::AuthFailure => "auth-failure",
        FeedbackType::Fraud => "fraud",
        FeedbackType::NotSpam => "not-spam",
        FeedbackType::Other => "other",
        FeedbackType::Virus => "virus",
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn clean(value: &str) -> String {
    value
        .trim()
        .trim_matches(['<', '>'])
        .trim()
        .to_ascii_lowercase()
}

/// The `To` of the complained-about message, when it is a real address (reporters often
/// replace it with `undisclosed` or a hash).
fn returned_to(sections: &Sections) -> Option<String> {
    sections.returned_headers.iter().find_map(|headers| {
        let fields = fields(headers);
        let to = clean(field(&fields, "to")?);
        let to = to.rsplit('<').next().unwrap_or(&to).trim_end_matches('>');
        to.contains('@').then(|| to.to_string())
    })
}
