//! Where a webhook may be POSTed. A hook's URL is chosen by an account admin, but the POST
//! leaves from the Mailtrail host: without these checks a hook could reach the host's own
//! loopback services, the LAN behind it or the cloud metadata endpoint, and the deliveries
//! log would report what each port answered.
//!
//! Two places apply the same rules: creation refuses a URL whose literal address, name or
//! resolved addresses are not public ([`Targets::check`]), and the dispatcher resolves the name
//! itself at connect time and connects only to allowed addresses ([`Targets`] is its reqwest
//! resolver), so a name re-pointed at loopback after creation (DNS rebinding) is blocked too.
//!
//! `[webhooks] allow_private_targets = true` lets loopback, private and link-local addresses
//! through for a receiver on the operator's LAN; unspecified, multicast, broadcast,
//! documentation and reserved addresses and the cloud metadata endpoints stay refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_resolver::Resolver;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use mailtrail_outbound::resolve::DnsClientError;
use url::{Host, Url};

use crate::WebhookConfig;

/// What an address (or a name) is, for a webhook's purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Reachable on the internet: always allowed.
    Public,
    /// Loopback, private, link-local and the like: allowed only with `allow_private_targets`.
    Private(&'static str),
    /// Never a receiver (unspecified, multicast, metadata…): refused whatever the setting.
    Forbidden(&'static str),
}

use AddressClass::{Forbidden, Private, Public};

/// The cloud instance metadata endpoints, which hand out the host's credentials to whoever
/// asks from it: AWS, GCP, Azure, Oracle, OpenStack (169.254.169.254), AWS ECS task metadata,
/// Alibaba, AWS over IPv6.
const METADATA_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(100, 100, 100, 200),
];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254);
const METADATA_NAMES: [&str; 4] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
];

/// Whether `ip` is a public unicast address, per the IANA special-purpose registries. IPv6
/// forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by it.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if METADATA_V4.contains(&ip) {
        Forbidden("cloud metadata")
    } else if a == 0 {
        Forbidden("unspecified, 0.0.0.0/8")
    } else if ip.is_broadcast() {
        Forbidden("broadcast")
    } else if ip.is_multicast() {
        Forbidden("multicast")
    } else if ip.is_documentation() {
        Forbidden("documentation")
    } else if a >= 240 || (a, b, c) == (192, 88, 99) {
        Forbidden("reserved")
    } else if (a, b, c) == (192, 0, 0) {
        Forbidden("IETF protocol assignment, 192.0.0.0/24")
    } else if ip.is_loopback() {
        Private("loopback")
    } else if ip.is_private() {
        Private("private, RFC 1918")
    } else if ip.is_link_local() {
        Private("link-local")
    } else if a == 100 && (b & 0xc0) == 64 {
        Private("carrier-grade NAT, 100.64.0.0/10")
    } else if a == 198 && (b & 0xfe) == 18 {
        Private("benchmarking, 198.18.0.0/15")
    } else {
        Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    let embedded = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        classify_v4(Ipv4Addr::new(a, b, c, d))
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        classify_v4(v4)
    } else if ip.is_unspecified() {
        Forbidden("unspecified")
    } else if ip.is_loopback() {
        Private("loopback")
    } else if s[..6] == [0; 6] {
        // IPv4-compatible (::a.b.c.d, deprecated).
        embedded(s[6], s[7])
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64: the gateway connects to the embedded IPv4 address.
        embedded(s[6], s[7])
    } else if s[..3] == [0x64, 0xff9b, 1] {
        Private("local-use NAT64, 64:ff9b:1::/48")
    } else if s[0] == 0x2002 {
        // 6to4 carries the IPv4 address of the other end.
        embedded(s[1], s[2])
    } else if ip == METADATA_V6 {
        Forbidden("cloud metadata")
    } else if ip.is_multicast() {
        Forbidden("multicast")
    } else if (s[0], s[1]) == (0x2001, 0xdb8) || (s[0] == 0x3fff && s[1] < 0x1000) {
        Forbidden("documentation")
    } else if s[0] == 0x2001 && s[1] < 0x200 {
        // Teredo, benchmarking, ORCHID and the other protocol assignments.
        Forbidden("IETF protocol assignment, 2001::/23")
    } else if ip.is_unique_local() {
        Private("unique local, fc00::/7")
    } else if ip.is_unicast_link_local() {
        Private("link-local")
    } else if (s[0] & 0xffc0) == 0xfec0 {
        Private("site-local, fec0::/10")
    } else if (s[0] & 0xe000) != 0x2000 {
        Forbidden("reserved, outside 2000::/3")
    } else {
        Public
    }
}

/// Names that are not public whatever a resolver says of them (RFC 6761, RFC 8375, ICANN's
/// `.internal`), and the metadata services' names.
pub fn classify_name(host: &str) -> AddressClass {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let under = |zone: &str| host == zone || host.ends_with(&format!(".{zone}"));
    if METADATA_NAMES.contains(&host.as_str()) {
        Forbidden("cloud metadata")
    } else if under("localhost") {
        Private("loopback")
    } else if ["internal", "local", "localdomain", "home.arpa"]
        .into_iter()
        .any(under)
    {
        Private("private-use name")
    } else {
        Public
    }
}

/// Why a webhook URL is refused, or its delivery blocked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("is not a URL: {0}")]
    NotAUrl(String),
    #[error("must be an http:// or https:// URL with a host")]
    Scheme,
    #[error("must not hold a user name or password (user@host): put credentials in the path")]
    Userinfo,
    #[error("{host} is not a public address ({class}){}", hint(*.private))]
    Address {
        host: String,
        class: &'static str,
        private: bool,
    },
    /// Says which class of address a name resolved to, never the address: an admin must not
    /// be able to map internal DNS (the system's search domains included) through hook URLs.
    #[error("{host} resolves to an address that is not public ({class}){}", hint(*.private))]
    Resolved {
        host: String,
        class: &'static str,
        private: bool,
    },
    #[error("{host} does not resolve: {error}")]
    Unresolved { host: String, error: String },
}

impl Refused {
    /// Whether the address itself is refused, rather than DNS not answering: a delivery is
    /// blocked for the first and retried for the second.
    pub fn is_blocked(&self) -> bool {
        !matches!(self, Refused::Unresolved { .. })
    }
}

fn hint(private: bool) -> &'static str {
    if private {
        "; an operator can allow private targets with [webhooks] allow_private_targets = true"
    } else {
        ""
    }
}

/// The webhook target policy and the resolver it checks names with; cheap to clone.
#[derive(Clone)]
pub struct Targets {
    allow_private: bool,
    dns: Resolver<TokioRuntimeProvider>,
}

impl Targets {
    /// Resolves with `dns_servers` when given (`ip:port`), else with the system's resolver.
    /// Answers are cached for their TTL: every address connected to is checked whether it
    /// came from the cache or not, so the cache only spares the resolver one query per POST.
    pub fn new(config: &WebhookConfig, dns_servers: &[SocketAddr]) -> Result<Self, DnsClientError> {
        Ok(Self {
            allow_private: config.allow_private_targets,
            dns: mailtrail_outbound::resolve::dns_client(dns_servers, true)?,
        })
    }

    /// `url` parsed as the HTTP client will (WHATWG), with its scheme, user info, literal
    /// address and name checked; no DNS.
    pub fn parse(&self, url: &str) -> Result<Url, Refused> {
        let parsed = Url::parse(url).map_err(|e| Refused::NotAUrl(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refused::Scheme);
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Refused::Userinfo);
        }
        let class = match parsed.host() {
            None => return Err(Refused::Scheme),
            Some(Host::Ipv4(ip)) => classify(ip.into()),
            Some(Host::Ipv6(ip)) => classify(ip.into()),
            Some(Host::Domain(name)) => classify_name(name),
        };
        self.allowed(class)
            .map_err(|(class, private)| Refused::Address {
                host: parsed.host_str().unwrap_or_default().to_owned(),
                class,
                private,
            })?;
        Ok(parsed)
    }

    /// [`Targets::parse`], then every address the name resolves to must be allowed: what
    /// creating a hook checks.
    pub async fn check(&self, url: &Url) -> Result<(), Refused> {
        if let Some(Host::Domain(name)) = url.host() {
            let ips = self.lookup(name).await?;
            if let Some(refused) = ips.iter().find_map(|ip| self.refuse(name, *ip)) {
                return Err(refused);
            }
        }
        Ok(())
    }

    /// The addresses `name` resolves to that may be connected to; an error when there are
    /// none: what each delivery connects to.
    pub async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, Refused> {
        let ips = self.lookup(name).await?;
        let refused = ips.iter().find_map(|ip| self.refuse(name, *ip));
        let allowed: Vec<IpAddr> = ips
            .into_iter()
            .filter(|ip| self.allowed(classify(*ip)).is_ok())
            .collect();
        match refused {
            Some(refused) if allowed.is_empty() => Err(refused),
            _ => Ok(allowed),
        }
    }

    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, Refused> {
        let unresolved = |error: String| Refused::Unresolved {
            host: name.to_owned(),
            error,
        };
        let ips: Vec<IpAddr> = self
            .dns
            .lookup_ip(name)
            .await
            .map_err(|e| unresolved(e.to_string()))?
            .iter()
            .collect();
        if ips.is_empty() {
            return Err(unresolved("no address".into()));
        }
        Ok(ips)
    }

    fn refuse(&self, host: &str, ip: IpAddr) -> Option<Refused> {
        let (class, private) = self.allowed(classify(ip)).err()?;
        Some(Refused::Resolved {
            host: host.to_owned(),
            class,
            private,
        })
    }

    /// `Err((why, whether allow_private_targets would allow it))`.
    fn allowed(&self, class: AddressClass) -> Result<(), (&'static str, bool)> {
        match class {
            Public => Ok(()),
            Private(_) if self.allow_private => Ok(()),
            Private(why) => Err((why, true)),
            Forbidden(why) => Err((why, false)),
        }
    }
}

/// The dispatcher's resolver: only allowed addresses reach the connector.
impl reqwest::dns::Resolve for Targets {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let targets = self.clone();
        Box::pin(async move {
            let ips = targets.addresses(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        let table: &[(&str, &str)] = &[
            ("8.8.8.8", "public"),
            ("93.184.215.14", "public"),
            ("2606:4700:4700::1111", "public"),
            ("2a00:1450:4001:82a::200e", "public"),
            ("::ffff:8.8.8.8", "public"),
            ("64:ff9b::808:808", "public"),
            ("2002:808:808::1", "public"),
            ("127.0.0.1", "private"),
            ("127.255.255.254", "private"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.1.1", "private"),
            ("100.64.0.1", "private"),
            ("100.127.255.255", "private"),
            ("198.18.0.1", "private"),
            ("198.19.255.255", "private"),
            ("::1", "private"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("fe80::1", "private"),
            ("febf::1", "private"),
            ("fec0::1", "private"),
            ("::ffff:127.0.0.1", "private"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "private"),
            ("64:ff9b::7f00:1", "private"),
            ("64:ff9b::a00:1", "private"),
            ("64:ff9b:1::1", "private"),
            ("2002:7f00:1::1", "private"),
            ("2002:c0a8:101::1", "private"),
            ("169.254.169.254", "forbidden"),
            ("169.254.170.2", "forbidden"),
            ("100.100.100.200", "forbidden"),
            ("fd00:ec2::254", "forbidden"),
            ("::ffff:169.254.169.254", "forbidden"),
            ("64:ff9b::a9fe:a9fe", "forbidden"),
            ("0.0.0.0", "forbidden"),
            ("0.1.2.3", "forbidden"),
            ("::", "forbidden"),
            ("::ffff:0.0.0.0", "forbidden"),
            ("255.255.255.255", "forbidden"),
            ("224.0.0.1", "forbidden"),
            ("239.255.255.250", "forbidden"),
            ("ff02::1", "forbidden"),
            ("ff05::1:3", "forbidden"),
            ("192.0.2.1", "forbidden"),
            ("198.51.100.7", "forbidden"),
            ("203.0.113.10", "forbidden"),
            ("2001:db8::1", "forbidden"),
            ("3fff::1", "forbidden"),
            ("240.0.0.1", "forbidden"),
            ("192.88.99.1", "forbidden"),
            ("192.0.0.8", "forbidden"),
            ("2001::1", "forbidden"),
            ("2001:2::1", "forbidden"),
            ("100::1", "forbidden"),
            ("4000::1", "forbidden"),
        ];
        for (ip, expected) in table {
            let class = classify(ip.parse().unwrap());
            let got = match class {
                Public => "public",
                Private(_) => "private",
                Forbidden(_) => "forbidden",
            };
            assert_eq!(got, *expected, "{ip}: {class:?}");
        }
    }

    #[test]
    fn loopback_and_private_use_names_are_private_and_metadata_names_forbidden() {
        for (name, expected) in [
            ("crm.example", Public),
            ("localhost.example", Public),
            ("internal.example", Public),
            ("localhost", Private("loopback")),
            ("LOCALHOST.", Private("loopback")),
            ("api.localhost", Private("loopback")),
            ("crm.internal", Private("private-use name")),
            ("printer.local", Private("private-use name")),
            ("nas.home.arpa", Private("private-use name")),
            ("metadata.google.internal", Forbidden("cloud metadata")),
            ("metadata.google.internal.", Forbidden("cloud metadata")),
            ("metadata", Forbidden("cloud metadata")),
        ] {
            assert_eq!(classify_name(name), expected, "{name}");
        }
    }

    fn targets(allow_private: bool) -> Targets {
        let config = WebhookConfig {
            allow_private_targets: allow_private,
            ..WebhookConfig::default()
        };
        Targets::new(&config, &["127.0.0.1:9".parse().unwrap()]).unwrap()
    }

    #[tokio::test]
    async fn every_spelling_of_an_internal_address_is_refused_before_any_lookup() {
        let strict = targets(false);
        let lenient = targets(true);
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://017700000001/",
            "http://0177.0.0.1/",
            "http://127%2e0%2e0%2e1/",
            "http://127\u{3002}0\u{3002}0\u{3002}1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]:8025/",
            "http://10.0.0.1/",
            "http://192.168.0.1:8080/",
            "http://172.16.0.1/",
            "http://[fd12::1]/",
            "http://[fe80::1]/",
            "http://169.254.1.1/",
            "http://good.example@127.0.0.1/",
            "http://localhost:8025/",
            "http://LocalHost./",
            "http://local%68ost/",
            "http://api.localhost/",
            "http://crm.internal/",
        ] {
            assert!(strict.parse(url).is_err(), "{url} is refused");
        }
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://0.0.0.0:8025/",
            "http://0/",
            "http://[::]/",
            "http://255.255.255.255/",
            "http://224.0.0.1/",
            "http://[ff02::1]/",
        ] {
            assert!(strict.parse(url).is_err(), "{url} is refused");
            assert!(
                lenient.parse(url).is_err(),
                "{url} is refused even on a LAN"
            );
        }
        for url in [
            "ftp://x.example/",
            "javascript:alert(1)",
            "/relative",
            "http://",
        ] {
            assert!(lenient.parse(url).is_err(), "{url}");
        }
        assert_eq!(
            lenient.parse("http://user:pw@crm.example/").unwrap_err(),
            Refused::Userinfo
        );
        assert!(strict.parse("https://crm.example/hooks").is_ok());
        assert!(strict.parse("http://8.8.8.8:8080/h?x=1").is_ok());
        assert_eq!(
            lenient.parse("http://2130706433:9/h").unwrap().as_str(),
            "http://127.0.0.1:9/h",
            "the URL the client connects to is the normalised one"
        );
        let message = strict.parse("http://0x7f.1/").unwrap_err().to_string();
        assert!(
            message.starts_with("127.0.0.1 is not a public address (loopback)")
                && message.contains("allow_private_targets"),
            "{message}"
        );
    }
}
