//! Opens, clicks and unsubscribes through the public endpoints: they move the stage as
//! docs/emails.md, docs/tracking.md say, machines are flagged apart, and hostile input writes nothing.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::{App, app, tokens};
use mailtrail_domain::token::Purpose;
use mailtrail_domain::{EmailAddress, Event, EventKind, Permission, Stage};
use mailtrail_store::{AccountId, EmailId};
use mailtrail_store::{Content, NewLead, QueueEntry, Submission, now_ms};
use serde_json::json;

const PERSON: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";
const URL: &str = "https://shop.example/a?x=1&y=2#ünï";

/// A delivered email (a minute ago) with one stored link; returns the account and email ids.
async fn delivered_email(app: &App, to: &str) -> (String, String) {
    let (account, _) = app.store.create_account("Acme").await.unwrap();
    let lead = NewLead {
        address: EmailAddress::parse(to).unwrap(),
        first_name: None,
        last_name: None,
        fields: BTreeMap::new(),
        permission: Permission::Yes,
    };
    let lead = app.store.create_lead(&account, &lead).await.unwrap();
    let submission = Submission {
        content: Content {
            from: "s@shop.test".into(),
            subject: "Hi".into(),
            text: None,
            html: Some("<a href=\"x\">x</a>".into()),
            ..Default::default()
        },
        batch: None,
        send_at_ms: None,
        entries: vec![QueueEntry {
            to: EmailAddress::parse(to).unwrap(),
            lead_id: Some(lead.id),
            fields: BTreeMap::new(),
            dropped: None,
            header_to: None,
        }],
    };
    let id = app
        .store
        .enqueue(&account, &submission, None, |_| String::new())
        .await
        .unwrap()
        .remove(0);
    let delivered = Event::new(EventKind::Delivered, now_ms() - 60_000).with_status("250 ok");
    app.store
        .append_event(&account, &EmailId::from(&id), &delivered)
        .await
        .unwrap();
    app.store.save_links(&id, &[URL.to_owned()]).await.unwrap();
    (account.into(), id)
}

async fn stage(app: &App, account: &str, id: &str) -> (Stage, usize) {
    app.flush().await;
    let email = app
        .store
        .email(&AccountId::from(account), &EmailId::from(id))
        .await
        .unwrap();
    (
        email.stage,
        app.store
            .events(&AccountId::from(account), &EmailId::from(id))
            .await
            .unwrap()
            .len(),
    )
}

#[tokio::test]
async fn a_persons_open_and_click_move_the_stage() {
    let app = app().await;
    let (account, id) = delivered_email(&app, "ana@example.com").await;
    let open = tokens().sign(Purpose::Open, &id, None).unwrap();
    let (status, headers, body) = app
        .fetch("GET", &format!("/o/{open}.gif"), &[("user-agent", PERSON)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "image/gif");
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-cache")
    );
    assert_eq!(body.len(), 43);
    assert_eq!(stage(&app, &account, &id).await.0, Stage::Opened);

    let click = tokens().sign(Purpose::Click, &id, Some(0)).unwrap();
    let (status, headers, _) = app
        .fetch("GET", &format!("/c/{click}"), &[("user-agent", PERSON)])
        .await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(
        headers["location"].as_bytes(),
        URL.as_bytes(),
        "the stored URL, byte for byte"
    );
    assert_eq!(stage(&app, &account, &id).await.0, Stage::Clicked);
}

#[tokio::test]
async fn machine_opens_and_clicks_imply_delivery_only() {
    let app = app().await;
    let (account, id) = delivered_email(&app, "bo@example.com").await;
    let open = tokens().sign(Purpose::Open, &id, None).unwrap();
    let proxy =
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
    app.fetch("GET", &format!("/o/{open}.gif"), &[("user-agent", proxy)])
        .await;
    app.fetch(
        "GET",
        &format!("/o/{open}.gif"),
        &[("user-agent", "Mozilla/5.0")],
    )
    .await;
    let click = tokens().sign(Purpose::Click, &id, Some(0)).unwrap();
    let (status, _, _) = app
        .fetch("HEAD", &format!("/c/{click}"), &[("user-agent", PERSON)])
        .await;
    assert_eq!(status, StatusCode::FOUND);
    app.fetch(
        "GET",
        &format!("/c/{click}"),
        &[("user-agent", "Mimecast Link Scanner")],
    )
    .await;
    assert_eq!(stage(&app, &account, &id).await.0, Stage::Delivered);
    let machines: Vec<String> = app
        .store
        .events(&AccountId::from(&account), &EmailId::from(&id))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.event.detail.machine)
        .collect();
    assert_eq!(
        machines,
        [
            "google-image-proxy",
            "apple-mail-privacy-protection",
            "head-request",
            "mimecast"
        ]
    );
}

#[tokio::test]
async fn forged_altered_and_open_redirect_tokens_write_nothing() {
    let app = app().await;
    let (account, id) = delivered_email(&app, "cy@example.com").await;
    let before = stage(&app, &account, &id).await;
    let other_key = mailtrail_domain::token::TokenKey::new(b"someone else");
    let forged = other_key.sign(Purpose::Click, &id, Some(0)).unwrap();
    let valid = tokens().sign(Purpose::Click, &id, Some(0)).unwrap();
    let mut altered = valid.clone().into_bytes();
    altered[3] = if altered[3] == b'a' { b'b' } else { b'a' };
    let altered = String::from_utf8(altered).unwrap();
    let unstored_link = tokens().sign(Purpose::Click, &id, Some(7)).unwrap();
    let open_as_click = tokens().sign(Purpose::Open, &id, None).unwrap();
    let hostile = [
        format!("/c/{forged}"),
        format!("/c/{altered}"),
        format!("/c/{}", &valid[..valid.len() - 2]),
        format!("/c/{unstored_link}"),
        format!("/c/{open_as_click}"),
        "/c/%2F%2Fevil.example".into(),
        "/c/https:evil.example".into(),
        "/c/%0d%0aLocation:%20https://evil.example".into(),
        format!("/c/{valid}%0d%0aLocation:%20https://evil.example"),
        format!("/o/{forged}.gif"),
        format!("/o/{open_as_click}"),
        "/u/%3Cscript%3Ealert(1)%3C%2Fscript%3E".into(),
        format!("/u/{valid}"),
    ];
    for uri in &hostile {
        let (status, headers, body) = app.fetch("GET", uri, &[("user-agent", PERSON)]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(headers.get("location").is_none(), "{uri}");
        assert!(
            !String::from_utf8_lossy(&body).contains("<script>"),
            "{uri}"
        );
    }
    let (status, _, _) = app.fetch("POST", &format!("/u/{valid}"), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        stage(&app, &account, &id).await,
        before,
        "nothing was written"
    );
}

#[tokio::test]
async fn stored_script_and_data_links_are_not_redirected_and_write_nothing() {
    let app = app().await;
    let (account, id) = delivered_email(&app, "di@example.com").await;
    // As links were stored before only http(s) ones were tracked.
    let stored = [
        URL,
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "/relative",
    ]
    .map(str::to_owned);
    app.store.save_links(&id, &stored).await.unwrap();
    let before = stage(&app, &account, &id).await;
    for (index, url) in (1..).zip(&stored[1..]) {
        let token = tokens().sign(Purpose::Click, &id, Some(index)).unwrap();
        let (status, headers, _) = app
            .fetch("GET", &format!("/c/{token}"), &[("user-agent", PERSON)])
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
        assert!(headers.get("location").is_none(), "{url}");
    }
    assert_eq!(
        stage(&app, &account, &id).await,
        before,
        "nothing was written"
    );
    let token = tokens().sign(Purpose::Click, &id, Some(0)).unwrap();
    let (status, headers, _) = app
        .fetch("GET", &format!("/c/{token}"), &[("user-agent", PERSON)])
        .await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(headers["location"], URL);
}

#[tokio::test]
async fn unsubscribing_takes_a_post_and_blocks_the_address() {
    let app = app().await;
    let (account, id) = delivered_email(&app, "di@example.com").await;
    let token = tokens().sign(Purpose::Unsubscribe, &id, None).unwrap();
    let (status, _, page) = app.fetch("GET", &format!("/u/{token}"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("<form method=\"post\""), "{page}");
    assert_eq!(
        stage(&app, &account, &id).await.0,
        Stage::Delivered,
        "a GET (a link scanner) changes nothing"
    );

    // RFC 8058 one-click: a POST with List-Unsubscribe=One-Click.
    let (status, _, _) = app
        .fetch(
            "POST",
            &format!("/u/{token}"),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stage(&app, &account, &id).await.0, Stage::Unsubscribed);
    let address = EmailAddress::parse("di@example.com").unwrap();
    assert!(
        app.store
            .suppression(&account, &address)
            .await
            .unwrap()
            .is_some()
    );
    let lead = app
        .store
        .lead_by_address(&account, &address)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.permission, Permission::No);
}

#[tokio::test]
async fn admins_switch_tracking_on_and_users_may_not() {
    let app = app().await;
    let (account, admin) = app.store.create_account("Acme").await.unwrap();
    let user = app
        .store
        .create_api_key(Some(&account), mailtrail_domain::Role::User)
        .await
        .unwrap();
    let (status, settings, _) = app.call("GET", "/v1/settings", Some(&user.key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            settings["open_tracking"].as_bool(),
            settings["click_tracking"].as_bool()
        ),
        (Some(false), Some(false)),
        "off by default"
    );
    let patch = json!({"open_tracking": true, "click_tracking": true, "tracking_base_url": "https://t.shop.example/"});
    let (status, _, _) = app
        .call(
            "PATCH",
            "/v1/settings",
            Some(&user.key),
            Some(patch.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, settings, _) = app
        .call("PATCH", "/v1/settings", Some(&admin.key), Some(patch))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["tracking_base_url"], "https://t.shop.example");
    assert!(app.store.settings(&account).await.unwrap().click_tracking);
    let (status, _, _) = app
        .call(
            "PATCH",
            "/v1/settings",
            Some(&admin.key),
            Some(json!({"tracking_base_url": "javascript:alert(1)"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
