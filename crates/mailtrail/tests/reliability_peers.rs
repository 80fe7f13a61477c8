//! "Nothing accepted is ever lost" against faulty peers (issue #9): the recipient's server is a
//! small SMTP server in this test that answers each transaction with a seeded random mix of
//! acceptance, soft and hard refusals, a disconnect in the middle of DATA, and silence past
//! the client's timeout — and writes down, per recipient, every answer it gave. Half its
//! connections offer PIPELINING, so both ways of sending meet every fault. Once nothing
//! is queued, each email must be in the stage those answers call for:
//!
//! - the first 250 → delivered;
//! - the first `550 5.1.1` → failed `userunknown`, and the address suppressed;
//! - the first `554 5.7.1` → failed, not `expired`, the address not suppressed;
//! - only soft answers (451, 452, a disconnect, a stall) until the give-up deadline → failed
//!   `expired`, not suppressed;
//!
//! and none is left `sent` without a next attempt, none is tried again after its final answer.
//! Some recipients (one in ten) only ever get soft answers, so expiry is exercised too.
//!
//! CI runs 300 emails; the long version (3,000): `MAILTRAIL_LONG_TESTS=1 cargo test --release
//! -p mailtrail --test reliability_peers -- --nocapture`. `MAILTRAIL_TEST_SEED=N` replays a
//! run's answers (the order in which transactions arrive still varies).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{KillOnDrop, long};
use mailtrail_domain::{EmailAddress, Reason, Stage};
use mailtrail_store::{AccountId, EmailId};
use mailtrail_store::{Store, now_ms};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Short timeouts and retries, so a give-up happens within the test.
const CONFIG: &str = "[outbound]
command_timeout = \"2s\"
data_timeout = \"2s\"
lease = \"10s\"
messages_per_connection = 10
sessions_per_destination = 16

[outbound.retry]
first_delay = \"1s\"
max_delay = \"2s\"
give_up_after = \"15s\"
";

/// How the peer answered one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Answer {
    Accept,
    TryLater,
    MailboxFull,
    UserUnknown,
    Refused,
    /// The connection closed after a few lines of the message.
    Disconnect,
    /// No answer at all, past the client's timeout.
    Stall,
}

impl Answer {
    /// The mix for an ordinary recipient, weights in percent.
    const MIX: &[(Answer, u32)] = &[
        (Answer::Accept, 40),
        (Answer::TryLater, 12),
        (Answer::MailboxFull, 10),
        (Answer::UserUnknown, 10),
        (Answer::Refused, 10),
        (Answer::Disconnect, 9),
        (Answer::Stall, 9),
    ];
    const SOFT: &[Answer] = &[
        Answer::TryLater,
        Answer::MailboxFull,
        Answer::Disconnect,
        Answer::Stall,
    ];

    fn label(self) -> &'static str {
        match self {
            Answer::Accept => "250 2.0.0",
            Answer::TryLater => "451 4.3.0",
            Answer::MailboxFull => "452 4.2.2",
            Answer::UserUnknown => "550 5.1.1",
            Answer::Refused => "554 5.7.1",
            Answer::Disconnect => "disconnect mid-DATA",
            Answer::Stall => "stall past timeout",
        }
    }

    /// The refusal line, for the answers that are one.
    fn refusal(self) -> Option<&'static [u8]> {
        Some(match self {
            Answer::TryLater => b"451 4.3.0 Temporary system problem\r\n",
            Answer::MailboxFull => b"452 4.2.2 Mailbox full\r\n",
            Answer::UserUnknown => b"550 5.1.1 User unknown\r\n",
            Answer::Refused => b"554 5.7.1 Rejected by local policy\r\n",
            _ => return None,
        })
    }
}

/// The stage an email's answers call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expect {
    Delivered,
    UserUnknown,
    Refused,
    Expired,
}

impl Expect {
    /// The first final answer decides; only soft ones mean the email ran out of time.
    fn from(answers: &[Answer]) -> (Self, usize) {
        let decided = answers
            .iter()
            .position(|a| matches!(a, Answer::Accept | Answer::UserUnknown | Answer::Refused));
        let expect = match decided.map(|i| answers[i]) {
            Some(Answer::Accept) => Expect::Delivered,
            Some(Answer::UserUnknown) => Expect::UserUnknown,
            Some(_) => Expect::Refused,
            None => Expect::Expired,
        };
        let after_final = decided.map_or(0, |i| answers.len() - i - 1);
        (expect, after_final)
    }
}

/// What the peer has said so far, per recipient, in order.
#[derive(Default)]
struct Log {
    answers: HashMap<String, Vec<Answer>>,
    /// Recipients that only ever get soft answers.
    deferred_forever: HashMap<String, bool>,
}

struct Peer {
    address: String,
    log: Arc<Mutex<Log>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Peer {
    async fn start(seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Log::default()));
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let shared = log.clone();
        let accept = tokio::spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (log, rng) = (shared.clone(), rng.clone());
                sessions.spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(120),
                        converse(stream, &log, &rng),
                    )
                    .await;
                });
                while sessions.try_join_next().is_some() {}
            }
        });
        Peer {
            address,
            log,
            accept,
        }
    }
}

/// Decides and writes down the answer to a transaction for `rcpt`, and whether it comes at
/// RCPT (else after the message).
fn decide(rcpt: &str, log: &Mutex<Log>, rng: &Mutex<StdRng>) -> (Answer, bool) {
    let mut rng = rng.lock().unwrap();
    let mut log = log.lock().unwrap();
    let forever = *log
        .deferred_forever
        .entry(rcpt.to_owned())
        .or_insert_with(|| rng.gen_ratio(1, 10));
    let answer = if forever {
        Answer::SOFT[rng.gen_range(0..Answer::SOFT.len())]
    } else {
        let mut roll = rng.gen_range(0..100);
        Answer::MIX
            .iter()
            .find(|(_, weight)| {
                let hit = roll < *weight;
                roll = roll.saturating_sub(*weight);
                hit
            })
            .map(|(a, _)| *a)
            .expect("weights add up to 100")
    };
    let at_rcpt = answer != Answer::Disconnect && answer != Answer::Accept && rng.gen_bool(0.5);
    log.answers.entry(rcpt.to_owned()).or_default().push(answer);
    (answer, at_rcpt)
}

/// One SMTP conversation. Ends when the client quits or hangs up, or after a disconnect.
async fn converse(stream: TcpStream, log: &Mutex<Log>, rng: &Mutex<StdRng>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    write.write_all(b"220 peer.test ESMTP\r\n").await?;
    // Half the connections offer PIPELINING, so the faults meet both ways of sending.
    let ehlo: &[u8] = if rng.lock().unwrap().gen_bool(0.5) {
        b"250-peer.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    } else {
        b"250-peer.test\r\n250 8BITMIME\r\n"
    };
    let mut pending: Option<Answer> = None;
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = text.get(..4).unwrap_or_default().to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => write.write_all(ehlo).await?,
            "HELO" | "NOOP" => write.write_all(b"250 2.0.0 Ok\r\n").await?,
            "MAIL" | "RSET" => {
                pending = None;
                write.write_all(b"250 2.0.0 Ok\r\n").await?;
            }
            "RCPT" => {
                let rcpt = text
                    .split_once('<')
                    .and_then(|(_, rest)| rest.split_once('>'))
                    .map(|(address, _)| address.to_ascii_lowercase())
                    .unwrap_or_default();
                let (answer, at_rcpt) = decide(&rcpt, log, rng);
                match (answer, at_rcpt) {
                    (Answer::Stall, true) => return until_hangup(&mut read).await,
                    (refused, true) => {
                        write
                            .write_all(refused.refusal().expect("a refusal"))
                            .await?
                    }
                    (answer, false) => {
                        pending = Some(answer);
                        write.write_all(b"250 2.1.5 Ok\r\n").await?;
                    }
                }
            }
            "DATA" => {
                let Some(answer) = pending.take() else {
                    write.write_all(b"503 5.5.1 No recipient\r\n").await?;
                    continue;
                };
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut lines = 0;
                loop {
                    line.clear();
                    if read.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    lines += 1;
                    if answer == Answer::Disconnect && lines == 3 {
                        return Ok(()); // both halves dropped: the connection closes
                    }
                    if line == b".\r\n" {
                        break;
                    }
                }
                match answer {
                    Answer::Accept => write.write_all(b"250 2.0.0 Ok: queued\r\n").await?,
                    Answer::Stall => return until_hangup(&mut read).await,
                    refused => {
                        write
                            .write_all(refused.refusal().expect("a refusal"))
                            .await?
                    }
                }
            }
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => {
                write
                    .write_all(b"502 5.5.2 Command not recognized\r\n")
                    .await?
            }
        }
    }
}

/// Says nothing until the client gives up and closes the connection.
async fn until_hangup(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<()> {
    let mut discard = Vec::new();
    while read.read_until(b'\n', &mut discard).await? > 0 {
        discard.clear();
    }
    Ok(())
}

fn seed() -> u64 {
    std::env::var("MAILTRAIL_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64)
}

/// An email's final state, as the table shows it: `failed/expired`, `delivered`, ….
fn final_label(stage: Stage, reason: Option<Reason>) -> String {
    match (stage, reason) {
        (Stage::Failed, Some(reason)) => format!("failed/{reason}"),
        (stage, _) => stage.as_str().to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_email_ends_in_the_stage_its_replies_call_for_on_sqlite() {
    every_email_ends_in_the_stage_its_replies_call_for(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_email_ends_in_the_stage_its_replies_call_for_on_postgres() {
    every_email_ends_in_the_stage_its_replies_call_for(true).await;
}

/// The whole run on the embedded database, or on a throwaway PostgreSQL.
async fn every_email_ends_in_the_stage_its_replies_call_for(postgres: bool) {
    let emails = if long() { 3_000 } else { 300 };
    let seed = seed();
    let peer = Peer::start(seed).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let route = format!("peers.test={}", peer.address);
    let url = postgres.then(mailtrail_testkit::postgres::fresh_database);
    let mut env = vec![
        ("MAILTRAIL_DATA_DIR", dir.path().to_str().unwrap()),
        ("MAILTRAIL_OUTBOUND_ROUTES", route.as_str()),
    ];
    if let Some(url) = &url {
        env.push(("MAILTRAIL_DATABASE_URL", url.as_str()));
    }
    let (account, key) = common::create_account(&env, "Peers");
    let (child, base, _) = common::serve_with_args(&env, &["--config", config.to_str().unwrap()]);
    let mut service = KillOnDrop(child);

    let recipients: Vec<Value> = (0..emails)
        .map(|i| json!({"to": format!("r{i}@peers.test")}))
        .collect();
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/emails/batch"))
        .bearer_auth(&key)
        .json(
            &json!({"from": "s@shop.test", "subject": "Peers", "text": "Hello\nthere\n",
                      "recipients": recipients}),
        )
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

    let started = Instant::now();
    let deadline = started + Duration::from_secs(if long() { 600 } else { 120 });
    // The key the service made in its data directory.
    let key = mailtrail_store::MasterKey::in_data_dir(dir.path()).unwrap();
    let store = match &url {
        Some(url) => Store::open_postgres(url, 5, key).await.unwrap(),
        None => Store::open_sqlite(dir.path(), key).await.unwrap(),
    };
    let mut queued = u64::MAX;
    while queued > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        queued = store.queue_depth().await.unwrap();
    }
    let took = started.elapsed();
    service.kill();

    let (answered, forever) = {
        let log = peer.log.lock().unwrap();
        let forever = log.deferred_forever.values().filter(|f| **f).count();
        (log.answers.clone(), forever)
    };
    // answer → (transactions, emails that got it, their final states)
    let mut by_answer: BTreeMap<Answer, (usize, usize, BTreeMap<String, usize>)> = BTreeMap::new();
    // expectation → (emails, as expected)
    let mut by_expectation: BTreeMap<Expect, (usize, usize)> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut untried = 0;
    let mut tried_after_final = 0;
    for id in &ids {
        let email = store
            .email(&AccountId::from(&account), &EmailId::from(id))
            .await
            .unwrap();
        let address = EmailAddress::parse(&email.to).unwrap();
        let suppressed = store
            .suppression(&account, &address)
            .await
            .unwrap()
            .is_some();
        let label = final_label(email.stage, email.reason);
        let Some(answers) = answered.get(&email.to.to_ascii_lowercase()) else {
            untried += 1;
            wrong.push(format!(
                "{}: never reached the peer, ended {label}",
                email.to
            ));
            continue;
        };
        let (expect, after_final) = Expect::from(answers);
        tried_after_final += after_final;
        let mut seen: Vec<Answer> = answers.clone();
        seen.sort();
        seen.dedup();
        for answer in &answers[..] {
            by_answer.entry(*answer).or_default().0 += 1;
        }
        for answer in seen {
            let entry = by_answer.entry(answer).or_default();
            entry.1 += 1;
            *entry.2.entry(label.clone()).or_insert(0) += 1;
        }
        let right = email.next_attempt_at_ms.is_none()
            && match expect {
                Expect::Delivered => email.stage == Stage::Delivered && !suppressed,
                Expect::UserUnknown => {
                    email.stage == Stage::Failed
                        && email.reason == Some(Reason::UserUnknown)
                        && suppressed
                }
                Expect::Refused => {
                    email.stage == Stage::Failed
                        && !matches!(email.reason, Some(Reason::Expired | Reason::UserUnknown))
                        && !suppressed
                }
                Expect::Expired => {
                    email.stage == Stage::Failed
                        && email.reason == Some(Reason::Expired)
                        && !suppressed
                }
            };
        let entry = by_expectation.entry(expect).or_default();
        entry.0 += 1;
        if right {
            entry.1 += 1;
        } else {
            wrong.push(format!(
                "{}: answers {answers:?} call for {expect:?}, but it ended {label} \
                 (suppressed: {suppressed}, next attempt: {:?}, status {:?})",
                email.to, email.next_attempt_at_ms, email.status
            ));
        }
    }

    println!(
        "faulty peer (seed {seed}): {emails} emails, queue empty after {:.1} s (left: {queued}); \
         {forever} recipients only ever deferred",
        took.as_secs_f64()
    );
    println!("| answer | transactions | emails | final states of those emails |");
    println!("|---|---|---|---|");
    for (answer, (transactions, emails, finals)) in &by_answer {
        println!(
            "| {} | {transactions} | {emails} | {finals:?} |",
            answer.label()
        );
    }
    println!("| the answers call for | emails | as called for |");
    println!("|---|---|---|");
    for (expect, (emails, right)) in &by_expectation {
        println!("| {expect:?} | {emails} | {right} |");
    }
    println!("tried again after a final answer: {tried_after_final}; never tried: {untried}");

    assert_eq!(queued, 0, "emails still queued after {took:?}");
    assert!(
        wrong.is_empty(),
        "{} emails not in the stage their answers call for:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        tried_after_final, 0,
        "an email was tried again after a final answer, with no crash to explain it"
    );
}
