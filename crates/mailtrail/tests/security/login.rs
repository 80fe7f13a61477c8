//! Guessing passwords at `/login` (issue 16, item 5): a login created with `mailtrail user
//! create`, then wrong passwords POSTed as a script would, each with a sign-in form fetched
//! the way a browser does. After a few failures the account is locked (429 with
//! `Retry-After`), the right password is refused too while it lasts and works once it has
//! passed, and a sign-in form's token works once.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{self, KillOnDrop};

const EMAIL: &str = "ana@shop.test";
const PASSWORD: &str = "correct horse battery staple";

/// The service on a fresh database with one login, `EMAIL`; `config` is the text of a
/// configuration file, if any.
struct Service {
    base: String,
    _service: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start(config: Option<&str>) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").to_str().unwrap().to_owned();
        let env = [("MAILTRAIL_DATA_DIR", data.as_str())];
        let (account, _) = common::create_account(&env, "Shop");
        let mut create = common::mailtrail(&env)
            .args([
                "user",
                "create",
                EMAIL,
                "--account",
                &account,
                "--role",
                "admin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("mailtrail user create runs");
        create
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .unwrap();
        assert!(create.wait().unwrap().success(), "user create failed");
        let args = match config {
            Some(text) => {
                let file = dir.path().join("mailtrail.toml");
                std::fs::write(&file, text).unwrap();
                vec!["--config".to_owned(), file.to_str().unwrap().to_owned()]
            }
            None => Vec::new(),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, base, _) = common::serve_with_args(&env, &args);
        Service {
            base,
            _service: KillOnDrop(child),
            _dir: dir,
        }
    }
}

/// A sign-in form as a browser holds it: the cookie and the hidden field.
#[derive(Clone, Debug)]
struct Form {
    cookie: String,
    csrf: String,
}

/// An answer to a sign-in, read whole.
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    session: bool,
    body: String,
    /// The fresh form a refused sign-in answers with.
    form: Option<Form>,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value `Set-Cookie` gives `name`, and the page's CSRF field.
async fn read(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let set = |name: &str| {
        headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next()?.split_once('='))
            .find(|(n, v)| *n == name && !v.is_empty())
            .map(|(_, v)| v.to_owned())
    };
    let body = response.text().await.unwrap();
    let csrf = body.find("name=\"csrf\" value=\"").map(|at| {
        let rest = &body[at + 19..];
        rest[..rest.find('"').unwrap()].to_owned()
    });
    let form = match (set("mailtrail_login"), csrf) {
        (Some(cookie), Some(csrf)) => Some(Form { cookie, csrf }),
        _ => None,
    };
    Answer {
        status,
        retry_after: headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok()),
        session: set("mailtrail_session").is_some(),
        body,
        form,
    }
}

async fn fetch_form(base: &str) -> Form {
    let page = read(client().get(format!("{base}/login")).send().await.unwrap()).await;
    assert_eq!(page.status, 200);
    page.form.expect("the sign-in page has a form")
}

async fn sign_in(base: &str, form: &Form, email: &str, password: &str) -> Answer {
    let response = client()
        .post(format!("{base}/login"))
        .header("cookie", format!("mailtrail_login={}", form.cookie))
        .form(&[
            ("csrf", form.csrf.as_str()),
            ("email", email),
            ("password", password),
            ("next", "/leads"),
        ])
        .send()
        .await
        .unwrap();
    read(response).await
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_wrong_passwords_lock_the_account_and_the_right_one_waits_too() {
    let service = Service::start(None);
    let base = &service.base;
    let mut statuses = Vec::new();
    for attempt in 0..50 {
        let form = fetch_form(base).await;
        let answer = sign_in(base, &form, EMAIL, &format!("guess {attempt}")).await;
        assert!(!answer.session);
        statuses.push(answer.status);
        if answer.status == 429 {
            let wait = answer.retry_after.expect("a 429 says when to retry");
            assert!((1..=900).contains(&wait), "Retry-After: {wait}");
            assert!(
                answer.body.contains("Too many failed sign-ins"),
                "{}",
                answer.body
            );
        }
        // A script gets a handful of guesses, not fifty.
        if attempt >= 5 {
            assert_eq!(answer.status, 429, "attempt {attempt}: {statuses:?}");
        }
    }
    assert_eq!(statuses[0], 401, "{statuses:?}");

    // The right password is refused while the lock lasts, the same way.
    let form = fetch_form(base).await;
    let answer = sign_in(base, &form, EMAIL, PASSWORD).await;
    assert_eq!(answer.status, 429);
    assert!(!answer.session);

    // An unknown login locked the same way looks the same: nothing tells them apart.
    for attempt in 0..6 {
        let form = fetch_form(base).await;
        let unknown = sign_in(base, &form, "nobody@shop.test", &format!("guess {attempt}")).await;
        assert!(matches!(unknown.status, 401 | 429), "{}", unknown.status);
    }
    let form = fetch_form(base).await;
    let unknown = sign_in(base, &form, "nobody@shop.test", "guess").await;
    assert_eq!(unknown.status, 429);
    // The same page but for the login typed, the form's token and the seconds left.
    let page = |body: &str, email: &str, csrf: &str| -> String {
        body.replace(email, "EMAIL")
            .replace(csrf, "CSRF")
            .replace(|c: char| c.is_ascii_digit(), "")
    };
    assert_eq!(
        page(
            &unknown.body,
            "nobody@shop.test",
            &unknown.form.unwrap().csrf
        ),
        page(&answer.body, EMAIL, &answer.form.unwrap().csrf)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_right_password_works_once_the_lock_has_passed() {
    let service = Service::start(Some(
        "[web]\nlogin_failures = 3\nlogin_lock = \"3s\"\nlogin_lock_max = \"6s\"\n",
    ));
    let base = &service.base;
    // Guess until locked; the lock has just begun, so the right password comes inside it. The
    // lock is seconds long so that a loaded machine still answers within it.
    let mut wait = None;
    for attempt in 0..3 {
        let form = fetch_form(base).await;
        let answer = sign_in(base, &form, EMAIL, &format!("guess {attempt}")).await;
        wait = answer.retry_after.filter(|_| answer.status == 429);
    }
    assert_eq!(
        wait,
        Some(3),
        "the third failure locks the login for login_lock"
    );
    let form = fetch_form(base).await;
    assert_eq!(sign_in(base, &form, EMAIL, PASSWORD).await.status, 429);

    tokio::time::sleep(Duration::from_millis(3200)).await;

    // After a lock, one more failure locks again, twice as long (here also login_lock_max).
    let form = fetch_form(base).await;
    let again = sign_in(base, &form, EMAIL, "guess again").await;
    assert_eq!((again.status, again.retry_after), (429, Some(6)));
    tokio::time::sleep(Duration::from_millis(6200)).await;
    let form = fetch_form(base).await;
    let answer = sign_in(base, &form, EMAIL, PASSWORD).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(answer.session, "signed in after the lock");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_form_works_once() {
    let service = Service::start(None);
    let base = &service.base;
    let form = fetch_form(base).await;
    let failed = sign_in(base, &form, EMAIL, "wrong").await;
    assert_eq!(failed.status, 401);
    let fresh = failed.form.expect("a failed sign-in answers a new form");
    assert_ne!(fresh.csrf, form.csrf, "the token is rotated");
    assert_ne!(fresh.cookie, form.cookie, "the cookie is rotated");

    // The old token, with its cookie, no longer works — not even with the right password.
    let reused = sign_in(base, &form, EMAIL, PASSWORD).await;
    assert_eq!(reused.status, 403);
    assert!(!reused.session);
    // A token made up by the client was never issued.
    let made_up = Form {
        cookie: "ab".repeat(32),
        csrf: "ab".repeat(32),
    };
    assert_eq!(sign_in(base, &made_up, EMAIL, PASSWORD).await.status, 403);

    let answer = sign_in(base, &fresh, EMAIL, PASSWORD).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(answer.session);
    // …and the form it signed in with is spent too.
    assert_eq!(sign_in(base, &fresh, EMAIL, PASSWORD).await.status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn guesses_sent_together_do_not_outrun_the_lock() {
    let service = Service::start(None);
    let base = service.base.clone();
    let mut forms = Vec::new();
    for _ in 0..20 {
        forms.push(fetch_form(&base).await);
    }
    let guesses: Vec<_> = forms
        .into_iter()
        .enumerate()
        .map(|(n, form)| {
            let base = base.clone();
            tokio::spawn(async move {
                sign_in(&base, &form, EMAIL, &format!("guess {n}"))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        checked <= 4,
        "at most login_failures - 1 plain refusals: {statuses:?}"
    );
    assert_eq!(checked + statuses.iter().filter(|s| **s == 429).count(), 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_login_typed_differently_is_one_lock() {
    let service = Service::start(Some("[web]\nlogin_failures = 3\n"));
    let base = &service.base;
    let mut statuses = Vec::new();
    for typed in ["Ana@Shop.test", " ana@shop.test ", "ANA@SHOP.TEST"] {
        let form = fetch_form(base).await;
        statuses.push(sign_in(base, &form, typed, "guess").await.status);
    }
    assert_eq!(statuses, [401, 401, 429], "three spellings, one login");
    let form = fetch_form(base).await;
    let answer = sign_in(base, &form, EMAIL, PASSWORD).await;
    assert_eq!(
        answer.status, 429,
        "the login is locked, however it is typed"
    );
    assert!(!answer.session);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_spread_over_many_logins_gets_only_the_address_limit_of_password_checks() {
    let service = Service::start(Some("[web]\nlogin_address_failures = 5\n"));
    let base = service.base.clone();
    let mut forms = Vec::new();
    for _ in 0..21 {
        forms.push(fetch_form(&base).await);
    }
    let right = forms.pop().unwrap();
    // Password spraying: one guess for each of 20 logins, all at once, from one address.
    let guesses: Vec<_> = forms
        .into_iter()
        .enumerate()
        .map(|(n, form)| {
            let base = base.clone();
            tokio::spawn(async move {
                sign_in(&base, &form, &format!("user{n}@shop.test"), "Summer2026!")
                    .await
                    .status
            })
        })
        .collect();
    // While those passwords are being checked, the right one from the same address: the
    // address has had its five failures, so it is refused without a check. (Before, a guess
    // was counted against the address only once its password had been checked, so every
    // guess of the burst was checked, and this one signed in.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = sign_in(&base, &right, EMAIL, PASSWORD).await;
    assert_eq!(answer.status, 429, "{}", answer.body);
    assert!(!answer.session);
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        checked <= 4,
        "at most login_address_failures - 1 plain refusals: {statuses:?}"
    );
    assert_eq!(
        checked + statuses.iter().filter(|s| **s == 429).count(),
        20,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_office_signing_in_does_not_lock_its_address() {
    let service = Service::start(Some("[web]\nlogin_address_failures = 3\n"));
    let base = &service.base;
    // One person mistyping, then many right sign-ins from the same address.
    let form = fetch_form(base).await;
    assert_eq!(sign_in(base, &form, EMAIL, "typo").await.status, 401);
    for attempt in 0..5 {
        let form = fetch_form(base).await;
        let answer = sign_in(base, &form, EMAIL, PASSWORD).await;
        assert_eq!(answer.status, 303, "sign-in {attempt}: {}", answer.body);
    }
    // The right sign-ins counted nothing: one more mistake is the second failure, not a lock.
    let form = fetch_form(base).await;
    assert_eq!(
        sign_in(base, &form, "bo@shop.test", "typo").await.status,
        401
    );
}
