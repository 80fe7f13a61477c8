//! Sending through the API: 202 only once queued, refusals for leads whose Permission to
//! Email is No, drops for suppressed addresses, batches with merge fields, idempotent
//! retries, the suppression endpoints' roles, and the message model: display-name From, Cc
//! copies, Reply-To, custom headers, attachments, tags (and the report's `tag=`), metadata.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::app;
use mailtrail_domain::{EmailAddress, Reason, Role};
use mailtrail_store::Block;
use mailtrail_store::EmailId;
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
    assert!(app.store.email(&account, &EmailId::from(id)).await.is_ok());
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
            .email(
                &account,
                &EmailId::from(body["emails"][0]["id"].as_str().unwrap())
            )
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
async fn only_operators_lift_suppressions() {
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

/// `text` in base64, as an API client sends a file.
fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

/// The full message model: a From display name, Cc, Reply-To, custom headers, a file, an
/// inline image, tags and metadata.
fn full_email(to: &str) -> serde_json::Value {
    json!({
        "to": to,
        "from": "Sales Team <sales@shop.test>",
        "cc": ["Bo Berg <bo@partner.test>", "cy@partner.test"],
        "reply_to": "support@shop.test",
        "headers": {"X-Campaign": "spring", "List-Id": "News <news.shop.test>"},
        "subject": "Your order",
        "text": "Hello",
        "html": "<p>Hello</p><img src=\"cid:logo\">",
        "attachments": [
            {"filename": "order.txt", "content_type": "text/plain", "content": b64(b"Order 1234\n")},
            {"filename": "logo.png", "content_type": "image/png",
             "content": b64(&[0x89, b'P', b'N', b'G', 0, 1, 2]), "content_id": "logo"}
        ],
        "tags": ["welcome", "spring", "welcome"],
        "metadata": {"order_id": "1234", "customer-ref": "C-9"}
    })
}

#[tokio::test]
async fn every_message_field_is_stored_and_shown_and_each_cc_is_its_own_email() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let (status, body, _) = app
        .call(
            "POST",
            "/v1/emails",
            Some(&key.key),
            Some(full_email("ana@example.com")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let cc = body["cc"].as_array().unwrap();
    let cc_to: Vec<&str> = cc.iter().map(|c| c["to"].as_str().unwrap()).collect();
    assert_eq!(cc_to, ["bo@partner.test", "cy@partner.test"]);
    let cc_ids: Vec<String> = cc
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!cc_ids.contains(&id) && cc_ids[0] != cc_ids[1], "{body}");
    assert_eq!(app.store.queue_depth().await.unwrap(), 3);

    for (email_id, to) in [
        (&id, "ana@example.com"),
        (&cc_ids[0], "bo@partner.test"),
        (&cc_ids[1], "cy@partner.test"),
    ] {
        let (status, email, _) = app
            .call(
                "GET",
                &format!("/v1/emails/{email_id}"),
                Some(&key.key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(email["to"], to);
        assert_eq!(email["from"], "sales@shop.test");
        assert_eq!(email["from_name"], "Sales Team");
        assert_eq!(
            email["cc"],
            json!(["Bo Berg <bo@partner.test>", "cy@partner.test"])
        );
        assert_eq!(email["reply_to"], "support@shop.test");
        assert_eq!(
            email["headers"],
            json!({"X-Campaign": "spring", "List-Id": "News <news.shop.test>"})
        );
        assert_eq!(email["tags"], json!(["welcome", "spring"]), "once each");
        assert_eq!(
            email["metadata"],
            json!({"order_id": "1234", "customer-ref": "C-9"})
        );
        assert_eq!(
            email["attachments"],
            json!([
                {"filename": "order.txt", "content_type": "text/plain", "content_id": null, "size": 11},
                {"filename": "logo.png", "content_type": "image/png", "content_id": "logo", "size": 7}
            ]),
            "names, types and sizes, never the bytes"
        );
        assert_eq!(email["submitted_over_smtp"], false);
    }

    // The copies' To header is the primary recipient; the primary's is its own address.
    let claimed = app.store.claim_due(10, 60_000).await.unwrap();
    let header_to = |email_id: &str| {
        claimed
            .iter()
            .find(|c| c.id == email_id)
            .map(|c| c.header_to.clone())
            .unwrap()
    };
    assert_eq!(header_to(&id), None);
    for cc_id in &cc_ids {
        assert_eq!(header_to(cc_id).as_deref(), Some("ana@example.com"));
    }
    let copy = claimed.iter().find(|c| c.id == cc_ids[0]).unwrap();
    assert_eq!(copy.content.attachments.len(), 2);
    assert_eq!(copy.content.attachments[0].data, b"Order 1234\n");
}

#[tokio::test]
async fn cc_addresses_are_checked_like_recipients() {
    let app = app().await;
    let (account, key) = app.store.create_account("Acme").await.unwrap();
    app.call(
        "POST",
        "/v1/leads",
        Some(&key.key),
        Some(json!({"email": "no@partner.test", "permission_to_email": "no"})),
    )
    .await;
    let mut body = email_to("ana@example.com");
    body["cc"] = json!(["ok@partner.test", "No <NO@partner.test>"]);
    let (status, problem, _) = app
        .call("POST", "/v1/emails", Some(&key.key), Some(body))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("cc[1]") && detail.contains("Permission to Email set to No"),
        "{problem}"
    );
    assert_eq!(
        app.store.queue_depth().await.unwrap(),
        0,
        "not the primary either"
    );

    let gone = EmailAddress::parse("gone@partner.test").unwrap();
    let block = Block {
        reason: Reason::UserUnknown,
        status: Some("550 5.1.1 User unknown".into()),
        email_id: None,
    };
    app.store
        .suppress(&account, &gone, &block, "test")
        .await
        .unwrap();
    let mut body = email_to("ana@example.com");
    body["cc"] = json!(["gone@partner.test", "ana@example.com"]);
    let (status, answer, _) = app
        .call("POST", "/v1/emails", Some(&key.key), Some(body))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["dropped"], json!(null));
    assert_eq!(
        answer["cc"],
        json!([{"to": "gone@partner.test", "id": answer["cc"][0]["id"], "dropped": "suppressed"}]),
        "the suppressed copy is dropped; the primary's own address is not sent twice"
    );
    assert_eq!(app.store.queue_depth().await.unwrap(), 1);
}

#[tokio::test]
async fn bad_message_fields_are_refused_naming_the_field_and_nothing_is_queued() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let with = |field: &str, value: serde_json::Value| {
        let mut body = email_to("ana@example.com");
        body[field] = value;
        body
    };
    let file = |filename: &str, content_type: &str, content: &str| json!([{"filename": filename, "content_type": content_type, "content": content}]);
    let many_tags: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    let many_keys: serde_json::Map<String, serde_json::Value> =
        (0..21).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (with("from", json!("Sales <not an address>")), "from"),
        (with("reply_to", json!("nope")), "reply_to"),
        (with("cc", json!(["bo@partner.test", "x"])), "cc[1]"),
        (with("headers", json!({"Subject": "x"})), "headers.Subject"),
        (
            with("headers", json!({"bcc": "x@evil.test"})),
            "headers.bcc",
        ),
        (
            with("headers", json!({"Content-Type": "text/html"})),
            "headers.Content-Type",
        ),
        (
            with("headers", json!({"X-Mailtrail-Id": "1"})),
            "headers.X-Mailtrail-Id",
        ),
        (
            with("headers", json!({"Feedback-ID": "1"})),
            "headers.Feedback-ID",
        ),
        (with("headers", json!({"X Bad": "1"})), "headers.X Bad"),
        (with("headers", json!({"X-Bad:": "1"})), "headers.X-Bad:"),
        (
            with("headers", json!({"X-Note": "a\r\nBcc: x@evil.test"})),
            "headers.X-Note",
        ),
        (
            with("headers", json!({"X-Note": "a\u{0}"})),
            "headers.X-Note",
        ),
        (
            with("attachments", file("a.txt", "text/plain", "not base64!")),
            "attachments[0].content",
        ),
        (
            with("attachments", file("a.txt", "pdf", "SGk=")),
            "attachments[0].content_type",
        ),
        (
            with("attachments", file("a\r\n.txt", "text/plain", "SGk=")),
            "attachments[0].filename",
        ),
        (
            with("attachments", file("", "text/plain", "SGk=")),
            "attachments[0].filename",
        ),
        (with("tags", json!(many_tags)), "tags"),
        (with("tags", json!(["ok", ""])), "tags[1]"),
        (with("tags", json!(["x".repeat(65)])), "tags[0]"),
        (with("tags", json!(["two\nlines"])), "tags[0]"),
        (with("metadata", json!(many_keys)), "metadata"),
        (
            with("metadata", json!({"bad key": "v"})),
            "metadata.bad key",
        ),
        (
            with("metadata", json!({"k": "v".repeat(1001)})),
            "metadata.k",
        ),
        (with("metadata", json!({"k": 5})), "metadata.k"),
    ];
    for (body, field) in cases {
        let (status, problem, content_type) = app
            .call("POST", "/v1/emails", Some(&key.key), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(content_type, "application/problem+json");
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{field}: {problem}"
        );
    }

    let mut batch = json!({
        "from": "sales@shop.test", "subject": "Hi", "text": "Hello",
        "recipients": [{"to": "ana@example.com"}], "cc": ["bo@partner.test"]
    });
    let (status, problem, _) = app
        .call(
            "POST",
            "/v1/emails/batch",
            Some(&key.key),
            Some(batch.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("a batch takes no cc"),
        "{problem}"
    );
    batch.as_object_mut().unwrap().remove("cc");
    batch["headers"] = json!({"To": "x@evil.test"});
    let (status, problem, _) = app
        .call("POST", "/v1/emails/batch", Some(&key.key), Some(batch))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(problem["detail"].as_str().unwrap().contains("headers.To"));

    // Over 10 MiB of files in all, decoded: a 413 that names the limit.
    let half = b64(&vec![7u8; 5 * 1024 * 1024 + 1]);
    let body = with(
        "attachments",
        json!([
            {"filename": "a.bin", "content_type": "application/octet-stream", "content": half},
            {"filename": "b.bin", "content_type": "application/octet-stream", "content": half}
        ]),
    );
    let (status, problem, content_type) = app
        .call("POST", "/v1/emails", Some(&key.key), Some(body))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(content_type, "application/problem+json");
    assert!(
        problem["detail"].as_str().unwrap().contains("10 MiB"),
        "{problem}"
    );
    assert_eq!(app.store.queue_depth().await.unwrap(), 0);
}

#[tokio::test]
async fn the_email_report_filters_by_tag_in_json_and_csv() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let mut ids = Vec::new();
    for (to, tags) in [
        ("a@example.com", json!(["welcome", "spring"])),
        ("b@example.com", json!(["spring"])),
        ("c@example.com", json!([])),
    ] {
        let mut body = email_to(to);
        body["tags"] = tags;
        let (status, answer, _) = app
            .call("POST", "/v1/emails", Some(&key.key), Some(body))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    let report = |tag: &'static str| {
        let app = &app;
        let key = key.key.clone();
        async move {
            let (status, body, _) = app
                .call(
                    "GET",
                    &format!("/v1/reports/emails?tag={tag}"),
                    Some(&key),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            let mut to: Vec<String> = body["emails"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["to"].as_str().unwrap().to_owned())
                .collect();
            to.sort();
            to
        }
    };
    assert_eq!(report("welcome").await, ["a@example.com"]);
    assert_eq!(report("spring").await, ["a@example.com", "b@example.com"]);
    assert!(report("autumn").await.is_empty());

    let (_, other) = app.store.create_account("Globex").await.unwrap();
    let (_, body, _) = app
        .call(
            "GET",
            "/v1/reports/emails?tag=spring",
            Some(&other.key),
            None,
        )
        .await;
    assert_eq!(
        body["emails"],
        json!([]),
        "another account's tags are not seen"
    );

    let auth = format!("Bearer {}", key.key);
    let (status, _, csv) = app
        .fetch(
            "GET",
            "/v1/reports/emails?tag=welcome",
            &[("authorization", &auth), ("accept", "text/csv")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), 2, "a header and one row: {csv}");
    assert!(
        csv.contains("a@example.com") && csv.contains(&ids[0]),
        "{csv}"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_message_field() {
    let app = app().await;
    let (status, doc, _) = app.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let schemas = &doc["components"]["schemas"];
    let properties = |schema: &str| -> Vec<String> {
        schemas[schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema}: {}", schemas[schema]))
            .keys()
            .cloned()
            .collect()
    };
    let fields = ["reply_to", "headers", "attachments", "tags", "metadata"];
    let single = properties("SendEmail");
    for field in fields.iter().chain(&["cc"]) {
        assert!(single.contains(&field.to_string()), "SendEmail.{field}");
    }
    let batch = properties("SendBatch");
    for field in fields {
        assert!(batch.contains(&field.to_owned()), "SendBatch.{field}");
    }
    assert!(!batch.contains(&"cc".to_owned()), "a batch takes no cc");
    let view = properties("EmailView");
    for field in [
        "from_name",
        "cc",
        "reply_to",
        "headers",
        "tags",
        "metadata",
        "attachments",
        "submitted_over_smtp",
    ] {
        assert!(view.contains(&field.to_owned()), "EmailView.{field}");
    }
    assert_eq!(
        properties("AttachmentInput"),
        ["content", "content_id", "content_type", "filename"]
    );
    assert_eq!(
        properties("AttachmentView"),
        ["content_id", "content_type", "filename", "size"]
    );
    assert!(properties("Queued").contains(&"cc".to_owned()));
}
