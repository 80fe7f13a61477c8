//! Merge templates through the API: a subject, text or HTML part that cannot be rendered is
//! a 422 naming that part and queues nothing, for one email and for a batch; a template with
//! defaults and conditionals is taken, and `GET /v1/emails/{id}` shows its subject rendered
//! with each recipient's fields.

mod common;

use axum::http::StatusCode;
use common::app;
use serde_json::json;

#[tokio::test]
async fn a_template_that_cannot_render_is_refused_naming_its_part_and_nothing_is_queued() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    for (part, template, says) in [
        ("subject", "Hi {{ first_name", "syntax error"),
        ("text", "{% if vip %}Dear VIP", "syntax error"),
        (
            "html",
            "<p>{{ first_name | defualt(\"there\") }}</p>",
            "unknown filter",
        ),
    ] {
        let mut email = json!({"to": "ana@example.com", "from": "sales@shop.test",
                               "subject": "Hi", "text": "Hello"});
        email[part] = json!(template);
        let mut batch = json!({"from": "sales@shop.test", "subject": "Hi", "text": "Hello",
                               "recipients": [{"to": "ana@example.com"}]});
        batch[part] = json!(template);
        for (path, body) in [("/v1/emails", email), ("/v1/emails/batch", batch)] {
            let (status, problem, _) = app.call("POST", path, Some(&key.key), Some(body)).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path} {part}: {problem}"
            );
            assert_eq!(problem["errors"][0]["field"], part, "{path}: {problem}");
            let message = problem["errors"][0]["message"].as_str().unwrap();
            assert!(
                message.contains(says) && message.contains("line 1"),
                "{path} {part}: {message}"
            );
        }
    }
    assert_eq!(app.store.queue_depth().await.unwrap(), 0);
}

#[tokio::test]
async fn defaults_and_conditionals_render_with_each_recipients_fields() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let (status, body, _) = app
        .call(
            "POST",
            "/v1/emails/batch",
            Some(&key.key),
            Some(json!({
                "from": "sales@shop.test",
                "subject": "Hi {{ first_name | default(\"there\") }}{% if vip %}, our VIP{% endif %}",
                "html": "<p>{{ first_name | default(\"there\") }}</p>",
                "recipients": [
                    {"to": "ana@example.com", "fields": {"first_name": "Ana", "vip": "yes"}},
                    {"to": "bo@example.com", "fields": {"first_name": ""}},
                    {"to": "cy@example.com"},
                ],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let mut subjects = Vec::new();
    for email in body["emails"].as_array().unwrap() {
        let id = email["id"].as_str().unwrap();
        let (status, shown, _) = app
            .call("GET", &format!("/v1/emails/{id}"), Some(&key.key), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        subjects.push(shown["subject"].as_str().unwrap().to_owned());
    }
    assert_eq!(subjects, ["Hi Ana, our VIP", "Hi there", "Hi there"]);
}
