//! What the service tells its operator: with `log_format = "json"`, `serve` writes one JSON
//! line per delivery attempt (email id, account, domain, MX host, reply, decision, duration),
//! and an access line per HTTP request (its route template, never its query string); never
//! the API key. `/metrics` parses with the Prometheus project's Python parser and has the
//! histograms of what happened. One email goes to smtp-sink and is delivered; one goes to a
//! closed port and is deferred; one goes to a sink that refuses its recipient and fails; one is
//! scheduled 5 s ahead and delivered then.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::KillOnDrop;
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::{Value, json};

/// How far ahead the scheduled email's send time is: a bound of the latency histogram.
const SCHEDULED_AHEAD: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// The venv `scripts/install-test-deps` puts prometheus_client in.
const PYTHON: &str = "/opt/mailtrail-venv/bin/python";

/// Reads the Prometheus text format on stdin with the parser of prometheus_client, the
/// Prometheus project's Python client, and prints each family's type and samples as JSON.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    if f.name in families:
        sys.exit("family twice: " + f.name)
    families[f.name] = {"type": f.type, "samples": [
        {"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
print(json.dumps(families))
"#;

/// `/metrics` as the Prometheus parser reads it: family name → type and samples.
fn parse_metrics(text: &str) -> BTreeMap<String, Value> {
    assert!(
        std::path::Path::new(PYTHON).exists(),
        "{PYTHON} not found: run scripts/install-test-deps (it installs prometheus_client there)"
    );
    let mut child = Command::new(PYTHON)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` with exactly `labels` in `family`, if there is one.
fn sample(
    families: &BTreeMap<String, Value>,
    family: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    families.get(family)?["samples"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name && s["labels"] == Value::Object(labels.clone()))
        .and_then(|s| s["value"].as_f64())
}

/// One label set of a histogram: its buckets (upper bound, cumulative count) and its count.
#[derive(Default)]
struct Series {
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
}

/// Each histogram's buckets, per label set, count up to its `+Inf` bucket, which is its
/// `_count`.
fn assert_histograms_consistent(families: &BTreeMap<String, Value>) {
    for (name, family) in families.iter().filter(|(_, f)| f["type"] == "histogram") {
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        for s in family["samples"].as_array().unwrap() {
            let mut labels = s["labels"].as_object().unwrap().clone();
            let le = labels.remove("le");
            let entry = series.entry(Value::Object(labels).to_string()).or_default();
            let value = s["value"].as_f64().unwrap();
            match le {
                Some(le) => {
                    let le = le.as_str().unwrap();
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    };
                    entry.buckets.push((bound, value));
                }
                None if s["name"].as_str().unwrap().ends_with("_count") => {
                    entry.count = Some(value)
                }
                None => {}
            }
        }
        for (labels, Series { buckets, count }) in series {
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{name}{labels}: buckets out of order or not cumulative: {buckets:?}"
            );
            assert_eq!(
                buckets.last().map(|b| (b.0, b.1)),
                Some((f64::INFINITY, count.unwrap())),
                "{name}{labels}: the +Inf bucket is not the count"
            );
        }
    }
}

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
async fn each_attempt_is_a_log_line_and_metrics_count_what_happened() {
    let sink = Sink::start(&[]);
    let refusing = Sink::start(&["-f", "RCPT", "-B", "550 5.1.1 User unknown"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let routes = format!(
        "ok.test={},closed.test=127.0.0.1:9,gone.test={}",
        sink.address(),
        refusing.address()
    );
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

    let started = Instant::now();
    let mut ids = Vec::new();
    for to in ["ana@ok.test", "bo@closed.test", "cy@gone.test"] {
        let email = json!({"to": to, "from": "sales@shop.test", "subject": "Hello",
                           "text": "The body never reaches the log"});
        ids.push(common::send_email(&base, &key, &email).await);
    }
    let send_at = chrono::Utc::now() + SCHEDULED_AHEAD;
    let scheduled = json!({"to": "dee@ok.test", "from": "sales@shop.test", "subject": "Later",
                           "text": "x", "send_at": send_at.to_rfc3339()});
    ids.push(common::send_email(&base, &key, &scheduled).await);
    // A query string can hold a token: the access log leaves it out.
    let listed = reqwest::Client::new()
        .get(format!("{base}/v1/emails/{}?q=s3cr3t-in-query", ids[0]))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let lines = attempts(&std::fs::read_to_string(&log_path).unwrap());
        if lines.len() >= 4 || Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A request no route matches: its path (which could hold anything) is no label.
    let unmatched = reqwest::get(format!("{base}/no/such/page-s3cr3t-in-path"))
        .await
        .unwrap();
    assert_eq!(unmatched.status(), 404);
    // A session's duration is counted once it has ended (after QUIT), just after its
    // attempt's line: scrape until both are there.
    let (text, families) = loop {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let families = parse_metrics(&text);
        let session = "mailtrail_smtp_session_duration_seconds";
        let ended = sample(&families, session, &format!("{session}_count"), &[]) == Some(3.0);
        if ended || Instant::now() > deadline {
            break (text, families);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_metrics(&text, &families, started.elapsed());
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
    assert_eq!(posts, 4, "one access line per POST in:\n{log}");
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

/// What `/metrics` says after the test's four emails (two delivered, one of them scheduled;
/// one deferred; one failed; each in one attempt) and its HTTP requests, `elapsed` after the
/// first was sent.
fn assert_metrics(text: &str, families: &BTreeMap<String, Value>, elapsed: Duration) {
    let kinds: BTreeMap<&str, &str> = families
        .iter()
        .map(|(name, f)| (name.as_str(), f["type"].as_str().unwrap()))
        .collect();
    assert!(
        !kinds.values().any(|t| *t == "untyped"),
        "a sample outside its family: {kinds:?}\n{text}"
    );
    // The names /metrics had before its histograms, with their types.
    for (name, kind) in [
        ("mailtrail_queue_depth", "gauge"),
        ("mailtrail_inbound_backlog", "gauge"),
        ("mailtrail_webhook_backlog", "gauge"),
        ("mailtrail_events", "counter"),
        ("mailtrail_delivery_attempts", "counter"),
        ("mailtrail_failures", "counter"),
        ("mailtrail_machine_hits", "counter"),
        ("mailtrail_build_info", "gauge"),
        ("mailtrail_delivery_latency_seconds", "histogram"),
        ("mailtrail_smtp_session_duration_seconds", "histogram"),
        ("mailtrail_http_request_duration_seconds", "histogram"),
    ] {
        assert_eq!(kinds.get(name), Some(&kind), "{name} in:\n{text}");
    }
    assert_eq!(
        sample(
            families,
            "mailtrail_build_info",
            "mailtrail_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{text}"
    );
    // Attempts are counted by the results an attempt can have, and only those.
    let results: BTreeMap<&str, f64> = families["mailtrail_delivery_attempts"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["labels"]["result"].as_str().unwrap(),
                s["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        BTreeMap::from([
            ("delivered", 2.0),
            ("relayed", 0.0),
            ("deferred", 1.0),
            ("failed", 1.0)
        ]),
        "{text}"
    );
    let failures: BTreeMap<&str, f64> = families["mailtrail_failures"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["labels"]["reason"].as_str().unwrap(),
                s["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(failures, BTreeMap::from([("userunknown", 1.0)]), "{text}");

    assert_histograms_consistent(families);
    // Two emails delivered: two latencies. The scheduled one counts from its send time, so
    // both are in the bucket below SCHEDULED_AHEAD, though it waited longer since queueing.
    let latency = "mailtrail_delivery_latency_seconds";
    assert_eq!(
        sample(families, latency, &format!("{latency}_count"), &[]),
        sample(
            families,
            "mailtrail_events",
            "mailtrail_events_total",
            &[("kind", "delivered")]
        ),
        "as many latencies as deliveries:\n{text}"
    );
    assert_eq!(
        sample(families, latency, &format!("{latency}_count"), &[]),
        Some(2.0)
    );
    let below = format!("{}", SCHEDULED_AHEAD.num_seconds());
    assert_eq!(
        sample(
            families,
            latency,
            &format!("{latency}_bucket"),
            &[("le", below.as_str())]
        ),
        Some(2.0),
        "{text}"
    );
    assert!(elapsed.as_secs() >= SCHEDULED_AHEAD.num_seconds() as u64);
    let waited = sample(families, latency, &format!("{latency}_sum"), &[]).unwrap();
    assert!(waited > 0.0, "latency {waited} s");
    // Three SMTP sessions: the closed port never made one.
    let session = "mailtrail_smtp_session_duration_seconds";
    assert_eq!(
        sample(families, session, &format!("{session}_count"), &[]),
        Some(3.0),
        "{text}"
    );
    // HTTP requests by method and route template, never by raw path.
    let http = "mailtrail_http_request_duration_seconds";
    let count = format!("{http}_count");
    for (method, route, n) in [
        ("POST", "/v1/emails", 4.0),
        ("GET", "/v1/emails/{id}", 1.0),
        ("GET", "unmatched", 1.0),
    ] {
        assert_eq!(
            sample(
                families,
                http,
                &count,
                &[("method", method), ("route", route)]
            ),
            Some(n),
            "{method} {route} in:\n{text}"
        );
    }
    for s in families[http]["samples"].as_array().unwrap() {
        let route = s["labels"]["route"].as_str().unwrap();
        assert!(
            route == "unmatched" || route.starts_with('/'),
            "route {route:?}"
        );
    }
    assert!(
        !text.contains("s3cr3t"),
        "a path or query in /metrics:\n{text}"
    );
}
