//! `GET /v1/reports/emails` refuses a date range that ends before it starts with a 422 naming
//! `to`; a single day is a range.

mod common;

use axum::http::StatusCode;
use common::app;

#[tokio::test]
async fn a_reversed_date_range_is_a_422_naming_to() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let (status, body, _) = app
        .call(
            "GET",
            "/v1/reports/emails?from=2026-03-10&to=2026-03-01",
            Some(&key.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("\"to\"") && text.contains("the range ends before it starts"),
        "{text}"
    );
    let (status, body, _) = app
        .call(
            "GET",
            "/v1/reports/emails?from=2026-03-01&to=2026-03-01",
            Some(&key.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "one day: {body}");
}
