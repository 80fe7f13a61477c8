//! The admin pages and the UI's error pages without a browser, through the whole service
//! router: who may open them, what each form refuses (keeping what was typed), that a secret
//! is shown once, that another account's objects are missing, that every form needs its
//! CSRF token; HTML 404/405/503 pages for the UI while `/v1` keeps problem+json; each user's
//! timezone; and the client of each open and click on the email page.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use common::{ADMIN, App, PASSWORD, PERSON_AGENT, PERSON_IP, USER, app};
use mailtrail_domain::Role;
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn is_html(&self) -> bool {
        self.header(header::CONTENT_TYPE).starts_with("text/html")
    }

    /// The value of `name=` set by a `Set-Cookie` header.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next()?.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
    }

    /// The first hidden `csrf` field of the page.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self.body.find(marker).expect("a form") + marker.len();
        self.body[at..].split('"').next().unwrap().to_owned()
    }

    /// The text of the first `<code>` after `after` (where a secret is shown).
    fn code_after(&self, after: &str) -> String {
        let at = self.body.find(after).expect(after);
        let rest = &self.body[at..];
        let start = rest.find("<code>").unwrap() + "<code>".len();
        rest[start..].split('<').next().unwrap().to_owned()
    }
}

async fn send(app: &App, request: Request<Body>) -> Answer {
    let response = app.router().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    out.extend_pairs(pairs);
    out.finish()
}

/// A signed-in browser, without the browser.
struct Session<'a> {
    app: &'a App,
    cookie: String,
    csrf: String,
}

impl<'a> Session<'a> {
    async fn start(app: &'a App, email: &str, password: &str) -> Option<Session<'a>> {
        let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
        let login = send(app, get("/login")).await;
        let form = encode(&[
            ("csrf", &login.csrf()),
            ("email", email),
            ("password", password),
        ]);
        let request = Request::post("/login")
            .header(
                header::COOKIE,
                format!("mailtrail_login={}", login.cookie("mailtrail_login")?),
            )
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap();
        let token = send(app, request).await.cookie("mailtrail_session")?;
        let mut session = Session {
            app,
            cookie: format!("mailtrail_session={token}"),
            csrf: String::new(),
        };
        session.csrf = session.get("/settings").await.csrf();
        Some(session)
    }

    async fn signed_in(app: &'a App, email: &str) -> Session<'a> {
        Session::start(app, email, PASSWORD)
            .await
            .expect("signs in")
    }

    async fn get(&self, uri: &str) -> Answer {
        let request = Request::get(uri)
            .header(header::COOKIE, &self.cookie)
            .body(Body::empty())
            .unwrap();
        send(self.app, request).await
    }

    /// POSTs the form with the session's CSRF token.
    async fn post(&self, uri: &str, pairs: &[(&str, &str)]) -> Answer {
        let mut with_token = vec![("csrf", self.csrf.as_str())];
        with_token.extend_from_slice(pairs);
        self.post_raw(uri, &encode(&with_token)).await
    }

    async fn post_raw(&self, uri: &str, body: &str) -> Answer {
        let request = Request::post(uri)
            .header(header::COOKIE, &self.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap();
        send(self.app, request).await
    }
}

/// A call to the JSON API with a key.
async fn api(app: &App, method: &str, uri: &str, key: &str) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    send(app, request).await
}

const ADMIN_PAGES: [&str; 4] = [
    "/admin/users",
    "/admin/api-keys",
    "/admin/smtp-credentials",
    "/admin/webhooks",
];

#[tokio::test]
async fn users_get_a_403_page_from_every_admin_page_and_form_and_no_admin_link() {
    let app = app().await;
    let user = Session::signed_in(&app, USER).await;
    let leads = user.get("/leads").await;
    assert!(
        !leads.body.contains("href=\"/admin/users\""),
        "no Admin link"
    );
    for page in ADMIN_PAGES {
        let answer = user.get(page).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{page}");
        assert!(answer.is_html() && answer.body.contains("managed by the account&#39;s admins"));
    }
    for (form, pairs) in [
        (
            "/admin/users",
            &[("email", "new@acme.test"), ("role", "admin")][..],
        ),
        ("/admin/api-keys", &[("role", "admin")]),
        ("/admin/smtp-credentials", &[]),
        ("/admin/webhooks", &[("url", "https://crm.example/h")]),
    ] {
        assert_eq!(
            user.post(form, pairs).await.status,
            StatusCode::FORBIDDEN,
            "{form}"
        );
    }
    let acme = &app.seeded.acme;
    assert_eq!(
        app.store.users(acme).await.unwrap().len(),
        2,
        "no user added"
    );
    assert_eq!(
        app.store.api_keys(acme).await.unwrap().len(),
        1,
        "no key made"
    );
    assert!(
        app.store
            .list_smtp_credentials(acme)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(app.store.webhooks(acme).await.unwrap().is_empty());

    let admin = Session::signed_in(&app, ADMIN).await;
    assert!(
        admin
            .get("/leads")
            .await
            .body
            .contains("href=\"/admin/users\"")
    );
    for page in ADMIN_PAGES {
        assert_eq!(admin.get(page).await.status, StatusCode::OK, "{page}");
    }
}

#[tokio::test]
async fn every_admin_form_needs_the_sessions_csrf_token_and_changes_nothing_without_it() {
    let app = app().await;
    let admin = Session::signed_in(&app, ADMIN).await;
    for (form, body) in [
        ("/admin/users", "email=new%40acme.test&role=user"),
        ("/admin/users/remove", "id=x&confirm=yes"),
        ("/admin/api-keys", "role=user"),
        ("/admin/api-keys/revoke", "id=x&confirm=yes"),
        ("/admin/smtp-credentials", ""),
        ("/admin/smtp-credentials/revoke", "id=x&confirm=yes"),
        ("/admin/webhooks", "url=https%3A%2F%2Fcrm.example%2Fh"),
        ("/admin/webhooks/remove", "id=x&confirm=yes"),
        ("/admin/webhooks/x/test", ""),
        ("/settings/timezone", "timezone=Asia%2FTokyo"),
    ] {
        for body in [body.to_owned(), format!("csrf=forged&{body}")] {
            let answer = admin.post_raw(form, &body).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{form} {body}");
            assert!(answer.body.contains("This form has expired"), "{form}");
        }
    }
    let acme = &app.seeded.acme;
    assert_eq!(app.store.users(acme).await.unwrap().len(), 2);
    assert_eq!(app.store.api_keys(acme).await.unwrap().len(), 1);
    assert!(
        app.store
            .list_smtp_credentials(acme)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!admin.get("/leads").await.body.contains(" JST"));
}

#[tokio::test]
async fn an_admin_adds_a_user_who_signs_in_with_the_password_shown_once_then_removes_them() {
    let app = app().await;
    let admin = Session::signed_in(&app, ADMIN).await;

    // Refusals say why and keep what was typed.
    let bad = admin
        .post(
            "/admin/users",
            &[("email", "cleo at acme"), ("role", "admin")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body
            .contains("&#39;cleo at acme&#39; is not an email address"),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("value=\"cleo at acme\""));
    assert!(bad.body.contains("<option value=\"admin\" selected>"));
    let operator = admin
        .post(
            "/admin/users",
            &[("email", "cleo@acme.test"), ("role", "operator")],
        )
        .await;
    assert_eq!(operator.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(operator.body.contains("Choose the role: user or admin."));
    let taken = admin
        .post("/admin/users", &[("email", USER), ("role", "user")])
        .await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(taken.body.contains("already signs in to Mailtrail"));
    assert_eq!(app.store.users(&app.seeded.acme).await.unwrap().len(), 2);

    let added = admin
        .post(
            "/admin/users",
            &[("email", " Cleo@Acme.test "), ("role", "admin")],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert!(added.body.contains("cleo@acme.test was added as admin"));
    let password = added.code_after("Password");
    assert_eq!(password.len(), 20);
    assert_eq!(added.header(header::CACHE_CONTROL), "no-store");
    let listed = admin.get("/admin/users").await;
    assert!(listed.body.contains("cleo@acme.test"));
    assert!(!listed.body.contains(&password), "shown once");
    assert!(
        listed.body.contains(">Yes, remove cleo@acme.test</label>")
            && listed
                .body
                .contains("Remove<span class=\"visually-hidden\"> cleo@acme.test</span>"),
        "each login has its confirmed remove form"
    );

    let cleo = Session::start(&app, "cleo@acme.test", &password)
        .await
        .expect("the new admin signs in with the password shown");
    assert_eq!(cleo.get("/admin/users").await.status, StatusCode::OK);

    // Removing: never oneself, only once confirmed, then signed out at once.
    let users = app.store.users(&app.seeded.acme).await.unwrap();
    let id_of = |email: &str| users.iter().find(|u| u.email == email).unwrap().id.clone();
    let yourself = admin
        .post(
            "/admin/users/remove",
            &[("id", &id_of(ADMIN)), ("confirm", "yes")],
        )
        .await;
    assert_eq!(yourself.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(yourself.body.contains("You cannot remove yourself"));
    let unconfirmed = admin
        .post("/admin/users/remove", &[("id", &id_of("cleo@acme.test"))])
        .await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unconfirmed.body.contains("tick the box"));
    assert_eq!(cleo.get("/leads").await.status, StatusCode::OK, "still in");
    let removed = admin
        .post(
            "/admin/users/remove",
            &[("id", &id_of("cleo@acme.test")), ("confirm", "yes")],
        )
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    let after = admin.get(removed.header(header::LOCATION)).await;
    assert!(
        after
            .body
            .contains("cleo@acme.test was removed and signed out.")
    );
    assert_eq!(
        cleo.get("/leads").await.status,
        StatusCode::SEE_OTHER,
        "signed out"
    );
    assert!(
        Session::start(&app, "cleo@acme.test", &password)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn an_api_key_is_shown_once_works_until_revoked_and_another_accounts_is_missing() {
    let app = app().await;
    let admin = Session::signed_in(&app, ADMIN).await;
    let refused = admin.post("/admin/api-keys", &[("role", "operator")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("Choose the key&#39;s role"),
        "{}",
        refused.body
    );

    let made = admin.post("/admin/api-keys", &[("role", "user")]).await;
    assert_eq!(made.status, StatusCode::OK);
    let key = made.code_after("API key");
    assert!(key.starts_with("mt_"), "{key}");
    assert_eq!(
        api(&app, "GET", "/v1/leads", &key).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api(&app, "GET", "/v1/webhooks", &key).await.status,
        StatusCode::FORBIDDEN,
        "a user key"
    );
    let listed = admin.get("/admin/api-keys").await;
    assert!(!listed.body.contains(&key), "shown once");
    let keys = app.store.api_keys(&app.seeded.acme).await.unwrap();
    assert_eq!(keys.len(), 2);
    let id = keys
        .iter()
        .find(|k| k.role == Role::User)
        .unwrap()
        .id
        .clone();
    assert!(listed.body.contains(&id));

    let globex = app
        .store
        .create_api_key(Some(&app.seeded.globex), Role::Admin)
        .await
        .unwrap();
    let theirs = admin
        .post(
            "/admin/api-keys/revoke",
            &[("id", &globex.id), ("confirm", "yes")],
        )
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api(&app, "GET", "/v1/leads", &globex.key).await.status,
        StatusCode::OK
    );

    let unconfirmed = admin.post("/admin/api-keys/revoke", &[("id", &id)]).await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        api(&app, "GET", "/v1/leads", &key).await.status,
        StatusCode::OK
    );
    let revoked = admin
        .post("/admin/api-keys/revoke", &[("id", &id), ("confirm", "yes")])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(
        api(&app, "GET", "/v1/leads", &key).await.status,
        StatusCode::UNAUTHORIZED
    );
    let after = admin.get(revoked.header(header::LOCATION)).await;
    assert!(after.body.contains(&format!("The key {id} was revoked")));
}

#[tokio::test]
async fn an_smtp_credential_is_shown_once_and_revoked_and_another_accounts_is_missing() {
    let app = app().await;
    let admin = Session::signed_in(&app, ADMIN).await;
    let made = admin.post("/admin/smtp-credentials", &[]).await;
    assert_eq!(made.status, StatusCode::OK);
    let password = made.code_after("Password");
    let listed = app
        .store
        .list_smtp_credentials(&app.seeded.acme)
        .await
        .unwrap();
    let credential = &listed[0];
    assert!(made.body.contains(&credential.username));
    assert_eq!(
        app.store
            .verify_smtp_credential(&credential.username, &password)
            .await
            .unwrap()
            .as_deref(),
        Some(app.seeded.acme.as_str()),
        "the password shown logs in"
    );
    let page = admin.get("/admin/smtp-credentials").await;
    assert!(page.body.contains(&credential.username) && !page.body.contains(&password));

    let globex = app
        .store
        .create_smtp_credential(&app.seeded.globex)
        .await
        .unwrap();
    let theirs = admin
        .post(
            "/admin/smtp-credentials/revoke",
            &[("id", &globex.id), ("confirm", "yes")],
        )
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let revoked = admin
        .post(
            "/admin/smtp-credentials/revoke",
            &[("id", &credential.id), ("confirm", "yes")],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store
            .verify_smtp_credential(&credential.username, &password)
            .await
            .unwrap(),
        None
    );
    let after = admin.get(revoked.header(header::LOCATION)).await;
    assert!(
        after.body.contains("was revoked: it no longer logs in") && after.body.contains("Revoked ")
    );
    let still = app
        .store
        .list_smtp_credentials(&app.seeded.globex)
        .await
        .unwrap();
    assert_eq!(still[0].revoked_at_ms, None, "Globex's untouched");
}

/// A webhook receiver on loopback answering every POST with `status`.
async fn receiver(status: StatusCode) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app =
        axum::Router::new().route("/hook", axum::routing::post(move || async move { status }));
    tokio::spawn(axum::serve(listener, app).into_future());
    url
}

#[tokio::test]
async fn webhooks_refuse_bad_urls_keeping_the_form_show_the_secret_once_and_test_sends() {
    let mut app = app().await;
    let admin = Session::signed_in(&app, ADMIN).await;
    let refused = admin
        .post(
            "/admin/webhooks",
            &[("url", "ftp://crm.example/h"), ("event", "failed")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("The URL is refused: it must be an http:// or https:// URL")
    );
    assert!(refused.body.contains("value=\"ftp://crm.example/h\""));
    assert!(refused.body.contains("value=\"failed\" checked"));
    assert!(!refused.body.contains("value=\"delivered\" checked"));
    let private = admin
        .post("/admin/webhooks", &[("url", "http://127.0.0.1:9/h")])
        .await;
    assert_eq!(private.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        private.body.contains("is not a public address"),
        "{}",
        private.body
    );
    let unknown = admin
        .post(
            "/admin/webhooks",
            &[("url", "https://203.0.113.9/h"), ("event", "everything")],
        )
        .await;
    assert!(
        unknown
            .body
            .contains("&#39;everything&#39; is not an event type.")
    );
    assert!(
        app.store
            .webhooks(&app.seeded.acme)
            .await
            .unwrap()
            .is_empty()
    );

    // With private targets allowed (as an operator may), a receiver on this machine.
    let config = mailtrail_webhooks::WebhookConfig {
        allow_private_targets: true,
        ..Default::default()
    };
    app.state.webhook_targets =
        mailtrail_webhooks::target::Targets::new(&config, &["127.0.0.1:9".parse().unwrap()])
            .unwrap();
    let admin = Session::signed_in(&app, ADMIN).await;
    let url = receiver(StatusCode::NO_CONTENT).await;
    let added = admin
        .post(
            "/admin/webhooks",
            &[("url", &url), ("event", "delivered"), ("event", "failed")],
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let secret = added.code_after("Signing secret");
    assert!(secret.starts_with("whsec_"));
    let hook = app
        .store
        .webhooks(&app.seeded.acme)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        hook.events.as_deref(),
        Some(&["delivered".to_owned(), "failed".to_owned()][..])
    );
    let listed = admin.get("/admin/webhooks").await;
    assert!(listed.body.contains("delivered, failed") && !listed.body.contains(&secret));

    let tested = admin
        .post(&format!("/admin/webhooks/{}/test", hook.id), &[])
        .await;
    assert_eq!(tested.status, StatusCode::SEE_OTHER);
    let page = admin.get(tested.header(header::LOCATION)).await;
    assert!(
        page.body
            .contains("The test event was delivered: the receiver answered HTTP 204."),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<th scope=\"row\">test"),
        "listed among the deliveries"
    );

    // A receiver that refuses: the page says so.
    let failing = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    admin.post("/admin/webhooks", &[("url", &failing)]).await;
    let second = app
        .store
        .webhooks(&app.seeded.acme)
        .await
        .unwrap()
        .remove(1);
    let tested = admin
        .post(&format!("/admin/webhooks/{}/test", second.id), &[])
        .await;
    let page = admin.get(tested.header(header::LOCATION)).await;
    assert!(
        page.body
            .contains("The test event was not delivered: the receiver answered HTTP 500")
    );

    // Another account's hook is missing; stopping needs the confirmation.
    let globex = app
        .store
        .create_webhook(&app.seeded.globex, &url, None)
        .await
        .unwrap();
    for theirs in [
        admin.get(&format!("/admin/webhooks/{}", globex.id)).await,
        admin
            .post(&format!("/admin/webhooks/{}/test", globex.id), &[])
            .await,
        admin
            .post(
                "/admin/webhooks/remove",
                &[("id", &globex.id), ("confirm", "yes")],
            )
            .await,
    ] {
        assert_eq!(theirs.status, StatusCode::NOT_FOUND);
        assert!(theirs.is_html());
    }
    let unconfirmed = admin
        .post("/admin/webhooks/remove", &[("id", &hook.id)])
        .await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    let stopped = admin
        .post(
            "/admin/webhooks/remove",
            &[("id", &hook.id), ("confirm", "yes")],
        )
        .await;
    assert_eq!(stopped.status, StatusCode::SEE_OTHER);
    assert_eq!(app.store.webhooks(&app.seeded.acme).await.unwrap().len(), 1);
    assert_eq!(
        app.store.webhooks(&app.seeded.globex).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn ui_paths_answer_html_error_pages_and_the_api_keeps_problem_json() {
    let app = app().await;
    let admin = Session::signed_in(&app, ADMIN).await;
    let missing = admin.get("/leadz").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.is_html() && missing.body.contains("There is no page at /leadz."));
    assert!(
        missing.body.contains("<link rel=\"stylesheet\""),
        "in the layout"
    );
    assert_eq!(
        missing
            .header(header::CONTENT_SECURITY_POLICY)
            .split(';')
            .next(),
        Some("default-src 'none'")
    );
    let anonymous = send(
        &app,
        Request::get("/nothing/here").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::NOT_FOUND);
    assert!(anonymous.is_html());

    let get_on_post = admin.get("/admin/users/remove").await;
    assert_eq!(get_on_post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(get_on_post.is_html() && get_on_post.body.contains("This address takes a form"));
    assert_eq!(get_on_post.header(header::ALLOW), "POST");
    assert_eq!(
        admin.get("/logout").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let unreadable = admin.get("/leads/%FF").await;
    assert_eq!(unreadable.status, StatusCode::BAD_REQUEST);
    assert!(unreadable.is_html() && unreadable.body.contains("The request could not be read ("));

    for path in ["/v1/nope", "/v1", "/o/nope", "/c/nope/x"] {
        let answer = send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            answer.header(header::CONTENT_TYPE),
            "application/problem+json",
            "{path}"
        );
    }
    let api_405 = send(
        &app,
        Request::delete("/v1/reports/emails")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(api_405.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        api_405.header(header::CONTENT_TYPE),
        "application/problem+json"
    );
}

#[tokio::test]
async fn pages_answer_a_503_page_when_the_database_is_unavailable_and_the_api_a_problem() {
    let app = app().await;
    let admin = Session::signed_in(&app, ADMIN).await;
    let (_, key) = app.store.create_account("Initech").await.unwrap();
    app.store.close().await;
    for page in ["/leads", "/admin/users", "/settings"] {
        let answer = admin.get(page).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
        assert!(answer.is_html() && answer.body.contains("nothing was saved or changed"));
        assert_eq!(answer.header(header::RETRY_AFTER), "5");
    }
    let form = admin.post("/admin/api-keys", &[("role", "user")]).await;
    assert_eq!(form.status, StatusCode::SERVICE_UNAVAILABLE);
    let api = api(&app, "GET", "/v1/leads", &key.key).await;
    assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.header(header::CONTENT_TYPE), "application/problem+json");
}

#[tokio::test]
async fn each_user_reads_every_time_in_the_timezone_they_chose() {
    let app = app().await;
    let user = Session::signed_in(&app, USER).await;
    let settings = user.get("/settings").await;
    assert_eq!(settings.status, StatusCode::OK, "every user has settings");
    assert!(
        settings
            .body
            .contains("<option value=\"UTC\" selected>UTC</option>")
    );
    assert!(
        !settings.body.contains("Open tracking"),
        "the account's are for admins"
    );
    let lead = format!("/leads/{}", app.seeded.carla);
    assert!(user.get(&lead).await.body.contains(" UTC"));

    let refused = user
        .post("/settings/timezone", &[("timezone", "Mars/Olympus")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .body
            .contains("&#39;Mars/Olympus&#39; is not a timezone")
    );
    let saved = user
        .post("/settings/timezone", &[("timezone", "Asia/Tokyo")])
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let settings = user.get(saved.header(header::LOCATION)).await;
    assert!(settings.body.contains("Times are now shown in Asia/Tokyo."));
    assert!(
        settings
            .body
            .contains("<option value=\"Asia/Tokyo\" selected>Asia/Tokyo</option>")
    );

    let page = user.get(&lead).await.body;
    assert!(page.contains(" JST") && !page.contains(" UTC<"), "{page}");
    // Only theirs: the admin still reads UTC.
    let admin = Session::signed_in(&app, ADMIN).await;
    let theirs = admin.get(&lead).await.body;
    assert!(theirs.contains(" UTC") && !theirs.contains(" JST"));
}

#[tokio::test]
async fn opens_and_clicks_show_their_client_and_whether_a_machine_made_them() {
    let app = app().await;
    let user = Session::signed_in(&app, USER).await;
    let carla = user
        .get(&format!("/emails/{}", app.seeded.carla_spring))
        .await
        .body;
    assert!(
        carla.contains(&format!("from {PERSON_IP} · {PERSON_AGENT}")),
        "{carla}"
    );
    assert!(carla.contains("by a person"));
    assert!(
        carla.contains("client not recorded"),
        "the click had no client"
    );
    let dee = user
        .get(&format!("/emails/{}", app.seeded.dee_spring))
        .await
        .body;
    assert!(
        dee.contains("by a machine: Apple Mail Privacy Protection"),
        "{dee}"
    );
    assert!(dee.contains("from 17.58.0.1 · Mozilla/5.0<"));
    assert!(!dee.contains("by a person"));
}
