//! `mailtrail suppression list|remove`: the operator's hands on the suppression list.

use std::process::ExitCode;

use anyhow::{Context, bail};
use mailtrail_domain::EmailAddress;
use mailtrail_store::{Store, StoreError};

pub async fn list(store: &Store, account: Option<&str>) -> anyhow::Result<ExitCode> {
    let blocks = store.suppressions(account, i64::MAX).await?;
    println!(
        "{:<36}  {:<32}  {:<14}  {:<20}  reply",
        "account", "address", "reason", "since"
    );
    for s in &blocks {
        let since = chrono::DateTime::from_timestamp_millis(s.created_at_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        println!(
            "{:<36}  {:<32}  {:<14}  {:<20}  {}",
            s.account_id,
            s.address,
            s.block.reason.as_str(),
            since,
            s.block.status.as_deref().unwrap_or("")
        );
    }
    println!("{} blocked address(es)", blocks.len());
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(
    store: &Store,
    account: &str,
    address: &str,
    reason: &str,
) -> anyhow::Result<ExitCode> {
    let address =
        EmailAddress::parse(address).with_context(|| format!("'{address}' is not an address"))?;
    if reason.trim().is_empty() {
        bail!("--reason must say why the block is lifted");
    }
    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    match store
        .remove_suppression(account, &address, &actor, reason)
        .await
    {
        Ok(()) => {
            println!("{address} is no longer blocked for account {account}");
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::NotFound) => bail!("{address} is not blocked for account {account}"),
        Err(e) => Err(e.into()),
    }
}
