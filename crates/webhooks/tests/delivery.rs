//! Webhooks delivered to a real HTTP receiver on a real socket: signed, retried until the
//! receiver takes them, the same event id on every try, and given up after the window; and
//! never sent to a private address unless the operator allows it, however the hook names it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use mailtrail_domain::token::{Purpose, TokenKey};
use mailtrail_domain::{Event, EventKind, Reason};
use mailtrail_store::{AccountId, EmailId};
use mailtrail_store::{Content, Delivery, QueueEntry, Store, Submission};
use mailtrail_testkit::dns::Dns;
use mailtrail_webhooks::target::Targets;
use mailtrail_webhooks::{
    Dispatcher, EVENT_ID_HEADER, MessageIds, SIGNATURE_HEADER, WebhookConfig, verify,
};
use serde_json::{Value, json};
use tokio::sync::watch;

/// What the receiver saw: (event id header, signature header, body, status it answered).
type Seen = Arc<Mutex<Vec<(String, String, Vec<u8>, u16)>>>;

/// A receiver that answers 500 to its first `failures` requests, then 200.
async fn receiver(failures: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    async fn take(
        State((seen, failures)): State<(Seen, usize)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let mut seen = seen.lock().unwrap();
        let status = if seen.len() < failures {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        seen.push((
            header(EVENT_ID_HEADER),
            header(SIGNATURE_HEADER),
            body.to_vec(),
            status.as_u16(),
        ));
        status
    }
    let app = Router::new()
        .route("/hook", post(take))
        .with_state((seen.clone(), failures));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// Quick retries; the receivers are on loopback, so private targets are allowed.
fn fast() -> WebhookConfig {
    WebhookConfig {
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
        allow_private_targets: true,
        ..WebhookConfig::default()
    }
}

/// A store in `dir` with one account; the account's id.
async fn store_with_account(dir: &Path) -> (Store, String) {
    let store = Store::open_sqlite(dir, mailtrail_store::MasterKey::generate())
        .await
        .unwrap();
    let (account, _) = store.create_account("Acme").await.unwrap();
    (store, account.into())
}

/// The latest delivery to `hook`.
async fn latest(store: &Store, account: &str, hook: &str) -> Delivery {
    let mut history = store
        .webhook_deliveries(&AccountId::from(account), hook, 1)
        .await
        .unwrap();
    assert!(!history.is_empty(), "no delivery to {hook}");
    history.remove(0)
}

/// Queues one email to `to`; returns its id.
async fn queue(store: &Store, account: &str, to: &str) -> String {
    let submission = Submission {
        content: Content {
            from: "s@shop.test".into(),
            subject: "Hi".into(),
            text: Some("Hello".into()),
            html: None,
            ..Default::default()
        },
        batch: Some("spring".into()),
        send_at_ms: None,
        entries: vec![QueueEntry {
            to: to.parse().unwrap(),
            lead_id: None,
            fields: Default::default(),
            dropped: None,
            header_to: None,
        }],
    };
    store
        .enqueue(account, &submission, None, |_| String::new())
        .await
        .unwrap()
        .remove(0)
}

/// The token key the dispatchers make Message-IDs with.
fn tokens() -> TokenKey {
    TokenKey::new(b"webhook tests")
}

/// Runs a dispatcher that resolves names on `dns` until `done` holds or 10 s pass.
async fn dispatch_until(
    store: &Store,
    config: WebhookConfig,
    dns: &[SocketAddr],
    done: impl Fn() -> bool,
) {
    let targets = Targets::new(&config, dns).unwrap();
    dispatch_with(store, config, targets, done).await
}

/// [`dispatch_until`] with `targets` (and the answers they have cached).
async fn dispatch_with(
    store: &Store,
    config: WebhookConfig,
    targets: Targets,
    done: impl Fn() -> bool,
) {
    let (stop, stopped) = watch::channel(false);
    let dispatcher = Dispatcher::new(store.clone(), config, targets)
        .unwrap()
        .with_message_ids(MessageIds {
            tokens: tokens(),
            helo_name: "mta.shop.test".into(),
        });
    let mut stopped_rx = stopped.clone();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stopped_rx.wait_for(|s| *s).await;
    }));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    running.await.unwrap();
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_event_on_the_third_try_with_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let (store, account) = store_with_account(dir.path()).await;
    let (url, seen) = receiver(2).await;
    let hook = store.create_webhook(&account, &url, None).await.unwrap();
    let email = queue(&store, &account, "ana@x.test").await;

    let seen_for_check = seen.clone();
    dispatch_until(&store, fast(), &[], move || {
        seen_for_check.lock().unwrap().len() >= 3
    })
    .await;
    // Nothing more arrives once the receiver said 200.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        3,
        "two failures, then one success, then nothing"
    );
    let statuses: Vec<u16> = seen.iter().map(|s| s.3).collect();
    assert_eq!(statuses, [500, 500, 200]);
    let ids: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0] && !id.is_empty()),
        "{ids:?}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (_, signature, body, _) in &seen {
        assert!(
            verify(&hook.secret, signature, body, now, 300),
            "{signature}"
        );
        assert!(!verify("whsec_wrong", signature, body, now, 300));
    }
    let payload: Value = serde_json::from_slice(&seen[2].2).unwrap();
    assert_eq!(payload["id"], ids[0]);
    assert_eq!(payload["type"], "queued");
    assert_eq!(payload["email"]["id"], email.as_str());
    assert_eq!(payload["email"]["batch"], "spring");

    let history = store
        .webhook_deliveries(&AccountId::from(&account), &hook.id, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].state.as_str(), history[0].attempts),
        ("delivered", 3)
    );
    assert_eq!(history[0].last_status, Some(200));
    assert_eq!(store.webhook_backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn every_event_is_sent_once_per_hook_that_wants_it_and_failures_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let (store, account) = store_with_account(dir.path()).await;
    let (all_url, all) = receiver(0).await;
    let (failed_url, failed_only) = receiver(0).await;
    store
        .create_webhook(&account, &all_url, None)
        .await
        .unwrap();
    store
        .create_webhook(&account, &failed_url, Some(&["failed".to_owned()]))
        .await
        .unwrap();
    let email = queue(&store, &account, "bo@x.test").await;
    let deferred = Event::new(EventKind::Deferred, 1)
        .with_attempt(1)
        .with_status("452 4.2.2 Mailbox full");
    store
        .append_event(
            &AccountId::from(&account),
            &EmailId::from(&email),
            &deferred,
        )
        .await
        .unwrap();
    let bounce = Event::new(EventKind::Failed, 2)
        .with_reason(Reason::UserUnknown)
        .with_status("550 5.1.1 User unknown");
    store
        .append_event(&AccountId::from(&account), &EmailId::from(&email), &bounce)
        .await
        .unwrap();

    let (a, f) = (all.clone(), failed_only.clone());
    dispatch_until(&store, fast(), &[], move || {
        a.lock().unwrap().len() >= 3 && !f.lock().unwrap().is_empty()
    })
    .await;

    let types = |seen: &Seen| -> Vec<Value> {
        let mut payloads: Vec<Value> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| serde_json::from_slice(&s.2).unwrap())
            .collect();
        payloads.sort_by_key(|p| p["at_ms"].as_i64());
        payloads
    };
    let everything = types(&all);
    let kinds: Vec<&str> = everything
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(kinds.contains(&"queued") && kinds.contains(&"deferred") && kinds.contains(&"failed"));
    let deferral = everything.iter().find(|p| p["type"] == "deferred").unwrap();
    assert_eq!(deferral["data"]["attempt"], 1);
    let failed = types(&failed_only);
    assert_eq!(failed.len(), 1, "the second hook wants failures only");
    assert_eq!(failed[0]["data"]["failure"], "hard");
    assert_eq!(failed[0]["data"]["reason"], "userunknown");
}

#[tokio::test]
async fn a_receiver_that_never_answers_well_is_given_up_after_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let (store, account) = store_with_account(dir.path()).await;
    let (url, seen) = receiver(usize::MAX).await;
    let hook = store.create_webhook(&account, &url, None).await.unwrap();
    queue(&store, &account, "cy@x.test").await;
    let config = WebhookConfig {
        retry_window: Duration::from_millis(500),
        ..fast()
    };
    let gave_up = once(&store, &account, &[&hook.id], |d| d.state == "failed");
    let flag = gave_up.clone();
    dispatch_until(&store, config, &[], move || *flag.lock().unwrap()).await;
    assert!(*gave_up.lock().unwrap(), "the delivery was given up");
    assert_eq!(
        latest(&store, &account, &hook.id).await.last_status,
        Some(500)
    );
    assert!(
        seen.lock().unwrap().len() >= 2,
        "it was retried before giving up"
    );
}

/// A flag set once the latest delivery of each of `hooks` is `ready`.
fn once(
    store: &Store,
    account: &str,
    hooks: &[&str],
    ready: fn(&Delivery) -> bool,
) -> Arc<Mutex<bool>> {
    let done = Arc::new(Mutex::new(false));
    let (flag, store, account) = (done.clone(), store.clone(), account.to_owned());
    let hooks: Vec<String> = hooks.iter().map(|h| h.to_string()).collect();
    tokio::spawn(async move {
        loop {
            let mut all = true;
            for hook in &hooks {
                let history = store
                    .webhook_deliveries(&AccountId::from(&account), hook, 1)
                    .await
                    .unwrap();
                all &= history.first().is_some_and(ready);
            }
            if all {
                *flag.lock().unwrap() = true;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    done
}

#[tokio::test]
async fn a_hook_on_loopback_is_blocked_by_address_and_by_name_unless_private_targets_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, account) = store_with_account(dir.path()).await;
    let (url, seen) = receiver(0).await;
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    // Made in the store directly, as a hook made before the checks existed (or while the
    // operator allowed private targets) would be.
    let literal = store.create_webhook(&account, &url, None).await.unwrap();
    let name_url = format!("http://hook.rebind.test:{port}/hook");
    let by_name = store
        .create_webhook(&account, &name_url, None)
        .await
        .unwrap();
    // A name DNS does not know is a failure like any other, retried.
    let unknown = store
        .create_webhook(
            &account,
            &format!("http://gone.rebind.test:{port}/hook"),
            None,
        )
        .await
        .unwrap();
    let dns = Dns::start(&[("rebind.test", "hook IN A 127.0.0.1")]);
    queue(&store, &account, "di@x.test").await;

    let strict = WebhookConfig {
        allow_private_targets: false,
        ..fast()
    };
    let hooks = [literal.id.as_str(), &by_name.id, &unknown.id];
    let done = once(&store, &account, &hooks, |d| d.attempts > 0);
    dispatch_until(&store, strict, &[dns.address], move || {
        *done.lock().unwrap()
    })
    .await;

    assert!(
        seen.lock().unwrap().is_empty(),
        "the receiver was never reached"
    );
    for (hook, expected) in [
        (
            &literal,
            "blocked: 127.0.0.1 is not a public address (loopback)",
        ),
        (
            &by_name,
            "blocked: hook.rebind.test resolves to an address that is not public (loopback)",
        ),
    ] {
        let delivery = latest(&store, &account, &hook.id).await;
        assert_eq!(delivery.state, "failed", "given up at once: {delivery:?}");
        assert_eq!((delivery.attempts, delivery.last_status), (1, None));
        let error = delivery.last_error.as_deref().unwrap_or_default();
        assert!(error.starts_with(expected), "{error}");
    }

    let delivery = latest(&store, &account, &unknown.id).await;
    let error = delivery.last_error.as_deref().unwrap_or_default();
    assert_eq!(delivery.state, "pending", "{delivery:?}");
    assert!(
        error.starts_with("no answer: gone.rebind.test does not resolve"),
        "{error}"
    );

    // With private targets allowed, the name's address is the one connected to.
    for hook in [&literal, &by_name, &unknown] {
        store
            .delete_webhook(&AccountId::from(&account), &hook.id)
            .await
            .unwrap();
    }
    let lenient = store
        .create_webhook(&account, &name_url, None)
        .await
        .unwrap();
    queue(&store, &account, "ed@x.test").await;
    let seen_for_check = seen.clone();
    dispatch_until(&store, fast(), &[dns.address], move || {
        !seen_for_check.lock().unwrap().is_empty()
    })
    .await;
    let delivery = latest(&store, &account, &lenient.id).await;
    assert_eq!(delivery.state, "delivered", "{delivery:?}");
}

#[tokio::test]
async fn a_name_re_pointed_at_loopback_is_blocked_once_its_cached_answer_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (store, account) = store_with_account(dir.path()).await;
    let (url, seen) = receiver(0).await;
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let url = format!("http://hook.rebind.test:{port}/hook");
    // Public for a second when the hook is made: the check caches that answer.
    let mut dns = Dns::start(&[("rebind.test", "hook 1 IN A 8.8.8.8")]);
    let strict = WebhookConfig {
        allow_private_targets: false,
        ..fast()
    };
    let targets = Targets::new(&strict, &[dns.address]).unwrap();
    targets.check(&targets.parse(&url).unwrap()).await.unwrap();
    let hook = store.create_webhook(&account, &url, None).await.unwrap();

    // The same server then answers loopback, and the cached answer's second passes.
    dns.restart(&[("rebind.test", "hook 1 IN A 127.0.0.1")]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    queue(&store, &account, "gu@x.test").await;
    let done = once(&store, &account, &[&hook.id], |d| d.attempts > 0);
    dispatch_with(&store, strict, targets, move || *done.lock().unwrap()).await;

    assert!(seen.lock().unwrap().is_empty(), "the receiver was reached");
    let delivery = latest(&store, &account, &hook.id).await;
    let error = delivery.last_error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("blocked: hook.rebind.test resolves to an address that is not public"),
        "{delivery:?}"
    );
}

#[tokio::test]
async fn an_https_hook_is_reached_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (store, account) = store_with_account(dir.path()).await;
    // Not a TLS server: it keeps the first bytes the dispatcher sends.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let first = Arc::new(Mutex::new(None::<u8>));
    let seen = first.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        *seen.lock().unwrap() = Some(byte[0]);
    });
    store.create_webhook(&account, &url, None).await.unwrap();
    queue(&store, &account, "fa@x.test").await;

    let check = first.clone();
    dispatch_until(&store, fast(), &[], move || check.lock().unwrap().is_some()).await;
    assert_eq!(
        *first.lock().unwrap(),
        Some(0x16),
        "the first record is a TLS handshake"
    );
}

/// [`standard_receiver.py`](./standard_receiver.py): verifies each POST with the
/// `standardwebhooks` library.
const STANDARD_RECEIVER: &str = include_str!("standard_receiver.py");

/// Starts [`STANDARD_RECEIVER`]; its URL and process.
fn standard_receiver(secret_file: &Path, log: &Path) -> (String, std::process::Child) {
    let python = "/opt/mailtrail-venv/bin/python";
    assert!(
        Path::new(python).exists(),
        "{python} is missing: run scripts/install-test-deps (standardwebhooks from PyPI)"
    );
    let mut receiver = std::process::Command::new(python)
        .arg("-c")
        .arg(STANDARD_RECEIVER)
        .arg(secret_file)
        .arg(log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(receiver.stdout.take().unwrap()),
        &mut port,
    )
    .unwrap();
    (format!("http://127.0.0.1:{}/hook", port.trim()), receiver)
}

/// The receiver's log: one JSON line per POST.
fn received(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn the_standard_webhooks_library_verifies_every_post_and_refuses_a_tampered_one() {
    let dir = tempfile::tempdir().unwrap();
    let (store, account) = store_with_account(dir.path()).await;
    let log = dir.path().join("received.jsonl");
    let secret_file = dir.path().join("secret");
    let (url, mut receiver) = standard_receiver(&secret_file, &log);
    let hook = store.create_webhook(&account, &url, None).await.unwrap();
    assert!(hook.secret.starts_with("whsec_"), "{}", hook.secret);
    std::fs::write(&secret_file, &hook.secret).unwrap();

    let email = queue_sale(&store, &account).await;
    let failed = Event::new(EventKind::Failed, 2)
        .with_status("550 5.1.1 No such user")
        .with_reason(Reason::UserUnknown);
    store
        .record(
            &AccountId::from(&account),
            &EmailId::from(&email),
            &failed,
            Default::default(),
        )
        .await
        .unwrap();
    dispatch_until(&store, fast(), &[], || received(&log).len() >= 2).await;
    receiver.kill().unwrap();
    receiver.wait().unwrap();

    let lines = received(&log);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line["verified"], true, "{line}");
        assert_eq!(line["tampered_verified"], false, "{line}");
    }
    let types: Vec<&str> = lines
        .iter()
        .map(|l| l["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["queued", "failed"]);
    // Every event says which message it is about, as the receiver's own records name it.
    let token = tokens().sign(Purpose::Message, &email, None).unwrap();
    for line in &lines {
        let about = &line["event"]["email"];
        assert_eq!(about["id"], email.as_str());
        assert_eq!(
            about["message_id"],
            format!("<{email}.{token}@mta.shop.test>")
        );
        assert_eq!(about["subject"], "Spring sale");
        assert_eq!(
            (&about["from"], &about["from_name"]),
            (&"news@shop.test".into(), &"Shop Team".into())
        );
        assert_eq!(about["batch"], "spring");
        assert_eq!(about["tags"], serde_json::json!(["sale", "spring"]));
        assert_eq!(about["metadata"], serde_json::json!({"order": "42"}));
    }
    assert_eq!(latest(&store, &account, &hook.id).await.state, "delivered");
}

#[tokio::test]
async fn payloads_carry_the_message_a_click_its_url_a_reply_its_from_and_text_and_a_test_is_sent_now()
 {
    use mailtrail_domain::token::{Purpose, TokenKey};
    let dir = tempfile::tempdir().unwrap();
    let (store, account) = store_with_account(dir.path()).await;
    let (log, secret_file) = (dir.path().join("received.jsonl"), dir.path().join("secret"));
    let (url, mut receiver) = standard_receiver(&secret_file, &log);
    let hook = store.create_webhook(&account, &url, None).await.unwrap();
    std::fs::write(&secret_file, &hook.secret).unwrap();

    let email = queue_sale(&store, &account).await;
    // A click as the tracking endpoint records it: the URL is the event's note.
    let mut click = Event::new(EventKind::Clicked, 3);
    click.detail.note = Some("https://shop.test/sale?item=7".into());
    store
        .append_event(&AccountId::from(&account), &EmailId::from(&email), &click)
        .await
        .unwrap();
    let tokens = TokenKey::new(b"a token key for this test only");
    let token = tokens.sign(Purpose::Message, &email, None).unwrap();
    receive_reply(&store, &tokens, &email).await;

    let config = fast();
    let targets = Targets::new(&config, &[]).unwrap();
    let (stop, stopped) = watch::channel(false);
    let dispatcher = Dispatcher::new(store.clone(), config, targets.clone())
        .unwrap()
        .with_message_ids(mailtrail_webhooks::MessageIds {
            tokens: tokens.clone(),
            helo_name: "mta.shop.test".into(),
        });
    let mut stopped_rx = stopped.clone();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stopped_rx.wait_for(|s| *s).await;
    }));
    let deadline = Instant::now() + Duration::from_secs(10);
    while received(&log).len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    running.await.unwrap();

    // The test event, sent now and answered with the receiver's status.
    let test =
        mailtrail_webhooks::send_test(&store, &targets, &AccountId::from(&account), &hook.id)
            .await
            .unwrap();
    assert_eq!(
        (
            test.state.as_str(),
            test.last_status,
            test.event_type.as_str()
        ),
        ("delivered", Some(204), "test"),
        "{test:?}"
    );
    receiver.kill().unwrap();
    receiver.wait().unwrap();

    let lines = received(&log);
    assert_eq!(lines.len(), 4, "queued, clicked, replied, test: {lines:?}");
    for line in &lines {
        assert_eq!(
            (&line["verified"], &line["tampered_verified"]),
            (&json!(true), &json!(false)),
            "{line}"
        );
    }
    let event = |kind: &str| -> &Value {
        &lines
            .iter()
            .find(|l| l["event"]["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event: {lines:?}"))["event"]
    };
    let message_id = format!("<{email}.{token}@mta.shop.test>");
    for kind in ["queued", "clicked", "replied"] {
        let e = &event(kind)["email"];
        assert_eq!(e["id"], email.as_str(), "{kind}");
        assert_eq!(e["subject"], "Spring sale", "{kind}");
        assert_eq!(
            (&e["from"], &e["from_name"]),
            (&json!("news@shop.test"), &json!("Shop Team")),
            "{kind}"
        );
        assert_eq!(e["message_id"], message_id.as_str(), "{kind}");
        assert_eq!(e["batch"], "spring", "{kind}");
        assert_eq!(e["tags"], json!(["sale", "spring"]), "{kind}");
        assert_eq!(e["metadata"], json!({"order": "42"}), "{kind}");
    }
    assert_eq!(
        event("clicked")["data"]["url"],
        "https://shop.test/sale?item=7"
    );
    let reply = &event("replied")["data"]["reply"];
    assert_eq!(
        (&reply["from"], &reply["from_name"]),
        (&json!("ana@x.test"), &json!("Ana Pérez")),
        "{reply}"
    );
    let text = reply["text"].as_str().unwrap();
    assert!(
        text.starts_with("Yes please, send me the catalogue. more more"),
        "one line, spaces collapsed: {text}"
    );
    assert_eq!(
        text.chars().count(),
        mailtrail_webhooks::REPLY_EXCERPT_CHARS
    );
    let test = event("test");
    assert_eq!(test["email"], Value::Null);
    assert_eq!(
        test["id"],
        store
            .webhook_deliveries(&AccountId::from(&account), &hook.id, 1)
            .await
            .unwrap()[0]
            .event_id
    );
}

/// Queues one email to ana@x.test of a content with every field a payload carries.
async fn queue_sale(store: &Store, account: &str) -> String {
    let submission = Submission {
        content: Content {
            from: "news@shop.test".into(),
            from_name: Some("Shop Team".into()),
            subject: "Spring sale".into(),
            text: Some("Hello".into()),
            tags: vec!["sale".into(), "spring".into()],
            metadata: [("order".to_owned(), "42".to_owned())].into(),
            ..Default::default()
        },
        batch: Some("spring".into()),
        send_at_ms: None,
        entries: vec![QueueEntry {
            to: "ana@x.test".parse().unwrap(),
            lead_id: None,
            fields: Default::default(),
            dropped: None,
            header_to: None,
        }],
    };
    store
        .enqueue(account, &submission, None, |_| String::new())
        .await
        .unwrap()
        .remove(0)
}

/// Ana's reply to `email`, received and processed as the service does.
async fn receive_reply(store: &Store, tokens: &mailtrail_domain::token::TokenKey, email: &str) {
    let token = tokens
        .sign(mailtrail_domain::token::Purpose::Message, email, None)
        .unwrap();
    let reply = format!(
        "From: =?utf-8?q?Ana_P=C3=A9rez?= <ana@x.test>\r\nTo: <reply+{token}@bounce.shop.test>\r\n\
         Subject: Re: Spring sale\r\nMessage-ID: <r1@x.test>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nYes please,\r\n  send me   the \
         catalogue. {}\r\n",
        "more ".repeat(200)
    );
    store
        .save_inbound(
            "ana@x.test",
            &[format!("reply+{token}@bounce.shop.test")],
            reply.as_bytes(),
        )
        .await
        .unwrap();
    let processor =
        mailtrail_inbound::process::Processor::new(store.clone(), tokens.clone(), Arc::default());
    assert_eq!(processor.process_pending().await.unwrap(), 1);
}

#[tokio::test]
async fn an_erased_lead_s_message_and_reply_are_not_sent_with_events_still_waiting() {
    use mailtrail_domain::token::TokenKey;
    let dir = tempfile::tempdir().unwrap();
    let (store, account) = store_with_account(dir.path()).await;
    let (url, seen) = receiver(0).await;
    store.create_webhook(&account, &url, None).await.unwrap();
    let lead = store
        .create_lead(
            &account,
            &mailtrail_store::NewLead {
                address: "ana@x.test".parse().unwrap(),
                first_name: None,
                last_name: None,
                fields: Default::default(),
                permission: mailtrail_domain::Permission::Yes,
            },
        )
        .await
        .unwrap();
    let email = queue_sale(&store, &account).await;
    let tokens = TokenKey::new(b"a token key for this test only");
    receive_reply(&store, &tokens, &email).await;
    // Erased before the dispatcher ran: its events are still waiting, and the erasure
    // cancels the queued email (a third event).
    store
        .erase_lead(&AccountId::from(&account), &lead.id, "test")
        .await
        .unwrap();

    let check = seen.clone();
    dispatch_until(&store, fast(), &[], move || {
        check.lock().unwrap().len() >= 3
    })
    .await;
    let payloads: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| serde_json::from_slice(&s.2).unwrap())
        .collect();
    let mut types: Vec<&str> = payloads
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["failed", "queued", "replied"], "{payloads:?}");
    for payload in &payloads {
        let text = payload.to_string();
        for personal in ["ana@x.test", "Ana", "Spring sale", "catalogue", "\"order\""] {
            assert!(!text.contains(personal), "{personal} was sent: {text}");
        }
        assert_eq!(payload["email"]["subject"], "[erased]", "{payload}");
        assert_eq!(payload["email"]["metadata"], json!({}), "{payload}");
    }
    let reply = &payloads.iter().find(|p| p["type"] == "replied").unwrap()["data"]["reply"];
    assert_eq!(
        reply,
        &json!({"from": null, "from_name": null, "text": null})
    );
}

/// The library's own signature of `body` for `secret`, `id` and `timestamp`.
fn library_signature(secret: &str, id: &str, timestamp: u64, body: &str) -> String {
    let script = "import sys, datetime\n\
        from standardwebhooks.webhooks import Webhook\n\
        at = datetime.datetime.fromtimestamp(int(sys.argv[3]), datetime.timezone.utc)\n\
        print(Webhook(sys.argv[1]).sign(sys.argv[2], at, sys.argv[4].encode()))";
    let out = std::process::Command::new("/opt/mailtrail-venv/bin/python")
        .args(["-c", script, secret, id, &timestamp.to_string(), body])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn new_base64_secrets_and_older_hex_ones_sign_as_the_library_expects() {
    let dir = tempfile::tempdir().unwrap();
    let (store, account) = store_with_account(dir.path()).await;
    let new = store
        .create_webhook(&account, "https://crm.test/h", None)
        .await
        .unwrap()
        .secret;
    // As hooks made before Standard Webhooks signing were shown theirs.
    let older = format!("whsec_{}", "0123456789abcdef".repeat(4));
    let body = r#"{"id":"ev1","type":"queued"}"#;
    for secret in [new.as_str(), older.as_str()] {
        assert_eq!(
            mailtrail_webhooks::sign_standard(secret, "ev1", 1_800_000_000, body.as_bytes()),
            library_signature(secret, "ev1", 1_800_000_000, body),
            "{secret}"
        );
    }
    assert_ne!(
        mailtrail_webhooks::sign_standard(&new, "ev2", 1_800_000_000, body.as_bytes()),
        library_signature(&new, "ev1", 1_800_000_000, body),
        "the id is signed"
    );
}
