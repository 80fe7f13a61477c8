//! One module per command of the command line (README.md), each a thin layer over the library crates.

mod accounts;
mod bounce;
mod check;
mod demo;
mod import;
mod moving;
mod report;
mod secret_key;
mod send;
mod serve;
mod smtp_credential;
mod suppression;

use std::process::ExitCode;

use anyhow::Context;
use mailtrail_store::{MasterKey, Store};

use crate::cli::{
    AccountCommand, BounceCommand, Command, LeadCommand, ReportCommand, SecretKeyCommand,
    SmtpCredentialCommand, SuppressionCommand, UserCommand,
};
use crate::config::Config;

pub async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    // Classifying files needs no database.
    if let Command::Bounce {
        command: BounceCommand::Classify { paths },
    } = &command
    {
        return bounce::classify(paths);
    }
    // The demo brings its own fresh database.
    if let Command::Demo { no_wait } = command {
        return demo::run(&config, no_wait).await;
    }
    let (key, source) = secret_key::load(&config)?;
    let store = open_store(&config, key.clone()).await?;
    if let Command::SecretKey {
        command: SecretKeyCommand::Rotate { new_key_file },
    } = &command
    {
        return secret_key::rotate(&config, store, (&key, &source), new_key_file.as_deref()).await;
    }
    let outcome = match command {
        Command::Serve { sandbox } => serve::run(&config, store.clone(), sandbox).await,
        Command::Account {
            command: AccountCommand::Create { name, json },
        } => accounts::create_account(&store, &name, json).await,
        Command::SmtpCredential { command } => match command {
            SmtpCredentialCommand::Create { account, json } => {
                smtp_credential::create(&store, &account, json).await
            }
            SmtpCredentialCommand::List { account } => {
                smtp_credential::list(&store, &account).await
            }
            SmtpCredentialCommand::Revoke { id } => smtp_credential::revoke(&store, &id).await,
        },
        Command::OperatorKey { json } => accounts::operator_key(&store, json).await,
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    account,
                    role,
                },
        } => accounts::create_user(&store, &email, account.as_deref(), role).await,
        Command::Lead {
            command:
                LeadCommand::Import {
                    file,
                    account,
                    skip_invalid,
                },
        } => import::run(&store, &file, &account, skip_invalid).await,
        Command::Check => check::run(&store).await,
        Command::Backup { file } => moving::backup(&store, &file).await,
        Command::Migrate { to } => {
            moving::migrate(&store, &to, config.database_max_connections, key).await
        }
        Command::Report {
            command:
                ReportCommand::Emails {
                    account,
                    batch,
                    stage,
                    limit,
                    csv,
                },
        } => {
            let args = report::EmailsArgs {
                batch,
                stage,
                limit,
                csv,
            };
            report::emails(&store, &account, args).await
        }
        Command::Report {
            command:
                ReportCommand::Batches {
                    account,
                    batches,
                    csv,
                },
        } => report::batches(&store, &account, batches.as_deref(), csv).await,
        Command::Bounce { .. }
        | Command::Demo { .. }
        | Command::Config { .. }
        | Command::SecretKey { .. } => {
            unreachable!("handled before the store is opened (config check: in main)")
        }
        Command::Send {
            account,
            to,
            from,
            subject,
            text,
            html,
            batch,
        } => {
            let request = mailtrail_outbound::submit::Request {
                from,
                subject,
                text,
                html,
                batch,
                send_at_ms: None,
                recipients: vec![mailtrail_outbound::submit::Recipient {
                    to: Some(to),
                    ..Default::default()
                }],
                ..Default::default()
            };
            // The same rule as the API: with require_verified_domains on, only the account's
            // verified sending domains.
            let senders = if config.outbound.require_verified_domains {
                mailtrail_outbound::submit::Senders::VerifiedDomains
            } else {
                mailtrail_outbound::submit::Senders::Any
            };
            send::run(&store, senders, &account, request).await
        }
        Command::Suppression {
            command: SuppressionCommand::List { account },
        } => suppression::list(&store, account.as_deref()).await,
        Command::Suppression {
            command:
                SuppressionCommand::Remove {
                    address,
                    account,
                    reason,
                },
        } => suppression::remove(&store, &account, &address, &reason).await,
    };
    store.close().await;
    outcome
}

/// PostgreSQL when `database_url` is set, else the embedded SQLite under `data_dir`; its
/// secrets sealed under `key`.
async fn open_store(config: &Config, key: MasterKey) -> anyhow::Result<Store> {
    match &config.database_url {
        Some(url) => Store::open_postgres(url, config.database_max_connections, key)
            .await
            .context("cannot open the PostgreSQL database at database_url"),
        None => Store::open_sqlite(&config.data_dir, key)
            .await
            .with_context(|| format!("cannot open the database in {}", config.data_dir.display())),
    }
}
