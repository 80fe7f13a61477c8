//! Sending domains: the DNS records an account publishes for a domain it sends from — its
//! DKIM key, and for its return path (the envelope sender's domain, `bounces.DOMAIN` unless
//! registered otherwise) an SPF record and an MX — plus a DMARC record, and checking them by
//! DNS lookup.
//!
//! A domain is verified when its DKIM record carries the domain's key and its return path has
//! an SPF record and an MX: then its mail is signed with its key and sent from
//! `bounces+TOKEN@RETURN_PATH`, so both DKIM (`d=DOMAIN`) and SPF (on a name under DOMAIN,
//! relaxed alignment) align with the From domain for DMARC. The DMARC record is checked and
//! reported — its policy, and whether a strict `aspf` would break SPF alignment — but does
//! not decide: without one, mail is still signed and aligned, and receivers fall back to the
//! organisational domain's record.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::Resolver as Hickory;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use mailtrail_domain::EmailAddress;
use mailtrail_store::SendingDomain;
use serde::{Deserialize, Serialize};

use crate::OutboundConfig;
use crate::dkim::{KeyAlgorithm, PublishedKey};
use crate::rotation;
use crate::submit::Senders;

/// What a record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Dkim,
    Spf,
    ReturnPath,
    Dmarc,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Dkim => "dkim",
            Purpose::Spf => "spf",
            Purpose::ReturnPath => "return_path",
            Purpose::Dmarc => "dmarc",
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
    /// For the record of a key a rotation replaced: until when to keep it published.
    pub keep_published_until_ms: Option<i64>,
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
    /// The DKIM record, and the return path's SPF and MX, check out.
    pub verified: bool,
    /// A rotation's next key was found published: mail is signed with it from now on.
    #[serde(default)]
    pub next_key_published: bool,
    pub records: Vec<RecordCheck>,
}

/// A name given as a domain that is not one (trimmed, as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a domain name")]
pub struct NotADomain(pub String);

/// A domain name as sending domains are stored and compared with From addresses: lower-case
/// ASCII, IDNs as punycode, no trailing dot.
pub fn normalize(domain: &str) -> Result<String, NotADomain> {
    let domain = domain.trim();
    let not_a_domain = || NotADomain(domain.to_owned());
    if domain.contains(['@', '[', ']']) {
        return Err(not_a_domain());
    }
    EmailAddress::parse(&format!("postmaster@{domain}"))
        .map(|address| address.domain().to_owned())
        .map_err(|_| not_a_domain())
}

/// Why a requested return path cannot be a domain's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReturnPathError {
    #[error(transparent)]
    NotADomain(#[from] NotADomain),
    #[error(
        "'{requested}' is not {domain} or a name under it (like bounces.{domain}): SPF on it \
         would not align with From addresses at {domain}"
    )]
    NotUnderDomain { requested: String, domain: String },
}

/// The return path of `domain` (normalised): `requested` if it is the domain itself or a name
/// under it — SPF on anything else would not align with the From domain — else the default.
pub fn return_path(domain: &str, requested: Option<&str>) -> Result<String, ReturnPathError> {
    let Some(requested) = requested.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(mailtrail_store::default_return_path(domain));
    };
    let name = normalize(requested)?;
    if name == domain || name.ends_with(&format!(".{domain}")) {
        Ok(name)
    } else {
        Err(ReturnPathError::NotUnderDomain {
            requested: requested.to_owned(),
            domain: domain.to_owned(),
        })
    }
}

/// A selector for a new key, different for every key so a replaced key is never confused
/// with the one DNS caches may still hold.
pub fn new_selector() -> String {
    format!("mt{:08x}", rand::random::<u32>())
}

/// Why a domain could not be registered, or given a new key ([`crate::rotation::rotate`]).
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The domain or the algorithm is not acceptable: (field, message).
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    /// The account has it already, or the store failed.
    #[error(transparent)]
    Store(mailtrail_store::StoreError),
    /// Making the key failed.
    #[error("cannot make the domain's key")]
    Key(#[source] crate::dkim::GenerateError),
}

/// Registers a sending domain for an account with a new RSA-2048 key (and an Ed25519 key
/// beside it when `algorithm` says `rsa+ed25519`), a fresh selector and its return path (see [`return_path`]): what the API and
/// the web UI both do.
pub async fn register(
    store: &mailtrail_store::Store,
    account_id: &str,
    domain: &str,
    algorithm: Option<&str>,
    requested_return_path: Option<&str>,
) -> Result<SendingDomain, RegisterError> {
    let domain = normalize(domain).map_err(|e| RegisterError::Invalid("domain", e.to_string()))?;
    let return_path = return_path(&domain, requested_return_path)
        .map_err(|e| RegisterError::Invalid("return_path", e.to_string()))?;
    let algorithm = match algorithm.map(str::trim).filter(|a| !a.is_empty()) {
        None => crate::dkim::KeyAlgorithm::default(),
        Some(name) => crate::dkim::KeyAlgorithm::for_new_domain(name)
            .map_err(|e| RegisterError::Invalid("algorithm", e.to_string()))?,
    };
    let pair = crate::dkim::generate_in_background(algorithm)
        .await
        .map_err(RegisterError::Key)?;
    let selector = new_selector();
    store
        .create_domain_with_return_path(
            account_id,
            &mailtrail_store::NewDomain {
                domain: &domain,
                selector: &selector,
                algorithm: algorithm.as_str(),
                private_key_pem: &pair.private_key_pem,
                public_key_b64: &pair.public_key_b64,
            },
            &return_path,
        )
        .await
        .map_err(RegisterError::Store)
}

/// A DNS lookup that got no answer. Its text is a record check's detail, so it says
/// everything itself, the cause included.
#[derive(Debug, thiserror::Error)]
#[error("the DNS lookup of {name} failed: {error}")]
struct LookupFailed {
    name: String,
    error: hickory_resolver::net::NetError,
}

/// Knows what to publish (from the `[outbound]` settings) and looks it up.
pub struct Checker {
    /// Uncached, so a record published a moment ago is seen at once.
    dns: Hickory<TokioRuntimeProvider>,
    helo_name: String,
    source_address: Option<IpAddr>,
    senders: Senders,
}

impl Checker {
    /// Uses `dns_servers` when given (`ip:port`), else the system's resolver configuration.
    pub fn new(
        config: &OutboundConfig,
        dns_servers: &[SocketAddr],
    ) -> Result<Self, crate::resolve::DnsClientError> {
        Ok(Self {
            dns: crate::resolve::dns_client(dns_servers, false)?,
            helo_name: config.helo_name.clone(),
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
        let return_path = &domain.return_path;
        let mechanism = self.spf_mechanism();
        let mut records: Vec<DnsRecord> = crate::dkim::published_keys(domain)
            .into_iter()
            .map(|key| dkim_record(domain, key))
            .collect();
        records.extend(rotation::next_keys(domain).into_iter().map(|key| {
            let mut record = dkim_record(domain, key);
            record.required = false;
            record.description = format!(
                "The new key of a rotation: publish it beside the current one ({}), then run \
                 the check. Mail is signed with the current key until a check finds this one; \
                 from then on with this one. {}",
                domain.selector, record.description
            );
            record
        }));
        records.extend(
            rotation::retired_keys(domain, mailtrail_store::now_ms())
                .into_iter()
                .map(|key| DnsRecord {
                    purpose: Purpose::Dkim,
                    kind: "TXT",
                    name: format!("{}._domainkey.{name}", key.selector),
                    value: format!("v=DKIM1; k={}; p={}", key.kind, key.public_key_b64),
                    required: false,
                    description: format!(
                        "A key a rotation replaced: mail is no longer signed with it, but mail \
                         signed before the switch is still checked with it. Keep it published \
                         until the date shown, then remove it (it is no longer listed after \
                         that). The current key is at {}.",
                        domain.selector
                    ),
                    keep_published_until_ms: Some(key.until_ms),
                }),
        );
        records.extend([
            DnsRecord {
                purpose: Purpose::Spf,
                kind: "TXT",
                name: return_path.clone(),
                value: format!("v=spf1 {mechanism} -all"),
                required: true,
                description: format!(
                    "Mail from {name} is sent with the envelope sender bounces+…@{return_path}, \
                     and receivers check SPF on that name: this record authorises Mailtrail's \
                     sending host ({mechanism}). It is under {name}, so SPF aligns with the From \
                     domain for DMARC. If {return_path} has an SPF record already, add \
                     {mechanism} to it instead: two SPF records are an error."
                ),
                keep_published_until_ms: None,
            },
            DnsRecord {
                purpose: Purpose::ReturnPath,
                kind: "MX",
                name: return_path.clone(),
                value: format!("10 {}", self.helo_name),
                required: true,
                description: format!(
                    "Bounces come back to bounces+…@{return_path}: this MX brings them to \
                     Mailtrail's inbound SMTP server {}, which accepts only those addresses \
                     there.",
                    self.helo_name
                ),
                keep_published_until_ms: None,
            },
            DnsRecord {
                purpose: Purpose::Dmarc,
                kind: "TXT",
                name: format!("_dmarc.{name}"),
                value: "v=DMARC1; p=none".to_owned(),
                required: false,
                description: format!(
                    "Gmail and Yahoo want a DMARC record from bulk senders. p=none only asks \
                     for reports; once they show your mail passing, move to p=quarantine or \
                     p=reject. To get aggregate reports add rua=mailto: and a mailbox of your \
                     own: Mailtrail does not read DMARC reports, and a mailbox outside {name} \
                     must authorise it in DNS (RFC 7489 §7.1). Keep aspf relaxed (the \
                     default): the return path {return_path} aligns with {name} only then. \
                     Recommended; the domain is verified without it."
                ),
                keep_published_until_ms: None,
            },
        ]);
        records
    }

    /// Looks every record up now.
    pub async fn check(&self, domain: &SendingDomain) -> Check {
        let keys = crate::dkim::published_keys(domain);
        let next = rotation::next_keys(domain);
        let dkim = async {
            let mut checks = Vec::new();
            for key in keys.iter().chain(&next) {
                checks.push(self.check_dkim(domain, key).await);
            }
            checks
        };
        let (mut records, spf, mx, dmarc) = tokio::join!(
            dkim,
            self.check_spf(&domain.return_path),
            self.check_mx(&domain.return_path),
            self.check_dmarc(domain)
        );
        let (current, next) = records.split_at(keys.len());
        let verified = current.iter().all(|dkim| dkim.ok) && spf.ok && mx.ok;
        let next_key_published = !next.is_empty() && next.iter().all(|dkim| dkim.ok);
        records.extend([spf, mx, dmarc]);
        Check {
            verified,
            next_key_published,
            records,
        }
    }

    /// Checks the domain's records now and records the outcome; when a rotation's next key
    /// was found published, mail is signed with it from now on and the replaced keys are
    /// listed to keep published ([`rotation`]). What the API's verify and the web UI's check
    /// both do.
    pub async fn verify(
        &self,
        store: &mailtrail_store::Store,
        domain: &SendingDomain,
    ) -> Result<SendingDomain, mailtrail_store::StoreError> {
        let check = self.check(domain).await;
        let json = serde_json::to_string(&check).expect("a check serialises");
        let checked = store
            .record_domain_check(&domain.account_id, &domain.domain, check.verified, &json)
            .await?;
        match rotation::promotion(domain, check.next_key_published, mailtrail_store::now_ms()) {
            None => Ok(checked),
            Some((selector, retired)) => {
                let retired = serde_json::to_string(&retired).expect("keys serialise");
                let promoted = store
                    .promote_next_key(&domain.account_id, &domain.domain, &selector, &retired)
                    .await?;
                tracing::info!(
                    domain = %domain.domain,
                    selector = %promoted.selector,
                    retired = %domain.selector,
                    "a check found the rotated DKIM key published: mail is signed with it now"
                );
                Ok(promoted)
            }
        }
    }

    /// The strings of every TXT record at `name`, each record's strings joined (long values
    /// are split into several).
    async fn txt(&self, name: &str) -> Result<Vec<String>, LookupFailed> {
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
            Err(error) => Err(LookupFailed {
                name: name.to_owned(),
                error,
            }),
        }
    }

    async fn check_dkim(&self, domain: &SendingDomain, key: &PublishedKey) -> RecordCheck {
        let name = format!("{}._domainkey.{}", key.selector, domain.domain);
        let (ok, detail) = match self.txt(&name).await {
            Err(e) => (false, e.to_string()),
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
            Err(e) => (false, e.to_string()),
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

    async fn check_dmarc(&self, domain: &SendingDomain) -> RecordCheck {
        let name = format!("_dmarc.{}", domain.domain);
        let (ok, detail) = match self.txt(&name).await {
            Err(e) => (false, e.to_string()),
            Ok(records) => {
                let published: Vec<&String> = records
                    .iter()
                    .filter(|r| r.trim_start().to_ascii_lowercase().starts_with("v=dmarc1"))
                    .collect();
                match published.as_slice() {
                    [] => (
                        false,
                        format!(
                            "no DMARC record (a TXT record starting v=DMARC1) at {name}: \
                             receivers use the organisational domain's, if any"
                        ),
                    ),
                    [record] => match dmarc(record) {
                        None => (
                            false,
                            format!(
                                "the DMARC record at {name} has no valid p= (none, quarantine \
                                 or reject): receivers ignore it"
                            ),
                        ),
                        Some(dmarc) => dmarc_detail(&dmarc, domain),
                    },
                    more => (
                        false,
                        format!(
                            "{} DMARC records at {name}: receivers ignore them all (RFC 7489 \
                             §6.6.3); keep one",
                            more.len()
                        ),
                    ),
                }
            }
        };
        RecordCheck {
            purpose: Purpose::Dmarc,
            name,
            ok,
            detail,
        }
    }

    async fn check_mx(&self, name: &str) -> RecordCheck {
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
                            "the MX of {name} is {}, not {}: bounces reach Mailtrail only if \
                             that host hands them on",
                            hosts.join(", "),
                            self.helo_name
                        ),
                    )
                }
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                (false, format!("{name} has no MX record"))
            }
            Err(error) => {
                let failed = LookupFailed {
                    name: name.to_owned(),
                    error,
                };
                (false, failed.to_string())
            }
        };
        RecordCheck {
            purpose: Purpose::ReturnPath,
            name: name.to_owned(),
            ok,
            detail,
        }
    }
}

/// A DMARC record's tags that decide how mail from the domain is judged (RFC 7489 §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dmarc {
    /// `none`, `quarantine` or `reject`.
    policy: String,
    /// `aspf=s`: the envelope sender's domain must be the From domain itself.
    strict_spf: bool,
    /// `adkim=s`: the signature's `d=` must be the From domain itself.
    strict_dkim: bool,
}

/// Reads a DMARC record: `None` unless it starts with `v=DMARC1` and has a valid `p=`, as
/// receivers ignore such a record.
fn dmarc(record: &str) -> Option<Dmarc> {
    let mut tags = record
        .split(';')
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .map(|tag| {
            let (name, value) = tag.split_once('=').unwrap_or((tag, ""));
            (
                name.trim().to_ascii_lowercase(),
                value.trim().to_ascii_lowercase(),
            )
        });
    if tags.next()? != ("v".to_owned(), "dmarc1".to_owned()) {
        return None;
    }
    let (mut policy, mut strict_spf, mut strict_dkim) = (None, false, false);
    for (name, value) in tags {
        match name.as_str() {
            "p" => policy = Some(value),
            "aspf" => strict_spf = value == "s",
            "adkim" => strict_dkim = value == "s",
            _ => {}
        }
    }
    let policy = policy.filter(|p| ["none", "quarantine", "reject"].contains(&p.as_str()))?;
    Some(Dmarc {
        policy,
        strict_spf,
        strict_dkim,
    })
}

/// Whether SPF on `return_path` aligns with From addresses at `domain` under `dmarc`: always
/// when they are the same name, for a name under it only in relaxed mode.
fn spf_aligns(dmarc: &Dmarc, domain: &str, return_path: &str) -> bool {
    return_path == domain || !dmarc.strict_spf
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
        keep_published_until_ms: None,
    }
}

/// The `p=` of a DKIM key record, whitespace removed.
fn dkim_public_key(record: &str) -> Option<String> {
    record.split(';').find_map(|tag| {
        let (name, value) = tag.split_once('=')?;
        (name.trim() == "p").then(|| value.split_whitespace().collect())
    })
}

/// What a published DMARC record means for this domain's mail: its policy, and whether SPF
/// and DKIM still align; `ok` unless SPF cannot align.
fn dmarc_detail(dmarc: &Dmarc, domain: &SendingDomain) -> (bool, String) {
    let policy = format!("policy p={}", dmarc.policy);
    // DKIM signs with d=DOMAIN, the From domain itself: aligned even with adkim=s.
    let dkim = if dmarc.strict_dkim {
        "DKIM aligns (adkim=s, and the signature's d= is the From domain itself)"
    } else {
        "DKIM aligns"
    };
    if spf_aligns(dmarc, &domain.domain, &domain.return_path) {
        (
            true,
            format!("{policy}; SPF on {} aligns, and {dkim}", domain.return_path),
        )
    } else {
        (
            false,
            format!(
                "{policy}; aspf=s: SPF on the return path {} does not align with {} in strict \
                 mode, so DMARC rests on DKIM alone ({dkim}). Remove aspf=s (relaxed is the \
                 default) for SPF to count",
                domain.return_path, domain.domain
            ),
        )
    }
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

    /// What each DKIM record says of its key: an Ed25519 key alone warns that Gmail does not
    /// verify it, one beside RSA says why it is there, an RSA one how to split it.
    #[test]
    fn each_dkim_record_says_what_its_key_is_for() {
        let domain = |algorithm: &str| SendingDomain {
            id: "d".into(),
            account_id: "a".into(),
            domain: "shop.test".into(),
            selector: "mt1".into(),
            algorithm: algorithm.into(),
            private_key_pem: String::new(),
            public_key_b64: "AAAA".into(),
            return_path: "bounces.shop.test".into(),
            created_at_ms: 0,
            verified_at_ms: None,
            last_check_at_ms: None,
            last_check: None,
            next_key: None,
            retired_keys: None,
        };
        let key = |selector: &str, kind| PublishedKey {
            selector: selector.into(),
            kind,
            public_key_b64: "AAAA".into(),
        };
        let cases = [
            (
                "ed25519",
                key("mt1", "ed25519"),
                "Gmail, Yahoo and most receivers do not verify",
            ),
            (
                "rsa+ed25519",
                key("mt1-ed25519", "ed25519"),
                "beside the RSA one",
            ),
            ("rsa+ed25519", key("mt1", "rsa"), "RSA-2048"),
            ("rsa", key("mt1", "rsa"), "at most 255 characters"),
        ];
        for (algorithm, key, said) in cases {
            let selector = key.selector.clone();
            let kind = key.kind;
            let record = dkim_record(&domain(algorithm), key);
            assert!(
                record.description.contains(said),
                "{algorithm}: {}",
                record.description
            );
            assert_eq!(record.name, format!("{selector}._domainkey.shop.test"));
            assert_eq!(record.value, format!("v=DKIM1; k={kind}; p=AAAA"));
            assert!(record.required);
        }
        assert!(
            !dkim_record(&domain("rsa+ed25519"), key("mt1-ed25519", "ed25519"))
                .description
                .contains("Gmail, Yahoo"),
            "no warning when RSA signs too"
        );
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

    #[test]
    fn a_return_path_is_the_domain_or_a_name_under_it() {
        for (requested, expected) in [
            (None, Ok("bounces.shop.example")),
            (Some("  "), Ok("bounces.shop.example")),
            (Some("Mail.Shop.Example."), Ok("mail.shop.example")),
            (Some("a.b.shop.example"), Ok("a.b.shop.example")),
            (Some("shop.example"), Ok("shop.example")),
            (Some("bounces.other.example"), Err(())),
            (Some("evilshop.example"), Err(())),
            (Some("shop.example.evil"), Err(())),
            (Some("x@bounces.shop.example"), Err(())),
        ] {
            assert_eq!(
                return_path("shop.example", requested).map_err(|_| ()),
                expected.map(str::to_owned),
                "{requested:?}"
            );
        }
    }

    #[test]
    fn dmarc_records_are_read_as_receivers_read_them() {
        let policy = |p: &str, strict_spf, strict_dkim| {
            Some(Dmarc {
                policy: p.into(),
                strict_spf,
                strict_dkim,
            })
        };
        for (record, expected) in [
            ("v=DMARC1; p=none", policy("none", false, false)),
            (
                "v=DMARC1;p=Reject;aspf=s;adkim=s;rua=mailto:d@shop.example",
                policy("reject", true, true),
            ),
            (
                " v = DMARC1 ; p = quarantine ; aspf = r ; ",
                policy("quarantine", false, false),
            ),
            ("v=DMARC1; sp=reject", None),
            ("v=DMARC1; p=always", None),
            ("p=none; v=DMARC1", None),
            ("v=spf1 -all", None),
        ] {
            assert_eq!(dmarc(record), expected, "{record}");
        }
        let relaxed = dmarc("v=DMARC1; p=none").unwrap();
        let strict = dmarc("v=DMARC1; p=none; aspf=s").unwrap();
        assert!(spf_aligns(&relaxed, "shop.example", "bounces.shop.example"));
        assert!(!spf_aligns(&strict, "shop.example", "bounces.shop.example"));
        assert!(spf_aligns(&strict, "shop.example", "shop.example"));
    }
}
