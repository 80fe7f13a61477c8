//! What the service tells its operator: with `log_format = "json"`, `serve` writes one JSON
//! line per delivery attempt (email id, account, domain, MX host, reply, decision, duration),
//! and an access line per HTTP request (its route template, never its query string); never
//! the API key. One email goes to smtp-sink and is delivered; one goes to a closed port and is
//! deferred.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::KillOnDrop;
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::{Value, json};

/// The log's JSON objects whose message is `delivery attempt`.
fn attempts(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"))
        })
        .filter(|line| line["message"] == "delivery attempt")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_json_log_line_per_delivery_attempt() {
    let sink = Sink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let routes = format!("ok.test={},closed.test=127.0.0.1:9", sink.address());
    let env = [
        ("MAILTRAIL_DATA_DIR", data.to_str().unwrap()),
        ("MAILTRAIL_OUTBOUND_ROUTES", routes.as_str()),
        ("MAILTRAIL_LOG_FORMAT", "json"),
    ];
    let (account, key) = common::create_account(&env, "Shop");
    let log_path = dir.path().join("serve.log");
    let mut child = common::mailtrail(&env)
        .env("MAILTRAIL_LOG", "info")
        .env("MAILTRAIL_HTTP_LISTEN", "127.0.0.1:0")
        .env("MAILTRAIL_SMTP_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("mailtrail serve starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let serve = KillOnDrop(child);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("mailtrail listening on ")
        .unwrap_or_else(|| panic!("serve did not start: {line:?}"))
        .to_owned();

    let mut ids = Vec::new();
    for to in ["ana@ok.test", "bo@closed.test"] {
        let email = json!({"to": to, "from": "sales@shop.test", "subject": "Hello",
                           "text": "The body never reaches the log"});
        ids.push(common::send_email(&base, &key, &email).await);
    }
    // A query string can hold a token: the access log leaves it out.
    let listed = reqwest::Client::new()
        .get(format!("{base}/v1/emails/{}?q=s3cr3t-in-query", ids[0]))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    let lines = loop {
        let lines = attempts(&std::fs::read_to_string(&log_path).unwrap());
        if lines.len() >= 2 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Attempts are counted by the results an attempt can have, and only those.
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let results: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("mailtrail_delivery_attempts_total{"))
        .collect();
    assert_eq!(
        results,
        [
            "mailtrail_delivery_attempts_total{result=\"delivered\"} 1",
            "mailtrail_delivery_attempts_total{result=\"relayed\"} 0",
            "mailtrail_delivery_attempts_total{result=\"deferred\"} 1",
            "mailtrail_delivery_attempts_total{result=\"failed\"} 0",
        ],
        "{metrics}"
    );
    drop(serve);
    let log = std::fs::read_to_string(&log_path).unwrap();

    let of = |id: &str| -> Vec<&Value> { lines.iter().filter(|l| l["email_id"] == id).collect() };
    let delivered = of(&ids[0]);
    assert_eq!(
        delivered.len(),
        1,
        "one line for the delivered email in:\n{log}"
    );
    let delivered = delivered[0];
    assert_eq!(delivered["level"], "INFO");
    assert_eq!(delivered["account_id"], account.as_str());
    assert_eq!(delivered["domain"], "ok.test");
    assert_eq!(delivered["decision"], "delivered");
    assert_eq!(delivered["attempt"], 1);
    assert_eq!(delivered["mx_addr"], sink.address().as_str());
    assert!(
        delivered["reply"].as_str().unwrap().starts_with("250"),
        "{delivered}"
    );
    assert!(delivered["duration_ms"].is_u64(), "{delivered}");

    let deferred = of(&ids[1]);
    assert_eq!(
        deferred.len(),
        1,
        "one line for the deferred email in:\n{log}"
    );
    let deferred = deferred[0];
    assert_eq!(deferred["domain"], "closed.test");
    assert_eq!(deferred["decision"], "deferred");
    assert!(
        deferred["mx"].is_null(),
        "nothing was connected to: {deferred}"
    );
    let until = deferred["until"]
        .as_str()
        .expect("a deferred line says until when");
    assert!(
        chrono::DateTime::parse_from_rfc3339(until).is_ok(),
        "{until}"
    );
    assert!(
        deferred["reply"].as_str().unwrap().contains("refused"),
        "{deferred}"
    );

    let requests: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "http request")
        .collect();
    let posts = requests
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == "/v1/emails")
        .count();
    assert_eq!(posts, 2, "one access line per POST in:\n{log}");
    let get = requests
        .iter()
        .find(|r| r["method"] == "GET" && r["path"] == "/v1/emails/{id}")
        .unwrap_or_else(|| panic!("no access line for the GET in:\n{log}"));
    assert_eq!(get["status"], 200);
    assert!(get["duration_ms"].is_u64(), "{get}");
    assert!(
        !log.contains("s3cr3t-in-query"),
        "a query string is in the log"
    );
    assert!(!log.contains(&key), "the API key is in the log:\n{log}");
    assert!(
        !log.contains("never reaches the log"),
        "a body is in the log"
    );
    assert!(
        !log.contains("ana@ok.test"),
        "a recipient's address is in the log"
    );
}
