//! `mailtrail backup FILE` and `mailtrail migrate --to postgres://…`: moving an embedded
//! installation, as an online backup or into PostgreSQL for several nodes.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use mailtrail_store::Store;

pub async fn backup(store: &Store, file: &Path) -> anyhow::Result<ExitCode> {
    store
        .backup_sqlite(file)
        .await
        .with_context(|| format!("cannot back up to {}", file.display()))?;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or_default();
    println!(
        "backup written to {} ({size} bytes); restore by placing it as mailtrail.db in an empty data_dir",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(store: &Store, to: &str, connections: u32) -> anyhow::Result<ExitCode> {
    let target = Store::open_postgres(to, connections)
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
         the nodes"
    );
    Ok(ExitCode::SUCCESS)
}
