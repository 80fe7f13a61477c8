//! Splits a parsed message into the pieces the readers need: the headers of the report
//! itself, its human-readable text, its machine-readable report parts and the returned
//! message. Reports nest and mislabel their parts, so this looks at content types rather than
//! at positions.

use std::sync::LazyLock;

use mail_parser::decoders::html::html_to_text;
use mail_parser::{HeaderName, Message, MessageParser, MimeHeaders, PartType};

/// Parses only the headers the readers use; the rest (`Received`, dates, message ids, which
/// a bounce carries many of) stay raw text, read through [`Sections::header`] when needed.
static PARSER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .with_mime_headers()
        .header_text(HeaderName::Subject)
        .header_address(HeaderName::From)
        .header_address(HeaderName::To)
        .default_header_raw()
});

/// Everything a reader may need from one message, decoded to text.
pub(crate) struct Sections {
    /// Subject of the report, decoded.
    pub subject: String,
    /// Address in the report's `From`, lower-cased: a mailer-daemon, or the person who
    /// auto-replied.
    pub from: String,
    /// Addresses in the report's `To`, lower-cased: usually the sender of the original.
    pub to: Vec<String>,
    /// `(name, value)` of every header of the report, as written (folded).
    headers: Vec<(String, String)>,
    /// The text parts meant for people, in order (HTML turned into text).
    pub human: Vec<String>,
    /// Bodies of `message/delivery-status` parts (RFC 3464).
    pub delivery_status: Vec<String>,
    /// Bodies of `message/feedback-report` parts (RFC 5965).
    pub feedback_report: Vec<String>,
    /// Header blocks of the returned message (`message/rfc822` or `text/rfc822-headers`).
    pub returned_headers: Vec<String>,
}

impl Sections {
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let message = PARSER.parse(raw)?;
        let mut sections = Sections {
            subject: message.subject().unwrap_or_default().to_string(),
            from: first_address(message.from()),
            to: addresses(message.to()),
            headers: header_pairs(&message),
            human: Vec::new(),
            delivery_status: Vec::new(),
            feedback_report: Vec::new(),
            returned_headers: Vec::new(),
        };
        sections.collect(&message);
        // A multipart whose boundary never appears leaves no parts: its body is the notice.
        if sections.human.is_empty() && sections.delivery_status.is_empty() {
            let raw = message.raw_message();
            let start = message
                .parts
                .first()
                .map_or(raw.len(), |p| (p.offset_body as usize).min(raw.len()));
            let body = String::from_utf8_lossy(&raw[start..]);
            if !body.trim().is_empty() {
                sections.human.push(body.into_owned());
            }
        }
        Some(sections)
    }

    /// The value of the first header called `name`, unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| unfold(v))
    }

    fn collect(&mut self, message: &Message<'_>) {
        // HTML is read only when there is no plain text: it is usually the same notice again.
        let mut html_parts = Vec::new();
        for part in &message.parts {
            let (ctype, subtype) = part
                .content_type()
                .map(|ct| {
                    (
                        ct.ctype().to_ascii_lowercase(),
                        ct.subtype().unwrap_or_default().to_ascii_lowercase(),
                    )
                })
                .unwrap_or_else(|| ("text".into(), "plain".into()));
            let text = || String::from_utf8_lossy(part.contents()).into_owned();
            match (ctype.as_str(), subtype.as_str(), &part.body) {
                (_, _, PartType::Multipart(_)) => {}
                // A relay that forwards a report it received wraps it whole: that report is
                // the one to read, not a returned message.
                (_, _, PartType::Message(inner)) if is_delivery_report(inner) => {
                    self.collect(inner);
                }
                (_, _, PartType::Message(inner)) => {
                    self.returned_headers.push(raw_headers(inner));
                }
                (_, "delivery-status" | "global-delivery-status", _) => {
                    self.delivery_status.push(text());
                }
                (_, "feedback-report", _) => self.feedback_report.push(text()),
                (_, "rfc822-headers" | "global-headers" | "rfc822", _) => {
                    self.returned_headers.push(text());
                }
                (_, _, PartType::Html(html)) => html_parts.push(html.as_ref()),
                ("text", _, PartType::Text(body)) => self.human.push(body.to_string()),
                // A nested multipart whose headers were too broken to parse arrives as bytes;
                // its text is still the notice.
                (
                    "text" | "multipart",
                    _,
                    PartType::Binary(bytes) | PartType::InlineBinary(bytes),
                ) => {
                    self.human.push(String::from_utf8_lossy(bytes).into_owned());
                }
                _ => {}
            }
        }
        if self.human.is_empty() {
            self.human = html_parts.into_iter().map(html_to_text).collect();
        }
    }
}

/// A message that is itself a delivery report (`multipart/report; report-type=delivery-status`).
fn is_delivery_report(message: &Message<'_>) -> bool {
    message.content_type().is_some_and(|ct| {
        ct.subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_some_and(|t| t.to_ascii_lowercase().contains("delivery-status"))
    })
}

/// The header block of a nested message, as text, so every returned message reads the same
/// whether it came as `message/rfc822` or `text/rfc822-headers`.
fn raw_headers(message: &Message<'_>) -> String {
    let raw = message.raw_message();
    let end = message.parts.first().map_or(raw.len(), |p| {
        (p.offset_body.saturating_sub(p.offset_header) as usize).min(raw.len())
    });
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn header_pairs(message: &Message<'_>) -> Vec<(String, String)> {
    message
        .headers_raw()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// The `name: value` lines of a header-like block (a DSN or ARF part, a quoted header), with folded
/// continuation lines joined; names lower-cased.
pub(crate) fn fields(body: &str) -> Vec<(String, String)> {
    fields_named(body, |_| true)
}

/// The fields of [`fields`] whose name `wanted` accepts (as written): searching a whole text
/// for a few names need not copy every line that looks like a field.
pub(crate) fn fields_named(body: &str, wanted: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut folding = false;
    for line in body.lines() {
        if line.starts_with([' ', '\t']) && folding {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        folding = false;
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) || !wanted(name) {
            continue;
        }
        folding = true;
        fields.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    fields
}

/// Joins folded header lines into one line.
pub(crate) fn unfold(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn addresses(address: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    address
        .map(|a| {
            a.iter()
                .filter_map(|addr| addr.address())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

fn first_address(address: Option<&mail_parser::Address<'_>>) -> String {
    addresses(address).into_iter().next().unwrap_or_default()
}
