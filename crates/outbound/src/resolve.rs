//! Where mail for a domain goes (RFC 5321 §5.1): a configured route, the relay, or the
//! domain's MX hosts in preference order, falling back to its own A/AAAA records when it has
//! no MX. A null MX (RFC 7505) and a domain that does not exist are permanent; a DNS server
//! that does not answer is temporary.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::Resolver as Hickory;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use mailtrail_domain::Reason;

use crate::OutboundConfig;

/// One address to try, with the host name it was found under (for TLS and the Status text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Permanent: no mail can ever be delivered to this domain.
    #[error("{detail}")]
    Permanent { reason: Reason, detail: String },
    /// Temporary: try again later.
    #[error("{detail}")]
    Temporary { detail: String },
}

/// Why a DNS client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DnsClientError {
    #[error("cannot read the system DNS configuration")]
    SystemConfiguration(#[source] NetError),
    #[error("cannot start the DNS resolver")]
    Start(#[source] NetError),
}

/// The route key for every domain without a route of its own (after the relay, if any).
pub const CATCH_ALL: &str = "*";

pub struct Resolver {
    dns: Hickory<TokioRuntimeProvider>,
    routes: std::collections::BTreeMap<String, String>,
    relay: Option<String>,
    mx_port: u16,
}

/// A DNS client of `dns_servers` when given (`ip:port`), else of the system's resolver
/// configuration. Without `cache`, every lookup asks the servers: a record published a moment
/// ago is seen at once.
pub fn dns_client(
    dns_servers: &[SocketAddr],
    cache: bool,
) -> Result<Hickory<TokioRuntimeProvider>, DnsClientError> {
    let mut builder = if dns_servers.is_empty() {
        Hickory::builder_tokio().map_err(DnsClientError::SystemConfiguration)?
    } else {
        let servers = dns_servers
            .iter()
            .map(|server| {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                let mut config = NameServerConfig::udp_and_tcp(server.ip());
                config.connections = vec![udp, tcp];
                config
            })
            .collect();
        Hickory::builder_with_config(
            ResolverConfig::from_parts(None, vec![], servers),
            TokioRuntimeProvider::default(),
        )
    };
    let options = builder.options_mut();
    options.timeout = Duration::from_secs(3);
    options.attempts = 2;
    if !cache {
        options.cache_size = 0;
        options.positive_max_ttl = Some(Duration::ZERO);
        options.negative_max_ttl = Some(Duration::ZERO);
    }
    builder.build().map_err(DnsClientError::Start)
}

impl Resolver {
    /// Uses `dns_servers` when given (`ip:port`), else the system's resolver configuration.
    pub fn new(
        config: &OutboundConfig,
        dns_servers: &[SocketAddr],
    ) -> Result<Self, DnsClientError> {
        Ok(Self {
            dns: dns_client(dns_servers, true)?,
            routes: config.routes.clone(),
            relay: config.relay.as_ref().map(|r| r.address.clone()),
            mx_port: config.mx_port,
        })
    }

    /// Whether mail goes to a relay (whose 250 is recorded as `relayed`).
    pub fn is_relay(&self) -> bool {
        self.relay.is_some()
    }

    /// The addresses to try, best first.
    pub async fn targets(&self, domain: &str) -> Result<Vec<Target>, ResolveError> {
        let route = self
            .routes
            .get(domain)
            .or(self.relay.as_ref())
            .or_else(|| self.routes.get(CATCH_ALL));
        if let Some(route) = route {
            return self.host_port(route).await;
        }
        let exchanges = match self.dns.mx_lookup(domain).await {
            Ok(lookup) => {
                let mut records: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        hickory_resolver::proto::rr::RData::MX(mx) => {
                            Some((mx.preference, mx.exchange.to_utf8()))
                        }
                        _ => None,
                    })
                    .collect();
                if records
                    .iter()
                    .any(|(_, host)| host == "." || host.is_empty())
                {
                    return Err(ResolveError::Permanent {
                        reason: Reason::NotAccept,
                        detail: format!("{domain} does not accept mail (null MX, RFC 7505)"),
                    });
                }
                records.sort();
                records.into_iter().map(|(_, host)| host).collect()
            }
            Err(e) if e.is_nx_domain() => return Err(no_such_domain(domain)),
            Err(e) if e.is_no_records_found() => vec![domain.to_owned()],
            Err(e) => return Err(temporary(domain, &e)),
        };
        let mut targets = Vec::new();
        let mut last_error = None;
        for host in &exchanges {
            match self.dns.lookup_ip(host.as_str()).await {
                Ok(ips) => targets.extend(ips.iter().map(|ip| Target {
                    host: host.trim_end_matches('.').to_owned(),
                    addr: SocketAddr::new(ip, self.mx_port),
                })),
                Err(e) => last_error = Some(e),
            }
        }
        match last_error {
            _ if !targets.is_empty() => Ok(targets),
            // The domain exists but neither it nor its MX hosts have an address.
            Some(e) if e.is_nx_domain() || e.is_no_records_found() => {
                if exchanges == [domain.to_owned()] {
                    Err(no_such_domain(domain))
                } else {
                    Err(ResolveError::Temporary {
                        detail: format!("the MX hosts of {domain} have no address"),
                    })
                }
            }
            Some(e) => Err(temporary(domain, &e)),
            None => Err(no_such_domain(domain)),
        }
    }

    async fn host_port(&self, route: &str) -> Result<Vec<Target>, ResolveError> {
        let bad = || ResolveError::Permanent {
            reason: Reason::SystemError,
            detail: format!("the route '{route}' is not host:port"),
        };
        let (host, port) = route.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![Target {
                host: host.to_owned(),
                addr: SocketAddr::new(ip, port),
            }]);
        }
        let ips = self
            .dns
            .lookup_ip(host)
            .await
            .map_err(|e| temporary(host, &e))?;
        Ok(ips
            .iter()
            .map(|ip| Target {
                host: host.to_owned(),
                addr: SocketAddr::new(ip, port),
            })
            .collect())
    }
}

fn no_such_domain(domain: &str) -> ResolveError {
    ResolveError::Permanent {
        reason: Reason::HostUnknown,
        detail: format!("Host or domain name not found: {domain} does not exist (NXDOMAIN)"),
    }
}

fn temporary(name: &str, e: &NetError) -> ResolveError {
    ResolveError::Temporary {
        detail: format!("DNS lookup of {name} failed: {e}"),
    }
}
