//! Webhook SSRF (issue 16 item 4): an account admin chooses a hook's URL, but the POST leaves
//! from the Mailtrail host. No spelling of an internal address may be accepted as a hook, and a
//! name that pointed at a public address when the hook was made and points at loopback now
//! (DNS rebinding) must not be connected to: the delivery says "blocked", not what the port
//! answered. Names resolve through a real NSD serving the test zone (`dns_servers`).

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mailtrail_testkit::dns::Dns;
use serde_json::{Value, json};

use crate::common::{self, KillOnDrop};

/// `POST /v1/webhooks` with `url`: status and answer.
async fn create_hook(base: &str, key: &str, url: &str) -> (u16, Value, String) {
    let answer = reqwest::Client::new()
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(key)
        .json(&json!({ "url": url }))
        .send()
        .await
        .expect("the API answers");
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        answer.json().await.unwrap_or(Value::Null),
        content_type,
    )
}

/// A TCP listener on loopback that counts the connections it accepts (and answers none).
fn loopback_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, accepted)
}

fn environment<'a>(data: &'a str, dns: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("MAILTRAIL_DATA_DIR", data),
        ("MAILTRAIL_DNS_SERVERS", dns),
        // The emails these tests send go nowhere: a closed port on loopback.
        ("MAILTRAIL_OUTBOUND_ROUTES", "*=127.0.0.1:9"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn no_spelling_of_an_internal_address_is_accepted_as_a_hook() {
    let dns = Dns::start(&[(
        "hooks.test",
        "loop IN A 127.0.0.1\nlan IN A 192.168.1.20\nmixed IN A 8.8.8.8\nmixed IN A 10.1.2.3\n\
         meta IN A 169.254.169.254\nloop6 IN AAAA ::1",
    )]);
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let servers = format!("[{}]", dns.address);
    let env = environment(data.to_str().unwrap(), &servers);
    let (_, key) = common::create_account(&env, "Shop");
    let (child, base) = common::serve(&env);
    let _serve = KillOnDrop(child);
    let (port, accepted) = loopback_listener();

    let forms = [
        format!("http://127.0.0.1:{port}/"),
        format!("{base}/v1/health"),
        format!("http://localhost:{port}/"),
        format!("http://LOCALHOST.:{port}/"),
        format!("http://api.localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://017700000001:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::ffff:7f00:1]:{port}/"),
        format!("http://[64:ff9b::7f00:1]:{port}/"),
        format!("http://good.example@127.0.0.1:{port}/"),
        format!("http://good.example:pw@127.0.0.1:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        format!("http://0:{port}/"),
        format!("http://[::]:{port}/"),
        "http://10.0.0.1/".into(),
        "http://172.16.5.4/".into(),
        "http://192.168.1.1/".into(),
        "http://100.64.0.1/".into(),
        "http://[fd00::1]/".into(),
        "http://[fc00::1]/".into(),
        "http://169.254.10.10/".into(),
        "http://[fe80::1]/".into(),
        "http://[fec0::1]/".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://[::ffff:169.254.169.254]/".into(),
        "http://[fd00:ec2::254]/latest/meta-data/".into(),
        "http://metadata.google.internal/computeMetadata/v1/".into(),
        "http://224.0.0.1/".into(),
        "http://255.255.255.255/".into(),
        "http://crm.internal/".into(),
        format!("http://loop.hooks.test:{port}/"),
        "http://lan.hooks.test/".into(),
        "http://mixed.hooks.test/".into(),
        "http://meta.hooks.test/".into(),
        format!("http://loop6.hooks.test:{port}/"),
    ];
    let mut accepted_forms = Vec::new();
    for url in &forms {
        let (status, answer, content_type) = create_hook(&base, &key, url).await;
        if status != 422 {
            accepted_forms.push(format!("{url} → {status} {answer}"));
            continue;
        }
        assert_eq!(content_type, "application/problem+json", "{url}");
        assert_eq!(answer["errors"][0]["field"], "url", "{url}: {answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            [
                "not a public address",
                "address that is not public",
                "user name"
            ]
            .iter()
            .any(|reason| message.contains(reason)),
            "{url}: the reason is clear: {message}"
        );
    }
    assert!(
        accepted_forms.is_empty(),
        "internal targets were accepted:\n{}",
        accepted_forms.join("\n")
    );
    let hooks = common::get_json(&base, &key, "/v1/webhooks").await;
    assert_eq!(hooks["webhooks"], json!([]), "nothing was stored");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "nothing was connected to"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_whose_name_is_re_pointed_at_loopback_is_blocked_not_reached() {
    let (port, accepted) = loopback_listener();
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let data = data.to_str().unwrap();

    // When the hook is made, its name points at a public address, for a second (its TTL).
    let mut dns = Dns::start(&[("rebind.test", "hook 1 IN A 8.8.8.8")]);
    let servers = format!("[{}]", dns.address);
    let env = environment(data, &servers);
    let (_, key) = common::create_account(&env, "Shop");
    let url = format!("http://hook.rebind.test:{port}/events");
    let (child, base) = common::serve(&env);
    let _serve = KillOnDrop(child);
    let (status, created, _) = create_hook(&base, &key, &url).await;
    assert_eq!(status, 201, "a public target is accepted: {created}");
    assert!(created["secret"].as_str().is_some_and(|s| !s.is_empty()));
    let listed = common::get_json(&base, &key, "/v1/webhooks").await;
    assert!(
        listed["webhooks"][0].get("secret").is_none(),
        "the secret is shown once, at creation: {listed}"
    );
    let hook_id = created["id"].as_str().unwrap().to_owned();

    // Then the same DNS server re-points the name at loopback, where the listener waits, and
    // the answer the service cached when the hook was made expires: the same process must
    // see the new answer, and refuse it.
    dns.restart(&[("rebind.test", "hook 1 IN A 127.0.0.1")]);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    common::send_email(
        &base,
        &key,
        &json!({"to": "ana@lead.test", "from": "s@shop.test", "subject": "Hi", "text": "Hello"}),
    )
    .await;

    let path = format!("/v1/webhooks/{hook_id}/deliveries");
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivery = loop {
        let history = common::get_json(&base, &key, &path).await;
        let first = history["deliveries"][0].clone();
        if first["last_error"].is_string() || first["state"] != "pending" && !first.is_null() {
            break first;
        }
        assert!(
            Instant::now() < deadline,
            "the delivery was never attempted: {history}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Time for a connection that was made anyway to be counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "the loopback listener was reached: {delivery}"
    );
    let error = delivery["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("blocked:") && error.contains("(loopback)"),
        "the delivery says it was blocked: {delivery}"
    );
    assert!(
        !error.contains("127.0.0.1"),
        "the name's address is not told: {delivery}"
    );
    assert_eq!(delivery["last_status"], Value::Null, "{delivery}");
    assert_eq!(delivery["state"], "failed", "not retried: {delivery}");
}
