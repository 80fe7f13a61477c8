//! `/v1/webhooks` over the API: admins only, URLs and event types checked, history readable,
//! the secret shown once, internal addresses refused, and another account's hook looks missing.

mod common;

use axum::http::StatusCode;
use common::app;
use mailtrail_domain::Role;
use mailtrail_store::EmailId;
use serde_json::json;

#[tokio::test]
async fn admins_register_hooks_and_read_their_history() {
    let app = app().await;
    let (account, admin) = app.store.create_account("Acme").await.unwrap();
    let (_, other) = app.store.create_account("Other").await.unwrap();
    let user = app
        .store
        .create_api_key(Some(&account), Role::User)
        .await
        .unwrap();
    let hook = json!({"url": "http://127.0.0.1:9/hook", "events": ["delivered", "failed"]});

    let (status, _, _) = app
        .call("POST", "/v1/webhooks", Some(&user.key), Some(hook.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a user key may not");
    let (status, problem, _) = app
        .call(
            "POST",
            "/v1/webhooks",
            Some(&admin.key),
            Some(json!({"url": "ftp://x", "events": ["bounced"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "url");
    let (status, problem, _) = app
        .call(
            "POST",
            "/v1/webhooks",
            Some(&admin.key),
            Some(json!({"url": "https://crm.test/h", "events": ["bounced"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("'bounced' is not an event type")
    );

    let (status, created, _) = app
        .call("POST", "/v1/webhooks", Some(&admin.key), Some(hook))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["url"], "http://127.0.0.1:9/hook");

    let (_, list, _) = app
        .call("GET", "/v1/webhooks", Some(&admin.key), None)
        .await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(list["webhooks"][0]["id"], id);
    assert!(
        list["webhooks"][0].get("secret").is_none()
            && !list
                .to_string()
                .contains(created["secret"].as_str().unwrap()),
        "the secret is shown once, at creation: {list}"
    );
    assert!(
        list["event_types"]
            .as_array()
            .unwrap()
            .contains(&json!("clicked"))
    );

    // A failure is queued for the hook in the event's own transaction.
    let (status, sent, _) = app
        .call(
            "POST",
            "/v1/emails",
            Some(&admin.key),
            Some(json!({"to": "ana@x.test", "from": "s@shop.test", "subject": "Hi", "text": "Hello"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let email = sent["id"].as_str().unwrap();
    let bounce = mailtrail_domain::Event::new(mailtrail_domain::EventKind::Failed, 1)
        .with_reason(mailtrail_domain::Reason::UserUnknown);
    app.store
        .append_event(&account, &EmailId::from(email), &bounce)
        .await
        .unwrap();
    let uri = format!("/v1/webhooks/{id}/deliveries");
    let (status, history, _) = app.call("GET", &uri, Some(&admin.key), None).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let deliveries = history["deliveries"].as_array().unwrap();
    assert_eq!(
        deliveries.len(),
        1,
        "queued is not among the hook's events: {history}"
    );
    assert_eq!(deliveries[0]["event_type"], "failed");
    assert_eq!(deliveries[0]["state"], "pending");
    assert_eq!(deliveries[0]["payload"]["data"]["failure"], "hard");

    let (status, _, _) = app.call("GET", &uri, Some(&other.key), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another account's hook looks missing"
    );
    let (status, _, _) = app
        .call(
            "DELETE",
            &format!("/v1/webhooks/{id}"),
            Some(&other.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app
        .call(
            "DELETE",
            &format!("/v1/webhooks/{id}"),
            Some(&admin.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, history, _) = app.call("GET", &uri, Some(&admin.key), None).await;
    assert_eq!(history["deliveries"][0]["state"], "cancelled");
    assert_eq!(app.store.webhook_backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn internal_addresses_are_refused_unless_the_operator_allows_private_targets() {
    let dns = mailtrail_testkit::dns::Dns::start(&[(
        "hooks.test",
        "public IN A 8.8.8.8\nloop IN A 127.0.0.1\nmixed IN A 8.8.8.8\nmixed IN A 10.0.0.7\n\
         metadata IN A 169.254.169.254\nv6 IN AAAA ::1",
    )]);
    let mut app = app().await;
    app.set_webhook_targets(false, dns.address);
    let (_, admin) = app.store.create_account("Acme").await.unwrap();
    let create = async |app: &common::App, url: &str| {
        app.call(
            "POST",
            "/v1/webhooks",
            Some(&admin.key),
            Some(json!({ "url": url })),
        )
        .await
    };
    for (url, message) in [
        (
            "http://2130706433/",
            "127.0.0.1 is not a public address (loopback)",
        ),
        (
            "http://[::ffff:10.0.0.1]/",
            "is not a public address (private, RFC 1918)",
        ),
        (
            "http://good.example@8.8.8.8/",
            "must not hold a user name or password",
        ),
        (
            "http://localhost:8025/",
            "localhost is not a public address (loopback)",
        ),
        ("http://metadata.google.internal/", "(cloud metadata)"),
        (
            "http://loop.hooks.test/",
            "loop.hooks.test resolves to an address that is not public (loopback)",
        ),
        (
            "http://mixed.hooks.test/",
            "resolves to an address that is not public (private, RFC 1918)",
        ),
        ("http://metadata.hooks.test/", "not public (cloud metadata)"),
        ("http://v6.hooks.test/", "not public (loopback)"),
        (
            "http://nowhere.hooks.test/",
            "nowhere.hooks.test does not resolve",
        ),
    ] {
        let (status, problem, content_type) = create(&app, url).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {problem}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["errors"][0]["field"], "url", "{problem}");
        let said = problem["errors"][0]["message"].as_str().unwrap();
        assert!(said.contains(message), "{url}: {said}");
        // A name's answer is never echoed: it would map internal DNS for the admin.
        if url.contains(".hooks.test") {
            for address in ["127.0.0.1", "10.0.0.7", "169.254.169.254", "::1"] {
                assert!(!said.contains(address), "{url} told {address}: {said}");
            }
        }
    }
    let (status, created, _) = create(&app, "http://public.hooks.test:8080/h").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    app.set_webhook_targets(true, dns.address);
    for url in [
        "http://loop.hooks.test/",
        "http://2130706433:9/",
        "http://[fd12::1]/",
    ] {
        let (status, created, _) = create(&app, url).await;
        assert_eq!(status, StatusCode::CREATED, "{url} on a LAN: {created}");
    }
    let (_, created, _) = create(&app, "http://0x7f.1/").await;
    assert_eq!(
        created["url"], "http://127.0.0.1/",
        "stored as it is connected to"
    );
    for url in [
        "http://metadata.hooks.test/",
        "http://0.0.0.0:8025/",
        "http://[fd00:ec2::254]/",
    ] {
        let (status, problem, _) = create(&app, url).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url} even on a LAN: {problem}"
        );
    }
}

/// The `standardwebhooks` receiver the dispatcher's tests use (Python's `http.server`
/// verifying each POST with the library); its URL and process. It logs one JSON line per POST.
fn standard_receiver(
    secret: &std::path::Path,
    log: &std::path::Path,
) -> (String, std::process::Child) {
    let python = "/opt/mailtrail-venv/bin/python";
    assert!(
        std::path::Path::new(python).exists(),
        "{python} is missing: run scripts/install-test-deps (standardwebhooks from PyPI)"
    );
    let mut receiver = std::process::Command::new(python)
        .arg("-c")
        .arg(include_str!("../../webhooks/tests/standard_receiver.py"))
        .arg(secret)
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

#[tokio::test]
async fn a_test_event_is_sent_now_signed_and_answered_with_what_the_receiver_said() {
    let dir = tempfile::tempdir().unwrap();
    let (secret_file, log) = (dir.path().join("secret"), dir.path().join("log"));
    let (url, mut receiver) = standard_receiver(&secret_file, &log);
    let mut app = app().await;
    let (_, admin) = app.store.create_account("Acme").await.unwrap();
    let (_, other) = app.store.create_account("Other").await.unwrap();
    let (status, created, _) = app
        .call(
            "POST",
            "/v1/webhooks",
            Some(&admin.key),
            Some(json!({"url": url, "events": ["failed"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    std::fs::write(&secret_file, created["secret"].as_str().unwrap()).unwrap();
    let test = format!("/v1/webhooks/{}/test", created["id"].as_str().unwrap());

    let (status, answer, _) = app.call("POST", &test, Some(&admin.key), None).await;
    receiver.kill().unwrap();
    receiver.wait().unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (
            &answer["state"],
            &answer["last_status"],
            &answer["event_type"]
        ),
        (&json!("delivered"), &json!(204), &json!("test")),
        "sent although the hook wants failures only: {answer}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        (&lines[0]["verified"], &lines[0]["tampered_verified"]),
        (&json!(true), &json!(false)),
        "the library verifies it and refuses a tampered copy: {lines:?}"
    );
    assert_eq!(lines[0]["event"]["type"], "test");
    assert_eq!(lines[0]["event"]["id"], answer["event_id"]);

    // The receiver is gone: the answer says so, and the delivery is not retried.
    let (_, answer, _) = app.call("POST", &test, Some(&admin.key), None).await;
    assert_eq!(answer["state"], "failed", "{answer}");
    assert_eq!(answer["last_status"], serde_json::Value::Null);
    assert!(
        answer["last_error"]
            .as_str()
            .unwrap()
            .starts_with("no answer:"),
        "{answer}"
    );
    // Once the operator no longer allows private targets, nothing is sent to loopback.
    let dns = mailtrail_testkit::dns::Dns::start(&[("hooks.test", "public IN A 8.8.8.8")]);
    app.set_webhook_targets(false, dns.address);
    let (_, answer, _) = app.call("POST", &test, Some(&admin.key), None).await;
    assert_eq!(answer["state"], "failed", "{answer}");
    assert!(
        answer["last_error"]
            .as_str()
            .unwrap()
            .starts_with("blocked: 127.0.0.1 is not a public address"),
        "{answer}"
    );

    let history = format!(
        "/v1/webhooks/{}/deliveries",
        created["id"].as_str().unwrap()
    );
    let (_, history, _) = app.call("GET", &history, Some(&admin.key), None).await;
    let states: Vec<&str> = history["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["failed", "failed", "delivered"], "{history}");
    let (status, _, _) = app.call("POST", &test, Some(&other.key), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another account's hook looks missing"
    );
    assert_eq!(app.store.webhook_backlog().await.unwrap(), 0);
}
