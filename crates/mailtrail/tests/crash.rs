//! Crash safety of delivery: `kill -9` the service again and again while it delivers a batch
//! to Postfix's smtp-sink, restart it each time, and check that every accepted email reached
//! the sink — none lost — and that duplicates stay within the in-flight window.
//!
//! CI runs the short version (2,000 emails, 3 kills). The long one (20,000 emails, 20 kills,
//! issue #9): `MAILTRAIL_LONG_TESTS=1 cargo test --release -p mailtrail --test crash --
//! --nocapture`. The same loop with three nodes on PostgreSQL is `reliability_nodes.rs`.

use std::collections::HashMap;
mod common;

use std::time::{Duration, Instant};

use common::{KillOnDrop, arrivals, long};

use mailtrail_domain::Stage;
use mailtrail_store::Store;
use mailtrail_store::{AccountId, EmailId};
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::{Value, json};

fn env(data: &str, route: &str) -> [(&'static str, String); 2] {
    [
        ("MAILTRAIL_DATA_DIR", data.to_owned()),
        ("MAILTRAIL_OUTBOUND_ROUTES", format!("crash.test={route}")),
    ]
}

fn serve(data: &str, route: &str) -> (KillOnDrop, String) {
    let env = env(data, route);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (child, base) = common::serve(&env);
    (KillOnDrop(child), base)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_delivery_loses_nothing() {
    let (emails, kills) = if long() { (20_000, 20) } else { (2_000, 3) };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let sink = Sink::start(&[]);

    let env = env(&data, &sink.address());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let output = common::mailtrail(&env)
        .args(["account", "create", "Crash", "--json"])
        .output()
        .unwrap();
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    let (account, key) = (
        created["id"].as_str().unwrap().to_owned(),
        created["api_key"].as_str().unwrap().to_owned(),
    );

    let (mut child, base) = serve(&data, &sink.address());
    let recipients: Vec<Value> = (0..emails)
        .map(|i| json!({"to": format!("r{i}@crash.test")}))
        .collect();
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/emails/batch"))
        .bearer_auth(&key)
        .json(&json!({"from": "s@shop.test", "subject": "Crash {{email}}", "text": "x".repeat(2000), "recipients": recipients}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let ids: Vec<String> = accepted["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), emails);

    // Kill at spread-out moments while the batch is being delivered, restarting each time.
    let mut kill_log = Vec::new();
    for round in 0..kills {
        tokio::time::sleep(Duration::from_millis(150 + (round as u64 * 97) % 250)).await;
        let delivered_before_kill: usize = arrivals(&sink).values().sum();
        child.kill(); // SIGKILL
        kill_log.push(delivered_before_kill);
        (child, _) = serve(&data, &sink.address());
    }

    // Let the last run finish everything.
    let deadline = Instant::now() + Duration::from_secs(if long() { 600 } else { 180 });
    let key = mailtrail_store::MasterKey::in_data_dir(dir.path()).unwrap();
    let store = Store::open_sqlite(dir.path(), key).await.unwrap();
    loop {
        if store.queue_depth().await.unwrap() == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut stages: HashMap<Stage, usize> = HashMap::new();
    for id in &ids {
        *stages
            .entry(
                store
                    .email(&AccountId::from(&account), &EmailId::from(id))
                    .await
                    .unwrap()
                    .stage,
            )
            .or_insert(0) += 1;
    }
    child.kill();

    let received = arrivals(&sink);
    let lost = ids.iter().filter(|id| !received.contains_key(*id)).count();
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    println!("crash loop (SQLite, one node)");
    println!("| emails | kill -9 | sink messages at each kill | delivered | lost | duplicates |");
    println!(
        "| {emails} | {kills} | {kill_log:?} | {} | {lost} | {duplicates} |",
        stages.get(&Stage::Delivered).copied().unwrap_or(0)
    );
    assert_eq!(lost, 0, "every accepted email reaches the sink");
    assert_eq!(
        stages.get(&Stage::Delivered).copied().unwrap_or(0),
        emails,
        "{stages:?}"
    );
    // Only what was in flight at a kill can go twice: a claim of at most sessions ×
    // messages_per_connection per kill, and far fewer in practice.
    assert!(duplicates <= kills * 32 * 100, "{duplicates} duplicates");
}
