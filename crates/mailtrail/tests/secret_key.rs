//! The master key as an operator meets it: made on first start, refused when it is not the
//! database's (a node on PostgreSQL started with another key), rotated with
//! `mailtrail secret-key rotate`, and an older installation's loose file modes tightened.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::{KillOnDrop, mailtrail};
use mailtrail_store::{MasterKey, Store};

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `mailtrail serve` that must fail at start; its output.
fn serve_refused(env: &[(&str, &str)]) -> Output {
    mailtrail(env)
        .env("MAILTRAIL_HTTP_LISTEN", "127.0.0.1:0")
        .env("MAILTRAIL_SMTP_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .output()
        .unwrap()
}

/// Creates an account with a webhook and a sending domain through a running service; the
/// account and the hook's secret.
async fn secrets_through_the_api(env: &[(&str, &str)], root: &Path) -> (String, String) {
    let (account, key) = common::create_account(env, "Shop");
    let (_serve, secret) = common::serve_with_secrets(env, root, &key, "rsa").await;
    (account, secret)
}

/// The account's webhook secrets, read with `key`.
async fn hook_secrets(data: &Path, key: MasterKey, account: &str) -> Result<Vec<String>, String> {
    let store = Store::open_sqlite(data, key)
        .await
        .map_err(|e| e.to_string())?;
    let secrets = store.webhooks(account).await.unwrap();
    store.close().await;
    Ok(secrets.into_iter().map(|hook| hook.secret).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_reseals_every_secret_under_a_new_key_file_and_keeps_the_old_one() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let env = [("MAILTRAIL_DATA_DIR", data.to_str().unwrap())];
    let (account, secret) = secrets_through_the_api(&env, root.path()).await;
    let key_file = data.join("secret.key");
    let before = std::fs::read_to_string(&key_file).unwrap();

    // Not while the service runs: it would go on sealing under the old key.
    let (child, _) = common::serve(&env);
    let serving = KillOnDrop(child);
    let refused = mailtrail(&env)
        .args(["secret-key", "rotate"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("stop the service"),
        "{}",
        stderr(&refused)
    );
    drop(serving);

    let rotated = mailtrail(&env)
        .args(["secret-key", "rotate"])
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let said = stdout(&rotated);
    // The token key, the key check, the hook's secret and the domain's private key.
    assert!(said.contains("re-sealed 4 secrets"), "{said}");
    assert!(
        said.contains("secret.key.old") && said.contains("other nodes"),
        "{said}"
    );
    let after = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(before, after);
    assert_eq!(mode(&key_file), 0o600);
    let old_file = data.join("secret.key.old");
    assert_eq!(std::fs::read_to_string(&old_file).unwrap(), before);

    let new = MasterKey::parse(&after).unwrap();
    let old = MasterKey::parse(&before).unwrap();
    assert_eq!(hook_secrets(&data, new, &account).await.unwrap(), [secret]);
    let stale = hook_secrets(&data, old.clone(), &account)
        .await
        .unwrap_err();
    assert!(stale.contains(old.id()), "{stale}");
    // The service starts again on the new key.
    let (child, _) = common::serve(&env);
    drop(KillOnDrop(child));

    // A second rotation would lose the first one's old key: it asks for it to be moved away.
    let again = mailtrail(&env)
        .args(["secret-key", "rotate"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("move it away"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        after,
        "left as it was"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_from_the_environment_rotates_into_a_new_file() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let key = MasterKey::generate();
    let hex = key.to_hex();
    let env = [
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
        ("MAILTRAIL_SECRET_KEY", hex.as_str()),
    ];
    let (account, secret) = secrets_through_the_api(&env, root.path()).await;
    assert!(
        !data.join("secret.key").exists(),
        "the environment's key needs no file"
    );

    let without = mailtrail(&env)
        .args(["secret-key", "rotate"])
        .output()
        .unwrap();
    assert!(!without.status.success());
    assert!(
        stderr(&without).contains("--new-key-file"),
        "{}",
        stderr(&without)
    );

    let file = root.path().join("next.key");
    let rotated = mailtrail(&env)
        .args(["secret-key", "rotate", "--new-key-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert_eq!(mode(&file), 0o600);
    let new = MasterKey::load_or_create(&file).unwrap();
    assert_eq!(hook_secrets(&data, new, &account).await.unwrap(), [secret]);
    // The old key no longer opens the database.
    let refused = serve_refused(&env);
    assert!(!refused.status.success());
}

#[test]
fn a_node_with_another_key_than_the_databases_is_refused_at_start() {
    let url = mailtrail_testkit::postgres::fresh_database();
    let first = MasterKey::generate();
    let second = MasterKey::generate();
    let (first_hex, second_hex) = (first.to_hex(), second.to_hex());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let first_env = [
        ("MAILTRAIL_DATABASE_URL", url.as_str()),
        ("MAILTRAIL_DATA_DIR", data),
        ("MAILTRAIL_SECRET_KEY", first_hex.as_str()),
    ];
    let (child, _) = common::serve(&first_env);
    let _first = KillOnDrop(child);

    let mut second_env = first_env;
    second_env[2].1 = second_hex.as_str();
    let refused = serve_refused(&second_env);
    assert!(!refused.status.success());
    let said = stderr(&refused);
    for part in [
        first.id(),
        second.id(),
        "secret_key_file",
        "MAILTRAIL_SECRET_KEY",
    ] {
        assert!(said.contains(part), "{part} not in: {said}");
    }
}

#[test]
fn an_older_installations_readable_files_are_tightened_at_start() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let env = [("MAILTRAIL_DATA_DIR", data.to_str().unwrap())];
    common::create_account(&env, "Shop");
    let files = [data.join("mailtrail.db"), data.join("secret.key")];
    chmod(&data, 0o755);
    for file in &files {
        chmod(file, 0o644);
    }
    let checked = mailtrail(&env).arg("check").output().unwrap();
    assert!(checked.status.success(), "{}", stderr(&checked));
    assert!(
        stderr(&checked).contains("tightened the permissions"),
        "{}",
        stderr(&checked)
    );
    assert_eq!(mode(&data), 0o700);
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
}
