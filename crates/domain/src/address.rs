//! Email addresses as Mailtrail compares them: the domain lower-cased and IDNs as punycode,
//! the local part compared case-insensitively (docs/emails.md).

use std::fmt;
use std::str::FromStr;

/// Why a string is not an address Mailtrail will send to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("the address is longer than 254 characters")]
    TooLong,
    #[error("the address has no '@'")]
    MissingAt,
    #[error("the part before '@' is empty or longer than 64 characters")]
    BadLocalPart,
    #[error("the part before '@' contains a space, a control character or one of \"(),:;<>[\\]")]
    ForbiddenCharacter,
    #[error("the domain '{0}' is not a valid domain name")]
    BadDomain(String),
}

/// A syntactically valid address. The local part keeps the case it was given (some servers
/// still care when delivering); the domain is stored in its ASCII (punycode) form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    local: String,
    domain: String,
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(AddressError::Empty);
        }
        let (local, domain) = input.rsplit_once('@').ok_or(AddressError::MissingAt)?;
        if local.is_empty() || local.len() > 64 {
            return Err(AddressError::BadLocalPart);
        }
        if local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "(),:;<>[\\]\"@".contains(c))
        {
            return Err(AddressError::ForbiddenCharacter);
        }
        let domain = normalise_domain(domain)?;
        if local.len() + 1 + domain.len() > 254 {
            return Err(AddressError::TooLong);
        }
        Ok(Self {
            local: local.to_owned(),
            domain,
        })
    }

    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The domain in lower-case ASCII, IDNs as punycode (`xn--…`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The key two addresses are compared by: equal keys are the same mailbox for Mailtrail.
    pub fn normalized(&self) -> String {
        format!("{}@{}", self.local.to_lowercase(), self.domain)
    }
}

fn normalise_domain(domain: &str) -> Result<String, AddressError> {
    let bad = || AddressError::BadDomain(domain.to_owned());
    let ascii = idna::domain_to_ascii(domain.trim_end_matches('.')).map_err(|_| bad())?;
    let labels_ok = ascii.split('.').count() >= 2
        && ascii.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if labels_ok && ascii.len() <= 253 {
        Ok(ascii)
    } else {
        Err(bad())
    }
}

impl FromStr for EmailAddress {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_whitespace_and_idn() {
        let cases = [
            ("Ana@Example.COM", "Ana@example.com", "ana@example.com"),
            ("  bo@example.org  ", "bo@example.org", "bo@example.org"),
            (
                "jo@bücher.example",
                "jo@xn--bcher-kva.example",
                "jo@xn--bcher-kva.example",
            ),
            ("x@Example.com.", "x@example.com", "x@example.com"),
            (
                "first.last+tag@sub.example.co",
                "first.last+tag@sub.example.co",
                "first.last+tag@sub.example.co",
            ),
        ];
        for (input, display, key) in cases {
            let address = EmailAddress::parse(input).unwrap();
            assert_eq!(address.to_string(), display, "{input}");
            assert_eq!(address.normalized(), key, "{input}");
        }
    }

    #[test]
    fn same_mailbox_in_different_case_has_one_key() {
        let a = EmailAddress::parse("MIXED@EXAMPLE.com").unwrap();
        let b = EmailAddress::parse("mixed@example.COM").unwrap();
        assert_eq!(a.normalized(), b.normalized());
    }

    #[test]
    fn rejects_what_is_not_an_address() {
        let cases = [
            ("", AddressError::Empty),
            ("no-at.example.com", AddressError::MissingAt),
            ("@example.com", AddressError::BadLocalPart),
            ("a b@example.com", AddressError::ForbiddenCharacter),
            ("<a>@example.com", AddressError::ForbiddenCharacter),
            ("a@localhost", AddressError::BadDomain("localhost".into())),
            (
                "a@-bad.example",
                AddressError::BadDomain("-bad.example".into()),
            ),
            (
                "a@exa mple.com",
                AddressError::BadDomain("exa mple.com".into()),
            ),
            (
                "a@example..com",
                AddressError::BadDomain("example..com".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(EmailAddress::parse(input), Err(expected), "{input:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(
            EmailAddress::parse(&long_local),
            Err(AddressError::BadLocalPart)
        );
    }
}
