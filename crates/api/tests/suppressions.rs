//! `GET /v1/suppressions` with an account key: the account's own blocks, read-only; another
//! account's never, whichever account the key names. And refused sends through the API are
//! kept with their reason, in the batch they were refused from.

mod common;

use axum::http::StatusCode;
use common::{App, app};
use mailtrail_domain::{EmailAddress, Reason, Role};
use mailtrail_store::{Block, RefusalReason};
use serde_json::{Value, json};

async fn block(app: &App, account: &str, address: &str, reason: Reason, status: &str) {
    let block = Block {
        reason,
        status: Some(status.into()),
        email_id: None,
    };
    app.store
        .suppress(
            account,
            &EmailAddress::parse(address).unwrap(),
            &block,
            "test",
        )
        .await
        .unwrap();
}

fn addresses(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["address"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn an_account_key_reads_its_own_blocks_and_never_another_accounts() {
    let app = app().await;
    let (acme, acme_admin) = app.store.create_account("Acme").await.unwrap();
    let (globex, globex_admin) = app.store.create_account("Globex").await.unwrap();
    let acme_user = app
        .store
        .create_api_key(Some(&acme), Role::User)
        .await
        .unwrap();
    let operator = app
        .store
        .create_api_key(None, Role::Operator)
        .await
        .unwrap();
    block(
        &app,
        &acme,
        "gone@acme.test",
        Reason::UserUnknown,
        "550 5.1.1 acme reply",
    )
    .await;
    block(
        &app,
        &globex,
        "left@globex.test",
        Reason::Complaint,
        "globex reply",
    )
    .await;

    let (status, list, _) = app
        .call("GET", "/v1/suppressions", Some(&acme_user.key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(addresses(&list), ["gone@acme.test"]);
    assert_eq!(list[0]["account_id"], acme.as_str());
    assert_eq!(list[0]["reason"], "userunknown");
    assert_eq!(list[0]["status"], "550 5.1.1 acme reply");
    assert!(list[0]["created_at"].as_str().unwrap().ends_with('Z'));

    // Naming its own account is the same list; naming another looks like nothing there.
    let own = format!("/v1/suppressions?account={acme}");
    let (status, same, _) = app.call("GET", &own, Some(&acme_admin.key), None).await;
    assert_eq!(
        (status, addresses(&same)),
        (StatusCode::OK, vec!["gone@acme.test"])
    );
    let other = format!("/v1/suppressions?account={globex}");
    let (status, problem, _) = app.call("GET", &other, Some(&acme_user.key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert!(!problem.to_string().contains("left@globex.test"));

    let (_, theirs, _) = app
        .call("GET", "/v1/suppressions", Some(&globex_admin.key), None)
        .await;
    assert_eq!(addresses(&theirs), ["left@globex.test"]);

    // Read-only: lifting a block stays the operator's.
    let lift = format!("/v1/suppressions/gone@acme.test?account={acme}&reason=asked");
    for key in [&acme_user.key, &acme_admin.key] {
        let (status, _, _) = app.call("DELETE", &lift, Some(key), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let gone = EmailAddress::parse("gone@acme.test").unwrap();
    assert!(app.store.suppression(&acme, &gone).await.unwrap().is_some());

    // The operator reads every account's, or one account's.
    let (_, all, _) = app
        .call("GET", "/v1/suppressions", Some(&operator.key), None)
        .await;
    let mut all = addresses(&all);
    all.sort();
    assert_eq!(all, ["gone@acme.test", "left@globex.test"]);
    let (_, one, _) = app.call("GET", &other, Some(&operator.key), None).await;
    assert_eq!(addresses(&one), ["left@globex.test"]);
}

#[tokio::test]
async fn recipients_refused_by_the_api_are_kept_with_their_reason_and_batch() {
    let app = app().await;
    let (acme, key) = app.store.create_account("Acme").await.unwrap();
    let lead = |email: &str, permission: &str| json!({"email": email, "first_name": "X", "permission_to_email": permission});
    let (_, no, _) = app
        .call(
            "POST",
            "/v1/leads",
            Some(&key.key),
            Some(lead("no@acme.test", "no")),
        )
        .await;
    let (_, yes, _) = app
        .call(
            "POST",
            "/v1/leads",
            Some(&key.key),
            Some(lead("yes@acme.test", "yes")),
        )
        .await;
    let batch = json!({
        "from": "sales@acme.test",
        "subject": "Spring offer",
        "text": "Hello",
        "batch": "spring",
        "recipients": [
            {"lead_id": yes["id"]},
            {"lead_id": no["id"]},
            {"to": "NO@acme.test"},
            {"to": "not an address"},
            {"lead_id": "no-such-lead"},
        ],
    });
    let (status, answer, _) = app
        .call("POST", "/v1/emails/batch", Some(&key.key), Some(batch))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["emails"].as_array().unwrap().len(), 1);
    assert_eq!(answer["refused"].as_array().unwrap().len(), 4);

    let counts = app.store.refusals_by_batch(&acme).await.unwrap();
    assert_eq!(counts[&Some("spring".to_owned())].refused, 4);
    let refused = app
        .store
        .lead_refusals(&acme, no["id"].as_str().unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(
        refused.len(),
        2,
        "by its id and by its address: {refused:?}"
    );
    for r in &refused {
        assert_eq!(r.reason, RefusalReason::NoPermission);
        assert_eq!(r.batch.as_deref(), Some("spring"));
        assert_eq!(r.subject, "Spring offer");
    }

    // A single send that is refused answers 422 and is kept too, without a batch.
    let single =
        json!({"lead_id": no["id"], "from": "sales@acme.test", "subject": "Hi", "text": "x"});
    let (status, _, _) = app
        .call("POST", "/v1/emails", Some(&key.key), Some(single))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let refused = app
        .store
        .lead_refusals(&acme, no["id"].as_str().unwrap(), 10)
        .await
        .unwrap();
    assert_eq!((refused.len(), refused[0].batch.as_deref()), (3, None));
    let counts = app.store.refusals_by_batch(&acme).await.unwrap();
    assert_eq!(counts[&None].refused, 1);

    // Another account sees none of them.
    let (globex, _) = app.store.create_account("Globex").await.unwrap();
    assert!(
        app.store
            .refusals_by_batch(&globex)
            .await
            .unwrap()
            .is_empty()
    );
}
