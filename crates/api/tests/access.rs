//! Who may call what, over every keyed route in one table: without a key every route is a
//! 401 problem; another account's key sees this account's ids exactly like missing ones and
//! none of its data; a role below the route's is a 403; the right role succeeds. The table
//! is checked against the OpenAPI document, so a new route is one new row here.

mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use common::{App, app};
use mailtrail_domain::{EmailAddress, Permission, Reason, Role};
use mailtrail_outbound::submit::{self, Recipient, Request};
use mailtrail_store::{Block, NewLead};
use serde_json::Value;

/// One route: method, path and JSON body, with `{lead}`, `{email}`, `{webhook}`, `{address}`,
/// `{domain}` standing for the account's ids and `{account}` for the account the request acts on.
struct Route {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    /// The least role that may call it.
    role: Role,
}

const fn route(method: &'static str, path: &'static str, role: Role) -> Route {
    Route {
        method,
        path,
        body: None,
        role,
    }
}

const fn with_body(
    method: &'static str,
    path: &'static str,
    body: &'static str,
    role: Role,
) -> Route {
    Route {
        method,
        path,
        body: Some(body),
        role,
    }
}

/// Every keyed route. Rows that delete come after the rows that read the same resource: the
/// last phase calls each row as its owner.
const ROUTES: &[Route] = &[
    route("GET", "/v1/leads", Role::User),
    with_body(
        "POST",
        "/v1/leads",
        r#"{"email": "new@acme.test"}"#,
        Role::User,
    ),
    route("GET", "/v1/leads/{lead}", Role::User),
    with_body(
        "PATCH",
        "/v1/leads/{lead}",
        r#"{"first_name": "Anna"}"#,
        Role::User,
    ),
    route("GET", "/v1/leads/{lead}/activity", Role::User),
    route("GET", "/v1/reports/emails", Role::User),
    route("GET", "/v1/reports/batches", Role::User),
    with_body(
        "POST",
        "/v1/emails",
        r#"{"lead_id": "{lead}", "from": "s@acme.test", "subject": "Hi", "text": "x"}"#,
        Role::User,
    ),
    with_body(
        "POST",
        "/v1/emails/batch",
        r#"{"from": "s@acme.test", "subject": "Hi", "text": "x", "recipients": [{"lead_id": "{lead}"}]}"#,
        Role::User,
    ),
    route("GET", "/v1/emails/{email}", Role::User),
    route("POST", "/v1/emails/{email}/cancel", Role::User),
    route("POST", "/v1/batches/{batch}/cancel", Role::User),
    route("GET", "/v1/settings", Role::User),
    with_body(
        "PATCH",
        "/v1/settings",
        r#"{"open_tracking": true}"#,
        Role::Admin,
    ),
    route("POST", "/v1/sending/resume", Role::Admin),
    route("GET", "/v1/webhooks", Role::Admin),
    with_body(
        "POST",
        "/v1/webhooks",
        r#"{"url": "http://127.0.0.1:9/new"}"#,
        Role::Admin,
    ),
    route("GET", "/v1/webhooks/{webhook}/deliveries", Role::Admin),
    route("POST", "/v1/webhooks/{webhook}/test", Role::Admin),
    route("DELETE", "/v1/webhooks/{webhook}", Role::Admin),
    route("GET", "/v1/smtp-credentials", Role::Admin),
    route("POST", "/v1/smtp-credentials", Role::Admin),
    route("DELETE", "/v1/smtp-credentials/{credential}", Role::Admin),
    route("GET", "/v1/domains", Role::Admin),
    with_body(
        "POST",
        "/v1/domains",
        r#"{"domain": "new.acme.test"}"#,
        Role::Admin,
    ),
    route("GET", "/v1/domains/{domain}", Role::Admin),
    route("POST", "/v1/domains/{domain}/verify", Role::Admin),
    route("POST", "/v1/domains/{domain}/rotate", Role::Admin),
    route("DELETE", "/v1/domains/{domain}", Role::Admin),
    route("GET", "/v1/suppressions?account={account}", Role::User),
    route(
        "DELETE",
        "/v1/suppressions/{address}?account={account}&reason=asked",
        Role::Operator,
    ),
    route("DELETE", "/v1/leads/{lead}", Role::Admin),
];

/// Strings of Acme's data that another account must never see.
const SECRETS: [&str; 6] = [
    "ana@acme.test",
    "Acme secret subject",
    "acme-batch",
    "https://acme.test/hook",
    "gone@acme.test",
    "mail.acme.test",
];

/// One account's keys and ids.
struct Account {
    id: String,
    user: String,
    admin: String,
    ids: Vec<(&'static str, String)>,
}

impl Account {
    /// The key that calls a route with `role` on this account (operators name it).
    fn key<'a>(&'a self, role: Role, operator: &'a str) -> &'a str {
        match role {
            Role::User => &self.user,
            Role::Admin => &self.admin,
            Role::Operator => operator,
        }
    }
}

async fn account(app: &App, name: &str) -> Account {
    let (id, admin) = app.store.create_account(name).await.unwrap();
    let user = app
        .store
        .create_api_key(Some(&id), Role::User)
        .await
        .unwrap();
    Account {
        id: id.into(),
        user: user.key,
        admin: admin.key,
        ids: Vec::new(),
    }
}

/// Acme's lead, email, webhook, suppressed address and sending domain, made through the
/// store.
async fn fill(app: &App, acme: &mut Account) {
    let lead = NewLead {
        address: EmailAddress::parse("ana@acme.test").unwrap(),
        first_name: Some("Ana".into()),
        last_name: None,
        fields: Default::default(),
        permission: Permission::Yes,
    };
    let lead = app.store.create_lead(&acme.id, &lead).await.unwrap();
    let request = Request {
        from: "s@acme.test".into(),
        subject: "Acme secret subject".into(),
        text: Some("x".into()),
        html: None,
        batch: Some("acme-batch".into()),
        send_at_ms: None,
        recipients: vec![Recipient {
            lead_id: Some(lead.id.clone()),
            to: None,
            fields: Default::default(),
        }],
        ..Request::default()
    };
    let accepted = submit::submit(&app.store, &acme.id, request, None, |_| String::new())
        .await
        .unwrap();
    let hook = app
        .store
        .create_webhook(&acme.id, "https://acme.test/hook", None)
        .await
        .unwrap();
    let block = Block {
        reason: Reason::UserUnknown,
        status: Some("550 5.1.1 User unknown".into()),
        email_id: None,
    };
    let address = EmailAddress::parse("gone@acme.test").unwrap();
    app.store
        .suppress(&acme.id, &address, &block, "test")
        .await
        .unwrap();
    let credential = app.store.create_smtp_credential(&acme.id).await.unwrap();
    let key = mailtrail_outbound::dkim::generate(Default::default()).unwrap();
    app.store
        .create_domain(
            &acme.id,
            &mailtrail_store::NewDomain {
                domain: "mail.acme.test",
                selector: "mt1",
                algorithm: "ed25519",
                private_key_pem: &key.private_key_pem,
                public_key_b64: &key.public_key_b64,
            },
        )
        .await
        .unwrap();
    acme.ids = vec![
        ("{lead}", lead.id),
        ("{email}", accepted.queued[0].id.clone()),
        ("{webhook}", hook.id),
        ("{credential}", credential.id),
        ("{address}", "gone@acme.test".into()),
        ("{batch}", "acme-batch".into()),
        ("{domain}", "mail.acme.test".into()),
    ];
}

/// The route's path and body with these ids, acting on `account`.
fn fill_in(route: &Route, ids: &[(&str, String)], account: &str) -> (String, Option<Value>) {
    let mut path = route.path.replace("{account}", account);
    let mut body = route.body.map(str::to_owned);
    for (placeholder, id) in ids {
        path = path.replace(placeholder, id);
        body = body.map(|b| b.replace(placeholder, id));
    }
    (path, body.map(|b| serde_json::from_str(&b).unwrap()))
}

/// Whether the route names one of the account's ids.
fn takes_ids(route: &Route) -> bool {
    let text = format!("{}{}", route.path, route.body.unwrap_or(""));
    [
        "{lead}",
        "{email}",
        "{webhook}",
        "{credential}",
        "{address}",
        "{domain}",
    ]
    .iter()
    .any(|p| text.contains(p))
}

#[tokio::test]
async fn the_table_covers_every_keyed_route_of_the_document() {
    let doc = serde_json::to_value(mailtrail_api::openapi()).unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"] != serde_json::json!([{}]) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let placeholders = [
        ("{lead}", "{id}"),
        ("{email}", "{id}"),
        ("{webhook}", "{id}"),
        ("{credential}", "{id}"),
    ];
    let table: BTreeSet<String> = ROUTES
        .iter()
        .map(|r| {
            let path = r.path.split('?').next().unwrap();
            let path = placeholders
                .iter()
                .fold(path.to_owned(), |p, (from, to)| p.replace(from, to));
            format!("{} {path}", r.method)
        })
        .collect();
    assert_eq!(table, documented);
    assert_eq!(table.len(), ROUTES.len(), "one row per route");
}

#[tokio::test]
async fn every_route_enforces_keys_accounts_and_roles() {
    let app = app().await;
    let mut acme = account(&app, "Acme").await;
    let globex = account(&app, "Globex").await;
    fill(&app, &mut acme).await;
    let operator = app
        .store
        .create_api_key(None, Role::Operator)
        .await
        .unwrap()
        .key;
    let missing: Vec<(&str, String)> = acme
        .ids
        .iter()
        .map(|(p, _)| {
            (
                *p,
                match *p {
                    "{address}" => "nobody@acme.test",
                    "{domain}" => "nowhere.acme.test",
                    _ => "missing-id",
                }
                .to_owned(),
            )
        })
        .collect();

    for route in ROUTES {
        let row = format!("{} {}", route.method, route.path);
        let (path, body) = fill_in(route, &acme.ids, &acme.id);

        // (a) No key: 401, as a problem document.
        let (status, problem, content_type) =
            app.call(route.method, &path, None, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{row}");
        assert_eq!(content_type, "application/problem+json", "{row}");
        assert_eq!(problem["status"], 401, "{row}");

        // (b) Another account, with the role the route needs, and Acme's ids or data.
        let key = globex.key(route.role, &operator);
        let (path, body) = fill_in(route, &acme.ids, &globex.id);
        let (status, answer, _) = app.call(route.method, &path, Some(key), body).await;
        let text = answer.to_string();
        for secret in SECRETS {
            assert!(
                !text.contains(secret),
                "{row}: Globex sees {secret}: {text}"
            );
        }
        if takes_ids(route) {
            let (path, body) = fill_in(route, &missing, &globex.id);
            let (missing_status, missing_answer, _) =
                app.call(route.method, &path, Some(key), body).await;
            let blank = |text: String, ids: &[(&str, String)]| {
                ids.iter()
                    .fold(text, |t, (_, id)| t.replace(id.as_str(), "ID"))
            };
            assert_eq!(
                (status, blank(text, &acme.ids)),
                (missing_status, blank(missing_answer.to_string(), &missing)),
                "{row}: Acme's ids must look missing to Globex"
            );
            if route.body.is_none() {
                assert_eq!(status, StatusCode::NOT_FOUND, "{row}");
            }
        }

        // (c) Each role below the route's: 403.
        for role in [Role::User, Role::Admin]
            .into_iter()
            .filter(|r| *r < route.role)
        {
            let (path, body) = fill_in(route, &acme.ids, &acme.id);
            let key = acme.key(role, &operator);
            let (status, problem, content_type) =
                app.call(route.method, &path, Some(key), body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{row} as {role:?}");
            assert_eq!(content_type, "application/problem+json", "{row}");
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap()
                    .contains(route.role.as_str()),
                "{row}"
            );
        }
    }

    // Globex's calls changed nothing of Acme's.
    let (_, settings, _) = app
        .call("GET", "/v1/settings", Some(&acme.user), None)
        .await;
    assert_eq!(settings["open_tracking"], false);
    let (_, hooks, _) = app
        .call("GET", "/v1/webhooks", Some(&acme.admin), None)
        .await;
    assert_eq!(hooks["webhooks"].as_array().unwrap().len(), 1, "{hooks}");
    let (_, lead, _) = app
        .call(
            "GET",
            &fill_in(&ROUTES[2], &acme.ids, &acme.id).0,
            Some(&acme.user),
            None,
        )
        .await;
    assert_eq!(lead["first_name"], "Ana");

    // (d) The owner with the route's role succeeds, so the refusals above were about access.
    for route in ROUTES {
        let (path, body) = fill_in(route, &acme.ids, &acme.id);
        let key = acme.key(route.role, &operator);
        let (status, answer, _) = app.call(route.method, &path, Some(key), body).await;
        assert!(
            status.is_success(),
            "{} {}: {status} {answer}",
            route.method,
            route.path
        );
    }
}
