//! Hostile clients on real sockets: hundreds of idle connections, a client that trickles a
//! byte at a time, 10,000 recipients, a flood past the connection limit — the server answers
//! each clearly and keeps serving an honest client meanwhile.

use std::sync::Arc;
use std::time::Duration;

use mailtrail_inbound::InboundConfig;
use mailtrail_inbound::server::{StoreSink, serve};
use mailtrail_store::Store;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

struct Server {
    address: std::net::SocketAddr,
    store: Store,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn start(config: InboundConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), mailtrail_store::MasterKey::generate())
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, mut stopped) = watch::channel(false);
    let sink = StoreSink {
        store: store.clone(),
        received: Arc::new(Notify::new()),
    };
    tokio::spawn(serve(
        listener,
        config,
        "bounce.test".into(),
        sink,
        None,
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));
    Server {
        address,
        store,
        stop,
        _dir: dir,
    }
}

/// Sends `lines` one command at a time and returns the reply to each (after the greeting).
async fn converse(address: std::net::SocketAddr, lines: &[&str]) -> Vec<String> {
    let stream = TcpStream::connect(address).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut replies = Vec::new();
    let reply = async |read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>| {
        let mut last = String::new();
        loop {
            let mut line = String::new();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return last;
            }
            last = line.trim_end().to_owned();
            if line.as_bytes().get(3) != Some(&b'-') {
                return last;
            }
        }
    };
    reply(&mut read).await;
    for line in lines {
        // Once the server has hung up, what is left are the replies it wrote before.
        if write
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
        replies.push(reply(&mut read).await);
    }
    replies
}

const HONEST: &[&str] = &[
    "EHLO honest.test",
    "MAIL FROM:<>",
    "RCPT TO:<fbl@bounce.test>",
    "DATA",
    "Subject: hi\r\n\r\nbody\r\n.",
    "QUIT",
];

fn codes(replies: &[String]) -> Vec<&str> {
    replies.iter().map(|r| r.get(..3).unwrap_or("")).collect()
}

#[tokio::test]
async fn idle_and_trickling_clients_do_not_starve_an_honest_one() {
    let server = start(InboundConfig::default()).await;
    // Hundreds of idle connections, under the default limit of 256.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(server.address).await.unwrap());
    }
    // One byte every 20 ms: a slowloris on the command line.
    let trickle = tokio::spawn({
        let address = server.address;
        async move {
            let mut stream = TcpStream::connect(address).await.unwrap();
            for byte in b"EHLO slow.test\r\nNOOP\r\n" {
                stream.write_all(&[*byte]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let replies = tokio::time::timeout(Duration::from_secs(5), converse(server.address, HONEST))
        .await
        .unwrap();
    assert_eq!(
        codes(&replies),
        ["250", "250", "250", "354", "250", "221"],
        "{replies:?}"
    );
    trickle.await.unwrap();
    drop(idle);
    server.stop.send(true).unwrap();
    let stored = server.store.claim_inbound(10, 1000).await.unwrap();
    assert_eq!(stored.len(), 1, "only the honest message was stored");
}

#[tokio::test]
async fn ten_thousand_recipients_are_capped_and_relaying_refused() {
    let server = start(InboundConfig::default()).await;
    let mut lines = vec!["EHLO many.test".to_owned(), "MAIL FROM:<>".to_owned()];
    lines.extend((0..10_000).map(|i| format!("RCPT TO:<bounces+t{i}@bounce.test>")));
    lines.push("RCPT TO:<victim@elsewhere.example>".into());
    lines.push("QUIT".into());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let replies = tokio::time::timeout(Duration::from_secs(60), converse(server.address, &lines))
        .await
        .unwrap();
    let accepted = replies
        .iter()
        .filter(|r| r.starts_with("250 2.1.5"))
        .count();
    let capped = replies
        .iter()
        .filter(|r| r.starts_with("452 4.5.3"))
        .count();
    assert_eq!((accepted, capped), (100, 9_900));
    assert!(
        replies.iter().any(|r| r.starts_with("550 5.7.1")),
        "relaying is refused as such"
    );
    server.stop.send(true).unwrap();
}

#[tokio::test]
async fn connections_past_the_limit_are_told_to_come_back_later() {
    let server = start(InboundConfig {
        max_connections: 5,
        ..InboundConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut stream = BufReader::new(TcpStream::connect(server.address).await.unwrap());
        let mut greeting = String::new();
        stream.read_line(&mut greeting).await.unwrap();
        assert!(greeting.starts_with("220"));
        held.push(stream);
    }
    let mut extra = BufReader::new(TcpStream::connect(server.address).await.unwrap());
    let mut answer = String::new();
    extra.read_line(&mut answer).await.unwrap();
    assert!(answer.starts_with("421 4.7.0"), "{answer}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let replies = converse(server.address, HONEST).await;
    assert_eq!(codes(&replies), ["250", "250", "250", "354", "250", "221"]);
    server.stop.send(true).unwrap();
}

/// Every message the server stored, oldest first.
async fn stored(server: &Server) -> Vec<Vec<u8>> {
    let claimed = server.store.claim_inbound(100, 1000).await.unwrap();
    claimed.into_iter().map(|m| m.raw).collect()
}

#[tokio::test]
async fn an_empty_message_ends_at_its_dot_and_the_next_commands_are_commands() {
    let server = start(InboundConfig::default()).await;
    let lines = [
        "EHLO empty.test",
        "MAIL FROM:<>",
        "RCPT TO:<fbl@bounce.test>",
        "DATA",
        ".",
        "MAIL FROM:<>",
        "RCPT TO:<reply+t@bounce.test>",
        "DATA",
        "..first line dot-stuffed\r\nsecond\r\n.",
        "QUIT",
    ];
    let replies = tokio::time::timeout(Duration::from_secs(5), converse(server.address, &lines))
        .await
        .expect("the dot right after 354 ends the message");
    assert_eq!(
        codes(&replies),
        [
            "250", "250", "250", "354", "250", "250", "250", "354", "250", "221"
        ],
        "{replies:?}"
    );
    server.stop.send(true).unwrap();
    assert_eq!(
        stored(&server).await,
        [
            b"".to_vec(),
            b".first line dot-stuffed\r\nsecond\r\n".to_vec()
        ]
    );
}

#[tokio::test]
async fn an_overflowing_size_is_refused() {
    let server = start(InboundConfig::default()).await;
    let replies = converse(
        server.address,
        &[
            "EHLO big.test",
            "MAIL FROM:<> SIZE=99999999999999999999999",
            "MAIL FROM:<> SIZE=18446744073709551616",
            "MAIL FROM:<> size=10485761",
            "MAIL FROM:<> SIZE=10485760",
            "QUIT",
        ],
    )
    .await;
    assert_eq!(
        codes(&replies),
        ["250", "552", "552", "552", "250", "221"],
        "{replies:?}"
    );
    assert!(replies[1].starts_with("552 5.3.4"), "{replies:?}");
    server.stop.send(true).unwrap();
}

#[tokio::test]
async fn a_relay_prober_is_disconnected_at_the_error_limit() {
    let server = start(InboundConfig {
        max_errors: 5,
        ..InboundConfig::default()
    })
    .await;
    let mut lines = vec![
        "EHLO prober.test".to_owned(),
        "MAIL FROM:<x@prober.test>".to_owned(),
    ];
    lines.extend((0..20).map(|i| format!("RCPT TO:<victim{i}@gmail.com>")));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let replies = tokio::time::timeout(Duration::from_secs(5), converse(server.address, &lines))
        .await
        .unwrap();
    // Five refusals, the 421 written after the fifth, then nothing: the connection is closed.
    assert_eq!(
        codes(&replies[..8]),
        ["250", "250", "550", "550", "550", "550", "550", "421"],
        "{replies:?}"
    );
    assert!(replies[7].starts_with("421 4.7.0"), "{replies:?}");
    assert!(replies[8..].iter().all(String::is_empty), "{replies:?}");
    server.stop.send(true).unwrap();
}
