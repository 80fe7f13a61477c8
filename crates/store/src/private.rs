//! Files only the service's own user may read: the data directory (0700), the database with
//! its journals, backups and the master key file (0600). New ones are created with those
//! modes whatever the umask; ones an older version left readable by others are tightened
//! when the store opens, and the log says so.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::{Result, StoreError};

/// Creates `dir` (and its missing parents) 0700, or tightens it to 0700 if it exists: for
/// the data directory, which is Mailtrail's own.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    create_missing_dir(dir)?;
    tighten(dir, 0o700)
}

/// Creates `dir` and its missing parents 0700; an existing directory is left as it is, for
/// one the operator chose (`secret_key_file = /etc/mailtrail/secret.key`) is theirs.
pub(crate) fn create_missing_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            StoreError::Database(sqlx::Error::Configuration(
                format!("cannot create the directory {}: {e}", dir.display()).into(),
            ))
        })
}

/// Creates the new file `path` 0600; an existing one is an error.
pub(crate) fn create_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Takes every permission beyond `mode` away from `path` if it exists; logs when it did.
pub(crate) fn tighten(path: &Path, mode: u32) -> Result<()> {
    let current = match std::fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode() & 0o777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(permission_error(path, e)),
    };
    if current & !mode == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))
        .map_err(|e| permission_error(path, e))?;
    tracing::warn!(
        path = %path.display(),
        was = format!("{current:o}"),
        now = format!("{:o}", current & mode),
        "tightened the permissions of a file that others could read"
    );
    Ok(())
}

fn permission_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Configuration(
        format!("cannot restrict {} to its owner: {e}", path.display()).into(),
    ))
}
