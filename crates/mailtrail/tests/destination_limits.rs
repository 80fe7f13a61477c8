//! Per-destination limits hold across nodes (issue #9): two `mailtrail serve` processes on one
//! PostgreSQL deliver to the same destinations, each configured for at most two sessions and
//! 40 messages a second per destination, and a destination that answers "421 too many" is left
//! alone by both for the throttle time.
//!
//! The recipients' servers are small SMTP servers in this test: they are the instrument that
//! counts how many sessions are open at once, when each message arrived, and which node (by its
//! HELO name) sent it — nothing Postfix's smtp-sink reports.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::KillOnDrop;
use mailtrail_testkit::postgres::fresh_database;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const SESSIONS: usize = 2;
const RATE: f64 = 40.0;
const THROTTLE: Duration = Duration::from_secs(4);

/// What a recipient's server saw.
#[derive(Default)]
struct Seen {
    /// Sessions open right now, and the most ever open at once.
    open: AtomicUsize,
    most_open: AtomicUsize,
    /// When each session started, and the HELO name it gave.
    sessions: Mutex<Vec<(Instant, String)>>,
    /// When each message was accepted.
    accepted: Mutex<Vec<Instant>>,
    /// When the server answered "421 too many", if it did.
    refused_at: Mutex<Option<Instant>>,
}

/// A recipient's server on loopback. With `refuse_once`, its very first RCPT gets `421 4.7.0
/// Too many connections` and the session is closed.
async fn recipient_server(refuse_once: bool) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Seen::default());
    let server_seen = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let seen = server_seen.clone();
            tokio::spawn(async move {
                let now_open = seen.open.fetch_add(1, Ordering::SeqCst) + 1;
                seen.most_open.fetch_max(now_open, Ordering::SeqCst);
                let _ = converse(stream, &seen, refuse_once).await;
                seen.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (address, seen)
}

async fn converse(stream: TcpStream, seen: &Seen, refuse_once: bool) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 mx.test ESMTP\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => {
                let name = line.get(5..).unwrap_or_default().trim().to_owned();
                seen.sessions.lock().unwrap().push((Instant::now(), name));
                b"250 mx.test\r\n"
            }
            "RCPT" => {
                let refuse = refuse_once && {
                    let mut refused = seen.refused_at.lock().unwrap();
                    let first = refused.is_none();
                    if first {
                        *refused = Some(Instant::now());
                    }
                    first
                };
                if refuse {
                    write
                        .write_all(b"421 4.7.0 Too many connections, slow down\r\n")
                        .await?;
                    return Ok(());
                }
                b"250 2.1.5 ok\r\n"
            }
            "DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                while let Some(line) = lines.next_line().await? {
                    if line == "." {
                        break;
                    }
                }
                // A little time per message, so that sessions overlap if they may.
                tokio::time::sleep(Duration::from_millis(15)).await;
                seen.accepted.lock().unwrap().push(Instant::now());
                b"250 2.0.0 queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"250 ok\r\n",
        };
        write.write_all(answer).await?;
    }
    Ok(())
}

/// The most messages accepted within any one second.
fn busiest_second(accepted: &[Instant]) -> usize {
    let mut times = accepted.to_vec();
    times.sort();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn queue(client: &reqwest::Client, base: &str, key: &str, domain: &str, count: usize) {
    let recipients: Vec<Value> = (0..count)
        .map(|i| json!({"to": format!("r{i}@{domain}")}))
        .collect();
    let response = client
        .post(format!("{base}/v1/emails/batch"))
        .bearer_auth(key)
        .json(
            &json!({"from": "s@shop.test", "subject": "Limits", "text": "x",
                      "recipients": recipients}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

async fn delivered(pool: &PgPool, domain: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM emails WHERE to_domain = $1 AND stage = 'delivered'")
        .bind(domain)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn wait_delivered(pool: &PgPool, domain: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered(pool, domain).await < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} emails to {domain} delivered in a minute",
            delivered(pool, domain).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_share_each_destinations_session_rate_and_pause_limits() {
    let url = fresh_database();
    let (paced, paced_seen) = recipient_server(false).await;
    let (pausing, pausing_seen) = recipient_server(true).await;
    let dir = tempfile::tempdir().unwrap();
    let routes = format!("paced.test={paced},pausing.test={pausing}");
    let env = [
        ("MAILTRAIL_DATABASE_URL", url.as_str()),
        ("MAILTRAIL_DATA_DIR", dir.path().to_str().unwrap()),
        ("MAILTRAIL_OUTBOUND_ROUTES", routes.as_str()),
    ];
    let (_, key) = common::create_account(&env, "Limits");
    // Small claims and sessions, so both nodes hold emails for each destination at once.
    let nodes: Vec<(KillOnDrop, String)> = ["node-a.test", "node-b.test"]
        .iter()
        .map(|helo| {
            let config = dir.path().join(format!("{helo}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[outbound]\nhelo_name = \"{helo}\"\nsessions = 4\n\
                     sessions_per_destination = {SESSIONS}\nmessages_per_connection = 3\n\
                     messages_per_second_per_destination = {RATE}\nthrottle = \"4s\"\n\
                     poll_interval = \"100ms\"\n[outbound.retry]\nfirst_delay = \"1s\"\n"
                ),
            )
            .unwrap();
            let (child, base, _) =
                common::serve_with_args(&env, &["--config", config.to_str().unwrap()]);
            (KillOnDrop(child), base)
        })
        .collect();
    let pool = PgPool::connect(&url).await.unwrap();
    let client = reqwest::Client::new();

    // Sessions and rate: 120 emails queued through both nodes at once.
    let started = Instant::now();
    queue(&client, &nodes[0].1, &key, "paced.test", 60).await;
    queue(&client, &nodes[1].1, &key, "paced.test", 60).await;
    wait_delivered(&pool, "paced.test", 120).await;
    let took = started.elapsed();
    let helos: std::collections::BTreeSet<String> = paced_seen
        .sessions
        .lock()
        .unwrap()
        .iter()
        .map(|(_, helo)| helo.clone())
        .collect();
    let busiest = busiest_second(&paced_seen.accepted.lock().unwrap());
    let most_open = paced_seen.most_open.load(Ordering::SeqCst);
    println!(
        "paced.test: 120 emails in {took:?} from {helos:?}; at most {most_open} sessions at \
         once (limit {SESSIONS}); busiest second {busiest} messages (limit {RATE})"
    );
    assert_eq!(helos.len(), 2, "both nodes delivered: {helos:?}");
    assert!(
        most_open <= SESSIONS,
        "{most_open} sessions were open at once across the nodes; the limit is {SESSIONS}"
    );
    // One message's worth of slack: turns are granted one interval apart, arrivals jitter.
    assert!(
        busiest <= RATE as usize + 1,
        "{busiest} messages arrived within one second; the limit is {RATE}/s"
    );
    assert!(
        took >= Duration::from_secs_f64(119.0 / RATE),
        "120 emails at {RATE}/s cannot take only {took:?}"
    );

    // Pause: the first session gets "421 too many"; no node opens another for the throttle
    // time, and then every email is delivered (the refused one retried a second later, once
    // the pause is over).
    queue(&client, &nodes[0].1, &key, "pausing.test", 10).await;
    queue(&client, &nodes[1].1, &key, "pausing.test", 10).await;
    wait_delivered(&pool, "pausing.test", 20).await;
    let refused_at = pausing_seen
        .refused_at
        .lock()
        .unwrap()
        .expect("the server refused once");
    let sessions = pausing_seen.sessions.lock().unwrap().clone();
    // A session admitted just before the pause was recorded may still connect just after.
    let grace = Duration::from_millis(500);
    let during_pause: Vec<Duration> = sessions
        .iter()
        .map(|(at, _)| *at)
        .filter(|at| *at > refused_at + grace && *at < refused_at + THROTTLE - grace)
        .map(|at| at - refused_at)
        .collect();
    let helos: std::collections::BTreeSet<&str> =
        sessions.iter().map(|(_, helo)| helo.as_str()).collect();
    println!(
        "pausing.test: {} sessions from {helos:?}; {} began during the pause",
        sessions.len(),
        during_pause.len()
    );
    assert!(
        during_pause.is_empty(),
        "sessions began {during_pause:?} after the 421, within the {THROTTLE:?} pause"
    );
}
