//! The MIME message of one email: merge fields applied, a Message-ID and Date that stay the
//! same on every retry, and the email's signed token in the envelope sender (VERP), the
//! reply address and a header, so whatever comes back can be matched to it.
//!
//! Two kinds of content become a message. A template (the API's) is built here with
//! mail-builder: From with its display name, To (the primary recipient's on a Cc copy), Cc,
//! the sender's custom headers, and its attachments — files make it `multipart/mixed`, inline
//! images (those with a Content-ID) sit with the HTML part in `multipart/related`. A message
//! submitted over SMTP is the sender's own, and [`crate::mime`] rewrites it in place. Either
//! way the headers Mailtrail manages are the same ([`managed_headers`]) and the result is
//! DKIM-signed for the domain of its From address.

use std::borrow::Cow;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};
use mail_parser::HeaderValue;
use mail_parser::parsers::MessageStream;
use mailtrail_domain::EmailAddress;
use mailtrail_domain::merge::{Context, one_line, render};
use mailtrail_domain::token::{Purpose, TokenKey};
use mailtrail_store::{Attachment, Claimed};

use crate::dkim::Signers;
use crate::mime::{self, Body};
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

/// Why an email's message cannot be built: what is stored for it does not hold (a submitted
/// message that cannot be read, an address that is not one). Retrying cannot help, so the
/// email fails with this as its Status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the message cannot be built: {0}")]
pub struct MessageError(String);

impl From<mime::MimeError> for MessageError {
    fn from(e: mime::MimeError) -> Self {
        MessageError(e.to_string())
    }
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
) -> Result<Built, MessageError> {
    let token = tokens
        .sign(Purpose::Message, &email.id, None)
        .expect("email ids are UUIDs");
    let unsubscribe = tracking::unsubscribe_url(tracking, tokens, &email.id);
    let managed = managed_headers(email, &token, &unsubscribe, helo_name, bounce_domain);
    let mut links = Vec::new();
    let (mut bytes, from_domain) = match &email.content.raw {
        Some(raw) => {
            let date = Date::new(email.created_at_ms / 1000).to_rfc822();
            let rewritten = mime::rewrite(raw, &managed, &date, |body| match body {
                Body::Html(html) => tracking::html(
                    &tracking::fill_unsubscribe(html, &unsubscribe, true),
                    tracking,
                    tokens,
                    &email.id,
                    &mut links,
                ),
                Body::Text(text) => tracking::text(
                    &tracking::fill_unsubscribe(text, &unsubscribe, false),
                    tracking,
                    tokens,
                    &email.id,
                    &mut links,
                ),
            })?;
            // The domain signed for is the From header's; the sending identity (the account's
            // key, the return path) and the check of what the account may send from were
            // made for the email's `from`. They must be one domain, or a submission could be
            // signed with a key for a domain its account does not own.
            let sender = EmailAddress::parse(&email.content.from).map_err(|e| {
                MessageError(format!("the From address {:?}: {e}", email.content.from))
            })?;
            if rewritten.from_domain != sender.domain() {
                return Err(MessageError(format!(
                    "the message's From header is in {}, not in {}, the domain it was \
                     submitted from",
                    rewritten.from_domain,
                    sender.domain()
                )));
            }
            (rewritten.bytes, rewritten.from_domain)
        }
        None => template(email, managed, &unsubscribe, tokens, tracking, &mut links)?,
    };
    if let Some(signature) = signers.sign(&from_domain, &bytes) {
        bytes.splice(0..0, signature.into_bytes());
    }
    Ok(Built {
        envelope_from: format!("bounces+{token}@{return_path}"),
        bytes,
        links,
    })
}

/// An email's Message-ID, `<EMAIL_ID.TOKEN@HELO>`: the same on every retry, and what
/// webhooks tell receivers so they can match Mailtrail's events to what their own mail
/// program logged.
pub fn message_id(email_id: &str, token: &str, helo_name: &str) -> String {
    format!("<{email_id}.{token}@{helo_name}>")
}

/// The headers Mailtrail sets on every message, in order, whatever the sender wrote: the
/// tokenised Reply-To (replies come back to be seen, then are forwarded to the sender's own
/// Reply-To), the Message-ID, the token header, the unsubscribe headers and the Feedback-ID.
/// Every value is made here from the email's id, its token, configured names and the batch
/// name as [`feedback_id`] cleans it, so none can end its line.
fn managed_headers(
    email: &Claimed,
    token: &str,
    unsubscribe: &str,
    helo_name: &str,
    bounce_domain: &str,
) -> [(&'static str, String); 6] {
    [
        ("Reply-To", format!("<reply+{token}@{bounce_domain}>")),
        // The signed token, so a report quoting only the Message-ID can be verified; the id
        // before it is for people reading logs. Both are fixed, so every retry repeats it.
        ("Message-ID", message_id(&email.id, token, helo_name)),
        (TOKEN_HEADER, token.to_owned()),
        // RFC 8058 one-click, and the mailto form the inbound server handles. The URL starts
        // with the account's tracking base URL, which is outside text in a raw header.
        (
            "List-Unsubscribe",
            format!(
                "<{}>, <mailto:unsubscribe+{token}@{bounce_domain}>",
                one_line(unsubscribe)
            ),
        ),
        (
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_owned(),
        ),
        ("Feedback-ID", feedback_id(email)),
    ]
}

/// A template email's message and the domain that signs it (its From's).
fn template(
    email: &Claimed,
    managed: [(&'static str, String); 6],
    unsubscribe: &str,
    tokens: &TokenKey,
    tracking: &Tracking,
    links: &mut Vec<String>,
) -> Result<(Vec<u8>, String), MessageError> {
    // `{{unsubscribe_url}}` is always this email's own, whatever the fields say: the sender's
    // footer then is the unsubscribe link, and tracking adds no second one.
    let lookup = |name: &str| {
        if name == tracking::UNSUBSCRIBE_FIELD {
            return Some(unsubscribe.to_owned());
        }
        email
            .fields
            .get(name)
            .cloned()
            .or_else(|| (name == "email").then(|| email.to.clone()))
    };
    let content = &email.content;
    let from = EmailAddress::parse(&content.from)
        .map_err(|e| MessageError(format!("the From address {:?}: {e}", content.from)))?;
    let from_name = content
        .from_name
        .as_deref()
        .map(|name| one_line(name).trim().to_owned())
        .filter(|name| !name.is_empty());
    let to = match &email.header_to {
        Some(header_to) => Address::new_list(mailboxes(header_to, "To")?),
        None => Address::new_address(None::<&str>, email.to.as_str()),
    };
    let mut message = MessageBuilder::new()
        .from(Address::new_address(from_name, from.to_string()))
        .to(to);
    if !content.cc.is_empty() {
        let mut cc = Vec::with_capacity(content.cc.len());
        for mailbox in &content.cc {
            cc.extend(mailboxes(mailbox, "Cc")?);
        }
        message = message.cc(Address::new_list(cc));
    }
    message = message
        .subject(
            render(&content.subject, lookup, Context::Header)
                .map_err(|e| MessageError(format!("the subject template: {e}")))?,
        )
        .date(email.created_at_ms / 1000);
    for (name, value) in managed {
        message = message.header(name, Raw::new(value));
    }
    for (name, value) in &content.headers {
        message = message.header(field_name(name)?, header_value(value));
    }
    // The HTML part first, so a URL of the text part that the HTML links to shares its index.
    let html = content
        .html
        .as_ref()
        .map(|html| -> Result<_, MessageError> {
            let html = render(html, lookup, Context::Html)
                .map_err(|e| MessageError(format!("the html template: {e}")))?;
            Ok(tracking::html(&html, tracking, tokens, &email.id, links))
        })
        .transpose()?;
    let text = content
        .text
        .as_ref()
        .map(|text| -> Result<_, MessageError> {
            let text = render(text, lookup, Context::Text)
                .map_err(|e| MessageError(format!("the text template: {e}")))?;
            Ok(tracking::text(&text, tracking, tokens, &email.id, links))
        })
        .transpose()?;
    if content.attachments.is_empty() {
        if let Some(html) = html {
            message = message.html_body(html);
        }
        if let Some(text) = text {
            message = message.text_body(text);
        }
    } else {
        message = message.body(with_attachments(text, html, &content.attachments));
    }
    let bytes = message
        .write_to_vec()
        .expect("writing to a Vec cannot fail");
    Ok((bytes, from.domain().to_owned()))
}

/// The body of a template with attachments: the text and HTML alternatives, the HTML with
/// its inline images in `multipart/related` (RFC 2387), and files beside them in
/// `multipart/mixed`. An inline image without an HTML part to show it in is offered beside
/// the text like a file.
fn with_attachments<'a>(
    text: Option<String>,
    html: Option<String>,
    attachments: &'a [Attachment],
) -> MimePart<'a> {
    let (inline, files): (Vec<&Attachment>, Vec<&Attachment>) =
        attachments.iter().partition(|a| a.content_id.is_some());
    let mut others: Vec<MimePart<'a>> = files.into_iter().map(file_part).collect();
    let mut html = html.map(|html| MimePart::new("text/html", html));
    if !inline.is_empty() {
        let images = inline.into_iter().map(inline_part);
        match html {
            Some(part) => {
                let related = std::iter::once(part).chain(images).collect::<Vec<_>>();
                html = Some(MimePart::new(
                    ContentType::new("multipart/related").attribute("type", "text/html"),
                    related,
                ));
            }
            None => others.extend(images),
        }
    }
    let text = text.map(|text| MimePart::new("text/plain", text));
    let body = match (text, html) {
        (Some(text), Some(html)) => Some(MimePart::new("multipart/alternative", vec![text, html])),
        (text, html) => text.or(html),
    };
    match body {
        Some(body) if others.is_empty() => body,
        body => MimePart::new(
            "multipart/mixed",
            body.into_iter().chain(others).collect::<Vec<_>>(),
        ),
    }
}

/// An attachment's part before its disposition: its type, named for the mail programs that
/// read the name from Content-Type, and its bytes as stored (base64 unless it is text, which
/// mail-builder encodes so that every byte, line breaks included, comes back the same).
fn attachment_part<'a>(attachment: &'a Attachment, filename: &str) -> MimePart<'a> {
    let content_type =
        ContentType::new(one_line(&attachment.content_type)).attribute("name", filename.to_owned());
    MimePart::new(
        content_type,
        BodyPart::Binary(Cow::Borrowed(&attachment.data)),
    )
}

/// A file: `Content-Disposition: attachment`.
fn file_part(attachment: &Attachment) -> MimePart<'_> {
    let filename = one_line(&attachment.filename);
    attachment_part(attachment, &filename).header(
        "Content-Disposition",
        ContentType::new("attachment").attribute("filename", filename.clone()),
    )
}

/// An inline image: `Content-Disposition: inline` and the Content-ID the HTML's `cid:` URL
/// names (given with or without its angle brackets).
fn inline_part(attachment: &Attachment) -> MimePart<'_> {
    let filename = one_line(&attachment.filename);
    let cid = attachment.content_id.as_deref().unwrap_or_default();
    let cid = one_line(cid.trim().trim_start_matches('<').trim_end_matches('>'));
    attachment_part(attachment, &filename)
        .header(
            "Content-Disposition",
            ContentType::new("inline").attribute("filename", filename.clone()),
        )
        .cid(cid)
}

/// `value` (`Name <addr>`, a bare address, or a list of them) as mailboxes to write: each
/// address checked and written as [`EmailAddress`] shows it, each name made one line.
/// mail-builder writes an address between its angle brackets as given, so nothing else may
/// reach it.
fn mailboxes(value: &str, header: &str) -> Result<Vec<Address<'static>>, MessageError> {
    // A flat list: mail-builder cannot write a list inside a list (it panics).
    Ok(parse_mailboxes(value)
        .map_err(|why| MessageError(format!("the {header} value {value:?} {why}")))?
        .into_iter()
        .map(|(name, address)| Address::new_address(name, address.to_string()))
        .collect())
}

/// The mailboxes of an address header's value, read by mail-parser's address parser (names
/// quoted or encoded, groups, comments): each with its display name, made one line, and its
/// address, checked. `Err` says why there is none to use: no address, or one that is not.
pub(crate) fn parse_mailboxes(
    value: &str,
) -> Result<Vec<(Option<String>, EmailAddress)>, &'static str> {
    let line = format!("{}\r\n", one_line(value));
    let HeaderValue::Address(parsed) = MessageStream::new(line.as_bytes()).parse_address() else {
        return Err("holds no address");
    };
    let mut list = Vec::new();
    for mailbox in parsed.iter() {
        let address = mailbox
            .address()
            .and_then(|a| EmailAddress::parse(a).ok())
            .ok_or("is not an address")?;
        let name = mailbox
            .name()
            .map(|name| one_line(name).trim().to_owned())
            .filter(|name| !name.is_empty());
        list.push((name, address));
    }
    if list.is_empty() {
        return Err("holds no address");
    }
    Ok(list)
}

/// A custom header's name, refused unless it is a field name (RFC 5322 §3.6.8: printable
/// ASCII without a colon). The API checks this already; a stored name that is not one
/// must not write a header of its own choosing.
fn field_name(name: &str) -> Result<&str, MessageError> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        Ok(name)
    } else {
        Err(MessageError(format!("{name:?} is not a header name")))
    }
}

/// A custom header's value on one line: ASCII as written (folded at its spaces when long),
/// anything else as an RFC 2047 encoded word, since a header is ASCII on the wire.
fn header_value(value: &str) -> mail_builder::headers::HeaderType<'static> {
    let value = one_line(value);
    if value.is_ascii() {
        Raw::new(value).into()
    } else {
        Text::new(value).into()
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
    use mailtrail_store::{Attachment, Content};

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
            send_at_ms: None,
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
        )
        .unwrap();
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

    fn build_plain(email: &Claimed) -> Built {
        build(
            email,
            "mta.shop.example",
            "bounce.shop.example",
            "bounces.shop.example",
            &TokenKey::new(b"k"),
            &Signers::default(),
            &tracking(),
        )
        .unwrap()
    }

    fn attachment(
        filename: &str,
        content_type: &str,
        cid: Option<&str>,
        data: &[u8],
    ) -> Attachment {
        Attachment {
            filename: filename.into(),
            content_type: content_type.into(),
            content_id: cid.map(str::to_owned),
            data: data.to_vec(),
        }
    }

    /// The MIME type of a parsed part, `type/subtype`.
    fn mime_type(part: &mail_parser::MessagePart<'_>) -> String {
        use mail_parser::MimeHeaders;
        part.content_type()
            .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()))
            .unwrap_or_default()
    }

    #[test]
    fn a_template_carries_the_display_name_cc_and_custom_headers() {
        let mut email = email();
        email.content.from_name = Some("Ana Pérez, \"Sales\"".into());
        email.content.cc = vec![
            "Bo Li <bo@partner.example>".into(),
            "cy@partner.example, \"Di, Jr.\" <di@partner.example>".into(),
        ];
        email.content.headers = vec![
            ("X-Campaign".into(), "spring-2026".into()),
            ("X-Note".into(), "Grüße\r\nBcc: victim@evil.example".into()),
        ];
        let built = build_plain(&email);
        let parsed = mail_parser::MessageParser::default()
            .parse(&built.bytes)
            .unwrap();
        let from = parsed.from().and_then(|f| f.first()).unwrap();
        assert_eq!(from.name(), Some("Ana Pérez, \"Sales\""));
        assert_eq!(from.address(), Some("sales@shop.example"));
        let cc: Vec<(Option<&str>, Option<&str>)> = parsed
            .cc()
            .unwrap()
            .iter()
            .map(|a| (a.name(), a.address()))
            .collect();
        assert_eq!(
            cc,
            [
                (Some("Bo Li"), Some("bo@partner.example")),
                (None, Some("cy@partner.example")),
                (Some("Di, Jr."), Some("di@partner.example"))
            ]
        );
        assert_eq!(
            parsed
                .to()
                .and_then(|t| t.first())
                .and_then(|a| a.address()),
            Some("ana@example.com")
        );
        assert_eq!(
            parsed.header_raw("X-Campaign").map(str::trim),
            Some("spring-2026")
        );
        // Not ASCII: an RFC 2047 encoded word, which reads back as the value made one line.
        let note = parsed.header_raw("X-Note").unwrap().trim();
        let as_subject = format!("Subject: {note}\r\n\r\n");
        let decoded = mail_parser::MessageParser::default()
            .parse(as_subject.as_bytes())
            .unwrap();
        assert_eq!(decoded.subject(), Some("Grüße Bcc: victim@evil.example"));
        assert!(parsed.header("Bcc").is_none());
        let head = String::from_utf8_lossy(&built.bytes);
        let head = head.split("\r\n\r\n").next().unwrap();
        assert!(head.is_ascii(), "{head}");
    }

    #[test]
    fn a_cc_copy_shows_the_primary_recipient_in_to() {
        let mut email = email();
        email.to = "bo@partner.example".into();
        email.header_to = Some("Ana <ana@example.com>, eve@example.com".into());
        email.content.cc = vec!["bo@partner.example".into()];
        let built = build_plain(&email);
        let parsed = mail_parser::MessageParser::default()
            .parse(&built.bytes)
            .unwrap();
        let to: Vec<(Option<&str>, Option<&str>)> = parsed
            .to()
            .unwrap()
            .iter()
            .map(|a| (a.name(), a.address()))
            .collect();
        assert_eq!(
            to,
            [
                (Some("Ana"), Some("ana@example.com")),
                (None, Some("eve@example.com"))
            ]
        );
        assert_eq!(
            parsed
                .cc()
                .and_then(|c| c.first())
                .and_then(|a| a.address()),
            Some("bo@partner.example")
        );
    }

    #[test]
    fn a_stored_address_that_is_not_one_fails_the_message() {
        for (cc, header_to) in [
            (vec!["not an address".to_owned()], None),
            (vec![], Some("<>".to_owned())),
        ] {
            let mut email = email();
            email.content.cc = cc;
            email.header_to = header_to;
            let error = build(
                &email,
                "h",
                "b",
                "b",
                &TokenKey::new(b"k"),
                &Signers::default(),
                &tracking(),
            )
            .unwrap_err();
            assert!(error.to_string().contains("address"), "{error}");
        }
    }

    #[test]
    fn attachments_come_back_byte_for_byte_and_inline_images_sit_with_the_html() {
        let pdf: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let csv = b"name,city\nAna,M\xc3\xa1laga\r\nBo,  \n.\nend without newline";
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let mut email = email();
        email.content.html = Some("<p>Hi <img src=\"cid:logo@shop\"></p>".into());
        email.content.attachments = vec![
            attachment("Offer 2026 – ñ.pdf", "application/pdf", None, &pdf),
            attachment("list.csv", "text/csv", None, csv),
            attachment("logo.png", "image/png", Some("<logo@shop>"), png),
        ]
        .into();
        let built = build_plain(&email);
        let parsed = mail_parser::MessageParser::default()
            .parse(&built.bytes)
            .unwrap();
        assert_eq!(mime_type(&parsed.parts[0]), "multipart/mixed");
        assert_eq!(parsed.attachment_count(), 3);
        let by_name = |name: &str| {
            parsed
                .attachments()
                .find(|a| a.attachment_name() == Some(name))
                .unwrap_or_else(|| panic!("{name} attached"))
        };
        use mail_parser::MimeHeaders;
        assert_eq!(by_name("Offer 2026 – ñ.pdf").contents(), &pdf[..]);
        assert_eq!(mime_type(by_name("Offer 2026 – ñ.pdf")), "application/pdf");
        assert_eq!(by_name("list.csv").contents(), &csv[..]);
        let logo = by_name("logo.png");
        assert_eq!(logo.contents(), &png[..]);
        assert_eq!(logo.content_id(), Some("logo@shop"));
        assert!(logo.content_disposition().unwrap().is_inline());
        // The image is in multipart/related with the HTML part, which is the alternative to
        // the text part.
        let related = parsed
            .parts
            .iter()
            .find(|p| mime_type(p) == "multipart/related")
            .expect("a multipart/related part");
        let members: Vec<String> = related
            .sub_parts()
            .unwrap()
            .iter()
            .map(|id| mime_type(&parsed.parts[*id as usize]))
            .collect();
        assert_eq!(members, ["text/html", "image/png"]);
        assert!(
            parsed
                .parts
                .iter()
                .any(|p| mime_type(p) == "multipart/alternative")
        );
        assert!(parsed.body_html(0).unwrap().contains("cid:logo@shop"));
        assert!(parsed.body_text(0).unwrap().contains("Hi Ana <3"));
    }

    #[test]
    fn files_without_a_text_or_html_part_and_images_without_html_are_still_sent() {
        let mut email = email();
        email.content.html = None;
        email.content.attachments =
            vec![attachment("logo.png", "image/png", Some("logo"), b"PNG")].into();
        let built = build_plain(&email);
        let parsed = mail_parser::MessageParser::default()
            .parse(&built.bytes)
            .unwrap();
        assert_eq!(mime_type(&parsed.parts[0]), "multipart/mixed");
        assert!(parsed.body_text(0).unwrap().contains("Hi Ana <3"));
        assert_eq!(parsed.attachments().next().unwrap().contents(), b"PNG");
    }

    #[test]
    fn a_custom_header_name_that_is_not_one_fails_the_message() {
        for name in ["", "X Bad", "X-Bad:", "X-Bad\r\nBcc"] {
            let mut email = email();
            email.content.headers = vec![(name.into(), "v".into())];
            let error = build(
                &email,
                "h",
                "b",
                "b",
                &TokenKey::new(b"k"),
                &Signers::default(),
                &tracking(),
            )
            .unwrap_err();
            assert!(
                error.to_string().contains("header name"),
                "{name:?}: {error}"
            );
        }
    }

    /// A submitted message through the whole builder, with tracking on and a DKIM key for
    /// the From domain.
    #[test]
    fn a_submitted_message_is_tracked_signed_and_otherwise_as_sent() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("shop.pem");
        let pair = crate::dkim::generate(crate::dkim::KeyAlgorithm::Ed25519).unwrap();
        std::fs::write(&key, pair.private_key_pem).unwrap();
        let signers = Signers::load(&std::collections::BTreeMap::from([(
            "shop.example".to_owned(),
            crate::dkim::DkimKeyConfig {
                selector: "mt1".into(),
                private_key: key,
            },
        )]))
        .unwrap();
        let mut email = email();
        email.content = Content {
            from: "ana@shop.example".into(),
            subject: "Café".into(),
            raw: Some(crate::mime::tests::SUBMITTED.into()),
            ..Content::default()
        };
        let tokens = TokenKey::new(b"k");
        let on = Tracking {
            opens: true,
            clicks: true,
            ..tracking()
        };
        let built = build(
            &email,
            "mta.shop.example",
            "bounce.shop.example",
            "bounces.shop.example",
            &tokens,
            &signers,
            &on,
        )
        .unwrap();
        let parsed = mail_parser::MessageParser::default()
            .parse(&built.bytes)
            .unwrap();
        let token = tokens.sign(Purpose::Message, &email.id, None).unwrap();
        assert_eq!(
            parsed.message_id(),
            Some(&*format!("{}.{token}@mta.shop.example", email.id))
        );
        assert_eq!(
            parsed
                .reply_to()
                .and_then(|r| r.first())
                .and_then(|a| a.address()),
            Some(&*format!("reply+{token}@bounce.shop.example"))
        );
        assert!(parsed.header("Bcc").is_none());
        assert!(parsed.header_raw("X-Mailtrail-Batch").is_none());
        assert_eq!(
            parsed.header_raw(TOKEN_HEADER).map(str::trim),
            Some(&*token)
        );
        assert!(parsed.header_raw("List-Unsubscribe").is_some());
        let signatures: Vec<&str> = parsed
            .header_values("DKIM-Signature")
            .filter_map(|v| v.as_text())
            .collect();
        assert_eq!(signatures.len(), 1, "{signatures:?}");
        assert!(
            signatures[0].contains("d=shop.example"),
            "{}",
            signatures[0]
        );
        // The one link, in the quoted-printable HTML and the base64 text alike, is a redirect.
        assert_eq!(built.links, ["https://shop.example/offer"]);
        let click = tokens.sign(Purpose::Click, &email.id, Some(0)).unwrap();
        let redirect = format!("https://t.example/c/{click}");
        let html = parsed.body_html(0).unwrap();
        let text = parsed.body_text(0).unwrap();
        assert!(
            html.contains(&format!("<a href=\"{redirect}\">offer</a>")),
            "{html}"
        );
        assert!(
            text.starts_with(&format!("See {redirect} -- Café")),
            "{text}"
        );
        assert!(
            html.contains("/o/") && html.contains(">Unsubscribe<"),
            "{html}"
        );
        assert!(html.contains("<meta charset=\"utf-8\">"), "{html}");
        assert!(text.contains("Unsubscribe: https://t.example/u/"), "{text}");
        // The forwarded message's link is not ours to track.
        assert!(
            built
                .bytes
                .windows(22)
                .any(|w| w == b"https://other.example/")
        );
    }

    #[test]
    fn a_submitted_message_that_cannot_be_read_fails_with_why() {
        let mut email = email();
        email.content.raw = Some(b"Subject: no sender\r\n\r\nHi\r\n".as_slice().into());
        let error = build(
            &email,
            "h",
            "b",
            "b",
            &TokenKey::new(b"k"),
            &Signers::default(),
            &tracking(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("no From address"), "{error}");
    }

    #[test]
    fn a_submitted_message_from_another_domain_than_its_sender_is_not_signed_or_sent() {
        let mut email = email();
        email.content.raw = Some(
            b"From: CEO <ceo@bank.example>\r\nSubject: Pay\r\n\r\nNow.\r\n"
                .as_slice()
                .into(),
        );
        let error = build(
            &email,
            "h",
            "b",
            "b",
            &TokenKey::new(b"k"),
            &Signers::default(),
            &tracking(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("bank.example"), "{error}");
    }

    #[test]
    fn the_senders_unsubscribe_placeholder_is_the_link_in_a_submitted_message() {
        let mut email = email();
        email.content.raw = Some(
            b"From: a@shop.example\r\nContent-Type: text/html\r\n\r\n<body><a href=\"{{ unsubscribe_url }}\">Leave</a></body>\r\n"
                .as_slice()
                .into(),
        );
        let tokens = TokenKey::new(b"k");
        let built = build(
            &email,
            "h",
            "b",
            "b",
            &tokens,
            &Signers::default(),
            &tracking(),
        )
        .unwrap();
        let parsed = mail_parser::MessageParser::default()
            .parse(&built.bytes)
            .unwrap();
        let html = parsed.body_html(0).unwrap();
        let url = tracking::unsubscribe_url(&tracking(), &tokens, &email.id);
        assert_eq!(html.matches(&url).count(), 1, "{html}");
        assert!(!html.contains(">Unsubscribe<"), "{html}");
    }

    /// Whatever is stored in a template's fields, building never panics: a message, or an
    /// error that says why.
    #[test]
    fn no_stored_template_makes_it_panic() {
        let alphabet: Vec<char> = "a@b.<>\",;:() \r\n\t\u{0}\u{85}\u{2028}=?ñ漢'\\[]"
            .chars()
            .collect();
        let mut state = 0x2545_F491_4F6C_DD1D;
        let mut garbage = |len: u64| -> String {
            let len = crate::mime::tests::xorshift(&mut state) % len;
            (0..len)
                .map(|_| {
                    let at = crate::mime::tests::xorshift(&mut state) as usize;
                    alphabet[at % alphabet.len()]
                })
                .collect()
        };
        let mut built_some = 0;
        for round in 0..300 {
            let mut email = email();
            email.content.from_name = Some(garbage(40));
            // Every third round an address that may not be one, and every third a header name
            // that may not be one; the others reach the body.
            if round % 3 == 0 {
                email.content.cc = vec![garbage(40), "ok@example.com".into()];
                email.header_to = Some(garbage(30)).filter(|s| !s.is_empty());
            }
            let name = if round % 3 == 1 {
                garbage(10)
            } else {
                "X-Test".to_owned()
            };
            email.content.headers = vec![(name, garbage(120))];
            email.content.attachments = vec![Attachment {
                filename: garbage(30),
                content_type: garbage(20),
                content_id: Some(garbage(20)),
                data: garbage(50).into_bytes(),
            }]
            .into();
            if let Ok(built) = build(
                &email,
                "h",
                "b",
                "b",
                &TokenKey::new(b"k"),
                &Signers::default(),
                &tracking(),
            ) {
                let parsed = mail_parser::MessageParser::default().parse(&built.bytes);
                assert!(parsed.is_some_and(|m| m.header("Bcc").is_none()));
                built_some += 1;
            }
        }
        assert!(built_some >= 100, "{built_some} of 300 built");
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
        )
        .unwrap();
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
        )
        .unwrap();
        let b = build(
            &email(),
            "h",
            "b",
            "b",
            &tokens,
            &Signers::default(),
            &tracking(),
        )
        .unwrap();
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
            )
            .unwrap();
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
