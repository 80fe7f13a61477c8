//! `mailtrail backup FILE` and `mailtrail migrate --to postgres://…`: moving an embedded
//! installation, as an online backup or into PostgreSQL for several nodes.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use mailtrail_store::{MasterKey, Store};

pub async fn backup(store: &Store, file: &Path) -> anyhow::Result<ExitCode> {
    store
        .backup_sqlite(file)
        .await
        .with_context(|| format!("cannot back up to {}", file.display()))?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or_default();
    println!(
        "backup written to {} ({size} bytes, readable by its owner only); restore by placing it \
         as mailtrail.db in an empty data_dir, with this installation's master key: its secrets \
         open only with it",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The copy keeps every secret sealed as it is: the target is opened with the same `key`,
/// which the nodes on PostgreSQL then need too.
pub async fn migrate(
    store: &Store,
    to: &str,
    connections: u32,
    key: MasterKey,
) -> anyhow::Result<ExitCode> {
    let target = Store::open_postgres(to, connections, key)
        .await
        .context("cannot open the PostgreSQL database given with --to")?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} copying {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let copied = store
        .copy_into(&target, |table, rows| {
            bar.set_message(format!("{table}: {rows} rows"));
            bar.tick();
        })
        .await
        .context("the copy failed; nothing was written to PostgreSQL")?;
    bar.finish_and_clear();
    target.close().await;
    println!(
        "copied {copied} rows into PostgreSQL; stop this node, set database_url to it and start \
         the nodes, each with this node's master key (secret_key_file or MAILTRAIL_SECRET_KEY)"
    );
    Ok(ExitCode::SUCCESS)
}
