//! The `[inbound]` section, and the rule for which recipients Mailtrail accepts mail for.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// The name in the greeting and EHLO reply.
    pub hostname: String,
    /// Largest message accepted (announced as SIZE); larger ones get `552 5.3.4`.
    pub max_message_size: usize,
    /// Recipients per message; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// Connections served at once; more are told `421` and closed.
    pub max_connections: usize,
    /// Waiting for a command (RFC 5321 §4.5.3.2: at least 5 minutes).
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Waiting for the next piece of a message.
    #[serde(with = "humantime_serde")]
    pub data_timeout: Duration,
    /// Refused commands (syntax errors, bad order, relay attempts: every 5xx reply) tolerated
    /// in one session before it is closed with `421`.
    pub max_errors: usize,
    /// How long raw messages are kept after processing.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// PEM certificate chain for STARTTLS (with `tls_key`); unset, STARTTLS is not offered.
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key of `tls_certificate`.
    pub tls_key: Option<PathBuf>,
}

impl Default for InboundConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            max_message_size: 10 * 1024 * 1024,
            max_recipients: 100,
            max_connections: 256,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(180),
            max_errors: 10,
            retention: Duration::from_secs(30 * 24 * 3600),
            tls_certificate: None,
            tls_key: None,
        }
    }
}

/// The local parts Mailtrail answers to at its bounce domain: VERP bounces, replies, the
/// feedback-loop address, and mailto unsubscribes.
const LOCAL_PARTS: [&str; 4] = ["bounces+", "reply+", "unsubscribe+", "fbl"];

/// The domain of `recipient` when it is a VERP bounce address, `bounces+TOKEN@DOMAIN`: the
/// one address Mailtrail answers to at a sending domain's return path, accepted when DOMAIN
/// is a registered return path.
pub fn bounce_to_return_path(recipient: &str) -> Option<&str> {
    let (local, domain) = recipient.rsplit_once('@')?;
    let token = local
        .get(..8)
        .filter(|prefix| prefix.eq_ignore_ascii_case("bounces+"))
        .map(|_| &local[8..])?;
    (!token.is_empty() && !domain.is_empty()).then_some(domain)
}

/// Whether mail for `recipient` is Mailtrail's to take at its bounce domain (anything else
/// would be relaying, unless [`bounce_to_return_path`] names a registered return path).
pub fn accepts(recipient: &str, bounce_domain: &str) -> bool {
    let Some((local, domain)) = recipient.rsplit_once('@') else {
        return false;
    };
    let local = local.to_ascii_lowercase();
    domain.eq_ignore_ascii_case(bounce_domain)
        && LOCAL_PARTS.iter().any(|p| {
            if p.ends_with('+') {
                local.starts_with(p) && local.len() > p.len()
            } else {
                local == *p
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mailtrails_own_addresses_are_accepted() {
        let domain = "bounce.shop.test";
        for yes in [
            "bounces+abc@bounce.shop.test",
            "REPLY+x@Bounce.Shop.Test",
            "fbl@bounce.shop.test",
            "unsubscribe+t@bounce.shop.test",
        ] {
            assert!(accepts(yes, domain), "{yes}");
        }
        for no in [
            "bounces+@bounce.shop.test",
            "ana@bounce.shop.test",
            "bounces+abc@other.test",
            "victim@gmail.com",
            "fbl@bounce.shop.test.evil",
            "",
            "no-at-sign",
        ] {
            assert!(!accepts(no, domain), "{no}");
        }
    }

    #[test]
    fn only_verp_bounce_addresses_name_a_return_path() {
        for (recipient, domain) in [
            ("bounces+abc@bounces.shop.test", Some("bounces.shop.test")),
            ("BOUNCES+abc@Bounces.Shop.Test", Some("Bounces.Shop.Test")),
            ("bounces+@bounces.shop.test", None),
            ("bounces+abc@", None),
            ("reply+abc@bounces.shop.test", None),
            ("fbl@bounces.shop.test", None),
            ("unsubscribe+abc@bounces.shop.test", None),
            ("bounce+abc@bounces.shop.test", None),
            ("é@x", None),
            ("no-at-sign", None),
        ] {
            assert_eq!(bounce_to_return_path(recipient), domain, "{recipient}");
        }
    }
}
