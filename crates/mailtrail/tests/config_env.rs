//! Configuration from the environment, as a container or a systemd unit gives it: nested keys
//! as `MAILTRAIL_<SECTION>__<KEY>` and secrets as `<NAME>_FILE`. `serve` greets smtp-sink
//! with the EHLO name a nested variable set, routes by a table a variable held, and guards
//! `/metrics` with a token read from a file; `config check` names every variable that names
//! no setting or does not fit, and leaves alone the variables that are not settings.

mod common;

use std::process::Output;

use common::{KillOnDrop, create_account, received, send_email};
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::json;

/// The `X-Helo-Args` line smtp-sink writes at the top of each dump: the EHLO name it heard.
fn helo_name(dump: &str) -> &str {
    dump.lines()
        .find_map(|line| line.strip_prefix("X-Helo-Args: "))
        .unwrap_or_else(|| panic!("no X-Helo-Args in {dump}"))
        .trim()
}

async fn metrics_status(base: &str, token: Option<&str>) -> u16 {
    let request = reqwest::Client::new().get(format!("{base}/metrics"));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_uses_a_nested_key_and_a_secret_from_a_file() {
    let sink = Sink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token_file = dir.path().join("metrics-token");
    // As `docker secret` or `echo … > file` leaves it: with a newline at the end.
    std::fs::write(&token_file, "t0ken-from-a-file\n").unwrap();
    let routes = format!("{{\"ok.test\" = \"{}\"}}", sink.address());
    let env = [
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
        ("MAILTRAIL_OUTBOUND__HELO_NAME", "mta.nested.test"),
        ("MAILTRAIL_OUTBOUND__ROUTES", routes.as_str()),
        ("MAILTRAIL_OUTBOUND__RETRY__FIRST_DELAY", "1m"),
        ("MAILTRAIL_METRICS_TOKEN_FILE", token_file.to_str().unwrap()),
    ];
    let (_, key) = create_account(&env, "Shop");
    let (child, base) = common::serve(&env);
    let _serve = KillOnDrop(child);

    let email = json!({"to": "ana@ok.test", "from": "sales@shop.test", "subject": "Hello",
                       "text": "Hi Ana"});
    let id = send_email(&base, &key, &email).await;
    let dump = received(&sink, &id).await;
    assert_eq!(helo_name(&dump), "mta.nested.test");
    assert!(
        dump.contains(&format!("Message-ID: <{id}.")) && dump.contains("@mta.nested.test>"),
        "the Message-ID's domain is the EHLO name: {dump}"
    );

    assert_eq!(metrics_status(&base, None).await, 401);
    assert_eq!(metrics_status(&base, Some("t0ken-from-a-fil")).await, 401);
    // Only without the file's newline (a header cannot even carry one).
    assert_eq!(metrics_status(&base, Some("t0ken-from-a-file")).await, 200);
}

/// `mailtrail config check` with `env` and nothing inherited.
fn config_check(env: &[(&str, &str)]) -> (Output, String) {
    let output = common::mailtrail(env)
        .args(["config", "check"])
        .output()
        .expect("mailtrail config check runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

#[test]
fn config_check_names_each_variable_that_names_no_setting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("mailtrail.toml");
    std::fs::write(&file, "[outbound]\nsessions = 4\n").unwrap();
    let env = [
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
        ("MAILTRAIL_CONFIG", file.to_str().unwrap()),
        ("MAILTRAIL_OUTBOUND__HELO_NAM", "mta.typo.test"),
        ("MAILTRAIL_OUTBOUND__RETRY__FIRST_DELAI", "1m"),
        ("MAILTRAIL_HTTP_LISTN", "127.0.0.1:1"),
        // Settings, and variables the binary reads that are not settings.
        ("MAILTRAIL_SUBMISSION__MAX_RECIPIENTS", "20"),
        ("MAILTRAIL_OUTBOUND_ROUTES", "a.test=127.0.0.1:2526"),
        ("MAILTRAIL_TEST_SEED", "7"),
    ];
    let (output, stdout) = config_check(&env);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let named: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_once(": names no setting").map(|(name, _)| name))
        .collect();
    assert_eq!(
        named,
        [
            "MAILTRAIL_HTTP_LISTN",
            "MAILTRAIL_OUTBOUND__HELO_NAM",
            "MAILTRAIL_OUTBOUND__RETRY__FIRST_DELAI"
        ],
        "{stdout}"
    );
    assert!(stdout.contains("3 problem(s)"), "{stdout}");
    for quiet in [
        "MAILTRAIL_LOG",
        "MAILTRAIL_CONFIG",
        "MAILTRAIL_TEST_SEED",
        "MAX_RECIPIENTS",
    ] {
        assert!(!stdout.contains(quiet), "{quiet} reported: {stdout}");
    }

    // Other commands leave such a variable out with a warning, and run.
    let created = common::mailtrail(&env)
        .args(["account", "create", "Shop", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: MAILTRAIL_OUTBOUND__HELO_NAM: names no setting"),
        "{stderr}"
    );

    let (output, stdout) = config_check(&[
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
        ("MAILTRAIL_OUTBOUND__HELO_NAME", "mta.shop.test"),
        ("MAILTRAIL_SUBMISSION__MAX_RECIPIENTS", "20"),
    ]);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("configuration OK"), "{stdout}");
}

#[test]
fn a_variable_that_does_not_fit_stops_every_command_and_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secret = dir.path().join("password");
    std::fs::write(&secret, "hunter2\n").unwrap();
    let missing = dir.path().join("no-such-file");
    let env = [
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
        ("MAILTRAIL_OUTBOUND__SESSIONS", "lots"),
        (
            "MAILTRAIL_OUTBOUND__RELAY__ADDRESS",
            "smtp.provider.test:587",
        ),
        ("MAILTRAIL_OUTBOUND__RELAY__PASSWORD", "hunter2"),
        (
            "MAILTRAIL_OUTBOUND__RELAY__PASSWORD_FILE",
            secret.to_str().unwrap(),
        ),
        ("MAILTRAIL_DATABASE_URL_FILE", missing.to_str().unwrap()),
    ];
    let (output, stdout) = config_check(&env);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|line| line.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{name} not reported: {stdout}"))
            .to_owned()
    };
    assert!(
        line("MAILTRAIL_OUTBOUND__SESSIONS").contains("lots"),
        "{stdout}"
    );
    assert!(
        line("MAILTRAIL_OUTBOUND__RELAY__PASSWORD_FILE")
            .contains("MAILTRAIL_OUTBOUND__RELAY__PASSWORD is set too"),
        "{stdout}"
    );
    assert!(
        line("MAILTRAIL_DATABASE_URL_FILE").contains(missing.to_str().unwrap()),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "a secret printed: {stdout}");

    let serve = common::mailtrail(&env).arg("serve").output().unwrap();
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert_eq!(serve.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("MAILTRAIL_OUTBOUND__SESSIONS"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "a secret printed: {stderr}");
    assert!(!data.exists(), "nothing was made on a bad configuration");
}

#[test]
fn the_example_environment_passes_config_check() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/mailtrail.env");
    let text = std::fs::read_to_string(example).unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let variables: Vec<(String, String)> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            // Each secret in a file of its own, as the container would mount it.
            let value = match value.strip_prefix("/run/secrets/") {
                Some(secret) => {
                    let file = secrets.path().join(secret);
                    std::fs::write(&file, format!("{secret}-value\n")).unwrap();
                    file.to_str().unwrap().to_owned()
                }
                None => value.to_owned(),
            };
            (name.to_owned(), value)
        })
        .collect();
    assert!(variables.len() > 15, "{variables:?}");
    let env: Vec<(&str, &str)> = variables
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let (output, stdout) = config_check(&env);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("configuration OK"), "{stdout}");
}
