//! The account's settings over the API: where replies are forwarded, the tracking URL.

mod common;

use common::app;

#[tokio::test]
async fn replies_go_to_the_senders_unless_the_account_names_one_address() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let (_, settings, _) = app.call("GET", "/v1/settings", Some(&key.key), None).await;
    assert_eq!(settings["reply_forward_to"], serde_json::Value::Null);
    let set = serde_json::json!({"reply_forward_to": "CRM@Shop.Test"});
    let (status, settings, _) = app
        .call("PATCH", "/v1/settings", Some(&key.key), Some(set))
        .await;
    assert_eq!(status, axum::http::StatusCode::OK, "{settings}");
    assert_eq!(settings["reply_forward_to"], "CRM@shop.test");
    let bad = serde_json::json!({"reply_forward_to": "not an address"});
    let (status, problem, _) = app
        .call("PATCH", "/v1/settings", Some(&key.key), Some(bad))
        .await;
    assert_eq!(status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"][0]["field"], "reply_forward_to");
    let clear = serde_json::json!({"reply_forward_to": null});
    let (_, settings, _) = app
        .call("PATCH", "/v1/settings", Some(&key.key), Some(clear))
        .await;
    assert_eq!(settings["reply_forward_to"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_tracking_url_that_could_break_out_of_a_link_or_a_header_is_refused_and_changes_nothing()
{
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let set = serde_json::json!({"tracking_base_url": "https://t.shop.example/"});
    let (status, settings, _) = app
        .call("PATCH", "/v1/settings", Some(&key.key), Some(set))
        .await;
    assert_eq!(status, axum::http::StatusCode::OK, "{settings}");
    assert_eq!(settings["tracking_base_url"], "https://t.shop.example");
    for hostile in [
        "https://t.shop.example/\"><img src=x onerror=alert(1)>",
        "https://t.shop.example/\r\nBcc: victim@elsewhere.example",
        "javascript:alert(1)",
        "https://t.shop.example/?a=1",
    ] {
        let bad = serde_json::json!({"tracking_base_url": hostile});
        let (status, problem, _) = app
            .call("PATCH", "/v1/settings", Some(&key.key), Some(bad))
            .await;
        assert_eq!(
            status,
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "{hostile:?}"
        );
        assert_eq!(problem["errors"][0]["field"], "tracking_base_url");
    }
    let (_, settings, _) = app.call("GET", "/v1/settings", Some(&key.key), None).await;
    assert_eq!(settings["tracking_base_url"], "https://t.shop.example");
}
