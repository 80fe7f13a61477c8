//! The views over the API: the email report (filters, pages, CSV), the batch report's
//! counts and rates, and a lead's activity, each confined to the caller's account.

mod common;

use axum::http::StatusCode;
use common::{App, app};
use mailtrail_domain::{Event, EventKind, Reason, Role};
use mailtrail_store::{AccountId, EmailId};
use serde_json::{Value, json};

/// Sends a batch through the API and returns the new emails' ids.
async fn send_batch(app: &App, key: &str, batch: &str, to: &[&str]) -> Vec<String> {
    let recipients: Vec<Value> = to.iter().map(|t| json!({"to": t})).collect();
    let (status, body, _) = app
        .call(
            "POST",
            "/v1/emails/batch",
            Some(key),
            Some(json!({
                "from": "sales@shop.test", "subject": "Offer for {{email}}",
                "text": "Hello", "batch": batch, "recipients": recipients
            })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn record(app: &App, account: &str, id: &str, event: Event) {
    app.store
        .append_event(&AccountId::from(account), &EmailId::from(id), &event)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_email_report_filters_by_stage_and_batch_and_pages() {
    let app = app().await;
    let (account, key) = app.store.create_account("Acme").await.unwrap();
    let spring = send_batch(
        &app,
        &key.key,
        "spring",
        &["a@x.test", "b@x.test", "c@x.test"],
    )
    .await;
    send_batch(&app, &key.key, "summer", &["d@x.test"]).await;
    record(
        &app,
        &account,
        &spring[0],
        Event::new(EventKind::Delivered, 1),
    )
    .await;
    let bounce = Event::new(EventKind::Failed, 2)
        .with_status("550 5.1.1 <b@x.test>: User unknown")
        .with_reason(Reason::UserUnknown);
    record(&app, &account, &spring[1], bounce).await;

    let (status, body, _) = app
        .call("GET", "/v1/reports/emails?limit=3", Some(&key.key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows = body["emails"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["batch"], "summer", "newest first");
    let cursor = body["next_cursor"].as_str().unwrap();
    let (_, next, _) = app
        .call(
            "GET",
            &format!("/v1/reports/emails?limit=3&cursor={cursor}"),
            Some(&key.key),
            None,
        )
        .await;
    assert_eq!(next["emails"].as_array().unwrap().len(), 1);
    assert_eq!(next["next_cursor"], Value::Null);

    let (_, failed, _) = app
        .call(
            "GET",
            "/v1/reports/emails?stage=failed&batch=spring",
            Some(&key.key),
            None,
        )
        .await;
    let failed = failed["emails"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["last_action"], "Failed");
    assert_eq!(failed[0]["reason"], "userunknown");
    assert_eq!(failed[0]["status"], "550 5.1.1 <b@x.test>: User unknown");
    assert_eq!(failed[0]["subject"], "Offer for b@x.test");

    let (status, problem, content_type) = app
        .call(
            "GET",
            "/v1/reports/emails?stage=bounced&from=last-week&limit=0",
            Some(&key.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type, "application/problem+json");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["stage", "from"], "every bad parameter is named");
}

#[tokio::test]
async fn the_email_report_exports_every_matching_row_as_csv() {
    let app = app().await;
    let (account, key) = app.store.create_account("Acme").await.unwrap();
    let ids = send_batch(&app, &key.key, "spring", &["a@x.test", "=cmd@x.test"]).await;
    record(&app, &account, &ids[0], Event::new(EventKind::Delivered, 1)).await;
    let auth = format!("Bearer {}", key.key);
    let (status, headers, body) = app
        .fetch(
            "GET",
            "/v1/reports/emails?batch=spring",
            &[("authorization", &auth), ("accept", "text/csv")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "id,recipient,subject,batch,sent_at,last_action,reason,status"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[2].starts_with(&format!("{},a@x.test,", ids[0])));
    assert!(lines[2].contains(",Delivered,"));
    assert!(
        lines[1].contains(",'=cmd@x.test,"),
        "a formula-looking cell is defused: {}",
        lines[1]
    );
}

#[tokio::test]
async fn the_batch_report_compares_batches_with_rates() {
    let app = app().await;
    let (account, key) = app.store.create_account("Acme").await.unwrap();
    let (status, _, _) = app
        .call(
            "PATCH",
            "/v1/settings",
            Some(&key.key),
            Some(json!({"open_tracking": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let a = send_batch(
        &app,
        &key.key,
        "a",
        &["1@x.test", "2@x.test", "3@x.test", "4@x.test"],
    )
    .await;
    send_batch(&app, &key.key, "b", &["5@x.test"]).await;
    for id in &a[..2] {
        record(&app, &account, id, Event::new(EventKind::Delivered, 1)).await;
    }
    record(&app, &account, &a[0], Event::new(EventKind::Opened, 2)).await;
    record(
        &app,
        &account,
        &a[1],
        Event::new(EventKind::Opened, 2).by_machine("apple-mpp"),
    )
    .await;

    let (status, body, _) = app
        .call(
            "GET",
            "/v1/reports/batches?batches=a,b",
            Some(&key.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let batches = body["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 2);
    let a = &batches[0];
    assert_eq!(a["batch"], "a");
    assert_eq!(
        (a["sent"].as_i64(), a["delivered"].as_i64()),
        (Some(4), Some(2))
    );
    assert_eq!(
        (a["opened"].as_i64(), a["machine_opened"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(a["rates"]["delivered"], 0.5);
    assert_eq!(a["rates"]["opened"], 0.5, "human opens per delivered");
    assert_eq!(
        a["rates"]["clicked"],
        Value::Null,
        "click tracking was off: n/a"
    );

    let auth = format!("Bearer {}", key.key);
    let (_, _, csv) = app
        .fetch(
            "GET",
            "/v1/reports/batches",
            &[("authorization", &auth), ("accept", "text/csv")],
        )
        .await;
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.lines().next().unwrap().contains("opened_rate"));
    assert!(csv.contains("50.0%") && csv.contains("n/a"), "{csv}");
}

#[tokio::test]
async fn activity_lists_a_leads_emails_newest_first_and_hides_other_accounts() {
    let app = app().await;
    let (account, key) = app.store.create_account("Acme").await.unwrap();
    let (_, other) = app.store.create_account("Other").await.unwrap();
    let (_, lead, _) = app
        .call(
            "POST",
            "/v1/leads",
            Some(&key.key),
            Some(json!({"email": "ana@x.test", "first_name": "Ana"})),
        )
        .await;
    let lead_id = lead["id"].as_str().unwrap();
    let mut sent = Vec::new();
    for subject in ["First", "Second"] {
        let (status, body, _) = app
            .call(
                "POST",
                "/v1/emails",
                Some(&key.key),
                Some(json!({"lead_id": lead_id, "from": "s@shop.test", "subject": subject, "text": "Hi"})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        sent.push(body["id"].as_str().unwrap().to_owned());
    }
    record(
        &app,
        &account,
        &sent[0],
        Event::new(EventKind::Delivered, 1),
    )
    .await;

    let uri = format!("/v1/leads/{lead_id}/activity");
    let (status, body, _) = app.call("GET", &uri, Some(&key.key), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["subject"].as_str(), &items[0]["label"]),
        (Some("Second"), &Value::Null)
    );
    assert_eq!(
        (items[1]["subject"].as_str(), items[1]["label"].as_str()),
        (Some("First"), Some("Delivered"))
    );

    let (status, _, _) = app.call("GET", &uri, Some(&other.key), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another account's lead looks missing"
    );
    let operator = app
        .store
        .create_api_key(None, Role::Operator)
        .await
        .unwrap();
    let (status, _, _) = app
        .call(
            "GET",
            &format!("{uri}?account={account}"),
            Some(&operator.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "an operator names the account");
}
