//! RFC 3464 delivery status notifications: the per-recipient fields of a
//! `message/delivery-status` part, or the same fields quoted in a plain-text bounce (some
//! servers paste them into the body instead of attaching them).

use std::sync::LazyLock;

use mailtrail_domain::interpret::Facts;
use mailtrail_domain::{EnhancedStatus, Reason};

use crate::phrases::PhraseSet;
use crate::sections::{Sections, fields};
use crate::{Action, RecipientResult, reason, smtp, text};

/// The fields of one recipient's block.
#[derive(Debug, Default)]
struct Fields {
    final_recipient: Option<String>,
    original_recipient: Option<String>,
    action: Option<String>,
    status: Option<String>,
    diagnostic: Option<String>,
    /// PowerMTA's class of the failure (`X-PowerMTA-BounceCategory`).
    category: Option<String>,
    /// The server that gave the reply (`Remote-MTA: dns; HOST`).
    remote_mta: Option<String>,
}

/// One result per recipient block, or `None` when the message carries no DSN fields.
pub(crate) fn read(sections: &Sections) -> Option<Vec<RecipientResult>> {
    // Fields pasted into the text count only when no report part holds them, so a server
    // that does both is not read twice.
    let mut blocks: Vec<Fields> = sections
        .delivery_status
        .iter()
        .flat_map(|b| split_blocks(b))
        .collect();
    if blocks.is_empty() {
        blocks = sections
            .human
            .iter()
            .filter(|b| RECIPIENT_FIELDS.any_in(b))
            .flat_map(|b| split_blocks(b))
            .collect();
    }
    if blocks.is_empty() {
        return None;
    }
    let human = sections.human.join("\n");
    // With one recipient the whole notice is about it, transcript included.
    let transcript = if blocks.len() == 1 {
        human.as_str()
    } else {
        ""
    };
    Some(
        blocks
            .into_iter()
            .map(|f| result(f, &human, transcript))
            .collect(),
    )
}

/// The names of the fields that open a recipient block: a text without them holds none, and
/// most plain-text bounces need not be cut into paragraphs to learn that.
static RECIPIENT_FIELDS: LazyLock<PhraseSet> =
    LazyLock::new(|| PhraseSet::new(&["final-recipient", "original-recipient"]));

/// Splits a body into recipient blocks. RFC 3464 puts each recipient in its own paragraph;
/// within a paragraph, a recipient field (`Final-Recipient`, `Original-Recipient`) that the
/// block already has starts the next one, for servers that leave the blank lines out.
/// Paragraphs without a recipient field hold per-message fields and are skipped.
fn split_blocks(body: &str) -> Vec<Fields> {
    let mut blocks = Vec::new();
    for paragraph in paragraphs(body) {
        let fields = fields(&paragraph);
        let is_recipient = |name: &str| name == "final-recipient" || name == "original-recipient";
        if !fields.iter().any(|(name, _)| is_recipient(name)) {
            continue;
        }
        let mut current = Fields::default();
        for (name, value) in fields {
            let taken = match name.as_str() {
                "final-recipient" => current.final_recipient.is_some(),
                "original-recipient" => current.original_recipient.is_some(),
                _ => false,
            };
            if taken {
                blocks.push(std::mem::take(&mut current));
            }
            let slot = match name.as_str() {
                "final-recipient" => &mut current.final_recipient,
                "original-recipient" => &mut current.original_recipient,
                "action" => &mut current.action,
                "status" => &mut current.status,
                "diagnostic-code" => &mut current.diagnostic,
                "x-powermta-bouncecategory" => &mut current.category,
                "remote-mta" => &mut current.remote_mta,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        blocks.push(current);
    }
    blocks
}

/// The body cut at blank lines.
fn paragraphs(body: &str) -> Vec<String> {
    let mut paragraphs = vec![String::new()];
    for line in body.lines() {
        if line.trim().is_empty() {
            paragraphs.push(String::new());
        } else if let Some(last) = paragraphs.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    paragraphs
}

/// The RFC 822 address of a recipient field (`rfc822; <a@b>`), lower-cased; `None` for the
/// other address types (`x400;`, `LOCAL;`, `X-Unix;`) and for values without a domain,
/// which name no address Mailtrail mailed.
fn address(value: &str) -> Option<String> {
    let (kind, value) = value.split_once(';').unwrap_or(("rfc822", value));
    if !kind.trim().eq_ignore_ascii_case("rfc822") {
        return None;
    }
    let value = value
        .trim()
        .trim_matches(['<', '>'])
        .trim()
        .to_ascii_lowercase();
    let (local, domain) = value.rsplit_once('@')?;
    let plain = |part: &str| !part.is_empty() && !part.contains(char::is_whitespace);
    (plain(local) && plain(domain)).then_some(value)
}

fn result(fields: Fields, human: &str, transcript: &str) -> RecipientResult {
    // The address Mailtrail mailed (`Original-Recipient`, RFC 3464 §2.3.1) over the one the
    // reporting MTA ended at, which can be an alias or a forward of it.
    let original = fields.original_recipient.as_deref().and_then(address);
    let final_recipient = fields.final_recipient.as_deref().and_then(address);
    let recipient = original.clone().or_else(|| final_recipient.clone());
    let action = fields
        .action
        .as_deref()
        .and_then(|a| a.parse::<Action>().ok());
    // The diagnostic drops its `smtp;` diagnostic-type; the human text about this recipient
    // backs it up, as many servers leave the field out or put only a code in it.
    let diagnostic = fields.diagnostic.as_deref().map(|d| {
        d.split_once(';')
            .map_or(d, |(_, rest)| rest)
            .trim()
            .to_string()
    });
    let diagnostic = diagnostic.map(|d| complete_reply(d, human));
    // The notice names whichever address it delivered to.
    let about = final_recipient
        .as_deref()
        .and_then(|r| text::about(human, r))
        .or_else(|| original.as_deref().and_then(|r| text::about(human, r)));
    let context = about
        .as_deref()
        .unwrap_or_else(|| text::cut_returned(transcript));
    // The remote server's own code in the diagnostic is more specific than the reporting
    // MTA's summary in `Status` (often `4.4.7` "expired" or `5.0.0`), unless it says less.
    let mut codes = smtp::find(diagnostic.as_deref().unwrap_or_default());
    let summary = fields.status.as_deref().and_then(|s| smtp::find(s).status);
    let vague = |s: Option<EnhancedStatus>| s.is_none_or(|s| s.subject() == 0 && s.detail() == 0);
    if vague(codes.status) {
        codes.status = summary.or(codes.status);
    }
    // Without a diagnostic, the notice's own line about the recipient may quote the server
    // (`a@b: 550 5.7.26 … authentication checks failed`) where `Status` says only `5.0.0`.
    if diagnostic.as_deref().is_none_or(|d| d.trim().is_empty()) && vague(codes.status) {
        let quoted = about.as_deref().map(smtp::find).unwrap_or_default();
        if !vague(quoted.status) && quoted.status.is_some_and(|s| s.class() != 2) {
            codes.status = quoted.status;
            codes.reply_code = codes.reply_code.or(quoted.reply_code);
        }
    }
    let delivered = match action {
        Some(action) => matches!(
            action,
            Action::Delivered | Action::Relayed | Action::Expanded
        ),
        None => codes.status.is_some_and(|s| s.class() == 2),
    };
    // `X-Unix` diagnostics come from a local delivery program (procmail, a pipe), not from a
    // server: unless they say the mailbox is out of room, the mailer failed.
    let local_program = fields
        .diagnostic
        .as_deref()
        .is_some_and(|d| d.trim_start().to_ascii_lowercase().starts_with("x-unix"));
    let verdict = (!delivered).then(|| {
        // The status may carry a comment (`4.0.0 (host name lookup failure)`) worth reading.
        let reply = format!(
            "{} {}",
            diagnostic.as_deref().unwrap_or_default(),
            fields.status.as_deref().unwrap_or_default()
        );
        let facts = Facts {
            delayed: action == Some(Action::Delayed),
            no_such_mailbox: fields
                .category
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("bad-mailbox")),
            refuses_as_unknown_user: fields.remote_mta.as_deref().is_some_and(|mta| {
                reason::refuses_as_unknown_user(mta.rsplit(';').next().unwrap_or(mta))
            }),
            local_program,
            said: diagnostic.as_deref().is_some_and(|d| !d.trim().is_empty()),
        };
        reason::verdict(
            codes,
            &[&reply, context],
            &format!("{reply}\n{context}\n{transcript}"),
            facts,
            reason::Source::Dsn,
        )
    });
    RecipientResult {
        hard_bounce: verdict.is_some_and(|v| v.hard),
        original_recipient: original,
        recipient,
        action,
        status: codes.status.map(|s| s.to_string()),
        reply_code: codes.reply_code,
        reason: verdict.map_or(Reason::Delivered, |v| v.reason),
        feedback_type: None,
        diagnostic: diagnostic.filter(|d| !d.is_empty()),
    }
}

/// A multi-line reply (`552-5.7.0 …`) that the Diagnostic-Code cut after its first line, with
/// the rest of its lines from the transcript in the notice (`<<< 552-5.7.0 security issue.`).
fn complete_reply(diagnostic: String, human: &str) -> String {
    let Some(code) = diagnostic.split_once('-').map(|(c, _)| c.to_string()) else {
        return diagnostic;
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return diagnostic;
    }
    let unquote = |line: &str| line.trim().trim_start_matches("<<<").trim().to_string();
    let lines: Vec<String> = human.lines().map(unquote).collect();
    let Some(first) = lines.iter().position(|l| *l == diagnostic.trim()) else {
        return diagnostic;
    };
    let mut complete = diagnostic;
    for line in &lines[first + 1..] {
        let Some(rest) = line.strip_prefix(code.as_str()) else {
            break;
        };
        if !rest.starts_with(['-', ' ']) {
            break;
        }
        complete.push(' ');
        complete.push_str(line);
        if rest.starts_with(' ') {
            break;
        }
    }
    complete
}
