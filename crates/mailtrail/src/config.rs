//! Typed configuration: defaults, then a TOML file, then `MAILTRAIL_<KEY>` environment
//! variables. Unknown keys in the file are errors, so a typo never goes unnoticed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use mailtrail_inbound::InboundConfig;
use mailtrail_outbound::OutboundConfig;
use mailtrail_webhooks::WebhookConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the HTTP API listens.
    pub http_listen: SocketAddr,
    /// Where the inbound SMTP server (bounces, complaints, replies) listens.
    pub smtp_listen: SocketAddr,
    /// Where the embedded SQLite database lives (when `database_url` is not set).
    pub data_dir: PathBuf,
    /// `postgres://…` to share one PostgreSQL between several nodes.
    pub database_url: Option<String>,
    /// Connections each node opens to PostgreSQL.
    pub database_max_connections: u32,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// DNS servers (`ip:port`) for MX lookups instead of the system's resolver.
    pub dns_servers: Vec<SocketAddr>,
    pub outbound: OutboundConfig,
    pub inbound: InboundConfig,
    pub webhooks: WebhookConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8025)),
            smtp_listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            data_dir: PathBuf::from("./mailtrail-data"),
            database_url: None,
            database_max_connections: 20,
            log_format: LogFormat::Text,
            dns_servers: Vec::new(),
            outbound: OutboundConfig::default(),
            inbound: InboundConfig::default(),
            webhooks: WebhookConfig::default(),
        }
    }
}

/// The keys that may come from the environment; other `MAILTRAIL_*` variables (such as
/// `MAILTRAIL_CONFIG` or `MAILTRAIL_LOG`) are not configuration keys.
const ENV_KEYS: &[&str] = &[
    "http_listen",
    "smtp_listen",
    "data_dir",
    "database_url",
    "database_max_connections",
    "log_format",
    "dns_servers",
];

impl Config {
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            anyhow::ensure!(
                file.exists(),
                "config file {} does not exist",
                file.display()
            );
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed("MAILTRAIL_").filter(|key| ENV_KEYS.iter().any(|k| key == *k)));
        let mut config: Config = figment.extract().context("invalid configuration")?;
        if let Ok(routes) = std::env::var("MAILTRAIL_OUTBOUND_ROUTES") {
            config.outbound.routes.extend(parse_routes(&routes)?);
        }
        Ok(config)
    }
}

/// `MAILTRAIL_OUTBOUND_ROUTES="example.test=127.0.0.1:2526,other.test=[::1]:25"`.
fn parse_routes(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (domain, target) = entry.split_once('=').with_context(|| {
                format!("MAILTRAIL_OUTBOUND_ROUTES: '{entry}' is not domain=host:port")
            })?;
            Ok((domain.trim().to_lowercase(), target.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
// figment's Jail closures return figment's own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn file_then_environment_override_the_defaults() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "mailtrail.toml",
                "http_listen = \"0.0.0.0:9000\"\ndata_dir = \"/var/lib/mailtrail\"\n",
            )?;
            jail.set_env("MAILTRAIL_HTTP_LISTEN", "127.0.0.1:9999");
            jail.set_env("MAILTRAIL_LOG", "debug");
            jail.set_env("MAILTRAIL_DNS_SERVERS", "[127.0.0.1:5353]");
            jail.set_env(
                "MAILTRAIL_OUTBOUND_ROUTES",
                "a.test=127.0.0.1:2526, B.test=[::1]:25",
            );
            let config = Config::load(Some(Path::new("mailtrail.toml"))).unwrap();
            assert_eq!(config.http_listen.to_string(), "127.0.0.1:9999");
            assert_eq!(config.data_dir, PathBuf::from("/var/lib/mailtrail"));
            assert_eq!(config.database_url, None);
            assert_eq!(config.dns_servers, ["127.0.0.1:5353".parse().unwrap()]);
            assert_eq!(config.outbound.routes["a.test"], "127.0.0.1:2526");
            assert_eq!(config.outbound.routes["b.test"], "[::1]:25");
            Ok(())
        });
    }

    #[test]
    fn unknown_and_invalid_keys_are_errors_that_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "http_listn = \"0.0.0.0:9000\"\n")?;
            let error = format!(
                "{:#}",
                Config::load(Some(Path::new("typo.toml"))).unwrap_err()
            );
            assert!(error.contains("http_listn"), "{error}");

            jail.create_file("bad.toml", "http_listen = \"not an address\"\n")?;
            let error = format!(
                "{:#}",
                Config::load(Some(Path::new("bad.toml"))).unwrap_err()
            );
            assert!(error.contains("http_listen"), "{error}");

            let error = format!(
                "{:#}",
                Config::load(Some(Path::new("missing.toml"))).unwrap_err()
            );
            assert!(error.contains("does not exist"), "{error}");
            Ok(())
        });
    }
}
