//! Hostile clients on real sockets (issue #9): slowloris on HTTP (headers one byte at a time)
//! and on SMTP (a command one byte at a time), plus floods of idle connections to both, while
//! a well-behaved client keeps using the service. Prints what it tried and what it found: the
//! good client's slowest answer and the service's memory before and during the attack.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{KillOnDrop, serve_with_smtp};

/// Attackers per protocol: below the SMTP server's connection limit (256), so a well-behaved
/// client still gets a slot; HTTP has no such limit.
const ATTACKERS: usize = 200;
/// How long the attack lasts.
const ATTACK: Duration = Duration::from_secs(6);

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One request as a browser makes it; the time it took and the status line.
fn get(addr: &str, path: &str) -> (Duration, String) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.lines().next().unwrap_or("").to_owned();
    (start.elapsed(), status)
}

/// An SMTP greeting and EHLO from a fresh connection; the time it took and the EHLO reply.
fn ehlo(addr: &str) -> (Duration, String) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).unwrap_or(0);
    let greeting = String::from_utf8_lossy(&buf[..n]).into_owned();
    stream.write_all(b"EHLO good.test\r\n").unwrap();
    let n = stream.read(&mut buf).unwrap_or(0);
    let _ = stream.write_all(b"QUIT\r\n");
    let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
    (
        start.elapsed(),
        format!(
            "{} / {}",
            greeting.trim(),
            reply.lines().next().unwrap_or("")
        ),
    )
}

#[test]
fn slow_and_idle_clients_do_not_starve_others_or_grow_memory() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("MAILTRAIL_DATA_DIR", dir.path().to_str().unwrap())];
    let (child, base, smtp) = serve_with_smtp(&env);
    let pid = child.id();
    let _service = KillOnDrop(child);
    let http = base.trim_start_matches("http://").to_owned();
    let before_kb = rss_kb(pid);

    // The attackers: half open a request and dribble its headers, half connect and say
    // nothing; the same on SMTP with a command dribbled a byte at a time.
    let deadline = Instant::now() + ATTACK;
    let mut attackers = Vec::new();
    for i in 0..ATTACKERS {
        let (http, smtp) = (http.clone(), smtp.clone());
        attackers.push(std::thread::spawn(move || {
            let target = if i % 2 == 0 { &http } else { &smtp };
            let Ok(mut stream) = TcpStream::connect(target) else {
                return;
            };
            let dribble: &[u8] = if i % 2 == 0 {
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            } else {
                b"EHLO slowloris.test.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            };
            let idle = i % 4 >= 2;
            let mut bytes = dribble.iter().cycle();
            while Instant::now() < deadline {
                if !idle {
                    let byte = *bytes.next().unwrap();
                    if stream.write_all(&[byte]).is_err() {
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));

    // The well-behaved client, while the attack goes on.
    let mut slowest_http = Duration::ZERO;
    let mut slowest_smtp = Duration::ZERO;
    let mut rounds = 0;
    let mut peak_kb = 0;
    while Instant::now() + Duration::from_millis(500) < deadline {
        let (took, status) = get(&http, "/healthz");
        assert!(
            status.contains(" 200 "),
            "healthz during the attack: {status:?}"
        );
        slowest_http = slowest_http.max(took);
        let (took, reply) = ehlo(&smtp);
        assert!(
            reply.starts_with("220") && reply.contains("/ 250"),
            "{reply}"
        );
        slowest_smtp = slowest_smtp.max(took);
        peak_kb = peak_kb.max(rss_kb(pid));
        rounds += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    for attacker in attackers {
        let _ = attacker.join();
    }
    let (took, status) = get(&http, "/healthz");
    assert!(status.contains(" 200 "), "after the attack: {status:?}");

    println!(
        "| attackers (HTTP + SMTP, half dribbling, half idle) | good rounds | slowest HTTP | slowest SMTP | RSS before | peak RSS during | after |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {ATTACKERS} | {rounds} | {slowest_http:?} | {slowest_smtp:?} | {} MB | {} MB | healthz in {took:?} |",
        before_kb / 1024,
        peak_kb / 1024
    );
    assert!(
        rounds >= 5,
        "the good client kept being served: {rounds} rounds"
    );
    assert!(
        slowest_http < Duration::from_secs(1) && slowest_smtp < Duration::from_secs(1),
        "others are served promptly during the attack"
    );
    assert!(
        peak_kb < before_kb + 64 * 1024,
        "memory stays bounded: {before_kb} kB -> {peak_kb} kB"
    );
}
