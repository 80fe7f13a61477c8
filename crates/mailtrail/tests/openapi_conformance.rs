//! The running server against its own OpenAPI document: schemathesis generates requests for
//! every operation from `/v1/openapi.json` (valid and invalid ones) and checks that none gets
//! a 5xx and that every answer's status, content type and body are the documented ones.
//!
//! schemathesis comes from `scripts/install-test-deps` (a venv at `/opt/mailtrail-venv`), or
//! from `MAILTRAIL_SCHEMATHESIS`; the test fails when it is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use common::{create_account, serve};

const VENV_BINARY: &str = "/opt/mailtrail-venv/bin/schemathesis";

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("MAILTRAIL_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(VENV_BINARY));
    assert!(
        path.is_file(),
        "schemathesis is not installed at {}: run scripts/install-test-deps (or set \
         MAILTRAIL_SCHEMATHESIS to the binary)",
        path.display()
    );
    path
}

/// Stops the server however the test ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_server_conforms_to_its_openapi_document() {
    let schemathesis = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
        // The emails schemathesis sends go nowhere: a closed port on loopback.
        ("MAILTRAIL_OUTBOUND_ROUTES", "*=127.0.0.1:9"),
    ];
    let (_, key) = create_account(&env, "Conformance");
    let (child, base) = serve(&env);
    let _server = Server(child);

    // The account's admin key over every operation; the operator key over the operator's own.
    let operator = operator_key(&env);
    let report = run(&schemathesis, dir.path(), &base, &key, &[]);
    // "Selected: 24/25" and "Tested: 24": every operation but create_webhook, all tested.
    let number_after = |label: &str| -> Option<(u32, Option<u32>)> {
        let rest = report.split(label).nth(1)?.trim_start();
        let field: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '/')
            .collect();
        let mut parts = field.split('/').map(|n| n.parse().ok());
        Some((parts.next()??, parts.next().flatten()))
    };
    let (selected, total) = number_after("Selected:").expect("schemathesis printed Selected");
    let (tested, _) = number_after("Tested:").expect("schemathesis printed Tested");
    assert_eq!(
        total,
        Some(selected + 1),
        "every operation but one is selected"
    );
    assert_eq!(tested, selected, "every selected operation is tested");
    run(
        &schemathesis,
        dir.path(),
        &base,
        &operator,
        &["--include-tag", "suppressions"],
    );
}

/// A new operator key, from `mailtrail operator-key --json`.
fn operator_key(env: &[(&str, &str)]) -> String {
    let output = common::mailtrail(env)
        .args(["operator-key", "--json"])
        .output()
        .expect("mailtrail operator-key runs");
    assert!(output.status.success(), "operator-key failed");
    let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    created["api_key"].as_str().expect("api_key").to_owned()
}

/// Runs schemathesis with `key` against the server; fails the test on any finding. Returns
/// its report.
fn run(schemathesis: &Path, dir: &Path, base: &str, key: &str, only: &[&str]) -> String {
    let output = Command::new(schemathesis)
        // Its example database and reports stay in the temporary directory.
        .current_dir(dir)
        .args(["run", &format!("{base}/v1/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--max-examples", "25"])
        .args(["--request-timeout", "10"])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,\
             content_type_conformance",
        ])
        // A hook's URL would be made up by schemathesis, and the dispatcher would POST the
        // account's events to it: that operation stays out of the run.
        .args(["--exclude-operation-id", "create_webhook"])
        .args(only)
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(
        output.status.success(),
        "schemathesis found problems ({}); its report is above",
        output.status
    );
    report
}
