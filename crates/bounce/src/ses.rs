//! Amazon SES notifications delivered by email (an SNS topic subscribed by an address): a JSON
//! document in the body instead of a report, with the recipients, their DSN fields, and the
//! headers of the original email.

use mailtrail_domain::Reason;
use mailtrail_domain::interpret::Facts;
use serde::Deserialize;

use crate::{Action, Kind, Origin, RecipientResult, reason, smtp};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    notification_type: String,
    #[serde(default)]
    bounce: Option<Bounce>,
    #[serde(default)]
    complaint: Option<Complaint>,
    #[serde(default)]
    delivery: Option<Delivery>,
    #[serde(default)]
    mail: Option<Mail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bounce {
    #[serde(default)]
    bounced_recipients: Vec<BouncedRecipient>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BouncedRecipient {
    email_address: String,
    action: Option<String>,
    status: Option<String>,
    diagnostic_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Complaint {
    #[serde(default)]
    complained_recipients: Vec<Address>,
    complaint_feedback_type: Option<String>,
}

#[derive(Deserialize)]
struct Delivery {
    #[serde(default)]
    recipients: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Address {
    email_address: String,
}

#[derive(Deserialize)]
struct Mail {
    #[serde(default)]
    headers: Vec<Header>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    value: String,
}

/// The kind, recipients and origin of a notification, or `None` when `body` is not one.
pub(crate) fn read(body: &str) -> Option<(Kind, Vec<RecipientResult>, Origin)> {
    let start = body.find('{')?;
    let end = body.rfind('}')?;
    let json = body.get(start..=end)?;
    // SNS wraps long lines with "!\n " when it mails a notification; undo it before parsing.
    let json = json.replace("!\n ", "").replace("!\r\n ", "");
    let notification: Notification = serde_json::from_str(&json).ok()?;
    let origin = origin(notification.mail.as_ref());
    let (kind, recipients) = match notification.notification_type.as_str() {
        "Bounce" => (Kind::Bounce, bounced(notification.bounce?)),
        "Complaint" => (Kind::Complaint, complained(notification.complaint?)),
        "Delivery" => (Kind::Delivered, delivered(notification.delivery?)),
        _ => return None,
    };
    Some((kind, recipients, origin))
}

fn bounced(bounce: Bounce) -> Vec<RecipientResult> {
    bounce
        .bounced_recipients
        .into_iter()
        .map(|r| {
            let diagnostic = r.diagnostic_code.map(|d| {
                d.split_once(';')
                    .map_or(d.as_str(), |(_, t)| t)
                    .trim()
                    .to_string()
            });
            let mut codes = smtp::find(diagnostic.as_deref().unwrap_or_default());
            if let Some(status) = r.status.as_deref().and_then(|s| smtp::find(s).status) {
                codes.status = Some(status);
            }
            let text = diagnostic.as_deref().unwrap_or_default();
            let facts = Facts {
                said: !text.trim().is_empty(),
                ..Facts::default()
            };
            let verdict = reason::verdict(codes, &[text], text, facts, reason::Source::Dsn);
            RecipientResult {
                recipient: Some(r.email_address.to_ascii_lowercase()),
                original_recipient: None,
                action: r.action.as_deref().and_then(|a| a.parse().ok()),
                status: codes.status.map(|s| s.to_string()),
                reply_code: codes.reply_code,
                hard_bounce: verdict.hard,
                reason: verdict.reason,
                feedback_type: None,
                diagnostic,
            }
        })
        .collect()
}

fn complained(complaint: Complaint) -> Vec<RecipientResult> {
    let feedback_type = complaint.complaint_feedback_type;
    complaint
        .complained_recipients
        .into_iter()
        .map(|r| RecipientResult {
            feedback_type: feedback_type.clone().or_else(|| Some("abuse".into())),
            ..plain(r.email_address, Reason::Feedback)
        })
        .collect()
}

fn delivered(delivery: Delivery) -> Vec<RecipientResult> {
    delivery
        .recipients
        .into_iter()
        .map(|r| RecipientResult {
            action: Some(Action::Delivered),
            ..plain(r, Reason::Delivered)
        })
        .collect()
}

fn plain(address: String, reason: Reason) -> RecipientResult {
    RecipientResult {
        recipient: Some(address.to_ascii_lowercase()),
        original_recipient: None,
        action: None,
        status: None,
        reply_code: None,
        reason,
        hard_bounce: false,
        feedback_type: None,
        diagnostic: None,
    }
}

/// SES copies the original's headers into the notification: the token and Message-ID are
/// there.
fn origin(mail: Option<&Mail>) -> Origin {
    let header = |name: &str| {
        mail?
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.trim().trim_matches(['<', '>']).to_string())
    };
    Origin {
        message_id: header("message-id"),
        token: header(crate::origin::TOKEN_HEADER),
        replied_to: Vec::new(),
    }
}
