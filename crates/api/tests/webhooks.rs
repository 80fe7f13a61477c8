//! `/v1/webhooks` over the API: admins only, URLs and event types checked, history readable,
//! and another account's hook looks missing.

mod common;

use axum::http::StatusCode;
use common::app;
use mailtrail_domain::Role;
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

    let (_, list, _) = app
        .call("GET", "/v1/webhooks", Some(&admin.key), None)
        .await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
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
        .append_event(&account, email, &bounce)
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
