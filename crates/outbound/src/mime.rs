//! A message submitted over SMTP (docs/api.md) goes out as its sender wrote it: its MIME
//! structure, attachments, inline images, charsets and encodings pass through byte for byte,
//! and only what Mailtrail must change is changed, by splicing the stored bytes rather than
//! writing the message anew. mail-parser reads it once for the offsets of every header and
//! part.
//!
//! - Headers: Bcc (and Resent-Bcc) and those Mailtrail manages — Return-Path, DKIM-Signature,
//!   Message-ID, Reply-To, List-Unsubscribe(-Post), Feedback-ID, any `X-Mailtrail-*` — are cut
//!   out; Mailtrail's own are added at the end of the header block, with Date and MIME-Version
//!   only where the sender wrote none.
//! - Bodies: each text/plain and text/html part a mail program shows (not an attachment, not
//!   inside an attached message) is decoded from its transfer encoding and charset, given to
//!   the caller to rewrite (tracking), and written back as UTF-8 — base64 if it was base64,
//!   else quoted-printable — with its Content-Type and Content-Transfer-Encoding rewritten to
//!   match. A part the caller returns unchanged, and one that cannot be decoded faithfully
//!   (an unknown charset or transfer encoding, bytes its charset does not allow), keeps its
//!   bytes.
//! - Every other byte is the sender's.
//!
//! Input is whatever a client sent; nothing here panics on it: a message mail-parser cannot
//! read, or one without a From address to sign for, is a [`MimeError`].

use std::ops::Range;

use mail_builder::encoders::base64::base64_encode_mime;
use mail_builder::encoders::quoted_printable::quoted_printable_encode;
use mail_builder::headers::Header as _;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_parser::{Header, MessageParser, MessagePart, MimeHeaders, PartType};
use mailtrail_domain::EmailAddress;

/// Headers of a submitted message that are never delivered: Bcc must not reach the
/// recipients, and the rest are Mailtrail's to set (a sender's Reply-To is kept by the
/// submission server as the email's, and replies are forwarded there).
const REMOVED: [&str; 9] = [
    "Bcc",
    "Resent-Bcc",
    "Return-Path",
    "DKIM-Signature",
    "Message-ID",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
];

/// Headers that tell Mailtrail what to do with a submission (batch, tags, metadata) or carry
/// its token: never delivered as the sender wrote them.
const REMOVED_PREFIX: &str = "x-mailtrail-";

/// Why a submitted message cannot be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MimeError {
    #[error("the submitted message has no header that can be read")]
    Unreadable,
    #[error("the submitted message has no From address to sign it for")]
    NoFrom,
    #[error("the submitted message's headers cannot be located in it")]
    Structure,
}

/// A body part handed to the caller, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    Html(&'a str),
    Text(&'a str),
}

/// The message to send, and the domain of its From address, which signs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub bytes: Vec<u8>,
    pub from_domain: String,
}

/// One part to write anew: where it is, whether it is HTML, and its text, decoded, then as
/// the caller rewrote it.
struct Replacement<'m> {
    part: &'m MessagePart<'m>,
    html: bool,
    text: String,
    /// Whether the caller's text differs from the part's.
    changed: bool,
}

/// `raw` with its headers and body parts rewritten (see the module doc). `added` are the
/// headers to add, written as given (the caller makes them one line); `date` is the Date
/// for a message without one. `body` is called for the HTML parts first, then the text
/// parts, each in the order they appear, so link numbering matches a template's.
pub fn rewrite(
    raw: &[u8],
    added: &[(&str, String)],
    date: &str,
    mut body: impl FnMut(Body<'_>) -> String,
) -> Result<Rewritten, MimeError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(MimeError::Unreadable)?;
    let root = message.parts.first().ok_or(MimeError::Unreadable)?;
    let from_domain = message
        .from()
        .and_then(|from| from.first())
        .and_then(|from| from.address())
        .and_then(|address| EmailAddress::parse(address).ok())
        .map(|address| address.domain().to_owned())
        .ok_or(MimeError::NoFrom)?;
    let root_header_end = header_end(raw, root).ok_or(MimeError::Structure)?;

    let mut shown: Vec<u32> = message
        .html_body
        .iter()
        .chain(&message.text_body)
        .copied()
        .collect();
    shown.sort_unstable();
    shown.dedup();
    let mut replacements: Vec<Replacement<'_>> = shown
        .iter()
        .filter_map(|id| message.parts.get(*id as usize))
        .filter_map(|part| {
            let (html, text) = rewritable(raw, part)?;
            Some(Replacement {
                part,
                html,
                text: text.to_owned(),
                changed: false,
            })
        })
        .collect();
    for pass_html in [true, false] {
        for replacement in replacements.iter_mut().filter(|r| r.html == pass_html) {
            let text = body(if pass_html {
                Body::Html(&replacement.text)
            } else {
                Body::Text(&replacement.text)
            });
            replacement.changed = text != replacement.text;
            replacement.text = text;
        }
    }
    // A part the caller left as it was keeps its bytes.
    replacements.retain(|r| r.changed);
    let boundaries: Vec<&str> = message
        .parts
        .iter()
        .filter_map(|part| part.content_type()?.attribute("boundary"))
        .collect();

    // The root part is the only one whose headers are the message's: when it is itself the
    // text (a single-part message), its new Content-* headers join the message's.
    let root_id = replacements.iter().position(|r| std::ptr::eq(r.part, root));
    let root_body = root_id.map(|i| replacements.remove(i));

    let mut out = Vec::with_capacity(raw.len() + 2048);
    let mut present = (false, false);
    let mut pos = 0;
    for header in root.headers() {
        let name = header.name();
        present.0 |= name.eq_ignore_ascii_case("Date");
        present.1 |= name.eq_ignore_ascii_case("MIME-Version");
        let cut = is_removed(name) || (root_body.is_some() && is_content_header(name));
        if cut && let Some(range) = span(header, pos, root_header_end) {
            out.extend_from_slice(&raw[pos..range.start]);
            pos = range.end;
        }
    }
    out.extend_from_slice(&raw[pos..root_header_end]);
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in added {
        write_header(&mut out, name, value);
    }
    if !present.0 {
        write_header(&mut out, "Date", date);
    }
    if !present.1 {
        write_header(&mut out, "MIME-Version", "1.0");
    }

    let body_start = (root.offset_body as usize).clamp(root_header_end, raw.len());
    match root_body {
        Some(replacement) => {
            let (encoding, encoded) = encode(&replacement, &boundaries);
            write_content_headers(&mut out, root, replacement.html, encoding);
            out.extend_from_slice(blank_line(&raw[root_header_end..body_start]));
            out.extend_from_slice(&encoded);
        }
        None => {
            let mut splices: Vec<(Range<usize>, Vec<u8>)> = replacements
                .iter()
                .filter_map(|replacement| part_block(raw, replacement, &boundaries))
                .collect();
            splices.sort_by_key(|(range, _)| range.start);
            let mut pos = root_header_end;
            for (range, bytes) in splices {
                if range.start < pos {
                    continue;
                }
                out.extend_from_slice(&raw[pos..range.start]);
                out.extend_from_slice(&bytes);
                pos = range.end;
            }
            out.extend_from_slice(&raw[pos..]);
        }
    }
    Ok(Rewritten {
        bytes: out,
        from_domain,
    })
}

/// Whether a header of the submitted message is cut out.
fn is_removed(name: &str) -> bool {
    REMOVED
        .iter()
        .any(|removed| removed.eq_ignore_ascii_case(name))
        || name
            .get(..REMOVED_PREFIX.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(REMOVED_PREFIX))
}

/// The headers a rewritten part gets anew.
fn is_content_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("Content-Type")
        || name.eq_ignore_ascii_case("Content-Transfer-Encoding")
}

/// Where a part's header block ends (after its last header line, before the blank line),
/// checked to lie within the part and the message.
fn header_end(raw: &[u8], part: &MessagePart<'_>) -> Option<usize> {
    let start = part.offset_header as usize;
    let body = part.offset_body as usize;
    if start > body || body > raw.len() {
        return None;
    }
    let end = part
        .headers()
        .iter()
        .map(|h| h.offset_end as usize)
        .max()
        .unwrap_or(start);
    (start..=body).contains(&end).then_some(end)
}

/// A header's whole lines (name to line end, folded lines included), when they lie at or
/// after `from` and before `end`.
fn span(header: &Header<'_>, from: usize, end: usize) -> Option<Range<usize>> {
    let range = header.offset_field as usize..header.offset_end as usize;
    (from <= range.start && range.start <= range.end && range.end <= end).then_some(range)
}

/// The blank line that ends a header block, as the sender wrote it, or CRLF when there was
/// none (a message that ended after its headers).
fn blank_line(between: &[u8]) -> &[u8] {
    if between.is_empty() { b"\r\n" } else { between }
}

/// Writes `name: value` as mail-builder writes a raw header, folded at its spaces when long.
fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    Raw::new(value)
        .write_header(&mut *out, name.len() + 2)
        .expect("writing to a Vec cannot fail");
}

/// Whether a shown part can be rewritten, and its decoded text: a text/plain or text/html
/// part, not an attachment, in a transfer encoding mail-parser decodes, decoded without a
/// replacement character (which would mean its charset is unknown or its bytes do not fit
/// it, so writing it back would lose them).
fn rewritable<'m>(raw: &[u8], part: &'m MessagePart<'m>) -> Option<(bool, &'m str)> {
    if part.is_encoding_problem
        || part
            .content_disposition()
            .is_some_and(|disposition| disposition.is_attachment())
    {
        return None;
    }
    let (html, text) = match &part.body {
        PartType::Html(text) => (true, text.as_ref()),
        PartType::Text(text) => (false, text.as_ref()),
        _ => return None,
    };
    let subtype = if html { "html" } else { "plain" };
    let declared = match part.content_type() {
        None => !html,
        Some(ct) => {
            ct.ctype().eq_ignore_ascii_case("text")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
        }
    };
    let known_encoding = match part.content_transfer_encoding() {
        None => true,
        Some(encoding) => ["7bit", "8bit", "binary", "quoted-printable", "base64"]
            .iter()
            .any(|known| encoding.trim().eq_ignore_ascii_case(known)),
    };
    let located = header_end(raw, part).is_some() && part.offset_end as usize <= raw.len();
    (declared && known_encoding && located && !text.contains('\u{FFFD}')).then_some((html, text))
}

/// The new bytes of a part below the root, and the range of the old ones: its headers but
/// Content-Type and Content-Transfer-Encoding as written, the new ones, the blank line, the
/// encoded text.
fn part_block(
    raw: &[u8],
    replacement: &Replacement<'_>,
    boundaries: &[&str],
) -> Option<(Range<usize>, Vec<u8>)> {
    let part = replacement.part;
    let start = part.offset_header as usize;
    let end = part.offset_end as usize;
    let headers_end = header_end(raw, part)?;
    let body_start = part.offset_body as usize;
    if end < body_start || end > raw.len() {
        return None;
    }
    let (encoding, encoded) = encode(replacement, boundaries);
    let mut out = Vec::with_capacity(encoded.len() + (body_start - start) + 128);
    let mut pos = start;
    for header in part.headers() {
        if is_content_header(header.name())
            && let Some(range) = span(header, pos, headers_end)
        {
            out.extend_from_slice(&raw[pos..range.start]);
            pos = range.end;
        }
    }
    out.extend_from_slice(&raw[pos..headers_end]);
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    write_content_headers(&mut out, part, replacement.html, encoding);
    out.extend_from_slice(blank_line(&raw[headers_end..body_start]));
    out.extend_from_slice(&encoded);
    Some((start..end, out))
}

/// The rewritten part's Content-Type — its type, its parameters but charset as the sender
/// wrote them (`format=flowed` stays), `charset=utf-8` — and its Content-Transfer-Encoding.
fn write_content_headers(out: &mut Vec<u8>, part: &MessagePart<'_>, html: bool, encoding: &str) {
    let mut content_type = ContentType::new(if html { "text/html" } else { "text/plain" });
    for attribute in part
        .content_type()
        .and_then(|ct| ct.attributes())
        .unwrap_or_default()
    {
        let token = !attribute.name.is_empty()
            && attribute
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        let printable = attribute.value.bytes().all(|b| (b' '..=b'~').contains(&b));
        if token && printable && !attribute.name.eq_ignore_ascii_case("charset") {
            content_type = content_type.attribute(
                attribute.name.clone().into_owned(),
                attribute.value.clone().into_owned(),
            );
        }
    }
    content_type = content_type.attribute("charset", "utf-8");
    out.extend_from_slice(b"Content-Type: ");
    content_type
        .write_header(&mut *out, "Content-Type: ".len())
        .expect("writing to a Vec cannot fail");
    write_header(out, "Content-Transfer-Encoding", encoding);
}

/// The rewritten text in UTF-8 and its transfer encoding: base64 when the sender's part was
/// base64, else quoted-printable — unless a quoted-printable line would start like one of
/// the message's multipart boundaries (text that was hidden in base64 may hold one), which
/// base64 never can.
fn encode(replacement: &Replacement<'_>, boundaries: &[&str]) -> (&'static str, Vec<u8>) {
    let bytes = replacement.text.as_bytes();
    let was_base64 = replacement
        .part
        .content_transfer_encoding()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("base64"));
    if !was_base64 {
        let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16 + 8);
        quoted_printable_encode(bytes, &mut out, true).expect("writing to a Vec cannot fail");
        let opens_a_part = out.split(|b| *b == b'\n').any(|line| {
            line.strip_prefix(b"--").is_some_and(|rest| {
                boundaries
                    .iter()
                    .any(|boundary| rest.starts_with(boundary.as_bytes()))
            })
        });
        if !opens_a_part {
            return ("quoted-printable", out);
        }
    }
    let mut out = Vec::with_capacity(bytes.len() * 4 / 3 + bytes.len() / 38 + 8);
    base64_encode_mime(bytes, &mut out, false).expect("writing to a Vec cannot fail");
    ("base64", out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A message as mail programs send it: Bcc and Mailtrail's own headers to strip, a text
    /// part in base64 and an HTML part in quoted-printable ISO-8859-1 as alternatives, an
    /// inline image with the HTML, a PDF, and a forwarded message whose links are not ours.
    pub(crate) const SUBMITTED: &[u8] = b"Return-Path: <app@shop.example>\r\n\
DKIM-Signature: v=1; a=rsa-sha256; d=elsewhere.example; s=x; b=AAAA\r\n\
From: \"Ana P\xc3\xa9rez\" <Ana@Shop.Example>\r\n\
To: Bo <bo@lead.example>\r\n\
Cc: cy@lead.example\r\n\
bcc: secret@shop.example\r\n\
Subject: =?utf-8?q?Caf=C3=A9?=\r\n\
Message-ID: <original@app.shop.example>\r\n\
Reply-To: sales@shop.example\r\n\
X-Mailtrail-Batch: spring\r\n\
X-MAILTRAIL-TAGS: a, b\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
This is a multi-part message in MIME format.\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=utf-8; format=flowed\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
U2VlIGh0dHBzOi8vc2hvcC5leGFtcGxlL29mZmVyIC0tIENhZsOpDQo=\r\n\
--alt\r\n\
Content-Type: multipart/related; boundary=\"rel\"\r\n\
\r\n\
--rel\r\n\
Content-Type: text/html; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
<html><head><meta charset=3D\"iso-8859-1\"></head><body><p>Caf=E9 <a href=3D\"https://shop.e=\r\n\
xample/offer\">offer</a> <img src=3D\"cid:logo\"></p></body></html>\r\n\
--rel\r\n\
Content-Type: image/png\r\n\
Content-ID: <logo>\r\n\
Content-Disposition: inline\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
iVBORw0KGgo=\r\n\
--rel--\r\n\
\r\n\
--alt--\r\n\
\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"offer.pdf\"\r\n\
Content-Disposition: attachment; filename=\"offer.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJcfsj6IK\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: x@other.example\r\n\
Content-Type: text/html\r\n\
\r\n\
<a href=\"https://other.example/\">not ours</a>\r\n\
--outer--\r\n";

    fn added() -> Vec<(&'static str, String)> {
        vec![
            ("Reply-To", "<reply+t@bounce.example>".to_owned()),
            ("Message-ID", "<id.t@mta.example>".to_owned()),
            ("X-Mailtrail-Token", "t".to_owned()),
        ]
    }

    /// Marks every body it is given, so a rewritten part is seen.
    fn mark(body: Body<'_>) -> String {
        match body {
            Body::Html(html) => html.replace("https://shop.example/offer", "https://t.example/c/1"),
            Body::Text(text) => text.replace("https://shop.example/offer", "https://t.example/c/1"),
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// The header names of the top-level block, lower-cased, in order.
    fn header_names(message: &[u8]) -> Vec<String> {
        let parsed = MessageParser::default().parse(message).unwrap();
        parsed.parts[0]
            .headers()
            .iter()
            .map(|h| h.name().to_ascii_lowercase())
            .collect()
    }

    #[test]
    fn headers_mailtrail_manages_and_bcc_are_replaced_and_the_rest_kept() {
        let out = rewrite(SUBMITTED, &added(), "Thu, 1 Jan 2026 00:00:00 +0000", mark).unwrap();
        assert_eq!(out.from_domain, "shop.example");
        let names = header_names(&out.bytes);
        assert_eq!(
            names,
            [
                "from",
                "to",
                "cc",
                "subject",
                "mime-version",
                "content-type",
                "reply-to",
                "message-id",
                "x-mailtrail-token",
                "date"
            ]
        );
        let parsed = MessageParser::default().parse(&out.bytes).unwrap();
        assert_eq!(parsed.message_id(), Some("id.t@mta.example"));
        assert_eq!(
            parsed
                .reply_to()
                .and_then(|r| r.first())
                .and_then(|a| a.address()),
            Some("reply+t@bounce.example")
        );
        assert_eq!(
            parsed.header_raw("X-Mailtrail-Token").map(str::trim),
            Some("t")
        );
        assert_eq!(parsed.subject(), Some("Café"));
        // The sender's own header lines are theirs, byte for byte; a Date is added as none
        // was written, and the MIME-Version kept is the sender's.
        for line in [
            &b"From: \"Ana P\xc3\xa9rez\" <Ana@Shop.Example>\r\nTo: Bo <bo@lead.example>\r\n"[..],
            b"Subject: =?utf-8?q?Caf=C3=A9?=\r\n",
        ] {
            assert!(
                contains(&out.bytes, line),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(!contains(&out.bytes, b"secret@shop.example"));
        assert!(!contains(&out.bytes, b"spring"));
        assert!(!contains(&out.bytes, b"elsewhere.example"));
        assert!(!contains(&out.bytes, b"original@app"));
    }

    #[test]
    fn only_shown_text_parts_are_rewritten_and_every_other_byte_is_the_senders() {
        let out = rewrite(SUBMITTED, &added(), "d", mark).unwrap();
        let original = MessageParser::default().parse(SUBMITTED).unwrap();
        let parsed = MessageParser::default().parse(&out.bytes).unwrap();
        // The image, the PDF and the forwarded message: each part, headers and body, as sent.
        for part in original
            .parts
            .iter()
            .filter(|p| !p.is_text() && !p.is_multipart() || p.is_message())
        {
            let block = &SUBMITTED[part.offset_header as usize..part.offset_end as usize];
            assert!(
                contains(&out.bytes, block),
                "{}",
                String::from_utf8_lossy(block)
            );
        }
        assert!(contains(&out.bytes, b"https://other.example/"));
        // The text part was base64 and is base64; the HTML was quoted-printable ISO-8859-1 and
        // is quoted-printable UTF-8; both decode to the marked text.
        let text = parsed.body_text(0).unwrap();
        assert_eq!(text, "See https://t.example/c/1 -- Café\r\n");
        let html = parsed.body_html(0).unwrap();
        assert!(
            html.contains("Café <a href=\"https://t.example/c/1\">offer</a>"),
            "{html}"
        );
        let kinds: Vec<(String, String, String)> = parsed
            .parts
            .iter()
            .filter(|p| p.is_text() && !p.is_message())
            .map(|p| {
                let ct = p.content_type().unwrap();
                (
                    format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()),
                    ct.attribute("charset").unwrap_or_default().to_owned(),
                    p.content_transfer_encoding().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("text/plain".into(), "utf-8".into(), "base64".into()),
                (
                    "text/html".into(),
                    "utf-8".into(),
                    "quoted-printable".into()
                ),
            ]
        );
        let flowed = parsed
            .parts
            .iter()
            .find(|p| p.is_text() && !p.is_text_html())
            .and_then(|p| p.content_type()?.attribute("format").map(str::to_owned));
        assert_eq!(flowed.as_deref(), Some("flowed"));
        // Same structure: the boundaries are the sender's and every part is still there.
        assert_eq!(parsed.parts.len(), original.parts.len());
        assert_eq!(parsed.attachment_count(), original.attachment_count());
    }

    #[test]
    fn parts_left_as_they_were_keep_their_bytes() {
        let out = rewrite(SUBMITTED, &added(), "d", |body| match body {
            Body::Html(t) | Body::Text(t) => t.to_owned(),
        })
        .unwrap();
        let at = |bytes: &[u8]| {
            let start = bytes
                .windows(9)
                .position(|w| w == b"\r\n\r\nThis ")
                .unwrap();
            bytes[start..].to_vec()
        };
        assert_eq!(at(&out.bytes), at(SUBMITTED), "the whole body as sent");
    }

    #[test]
    fn a_single_part_message_gets_its_content_headers_anew_and_a_date() {
        let raw = b"From: app@shop.example\r\nSubject: Hi\r\nContent-Type: text/plain; charset=us-ascii\r\n\
                    Content-Transfer-Encoding: 7bit\r\nX-Mailtrail-Metadata-Order: 7\r\n\r\n\
                    Buy at https://shop.example/offer now.\r\n";
        let out = rewrite(raw, &added(), "Thu, 1 Jan 2026 00:00:00 +0000", mark).unwrap();
        let parsed = MessageParser::default().parse(&out.bytes).unwrap();
        assert_eq!(
            parsed.body_text(0).as_deref(),
            Some("Buy at https://t.example/c/1 now.\r\n")
        );
        assert_eq!(
            parsed.content_type().unwrap().attribute("charset"),
            Some("utf-8")
        );
        assert_eq!(parsed.content_transfer_encoding(), Some("quoted-printable"));
        let names = header_names(&out.bytes);
        assert_eq!(
            names.iter().filter(|n| *n == "content-type").count(),
            1,
            "{names:?}"
        );
        assert!(names.contains(&"date".to_owned()) && names.contains(&"mime-version".to_owned()));
        assert!(!contains(&out.bytes, b"Order"));
    }

    #[test]
    fn a_part_in_an_unknown_charset_or_encoding_is_left_as_sent() {
        for (headers, body) in [
            (
                "Content-Type: text/plain; charset=x-unheard-of\r\nContent-Transfer-Encoding: 8bit",
                &b"caf\xe9 https://shop.example/offer"[..],
            ),
            (
                "Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode",
                b"https://shop.example/offer",
            ),
            ("Content-Type: text/calendar", b"https://shop.example/offer"),
        ] {
            let mut raw = format!("From: a@shop.example\r\n{headers}\r\n\r\n").into_bytes();
            raw.extend_from_slice(body);
            let out = rewrite(&raw, &added(), "d", mark).unwrap();
            assert!(out.bytes.ends_with(body), "{headers}");
            assert!(contains(&out.bytes, headers.as_bytes()), "{headers}");
        }
    }

    #[test]
    fn text_that_would_open_a_part_once_decoded_goes_back_in_base64() {
        let hidden =
            data_encoding::BASE64.encode(b"https://shop.example/offer\r\n--outer\r\nX: y\r\n");
        let raw = format!(
            "From: a@shop.example\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n\
             Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nintro\r\n--outer\r\n\
             Content-Type: text/plain\r\nContent-Disposition: inline\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{hidden}\r\n--outer--\r\n"
        );
        let out = rewrite(raw.as_bytes(), &added(), "d", |body| match body {
            Body::Html(t) => t.to_owned(),
            Body::Text(t) => format!("{t}\r\n--outer\r\nmore"),
        })
        .unwrap();
        let parsed = MessageParser::default().parse(&out.bytes).unwrap();
        assert_eq!(
            parsed.parts.len(),
            3,
            "{}",
            String::from_utf8_lossy(&out.bytes)
        );
        assert!(
            parsed
                .parts
                .iter()
                .filter(|p| p.is_text())
                .all(|p| p.content_transfer_encoding() == Some("base64"))
        );
    }

    #[test]
    fn a_message_without_a_from_address_or_headers_is_an_error() {
        let cases: [(&[u8], MimeError); 3] = [
            (b"Subject: hi\r\n\r\nbody\r\n", MimeError::NoFrom),
            (b"From: not an address\r\n\r\nbody\r\n", MimeError::NoFrom),
            (b"", MimeError::Unreadable),
        ];
        for (raw, error) in cases {
            assert_eq!(rewrite(raw, &added(), "d", mark), Err(error), "{raw:?}");
        }
    }

    #[test]
    fn headers_that_end_without_a_line_break_get_one() {
        let out = rewrite(b"From: a@shop.example\r\nSubject: hi", &added(), "d", mark).unwrap();
        let names = header_names(&out.bytes);
        assert_eq!(names[..3], ["from", "subject", "reply-to"], "{names:?}");
    }

    /// A small deterministic generator: the same garbage on every run.
    pub(crate) fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Truncated, spliced and random messages: never a panic, and whatever comes out is a
    /// message mail-parser reads.
    #[test]
    fn no_input_makes_it_panic() {
        let mut inputs: Vec<Vec<u8>> = (0..SUBMITTED.len())
            .map(|n| SUBMITTED[..n].to_vec())
            .collect();
        let mut state = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            let mut bytes = SUBMITTED.to_vec();
            for _ in 0..(xorshift(&mut state) % 8 + 1) {
                let at = (xorshift(&mut state) as usize) % bytes.len();
                match xorshift(&mut state) % 4 {
                    0 => bytes[at] = xorshift(&mut state) as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    2 => bytes.insert(
                        at,
                        b"\r\n-=:;\"<>\0\xff"[(xorshift(&mut state) % 11) as usize],
                    ),
                    _ => {
                        let len = (xorshift(&mut state) as usize % 64).min(bytes.len() - at);
                        bytes.drain(at..at + len);
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            inputs.push(bytes);
        }
        for _ in 0..500 {
            let len = (xorshift(&mut state) % 600) as usize;
            inputs.push((0..len).map(|_| xorshift(&mut state) as u8).collect());
        }
        for input in &inputs {
            if let Ok(out) = rewrite(input, &added(), "d", mark) {
                assert!(MessageParser::default().parse(&out.bytes).is_some());
            }
        }
    }
}
