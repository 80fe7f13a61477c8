//! SMTP replies (RFC 5321 §4.2) and their enhanced status codes (RFC 3463), the evidence
//! behind every delivery decision and the text of an email's Status field.

use std::fmt;
use std::str::FromStr;

/// Why a text is not an SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("an SMTP reply starts with a three-digit code from 200 to 599")]
    BadCode,
    #[error("the lines of a multi-line reply carry different codes")]
    MixedCodes,
}

/// Why a text is not an enhanced status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("an enhanced status code is class.subject.detail (RFC 3463): class 2, 4 or 5")]
    BadClass,
    #[error(
        "an enhanced status code is class.subject.detail (RFC 3463): subject and detail of one to three digits"
    )]
    BadNumber,
}

/// `class.subject.detail`, for example `5.1.1`; class is 2, 4 or 5, subject and detail at most
/// three digits (RFC 3463 §2). Only made valid, by [`EnhancedStatus::new`] or parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    class: u8,
    subject: u16,
    detail: u16,
}

impl EnhancedStatus {
    pub fn new(class: u8, subject: u16, detail: u16) -> Result<Self, StatusError> {
        if !matches!(class, 2 | 4 | 5) {
            return Err(StatusError::BadClass);
        }
        if subject > 999 || detail > 999 {
            return Err(StatusError::BadNumber);
        }
        Ok(Self {
            class,
            subject,
            detail,
        })
    }

    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    pub fn class(self) -> u8 {
        self.class
    }

    /// What the code is about: 1 addressing, 2 mailbox, 3 mail system, 4 network, 5 protocol,
    /// 6 content, 7 security or policy.
    pub fn subject(self) -> u16 {
        self.subject
    }

    pub fn detail(self) -> u16 {
        self.detail
    }

    /// Finds an enhanced status code at the start of `text`, as servers put it after the reply
    /// code. Returns it and the rest of the text.
    pub fn split_prefix(text: &str) -> Option<(Self, &str)> {
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        let status = text[..end].parse().ok()?;
        Some((status, text[end..].trim_start()))
    }
}

impl FromStr for EnhancedStatus {
    type Err = StatusError;
    fn from_str(s: &str) -> Result<Self, StatusError> {
        let mut parts = s.split('.');
        let class = parts.next().unwrap_or_default();
        if class.len() != 1 {
            return Err(StatusError::BadClass);
        }
        let class: u8 = class.parse().map_err(|_| StatusError::BadClass)?;
        let subject = parse_bounded(parts.next())?;
        let detail = parse_bounded(parts.next())?;
        if parts.next().is_some() {
            return Err(StatusError::BadNumber);
        }
        Self::new(class, subject, detail)
    }
}

fn parse_bounded(part: Option<&str>) -> Result<u16, StatusError> {
    let part = part.unwrap_or_default();
    if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StatusError::BadNumber);
    }
    part.parse().map_err(|_| StatusError::BadNumber)
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A complete reply: code, optional enhanced status, and the text of all its lines joined
/// by spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    code: u16,
    enhanced: Option<EnhancedStatus>,
    text: String,
}

impl SmtpReply {
    pub fn new(code: u16, enhanced: Option<EnhancedStatus>, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced,
            text: text.into(),
        }
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn enhanced(&self) -> Option<EnhancedStatus> {
        self.enhanced
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

impl FromStr for SmtpReply {
    type Err = ReplyError;

    /// Parses one reply, single- or multi-line (`250-…` continuation lines, `\r\n` or `\n`).
    /// The enhanced status is taken from the first line, as RFC 2034 servers repeat it.
    fn from_str(s: &str) -> Result<Self, ReplyError> {
        let mut code = None;
        let mut enhanced = None;
        let mut texts = Vec::new();
        for line in s.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            let digits = line.get(..3).ok_or(ReplyError::BadCode)?;
            let this: u16 = digits
                .parse()
                .ok()
                .filter(|c| (200..600).contains(c) && digits.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(ReplyError::BadCode)?;
            if *code.get_or_insert(this) != this {
                return Err(ReplyError::MixedCodes);
            }
            let rest = line[3..].trim_start_matches(['-', ' ']);
            let rest = match EnhancedStatus::split_prefix(rest) {
                Some((status, rest)) => {
                    enhanced.get_or_insert(status);
                    rest
                }
                None => rest,
            };
            if !rest.is_empty() {
                texts.push(rest);
            }
        }
        let text = texts.join(" ");
        Ok(Self {
            code: code.ok_or(ReplyError::BadCode)?,
            enhanced: enhanced.or_else(|| trailing_status(&text)),
            text,
        })
    }
}

/// qmail's convention: the enhanced status at the end of the text, `(#5.1.1)`, for servers
/// that do not put it after the reply code.
fn trailing_status(text: &str) -> Option<EnhancedStatus> {
    let start = text.rfind("(#")?;
    let (inner, _) = text[start + 2..].split_once(')')?;
    inner.parse().ok()
}

impl fmt::Display for SmtpReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(status) = self.enhanced {
            write!(f, " {status}")?;
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_replies() {
        let cases = [
            (
                "550 5.1.1 <a@b.example>: Recipient address rejected: User unknown",
                550,
                Some("5.1.1"),
                "<a@b.example>: Recipient address rejected: User unknown",
            ),
            (
                "550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1  https://support.google.com/mail/?p=NoSuchUser x1si",
                550,
                Some("5.1.1"),
                "The email account that you tried to reach does not exist. https://support.google.com/mail/?p=NoSuchUser x1si",
            ),
            (
                "421 Service not available",
                421,
                None,
                "Service not available",
            ),
            (
                "250 2.0.0 Ok: queued as 4Xk",
                250,
                Some("2.0.0"),
                "Ok: queued as 4Xk",
            ),
            ("452 4.2.2 Mailbox full", 452, Some("4.2.2"), "Mailbox full"),
            ("250", 250, None, ""),
            (
                "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
                553,
                Some("5.7.1"),
                "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
            ),
            ("451 timeout (#4.4.2", 451, None, "timeout (#4.4.2"),
        ];
        for (input, code, status, text) in cases {
            let reply: SmtpReply = input.parse().unwrap();
            assert_eq!(reply.code(), code, "{input}");
            assert_eq!(
                reply.enhanced().map(|s| s.to_string()).as_deref(),
                status,
                "{input}"
            );
            assert_eq!(reply.text(), text, "{input}");
        }
    }

    #[test]
    fn displays_as_the_status_field() {
        let reply: SmtpReply = "550 5.1.1 User unknown".parse().unwrap();
        assert_eq!(reply.to_string(), "550 5.1.1 User unknown");
        assert!(reply.is_permanent() && !reply.is_transient() && !reply.is_positive());
    }

    #[test]
    fn rejects_what_is_not_a_reply() {
        for bad in [
            "",
            "hello",
            "99 x",
            "600 too high",
            "1x0 bad",
            "250-a\r\n251 b",
        ] {
            assert!(bad.parse::<SmtpReply>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn enhanced_status_needs_a_valid_class_and_numbers() {
        assert!("5.1.1".parse::<EnhancedStatus>().is_ok());
        assert!("4.7.1000".parse::<EnhancedStatus>().is_err());
        for bad in ["3.1.1", "5.1", "5..1", "a.b.c", "5.1.1.1", "55.1.1"] {
            assert!(bad.parse::<EnhancedStatus>().is_err(), "{bad}");
        }
        assert_eq!(
            "3.1.1".parse::<EnhancedStatus>(),
            Err(StatusError::BadClass)
        );
        assert_eq!("5.1".parse::<EnhancedStatus>(), Err(StatusError::BadNumber));
        assert_eq!(EnhancedStatus::new(5, 1000, 1), Err(StatusError::BadNumber));
        let status = EnhancedStatus::new(4, 7, 28).unwrap();
        assert_eq!(
            (status.class(), status.subject(), status.detail()),
            (4, 7, 28)
        );
    }
}
