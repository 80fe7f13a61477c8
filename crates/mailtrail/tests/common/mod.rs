//! Running the `mailtrail` binary in tests: a clean environment, `serve` on a free port, a
//! guard that kills what a test started however it ends, and what the crash tests share.

// Each test binary that includes this module uses only some of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use mailtrail_testkit::smtp_sink::Sink;

/// Whether the long versions of the reliability tests run (`MAILTRAIL_LONG_TESTS=1`).
pub fn long() -> bool {
    std::env::var("MAILTRAIL_LONG_TESTS").is_ok_and(|v| v == "1")
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing assertion leaves no
/// process behind.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// `kill -9` now and reap it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Email id → how many times the sink received it, read from each message's Message-ID
/// `<{email_id}.{token}@helo>`, which every retry of an email repeats.
pub fn arrivals(sink: &Sink) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in sink.messages() {
        if let Some(id) = message
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .and_then(|rest| rest.split(['.', '@']).next())
        {
            *counts.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

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
    serve_with_args(env, &[])
}

/// [`serve_with_smtp`] with more arguments after `serve` (`--config FILE`).
pub fn serve_with_args(env: &[(&str, &str)], args: &[&str]) -> (Child, String, String) {
    serve_logging_to(env, args, Stdio::inherit())
}

/// [`serve_with_args`] with its log (stderr) sent to `log`.
pub fn serve_logging_to(
    env: &[(&str, &str)],
    args: &[&str],
    log: impl Into<Stdio>,
) -> (Child, String, String) {
    let mut child = mailtrail(env)
        .env("MAILTRAIL_HTTP_LISTEN", "127.0.0.1:0")
        .env("MAILTRAIL_SMTP_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("mailtrail serve starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut next_line = |prefix: &str| {
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        line.trim()
            .strip_prefix(prefix)
            .map(str::to_owned)
            .ok_or(line)
    };
    let lines = next_line("mailtrail listening on ")
        .and_then(|base| next_line("mailtrail smtp on ").map(|smtp| (base, smtp)));
    match lines {
        Ok((base, smtp)) => (child, base, smtp),
        Err(line) => {
            // Not left running behind a failed test.
            let _ = child.kill();
            let _ = child.wait();
            panic!("mailtrail serve did not start: its output was {line:?}")
        }
    }
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

/// `POST /v1/emails` with `email`; returns the new email's id.
pub async fn send_email(base: &str, key: &str, email: &serde_json::Value) -> String {
    let sent: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/v1/emails"))
        .bearer_auth(key)
        .json(email)
        .send()
        .await
        .expect("the API answers")
        .json()
        .await
        .expect("a JSON answer");
    sent["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no email id in {sent}"))
        .to_owned()
}

/// `method` an API path (`/v1/…`) with an API key and a JSON body: the status, and the
/// answer as JSON (null when it is none).
pub async fn call(
    method: reqwest::Method,
    base: &str,
    key: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Serves `env` with a webhook and a sending domain (its DKIM key `algorithm`) made through
/// the API with `key`, so the database holds every kind of secret: the service, and the
/// hook's secret (shown once). Private targets are allowed (a config file in `dir`), so the
/// hook, on loopback and never called, needs no DNS.
pub async fn serve_with_secrets(
    env: &[(&str, &str)],
    dir: &std::path::Path,
    key: &str,
    algorithm: &str,
) -> (KillOnDrop, String) {
    let config = dir.join("mailtrail.toml");
    std::fs::write(&config, "[webhooks]\nallow_private_targets = true\n").unwrap();
    let (child, base, _) = serve_with_args(env, &["--config", config.to_str().unwrap()]);
    let serve = KillOnDrop(child);
    let post = reqwest::Method::POST;
    let hook = serde_json::json!({"url": "http://127.0.0.1:9/hook"});
    let (status, hook) = call(post.clone(), &base, key, "/v1/webhooks", &hook).await;
    assert_eq!(status, 201, "{hook}");
    let domain = serde_json::json!({"domain": "shop.example", "algorithm": algorithm});
    let (status, domain) = call(post, &base, key, "/v1/domains", &domain).await;
    assert_eq!(status, 201, "{domain}");
    let secret = hook["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret in {hook}"));
    (serve, secret.to_owned())
}

/// `GET` an API path (`/v1/…`) with an API key, as JSON.
pub async fn get_json(base: &str, key: &str, path: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .expect("the API answers")
        .json()
        .await
        .expect("a JSON answer")
}

/// The message the sink received for email `id`, waiting up to 10 s for it.
pub async fn received(sink: &Sink, id: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(message) = sink.messages().into_iter().find(|m| m.contains(id)) {
            return message;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sink never got {id}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
