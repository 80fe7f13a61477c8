//! Typed configuration: defaults, then a TOML file, then `MAILTRAIL_*` environment variables
//! (see [`env`]). Unknown keys are errors that name the key or the variable, so a typo never
//! goes unnoticed.

mod env;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use mailtrail_inbound::InboundConfig;
use mailtrail_outbound::OutboundConfig;
use mailtrail_outbound::protection::ProtectionConfig;
use mailtrail_store::retention::RetentionConfig;
use mailtrail_webhooks::WebhookConfig;
use serde::{Deserialize, Serialize};

use env::Environment;

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
/// (docs/api.md). Both listeners are off unless given an address; either needs the
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
    ) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
        if self.listen.is_none() && self.implicit_tls_listen.is_none() {
            return Ok(None);
        }
        if self.tls_certificate.is_none() || self.tls_key.is_none() {
            anyhow::bail!(
                "[submission] listen and implicit_tls_listen need tls_certificate and tls_key: \
                 logins are only taken over TLS"
            );
        }
        Ok(mailtrail_inbound::tls::acceptor(&self.session(inbound))?)
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

impl Config {
    /// Where the master key file is: `secret_key_file`, or `secret.key` in `data_dir`.
    pub fn secret_key_file(&self) -> PathBuf {
        self.secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(mailtrail_store::sealed::KEY_FILE))
    }

    /// The defaults, then `file`, then the environment. Any problem stops it, except a
    /// `MAILTRAIL_*` variable that names no setting: that one is left out with a warning on
    /// standard error (`config check` fails on it), so a variable a newer or older version
    /// knows does not keep a node from starting.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(file) = file {
            anyhow::ensure!(
                file.exists(),
                "config file {} does not exist",
                file.display()
            );
        }
        let table = read_file(file).map_err(|problem| anyhow::anyhow!("{problem}"))?;
        let (config, problems) = resolve(table, Environment::from_process());
        let (warnings, errors): (Vec<_>, Vec<_>) = problems
            .into_iter()
            .partition(|problem| problem.severity == Severity::Warning);
        if !errors.is_empty() {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::bail!("invalid configuration:\n  {}", list.join("\n  "));
        }
        for warning in &warnings {
            eprintln!("warning: {warning}; left out (`mailtrail config check` lists these)");
        }
        config.context("invalid configuration")
    }
}

/// How much a [`Problem`] matters to a command that is not `config check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A `MAILTRAIL_*` variable that names no setting: left out with a warning.
    Warning,
    /// Nothing runs on this configuration.
    Error,
}

/// One thing wrong with a configuration: where (`outbound.retry.first_delay`, or an
/// environment variable's name) and what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub path: String,
    pub message: String,
    pub severity: Severity,
}

impl Problem {
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            severity: Severity::Error,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every unknown or invalid key in `file` and in the `MAILTRAIL_*` environment, not just the
/// first, and whether the certificates they name can be used.
pub fn check(file: Option<&Path>) -> Vec<Problem> {
    let table = match read_file(file) {
        Ok(table) => table,
        Err(problem) => return vec![problem],
    };
    let (config, mut problems) = resolve(table, Environment::from_process());
    if let Some(config) = config {
        if let Err(e) = mailtrail_inbound::tls::acceptor(&config.inbound) {
            problems.push(Problem::error("inbound.tls_certificate", format!("{e:#}")));
        }
        if let Err(e) = config.submission.acceptor(&config.inbound) {
            problems.push(Problem::error(
                "submission.tls_certificate",
                format!("{e:#}"),
            ));
        }
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    problems.dedup();
    problems
}

/// The configuration file as a table (empty without one).
fn read_file(file: Option<&Path>) -> Result<toml::Table, Problem> {
    let Some(file) = file else {
        return Ok(toml::Table::new());
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| Problem::error(file.display().to_string(), format!("cannot read it: {e}")))?;
    text.parse::<toml::Table>().map_err(|e| {
        Problem::error(
            file.display().to_string(),
            format!("not valid TOML: {}", e.message()),
        )
    })
}

/// The configuration `table` and `environment` make over the defaults, and every problem on
/// the way: each bad key is reported, taken out, and the rest tried again, so one typo does
/// not hide the next. `None` when what is left still does not make a configuration.
fn resolve(mut table: toml::Table, mut environment: Environment) -> (Option<Config>, Vec<Problem>) {
    let mut problems = std::mem::take(&mut environment.problems);
    // Each round takes out at least one key; the sources have finitely many.
    for _ in 0..256 {
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(&table.to_string()))
            .merge(&environment);
        // Lossy: a variable's text becomes the number or boolean its key wants.
        let errors = match figment.extract_lossy::<Config>() {
            Ok(mut config) => {
                let routes = std::mem::take(&mut environment.legacy_routes);
                config.outbound.routes.extend(routes);
                return (Some(config), problems);
            }
            Err(errors) => errors,
        };
        let mut removed_any = false;
        for error in errors {
            // For an unknown field, figment's path already ends with its name.
            if let Some(variable) = environment.holding(&error.path).map(str::to_owned) {
                problems.push(variable_problem(&variable, &error.kind));
                environment.remove(&variable);
                removed_any = true;
            } else {
                problems.push(Problem::error(error.path.join("."), error.kind.to_string()));
                removed_any |= remove(&mut table, &error.path);
            }
        }
        if !removed_any {
            break;
        }
    }
    (None, problems)
}

/// What is wrong with `variable`: it names no setting (a warning), or its value does not fit.
fn variable_problem(variable: &str, kind: &figment::error::Kind) -> Problem {
    match kind {
        figment::error::Kind::UnknownField(..) => Problem {
            path: variable.to_owned(),
            message: format!("names no setting ({kind})"),
            severity: Severity::Warning,
        },
        _ => Problem::error(variable, kind.to_string()),
    }
}

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

    #[test]
    fn nested_keys_come_from_the_environment_as_their_types() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "mailtrail.toml",
                "[outbound]\nhelo_name = \"file.test\"\nsessions = 4\n\
                 [outbound.routes]\n\"file.test\" = \"127.0.0.1:1\"\n",
            )?;
            jail.create_file("relay-password", "p4ss word\n")?;
            for (name, value) in [
                ("MAILTRAIL_OUTBOUND__HELO_NAME", "mta.env.test"),
                ("MAILTRAIL_OUTBOUND__SESSIONS", "12"),
                ("MAILTRAIL_OUTBOUND__REQUIRE_TLS", "true"),
                (
                    "MAILTRAIL_OUTBOUND__MESSAGES_PER_SECOND_PER_DESTINATION",
                    "2.5",
                ),
                ("MAILTRAIL_OUTBOUND__RETRY__FIRST_DELAY", "90s"),
                (
                    "MAILTRAIL_OUTBOUND__ROUTES",
                    "{\"b.test\" = \"127.0.0.1:2\"}",
                ),
                ("MAILTRAIL_OUTBOUND_ROUTES", "c.test=127.0.0.1:3"),
                (
                    "MAILTRAIL_OUTBOUND__RELAY__ADDRESS",
                    "smtp.provider.test:587",
                ),
                ("MAILTRAIL_OUTBOUND__RELAY__TLS", "implicit"),
                ("MAILTRAIL_OUTBOUND__RELAY__PASSWORD_FILE", "relay-password"),
                ("MAILTRAIL_SUBMISSION__LISTEN", "127.0.0.1:5870"),
                ("MAILTRAIL_METRICS_TOKEN", "12345"),
                ("MAILTRAIL_LOG_FORMAT", "json"),
                ("MAILTRAIL_PROTECTION__ENABLED", "false"),
                ("MAILTRAIL_OUTBOUND__DKIM__SHOP.TEST__SELECTOR", "mt1"),
                (
                    "MAILTRAIL_OUTBOUND__DKIM__SHOP.TEST__PRIVATE_KEY",
                    "/keys/shop.pem",
                ),
                (
                    "MAILTRAIL_OUTBOUND__DKIM",
                    "{\"news.test\" = {selector = \"mt2\", private_key = \"/keys/news.pem\"}}",
                ),
            ] {
                jail.set_env(name, value);
            }
            let config = Config::load(Some(Path::new("mailtrail.toml"))).unwrap();
            let outbound = &config.outbound;
            assert_eq!(outbound.helo_name, "mta.env.test");
            assert_eq!(outbound.sessions, 12);
            assert!(outbound.require_tls);
            assert_eq!(outbound.messages_per_second_per_destination, Some(2.5));
            assert_eq!(
                outbound.retry.first_delay,
                std::time::Duration::from_secs(90)
            );
            // A table from the environment adds to the file's, and so does the legacy list.
            let routes: Vec<(&str, &str)> = outbound
                .routes
                .iter()
                .map(|(domain, to)| (domain.as_str(), to.as_str()))
                .collect();
            assert_eq!(
                routes,
                [
                    ("b.test", "127.0.0.1:2"),
                    ("c.test", "127.0.0.1:3"),
                    ("file.test", "127.0.0.1:1")
                ]
            );
            let relay = outbound.relay.as_ref().unwrap();
            assert_eq!(relay.address, "smtp.provider.test:587");
            assert_eq!(relay.password.as_deref(), Some("p4ss word"));
            assert_eq!(relay.tls, mailtrail_outbound::config::RelayTls::Implicit);
            assert_eq!(
                config.submission.listen,
                Some("127.0.0.1:5870".parse().unwrap())
            );
            assert_eq!(config.metrics_token.as_deref(), Some("12345"));
            assert_eq!(config.log_format, LogFormat::Json);
            assert!(!config.protection.enabled);
            // A map's keys (domains) from a variable's name, or from a table it holds.
            let dkim = &outbound.dkim;
            assert_eq!(dkim["shop.test"].selector, "mt1");
            assert_eq!(
                dkim["shop.test"].private_key,
                PathBuf::from("/keys/shop.pem")
            );
            assert_eq!(dkim["news.test"].selector, "mt2");
            Ok(())
        });
    }

    #[test]
    fn a_variable_naming_no_key_is_left_out_and_one_that_does_not_fit_stops_the_load() {
        Jail::expect_with(|jail| {
            jail.set_env("MAILTRAIL_OUTBOUND__HELO_NAM", "typo.test");
            jail.set_env("MAILTRAIL_OUTBOUND__HELO_NAME", "mta.env.test");
            let config = Config::load(None).unwrap();
            assert_eq!(config.outbound.helo_name, "mta.env.test");
            let problems = check(None);
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].path, "MAILTRAIL_OUTBOUND__HELO_NAM");
            assert_eq!(problems[0].severity, Severity::Warning);
            assert!(problems[0].message.contains("helo_nam"), "{problems:?}");

            jail.set_env("MAILTRAIL_OUTBOUND__RETRY__MAX_DELAY", "soonish");
            jail.set_env("MAILTRAIL_INBOUND__MAX_CONNECTIONS", "-1");
            let error = format!("{:#}", Config::load(None).unwrap_err());
            assert!(
                error.contains("MAILTRAIL_OUTBOUND__RETRY__MAX_DELAY"),
                "{error}"
            );
            assert!(
                error.contains("MAILTRAIL_INBOUND__MAX_CONNECTIONS"),
                "{error}"
            );
            assert!(
                !error.contains("HELO_NAM"),
                "a warning is not an error: {error}"
            );
            Ok(())
        });
    }

    /// Every key the defaults hold (sections included), as `section.key` paths.
    fn key_paths(table: &toml::Table, prefix: &str, paths: &mut Vec<String>) {
        for (key, value) in table {
            let path = format!("{prefix}{key}");
            if let toml::Value::Table(inner) = value {
                key_paths(inner, &format!("{path}."), paths);
            }
            paths.push(path);
        }
    }

    #[test]
    fn the_user_guide_documents_every_key() {
        let guide = include_str!("../../../docs/configuration.md");
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let mut paths = Vec::new();
        key_paths(&defaults, "", &mut paths);
        assert!(paths.len() > 60, "{paths:?}");
        let missing: Vec<&String> = paths
            .iter()
            .filter(|path| {
                let key = path.rsplit('.').next().unwrap();
                !guide.contains(&format!("`{key}`")) && !guide.contains(&format!("[{path}]"))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "not in docs/configuration.md: {missing:?}"
        );
    }
}
