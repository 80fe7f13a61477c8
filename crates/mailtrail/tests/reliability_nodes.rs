//! "Nothing accepted is ever lost" with several nodes (issue #9): three `mailtrail serve`
//! processes share one PostgreSQL database and deliver one queue to Postfix's smtp-sink while
//! the test `kill -9`s a random node at random moments and restarts it. Afterwards every email
//! must be in a final stage, every email the store calls delivered must have reached the sink,
//! duplicates stay within what the killed nodes had in flight, and `mailtrail check` finds
//! every stored stage equal to its events.
//!
//! A restarting node must not free the claims of the nodes still running: a planted claim (an
//! email leased for an hour, as a live node with a long lease would hold it) must survive every
//! restart untouched.
//!
//! CI runs the short version (2,000 emails, 3 kills). The long one (20,000 emails, 20 kills):
//! `MAILTRAIL_LONG_TESTS=1 cargo test --release -p mailtrail --test reliability_nodes --
//! --nocapture`. `MAILTRAIL_TEST_SEED=N` replays a run's choices of victims and moments.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{KillOnDrop, arrivals, long};
use mailtrail_store::now_ms;
use mailtrail_testkit::postgres::fresh_database;
use mailtrail_testkit::smtp_sink::Sink;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::PgPool;

const NODES: usize = 3;
/// Recipients per `POST /v1/emails/batch`.
const CHUNK: usize = 500;
/// The nodes' `[outbound]` settings: a short lease, so a killed node's claims come back
/// within seconds, and a small in-flight window.
const CONFIG: &str = "[outbound]\nlease = \"5s\"\nsessions = 8\nmessages_per_connection = 20\n";
/// What one kill can send twice: the emails a node has sent but whose outcomes are not yet
/// committed. Its sessions hold `sessions` × `messages_per_connection` claims (8 × 20); a
/// session frees its slot once its outcomes are handed to the recorder, whose queue holds two
/// batches of 512 besides the batch being written (`crates/store/src/recorder.rs`), so up to
/// 3 × 512 more outcomes can be lost with the process.
const WINDOW: usize = 8 * 20 + 3 * 512;

fn seed() -> u64 {
    std::env::var("MAILTRAIL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64)
}

/// One `mailtrail serve` of the cluster.
struct Node {
    process: KillOnDrop,
    base: String,
}

impl Node {
    fn start(env: &[(&str, &str)], config: &str) -> Self {
        let (child, base, _) = common::serve_with_args(env, &["--config", config]);
        Node {
            process: KillOnDrop(child),
            base,
        }
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Waits until at most `left` emails are queued, or the deadline passes.
async fn drain(pool: &PgPool, left: i64, deadline: Instant) -> i64 {
    loop {
        let queued = count(
            pool,
            "SELECT COUNT(*) FROM emails WHERE next_attempt_at_ms IS NOT NULL",
        )
        .await;
        if queued <= left || Instant::now() > deadline {
            return queued;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_killed_at_random_lose_nothing() {
    let (emails, kills) = if long() { (20_000, 20) } else { (2_000, 3) };
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let url = fresh_database();
    let sink = Sink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let route = format!("nodes.test={}", sink.address());
    let env = [
        ("MAILTRAIL_DATABASE_URL", url.as_str()),
        ("MAILTRAIL_DATA_DIR", dir.path().to_str().unwrap()),
        ("MAILTRAIL_OUTBOUND_ROUTES", route.as_str()),
    ];
    let (account, key) = common::create_account(&env, "Nodes");
    let mut nodes: Vec<Node> = (0..NODES).map(|_| Node::start(&env, &config)).collect();
    let pool = PgPool::connect(&url).await.unwrap();
    let client = reqwest::Client::new();

    // The planted claim: an email queued for later, then made due but leased for an hour.
    let response = client
        .post(format!("{}/v1/emails", nodes[0].base))
        .bearer_auth(&key)
        .json(&json!({"to": "planted@nodes.test", "from": "s@shop.test", "subject": "Planted",
                      "text": "x", "send_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let planted = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let planted_lease = now_ms() + 3_600_000;
    sqlx::query("UPDATE emails SET next_attempt_at_ms = $1, lease_until_ms = $2 WHERE id = $3")
        .bind(now_ms())
        .bind(planted_lease)
        .bind(&planted)
        .execute(&pool)
        .await
        .unwrap();

    // Queued for later, then all made due at once: the kills fall while the whole queue is
    // being delivered, not while it is still being submitted.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let mut ids = Vec::with_capacity(emails);
    for (n, chunk) in (0..emails).collect::<Vec<_>>().chunks(CHUNK).enumerate() {
        let recipients: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"to": format!("r{i}@nodes.test")}))
            .collect();
        let response = client
            .post(format!("{}/v1/emails/batch", nodes[n % NODES].base))
            .bearer_auth(&key)
            .json(
                &json!({"from": "s@shop.test", "subject": "Nodes {{email}}", "send_at": later,
                          "text": "x".repeat(2000), "recipients": recipients}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let accepted: Value = response.json().await.unwrap();
        ids.extend(
            accepted["emails"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(ids.len(), emails);
    sqlx::query(
        "UPDATE emails SET next_attempt_at_ms = $1
         WHERE account_id = $2 AND id <> $3 AND next_attempt_at_ms IS NOT NULL",
    )
    .bind(now_ms())
    .bind(&account)
    .bind(&planted)
    .execute(&pool)
    .await
    .unwrap();

    // kill -9 a random node at a random moment, restart it at once, K times. Right after each
    // kill, the leased emails are noted: the dead node's claims (its sessions and the outcomes
    // its recorder had not yet written) are among them, and nothing else may go twice.
    let spread = if long() { 200..1500 } else { 50..400 };
    let idle = Instant::now() + Duration::from_secs(10);
    while count(
        &pool,
        "SELECT COUNT(*) FROM emails WHERE lease_until_ms IS NOT NULL",
    )
    .await
        < 2
        && Instant::now() < idle
    {
        tokio::time::sleep(Duration::from_millis(20)).await; // until the nodes start claiming
    }
    let mut rounds = Vec::new();
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(spread.clone()))).await;
        let victim = rng.gen_range(0..NODES);
        nodes[victim].process.kill();
        let queued = count(
            &pool,
            "SELECT COUNT(*) FROM emails WHERE next_attempt_at_ms IS NOT NULL",
        )
        .await;
        let leased: HashSet<String> = sqlx::query_scalar(
            "SELECT id FROM emails WHERE lease_until_ms IS NOT NULL AND next_attempt_at_ms IS NOT NULL",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
        nodes[victim] = Node::start(&env, &config);
        rounds.push((victim, queued, leased));
    }

    let deadline = Instant::now() + Duration::from_secs(if long() { 900 } else { 150 });
    // Everything but the planted claim leaves the queue; then the claim is given back.
    let left = drain(&pool, 1, deadline).await;
    let lease_after: Option<i64> =
        sqlx::query_scalar("SELECT lease_until_ms FROM emails WHERE id = $1")
            .bind(&planted)
            .fetch_one(&pool)
            .await
            .unwrap();
    let planted_kept = lease_after == Some(planted_lease);
    sqlx::query("UPDATE emails SET lease_until_ms = NULL WHERE id = $1")
        .bind(&planted)
        .execute(&pool)
        .await
        .unwrap();
    let left = if left <= 1 {
        drain(&pool, 0, deadline).await
    } else {
        left
    };
    // The queue is empty (or the deadline passed): the rest is read with the nodes stopped.
    for node in &mut nodes {
        node.process.kill();
    }
    ids.push(planted.clone());

    let rows: Vec<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT id, stage, next_attempt_at_ms FROM emails WHERE account_id = $1")
            .bind(&account)
            .fetch_all(&pool)
            .await
            .unwrap();
    let stored: HashMap<String, (String, Option<i64>)> = rows
        .into_iter()
        .map(|(id, stage, next)| (id, (stage, next)))
        .collect();
    let mut stages: BTreeMap<String, usize> = BTreeMap::new();
    for id in &ids {
        let stage = stored.get(id).map_or("missing", |(s, _)| s.as_str());
        *stages.entry(stage.to_owned()).or_insert(0) += 1;
    }
    let received = arrivals(&sink);
    let ours: HashSet<&String> = ids.iter().collect();
    let unfinished: Vec<&String> = ids
        .iter()
        .filter(|id| {
            stored
                .get(*id)
                .is_none_or(|(stage, next)| stage == "sent" || next.is_some())
        })
        .collect();
    let delivered_not_received: Vec<&String> = ids
        .iter()
        .filter(|id| stored.get(*id).is_some_and(|(s, _)| s == "delivered"))
        .filter(|id| !received.contains_key(*id))
        .collect();
    let strangers = received.keys().filter(|id| !ours.contains(id)).count();
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    let twice: Vec<&String> = received
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    let unexplained: Vec<&&String> = twice
        .iter()
        .filter(|id| !rounds.iter().any(|(_, _, leased)| leased.contains(**id)))
        .collect();
    let bound = kills * WINDOW;

    let check = common::mailtrail(&env).arg("check").output().unwrap();
    let check_said = String::from_utf8_lossy(&check.stdout);

    println!("crash loop (PostgreSQL, {NODES} nodes, seed {seed})");
    println!(
        "| kill | node | queued after the kill | leased after the kill | of those, received twice |"
    );
    println!("|---|---|---|---|---|");
    for (n, (victim, queued, leased)) in rounds.iter().enumerate() {
        let again = leased
            .iter()
            .filter(|id| received.get(*id).is_some_and(|n| *n > 1))
            .count();
        println!(
            "| {} | {victim} | {queued} | {} | {again} |",
            n + 1,
            leased.len()
        );
    }
    println!(
        "| emails | kill -9 | stages | left queued | not final | delivered, never received \
         | duplicates (emails) | not leased at a kill | bound | planted claim kept | check |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {kills} | {stages:?} | {left} | {} | {} | {duplicates} ({}) | {} | {bound} | {planted_kept} | {} |",
        ids.len(),
        unfinished.len(),
        delivered_not_received.len(),
        twice.len(),
        unexplained.len(),
        check_said.lines().last().unwrap_or_default()
    );

    assert!(
        planted_kept,
        "a node's restart touched another node's claim: lease {lease_after:?}, planted \
         {planted_lease} (a restart must not release the leases of nodes still running)"
    );
    assert!(
        unfinished.is_empty(),
        "{} emails are not in a final stage, e.g. {:?}",
        unfinished.len(),
        &unfinished[..unfinished.len().min(5)]
    );
    assert!(
        delivered_not_received.is_empty(),
        "{} delivered emails never reached the sink, e.g. {:?}",
        delivered_not_received.len(),
        &delivered_not_received[..delivered_not_received.len().min(5)]
    );
    assert_eq!(
        stages.get("delivered").copied().unwrap_or(0),
        ids.len(),
        "the sink accepts everything, so every email ends delivered: {stages:?}"
    );
    assert_eq!(strangers, 0, "the sink received emails nobody queued");
    assert!(
        unexplained.is_empty(),
        "{} emails arrived twice without being claimed by a node at one of the kills, e.g. {:?}",
        unexplained.len(),
        &unexplained[..unexplained.len().min(5)]
    );
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, more than {kills} kills × {WINDOW} (what one node can have \
         sent and not recorded)"
    );
    assert!(check.status.success(), "mailtrail check: {check_said}");
}
