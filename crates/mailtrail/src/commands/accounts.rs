//! `account create`, `operator-key`, `user create`: the credentials an operator hands out.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, bail};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
use mailtrail_domain::Role;
use mailtrail_store::Store;
use serde_json::json;

pub async fn create_account(store: &Store, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let name = name.trim();
    if name.is_empty() {
        bail!("the account name is empty");
    }
    let (id, key) = store.create_account(name).await?;
    if json {
        println!("{}", json!({"id": id, "api_key": key.key}));
    } else {
        println!("account {id}");
        println!("api key {} (admin; shown once, store it now)", key.key);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn operator_key(store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let key = store.create_api_key(None, Role::Operator).await?;
    if json {
        println!("{}", json!({"api_key": key.key}));
    } else {
        println!("operator api key {} (shown once, store it now)", key.key);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn create_user(
    store: &Store,
    email: &str,
    account: Option<&str>,
    role: Role,
) -> anyhow::Result<ExitCode> {
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        bail!("the password (read from standard input) must have at least 8 characters");
    }
    let hash = hash_password(password)?;
    let id = store
        .create_user(email, account, role, &hash)
        .await
        .map_err(|e| match e {
            mailtrail_store::StoreError::NotFound => {
                anyhow::anyhow!("no account {}", account.unwrap_or_default())
            }
            other => other.into(),
        })?;
    println!("user {id} ({email}, {})", role.as_str());
    Ok(ExitCode::SUCCESS)
}

/// An argon2 PHC string for a web UI password.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?
        .to_string())
}
