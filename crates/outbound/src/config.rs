//! The `[outbound]` section of the configuration.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use mailtrail_domain::RetryPolicy;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// The name Mailtrail gives in EHLO, and the domain of its Message-IDs.
    pub helo_name: String,
    /// The local address outgoing connections are made from (any when unset).
    pub source_address: Option<IpAddr>,
    /// The domain of the VERP envelope sender `bounces+TOKEN@…` and the reply address, where
    /// bounces and replies come back to Mailtrail's SMTP listener. `helo_name` when unset.
    pub bounce_domain: Option<String>,
    /// Recipient domain → `host:port`, skipping MX lookup; `"*"` catches every other domain
    /// (the sandbox uses it so that no mail leaves the machine).
    pub routes: BTreeMap<String, String>,
    /// Where tracking and unsubscribe links point unless an account sets its own: the public
    /// URL of Mailtrail's HTTP server.
    pub tracking_base_url: String,
    /// Send everything through this smarthost instead of MX hosts.
    pub relay: Option<RelayConfig>,
    /// Sending domain → its DKIM key: mail whose From is in the domain is signed.
    pub dkim: BTreeMap<String, crate::dkim::DkimKeyConfig>,
    /// Refuse submissions whose From is not in a verified sending domain of the account. Off
    /// by default so existing installations keep sending; production should turn it on. The
    /// sandbox never enforces it.
    pub require_verified_domains: bool,
    /// Port of MX hosts (25; tests point it at a local sink).
    pub mx_port: u16,
    /// Refuse to send over a connection without STARTTLS (encryption without certificate
    /// checks, like Postfix's `encrypt` level); otherwise STARTTLS is used when offered.
    pub require_tls: bool,
    /// SMTP sessions open at once, across all destinations.
    pub sessions: usize,
    /// SMTP sessions open at once to one destination.
    pub sessions_per_destination: usize,
    /// Emails sent over one connection before it is closed.
    pub messages_per_connection: usize,
    /// Most emails per second to one destination (unlimited when unset).
    pub messages_per_second_per_destination: Option<f64>,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Greeting, EHLO, MAIL, RCPT (RFC 5321 §4.5.3.2: 5 minutes).
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// From the end of the message to the server's answer (RFC 5321: 10 minutes).
    #[serde(with = "humantime_serde")]
    pub data_timeout: Duration,
    pub retry: RetryConfig,
    /// How long a claim on an email lasts; a crashed node's claims return after this. Must
    /// exceed the longest session.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often an idle worker looks for due emails.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a destination that answered "slow down" (421, rate limited) is left alone.
    #[serde(with = "humantime_serde")]
    pub throttle: Duration,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            helo_name: "localhost".into(),
            source_address: None,
            bounce_domain: None,
            routes: BTreeMap::new(),
            relay: None,
            tracking_base_url: "http://127.0.0.1:8025".into(),
            dkim: BTreeMap::new(),
            require_verified_domains: false,
            mx_port: 25,
            require_tls: false,
            sessions: 32,
            sessions_per_destination: 8,
            messages_per_connection: 100,
            messages_per_second_per_destination: None,
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            retry: RetryConfig::default(),
            lease: Duration::from_secs(15 * 60),
            poll_interval: Duration::from_secs(1),
            throttle: Duration::from_secs(60),
        }
    }
}

impl OutboundConfig {
    pub fn bounce_domain(&self) -> &str {
        self.bounce_domain.as_deref().unwrap_or(&self.helo_name)
    }
}

/// The soft-bounce schedule (docs/emails.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    #[serde(with = "humantime_serde")]
    pub first_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
    /// Tries of a 5xx whose text reads as temporary...
    pub soft_5xx_attempts: u32,
    /// ...within this window.
    #[serde(with = "humantime_serde")]
    pub soft_5xx_window: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        Self {
            first_delay: policy.first_delay,
            max_delay: policy.max_delay,
            give_up_after: policy.give_up_after,
            soft_5xx_attempts: policy.soft_5xx_attempts,
            soft_5xx_window: policy.soft_5xx_window,
        }
    }
}

impl RetryConfig {
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            first_delay: self.first_delay,
            max_delay: self.max_delay,
            give_up_after: self.give_up_after,
            soft_5xx_attempts: self.soft_5xx_attempts,
            soft_5xx_window: self.soft_5xx_window,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// `host:port` of the smarthost.
    pub address: String,
    pub username: Option<String>,
    pub password: Option<String>,
    #[serde(default)]
    pub tls: RelayTls,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    /// STARTTLS when offered (required when credentials are set).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// Never (a relay on loopback).
    None,
}
