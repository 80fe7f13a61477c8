//! The master key secrets in the database are sealed under: where a node finds it, and
//! `mailtrail secret-key rotate`, which re-seals every secret under a new one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use mailtrail_store::{MasterKey, Store};

use crate::config::Config;

/// The environment variable holding the key itself; it wins over `secret_key_file`.
const ENV: &str = "MAILTRAIL_SECRET_KEY";

/// Where this node's key came from.
pub enum Source {
    Environment,
    File(PathBuf),
}

/// This node's master key: `MAILTRAIL_SECRET_KEY` if set, else the key file (made on first
/// start if it does not exist).
pub fn load(config: &Config) -> anyhow::Result<(MasterKey, Source)> {
    if let Ok(text) = std::env::var(ENV) {
        let key = MasterKey::parse(&text).with_context(|| format!("{ENV} is not usable"))?;
        return Ok((key, Source::Environment));
    }
    let file = config.secret_key_file();
    // The data directory is Mailtrail's own and made private; a configured file's directory
    // is the operator's and left as it is.
    let key = match &config.secret_key_file {
        Some(file) => MasterKey::load_or_create(file),
        None => MasterKey::in_data_dir(&config.data_dir),
    }
    .context("set secret_key_file or MAILTRAIL_SECRET_KEY")?;
    Ok((key, Source::File(file)))
}

/// Re-seals every secret under a new key in one transaction, then puts the new key where
/// the old one was (the old one kept beside it as `.old`), or in `new_key_file`.
pub async fn rotate(
    config: &Config,
    mut store: Store,
    (old, source): (&MasterKey, &Source),
    new_key_file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    // On the embedded database a running service would go on with the old key.
    let _lock = crate::service::lock_data_dir(config)
        .context("stop the service before rotating its key")?;
    let (target, replaces) = match (new_key_file, source) {
        (Some(file), _) => (file.to_owned(), None),
        (None, Source::File(current)) => (with_suffix(current, "new"), Some(current.clone())),
        (None, Source::Environment) => anyhow::bail!(
            "the key comes from {ENV}: give --new-key-file FILE to write the new one to"
        ),
    };
    if let Some(current) = &replaces {
        let old = with_suffix(current, "old");
        anyhow::ensure!(
            !old.exists(),
            "{} exists (the key before a previous rotation): move it away first, and keep it \
             as long as you keep backups taken under it",
            old.display()
        );
    }
    anyhow::ensure!(
        !target.exists(),
        "{} exists already; choose a new file",
        target.display()
    );
    // On disk before any secret is sealed under it.
    let new = MasterKey::generate()
        .write_new(&target)
        .context("cannot write the new key")?;
    let resealed = match store.rotate_master_key(new.clone()).await {
        Ok(resealed) => resealed,
        Err(e) => {
            let _ = std::fs::remove_file(&target);
            return Err(anyhow::Error::new(e)
                .context("nothing was changed: the secrets are still sealed under the old key"));
        }
    };
    store.close().await;
    println!(
        "re-sealed {resealed} secrets under the new key {} (was {})",
        new.id(),
        old.id()
    );
    let key_file = match replaces {
        Some(current) => {
            let old = with_suffix(&current, "old");
            std::fs::rename(&current, &old)
                .and_then(|()| std::fs::rename(&target, &current))
                .with_context(|| {
                    format!(
                        "the secrets are sealed under the new key in {}: put it in place of {} by hand",
                        target.display(),
                        current.display()
                    )
                })?;
            println!(
                "the new key is in {}; the old one is in {}: keep it as long as you keep \
                 backups taken before now (they open only with it)",
                current.display(),
                old.display()
            );
            current
        }
        None => {
            println!(
                "the new key is in {}: point secret_key_file at it (or set {ENV} to its \
                 content) before starting the service; keep the old key as long as you keep \
                 backups taken before now",
                target.display()
            );
            target
        }
    };
    println!(
        "other nodes on this database can neither open nor seal secrets until they restart \
         with the new key: copy {} to each node's secret_key_file (or set {ENV} to its \
         content) and restart them",
        key_file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `FILE.suffix`, beside `file`.
fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}
