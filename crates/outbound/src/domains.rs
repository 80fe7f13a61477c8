//! Sending domains: the DNS records an account publishes for a domain it sends from — its
//! DKIM key, SPF, and the MX of the return path — and checking them by DNS lookup.
//!
//! A domain is verified when its DKIM record carries the domain's key and it has an SPF
//! record. The bounce domain's MX is reported but does not decide: it is one record for the
//! whole installation, the operator's to publish rather than each account's.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::Resolver as Hickory;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use mailtrail_domain::EmailAddress;
use mailtrail_store::SendingDomain;
use serde::{Deserialize, Serialize};

use crate::OutboundConfig;
use crate::dkim::{KeyAlgorithm, PublishedKey};
use crate::submit::Senders;

/// What a record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Dkim,
    Spf,
    ReturnPath,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Dkim => "dkim",
            Purpose::Spf => "spf",
            Purpose::ReturnPath => "return_path",
        }
    }
}

/// A DNS record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub purpose: Purpose,
    /// `TXT` or `MX`.
    pub kind: &'static str,
    pub name: String,
    pub value: String,
    /// Whether the domain is verified only with it in place.
    pub required: bool,
    pub description: String,
}

/// How one record looked in DNS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCheck {
    pub purpose: Purpose,
    pub name: String,
    pub ok: bool,
    /// What was found, and what to change when it is not right.
    pub detail: String,
}

/// The outcome of checking a domain's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// The DKIM and SPF records check out.
    pub verified: bool,
    pub records: Vec<RecordCheck>,
}

/// A domain name as sending domains are stored and compared with From addresses: lower-case
/// ASCII, IDNs as punycode, no trailing dot.
pub fn normalize(domain: &str) -> Result<String, String> {
    let domain = domain.trim();
    if domain.contains(['@', '[', ']']) {
        return Err(format!("'{domain}' is not a domain name"));
    }
    EmailAddress::parse(&format!("postmaster@{domain}"))
        .map(|address| address.domain().to_owned())
        .map_err(|_| format!("'{domain}' is not a domain name"))
}

/// A selector for a new key, different for every key so a replaced key is never confused
/// with the one DNS caches may still hold.
pub fn new_selector() -> String {
    format!("mt{:08x}", rand::random::<u32>())
}

/// Why a domain could not be registered.
#[derive(Debug)]
pub enum RegisterError {
    /// The domain or the algorithm is not acceptable: (field, message).
    Invalid(&'static str, String),
    /// The account has it already, or the store failed.
    Store(mailtrail_store::StoreError),
    /// Making the key failed.
    Key(String),
}

/// Registers a sending domain for an account with a new RSA-2048 key (and an Ed25519 key
/// beside it when `algorithm` says `rsa+ed25519`) and a fresh selector: what the API and the
/// web UI both do.
pub async fn register(
    store: &mailtrail_store::Store,
    account_id: &str,
    domain: &str,
    algorithm: Option<&str>,
) -> Result<SendingDomain, RegisterError> {
    let domain = normalize(domain).map_err(|e| RegisterError::Invalid("domain", e))?;
    let algorithm = match algorithm.map(str::trim).filter(|a| !a.is_empty()) {
        None => crate::dkim::KeyAlgorithm::default(),
        Some(name) => crate::dkim::KeyAlgorithm::for_new_domain(name)
            .map_err(|why| RegisterError::Invalid("algorithm", why))?,
    };
    // An RSA key takes a moment to make: off the threads that answer requests.
    let pair = tokio::task::spawn_blocking(move || crate::dkim::generate(algorithm))
        .await
        .map_err(|e| RegisterError::Key(e.to_string()))?
        .map_err(RegisterError::Key)?;
    let selector = new_selector();
    store
        .create_domain(
            account_id,
            &mailtrail_store::NewDomain {
                domain: &domain,
                selector: &selector,
                algorithm: algorithm.as_str(),
                private_key_pem: &pair.private_key_pem,
                public_key_b64: &pair.public_key_b64,
            },
        )
        .await
        .map_err(RegisterError::Store)
}

/// Knows what to publish (from the `[outbound]` settings) and looks it up.
pub struct Checker {
    /// Uncached, so a record published a moment ago is seen at once.
    dns: Hickory<TokioRuntimeProvider>,
    helo_name: String,
    bounce_domain: String,
    source_address: Option<IpAddr>,
    senders: Senders,
}

impl Checker {
    /// Uses `dns_servers` when given (`ip:port`), else the system's resolver configuration.
    pub fn new(config: &OutboundConfig, dns_servers: &[SocketAddr]) -> Result<Self, String> {
        Ok(Self {
            dns: crate::resolve::dns_client(dns_servers, false)?,
            helo_name: config.helo_name.clone(),
            bounce_domain: config.bounce_domain().to_owned(),
            source_address: config.source_address,
            senders: if config.require_verified_domains {
                Senders::VerifiedDomains
            } else {
                Senders::Any
            },
        })
    }

    /// Which From addresses submissions may use (`require_verified_domains`).
    pub fn senders(&self) -> Senders {
        self.senders
    }

    /// The SPF mechanism that authorises Mailtrail's sending host.
    fn spf_mechanism(&self) -> String {
        match self.source_address {
            Some(IpAddr::V4(ip)) => format!("ip4:{ip}"),
            Some(IpAddr::V6(ip)) => format!("ip6:{ip}"),
            None => format!("a:{}", self.helo_name),
        }
    }

    /// The records to publish for `domain`.
    pub fn records(&self, domain: &SendingDomain) -> Vec<DnsRecord> {
        let name = &domain.domain;
        let mechanism = self.spf_mechanism();
        let bounce = &self.bounce_domain;
        let mut records: Vec<DnsRecord> = crate::dkim::published_keys(domain)
            .into_iter()
            .map(|key| dkim_record(domain, key))
            .collect();
        records.extend([
            DnsRecord {
                purpose: Purpose::Spf,
                kind: "TXT",
                name: name.clone(),
                value: format!("v=spf1 {mechanism} -all"),
                required: true,
                description: format!(
                    "Authorises Mailtrail's sending host ({mechanism}) to send for {name}. If \
                     {name} has an SPF record already, add {mechanism} to it instead: two SPF \
                     records are an error. Receivers check SPF on the envelope sender's \
                     domain, {bounce}, so it needs {mechanism} too."
                ),
            },
            DnsRecord {
                purpose: Purpose::ReturnPath,
                kind: "MX",
                name: bounce.clone(),
                value: format!("10 {}", self.helo_name),
                required: false,
                description: format!(
                    "The return path: bounces and replies come back to bounces+…@{bounce} and \
                     reply+…@{bounce}, and this MX brings them to Mailtrail's inbound SMTP \
                     server {}. One record for the whole installation, usually published by \
                     its operator: it is reported but does not decide whether {name} is \
                     verified.",
                    self.helo_name
                ),
            },
        ]);
        records
    }

    /// Looks every record up now.
    pub async fn check(&self, domain: &SendingDomain) -> Check {
        let keys = crate::dkim::published_keys(domain);
        let dkim = async {
            let mut checks = Vec::new();
            for key in &keys {
                checks.push(self.check_dkim(domain, key).await);
            }
            checks
        };
        let (mut records, spf, mx) =
            tokio::join!(dkim, self.check_spf(&domain.domain), self.check_mx());
        let verified = records.iter().all(|dkim| dkim.ok) && spf.ok;
        records.extend([spf, mx]);
        Check { verified, records }
    }

    /// The strings of every TXT record at `name`, each record's strings joined (long values
    /// are split into several).
    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        match self.dns.txt_lookup(format!("{name}.")).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part))
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(format!("the DNS lookup of {name} failed: {e}")),
        }
    }

    async fn check_dkim(&self, domain: &SendingDomain, key: &PublishedKey) -> RecordCheck {
        let name = format!("{}._domainkey.{}", key.selector, domain.domain);
        let (ok, detail) = match self.txt(&name).await {
            Err(e) => (false, e),
            Ok(records) if records.is_empty() => (false, format!("no TXT record at {name}")),
            Ok(records) => {
                let published: Vec<String> =
                    records.iter().filter_map(|r| dkim_public_key(r)).collect();
                if published.contains(&key.public_key_b64) {
                    let found = if domain.algorithm == KeyAlgorithm::Ed25519.as_str() {
                        format!(
                            "the domain's key is published, but it is Ed25519 alone: \
                             {ED25519_ALONE}"
                        )
                    } else {
                        "the domain's key is published".to_owned()
                    };
                    (true, found)
                } else if published.is_empty() {
                    (
                        false,
                        format!("the TXT record at {name} has no p= tag: publish the value shown"),
                    )
                } else {
                    (
                        false,
                        format!(
                            "the TXT record at {name} carries another key (p= is not this \
                             domain's): publish the value shown"
                        ),
                    )
                }
            }
        };
        RecordCheck {
            purpose: Purpose::Dkim,
            name,
            ok,
            detail,
        }
    }

    async fn check_spf(&self, domain: &str) -> RecordCheck {
        let mechanism = self.spf_mechanism();
        let (ok, detail) = match self.txt(domain).await {
            Err(e) => (false, e),
            Ok(records) => {
                let spf: Vec<&String> = records.iter().filter(|r| is_spf(r)).collect();
                match spf.as_slice() {
                    [] => (
                        false,
                        format!("no SPF record (a TXT record starting v=spf1) at {domain}"),
                    ),
                    [record] if mentions(record, &mechanism) => (
                        true,
                        format!("an SPF record is published, and it names {mechanism}"),
                    ),
                    [_] => (
                        true,
                        format!(
                            "an SPF record is published, but it does not name {mechanism}: \
                             unless one of its includes covers Mailtrail's sending host, \
                             receivers will fail SPF for this mail"
                        ),
                    ),
                    more => (
                        false,
                        format!(
                            "{} SPF records at {domain}: receivers treat more than one as an \
                             error (RFC 7208); merge them into one",
                            more.len()
                        ),
                    ),
                }
            }
        };
        RecordCheck {
            purpose: Purpose::Spf,
            name: domain.to_owned(),
            ok,
            detail,
        }
    }

    async fn check_mx(&self) -> RecordCheck {
        let name = &self.bounce_domain;
        let (ok, detail) = match self.dns.mx_lookup(format!("{name}.")).await {
            Ok(lookup) => {
                let hosts: Vec<String> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => {
                            Some(mx.exchange.to_utf8().trim_end_matches('.').to_owned())
                        }
                        _ => None,
                    })
                    .filter(|host| !host.is_empty())
                    .collect();
                if hosts.is_empty() {
                    (false, format!("{name} has no MX record (or a null MX)"))
                } else if hosts
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(&self.helo_name))
                {
                    (true, format!("the MX of {name} is {}", hosts.join(", ")))
                } else {
                    (
                        true,
                        format!(
                            "the MX of {name} is {}, not {}: bounces and replies reach \
                             Mailtrail only if that host hands them on",
                            hosts.join(", "),
                            self.helo_name
                        ),
                    )
                }
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                (false, format!("{name} has no MX record"))
            }
            Err(e) => (false, format!("the DNS lookup of {name} failed: {e}")),
        };
        RecordCheck {
            purpose: Purpose::ReturnPath,
            name: name.clone(),
            ok,
            detail,
        }
    }
}

/// Said of a domain signing with Ed25519 alone, as domains were registered before RSA was
/// the default.
const ED25519_ALONE: &str = "Gmail, Yahoo and most receivers do not verify Ed25519 \
     signatures, so mail from this domain has no DKIM pass there: add the domain again with \
     an RSA key (delete it, add it, publish the new record) to sign as they require.";

/// The TXT record of one of a domain's DKIM keys.
fn dkim_record(domain: &SendingDomain, key: PublishedKey) -> DnsRecord {
    let mut description = match (key.kind, domain.algorithm.as_str()) {
        ("ed25519", "ed25519") => format!(
            "The public half of the domain's DKIM key: receivers check Mailtrail's signature \
             with it. It must carry exactly this p= value. The key is Ed25519 alone: \
             {ED25519_ALONE}"
        ),
        ("ed25519", _) => "The public half of the domain's Ed25519 key (RFC 8463): each \
             message carries an Ed25519 signature beside the RSA one, for receivers that \
             verify it; the others ignore it. It must carry exactly this p= value."
            .to_owned(),
        _ => "The public half of the domain's RSA-2048 DKIM key: receivers check Mailtrail's \
             signature with it. It must carry exactly this p= value."
            .to_owned(),
    };
    if key.kind == "rsa" {
        description.push_str(
            " In a zone file, split the value into quoted strings of at most 255 characters; \
             DNS panels do that themselves.",
        );
    }
    DnsRecord {
        purpose: Purpose::Dkim,
        kind: "TXT",
        name: format!("{}._domainkey.{}", key.selector, domain.domain),
        value: format!("v=DKIM1; k={}; p={}", key.kind, key.public_key_b64),
        required: true,
        description,
    }
}

/// The `p=` of a DKIM key record, whitespace removed.
fn dkim_public_key(record: &str) -> Option<String> {
    record.split(';').find_map(|tag| {
        let (name, value) = tag.split_once('=')?;
        (name.trim() == "p").then(|| value.split_whitespace().collect())
    })
}

fn is_spf(record: &str) -> bool {
    let lower = record.trim_start().to_ascii_lowercase();
    lower == "v=spf1" || lower.starts_with("v=spf1 ")
}

/// Whether the SPF record names `mechanism` (with or without the `+` qualifier).
fn mentions(record: &str, mechanism: &str) -> bool {
    record
        .split_whitespace()
        .any(|term| term.trim_start_matches('+').eq_ignore_ascii_case(mechanism))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_like_the_domains_of_from_addresses() {
        assert_eq!(normalize(" Shop.Example. ").unwrap(), "shop.example");
        assert_eq!(
            normalize("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "localhost",
            "a@b.example",
            "[127.0.0.1]",
            "bad_name.example",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_and_spf_terms_are_read_from_records() {
        assert_eq!(
            dkim_public_key("v=DKIM1; k=ed25519; p=AB CD+/=").as_deref(),
            Some("ABCD+/=")
        );
        assert_eq!(dkim_public_key("v=DKIM1; k=rsa"), None);
        assert!(is_spf("v=spf1 -all") && is_spf("V=SPF1") && !is_spf("v=spf10 a"));
        assert!(mentions("v=spf1 mx +a:mta.example -all", "a:mta.example"));
        assert!(!mentions("v=spf1 a:mta.example.org -all", "a:mta.example"));
    }
}
