//! The MIME message of one email: merge fields applied, a Message-ID and Date that stay the
//! same on every retry, and the email's signed token in the envelope sender (VERP), the
//! reply address and a header, so whatever comes back can be matched to it.

use mail_builder::MessageBuilder;
use mail_builder::headers::raw::Raw;
use mailtrail_domain::merge::{Context, one_line, render};
use mailtrail_domain::token::{Purpose, TokenKey};
use mailtrail_store::Claimed;

use crate::dkim::Signers;
use crate::tracking::{self, Tracking};

/// The header that carries the token; bounces and complaints often quote it back.
pub const TOKEN_HEADER: &str = "X-Mailtrail-Token";

/// A message ready for the wire.
#[derive(Debug, Clone)]
pub struct Built {
    /// `bounces+TOKEN@RETURN_PATH`: the From domain's return path when it is a verified
    /// sending domain (so SPF aligns for DMARC), else the installation's bounce domain.
    pub envelope_from: String,
    pub bytes: Vec<u8>,
    /// The original URLs of the links rewritten for click tracking, by index: stored before
    /// the message goes out, so every redirect has its target.
    pub links: Vec<String>,
}

/// Builds the message; `signers` adds a DKIM signature when the From domain has a key, and
/// `tracking` the unsubscribe link and headers, the pixel and the click redirects. Bounces
/// come back to `return_path`; replies and mailto unsubscribes to `bounce_domain`, which the
/// inbound server accepts them at (a return path takes bounces only).
pub fn build(
    email: &Claimed,
    helo_name: &str,
    bounce_domain: &str,
    return_path: &str,
    tokens: &TokenKey,
    signers: &Signers,
    tracking: &Tracking,
) -> Built {
    let token = tokens
        .sign(Purpose::Message, &email.id, None)
        .expect("email ids are UUIDs");
    let unsubscribe = tracking::unsubscribe_url(tracking, tokens, &email.id);
    // `{{unsubscribe_url}}` is always this email's own, whatever the fields say: the sender's
    // footer then is the unsubscribe link, and tracking adds no second one.
    let lookup = |name: &str| {
        if name == tracking::UNSUBSCRIBE_FIELD {
            return Some(unsubscribe.clone());
        }
        email
            .fields
            .get(name)
            .cloned()
            .or_else(|| (name == "email").then(|| email.to.clone()))
    };
    let content = &email.content;
    let mut message = MessageBuilder::new()
        .from(content.from.as_str())
        .to(email.to.as_str())
        .reply_to(format!("reply+{token}@{bounce_domain}"))
        .subject(render(&content.subject, lookup, Context::Header))
        // The signed token, so a report quoting only the Message-ID can be verified; the id
        // before it is for people reading logs. Both are fixed, so every retry repeats it.
        .message_id(format!("{}.{token}@{helo_name}", email.id))
        .date(email.created_at_ms / 1000)
        .header(TOKEN_HEADER, Raw::new(token.clone()))
        // RFC 8058 one-click, and the mailto form the inbound server handles. The URL starts
        // with the account's tracking base URL, which is outside text in a raw header.
        .header(
            "List-Unsubscribe",
            Raw::new(format!(
                "<{}>, <mailto:unsubscribe+{token}@{bounce_domain}>",
                one_line(&unsubscribe)
            )),
        )
        .header(
            "List-Unsubscribe-Post",
            Raw::new("List-Unsubscribe=One-Click"),
        )
        .header("Feedback-ID", Raw::new(feedback_id(email)));
    // The HTML part first, so a URL of the text part that the HTML links to shares its index.
    let mut links = Vec::new();
    if let Some(html) = &content.html {
        message = message.html_body(tracking::html(
            &render(html, lookup, Context::Html),
            tracking,
            tokens,
            &email.id,
            &mut links,
        ));
    }
    if let Some(text) = &content.text {
        message = message.text_body(tracking::text(
            &render(text, lookup, Context::Text),
            tracking,
            tokens,
            &email.id,
            &mut links,
        ));
    }
    let mut bytes = message
        .write_to_vec()
        .expect("writing to a Vec cannot fail");
    let from_domain = content
        .from
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default();
    if let Some(signature) = signers.sign(from_domain, &bytes) {
        bytes.splice(0..0, signature.into_bytes());
    }
    Built {
        envelope_from: format!("bounces+{token}@{return_path}"),
        bytes,
        links,
    }
}

/// Gmail's `Feedback-ID: a:b:c:SenderId` (its feedback loop reports complaint rates per
/// value): the batch, the account and the product, with `mt` as the sender id. A batch name is
/// the user's: every character but letters, digits, `.`, `_` and `-` becomes `_` (a colon
/// would shift the fields, and nothing in it may end the header line), at most 40 of them;
/// an email outside a batch has `-`.
fn feedback_id(email: &Claimed) -> String {
    let batch: String = match email.batch.as_deref() {
        Some(batch) if !batch.is_empty() => batch
            .chars()
            .take(40)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        _ => "-".to_owned(),
    };
    format!("{batch}:{}:mailtrail:mt", email.account_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailtrail_store::Content;

    fn email() -> Claimed {
        Claimed {
            id: "0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b".into(),
            account_id: "acct".into(),
            lead_id: None,
            to: "ana@example.com".into(),
            to_domain: "example.com".into(),
            header_to: None,
            fields: [("first_name".to_owned(), "Ana <3".to_owned())].into(),
            content_id: "content".into(),
            attachment_count: 0,
            content: Content {
                from: "sales@shop.example".into(),
                subject: "Hello {{first_name}}".into(),
                text: Some("Hi {{first_name}}".into()),
                html: Some("<p>Hi {{first_name}}</p>".into()),
                ..Content::default()
            },
            batch: None,
            attempts: 0,
            soft_5xx_attempts: 0,
            first_soft_5xx_at_ms: None,
            created_at_ms: 1_700_000_000_000,
        }
    }

    fn tracking() -> Tracking {
        Tracking {
            base_url: "https://t.example".into(),
            opens: false,
            clicks: false,
        }
    }

    #[test]
    fn carries_the_token_everywhere_and_merges_fields() {
        let tokens = TokenKey::new(b"k");
        let built = build(
            &email(),
            "mta.shop.example",
            "bounce.shop.example",
            "bounces.shop.example",
            &tokens,
            &Signers::default(),
            &tracking(),
        );
        let text = String::from_utf8(built.bytes).unwrap();
        let token = tokens.sign(Purpose::Message, &email().id, None).unwrap();
        assert_eq!(
            built.envelope_from,
            format!("bounces+{token}@bounces.shop.example")
        );
        assert!(
            text.contains(&format!("Reply-To: <reply+{token}@bounce.shop.example>")),
            "{text}"
        );
        assert!(text.contains(&format!("X-Mailtrail-Token: {token}")));
        assert!(
            text.contains(&format!(
                "Message-ID: <0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b.{token}@mta.shop.example>"
            )),
            "{text}"
        );
        assert!(text.contains("Subject: Hello Ana <3"));
        assert!(text.contains("multipart/alternative"));
        assert!(text.contains("Hi Ana <3"));
        assert!(text.contains("<p>Hi Ana &lt;3</p>"));
        assert!(
            text.contains("List-Unsubscribe: <https://t.example/u/"),
            "{text}"
        );
        assert!(text.contains(&format!("<mailto:unsubscribe+{token}@bounce.shop.example>")));
        assert!(text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    }

    #[test]
    fn the_feedback_id_names_the_batch_and_the_account_and_nothing_else() {
        let cases = [
            (None, "-:acct:mailtrail:mt"),
            (Some(""), "-:acct:mailtrail:mt"),
            (
                Some("spring-2026_v2.1"),
                "spring-2026_v2.1:acct:mailtrail:mt",
            ),
            (
                Some("Sale: 50%\r\nBcc: x@evil.test"),
                "Sale__50___Bcc__x_evil.test:acct:mailtrail:mt",
            ),
            (Some("Ünal Ω"), "_nal__:acct:mailtrail:mt"),
            (
                Some(&*"x".repeat(300)),
                &*format!("{}:acct:mailtrail:mt", "x".repeat(40)),
            ),
        ];
        for (batch, expected) in cases {
            let mut email = email();
            email.batch = batch.map(str::to_owned);
            assert_eq!(feedback_id(&email), expected, "{batch:?}");
        }
        let built = build(
            &email(),
            "h",
            "b",
            "b",
            &TokenKey::new(b"k"),
            &Signers::default(),
            &tracking(),
        );
        let text = String::from_utf8(built.bytes).unwrap();
        assert!(
            text.contains("\r\nFeedback-ID: -:acct:mailtrail:mt\r\n"),
            "{text}"
        );
    }

    #[test]
    fn a_retry_builds_the_same_message() {
        let tokens = TokenKey::new(b"k");
        let a = build(
            &email(),
            "h",
            "b",
            "b",
            &tokens,
            &Signers::default(),
            &tracking(),
        );
        let b = build(
            &email(),
            "h",
            "b",
            "b",
            &tokens,
            &Signers::default(),
            &tracking(),
        );
        // Multipart boundaries are random; every header that identifies the message is stable.
        let headers = |bytes: &[u8]| {
            String::from_utf8_lossy(bytes)
                .lines()
                .filter(|l| {
                    l.starts_with("Message-ID")
                        || l.starts_with("Date")
                        || l.starts_with("X-Mailtrail")
                })
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(headers(&a.bytes), headers(&b.bytes));
    }

    #[test]
    fn no_merge_value_breaks_the_subject_header() {
        let long = "word ".repeat(60);
        let cases = [
            (
                "Ana\r\nFrom: ceo@bank.example\r\n\r\nNEW BODY",
                "Hello Ana From: ceo@bank.example NEW BODY",
            ),
            ("Ana\0\u{2028}Ünal", "Hello Ana Ünal"),
            (long.as_str(), &*format!("Hello {long}")),
        ];
        let tokens = TokenKey::new(b"k");
        for (value, subject) in cases {
            let mut email = email();
            email.fields = [("first_name".to_owned(), value.to_owned())].into();
            let built = build(
                &email,
                "h",
                "b",
                "b",
                &tokens,
                &Signers::default(),
                &tracking(),
            );
            let text = String::from_utf8(built.bytes.clone()).unwrap();
            let head = text.split("\r\n\r\n").next().unwrap();
            // Long subjects are folded onto continuation lines, never cut into new headers.
            let mut subject_lines = head
                .split("\r\n")
                .skip_while(|l| !l.starts_with("Subject:"))
                .enumerate()
                .take_while(|(i, l)| *i == 0 || l.starts_with([' ', '\t']));
            assert!(subject_lines.all(|(_, l)| l.len() <= 78), "{head}");
            let names: Vec<&str> = head
                .split("\r\n")
                .filter(|l| !l.starts_with([' ', '\t']))
                .filter_map(|l| l.split_once(':').map(|(n, _)| n))
                .collect();
            for name in ["From", "To", "Subject"] {
                assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{head}");
            }
            let parsed = mail_parser::MessageParser::default()
                .parse(&built.bytes)
                .unwrap();
            assert_eq!(parsed.subject(), Some(subject), "{head}");
        }
    }
}
