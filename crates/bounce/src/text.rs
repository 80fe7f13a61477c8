//! Non-standard bounces: the human-readable notices that qmail, Exim, Sendmail, Exchange,
//! Gmail, Yahoo, Amazon SES and many others send instead of (or beside) a DSN. No two agree on
//! a layout, so this reads them the way a person would: find the addresses the notice is
//! about, take the lines around each one, and read the codes and words there.

use std::sync::LazyLock;

use mailtrail_domain::interpret::{self, Facts};

use crate::phrases::PhraseSet;
use crate::sections::Sections;
use crate::{Action, RecipientResult, reason, smtp};

/// Local parts of the addresses that send bounces, never the subject of one.
const DAEMONS: &[&str] = &[
    "mailerdaemon",
    "maildaemon",
    "postmaster",
    "doublebounce",
    "mmdf",
    "nobody",
    "root",
];

/// Subjects of bounces, lower-cased.
const BOUNCE_SUBJECTS: &[&str] = &[
    "undeliver",
    "undelivered",
    "delivery",
    "returned mail",
    "return mail",
    "failure",
    "failed",
    "not delivered",
    "could not be delivered",
    "non remis",
    "nondeliver",
    "non-deliver",
    "rejected",
    "bounce",
    "mail error",
    "error",
    "warning",
    "delayed",
    "unzustellbar",
    "returned",
    // Exchange's non-delivery report subjects in Dutch, Italian, Spanish and Japanese (the
    // German "Unzustellbar" and French "Non remis" are above).
    "onbestelbaar",
    "non recapitabile",
    "no se puede entregar",
    "配信不能",
];

/// Lines that start the copy of the returned message, lower-cased: addresses after them
/// belong to the original, not to the report.
const RETURNED_MARKERS: &[&str] = &[
    "below this line is a copy of the message",
    "original message follows",
    "unsent message follows",
    "original message header",
    "message headers follow",
    "copy of the message",
    "original message --",
    "headers of the original",
    "-- original message",
    "the header of the original message",
    "below is a copy of the original message",
    "this is a copy of the message",
    "rfc822",
];

/// Header names that open a returned message's header block when a line starts with them.
const RETURNED_HEADERS: &[&str] = &[
    "return-path:",
    "received:",
    "dkim-signature:",
    "message-id:",
    "mime-version:",
    "x-mailer:",
];

/// One result per recipient the notice names, or `None` when it is not a bounce.
pub(crate) fn read(sections: &Sections) -> Option<Vec<RecipientResult>> {
    if !looks_like_bounce(sections) {
        return None;
    }
    let notice = readable(sections);
    // Exim and Gmail list the failed recipients in a header: the surest source there is.
    let mut recipients: Vec<String> = sections
        .header("x-failed-recipients")
        .map(|v| {
            v.split(',')
                .map(|a| a.trim().trim_matches(['<', '>']).to_ascii_lowercase())
                .filter(|a| a.contains('@'))
                .collect()
        })
        .unwrap_or_default();
    if recipients.is_empty() {
        recipients = self::recipients(&notice, &excluded(sections));
    }
    let whole = format!("{}\n{notice}", sections.subject);
    if recipients.is_empty() {
        return Some(vec![result(None, "", &whole, &whole)]);
    }
    // With one recipient the whole notice is about it, transcript included.
    let single = recipients.len() == 1;
    Some(
        recipients
            .iter()
            .map(|r| {
                let segment = about(&notice, r).unwrap_or_default();
                let transcript = if single {
                    whole.as_str()
                } else {
                    segment.as_str()
                };
                result(Some(r.clone()), &segment, &whole, transcript)
            })
            .collect(),
    )
}

/// The lines of `notice` about `recipient`: each place it is named, up to the end of that
/// paragraph or the next address. `None` when the notice does not name it.
pub(crate) fn about(notice: &str, recipient: &str) -> Option<String> {
    let notice = cut_returned(notice);
    let lines: Vec<&str> = notice.lines().collect();
    let mut segments = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !contains_address(lines[i], recipient) {
            i += 1;
            continue;
        }
        // Sendmail sums a failure up on one line (`554 <a@b>... Remote protocol error`)
        // after the transcript of the exchange that caused it: the quoted replies just
        // above it are about it too.
        let mut segment = Vec::new();
        if opens_with_reply(lines[i]) {
            let mut k = i;
            while k > 0 && is_quoted_reply(lines[k - 1]) {
                k -= 1;
            }
            let names_other = lines[k..i].iter().any(|l| {
                l.to_ascii_lowercase().contains("rcpt to") && !contains_address(l, recipient)
            });
            if !names_other {
                segment.extend_from_slice(&lines[k..i]);
            }
        }
        segment.push(lines[i]);
        let mut j = i + 1;
        while j < lines.len() && j < i + 15 {
            let line = lines[j];
            let names_other = addresses(line)
                .iter()
                .any(|(a, _)| !a.eq_ignore_ascii_case(recipient));
            if contains_address(line, recipient) || (names_other && !is_quoted_reply(line)) {
                break;
            }
            if line.trim().is_empty() && substance(&segment, recipient) >= 20 {
                break;
            }
            // Sendmail lists one `550 host... reason` line per failure: a second line that
            // opens with a reply code is the next failure, not more of this one.
            if opens_with_reply(line) && segment.iter().any(|l| smtp::find(l).reply_code.is_some())
            {
                break;
            }
            segment.push(line);
            j += 1;
        }
        segments.push(segment.join("\n"));
        i = j;
    }
    (!segments.is_empty()).then(|| segments.join("\n"))
}

fn result(
    recipient: Option<String>,
    segment: &str,
    whole: &str,
    transcript: &str,
) -> RecipientResult {
    let mut codes = smtp::find(segment);
    if codes.status.is_none() && codes.reply_code.is_none() {
        codes = smtp::find(whole);
    }
    // A warning that the message is still queued is a delay, whatever code it quotes; a
    // notice that quotes a 4xx without saying so is the queue giving up (a failure).
    let delayed = interpret::says_delayed(whole);
    // Lines about a named recipient that no rule reads leave the reason on hold.
    let facts = Facts {
        delayed,
        said: recipient.is_some() && !segment.trim().is_empty(),
        ..Facts::default()
    };
    let verdict = reason::verdict(
        codes,
        &[segment, whole],
        transcript,
        facts,
        reason::Source::Notice,
    );
    let diagnostic = diagnostic(segment).or_else(|| diagnostic(whole));
    RecipientResult {
        recipient,
        original_recipient: None,
        action: Some(if delayed {
            Action::Delayed
        } else {
            Action::Failed
        }),
        status: codes.status.map(|s| s.to_string()),
        reply_code: codes.reply_code,
        hard_bounce: verdict.hard,
        reason: verdict.reason,
        feedback_type: None,
        diagnostic,
    }
}

/// The line that carries the server's answer, else the whole segment, on one line.
fn diagnostic(segment: &str) -> Option<String> {
    let line = segment
        .lines()
        .find(|l| smtp::find(l).reply_code.is_some())
        .unwrap_or(segment);
    let text = line.split_whitespace().collect::<Vec<_>>().join(" ");
    let text: String = text.chars().take(500).collect();
    (!text.is_empty()).then_some(text)
}

/// A report from a mail system rather than from a person.
fn looks_like_bounce(sections: &Sections) -> bool {
    let subject = sections.subject.to_lowercase();
    is_daemon(&sections.from)
        || BOUNCE_SUBJECTS.iter().any(|s| subject.contains(s))
        || sections.human.iter().any(|h| {
            let h = h.to_lowercase();
            [
                "could not be delivered",
                "undeliverable",
                "delivery has failed",
                "permanent error",
                "transcript of session",
                "this is the mail system",
                "wasn't able to deliver",
                "delivery to the following recipient",
                "mail delivery failed",
            ]
            .iter()
            .any(|p| h.contains(p))
        })
}

/// The people's text of the notice, without the copy of the returned message.
fn readable(sections: &Sections) -> String {
    sections
        .human
        .iter()
        .map(|h| cut_returned(h))
        .filter(|h| !h.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` up to where the returned message starts.
pub(crate) fn cut_returned(text: &str) -> &str {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > 0 && (opens_returned_headers(line) || is_returned_marker(line)) {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

fn opens_returned_headers(line: &str) -> bool {
    RETURNED_HEADERS.iter().any(|h| {
        line.get(..h.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(h))
    })
}

/// A line announcing the returned message: a short one, or a `----` separator line.
fn is_returned_marker(line: &str) -> bool {
    static MARKERS: LazyLock<PhraseSet> = LazyLock::new(|| PhraseSet::new(RETURNED_MARKERS));
    static RFC822: LazyLock<PhraseSet> = LazyLock::new(|| PhraseSet::new(&["rfc822"]));
    let line = line.trim();
    let separator = line.starts_with('-');
    (separator || line.len() < 80) && MARKERS.any_in(line) && (separator || !RFC822.any_in(line))
}

/// Addresses that send or receive the notice, never the failed recipient.
fn excluded(sections: &Sections) -> Vec<String> {
    sections
        .to
        .iter()
        .chain(std::iter::once(&sections.from))
        .filter(|a| !a.is_empty())
        .cloned()
        .collect()
}

/// The failed recipients the notice names, in order. Addresses that open a line or follow a
/// label (`<a@b>:`, `RCPT TO:<a@b>`, `Failed recipient: a@b`) are preferred over those
/// mentioned in passing.
fn recipients(notice: &str, excluded: &[String]) -> Vec<String> {
    let mut prominent = Vec::new();
    let mut mentioned = Vec::new();
    let mut previous = "";
    for line in notice.lines() {
        // Exim names the sender on a line of its own after "A message sent by".
        let after_sender_label =
            is_sender_label(previous) || previous.trim_end().ends_with("sent by");
        if !line.trim().is_empty() {
            previous = line;
        }
        for (address, prefix) in addresses(line) {
            let address = address.to_ascii_lowercase();
            let labelled_sender = is_sender_label(prefix)
                || (after_sender_label && prefix.trim().trim_end_matches('<').is_empty());
            if is_excluded(&address, excluded) || labelled_sender {
                continue;
            }
            let list = if is_prominent(prefix) {
                &mut prominent
            } else {
                &mut mentioned
            };
            if !list.contains(&address) {
                list.push(address);
            }
        }
    }
    if prominent.is_empty() {
        mentioned
    } else {
        prominent
    }
}

fn is_excluded(address: &str, excluded: &[String]) -> bool {
    excluded.iter().any(|e| e == address) || is_daemon(address) || is_encapsulated(address)
}

/// Exchange's IMCEA encapsulation of a non-SMTP address in SMTP form (`IMCEAEX-_O=…@domain`
/// for a legacy Exchange DN, `IMCEAX400-…`, `IMCEANOTES-…`): an internal form, never the
/// address Mailtrail mailed.
fn is_encapsulated(address: &str) -> bool {
    address
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("imcea"))
}

/// A mail system's own address, however it spells it (`MAILER-DAEMON`, `post_master`).
fn is_daemon(address: &str) -> bool {
    let local: String = address
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    DAEMONS.contains(&local.as_str())
}

/// The text before an address on its line shows it is the subject of the line.
fn is_prominent(prefix: &str) -> bool {
    let prefix = prefix
        .trim()
        .trim_end_matches(['<', '"', '\'', '(', '[', ' '])
        .to_lowercase();
    let only_codes = prefix
        .bytes()
        .all(|b| b.is_ascii_digit() || b" .-#".contains(&b));
    only_codes || prefix.ends_with(':') || prefix.ends_with("recipient") || prefix.ends_with("to")
}

/// Labels after which an address is the sender of the original, not its recipient.
fn is_sender_label(prefix: &str) -> bool {
    let prefix = prefix
        .trim()
        .trim_end_matches(['<', '"', '\'', '(', '[', ' ', ':', '='])
        .to_lowercase();
    [
        "from",
        "sender",
        "mail from",
        "reply-to",
        "return-path",
        "envelope-from",
    ]
    .iter()
    .any(|label| prefix.ends_with(label))
}

/// A transcript line quoting the remote server (`<<< 550 <a@b>... Sender rejected`) can name
/// other addresses without starting a new recipient.
fn is_quoted_reply(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with("<<<") || line.starts_with(">>>")
}

/// A line that starts with a failure reply code, as a transcript's summary lines do.
fn opens_with_reply(line: &str) -> bool {
    let word = line.split_whitespace().next().unwrap_or_default();
    word.len() >= 3
        && word.is_char_boundary(3)
        && matches!(word.as_bytes()[0], b'4' | b'5')
        && word[..3].bytes().all(|b| b.is_ascii_digit())
        && word[3..].chars().all(|c| c == '-' || c == ':')
}

/// How much the segment says besides the address itself.
fn substance(segment: &[&str], recipient: &str) -> usize {
    segment
        .iter()
        .map(|l| l.to_lowercase().replace(&recipient.to_lowercase(), ""))
        .map(|l| l.chars().filter(|c| c.is_alphanumeric()).count())
        .sum()
}

fn contains_address(line: &str, address: &str) -> bool {
    addresses(line)
        .iter()
        .any(|(a, _)| a.eq_ignore_ascii_case(address))
}

/// Every `local@domain` in a line, with the text before it on the line.
fn addresses(line: &str) -> Vec<(&str, &str)> {
    let bytes = line.as_bytes();
    let mut found = Vec::new();
    for (at, _) in line.match_indices('@') {
        let start = bytes[..at]
            .iter()
            .rposition(|&b| !is_local_byte(b))
            .map_or(0, |p| p + 1);
        let end = bytes[at + 1..]
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
            .map_or(bytes.len(), |p| at + 1 + p);
        let local = line[start..at].trim_start_matches('.');
        let domain = line[at + 1..end].trim_end_matches(['.', '-']);
        if local.is_empty() || !is_domain(domain) {
            continue;
        }
        let start = at - local.len();
        found.push((&line[start..at + 1 + domain.len()], &line[..start]));
    }
    found
}

fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-=!#$&*/?^`{|}~".contains(&b)
}

fn is_domain(domain: &str) -> bool {
    let mut labels = domain.split('.');
    let tld = labels.next_back().unwrap_or_default();
    domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty())
        && tld.len() >= 2
        && tld.bytes().all(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_found_with_what_precedes_them() {
        let found = addresses("RCPT TO:<kijitora@example.jp>: 550 no (from root@host.example)");
        assert_eq!(
            found,
            [
                ("kijitora@example.jp", "RCPT TO:<"),
                (
                    "root@host.example",
                    "RCPT TO:<kijitora@example.jp>: 550 no (from "
                )
            ]
        );
        assert!(addresses("version 1.2@3 and a@b and user@host").is_empty());
    }

    #[test]
    fn internal_address_forms_are_not_recipients() {
        let notice = "<IMCEAEX-_O=ORG_OU=EXCHANGE_CN=RECIPIENTS_CN=LEAD@corp.example>:\n\
                      550 5.1.1 not found\n\n<lead@example.org>: 550 5.1.1 not found\n";
        assert_eq!(recipients(notice, &[]), ["lead@example.org".to_string()]);
    }

    #[test]
    fn the_lines_about_a_recipient_end_at_the_next_one() {
        let notice = "<a@x.example>:\nRemote host said: 550 5.1.1 no such user\n\n\
                      <b@y.example>:\nRemote host said: 552 mailbox full\n";
        assert_eq!(
            about(notice, "a@x.example").as_deref(),
            Some("<a@x.example>:\nRemote host said: 550 5.1.1 no such user")
        );
        assert_eq!(
            recipients(notice, &[]),
            ["a@x.example".to_string(), "b@y.example".to_string()]
        );
    }
}
