//! A message submitted over SMTP (PRODUCT.md §7) goes out as its sender wrote it: its MIME
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
//!   match. A part that cannot be decoded faithfully (an unknown charset or transfer encoding,
//!   bytes its charset does not allow) is left as it is.
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

/// One part to write anew: where it is, whether it is HTML, and its text as the caller
/// rewrote it.
struct Replacement<'m> {
    part: &'m MessagePart<'m>,
    html: bool,
    text: String,
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
            })
        })
        .collect();
    for pass_html in [true, false] {
        for replacement in replacements.iter_mut().filter(|r| r.html == pass_html) {
            let text = std::mem::take(&mut replacement.text);
            replacement.text = body(if pass_html {
                Body::Html(&text)
            } else {
                Body::Text(&text)
            });
        }
    }
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
