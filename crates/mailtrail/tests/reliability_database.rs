//! Database faults (issue #9): what Mailtrail answers while its database is gone or full, and
//! that it comes back by itself once the database does.
//!
//! - PostgreSQL stopped for a few seconds and started again (same port, same data) while a
//!   client sends emails through the API: every request is answered `202` (and the email is
//!   delivered) or `503` problem+json with `Retry-After`, within a bound; after the restart new
//!   sends are accepted without restarting Mailtrail; nothing accepted is lost; `mailtrail
//!   check` is clean.
//! - SQLite's data directory on a small tmpfs that fills up: sends fail with `503`
//!   problem+json, `/healthz` keeps answering, inbound SMTP answers `451`; once space is freed
//!   new sends are accepted again and every email accepted before is still there.
//!
//! The disk-full test mounts a tmpfs, so it needs root (CI runs as root); without it the test
//! fails and says so.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{KillOnDrop, arrivals};
use mailtrail_testkit::postgres::Restartable;
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::{Value, json};

/// The longest any one request may take before it counts as a hang: the store waits at most
/// 5 s for a PostgreSQL connection before answering 503.
const BOUND: Duration = Duration::from_secs(15);

/// One API request and how it was answered.
#[derive(Debug, Clone)]
struct Answer {
    /// When it was sent, from the start of the run.
    at: Duration,
    took: Duration,
    /// `None`: no answer within [`BOUND`] or the connection failed (see `error`).
    status: Option<u16>,
    content_type: String,
    retry_after: Option<String>,
    /// The accepted email's id (202).
    id: Option<String>,
    error: Option<String>,
}

impl Answer {
    /// 202 with an id, or 503 problem+json with Retry-After.
    fn acceptable(&self) -> bool {
        match self.status {
            Some(202) => self.id.is_some(),
            Some(503) => self.is_problem_503(),
            _ => false,
        }
    }

    fn is_problem_503(&self) -> bool {
        self.status == Some(503)
            && self.content_type.starts_with("application/problem+json")
            && self.retry_after.is_some()
    }
}

/// `POST /v1/emails` to `to` with `text`, bounded by [`BOUND`].
async fn send(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    to: &str,
    text: &str,
    start: Instant,
) -> Answer {
    let at = start.elapsed();
    let began = Instant::now();
    let request = client
        .post(format!("{base}/v1/emails"))
        .bearer_auth(key)
        .json(&json!({"to": to, "from": "s@shop.test", "subject": "Faults", "text": text}))
        .send();
    let answered = tokio::time::timeout(BOUND, async {
        let response = request.await?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok::<_, reqwest::Error>((status, content_type, retry_after, body))
    })
    .await;
    let took = began.elapsed();
    match answered {
        Ok(Ok((status, content_type, retry_after, body))) => Answer {
            at,
            took,
            status: Some(status),
            content_type,
            retry_after,
            id: (status == 202)
                .then(|| body["id"].as_str().map(str::to_owned))
                .flatten(),
            error: (status != 202).then(|| body.to_string()),
        },
        Ok(Err(e)) => Answer {
            at,
            took,
            status: None,
            content_type: String::new(),
            retry_after: None,
            id: None,
            error: Some(e.to_string()),
        },
        Err(_) => Answer {
            at,
            took,
            status: None,
            content_type: String::new(),
            retry_after: None,
            id: None,
            error: Some(format!("no answer within {BOUND:?}")),
        },
    }
}

/// One row of a table: how the answers of one phase went.
fn row(phase: &str, answers: &[&Answer]) -> String {
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for a in answers {
        let key = match a.status {
            Some(503) if a.is_problem_503() => "503 problem+Retry-After".to_owned(),
            Some(s) => s.to_string(),
            None => "no answer".to_owned(),
        };
        *statuses.entry(key).or_insert(0) += 1;
    }
    let max = answers.iter().map(|a| a.took).max().unwrap_or_default();
    let example = answers
        .iter()
        .find_map(|a| a.error.as_deref())
        .unwrap_or("-");
    format!(
        "| {phase} | {} | {statuses:?} | {:.2} s | {example} |",
        answers.len(),
        max.as_secs_f64()
    )
}

fn write_config(dir: &Path, sink: &Sink) -> String {
    let config = dir.join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "[outbound]\nlease = \"5s\"\nhelo_name = \"mta.shop.test\"\n\
             bounce_domain = \"bounce.shop.test\"\n\
             [outbound.routes]\n\"db.test\" = \"{0}\"\n\"shop.test\" = \"{0}\"\n",
            sink.address()
        ),
    )
    .unwrap();
    config.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_mid_run() {
    const EMAILS: usize = 300;
    const SPACING: Duration = Duration::from_millis(33);
    const STOP_AT: Duration = Duration::from_secs(3);
    const DOWN_FOR: Duration = Duration::from_secs(6);
    const AFTER: usize = 20;

    let pg = std::sync::Arc::new(Restartable::start());
    let url = pg.fresh_database();
    let sink = Sink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sink);
    let env = [
        ("MAILTRAIL_DATABASE_URL", url.as_str()),
        ("MAILTRAIL_DATA_DIR", dir.path().to_str().unwrap()),
    ];
    let (_, key) = common::create_account(&env, "Restart");
    let (child, base, _) = common::serve_with_args(&env, &["--config", &config]);
    let mut service = KillOnDrop(child);
    let client = reqwest::Client::new();

    // The client: one email every SPACING, each request on its own task so a slow answer
    // does not hold back the next.
    let start = Instant::now();
    let sender = {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(EMAILS);
            for i in 0..EMAILS {
                tokio::time::sleep_until((start + SPACING * i as u32).into()).await;
                let (client, base, key) = (client.clone(), base.clone(), key.clone());
                tasks.push(tokio::spawn(async move {
                    send(&client, &base, &key, &format!("r{i}@db.test"), "x", start).await
                }));
            }
            let mut answers = Vec::with_capacity(EMAILS);
            for task in tasks {
                answers.push(task.await.unwrap());
            }
            answers
        })
    };

    // PostgreSQL goes away for DOWN_FOR, then comes back on the same port with the same data.
    tokio::time::sleep_until((start + STOP_AT).into()).await;
    let stopping = start.elapsed();
    tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || pg.stop()
    })
    .await
    .unwrap();
    let stopped = start.elapsed();
    tokio::time::sleep(DOWN_FOR).await;
    tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || pg.restart()
    })
    .await
    .unwrap();
    let restarted = start.elapsed();

    let answers = tokio::time::timeout(BOUND + Duration::from_secs(15), sender)
        .await
        .expect("the client's requests end within their bound")
        .unwrap();
    let loop_ended = start.elapsed();

    // After the restart, without restarting Mailtrail: new sends are accepted.
    let mut after = Vec::with_capacity(AFTER);
    for i in 0..AFTER {
        after.push(send(&client, &base, &key, &format!("a{i}@db.test"), "x", start).await);
    }

    // Every accepted email reaches the sink.
    let accepted: Vec<&str> = answers
        .iter()
        .chain(&after)
        .filter_map(|a| a.id.as_deref())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut not_received: Vec<&str>;
    loop {
        let received = arrivals(&sink);
        not_received = accepted
            .iter()
            .copied()
            .filter(|id| !received.contains_key(*id))
            .collect();
        if not_received.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delivered_in = start.elapsed();

    // Nothing accepted is lost from the store.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let stored: HashSet<String> = sqlx::query_scalar("SELECT id FROM emails")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    pool.close().await;
    let missing: Vec<&str> = accepted
        .iter()
        .copied()
        .filter(|id| !stored.contains(*id))
        .collect();
    service.kill();
    let check = common::mailtrail(&env).arg("check").output().unwrap();
    let check_said = String::from_utf8_lossy(&check.stdout);

    let phase = |from: Duration, to: Duration| -> Vec<&Answer> {
        answers
            .iter()
            .filter(|a| a.at >= from && a.at < to)
            .collect()
    };
    let forever = Duration::from_secs(3600);
    let bad: Vec<&Answer> = answers
        .iter()
        .chain(&after)
        .filter(|a| !a.acceptable())
        .collect();
    println!(
        "PostgreSQL restarted mid-run: stop at {:.2} s (down at {:.2} s), started again at \
         {:.2} s, client loop ended at {:.2} s, deliveries checked at {:.2} s",
        stopping.as_secs_f64(),
        stopped.as_secs_f64(),
        restarted.as_secs_f64(),
        loop_ended.as_secs_f64(),
        delivered_in.as_secs_f64()
    );
    println!("| phase (by send time) | requests | answers | slowest | a failure |");
    println!("|---|---|---|---|---|");
    println!(
        "{}",
        row("before the stop", &phase(Duration::ZERO, stopping))
    );
    println!(
        "{}",
        row("while stopping/stopped", &phase(stopping, restarted))
    );
    println!("{}", row("after the restart", &phase(restarted, forever)));
    println!(
        "{}",
        row("sent after the loop", &after.iter().collect::<Vec<_>>())
    );
    println!(
        "| accepted | not received by the sink | not in the store | unacceptable answers | check |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} |",
        accepted.len(),
        not_received.len(),
        missing.len(),
        bad.len(),
        check_said.lines().last().unwrap_or_default()
    );

    assert!(
        bad.is_empty(),
        "{} answers were neither 202 nor 503 problem+json with Retry-After within {BOUND:?}, \
         e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(
        after.iter().all(|a| a.status == Some(202)),
        "after the restart, sends are not accepted again: {:?}",
        after
            .iter()
            .filter(|a| a.status != Some(202))
            .collect::<Vec<_>>()
    );
    assert!(
        missing.is_empty(),
        "{} accepted emails are not in the store, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        not_received.is_empty(),
        "{} accepted emails never reached the sink, e.g. {:?}",
        not_received.len(),
        &not_received[..not_received.len().min(5)]
    );
    assert!(check.status.success(), "mailtrail check: {check_said}");
}

/// A tmpfs mounted on a folder, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match output {
            Ok(o) if o.status.success() => Tmpfs {
                dir: dir.to_owned(),
            },
            Ok(o) => panic!(
                "this test needs root to mount a {size} tmpfs on {} (CI runs as root): mount \
                 said {}",
                dir.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("this test needs `mount` (and root) to make a small tmpfs: {e}"),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a process not yet reaped): detach it now, freed when unused.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Delivers `message` to `smtp` with swaks; returns swaks' transcript.
fn deliver(smtp: &str, to: &str, file: &Path) -> String {
    let (host, port) = smtp.rsplit_once(':').unwrap();
    let output = Command::new("swaks")
        .args([
            "--server",
            host,
            "--port",
            port,
            "--from",
            "",
            "--to",
            to,
            "--timeout",
            "30",
            "--data",
        ])
        .arg(file)
        .output()
        .expect("swaks is installed (scripts/install-test-deps)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The reply code swaks got to the end of DATA.
fn data_reply(transcript: &str) -> String {
    let lines: Vec<&str> = transcript.lines().collect();
    lines
        .iter()
        .rposition(|l| l.trim() == "-> .")
        .and_then(|end| lines.get(end + 1))
        .map(|l| l.trim_start_matches([' ', '<', '-', '*', '~']).to_owned())
        .unwrap_or_else(|| "no reply to DATA".to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_disk_full() {
    const TMPFS: &str = "8m";
    const FILLER: usize = 2 << 20;
    const BODY: usize = 200 << 10;

    let sink = Sink::start(&[]);
    let outside = tempfile::tempdir().unwrap();
    let config = write_config(outside.path(), &sink);
    let mount_point = outside.path().join("disk");
    std::fs::create_dir(&mount_point).unwrap();
    // Dropped last: after the service is killed.
    let _tmpfs = Tmpfs::mount(&mount_point, TMPFS);
    // Reserved space, freed later to "free the disk".
    let filler = mount_point.join("filler");
    std::fs::write(&filler, vec![0xA5u8; FILLER]).unwrap();
    let data = mount_point.join("data");
    let env = [("MAILTRAIL_DATA_DIR", data.to_str().unwrap())];
    let (_, key) = common::create_account(&env, "Full");
    let (child, base, smtp) = common::serve_with_args(&env, &["--config", &config]);
    let _service = KillOnDrop(child);
    let client = reqwest::Client::new();
    let start = Instant::now();
    let body = "Lorem ipsum dolor sit amet. ".repeat(BODY / 28);

    // Fill the disk: large emails until sends fail, then a few more to see they keep failing
    // the same way.
    let mut filling = Vec::new();
    let mut failures = 0;
    let deadline = Instant::now() + Duration::from_secs(25);
    while failures < 5 && Instant::now() < deadline {
        let answer = send(
            &client,
            &base,
            &key,
            &format!("f{}@db.test", filling.len()),
            &body,
            start,
        )
        .await;
        if answer.status != Some(202) {
            failures += 1;
        }
        filling.push(answer);
    }
    let full_at = start.elapsed();

    // While full: /healthz answers (200 or 503), inbound SMTP says 451.
    let health = tokio::time::timeout(
        Duration::from_secs(10),
        client.get(format!("{base}/healthz")).send(),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .map(|r| r.status().as_u16());
    let message = outside.path().join("reply.eml");
    std::fs::write(
        &message,
        format!(
            "From: person@example.test\r\nTo: reply+t@bounce.shop.test\r\nSubject: Re: \
             Faults\r\n\r\n{}\r\n",
            "A long reply line, quoted many times over.\r\n".repeat(300 << 10 >> 6)
        ),
    )
    .unwrap();
    let transcript = tokio::task::spawn_blocking({
        let (smtp, message) = (smtp.clone(), message.clone());
        move || deliver(&smtp, "reply+t@bounce.shop.test", &message)
    })
    .await
    .unwrap();
    let inbound_reply = data_reply(&transcript);

    // Free space: new sends are accepted again, without restarting Mailtrail.
    std::fs::remove_file(&filler).unwrap();
    let freed_at = start.elapsed();
    let mut resuming = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let answer = send(
            &client,
            &base,
            &key,
            &format!("n{}@db.test", resuming.len()),
            "small again",
            start,
        )
        .await;
        let ok = answer.status == Some(202);
        resuming.push(answer);
        if ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resumed_at = start.elapsed();

    // Every email accepted before is still there.
    let accepted: Vec<&str> = filling
        .iter()
        .chain(&resuming)
        .filter_map(|a| a.id.as_deref())
        .collect();
    let mut lost = Vec::new();
    for id in &accepted {
        let status = client
            .get(format!("{base}/v1/emails/{id}"))
            .bearer_auth(&key)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if !matches!(status, Ok(200)) {
            lost.push((*id, status.map_err(|e| e.to_string())));
        }
    }

    let failed: Vec<&Answer> = filling.iter().filter(|a| a.status != Some(202)).collect();
    let bad: Vec<&&Answer> = failed.iter().filter(|a| !a.is_problem_503()).collect();
    println!(
        "SQLite data directory on a {TMPFS} tmpfs with a {} KiB filler: {} KiB emails until \
         sends fail ({:.2} s), filler removed at {:.2} s, resumed at {:.2} s",
        FILLER >> 10,
        BODY >> 10,
        full_at.as_secs_f64(),
        freed_at.as_secs_f64(),
        resumed_at.as_secs_f64()
    );
    println!("| phase | requests | answers | slowest | a failure |");
    println!("|---|---|---|---|---|");
    println!("{}", row("filling", &filling.iter().collect::<Vec<_>>()));
    println!(
        "{}",
        row("after freeing space", &resuming.iter().collect::<Vec<_>>())
    );
    println!(
        "| /healthz while full | inbound SMTP while full | accepted | accepted but not found | \
         failures not 503 problem+json |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {health:?} | {inbound_reply} | {} | {} | {} |",
        accepted.len(),
        lost.len(),
        bad.len()
    );

    assert!(
        !failed.is_empty(),
        "the disk never filled: {} emails of {} KiB were all accepted",
        filling.len(),
        BODY >> 10
    );
    assert!(
        bad.is_empty(),
        "sends on a full disk must fail with 503 problem+json and Retry-After, got {:?}",
        &bad[..bad.len().min(5)]
    );
    assert!(
        matches!(health, Some(200 | 503)),
        "/healthz did not answer while the disk was full: {health:?}"
    );
    assert!(
        inbound_reply.starts_with("451"),
        "inbound SMTP on a full disk must answer 451, got {inbound_reply:?}:\n{transcript}"
    );
    assert_eq!(
        resuming.last().and_then(|a| a.status),
        Some(202),
        "after freeing space, sends are not accepted again: {resuming:?}"
    );
    assert!(
        lost.is_empty(),
        "{} of {} emails answered 202 are gone (GET answers 404): {lost:?}",
        lost.len(),
        accepted.len()
    );
}
