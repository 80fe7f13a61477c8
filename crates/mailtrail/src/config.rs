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
use mailtrail_outbound::protection::ProtectionConfig;
use mailtrail_store::retention::RetentionConfig;
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
    /// The master key secrets in the database are sealed under (created 0600 on first start
    /// if missing); `DATA_DIR/secret.key` when unset. `MAILTRAIL_SECRET_KEY` (the key itself,
    /// hex or base64) wins over it. Every node of one database needs the same key.
    pub secret_key_file: Option<PathBuf>,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// DNS servers (`ip:port`) for MX lookups instead of the system's resolver.
    pub dns_servers: Vec<SocketAddr>,
    /// Serve `/metrics` on this address only (not on `http_listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// Require `Authorization: Bearer <metrics_token>` to read `/metrics`.
    pub metrics_token: Option<String>,
    pub outbound: OutboundConfig,
    pub inbound: InboundConfig,
    pub webhooks: WebhookConfig,
    pub protection: ProtectionConfig,
    pub retention: RetentionConfig,
    pub web: mailtrail_web::WebConfig,
    pub submission: SubmissionConfig,
}

/// The `[submission]` section: where mail clients submit mail with an SMTP credential
/// (PRODUCT.md §7). Both listeners are off unless given an address; either needs the
/// certificate, since AUTH is only offered over TLS. Hostname, timeouts, connection and error
/// limits are `[inbound]`'s.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubmissionConfig {
    /// The STARTTLS listener (RFC 6409; port 587 by convention).
    pub listen: Option<SocketAddr>,
    /// The implicit-TLS listener (RFC 8314; port 465 by convention).
    pub implicit_tls_listen: Option<SocketAddr>,
    /// PEM certificate chain the listeners offer.
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key of `tls_certificate`.
    pub tls_key: Option<PathBuf>,
    /// Largest message accepted (announced as SIZE); larger ones get `552 5.3.4`.
    pub max_message_size: usize,
    /// Envelope recipients per message; more get `452 4.5.3`.
    pub max_recipients: usize,
}

impl Default for SubmissionConfig {
    fn default() -> Self {
        Self {
            listen: None,
            implicit_tls_listen: None,
            tls_certificate: None,
            tls_key: None,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
        }
    }
}

impl SubmissionConfig {
    /// The session settings of the submission listeners: `[inbound]`'s, with this section's
    /// limits and certificate.
    pub fn session(&self, inbound: &InboundConfig) -> InboundConfig {
        InboundConfig {
            max_message_size: self.max_message_size,
            max_recipients: self.max_recipients,
            tls_certificate: self.tls_certificate.clone(),
            tls_key: self.tls_key.clone(),
            ..inbound.clone()
        }
    }

    /// The TLS acceptor of the listeners: `None` when neither is on; an error saying what is
    /// missing or unusable otherwise.
    pub fn acceptor(
        &self,
        inbound: &InboundConfig,
    ) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
        if self.listen.is_none() && self.implicit_tls_listen.is_none() {
            return Ok(None);
        }
        if self.tls_certificate.is_none() || self.tls_key.is_none() {
            return Err(
                "[submission] listen and implicit_tls_listen need tls_certificate and \
                        tls_key: logins are only taken over TLS"
                    .into(),
            );
        }
        mailtrail_inbound::tls::acceptor(&self.session(inbound))
            .map_err(|e| mailtrail_domain::causes::WithCauses(&e).to_string())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8025)),
            smtp_listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            data_dir: PathBuf::from("./mailtrail-data"),
            database_url: None,
            database_max_connections: 20,
            secret_key_file: None,
            log_format: LogFormat::Text,
            dns_servers: Vec::new(),
            metrics_listen: None,
            metrics_token: None,
            outbound: OutboundConfig::default(),
            inbound: InboundConfig::default(),
            webhooks: WebhookConfig::default(),
            protection: ProtectionConfig::default(),
            retention: RetentionConfig::default(),
            web: mailtrail_web::WebConfig::default(),
            submission: SubmissionConfig::default(),
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
    "secret_key_file",
    "log_format",
    "dns_servers",
    "metrics_listen",
    "metrics_token",
];

impl Config {
    /// Where the master key file is: `secret_key_file`, or `secret.key` in `data_dir`.
    pub fn secret_key_file(&self) -> PathBuf {
        self.secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(mailtrail_store::sealed::KEY_FILE))
    }

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

/// One thing wrong with a configuration: where (`outbound.retry.first_delay`, or an
/// environment variable's name) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// Every unknown or invalid key in `file` and in the `MAILTRAIL_*` environment, not just the
/// first: each bad key is reported and taken out, and the rest checked again.
pub fn check(file: Option<&Path>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut table = toml::Table::new();
    if let Some(file) = file {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                return vec![Problem {
                    path: file.display().to_string(),
                    message: format!("cannot read it: {e}"),
                }];
            }
        };
        match text.parse::<toml::Table>() {
            Ok(parsed) => table = parsed,
            Err(e) => {
                return vec![Problem {
                    path: file.display().to_string(),
                    message: format!("not valid TOML: {}", e.message()),
                }];
            }
        }
    }
    for (name, _) in std::env::vars() {
        let Some(key) = name.strip_prefix("MAILTRAIL_") else {
            continue;
        };
        let key = key.to_lowercase();
        let known = ENV_KEYS.contains(&key.as_str()) || NOT_CONFIG_ENV.contains(&key.as_str());
        if !known {
            problems.push(Problem {
                path: name.clone(),
                message: format!(
                    "not a setting that can come from the environment (those are MAILTRAIL_ + one of {})",
                    ENV_KEYS.join(", ").to_uppercase()
                ),
            });
        }
    }
    // Each round takes out the keys serde complained about; a file has finitely many.
    for _ in 0..256 {
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(&table.to_string()))
            .merge(Env::prefixed("MAILTRAIL_").filter(|key| ENV_KEYS.iter().any(|k| key == *k)));
        let errors = match figment.extract::<Config>() {
            Ok(config) => {
                // Well-formed: now whether what it names can be used.
                if let Err(message) = mailtrail_inbound::tls::acceptor(&config.inbound)
                    .map_err(|e| mailtrail_domain::causes::WithCauses(&e).to_string())
                {
                    problems.push(Problem {
                        path: "inbound.tls_certificate".into(),
                        message,
                    });
                }
                if let Err(message) = config.submission.acceptor(&config.inbound) {
                    problems.push(Problem {
                        path: "submission.tls_certificate".into(),
                        message,
                    });
                }
                break;
            }
            Err(errors) => errors,
        };
        let mut removed_any = false;
        for error in errors {
            // For an unknown field, figment's path already ends with its name.
            let path = error.path.clone();
            problems.push(Problem {
                path: path.join("."),
                message: error.kind.to_string(),
            });
            removed_any |= remove(&mut table, &path);
        }
        if !removed_any {
            break;
        }
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    problems.dedup();
    problems
}

/// `MAILTRAIL_*` variables that are not configuration keys.
const NOT_CONFIG_ENV: &[&str] = &[
    "config",
    "log",
    "outbound_routes",
    "long_tests",
    "secret_key",
];

/// Removes the value at `path`; whether there was one.
fn remove(table: &mut toml::Table, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => table.remove(last).is_some(),
        [first, rest @ ..] => match table.get_mut(first) {
            Some(toml::Value::Table(inner)) => remove(inner, rest),
            // Inside an array or a scalar: take the whole entry out.
            Some(_) => table.remove(first).is_some(),
            None => false,
        },
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
    fn check_reports_every_bad_key_with_its_path() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "many.toml",
                "http_listn = \"0.0.0.0:9000\"\nsmtp_listen = \"nowhere\"\n\
                 [outbound]\nsessions = \"lots\"\nhelo = \"x\"\n\
                 [outbound.retry]\nfirst_delay = \"soon\"\n",
            )?;
            jail.set_env("MAILTRAIL_HTTP_LISTN", "127.0.0.1:1");
            let paths: Vec<String> = check(Some(Path::new("many.toml")))
                .into_iter()
                .map(|p| p.path)
                .collect();
            assert_eq!(
                paths,
                [
                    "MAILTRAIL_HTTP_LISTN",
                    "http_listn",
                    "outbound.helo",
                    "outbound.retry.first_delay",
                    "outbound.sessions",
                    "smtp_listen"
                ]
            );
            jail.create_file("good.toml", "http_listen = \"127.0.0.1:9000\"\n")?;
            jail.clear_env();
            assert_eq!(check(Some(Path::new("good.toml"))), []);
            jail.create_file("broken.toml", "http_listen = \n")?;
            let problems = check(Some(Path::new("broken.toml")));
            assert!(
                problems[0].message.contains("not valid TOML"),
                "{problems:?}"
            );
            // Well-formed, but naming a certificate that is not there.
            jail.create_file(
                "tls.toml",
                "[inbound]\ntls_certificate = \"nope.pem\"\ntls_key = \"nope.key\"\n",
            )?;
            let problems = check(Some(Path::new("tls.toml")));
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].path, "inbound.tls_certificate");
            assert!(problems[0].message.contains("nope.pem"), "{problems:?}");
            // A submission listener without a certificate, and a misspelt submission key.
            jail.create_file(
                "submission.toml",
                "[submission]\nlisten = \"127.0.0.1:587\"\nmax_recipient = 5\n",
            )?;
            let problems = check(Some(Path::new("submission.toml")));
            let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
            assert_eq!(
                paths,
                ["submission.max_recipient", "submission.tls_certificate"],
                "{problems:?}"
            );
            assert!(problems[1].message.contains("tls_key"), "{problems:?}");
            let config = Config::default();
            assert_eq!(config.submission.max_message_size, 25 * 1024 * 1024);
            assert_eq!(config.submission.max_recipients, 100);
            assert!(
                config
                    .submission
                    .acceptor(&config.inbound)
                    .unwrap()
                    .is_none()
            );
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
