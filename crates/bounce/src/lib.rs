//! Reads one returned message — a bounce, a feedback-loop complaint or an auto-reply — and
//! says, per recipient it reports, what happened and why (docs/inbound.md). Pure: bytes in,
//! a [`Report`] out; it never panics on malformed input.
//!
//! - `sections`: splits the MIME message into what the readers below need.
//! - `dsn`: RFC 3464 delivery-status fields, in a report part or quoted in plain text.
//! - `arf`: RFC 5965 feedback-loop complaints.
//! - `autoreply`: RFC 3834 auto-replies, vacation and out-of-office notices.
//! - `ses`: Amazon SES notifications mailed as JSON.
//! - `text`: the non-standard, human-readable bounces real servers send.
//! - `smtp`: reply codes and enhanced status codes found in free text.
//! - `reason`: hands the evidence to the domain's one interpreter for the reason and hard flag.
//! - `origin`: what identifies the email that caused the report (Message-ID, token).
//! - `phrases`: tables of phrases searched in one pass, shared by the readers above.

mod arf;
mod autoreply;
mod dsn;
mod origin;
mod phrases;
mod reason;
mod sections;
mod ses;
mod smtp;
mod text;

use std::str::FromStr;

use mailtrail_domain::Reason;
use serde::Serialize;

pub use origin::Origin;

/// What kind of message this is, which decides what the inbound side does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A failure or delay report (a DSN or a non-standard bounce).
    Bounce,
    /// A feedback-loop complaint (ARF).
    Complaint,
    /// An automatic answer such as out-of-office: recorded, never counted as a reply.
    AutoReply,
    /// A success notice (`Action: delivered`, `relayed` or `expanded` for every recipient).
    Delivered,
    /// None of the above, for example a person's reply.
    Unknown,
}

/// What the reporting MTA did for a recipient (RFC 3464 §2.3.3 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Delivery failed for good.
    Failed,
    /// Not delivered yet; the MTA keeps trying.
    Delayed,
    Delivered,
    /// Passed on to a system that sends no notices.
    Relayed,
    /// Delivered to a list or alias, which expanded it to other recipients.
    Expanded,
}

/// An `Action` value RFC 3464 does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown DSN action '{0}' (RFC 3464: failed, delayed, delivered, relayed or expanded)")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    /// The action word, ignoring case and any comment after it (`failed (bad mailbox)`);
    /// `deliverable`, which some MTAs write for a successful test delivery, is `delivered`.
    fn from_str(s: &str) -> Result<Self, UnknownAction> {
        let word = s.split_whitespace().next().unwrap_or_default();
        Ok(match word.to_ascii_lowercase().as_str() {
            "failed" => Action::Failed,
            "delayed" => Action::Delayed,
            "delivered" | "deliverable" => Action::Delivered,
            "relayed" => Action::Relayed,
            "expanded" => Action::Expanded,
            _ => return Err(UnknownAction(s.trim().to_string())),
        })
    }
}

/// One report about a whole message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub kind: Kind,
    /// One entry per recipient the message reports on, in the order it names them; empty
    /// only for [`Kind::Unknown`].
    pub recipients: Vec<RecipientResult>,
    /// What ties the report to the email Mailtrail sent, when the returned headers show it.
    pub origin: Origin,
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientResult {
    /// The RFC 822 address the report is about: the one Mailtrail mailed when the report
    /// keeps it (DSN `Original-Recipient`), else `Final-Recipient`, else the address the
    /// notice's text names (never the returned message's `To:`, which need not be the
    /// envelope recipient). X.400 and local address types are not addresses here.
    pub recipient: Option<String>,
    /// The envelope recipient Mailtrail used (DSN `Original-Recipient`, ARF
    /// `Original-Rcpt-To`), when the report keeps it: the address to suppress.
    pub original_recipient: Option<String>,
    /// DSN `Action` (for a text notice: delayed when its words say so, else failed); `None`
    /// when the report gives none or one RFC 3464 does not define.
    pub action: Option<Action>,
    /// The enhanced status code (RFC 3463), for example `5.1.1`.
    pub status: Option<String>,
    /// The SMTP reply code of the remote server, when the report quotes one.
    pub reply_code: Option<u16>,
    pub reason: Reason,
    /// The address itself is bad: suppress it (docs/emails.md).
    pub hard_bounce: bool,
    /// ARF `Feedback-Type` (abuse, opt-out, …) for complaints.
    pub feedback_type: Option<String>,
    /// The remote server's words (DSN `Diagnostic-Code` or the matching text), for the
    /// email's Status field.
    pub diagnostic: Option<String>,
}

/// Reads one raw message. Anything that cannot be read as a report is [`Kind::Unknown`].
///
/// A mailbox file (`From ` lines between messages) can hold several reports, for example a
/// success notice per recipient: their recipients are reported together, in order.
pub fn classify(raw: &[u8]) -> Report {
    // mail-parser asserts on some malformed multipart nesting in debug builds (found by the
    // fuzzer); whatever a dependency does, a hostile message must not take the caller down.
    std::panic::catch_unwind(|| read_all(raw)).unwrap_or_else(|_| Report {
        kind: Kind::Unknown,
        recipients: Vec::new(),
        origin: Origin::default(),
    })
}

fn read_all(raw: &[u8]) -> Report {
    let mut reports: Vec<(Report, bool)> =
        mbox_messages(raw).into_iter().map(classify_one).collect();
    // A forwarded mailbox file wraps the reports in a note of its own: the reports in a
    // standard format are the ones to read when there are any. Without one, a `From ` line
    // may as well be part of a quoted message: only the first message is read.
    if reports.iter().any(|(_, standard)| *standard) {
        reports.retain(|(_, standard)| *standard);
    } else {
        reports.truncate(1);
    }
    let mut reports = reports.into_iter().map(|(report, _)| report);
    let Some(mut report) = reports.next() else {
        return classify_one(raw).0;
    };
    for next in reports {
        let same_kind = next.kind == report.kind
            || matches!(
                (report.kind, next.kind),
                (Kind::Bounce, Kind::Delivered) | (Kind::Delivered, Kind::Bounce)
            );
        if !same_kind {
            continue;
        }
        if next.kind == Kind::Bounce {
            report.kind = Kind::Bounce;
        }
        report.recipients.extend(next.recipients);
    }
    report
}

/// The messages of a mailbox file, split at its `From ` separator lines; the whole input when
/// there is no separator past its start.
fn mbox_messages(raw: &[u8]) -> Vec<&[u8]> {
    let mut starts = vec![0];
    let mut at = 0;
    while let Some(found) = raw[at..].iter().position(|&b| b == b'\n') {
        let start = at + found + 1;
        if !raw[start..].starts_with(b"From ") {
            at = start;
            continue;
        }
        // A separator carries the time it was written (`From a@b Thu Apr 29 23:34:45 2015`)
        // and is followed by a header block, not by a line of text.
        let rest = &raw[start..];
        let mut lines = rest.split(|&b| b == b'\n');
        let separator = lines.next().unwrap_or_default();
        let timed = separator.windows(8).any(|w| {
            w.iter().enumerate().all(|(i, b)| match i {
                2 | 5 => *b == b':',
                _ => b.is_ascii_digit(),
            })
        });
        let next_line = lines.next().unwrap_or_default();
        let header = next_line
            .iter()
            .position(|&b| b == b':')
            .is_some_and(|colon| {
                colon > 0 && next_line[..colon].iter().all(|b| b.is_ascii_graphic())
            });
        if timed && header {
            starts.push(start);
        }
        at = start;
    }
    starts.push(raw.len());
    starts
        .windows(2)
        .map(|w| &raw[w[0]..w[1]])
        .filter(|m| m.iter().any(|b| !b.is_ascii_whitespace()))
        .collect()
}

/// One message's report, and whether it came in a standard format (a DSN, an ARF report or
/// an SES notification) rather than from reading a notice's text.
fn classify_one(raw: &[u8]) -> (Report, bool) {
    let Some(sections) = sections::Sections::parse(raw) else {
        let report = Report {
            kind: Kind::Unknown,
            recipients: Vec::new(),
            origin: Origin::default(),
        };
        return (report, false);
    };
    let origin = origin::find(&sections);
    if let Some((kind, recipients, ses_origin)) = sections.human.iter().find_map(|b| ses::read(b)) {
        let report = Report {
            kind,
            recipients,
            origin: Origin {
                message_id: ses_origin.message_id.or(origin.message_id),
                token: ses_origin.token.or(origin.token),
                replied_to: origin.replied_to,
            },
        };
        return (report, true);
    }
    let mut standard = true;
    let (kind, recipients) = if let Some(recipients) = arf::read(&sections) {
        (Kind::Complaint, recipients)
    } else if let Some(recipients) = dsn::read(&sections) {
        let all_delivered = recipients.iter().all(|r| r.reason == Reason::Delivered);
        let kind = if all_delivered {
            Kind::Delivered
        } else {
            Kind::Bounce
        };
        (kind, recipients)
    } else {
        standard = false;
        let autoreply = autoreply::read(&sections);
        if let Some(reply) = autoreply.clone().filter(|a| a.certain) {
            (Kind::AutoReply, vec![reply.result])
        } else if let Some(recipients) = text::read(&sections) {
            (Kind::Bounce, recipients)
        } else if let Some(reply) = autoreply {
            (Kind::AutoReply, vec![reply.result])
        } else {
            (Kind::Unknown, Vec::new())
        }
    };
    let report = Report {
        kind,
        recipients,
        origin,
    };
    (report, standard)
}
