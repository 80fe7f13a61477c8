//! The web UI without a browser: sign-in, sessions, CSRF, roles and account scoping, through
//! the whole service router with `oneshot`.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use common::{ADMIN, App, OPERATOR, PASSWORD, USER, app, queue_one};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value a `Set-Cookie` header gives cookie `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next()?.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
    }

    /// The CSRF token in the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

async fn call(
    app: &App,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let body = match form {
        Some(form) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(form.to_owned())
        }
        None => Body::empty(),
    };
    let response = app
        .router()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    out.extend_pairs(pairs);
    out.finish()
}

/// Signs in through the login form; the answer to the POST.
async fn try_sign_in(app: &App, email: &str, password: &str) -> Answer {
    let page = call(app, "GET", "/login?next=%2Freports%2Femails", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let login_cookie = page
        .cookie("mailtrail_login")
        .expect("a sign-in form cookie");
    let body = form(&[
        ("csrf", &page.csrf()),
        ("email", email),
        ("password", password),
        ("next", "/reports/emails"),
    ]);
    call(
        app,
        "POST",
        "/login",
        Some(&format!("mailtrail_login={login_cookie}")),
        Some(&body),
    )
    .await
}

/// A session cookie header for this user.
async fn sign_in(app: &App, email: &str) -> String {
    let answer = try_sign_in(app, email, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location(), "/reports/emails");
    let token = answer
        .cookie("mailtrail_session")
        .expect("a session cookie");
    format!("mailtrail_session={token}")
}

#[tokio::test]
async fn signing_in_fails_alike_for_a_wrong_password_and_an_unknown_email() {
    let app = app().await;
    for (email, password) in [(ADMIN, "wrong password"), ("nobody@acme.test", PASSWORD)] {
        let answer = try_sign_in(&app, email, password).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{email}");
        assert!(answer.body.contains("Wrong email or password."), "{email}");
        assert_eq!(answer.cookie("mailtrail_session"), None, "{email}");
    }
    let answer = try_sign_in(&app, ADMIN, PASSWORD).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let set = answer
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"),
        "{set}"
    );
}

#[tokio::test]
async fn a_sign_in_form_works_once_and_failures_lock_the_login_known_or_not() {
    let app = app().await;
    let page = call(&app, "GET", "/login", None, None).await;
    let (cookie, csrf) = (page.cookie("mailtrail_login").unwrap(), page.csrf());
    let cookie = format!("mailtrail_login={cookie}");
    let post = async |password: &str| {
        let body = form(&[("csrf", &csrf), ("email", ADMIN), ("password", password)]);
        call(&app, "POST", "/login", Some(&cookie), Some(&body)).await
    };
    let failed = post("wrong").await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    assert_ne!(failed.csrf(), csrf, "a new token with the answer");
    assert_ne!(
        format!(
            "mailtrail_login={}",
            failed.cookie("mailtrail_login").unwrap()
        ),
        cookie
    );
    assert_eq!(post(PASSWORD).await.status, StatusCode::FORBIDDEN, "spent");

    for email in [ADMIN, "nobody@acme.test"] {
        let already = usize::from(email == ADMIN);
        for attempt in already..5 {
            let answer = try_sign_in(&app, email, "wrong").await;
            let expected = if attempt < 4 {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::TOO_MANY_REQUESTS
            };
            assert_eq!(answer.status, expected, "{email} attempt {attempt}");
        }
        let locked = try_sign_in(&app, email, PASSWORD).await;
        assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS, "{email}");
        // The 30-second lock began with the previous attempt, a password check ago (more
        // than a second on a loaded machine).
        let wait: u32 = locked.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((25..=30).contains(&wait), "Retry-After: {wait}");
        assert!(
            locked.body.contains(&format!(
                "Too many failed sign-ins. Try again in {wait} seconds."
            )),
            "{}",
            locked.body
        );
        assert_eq!(locked.cookie("mailtrail_session"), None);
    }
    // Another login is not locked by these.
    sign_in(&app, USER).await;
}

#[tokio::test]
async fn pages_need_a_session_and_send_people_back_after_signing_in() {
    let app = app().await;
    let answer = call(&app, "GET", "/reports/emails?stage=failed", None, None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        answer.location(),
        "/login?next=%2Freports%2Femails%3Fstage%3Dfailed"
    );
    let answer = call(&app, "GET", "/", None, None).await;
    assert_eq!(answer.location(), "/login?next=%2F");
    let forged = call(&app, "GET", "/leads", Some("mailtrail_session=0123"), None).await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER);
    let page = call(
        &app,
        "GET",
        "/login?next=https%3A%2F%2Fevil.test",
        None,
        None,
    )
    .await;
    assert!(
        page.body.contains("name=\"next\" value=\"/\""),
        "only local paths are kept"
    );
}

#[tokio::test]
async fn posts_without_the_session_csrf_token_are_refused() {
    let app = app().await;
    let cookie = sign_in(&app, ADMIN).await;
    let settings = call(&app, "GET", "/settings", Some(&cookie), None).await;
    assert_eq!(settings.status, StatusCode::OK);
    let csrf = settings.csrf();
    for body in [
        form(&[("open_tracking", "on"), ("machine_threshold_secs", "2")]),
        form(&[
            ("csrf", "0".repeat(64).as_str()),
            ("open_tracking", "on"),
            ("machine_threshold_secs", "2"),
        ]),
    ] {
        let answer = call(&app, "POST", "/settings", Some(&cookie), Some(&body)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert!(answer.body.contains("This form has expired"));
    }
    assert!(
        !app.store
            .settings(&app.seeded.acme)
            .await
            .unwrap()
            .open_tracking
    );

    // Another session's token does not do either.
    let other = sign_in(&app, ADMIN).await;
    let other_csrf = call(&app, "GET", "/settings", Some(&other), None)
        .await
        .csrf();
    assert_ne!(other_csrf, csrf);
    let body = form(&[
        ("csrf", &other_csrf),
        ("open_tracking", "on"),
        ("machine_threshold_secs", "2"),
    ]);
    let answer = call(&app, "POST", "/settings", Some(&cookie), Some(&body)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    let body = form(&[
        ("csrf", &csrf),
        ("open_tracking", "on"),
        ("machine_threshold_secs", "2"),
    ]);
    let answer = call(&app, "POST", "/settings", Some(&cookie), Some(&body)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert!(
        app.store
            .settings(&app.seeded.acme)
            .await
            .unwrap()
            .open_tracking
    );

    // The sign-in form has its own token, in a cookie of its own.
    let body = form(&[("email", ADMIN), ("password", PASSWORD)]);
    let answer = call(&app, "POST", "/login", None, Some(&body)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn another_accounts_ids_are_not_found() {
    let app = app().await;
    let s = &app.seeded;
    let cookie = sign_in(&app, ADMIN).await;
    let own = call(
        &app,
        "GET",
        &format!("/leads/{}", s.carla),
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(own.status, StatusCode::OK);
    for path in [
        format!("/leads/{}", s.globex_lead),
        format!("/emails/{}", s.globex_email),
        format!("/emails/{}/inbound/{}", s.eve_spring, s.reply),
        format!("/emails/{}/inbound/{}", s.globex_email, s.reply),
        "/leads/not-an-id".to_owned(),
    ] {
        let answer = call(&app, "GET", &path, Some(&cookie), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            answer
                .body
                .contains("There is nothing here in this account."),
            "{path}"
        );
    }
    let raw = format!("/emails/{}/inbound/{}", s.carla_spring, s.reply);
    assert_eq!(
        call(&app, "GET", &raw, Some(&cookie), None).await.status,
        StatusCode::OK
    );

    // An operator looks at one account at a time, chosen with ?account= and remembered.
    let operator = sign_in(&app, OPERATOR).await;
    let path = format!("/leads/{}", s.globex_lead);
    assert_eq!(
        call(&app, "GET", &path, Some(&operator), None).await.status,
        StatusCode::NOT_FOUND
    );
    let switched = call(
        &app,
        "GET",
        &format!("/leads?account={}", s.globex),
        Some(&operator),
        None,
    )
    .await;
    assert!(switched.body.contains("hal@globex.test"));
    assert_eq!(
        call(&app, "GET", &path, Some(&operator), None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sessions_end_when_idle_too_long_and_at_logout() {
    let app = app().await;
    let cookie = sign_in(&app, ADMIN).await;
    assert_eq!(
        call(&app, "GET", "/leads", Some(&cookie), None)
            .await
            .status,
        StatusCode::OK
    );
    let token = cookie.trim_start_matches("mailtrail_session=");
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    app.store
        .touch_web_session(&hash, mailtrail_store::now_ms() - 1)
        .await
        .unwrap();
    let answer = call(&app, "GET", "/leads", Some(&cookie), None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/login?next=%2Fleads");

    let cookie = sign_in(&app, ADMIN).await;
    let csrf = call(&app, "GET", "/leads", Some(&cookie), None)
        .await
        .csrf();
    let answer = call(
        &app,
        "POST",
        "/logout",
        Some(&cookie),
        Some(&form(&[("csrf", &csrf)])),
    )
    .await;
    assert_eq!(answer.location(), "/login");
    assert_eq!(answer.cookie("mailtrail_session").as_deref(), Some(""));
    assert_eq!(
        call(&app, "GET", "/leads", Some(&cookie), None)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn roles_decide_who_sees_settings_and_suppressions() {
    let app = app().await;
    let user = sign_in(&app, USER).await;
    let settings = call(&app, "GET", "/settings", Some(&user), None).await;
    assert_eq!(
        settings.status,
        StatusCode::OK,
        "a user sets their own timezone"
    );
    assert!(
        !settings.body.contains("action=\"/settings\""),
        "the account's settings are for admins"
    );
    let list = call(&app, "GET", "/suppressions", Some(&user), None).await;
    assert_eq!(
        list.status,
        StatusCode::OK,
        "every user reads the account's blocks"
    );
    assert!(list.body.contains("eve@shop.test"));
    assert!(
        list.body
            .contains("Hard bounce: The mailbox does not exist.")
    );
    assert!(
        !list.body.contains("action=\"/suppressions/remove\""),
        "only operators get the form that lifts a block"
    );
    let leads = call(&app, "GET", "/leads", Some(&user), None).await;
    assert!(leads.body.contains("href=\"/suppressions\""));
    assert!(
        !leads.body.contains("href=\"/admin/users\""),
        "the nav hides what the role cannot open"
    );
    let body = form(&[
        ("csrf", &leads.csrf()),
        ("account", &app.seeded.acme),
        ("address", "eve@shop.test"),
        ("reason", "asked by the customer"),
    ]);
    let answer = call(
        &app,
        "POST",
        "/suppressions/remove",
        Some(&user),
        Some(&body),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let admin = sign_in(&app, ADMIN).await;
    assert_eq!(
        call(&app, "GET", "/settings", Some(&admin), None)
            .await
            .status,
        StatusCode::OK
    );
    let operator = sign_in(&app, OPERATOR).await;
    let all = call(&app, "GET", "/suppressions", Some(&operator), None).await;
    assert!(all.body.contains("action=\"/suppressions/remove\""));
}

#[tokio::test]
async fn the_email_report_filters_pages_and_exports_csv() {
    let app = app().await;
    let cookie = sign_in(&app, ADMIN).await;
    let failed = call(
        &app,
        "GET",
        "/reports/emails?stage=failed",
        Some(&cookie),
        None,
    )
    .await;
    assert!(failed.body.contains("eve@shop.test"));
    assert!(!failed.body.contains("fay@shop.test"));
    assert!(
        failed
            .body
            .contains("href=\"/reports/emails.csv?stage=failed\"")
    );
    let bad = call(
        &app,
        "GET",
        "/reports/emails?from=yesterday",
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body
            .contains("neither an RFC 3339 time nor a YYYY-MM-DD date")
    );

    let csv = call(
        &app,
        "GET",
        "/reports/emails.csv?batch=spring",
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        lines[0],
        "id,recipient,subject,batch,sent_at,last_action,reason,status"
    );
    assert_eq!(lines.len(), 5, "{}", csv.body);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("eve@shop.test") && l.contains(",Failed,userunknown,"))
    );
}

/// The CSRF token of the viewer's settings page.
async fn settings_csrf(app: &App, cookie: &str) -> String {
    let page = call(app, "GET", "/settings", Some(cookie), None).await;
    assert_eq!(page.status, StatusCode::OK);
    page.csrf()
}

#[tokio::test]
async fn admins_add_check_and_remove_sending_domains_with_their_dns_records() {
    let app = app().await;
    let acme = &app.seeded.acme;
    let cookie = sign_in(&app, ADMIN).await;
    let csrf = settings_csrf(&app, &cookie).await;

    let body = form(&[
        ("csrf", &csrf),
        ("domain", " Shop.Test "),
        ("algorithm", "rsa"),
    ]);
    let added = call(
        &app,
        "POST",
        "/settings/domains",
        Some(&cookie),
        Some(&body),
    )
    .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    assert_eq!(added.location(), "/settings?added=shop.test#domains");
    let stored = app.store.domain(acme, "shop.test").await.unwrap();
    let page = call(&app, "GET", added.location(), Some(&cookie), None).await;
    assert!(page.body.contains("shop.test was added."), "{}", page.body);
    let dkim_name = format!("{}._domainkey.shop.test", stored.selector);
    let dkim_value = format!("v=DKIM1; k=rsa; p={}", stored.public_key_b64);
    assert!(page.body.contains(&format!("<code>{dkim_name}</code>")));
    assert!(
        page.body
            .contains(&format!("<code class=\"value\">{dkim_value}</code>"))
    );
    assert!(page.body.contains("Not verified") && page.body.contains("Not checked yet"));
    assert!(!page.body.contains(&stored.private_key_pem[..40]));
    // SPF and the MX are published on the default return path.
    assert_eq!(stored.return_path, "bounces.shop.test");
    assert!(
        page.body
            .contains("<dt>Return path</dt><dd>bounces.shop.test</dd>")
    );
    assert!(page.body.contains("<code>bounces.shop.test</code>"));
    assert!(page.body.contains("<code>_dmarc.shop.test</code>"));

    // A second time, a name that is no domain, or a return path outside the domain re-shows
    // the form with why, and what was typed.
    for (domain, return_path, why) in [
        (
            "shop.test",
            "",
            "shop.test is already a sending domain of this account.",
        ),
        ("not a domain!", "", "is not a domain name."),
        (
            "news.test",
            "bounces.other.test",
            "is not news.test or a name under it",
        ),
    ] {
        let body = form(&[
            ("csrf", &csrf),
            ("domain", domain),
            ("algorithm", "rsa"),
            ("return_path", return_path),
        ]);
        let answer = call(
            &app,
            "POST",
            "/settings/domains",
            Some(&cookie),
            Some(&body),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{domain}");
        assert!(answer.body.contains(why), "{domain}: {}", answer.body);
        assert!(
            answer
                .body
                .contains(&format!("name=\"return_path\" type=\"text\" placeholder=\"bounces.shop.example\" value=\"{return_path}\"")),
            "{domain}: {}",
            answer.body
        );
    }
    assert_eq!(app.store.domains(acme).await.unwrap().len(), 1);

    // Checking DNS records each record's result (the test resolver answers nothing).
    let body = form(&[("csrf", &csrf), ("domain", "shop.test")]);
    let checked = call(
        &app,
        "POST",
        "/settings/domains/check",
        Some(&cookie),
        Some(&body),
    )
    .await;
    assert_eq!(checked.status, StatusCode::SEE_OTHER, "{}", checked.body);
    let stored = app.store.domain(acme, "shop.test").await.unwrap();
    assert!(stored.last_check_at_ms.is_some() && stored.verified_at_ms.is_none());
    let page = call(&app, "GET", checked.location(), Some(&cookie), None).await;
    assert!(page.body.contains("Not right"), "{}", page.body);
    assert!(!page.body.contains("Not checked yet"));

    // Rotating lists a new key beside the current one; once a check finds it (here the store
    // is told, as the checker does), the old record is listed with the date to keep it until.
    let rotated = call(
        &app,
        "POST",
        "/settings/domains/rotate",
        Some(&cookie),
        Some(&body),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::SEE_OTHER, "{}", rotated.body);
    let rotating = app.store.domain(acme, "shop.test").await.unwrap();
    let next = rotating.next_key.clone().expect("a next key");
    let page = call(&app, "GET", rotated.location(), Some(&cookie), None).await;
    assert!(page.body.contains("has a new DKIM key"), "{}", page.body);
    assert!(
        page.body.contains(&format!(
            "<dt>New key, not yet found in DNS</dt><dd>{}</dd>",
            next.selector
        )),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("{}._domainkey.shop.test", next.selector))
    );
    let (selector, retired) =
        mailtrail_outbound::rotation::promotion(&rotating, true, mailtrail_store::now_ms())
            .unwrap();
    app.store
        .promote_next_key(
            acme,
            "shop.test",
            &selector,
            &serde_json::to_string(&retired).unwrap(),
        )
        .await
        .unwrap();
    let page = call(&app, "GET", "/settings", Some(&cookie), None).await;
    let until = chrono::DateTime::from_timestamp_millis(retired[0].until_ms)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S");
    assert!(
        page.body
            .contains(&format!("Keep published until {until} UTC")),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("{}._domainkey.shop.test", rotating.selector))
    );
    assert!(!page.body.contains("New key, not yet found in DNS"));

    // Removing needs the confirmation box.
    let body = form(&[("csrf", &csrf), ("domain", "shop.test")]);
    let unconfirmed = call(
        &app,
        "POST",
        "/settings/domains/remove",
        Some(&cookie),
        Some(&body),
    )
    .await;
    assert_eq!(unconfirmed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unconfirmed.body.contains("tick the box"));
    assert!(app.store.domain(acme, "shop.test").await.is_ok());
    let body = form(&[("csrf", &csrf), ("domain", "shop.test"), ("confirm", "yes")]);
    let removed = call(
        &app,
        "POST",
        "/settings/domains/remove",
        Some(&cookie),
        Some(&body),
    )
    .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert!(app.store.domains(acme).await.unwrap().is_empty());
}

#[tokio::test]
async fn domain_forms_need_an_admin_and_the_csrf_token() {
    let app = app().await;
    let user = sign_in(&app, USER).await;
    let csrf = call(&app, "GET", "/leads", Some(&user), None).await.csrf();
    let add = form(&[
        ("csrf", &csrf),
        ("domain", "shop.test"),
        ("algorithm", "ed25519"),
    ]);
    let named = form(&[("csrf", &csrf), ("domain", "shop.test"), ("confirm", "yes")]);
    for (path, body) in [
        ("/settings/domains", &add),
        ("/settings/domains/check", &named),
        ("/settings/domains/rotate", &named),
        ("/settings/domains/remove", &named),
    ] {
        let answer = call(&app, "POST", path, Some(&user), Some(body)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        assert!(answer.body.contains("Settings are changed by the account"));
    }

    let admin = sign_in(&app, ADMIN).await;
    for (path, body) in [
        ("/settings/domains", "domain=shop.test&algorithm=ed25519"),
        ("/settings/domains/check", "domain=shop.test"),
        ("/settings/domains/rotate", "domain=shop.test"),
        ("/settings/domains/remove", "domain=shop.test&confirm=yes"),
    ] {
        let answer = call(&app, "POST", path, Some(&admin), Some(body)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        assert!(answer.body.contains("This form has expired"), "{path}");
    }
    assert!(
        app.store
            .domains(&app.seeded.acme)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn another_accounts_domain_cannot_be_checked_or_removed() {
    let app = app().await;
    let globex = &app.seeded.globex;
    app.store
        .create_domain(
            globex,
            &mailtrail_store::NewDomain {
                domain: "globex.test",
                selector: "mt1",
                algorithm: "ed25519",
                private_key_pem: "globex key",
                public_key_b64: "R2xvYmV4",
            },
        )
        .await
        .unwrap();
    let cookie = sign_in(&app, ADMIN).await;
    let csrf = settings_csrf(&app, &cookie).await;
    let page = call(&app, "GET", "/settings", Some(&cookie), None).await;
    assert!(!page.body.contains("globex.test"));
    for path in [
        "/settings/domains/remove",
        "/settings/domains/check",
        "/settings/domains/rotate",
    ] {
        for domain in ["globex.test", "GLOBEX.test", "no domain"] {
            let body = form(&[("csrf", &csrf), ("domain", domain), ("confirm", "yes")]);
            let answer = call(&app, "POST", path, Some(&cookie), Some(&body)).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path} {domain}");
        }
    }
    let kept = app.store.domain(globex, "globex.test").await.unwrap();
    assert_eq!(kept.last_check_at_ms, None);
    assert_eq!(kept.next_key, None);
}

#[tokio::test]
async fn reply_forwarding_is_an_address_or_empty_and_users_are_listed() {
    let app = app().await;
    let acme = &app.seeded.acme;
    let cookie = sign_in(&app, ADMIN).await;
    let page = call(&app, "GET", "/settings", Some(&cookie), None).await;
    for listed in [ADMIN, USER] {
        assert!(
            page.body
                .contains(&format!("<th scope=\"row\">{listed}</th>")),
            "{listed}"
        );
    }
    assert!(
        !page.body.contains(OPERATOR),
        "operators belong to no account"
    );
    let csrf = page.csrf();

    let settings = |to: &str| {
        form(&[
            ("csrf", &csrf),
            ("machine_threshold_secs", "2"),
            ("reply_forward_to", to),
        ])
    };
    let bad = call(
        &app,
        "POST",
        "/settings",
        Some(&cookie),
        Some(&settings("sales<at>acme")),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.body
            .contains("The reply forwarding address is not an email address: the address has no"),
        "{}",
        bad.body
    );
    assert!(
        bad.body.contains("value=\"sales&#60;at&#62;acme\""),
        "the typed value is kept, escaped: {}",
        bad.body
    );
    assert_eq!(app.store.reply_forward_to(acme).await.unwrap(), None);

    let ok = call(
        &app,
        "POST",
        "/settings",
        Some(&cookie),
        Some(&settings(" sales@acme.test ")),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.store.reply_forward_to(acme).await.unwrap().as_deref(),
        Some("sales@acme.test")
    );
    let page = call(&app, "GET", "/settings?saved=1", Some(&cookie), None).await;
    assert!(page.body.contains("value=\"sales@acme.test\""));

    let cleared = call(
        &app,
        "POST",
        "/settings",
        Some(&cookie),
        Some(&settings("")),
    )
    .await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER);
    assert_eq!(app.store.reply_forward_to(acme).await.unwrap(), None);
}

#[tokio::test]
async fn failures_read_in_words_beside_the_raw_status() {
    let app = app().await;
    let cookie = sign_in(&app, USER).await;
    let email = call(
        &app,
        "GET",
        &format!("/emails/{}", app.seeded.eve_spring),
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(email.status, StatusCode::OK);
    assert!(
        email
            .body
            .contains("Hard bounce: The mailbox does not exist."),
        "{}",
        email.body
    );
    assert!(email.body.contains("only an operator can"));
    assert!(
        email
            .body
            .contains("Recipient address rejected: User unknown")
    );

    let report = call(
        &app,
        "GET",
        "/reports/emails?stage=failed",
        Some(&cookie),
        None,
    )
    .await;
    assert!(
        report
            .body
            .contains("Hard bounce: The mailbox does not exist.")
    );
}

#[tokio::test]
async fn an_email_queued_for_later_reads_scheduled_not_sent() {
    let app = app().await;
    let cookie = sign_in(&app, USER).await;
    let tomorrow = mailtrail_store::now_ms() + 86_400_000;
    let id = queue_one(&app, "later@shop.test", None, "Later", Some(tomorrow)).await;
    let page = call(&app, "GET", &format!("/emails/{id}"), Some(&cookie), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Scheduled for "), "{}", page.body);
    assert!(!page.body.contains("→</span> Sent"), "{}", page.body);
}

#[tokio::test]
async fn a_blocked_lead_shows_the_block_its_cause_and_the_rule_to_every_user() {
    let app = app().await;
    let cookie = sign_in(&app, USER).await;
    let eve = app
        .store
        .lead_by_address(
            &app.seeded.acme,
            &mailtrail_domain::EmailAddress::parse("eve@shop.test").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let page = call(
        &app,
        "GET",
        &format!("/leads/{}", eve.id),
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Blocked since"), "{}", page.body);
    assert!(
        page.body
            .contains("Hard bounce: The mailbox does not exist.")
    );
    assert!(
        page.body
            .contains("Recipient address rejected: User unknown")
    );
    assert!(page.body.contains(&format!(
        "href=\"/emails/{}\">The email that caused it",
        app.seeded.eve_spring
    )));
    assert!(page.body.contains(
        "Setting Permission to Email back to Yes does not lift the block; only an operator can."
    ));

    let carla = call(
        &app,
        "GET",
        &format!("/leads/{}", app.seeded.carla),
        Some(&cookie),
        None,
    )
    .await;
    assert!(!carla.body.contains("Blocked since"));
}

#[tokio::test]
async fn a_cancelled_email_reads_cancelled_on_its_leads_timeline() {
    use mailtrail_store::Cancel;
    let app = app().await;
    let cookie = sign_in(&app, USER).await;
    let tomorrow = mailtrail_store::now_ms() + 86_400_000;
    let carla = app.seeded.carla.clone();
    let id = queue_one(
        &app,
        "carla@shop.test",
        Some(&carla),
        "Called off",
        Some(tomorrow),
    )
    .await;
    let cancelled = app
        .store
        .cancel_queued(&app.seeded.acme, Cancel::Email(&id))
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);

    let page = call(
        &app,
        "GET",
        &format!("/leads/{}", app.seeded.carla),
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let at = page
        .body
        .find("Called off</a>")
        .expect("the email on the timeline");
    let title = &page.body[at..];
    let title = &title[..title.find("</p>").unwrap()];
    assert!(title.contains("⊘</span> Cancelled</span>"), "{title}");
    assert!(!title.contains("Failed"), "{title}");
}
