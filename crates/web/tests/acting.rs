//! The forms people act through, without a browser: compose and send to a lead, import
//! leads from CSV, add and edit a lead, cancel a waiting email or batch, send a batch. Each
//! refuses a POST without the session's CSRF token, says what is wrong and keeps what was
//! typed, changes nothing when it refuses, and treats another account's lead, email or batch
//! as missing.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use common::{App, PASSWORD, USER, app};
use mailtrail_domain::{EmailAddress, Permission, Reason};
use mailtrail_store::{AccountId, EmailId};
use mailtrail_store::{LeadPatch, PermissionCause};
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    location: String,
    body: String,
}

/// A signed-in browser: its session cookie and the CSRF token of its forms.
struct Session<'a> {
    app: &'a App,
    cookie: String,
    csrf: String,
}

async fn send(app: &App, request: Request<Body>) -> Answer {
    let response = app.router().oneshot(request).await.unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer {
        status,
        location,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn urlencoded(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The value of the first `name="csrf"` field of a page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// The `name=value` of the cookie `name` that `response` sets.
fn set_cookie(response: &Response<Body>, name: &str) -> String {
    let prefix = format!("{name}=");
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .find(|c| c.starts_with(&prefix))
        .unwrap_or_else(|| panic!("sets {name}"))
        .to_owned()
}

impl<'a> Session<'a> {
    /// Signs in through the sign-in form.
    async fn start(app: &'a App, email: &str) -> Session<'a> {
        let login = app
            .router()
            .oneshot(Request::get("/login").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let form_cookie = set_cookie(&login, "mailtrail_login");
        let page = axum::body::to_bytes(login.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = urlencoded(&[
            ("csrf", &csrf_of(&String::from_utf8_lossy(&page))),
            ("email", email),
            ("password", PASSWORD),
            ("next", "/leads"),
        ]);
        let signed_in = app
            .router()
            .oneshot(
                Request::post("/login")
                    .header(header::COOKIE, form_cookie)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        let cookie = set_cookie(&signed_in, "mailtrail_session");
        let mut session = Session {
            app,
            cookie,
            csrf: String::new(),
        };
        session.csrf = csrf_of(&session.get("/leads").await.body);
        session
    }

    async fn get(&self, path: &str) -> Answer {
        let request = Request::get(path)
            .header(header::COOKIE, &self.cookie)
            .body(Body::empty())
            .unwrap();
        send(self.app, request).await
    }

    /// A form POST with the session's CSRF token.
    async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(pairs);
        self.post_raw(path, &urlencoded(&all)).await
    }

    /// A form POST as given: no token unless the pairs carry one.
    async fn post_raw(&self, path: &str, body: &str) -> Answer {
        let request = Request::post(path)
            .header(header::COOKIE, &self.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap();
        send(self.app, request).await
    }

    /// The import form, as a browser sends it: multipart, with a file and the text box.
    async fn import(&self, csrf: &str, file: &[u8], text: &str, skip_invalid: bool) -> Answer {
        const BOUNDARY: &str = "----mailtrail-test-boundary";
        let mut body = Vec::new();
        let mut part = |disposition: &str, content: &[u8]| {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n")
                    .as_bytes(),
            );
            if disposition.contains("filename") {
                body.extend_from_slice(b"Content-Type: text/csv\r\n");
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        };
        part("name=\"csrf\"", csrf.as_bytes());
        part("name=\"file\"; filename=\"leads.csv\"", file);
        part("name=\"csv\"", text.as_bytes());
        if skip_invalid {
            part("name=\"skip_invalid\"", b"yes");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let request = Request::post("/leads/import")
            .header(header::COOKIE, &self.cookie)
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(body))
            .unwrap();
        send(self.app, request).await
    }
}

/// How many emails went to the lead.
async fn emails_to(app: &App, account: &str, lead: &str) -> usize {
    app.store
        .lead_activity(&AccountId::from(account), lead, 1000)
        .await
        .unwrap()
        .0
        .len()
}

async fn lead_id(app: &App, email: &str) -> String {
    app.store
        .lead_by_address(&app.seeded.acme, &EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
}

fn compose(subject: &str, text: &str, action: &str) -> Vec<(&'static str, String)> {
    vec![
        ("from_name", "Acme Sales".into()),
        ("from_local", "sales".into()),
        ("from_domain", "acme.test".into()),
        ("subject", subject.into()),
        ("text", text.into()),
        ("html", String::new()),
        ("send_at", String::new()),
        ("action", action.into()),
    ]
}

fn pairs<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn an_email_composed_on_a_lead_page_is_previewed_with_its_fields_then_sent() {
    let app = app().await;
    let (acme, carla) = (&app.seeded.acme, &app.seeded.carla);
    let user = Session::start(&app, USER).await;
    let path = format!("/leads/{carla}/compose");
    let page = user.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("Email to Carla Mendes &#60;carla@shop.test&#62;"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("{{ company }}"),
        "the lead's merge fields are listed"
    );

    let before = emails_to(&app, acme, carla).await;
    let form = compose("Hi {{ first_name }}", "For {{ company }}", "preview");
    let preview = user.post(&path, &pairs(&form)).await;
    assert_eq!(preview.status, StatusCode::OK);
    assert!(preview.body.contains("Preview for"), "{}", preview.body);
    assert!(preview.body.contains("<dd>Hi Carla</dd>"));
    assert!(preview.body.contains("For Shop &#38; Co"));
    assert!(
        preview.body.contains("value=\"Hi {{ first_name }}\""),
        "the template is kept as typed"
    );
    assert_eq!(
        emails_to(&app, acme, carla).await,
        before,
        "a preview sends nothing"
    );

    let form = compose("Hi {{ first_name }}", "For {{ company }}", "send");
    let sent = user.post(&path, &pairs(&form)).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    let id = sent.location.strip_prefix("/emails/").unwrap();
    let email = app
        .store
        .email(&AccountId::from(acme), &EmailId::from(id))
        .await
        .unwrap();
    assert_eq!(email.to, "carla@shop.test");
    assert_eq!(email.from, "sales@acme.test");
    assert_eq!(email.from_name.as_deref(), Some("Acme Sales"));
    assert_eq!(email.lead_id.as_deref(), Some(carla.as_str()));
    assert!(email.next_attempt_at_ms.is_some(), "queued for delivery");
    assert_eq!(emails_to(&app, acme, carla).await, before + 1);
    let timeline = user.get(&format!("/leads/{carla}")).await;
    assert!(timeline.body.contains(&format!("/emails/{id}")));
}

#[tokio::test]
async fn a_refused_email_says_why_keeps_what_was_typed_and_sends_nothing() {
    let app = app().await;
    let (acme, carla) = (&app.seeded.acme, &app.seeded.carla);
    let user = Session::start(&app, USER).await;
    let path = format!("/leads/{carla}/compose");

    let mut form = compose("Spring {{ first_name", "Typed by hand", "send");
    form[1].1 = String::new();
    let refused = user.post(&path, &pairs(&form)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("Give the From address"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("Typed by hand</textarea>"));
    assert!(refused.body.contains("value=\"Spring {{ first_name\""));

    let form = compose("Spring {{ first_name", "Typed by hand", "send");
    let refused = user.post(&path, &pairs(&form)).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("Subject: the template cannot be rendered"),
        "{}",
        refused.body
    );

    let mut form = compose("Hi", "Hello", "send");
    form[6].1 = "2001-01-01 09:00".into();
    let refused = user.post(&path, &pairs(&form)).await;
    assert!(refused.body.contains("has passed"), "{}", refused.body);

    // Permission to Email No: the API's refusal, in words.
    let patch = LeadPatch {
        permission: Some(Permission::No),
        ..LeadPatch::default()
    };
    app.store
        .update_lead(&AccountId::from(acme), carla, &patch)
        .await
        .unwrap();
    let refused = user
        .post(&path, &pairs(&compose("Hi", "Hello", "send")))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Permission to Email is No"));
    assert!(
        refused
            .body
            .contains("Not sent: the lead carla@shop.test has Permission to Email set to No."),
        "{}",
        refused.body
    );
    assert_eq!(
        emails_to(&app, acme, carla).await,
        2,
        "only the seed's emails"
    );

    let csrf_free = urlencoded(&pairs(&compose("Hi", "Hello", "send")));
    let forged = user.post_raw(&path, &csrf_free).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_blocked_lead_is_warned_of_and_its_email_is_dropped_not_sent() {
    let app = app().await;
    let eve = lead_id(&app, "eve@shop.test").await;
    // Her hard bounce set Permission to Email No; set back to Yes, she is still blocked.
    let patch = LeadPatch {
        permission: Some(Permission::Yes),
        ..LeadPatch::default()
    };
    app.store
        .update_lead(&AccountId::from(&app.seeded.acme), &eve, &patch)
        .await
        .unwrap();
    let user = Session::start(&app, USER).await;
    let path = format!("/leads/{eve}/compose");
    assert!(
        user.get(&path)
            .await
            .body
            .contains("This address is blocked")
    );
    let sent = user
        .post(&path, &pairs(&compose("Hi", "Hello", "send")))
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    let id = sent.location.strip_prefix("/emails/").unwrap();
    let email = app
        .store
        .email(&AccountId::from(&app.seeded.acme), &EmailId::from(id))
        .await
        .unwrap();
    assert_eq!(email.reason, Some(Reason::Suppressed));
    assert_eq!(email.status.as_deref(), Some("Dropped"));
}

#[tokio::test]
async fn with_verified_domains_required_only_those_are_offered_and_others_refused() {
    let mut app = app().await;
    let config = mailtrail_outbound::OutboundConfig {
        require_verified_domains: true,
        ..Default::default()
    };
    app.state.domains = Arc::new(
        mailtrail_outbound::domains::Checker::new(&config, &["127.0.0.1:9".parse().unwrap()])
            .unwrap(),
    );
    let carla = app.seeded.carla.clone();
    let user = Session::start(&app, USER).await;
    let path = format!("/leads/{carla}/compose");
    let page = user.get(&path).await;
    assert!(page.body.contains("<select id=\"from_domain\""));
    assert!(page.body.contains("no verified sending domain yet"));
    let refused = user
        .post(&path, &pairs(&compose("Hi", "Hello", "send")))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("the domain acme.test is not a verified sending domain of this account"),
        "{}",
        refused.body
    );
    assert_eq!(emails_to(&app, &app.seeded.acme, &carla).await, 2);

    // One domain verified, one not: only the first is offered, and only it sends.
    let key = mailtrail_outbound::dkim::generate(Default::default()).unwrap();
    for domain in ["acme.test", "other.test"] {
        let new = mailtrail_store::NewDomain {
            domain,
            selector: "mt1",
            algorithm: "rsa",
            private_key_pem: &key.private_key_pem,
            public_key_b64: &key.public_key_b64,
        };
        app.store
            .create_domain(&app.seeded.acme, &new)
            .await
            .unwrap();
    }
    app.store
        .record_domain_check(&app.seeded.acme, "acme.test", true, "{}")
        .await
        .unwrap();
    let page = user.get(&path).await;
    assert!(
        page.body.contains("<option value=\"acme.test\" selected>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("other.test"));
    let mut form = compose("Hi", "Hello", "send");
    form[2].1 = "other.test".into();
    let refused = user.post(&path, &pairs(&form)).await;
    assert!(
        refused
            .body
            .contains("the domain other.test is not a verified sending domain")
    );
    let sent = user
        .post(&path, &pairs(&compose("Hi", "Hello", "send")))
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(emails_to(&app, &app.seeded.acme, &carla).await, 3);
}

#[tokio::test]
async fn another_accounts_lead_email_and_batch_are_missing() {
    let app = app().await;
    let (globex, lead, email) = (
        &app.seeded.globex,
        &app.seeded.globex_lead,
        &app.seeded.globex_email,
    );
    let user = Session::start(&app, USER).await;
    for path in [
        format!("/leads/{lead}/compose"),
        format!("/leads/{lead}/edit"),
    ] {
        assert_eq!(
            user.get(&path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let path = format!("/leads/{lead}/compose");
    let sent = user
        .post(&path, &pairs(&compose("Hi", "Hello", "send")))
        .await;
    assert_eq!(sent.status, StatusCode::NOT_FOUND);
    assert_eq!(emails_to(&app, globex, lead).await, 1);
    let edited = user
        .post(
            &format!("/leads/{lead}/edit"),
            &[("first_name", "Taken"), ("permission", "no")],
        )
        .await;
    assert_eq!(edited.status, StatusCode::NOT_FOUND);
    let hal = app
        .store
        .lead(&AccountId::from(globex), lead)
        .await
        .unwrap();
    assert_eq!(
        (hal.first_name.as_deref(), hal.permission),
        (Some("Hal"), Permission::Yes)
    );

    let cancel = user.post(&format!("/emails/{email}/cancel"), &[]).await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    let batch = user
        .post(
            "/batches/cancel",
            &[("batch", "globex-q1"), ("confirm", "yes")],
        )
        .await;
    assert!(
        batch.body.contains("nothing was cancelled"),
        "{}",
        batch.body
    );
    assert!(
        app.store
            .email(&AccountId::from(globex), &EmailId::from(email))
            .await
            .unwrap()
            .next_attempt_at_ms
            .is_some(),
        "Globex's email still waits to be sent"
    );

    // A batch from this account to another's lead sends to nobody.
    let sent = user
        .post(
            "/batches/new",
            &pairs(&batch_form("spring-2", &[lead.as_str()])),
        )
        .await;
    assert!(
        sent.body.contains("Tick at least one lead"),
        "{}",
        sent.body
    );
    assert_eq!(emails_to(&app, globex, lead).await, 1);
}

const GOOD_CSV: &str = "email,first_name,Company\n\
                        ida@shop.test,Ida,Initech\n\
                        jo@shop.test,Jo,Hooli\n";

#[tokio::test]
async fn an_import_with_a_bad_line_names_it_and_imports_nothing_until_fixed() {
    let app = app().await;
    let acme = &app.seeded.acme;
    let user = Session::start(&app, USER).await;
    assert!(
        user.get("/leads/import")
            .await
            .body
            .contains("enctype=\"multipart/form-data\"")
    );
    let before = app.store.count_leads(acme).await.unwrap();

    let bad = "email,first_name,Company\n\
               ida@shop.test,Ida,Initech\n\
               not-an-address,Jo,Hooli\n";
    let refused = user.import(&user.csrf, bad.as_bytes(), "", false).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("Nothing was imported: 1 invalid line(s)")
    );
    assert!(
        refused
            .body
            .contains("Line 3: email &#39;not-an-address&#39;"),
        "{}",
        refused.body
    );
    assert!(
        refused
            .body
            .contains("not-an-address,Jo,Hooli\n</textarea>"),
        "the file is in the box to fix"
    );
    assert_eq!(app.store.count_leads(acme).await.unwrap(), before);

    // Fixed in the box, no file chosen.
    let done = user.import(&user.csrf, b"", GOOD_CSV, false).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Imported 2 leads: 2 new, 0 updated."));
    let ida = lead_id(&app, "ida@shop.test").await;
    let ida = app.store.lead(&AccountId::from(acme), &ida).await.unwrap();
    assert_eq!(ida.fields["Company"], "Initech");
    assert_eq!(app.store.count_leads(acme).await.unwrap(), before + 2);
    assert_eq!(app.store.count_leads(&app.seeded.globex).await.unwrap(), 1);

    let skipped = user.import(&user.csrf, bad.as_bytes(), "", true).await;
    assert!(skipped.body.contains("Imported 1 leads: 0 new, 1 updated."));
    assert!(skipped.body.contains("Skipped 1 invalid line(s): 3."));
}

#[tokio::test]
async fn an_import_refuses_bad_files_whole_and_without_its_token() {
    let app = app().await;
    let acme = &app.seeded.acme;
    let user = Session::start(&app, USER).await;
    let before = app.store.count_leads(acme).await.unwrap();
    let formula = "email,first_name\nida@shop.test,=cmd|' /C calc'!A0\n";
    let huge = format!(
        "email,note\n{}",
        "kim@shop.test,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n".repeat(200_000)
    );
    for (file, says, status) in [
        (
            "name,phone\nAna,1\n",
            "the header row has no &#39;email&#39; column",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            formula,
            "Line 2: first_name &#39;=cmd|&#39; /C calc&#39;!A0&#39; starts with &#39;=&#39;",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "email\n",
            "no lead under its header row",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("", "Choose a CSV file", StatusCode::UNPROCESSABLE_ENTITY),
        (
            huge.as_str(),
            "larger than 5 MiB",
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let refused = user.import(&user.csrf, file.as_bytes(), "", false).await;
        assert_eq!(refused.status, status, "{says}");
        assert!(refused.body.contains(says), "{says}: {}", refused.body);
    }
    let latin1 = user
        .import(
            &user.csrf,
            b"email,first_name\nz@shop.test,J\xf6rg\n",
            "",
            false,
        )
        .await;
    assert!(latin1.body.contains("not UTF-8"));
    let forged = user.import("", GOOD_CSV.as_bytes(), "", false).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(app.store.count_leads(acme).await.unwrap(), before);
}

#[tokio::test]
async fn a_lead_is_added_then_edited_with_its_permission() {
    let app = app().await;
    let acme = &app.seeded.acme;
    let user = Session::start(&app, USER).await;
    let form = [
        ("email", "Kai@Shop.Test"),
        ("first_name", "Kai"),
        ("last_name", ""),
        ("permission", "yes"),
        ("field_name", "company"),
        ("field_value", "Initech"),
    ];
    let added = user.post("/leads/new", &form).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let id = added.location.strip_prefix("/leads/").unwrap().to_owned();
    let kai = app.store.lead(&AccountId::from(acme), &id).await.unwrap();
    assert_eq!(kai.email, "Kai@shop.test");
    assert_eq!(kai.fields["company"], "Initech");

    let again = user.post("/leads/new", &form).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.body.contains("already exists"), "{}", again.body);
    assert!(
        again.body.contains("value=\"Initech\""),
        "what was typed stays"
    );
    let bad = user
        .post(
            "/leads/new",
            &[
                ("email", "no-at-sign"),
                ("first_name", "Lou"),
                ("permission", "yes"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("Email “no-at-sign”"), "{}", bad.body);
    assert!(bad.body.contains("value=\"Lou\""));

    let edit = format!("/leads/{id}/edit");
    assert!(user.get(&edit).await.body.contains("value=\"Initech\""));
    let edited = user
        .post(
            &edit,
            &[
                ("first_name", "Kai"),
                ("last_name", "Berg"),
                ("permission", "no"),
                ("field_name", "company"),
                ("field_value", "Hooli"),
                ("field_name", "plan"),
                ("field_value", "gold"),
            ],
        )
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.body);
    let kai = app.store.lead(&AccountId::from(acme), &id).await.unwrap();
    assert_eq!(kai.last_name.as_deref(), Some("Berg"));
    assert_eq!(kai.permission, Permission::No);
    assert_eq!(kai.permission_cause, Some(PermissionCause::Manual));
    assert_eq!(
        (kai.fields["company"].as_str(), kai.fields["plan"].as_str()),
        ("Hooli", "gold")
    );

    let refused = user
        .post(&edit, &[("first_name", "Kim"), ("permission", "maybe")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Choose Permission to Email"));
    assert!(refused.body.contains("value=\"Kim\""));
    let forged = user
        .post_raw(&edit, "first_name=Mallory&permission=yes")
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let kai = app.store.lead(&AccountId::from(acme), &id).await.unwrap();
    assert_eq!(
        (kai.first_name.as_deref(), kai.permission),
        (Some("Kai"), Permission::No)
    );
}

#[tokio::test]
async fn a_blocked_leads_form_says_yes_does_not_lift_the_block() {
    let app = app().await;
    let eve = lead_id(&app, "eve@shop.test").await;
    let user = Session::start(&app, USER).await;
    let page = user.get(&format!("/leads/{eve}/edit")).await;
    assert!(page.body.contains(
        "Setting Permission to Email back to Yes does not lift the block; only an operator can."
    ));
    user.post(&format!("/leads/{eve}/edit"), &[("permission", "yes")])
        .await;
    let sent = user
        .post(
            &format!("/leads/{eve}/compose"),
            &pairs(&compose("Hi", "Hello", "send")),
        )
        .await;
    let id = sent.location.strip_prefix("/emails/").unwrap();
    let email = app
        .store
        .email(&AccountId::from(&app.seeded.acme), &EmailId::from(id))
        .await
        .unwrap();
    assert_eq!(email.reason, Some(Reason::Suppressed), "still blocked");
}

#[tokio::test]
async fn a_scheduled_email_is_cancelled_from_its_page_and_reads_cancelled() {
    let app = app().await;
    let (acme, carla) = (&app.seeded.acme, &app.seeded.carla);
    let user = Session::start(&app, USER).await;
    let mut form = compose("Tomorrow", "Later", "send");
    form[6].1 = "2999-01-01 09:00".into();
    let sent = user
        .post(&format!("/leads/{carla}/compose"), &pairs(&form))
        .await;
    let page_path = sent.location.clone();
    let page = user.get(&page_path).await;
    assert!(page.body.contains("Scheduled for"), "{}", page.body);
    assert!(page.body.contains("Cancel this email"));

    let forged = user.post_raw(&format!("{page_path}/cancel"), "").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let cancelled = user.post(&format!("{page_path}/cancel"), &[]).await;
    assert_eq!(cancelled.status, StatusCode::SEE_OTHER);
    assert_eq!(cancelled.location, page_path);
    let id = page_path.strip_prefix("/emails/").unwrap();
    let email = app
        .store
        .email(&AccountId::from(acme), &EmailId::from(id))
        .await
        .unwrap();
    assert_eq!(email.reason, Some(Reason::Cancelled));
    let page = user.get(&page_path).await;
    assert!(page.body.contains("Cancelled</span>"), "{}", page.body);
    assert!(!page.body.contains("Cancel this email"));

    let again = user.post(&format!("{page_path}/cancel"), &[]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body.contains("nothing to cancel"));
}

fn batch_form(batch: &str, leads: &[&str]) -> Vec<(&'static str, String)> {
    let mut form = compose("News for {{ first_name }}", "Hello", "send");
    form.push(("batch", batch.into()));
    form.extend(leads.iter().map(|id| ("lead", id.to_string())));
    form
}

#[tokio::test]
async fn a_batch_goes_to_the_ticked_leads_and_names_the_refused() {
    let app = app().await;
    let acme = &app.seeded.acme;
    let (carla, gus) = (
        app.seeded.carla.clone(),
        lead_id(&app, "gus@shop.test").await,
    );
    let fay = lead_id(&app, "fay@shop.test").await;
    let patch = LeadPatch {
        permission: Some(Permission::No),
        ..LeadPatch::default()
    };
    app.store
        .update_lead(&AccountId::from(acme), &fay, &patch)
        .await
        .unwrap();
    let user = Session::start(&app, USER).await;
    let page = user.get("/batches/new?q=gus").await;
    assert!(page.body.contains("gus@shop.test") && !page.body.contains("carla@shop.test"));

    // Search keeps what was typed and ticked.
    let mut search = batch_form("winter", &[&carla]);
    search[7].1 = "search".into();
    search.push(("q", "gus".into()));
    let searched = user.post("/batches/new", &pairs(&search)).await;
    assert_eq!(searched.status, StatusCode::OK);
    assert!(searched.body.contains("Leads (1 ticked)"));
    assert!(searched.body.contains("value=\"winter\""));
    assert!(searched.body.contains("carla@shop.test") && searched.body.contains("gus@shop.test"));

    let unnamed = user
        .post("/batches/new", &pairs(&batch_form(" ", &[&carla])))
        .await;
    assert_eq!(unnamed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unnamed.body.contains("Name the batch"));

    let sent = user
        .post(
            "/batches/new",
            &pairs(&batch_form("winter", &[&carla, &gus, &fay])),
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert!(
        sent.body.contains("Batch “winter”: 2 email(s) queued"),
        "{}",
        sent.body
    );
    assert!(
        sent.body
            .contains("fay@shop.test: the lead fay@shop.test has Permission to Email set to No")
    );
    let report = app
        .store
        .lead_activity(&AccountId::from(acme), &gus, 10)
        .await
        .unwrap()
        .0;
    assert!(report.iter().any(|e| e.batch.as_deref() == Some("winter")));

    // Scheduled, then cancelled from the batch page's form.
    let mut later = batch_form("later", &[&carla, &gus]);
    later[6].1 = "2999-01-01 09:00".into();
    user.post("/batches/new", &pairs(&later)).await;
    assert!(
        user.get("/reports/batches")
            .await
            .body
            .contains("action=\"/batches/cancel\"")
    );
    let unconfirmed = user.post("/batches/cancel", &[("batch", "later")]).await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    let cancelled = user
        .post("/batches/cancel", &[("batch", "later"), ("confirm", "yes")])
        .await;
    assert!(
        cancelled
            .body
            .contains("2 email(s) of batch “later” were cancelled"),
        "{}",
        cancelled.body
    );
    let forged = user
        .post_raw("/batches/cancel", "batch=winter&confirm=yes")
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}
