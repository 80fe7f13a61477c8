//! An admin's walk: through the nav to the admin pages; adding a user, refused and then made,
//! with the first password shown once and that user signing in with it; an API key and an
//! SMTP credential shown once; a webhook URL refused with what was typed kept, a hook's
//! deliveries and a test send; the user's own timezone on every page; and the HTML error
//! pages a mistyped address and a user on an admin page get.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::Value;

use crate::common::ADMIN;
use crate::{Ui, in_browser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_the_account_in_a_real_browser() {
    in_browser(walk).await;
}

/// Submits a form whose answer is a page at the same address (a refusal, a secret shown
/// once): waits until a new document has loaded in place of this one.
async fn submit_here(ui: &Ui<'_>, css: &str) {
    ui.c.execute("document.documentElement.dataset.before = '1'", vec![])
        .await
        .unwrap();
    ui.click(css).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let loaded = ui
            .c
            .execute(
                "return document.readyState === 'complete' && !document.documentElement.dataset.before",
                vec![],
            )
            .await
            .unwrap();
        if loaded == Value::Bool(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{css} answered no page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The secret on the page, shown once.
async fn secret(ui: &Ui<'_>) -> String {
    ui.text_of(".secret code").await
}

async fn walk(ui: &Ui<'_>) {
    ui.c.set_window_size(1366, 900).await.unwrap();
    ui.sign_in(ADMIN).await;
    ui.submit("nav a[href='/admin/users']", "Users").await;

    // A user: refused with the form kept, then added with a password shown once.
    ui.fill("#new-email", "dana at acme").await;
    ui.c.execute("document.querySelector('#new-email').type = 'text'", vec![])
        .await
        .unwrap();
    submit_here(ui, "form[action='/admin/users'] button").await;
    assert!(
        ui.text()
            .await
            .contains("'dana at acme' is not an email address")
    );
    let kept = ui.c.find(Locator::Css("#new-email")).await.unwrap();
    assert_eq!(
        kept.prop("value").await.unwrap().as_deref(),
        Some("dana at acme")
    );
    ui.shot("admin-users-refused").await;
    ui.fill("#new-email", "dana@acme.test").await;
    submit_here(ui, "form[action='/admin/users'] button").await;
    let password = secret(ui).await;
    assert!(ui.text().await.contains("dana@acme.test was added as user"));
    ui.shot("admin-users-added").await;
    ui.open("/admin/users").await;
    ui.wait_for("Users").await;
    assert!(!ui.text().await.contains(&password), "shown once");

    // An API key and an SMTP credential, each shown once.
    ui.submit(".tabs a[href='/admin/api-keys']", "API keys")
        .await;
    submit_here(ui, "form[action='/admin/api-keys'] button").await;
    let key = secret(ui).await;
    assert!(key.starts_with("mt_"), "{key}");
    ui.shot("admin-api-key-made").await;
    ui.submit(
        ".tabs a[href='/admin/smtp-credentials']",
        "SMTP credentials",
    )
    .await;
    submit_here(ui, "form[action='/admin/smtp-credentials'] button").await;
    let smtp_password = secret(ui).await;
    assert_eq!(smtp_password.len(), 32);
    ui.open("/admin/smtp-credentials").await;
    ui.wait_for("SMTP credentials").await;
    let listed = ui.text().await;
    assert!(listed.contains("smtp-") && !listed.contains(&smtp_password));
    ui.shot("admin-smtp").await;

    // A webhook: a URL that reaches no public address is refused, the ticked events kept.
    ui.submit(".tabs a[href='/admin/webhooks']", "Webhooks")
        .await;
    ui.fill("#hook-url", "http://127.0.0.1:9/hook").await;
    ui.click("#event-failed").await;
    submit_here(ui, "form[action='/admin/webhooks'] button").await;
    assert!(ui.text().await.contains("is not a public address"));
    let failed = ui.c.find(Locator::Css("#event-failed")).await.unwrap();
    assert_eq!(
        failed.prop("checked").await.unwrap().as_deref(),
        Some("true")
    );
    ui.shot("admin-webhook-refused").await;
    // A hook the operator's settings allowed (made through the store here), and its test:
    // this service refuses private addresses, so the page shows the test blocked.
    let hook = ui
        .app
        .store
        .create_webhook(&ui.app.seeded.acme, "http://127.0.0.1:9/hook", None)
        .await
        .unwrap();
    ui.open("/admin/webhooks").await;
    ui.wait_for("Webhooks").await;
    ui.submit(
        &format!("a[href='/admin/webhooks/{}']", hook.id),
        "Webhook deliveries",
    )
    .await;
    ui.submit("form[action$='/test'] button", "Webhook deliveries")
        .await;
    let tested = ui.text().await;
    assert!(
        tested.contains("The test event was not delivered"),
        "{tested}"
    );
    assert!(
        tested.contains("test") && tested.contains("failed"),
        "listed: {tested}"
    );
    ui.shot("admin-webhook-tested").await;

    // The admin's timezone: every time on the pages follows it.
    ui.submit("nav a[href='/settings']", "Settings").await;
    ui.c.find(Locator::Css("#timezone-choice"))
        .await
        .unwrap()
        .select_by_value("Asia/Tokyo")
        .await
        .unwrap();
    ui.submit("form[action='/settings/timezone'] button", "Settings")
        .await;
    assert!(
        ui.text()
            .await
            .contains("Times are now shown in Asia/Tokyo.")
    );
    ui.open(&format!("/emails/{}", ui.app.seeded.carla_spring))
        .await;
    ui.wait_for("Spring").await;
    let email = ui.text().await;
    assert!(email.contains(" JST") && !email.contains(" UTC"), "{email}");
    ui.shot("email-in-tokyo-time").await;

    // A mistyped address and a GET on a form's address are pages, not raw answers.
    ui.open("/leadz").await;
    ui.wait_for("Page not found").await;
    assert!(ui.text().await.contains("There is no page at /leadz."));
    ui.shot("error-not-found").await;
    ui.open("/admin/users/remove").await;
    ui.wait_for("Not a page").await;
    ui.shot("error-method").await;

    // The new user signs in with the password shown, and meets the 403 page.
    ui.open("/leads").await;
    ui.wait_for("Leads").await;
    ui.sign_out().await;
    ui.fill("#email", "dana@acme.test").await;
    ui.fill("#password", &password).await;
    ui.submit("form[action='/login'] button", "").await;
    ui.open("/leads").await;
    ui.wait_for("Leads").await;
    assert_eq!(
        ui.c.find_all(Locator::Css("nav a[href='/admin/users']"))
            .await
            .unwrap()
            .len(),
        0,
        "no Admin link for a user"
    );
    ui.open("/admin/users").await;
    ui.wait_for("Not allowed").await;
    ui.shot("error-forbidden").await;
}
