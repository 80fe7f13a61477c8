//! What ties a report to the email Mailtrail sent (PRODUCT.md §5): the returned message's
//! `Message-ID` and Mailtrail's token header, from a returned part or quoted in the text.

use serde::Serialize;

use crate::sections::{Sections, fields_named};

/// The header every outgoing email carries with its signed token.
pub(crate) const TOKEN_HEADER: &str = "x-mailtrail-token";

/// Identifiers of the original email found in the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// `Message-ID` of the returned message, without angle brackets.
    pub message_id: Option<String>,
    /// Value of the returned `X-Mailtrail-Token` header, unverified: the inbound side checks
    /// its signature.
    pub token: Option<String>,
}

/// Searches the returned headers first, then the text, where some servers quote the original.
pub(crate) fn find(sections: &Sections) -> Origin {
    let blocks = sections
        .returned_headers
        .iter()
        .chain(&sections.human)
        .map(|b| {
            fields_named(b, |name| {
                name.eq_ignore_ascii_case("message-id") || name.eq_ignore_ascii_case(TOKEN_HEADER)
            })
        });
    let mut origin = Origin::default();
    for fields in blocks {
        for (name, value) in fields {
            let value = value.trim().trim_matches(['<', '>']).trim();
            if value.is_empty() || value.contains(char::is_whitespace) {
                continue;
            }
            if name == "message-id" {
                origin.message_id.get_or_insert_with(|| value.to_string());
            } else if name == TOKEN_HEADER {
                origin.token.get_or_insert_with(|| value.to_string());
            }
        }
    }
    origin
}
