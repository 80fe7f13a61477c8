//! Sending through the API: 202 only once queued, refusals for leads whose Permission to
//! Email is No, drops for suppressed addresses, batches with merge fields, idempotent
//! retries, and the suppression endpoints' roles.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::app;
use mailtrail_domain::{EmailAddress, Reason, Role};
use mailtrail_store::Block;
use serde_json::json;

fn email_to(to: &str) -> serde_json::Value {
    json!({"to": to, "from": "sales@shop.test", "subject": "Hi {{first_name}}", "text": "Hello"})
}

#[tokio::test]
async fn a_single_email_is_queued_and_readable_with_its_events() {
    let app = app().await;
    let (account, key) = app.store.create_account("Acme").await.unwrap();
    let (status, body, _) = app
        .call(
            "POST",
            "/v1/emails",
            Some(&key.key),
            Some(email_to("ana@example.com")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["id"].as_str().unwrap();
    assert_eq!(
        app.store.queue_depth().await.unwrap(),
        1,
        "durably queued before the 202"
    );

    let (status, email, _) = app
        .call("GET", &format!("/v1/emails/{id}"), Some(&key.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(email["stage"], "sent");
    assert_eq!(email["last_action"], "Sent");
    assert_eq!(
        email["subject"], "Hi ",
        "the subject as the recipient saw it: no lead, so no first name"
    );
    assert_eq!(email["events"][0]["kind"], "queued");

    let (_, other) = app.store.create_account("Globex").await.unwrap();
    let (status, _, _) = app
        .call("GET", &format!("/v1/emails/{id}"), Some(&other.key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(app.store.email(&account, id).await.is_ok());
}

#[tokio::test]
async fn a_lead_with_permission_no_is_refused_and_a_suppressed_address_dropped() {
    let app = app().await;
    let (account, key) = app.store.create_account("Acme").await.unwrap();
    let (_, lead, _) = app
        .call(
            "POST",
            "/v1/leads",
            Some(&key.key),
            Some(json!({"email": "no@example.com", "permission_to_email": "no"})),
        )
        .await;

    let by_address = app
        .call(
            "POST",
            "/v1/emails",
            Some(&key.key),
            Some(email_to("NO@example.com")),
        )
        .await;
    let mut by_lead_body = email_to("x@example.com");
    by_lead_body.as_object_mut().unwrap().remove("to");
    by_lead_body["lead_id"] = lead["id"].clone();
    let by_lead = app
        .call("POST", "/v1/emails", Some(&key.key), Some(by_lead_body))
        .await;
    for (status, problem, _) in [by_address, by_lead] {
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("Permission to Email set to No"),
            "{problem}"
        );
    }
    assert_eq!(app.store.queue_depth().await.unwrap(), 0);

    let blocked = EmailAddress::parse("gone@example.com").unwrap();
    let block = Block {
        reason: Reason::UserUnknown,
        status: Some("550 5.1.1 User unknown".into()),
        email_id: None,
    };
    app.store
        .suppress(&account, &blocked, &block, "test")
        .await
        .unwrap();
    let (status, body, _) = app
        .call(
            "POST",
            "/v1/emails",
            Some(&key.key),
            Some(email_to("gone@example.com")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["dropped"], "suppressed");
    let (_, email, _) = app
        .call(
            "GET",
            &format!("/v1/emails/{}", body["id"].as_str().unwrap()),
            Some(&key.key),
            None,
        )
        .await;
    assert_eq!(
        (email["stage"].as_str(), email["status"].as_str()),
        (Some("failed"), Some("Dropped"))
    );
    assert_eq!(
        app.store.queue_depth().await.unwrap(),
        0,
        "a dropped email is never queued"
    );
}

#[tokio::test]
async fn a_batch_queues_the_rest_and_lists_each_refusal() {
    let app = app().await;
    let (account, key) = app.store.create_account("Acme").await.unwrap();
    let (_, refused_lead, _) = app
        .call(
            "POST",
            "/v1/leads",
            Some(&key.key),
            Some(json!({"email": "no@example.com", "permission_to_email": "no"})),
        )
        .await;
    let mut recipients: Vec<serde_json::Value> = (0..2000)
        .map(|i| json!({"to": format!("lead{i}@example.com"), "fields": {"first_name": format!("L{i}")}}))
        .collect();
    recipients.insert(3, json!({"lead_id": refused_lead["id"]}));
    recipients.insert(5, json!({"to": "not an address"}));
    recipients.insert(7, json!({"lead_id": "missing"}));
    let batch = json!({"from": "sales@shop.test", "subject": "Hi {{first_name}}", "html": "<p>Hi {{first_name}}</p>", "batch": "spring", "recipients": recipients});

    let (status, body, _) = app
        .call("POST", "/v1/emails/batch", Some(&key.key), Some(batch))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["emails"].as_array().unwrap().len(), 2000);
    let refused: BTreeMap<u64, String> = body["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(refused.keys().copied().collect::<Vec<_>>(), [3, 5, 7]);
    assert!(refused[&3].contains("Permission to Email"));
    assert!(refused[&5].contains("not an address"));
    assert!(refused[&7].contains("no lead missing"));
    assert_eq!(app.store.queue_depth().await.unwrap(), 2000);
    let claimed = app.store.claim_due(1, 60_000).await.unwrap();
    assert_eq!(
        claimed[0]
            .fields
            .get("first_name")
            .map(|s| s.starts_with('L')),
        Some(true)
    );
    assert!(
        app.store
            .email(&account, body["emails"][0]["id"].as_str().unwrap())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retry_safe() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let body = Some(email_to("ana@example.com"));
    let headers = [("idempotency-key", "order-42")];
    let first = app
        .call_with("POST", "/v1/emails", Some(&key.key), body.clone(), &headers)
        .await;
    let retry = app
        .call_with("POST", "/v1/emails", Some(&key.key), body, &headers)
        .await;
    assert_eq!(first.0, StatusCode::ACCEPTED);
    assert_eq!(
        (retry.0, &retry.1),
        (StatusCode::ACCEPTED, &first.1),
        "the same answer, nothing sent twice"
    );
    assert_eq!(app.store.queue_depth().await.unwrap(), 1);

    let different = app
        .call_with(
            "POST",
            "/v1/emails",
            Some(&key.key),
            Some(email_to("bo@example.com")),
            &headers,
        )
        .await;
    assert_eq!(different.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        different.1["detail"]
            .as_str()
            .unwrap()
            .contains("different request")
    );
    assert_eq!(app.store.queue_depth().await.unwrap(), 1);
}

#[tokio::test]
async fn invalid_sends_say_which_field_is_wrong() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let cases = [
        (
            json!({"to": "a@example.com", "from": "nope", "subject": "s", "text": "t"}),
            "from",
        ),
        (
            json!({"to": "a@example.com", "from": "f@example.com", "subject": "", "text": "t"}),
            "subject",
        ),
        (
            json!({"to": "a@example.com", "from": "f@example.com", "subject": "s"}),
            "text",
        ),
        (
            json!({"to": "a@example.com", "from": "f@example.com", "subject": "s", "text": "t", "send_at": "tomorrow"}),
            "send_at",
        ),
        (
            json!({"from": "f@example.com", "subject": "s", "text": "t"}),
            "lead_id or to",
        ),
        (
            json!({"to": 5, "from": "f@example.com", "subject": "s", "text": "t"}),
            "to",
        ),
    ];
    for (body, field) in cases {
        let (status, problem, content_type) = app
            .call("POST", "/v1/emails", Some(&key.key), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(content_type, "application/problem+json");
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{body}: {problem}"
        );
    }
    assert_eq!(app.store.queue_depth().await.unwrap(), 0);
}

#[tokio::test]
async fn only_operators_see_and_lift_suppressions() {
    let app = app().await;
    let (account, admin) = app.store.create_account("Acme").await.unwrap();
    let operator = app
        .store
        .create_api_key(None, Role::Operator)
        .await
        .unwrap();
    let address = EmailAddress::parse("gone@example.com").unwrap();
    let block = Block {
        reason: Reason::UserUnknown,
        status: Some("550 5.1.1 User unknown".into()),
        email_id: None,
    };
    app.store
        .suppress(&account, &address, &block, "test")
        .await
        .unwrap();

    let (status, _, _) = app
        .call("GET", "/v1/suppressions", Some(&admin.key), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app.call("GET", "/v1/suppressions", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, list, _) = app
        .call("GET", "/v1/suppressions", Some(&operator.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["address"], "gone@example.com");
    assert_eq!(list[0]["status"], "550 5.1.1 User unknown");

    let uri =
        format!("/v1/suppressions/gone@example.com?account={account}&reason=asked%20by%20customer");
    let (status, _, _) = app.call("DELETE", &uri, Some(&admin.key), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem, _) = app
        .call(
            "DELETE",
            &format!("/v1/suppressions/gone@example.com?account={account}"),
            Some(&operator.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, _, _) = app.call("DELETE", &uri, Some(&operator.key), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        app.store
            .suppression(&account, &address)
            .await
            .unwrap()
            .is_none()
    );
    let log = app.store.suppression_log(&account, &address).await.unwrap();
    assert_eq!(log.last().unwrap().note, "asked by customer");
    assert!(log.last().unwrap().actor.starts_with("api-key:"));
    let (status, _, _) = app.call("DELETE", &uri, Some(&operator.key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_hundred_thousand_recipient_batch_fits() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let recipients: Vec<serde_json::Value> = (0..100_000)
        .map(|i| json!({"to": format!("r{i}@example.com")}))
        .collect();
    let batch = json!({"from": "s@shop.test", "subject": "Big", "text": "x".repeat(2000), "recipients": recipients});
    let (status, body, _) = app
        .call("POST", "/v1/emails/batch", Some(&key.key), Some(batch))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["emails"].as_array().unwrap().len(), 100_000);
    assert_eq!(app.store.queue_depth().await.unwrap(), 100_000);

    let too_many: Vec<serde_json::Value> = (0..100_001)
        .map(|i| json!({"to": format!("r{i}@example.com")}))
        .collect();
    let batch =
        json!({"from": "s@shop.test", "subject": "Big", "text": "x", "recipients": too_many});
    let (status, problem, _) = app
        .call("POST", "/v1/emails/batch", Some(&key.key), Some(batch))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"].as_str().unwrap().contains("100000"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_queued_email_or_batch_can_be_cancelled_once() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let (_, sent, _) = app
        .call(
            "POST",
            "/v1/emails",
            Some(&key.key),
            Some(email_to("ana@example.com")),
        )
        .await;
    let id = sent["id"].as_str().unwrap();
    let uri = format!("/v1/emails/{id}/cancel");
    let (status, body, _) = app.call("POST", &uri, Some(&key.key), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cancelled"][0], id);
    let (_, email, _) = app
        .call("GET", &format!("/v1/emails/{id}"), Some(&key.key), None)
        .await;
    assert_eq!(
        (&email["stage"], &email["status"], &email["reason"]),
        (&json!("failed"), &json!("Dropped"), &json!("cancelled"))
    );
    let (status, problem, _) = app.call("POST", &uri, Some(&key.key), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not queued any more")
    );
    assert_eq!(app.store.queue_depth().await.unwrap(), 0);

    let batch = json!({"from": "s@shop.test", "subject": "Hi", "text": "x", "batch": "spring",
                       "recipients": [{"to": "a@x.test"}, {"to": "b@x.test"}]});
    app.call("POST", "/v1/emails/batch", Some(&key.key), Some(batch))
        .await;
    let (status, body, _) = app
        .call("POST", "/v1/batches/spring/cancel", Some(&key.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["cancelled"].as_array().unwrap().len(), 2);
    assert_eq!(app.store.queue_depth().await.unwrap(), 0);
}
