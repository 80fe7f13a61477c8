//! `/v1/smtp-credentials` over the API: admins make a login for SMTP submission and see its
//! password once, list without secrets, revoke it so it no longer logs in, and cannot touch
//! another account's.

mod common;

use axum::http::StatusCode;
use common::app;
use mailtrail_domain::Role;

#[tokio::test]
async fn admins_make_list_and_revoke_submission_logins() {
    let app = app().await;
    let (account, admin) = app.store.create_account("Acme").await.unwrap();
    let (_, other) = app.store.create_account("Other").await.unwrap();
    let user = app
        .store
        .create_api_key(Some(&account), Role::User)
        .await
        .unwrap();

    let (status, _, _) = app
        .call("POST", "/v1/smtp-credentials", Some(&user.key), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a user key may not");

    let (status, made, _) = app
        .call("POST", "/v1/smtp-credentials", Some(&admin.key), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (id, username, password) = (
        made["id"].as_str().unwrap(),
        made["username"].as_str().unwrap(),
        made["password"].as_str().unwrap(),
    );
    assert!(username.starts_with("smtp-"), "{made}");
    assert_eq!(
        app.store
            .verify_smtp_credential(username, password)
            .await
            .unwrap()
            .as_deref(),
        Some(account.as_str()),
        "the password shown logs in to this account"
    );

    let (status, listed, _) = app
        .call("GET", "/v1/smtp-credentials", Some(&admin.key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = listed.to_string();
    assert!(!text.contains(password), "no password in a listing: {text}");
    assert_eq!(listed["smtp_credentials"][0]["username"], username);
    assert!(listed["smtp_credentials"][0]["last_used_at"].is_string());
    assert!(listed["smtp_credentials"][0]["revoked_at"].is_null());

    let (_, others, _) = app
        .call("GET", "/v1/smtp-credentials", Some(&other.key), None)
        .await;
    assert_eq!(others["smtp_credentials"].as_array().unwrap().len(), 0);
    let path = format!("/v1/smtp-credentials/{id}");
    let (status, _, _) = app.call("DELETE", &path, Some(&other.key), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another account's id looks missing"
    );
    assert!(
        app.store
            .verify_smtp_credential(username, password)
            .await
            .unwrap()
            .is_some(),
        "and it still logs in"
    );

    let (status, _, _) = app.call("DELETE", &path, Some(&admin.key), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.store
            .verify_smtp_credential(username, password)
            .await
            .unwrap(),
        None,
        "a revoked credential no longer logs in"
    );
    let (_, listed, _) = app
        .call("GET", "/v1/smtp-credentials", Some(&admin.key), None)
        .await;
    assert!(listed["smtp_credentials"][0]["revoked_at"].is_string());
}
