//! `mailtrail smtp-credential`: the usernames and passwords mail clients log in with to
//! submit mail over SMTP as an account (create shows the password once; list shows no secret;
//! revoke stops a credential logging in).

use std::process::ExitCode;

use anyhow::bail;
use mailtrail_store::{Store, StoreError};
use serde_json::json;

pub async fn create(store: &Store, account: &str, json: bool) -> anyhow::Result<ExitCode> {
    let made = match store.create_smtp_credential(account).await {
        Ok(made) => made,
        Err(StoreError::NotFound) => bail!("no account {account}"),
        Err(e) => return Err(e.into()),
    };
    if json {
        println!(
            "{}",
            json!({"id": made.id, "username": made.username, "password": made.password})
        );
    } else {
        println!("username {}", made.username);
        println!("password {} (shown once, store it now)", made.password);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(store: &Store, account: &str) -> anyhow::Result<ExitCode> {
    if !store.account_exists(account).await? {
        bail!("no account {account}");
    }
    let time = |ms: Option<i64>| ms.map_or_else(|| "-".to_owned(), |ms| ms.to_string());
    println!("id\tusername\tcreated_at_ms\tlast_used_at_ms\trevoked_at_ms");
    for c in store.list_smtp_credentials(account).await? {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            c.id,
            c.username,
            c.created_at_ms,
            time(c.last_used_at_ms),
            time(c.revoked_at_ms)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn revoke(store: &Store, id: &str) -> anyhow::Result<ExitCode> {
    match store.revoke_smtp_credential(id, None).await {
        Ok(()) => {
            println!("smtp credential {id} revoked");
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::NotFound) => bail!("no smtp credential {id}"),
        Err(e) => Err(e.into()),
    }
}
