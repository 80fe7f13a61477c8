//! The leads API through the whole router (no socket): authentication, account isolation,
//! validation and the problem+json error format.

mod common;

use axum::http::StatusCode;
use common::app;
use mailtrail_domain::Role;
use serde_json::json;

#[tokio::test]
async fn a_lead_is_created_read_and_patched_within_its_account() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let (status, lead, _) = app
        .call(
            "POST",
            "/v1/leads",
            Some(&key.key),
            Some(json!({"email": "Ana@Example.COM", "first_name": "Ana", "fields": {"company": "Initech"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(lead["email"], "Ana@example.com");
    assert_eq!(lead["permission_to_email"], "yes");
    assert_eq!(lead["fields"]["company"], "Initech");
    let id = lead["id"].as_str().unwrap();

    let (status, fetched, _) = app
        .call("GET", &format!("/v1/leads/{id}"), Some(&key.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, lead);

    let (status, patched, _) = app
        .call(
            "PATCH",
            &format!("/v1/leads/{id}"),
            Some(&key.key),
            Some(json!({"permission_to_email": "no", "fields": {"city": "Oslo"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["permission_to_email"], "no");
    assert_eq!(
        patched["fields"],
        json!({"company": "Initech", "city": "Oslo"})
    );
    assert_eq!(patched["first_name"], "Ana");
}

#[tokio::test]
async fn another_accounts_lead_is_a_404_like_a_missing_one() {
    let app = app().await;
    let (_, acme) = app.store.create_account("Acme").await.unwrap();
    let (globex_id, globex) = app.store.create_account("Globex").await.unwrap();
    let (_, lead, _) = app
        .call(
            "POST",
            "/v1/leads",
            Some(&acme.key),
            Some(json!({"email": "ana@example.com"})),
        )
        .await;
    let uri = format!("/v1/leads/{}", lead["id"].as_str().unwrap());

    let (foreign, foreign_body, _) = app.call("GET", &uri, Some(&globex.key), None).await;
    let (missing, missing_body, _) = app
        .call("GET", "/v1/leads/no-such-id", Some(&globex.key), None)
        .await;
    assert_eq!(
        (foreign, missing),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
    assert_eq!(foreign_body, missing_body);

    let (status, _, _) = app
        .call(
            "PATCH",
            &uri,
            Some(&globex.key),
            Some(json!({"permission_to_email": "no"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Naming the other account explicitly does not help an account key.
    let (status, _, _) = app
        .call(
            "GET",
            &format!("{uri}?account={globex_id}"),
            Some(&acme.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn requests_without_a_valid_key_are_401_problems() {
    let app = app().await;
    for key in [None, Some("mt_0000"), Some("garbage")] {
        let (status, body, content_type) = app.call("GET", "/v1/leads/x", key, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["status"], 401);
        assert!(body["detail"].as_str().unwrap().contains("Bearer"));
    }
}

#[tokio::test]
async fn bad_bodies_get_field_level_problems_and_change_nothing() {
    let app = app().await;
    let (account, key) = app.store.create_account("Acme").await.unwrap();
    let cases = [
        (
            json!({"email": "not an address"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            json!({"first_name": "Ana"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "email",
        ),
        (
            json!({"email": "a@example.com", "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            json!({"email": "a@example.com", "permission_to_email": "maybe"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "maybe",
        ),
        (
            json!({"email": "a@example.com", "fields": {"n": 1}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "fields",
        ),
        (
            json!({"email": "a@example.com", "first_name": "x".repeat(1001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "first_name",
        ),
    ];
    for (body, expected, mentions) in cases {
        let (status, problem, content_type) = app
            .call("POST", "/v1/leads", Some(&key.key), Some(body.clone()))
            .await;
        assert_eq!(status, expected, "{body}");
        assert_eq!(content_type, "application/problem+json", "{body}");
        assert!(
            problem["detail"].as_str().unwrap().contains(mentions),
            "{body}: {problem}"
        );
    }
    assert_eq!(app.store.count_leads(&account).await.unwrap(), 0);

    let (status, _, _) = app
        .call(
            "POST",
            "/v1/leads",
            Some(&key.key),
            Some(json!({"email": "dup@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, problem, _) = app
        .call(
            "POST",
            "/v1/leads",
            Some(&key.key),
            Some(json!({"email": "DUP@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
}

#[tokio::test]
async fn operators_name_the_account_they_act_on() {
    let app = app().await;
    let (account, _) = app.store.create_account("Acme").await.unwrap();
    let operator = app
        .store
        .create_api_key(None, Role::Operator)
        .await
        .unwrap();
    let body = Some(json!({"email": "ana@example.com"}));

    let (status, problem, _) = app
        .call("POST", "/v1/leads", Some(&operator.key), body.clone())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(problem["detail"].as_str().unwrap().contains("?account="));

    let (status, _, _) = app
        .call(
            "POST",
            "/v1/leads?account=nope",
            Some(&operator.key),
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, _) = app
        .call(
            "POST",
            &format!("/v1/leads?account={account}"),
            Some(&operator.key),
            body,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(app.store.count_leads(&account).await.unwrap(), 1);
}

#[tokio::test]
async fn health_reports_the_database() {
    let app = app().await;
    let (status, body, _) = app.call("GET", "/healthz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    app.store.close().await;
    let (status, _, _) = app.call("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn leads_are_searched_and_paged_within_the_account() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    let (_, other) = app.store.create_account("Other").await.unwrap();
    for (email, name) in [
        ("ana@x.test", "Ana"),
        ("bo@x.test", "Bo"),
        ("cy@x.test", "Cy"),
    ] {
        let body = serde_json::json!({"email": email, "first_name": name});
        let (status, _, _) = app
            .call("POST", "/v1/leads", Some(&key.key), Some(body))
            .await;
        assert_eq!(status, axum::http::StatusCode::CREATED);
    }
    let (_, page, _) = app
        .call("GET", "/v1/leads?limit=2", Some(&key.key), None)
        .await;
    let emails = |page: &serde_json::Value| -> Vec<String> {
        page["leads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["email"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(emails(&page), ["ana@x.test", "bo@x.test"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next, _) = app
        .call(
            "GET",
            &format!("/v1/leads?limit=2&cursor={cursor}"),
            Some(&key.key),
            None,
        )
        .await;
    assert_eq!(emails(&next), ["cy@x.test"]);
    let (_, found, _) = app
        .call("GET", "/v1/leads?q=BO", Some(&key.key), None)
        .await;
    assert_eq!(emails(&found), ["bo@x.test"]);
    let (_, none, _) = app.call("GET", "/v1/leads", Some(&other.key), None).await;
    assert!(
        emails(&none).is_empty(),
        "another account sees none of them"
    );
    let (status, _, _) = app
        .call("GET", "/v1/leads?limit=abc", Some(&key.key), None)
        .await;
    assert_eq!(status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_database_that_cannot_answer_is_a_503_to_retry_not_a_500() {
    let app = app().await;
    let (_, key) = app.store.create_account("Acme").await.unwrap();
    app.store.close().await;
    let (status, problem, content_type) = app
        .call(
            "POST",
            "/v1/leads",
            Some(&key.key),
            Some(serde_json::json!({"email": "ana@example.com"})),
        )
        .await;
    assert_eq!(status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, "application/problem+json");
    assert!(
        problem["detail"].as_str().unwrap().contains("try again"),
        "{problem}"
    );
    let auth = format!("Bearer {}", key.key);
    let (status, headers, _) = app
        .fetch("GET", "/v1/leads", &[("authorization", &auth)])
        .await;
    assert_eq!(status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "5");
}
