//! The command line (README.md, "Command line"). Names here are a stable interface: add, never rename.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use mailtrail_domain::Role;

#[derive(Parser)]
#[command(
    name = "mailtrail",
    version,
    about = "Email delivery and tracking for CRM leads"
)]
pub struct Cli {
    /// TOML configuration file; every key can also be set as MAILTRAIL_<SECTION>__<KEY>.
    #[arg(long, global = true, env = "MAILTRAIL_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the service: the HTTP API on `http_listen` and the delivery workers.
    Serve {
        /// Send every email to built-in test mail servers on this machine that bounce,
        /// defer, complain, reply, open and click by recipient domain (see the README).
        #[arg(long)]
        sandbox: bool,
    },
    /// Queue one email (the running service delivers it).
    Send {
        #[arg(long)]
        account: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        subject: String,
        #[arg(long, required_unless_present = "html")]
        text: Option<String>,
        #[arg(long)]
        html: Option<String>,
        #[arg(long)]
        batch: Option<String>,
    },
    /// Read bounces, complaints and auto-replies.
    Bounce {
        #[command(subcommand)]
        command: BounceCommand,
    },
    /// The suppression list (operator).
    Suppression {
        #[command(subcommand)]
        command: SuppressionCommand,
    },
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// The usernames and passwords mail clients log in with for SMTP submission.
    SmtpCredential {
        #[command(subcommand)]
        command: SmtpCredentialCommand,
    },
    /// Print a new operator API key (operators act on every account).
    OperatorKey {
        #[arg(long)]
        json: bool,
    },
    /// Manage web UI logins.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage leads.
    Lead {
        #[command(subcommand)]
        command: LeadCommand,
    },
    /// Recompute every email's stage from its events and report mismatches.
    Check,
    /// Write a consistent copy of the embedded database to FILE while the service runs.
    Backup { file: PathBuf },
    /// The master key the secrets in the database are sealed under.
    SecretKey {
        #[command(subcommand)]
        command: SecretKeyCommand,
    },
    /// Copy this embedded installation into an empty PostgreSQL database (then point
    /// `database_url` at it).
    Migrate {
        /// postgres://user:password@host/database
        #[arg(long)]
        to: String,
    },
    /// Check the configuration (file and MAILTRAIL_* environment).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Mailtrail end to end in a minute: the sandbox service on a fresh database, two
    /// batches to sample leads, and the reports once every email has settled.
    Demo {
        /// Exit after printing the reports instead of leaving the service running.
        #[arg(long)]
        no_wait: bool,
    },
    /// The email report (Last Action per email) or the batch report, as a table or CSV.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Subcommand)]
pub enum SecretKeyCommand {
    /// Re-seal every secret under a new key, in one transaction; the new key replaces the
    /// key file (the old one is kept as FILE.old). Stop the service (every node) first.
    Rotate {
        /// Write the new key to this new file instead of replacing the key file (required
        /// when the key comes from MAILTRAIL_SECRET_KEY).
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Report every unknown or invalid key with its path; exit 1 if there is any.
    Check,
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// One row per email, newest first: recipient, subject, batch, sent, Last Action, reason.
    Emails {
        #[arg(long)]
        account: String,
        #[arg(long)]
        batch: Option<String>,
        /// sent, failed, delivered, opened, clicked, replied or unsubscribed.
        #[arg(long)]
        stage: Option<String>,
        /// Rows in the table (CSV prints every matching row).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        csv: bool,
    },
    /// Per batch: emails that ever reached each stage, and rates (n/a without tracking).
    Batches {
        #[arg(long)]
        account: String,
        /// Comma-separated batch names to compare; every batch when absent.
        #[arg(long)]
        batches: Option<String>,
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create an account; prints its id and its first API key (admin role), shown once.
    Create {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum SmtpCredentialCommand {
    /// Make a credential for an account; prints its username and password, shown once.
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        json: bool,
    },
    /// An account's credentials, without their passwords.
    List {
        #[arg(long)]
        account: String,
    },
    /// Stop a credential (by id) logging in.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a login; the password is read from standard input.
    Create {
        email: String,
        /// The user's account (not for operators).
        #[arg(long)]
        account: Option<String>,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
}

#[derive(Subcommand)]
pub enum LeadCommand {
    /// Import leads from a CSV file with an `email` column; other columns: first_name,
    /// last_name, permission_to_email, and any custom fields.
    Import {
        file: PathBuf,
        #[arg(long)]
        account: String,
        /// Import the valid rows and list the invalid ones, instead of importing nothing.
        #[arg(long)]
        skip_invalid: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

#[derive(Subcommand)]
pub enum SuppressionCommand {
    /// Every blocked address, newest first.
    List {
        /// Only this account's.
        #[arg(long)]
        account: Option<String>,
    },
    /// Lift a block; the reason is kept in the audit trail.
    Remove {
        address: String,
        #[arg(long)]
        account: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum BounceCommand {
    /// Classify raw messages (files or folders); one JSON object per line and recipient.
    Classify {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}
