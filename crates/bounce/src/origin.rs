//! What ties a report to the email Mailtrail sent (docs/inbound.md): the returned message's
//! `Message-ID` and Mailtrail's token header, from a returned part or quoted in the text, and
//! the Message-IDs the message itself answers (`In-Reply-To`, `References`). All unverified:
//! Mailtrail's Message-IDs carry the email's signed token, which the inbound side checks.

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
    /// The Message-IDs in the message's own `In-Reply-To` and `References` (in that order,
    /// without angle brackets): an auto-reply names the email it answers there.
    pub replied_to: Vec<String>,
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
    let mut origin = Origin {
        replied_to: ["in-reply-to", "references"]
            .iter()
            .filter_map(|name| sections.header(name))
            .flat_map(|ids| {
                ids.split_whitespace()
                    .map(|id| id.trim_matches(['<', '>']).to_owned())
                    .filter(|id| !id.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect(),
        ..Origin::default()
    };
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_message_ids_a_message_answers_are_kept_in_order() {
        let raw = b"From: ana@example.com\r\nTo: reply+t@bounce.test\r\nSubject: Re: Offer\r\n\
                    In-Reply-To: <a.tok@mta.test>\r\nReferences: <x@y.test>\r\n <a.tok@mta.test>\r\n\r\nThanks\r\n";
        let origin = crate::classify(raw).origin;
        assert_eq!(
            origin.replied_to,
            ["a.tok@mta.test", "x@y.test", "a.tok@mta.test"]
        );
        assert_eq!(
            origin.message_id, None,
            "the message's own id is not the original's"
        );
        let plain = crate::classify(b"From: a@b.test\r\nSubject: hi\r\n\r\nbody\r\n").origin;
        assert!(plain.replied_to.is_empty());
    }
}
