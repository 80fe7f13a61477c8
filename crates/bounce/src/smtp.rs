//! SMTP reply codes and enhanced status codes (RFC 3463) as they appear in free text: after
//! `smtp;` in a Diagnostic-Code, in a quoted transcript (`<<< 550 5.1.1 …`), in parentheses
//! (`(#5.1.1)`), or on their own.

use std::sync::LazyLock;

use mailtrail_domain::EnhancedStatus;

use crate::phrases::PhraseTable;

/// The codes found in one piece of text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Codes {
    pub reply_code: Option<u16>,
    pub status: Option<EnhancedStatus>,
}

/// The first failure or delivery reply code in `text`, and the first enhanced status code.
/// A failure (4xx/5xx) is preferred over a success quoted earlier in a transcript.
pub(crate) fn find(text: &str) -> Codes {
    let mut codes = Codes::default();
    let mut positive_status = None;
    // The status that follows a failure reply code (`550 5.7.1`, `550-'5.7.1`) is the remote
    // server's own, which outweighs a relay's summary written before it.
    let mut paired = None;
    let mut previous_reply = false;
    for token in tokens(text) {
        if let Ok(status) = token.parse::<EnhancedStatus>() {
            if previous_reply && status.class() != 2 {
                paired.get_or_insert(status);
            }
            previous_reply = false;
            if status.class() == 2 {
                positive_status.get_or_insert(status);
            } else {
                codes.status.get_or_insert(status);
            }
        } else if is_reply_code(token) {
            previous_reply = true;
            if codes.reply_code.is_none() {
                codes.reply_code = token.parse().ok();
            }
        } else {
            previous_reply = false;
        }
    }
    codes.status = paired.or(codes.status);
    if codes.status.is_none() {
        codes.status = positive_status;
    }
    codes
}

/// Words of the text with the punctuation that surrounds codes removed (`#550`, `(5.1.1)`,
/// `550-5.1.1`, `5.1.1;`).
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '<' | '>' | ','))
        .flat_map(|word| word.split_once('-').map_or([word, ""], |(a, b)| [a, b]))
        .map(|word| word.trim_matches(|c: char| matches!(c, '#' | ':' | ';' | '"' | '\'' | '=')))
        .map(|word| word.trim_end_matches('.'))
        .filter(|word| !word.is_empty())
}

/// A three-digit reply code of a failure: the only codes worth quoting from a bounce. A 2xx is
/// taken only when nothing else is there, which [`find`] leaves to the status.
fn is_reply_code(token: &str) -> bool {
    token.len() == 3
        && token.bytes().all(|b| b.is_ascii_digit())
        && matches!(token.as_bytes()[0], b'4' | b'5')
        && matches!(token.as_bytes()[1], b'0'..=b'5')
}

/// The SMTP commands a report can blame, lower-cased as they are searched for; `CONN` is the
/// connection itself, before any command.
const COMMANDS: &[(&str, &str)] = &[
    ("rcpt", "RCPT"),
    ("data", "DATA"),
    ("mail", "MAIL"),
    ("helo", "HELO"),
    ("ehlo", "EHLO"),
    ("initial connection", "CONN"),
    ("greeting", "CONN"),
];

/// What a cue in a report's text says about the failing command.
#[derive(Debug, Clone, Copy)]
enum Cue {
    /// The command is named right after the cue (`in reply to RCPT TO command`).
    Before,
    /// The cue itself names the command.
    Names(&'static str),
}

const CUES: &[(Cue, &[&str])] = &[
    (
        Cue::Before,
        &[
            "in reply to end of ",
            "in reply to ",
            "after end of ",
            "after ",
            ">>> ",
            "during ",
            "while performing the ",
        ],
    ),
    // qmail-remote's words: "Connected to 192.0.2.1 but my name was rejected."
    (Cue::Names("CONN"), &["but greeting failed"]),
    (Cue::Names("HELO"), &["but my name was rejected"]),
    (Cue::Names("MAIL"), &["but sender was rejected"]),
    // Yahoo's bounces end the reply with the command in brackets.
    (Cue::Names("RCPT"), &["[rcpt_to]"]),
    (Cue::Names("MAIL"), &["[mail_from]"]),
    // The recipient command named in a report (`did not like our RCPT TO:`). Postfix's
    // "Recipient address rejected" is no such cue: relays and filters quote it after the
    // message was sent, so it leaves the command unknown.
    (Cue::Names("RCPT"), &["rcpt to"]),
];

static CUE_TABLE: LazyLock<PhraseTable<Cue>> = LazyLock::new(|| PhraseTable::new(CUES));

/// The SMTP command the remote server was answering when it refused, as the report tells it:
/// `in reply to RCPT TO command`, `after end of data`, a `>>> DATA` transcript line, `RCPT
/// TO:<…>`. The last one mentioned wins, as transcripts end with the failing command.
pub(crate) fn command(text: &str) -> Option<&'static str> {
    // Reports wrap long lines anywhere: "(in reply to\n    RCPT TO command)".
    let lower = collapsed_lowercase(text);
    let mut found: Option<(usize, &'static str)> = None;
    for (at, cue, end) in CUE_TABLE.occurrences(&lower) {
        let name = match cue {
            Cue::Names(name) => name,
            Cue::Before => {
                let rest = &lower[end..];
                let Some((_, name)) = COMMANDS.iter().find(|(word, _)| rest.starts_with(word))
                else {
                    continue;
                };
                name
            }
        };
        if found.is_none_or(|(last, _)| at > last) {
            found = Some((at, name));
        }
    }
    found.map(|(_, name)| name)
}

/// `text` in ASCII lower case with every run of white space made one space, in one pass: the
/// transcripts searched here can be a whole notice.
fn collapsed_lowercase(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().map(|c| c.to_ascii_lowercase()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> (Option<u16>, Option<String>) {
        let codes = find(text);
        (codes.reply_code, codes.status.map(|s| s.to_string()))
    }

    #[test]
    fn the_failing_command_is_the_last_one_named() {
        let cases = [
            (
                "said: 550 5.1.1 unknown (in reply to RCPT TO command)",
                Some("RCPT"),
            ),
            (
                ">>> RCPT To:<a@b.example>\n<<< 250 ok\n>>> DATA\n<<< 550 no",
                Some("DATA"),
            ),
            (
                "SMTP error from remote mail server after end of data:",
                Some("DATA"),
            ),
            ("550 5.1.1 User unknown", None),
            (
                "said: 550 5.1.1 unknown (in reply to\n    RCPT TO command)",
                Some("RCPT"),
            ),
            (
                "Connected to 192.0.2.1 but my name was rejected.",
                Some("HELO"),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(command(text), expected, "{text}");
        }
    }

    #[test]
    fn codes_are_found_wherever_servers_put_them() {
        let cases = [
            (
                "smtp; 550 5.1.1 <a@b.example>... User unknown",
                Some(550),
                Some("5.1.1"),
            ),
            (
                "550-5.1.1 The email account that you tried",
                Some(550),
                Some("5.1.1"),
            ),
            (
                "Remote host said: 552 mailbox full (#5.2.2)",
                Some(552),
                Some("5.2.2"),
            ),
            (
                "#550 5.1.10 RESOLVER.ADR.RecipientNotFound",
                Some(550),
                Some("5.1.10"),
            ),
            (
                "Sorry, no mailbox here by that name. (#5.1.1)",
                None,
                Some("5.1.1"),
            ),
            (
                "<<< 250 2.0.0 ok then 550 Host unknown",
                Some(550),
                Some("2.0.0"),
            ),
            (
                "5.1.0 - Unknown address error 550-'5.7.1 <a@b.example>... Access denied'",
                Some(550),
                Some("5.7.1"),
            ),
            ("version 1.2.3 released in 2024", None, None),
        ];
        for (text, code, status) in cases {
            assert_eq!(found(text), (code, status.map(String::from)), "{text}");
        }
    }
}
