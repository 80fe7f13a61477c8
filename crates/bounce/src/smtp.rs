//! SMTP reply codes and enhanced status codes (RFC 3463) as they appear in free text: after
//! `smtp;` in a Diagnostic-Code, in a quoted transcript (`<<< 550 5.1.1 …`), in parentheses
//! (`(#5.1.1)`), or on their own.

use mailtrail_domain::EnhancedStatus;

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
    for token in tokens(text) {
        if let Ok(status) = token.parse::<EnhancedStatus>() {
            if status.class == 2 {
                positive_status.get_or_insert(status);
            } else {
                codes.status.get_or_insert(status);
            }
        } else if codes.reply_code.is_none() && is_reply_code(token) {
            codes.reply_code = token.parse().ok();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> (Option<u16>, Option<String>) {
        let codes = find(text);
        (codes.reply_code, codes.status.map(|s| s.to_string()))
    }

    #[test]
    fn codes_are_found_wherever_servers_put_them() {
        let cases = [
            ("smtp; 550 5.1.1 <a@b.example>... User unknown", Some(550), Some("5.1.1")),
            ("550-5.1.1 The email account that you tried", Some(550), Some("5.1.1")),
            ("Remote host said: 552 mailbox full (#5.2.2)", Some(552), Some("5.2.2")),
            ("#550 5.1.10 RESOLVER.ADR.RecipientNotFound", Some(550), Some("5.1.10")),
            ("Sorry, no mailbox here by that name. (#5.1.1)", None, Some("5.1.1")),
            ("<<< 250 2.0.0 ok then 550 Host unknown", Some(550), Some("2.0.0")),
            ("version 1.2.3 released in 2024", None, None),
        ];
        for (text, code, status) in cases {
            assert_eq!(found(text), (code, status.map(String::from)), "{text}");
        }
    }
}
