//! Secrets at rest (issue 16 item 6): whoever can read the data directory, a backup or the
//! database itself must not learn a webhook's signing secret, a DKIM private key or the key
//! tracking and bounce tokens are signed with. The files are the owner's alone (0700, 0600)
//! and the secret columns are sealed under a master key kept outside the database.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use mailtrail_store::MasterKey;

use crate::common;

/// The permission bits of `path`.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Whether `needle` occurs anywhere in the bytes of `path`.
fn holds(path: &Path, needle: &[u8]) -> bool {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_directory_and_backups_hold_no_secret_in_clear_and_are_the_owners_alone() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let env = [("MAILTRAIL_DATA_DIR", data.to_str().unwrap())];
    let (_, key) = common::create_account(&env, "Shop");
    let (_serve, hook_secret) = common::serve_with_secrets(&env, root.path(), &key, "rsa").await;

    let backup = root.path().join("backup.db");
    let output = common::mailtrail(&env)
        .arg("backup")
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let db = data.join("mailtrail.db");
    let wal = data.join("mailtrail.db-wal");
    let token_key = token_key(&data, &root.path().join("copy")).await;
    for file in [&db, &wal, &backup] {
        for (what, needle) in [
            ("the webhook secret", hook_secret.as_bytes()),
            ("the token signing key", token_key.as_bytes()),
            ("a PEM private key", b"-----BEGIN".as_slice()),
        ] {
            assert!(
                !holds(file, needle),
                "{} holds {what} in clear",
                file.display()
            );
        }
    }

    assert_eq!(mode(&data), 0o700, "the data directory");
    for file in [
        &db,
        &wal,
        &data.join("mailtrail.db-shm"),
        &backup,
        &data.join("secret.key"),
    ] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
}

/// The token signing key in hex, as the service has it: the row the service made, read with
/// the key file from a backup of the data directory (`scratch`), so the files under test stay
/// as they are. Read, never made: a key made here would be a fresh one no file could hold.
async fn token_key(data: &Path, scratch: &Path) -> String {
    std::fs::create_dir(scratch).unwrap();
    let copy = scratch.join("mailtrail.db");
    let output = common::mailtrail(&[("MAILTRAIL_DATA_DIR", data.to_str().unwrap())])
        .arg("backup")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(output.status.success());
    let url = format!("sqlite://{}?mode=ro", copy.display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let sealed: Option<String> =
        sqlx::query_scalar("SELECT value FROM secrets WHERE name = 'token'")
            .fetch_optional(&mut db)
            .await
            .unwrap();
    let sealed = sealed.expect("the service made its token key");
    // Sealed as the value of `secrets.value` in row `token`.
    // Parsed, not loaded: loading would tighten the modes under test.
    let key = MasterKey::parse(&std::fs::read_to_string(data.join("secret.key")).unwrap()).unwrap();
    key.open_text("secrets.value/token", &sealed).unwrap()
}
