//! Running the `mailtrail` binary in tests: a clean environment, and `serve` on a free port.

// Each test binary that includes this module uses only some of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The binary with `env` (its database and other settings) and nothing inherited that could
/// change its configuration.
pub fn mailtrail(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mailtrail"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("MAILTRAIL_")) {
        command.env_remove(key);
    }
    command
        .envs(env.iter().copied())
        .env("MAILTRAIL_LOG", "warn");
    command
}

/// Starts `mailtrail serve` on free ports; returns the process and its base URL.
pub fn serve(env: &[(&str, &str)]) -> (Child, String) {
    let (child, base, _) = serve_with_smtp(env);
    (child, base)
}

/// [`serve`], also returning the inbound SMTP server's address.
pub fn serve_with_smtp(env: &[(&str, &str)]) -> (Child, String, String) {
    let mut child = mailtrail(env)
        .env("MAILTRAIL_HTTP_LISTEN", "127.0.0.1:0")
        .env("MAILTRAIL_SMTP_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mailtrail serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut next_line = |prefix: &str| {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("a line");
        line.trim()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
            .to_owned()
    };
    let base = next_line("mailtrail listening on ");
    let smtp = next_line("mailtrail smtp on ");
    (child, base, smtp)
}

/// Creates an account with `mailtrail account create NAME --json`; returns its id and API key.
pub fn create_account(env: &[(&str, &str)], name: &str) -> (String, String) {
    let output = mailtrail(env)
        .args(["account", "create", name, "--json"])
        .output()
        .expect("mailtrail account create runs");
    assert!(
        output.status.success(),
        "account create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("account create prints JSON");
    let field = |key: &str| {
        created[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {created}"))
            .to_owned()
    };
    (field("id"), field("api_key"))
}
