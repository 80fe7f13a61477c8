//! The web UI in a real headless Chromium, driven through chromedriver (WebDriver): sign in,
//! read a lead's activity, filter and export the email report, compare batches, change
//! settings, lift a block as an operator and be refused as a user, and see hostile names and
//! subjects as plain text. A PNG of every page goes to `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/install-test-deps`); without
//! them the test fails and says so.

mod common;

use std::net::TcpListener as StdListener;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN, App, HTML_SUBJECT, OPERATOR, PASSWORD, REPLY_TEXT, SCRIPT_NAME, USER, app};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use mailtrail_domain::EmailAddress;
use serde_json::json;

/// A program on the PATH, or a failure that says what to install.
fn required(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not installed: the browser tests need Debian's chromium and \
                 chromium-driver (run scripts/install-test-deps, or \
                 `apt-get install chromium chromium-driver`)"
            )
        })
}

/// chromedriver on a free loopback port, stopped (by its own handle) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let program = required("chromedriver");
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let chromium = required("chromium");
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1280,1000", format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver")
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The browser and the service it talks to.
struct Ui<'a> {
    c: &'a Client,
    base: String,
    app: &'a App,
    shots: PathBuf,
}

impl Ui<'_> {
    async fn open(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn shot(&self, page: &str) {
        let png = self.c.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{page}.png")), png).unwrap();
    }

    /// The page's visible text.
    async fn text(&self) -> String {
        self.text_of("body").await
    }

    /// The visible text of the first element matching `css`.
    async fn text_of(&self, css: &str) -> String {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn click(&self, css: &str) {
        self.c
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.c.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Waits until the page whose title starts with `title` is loaded.
    async fn wait_for(&self, title: &str) {
        self.wait_until(title, None).await;
    }

    /// Clicks what submits a form or follows a link, and waits for the next page (a new URL
    /// whose title starts with `title`, fully loaded).
    async fn submit(&self, css: &str, title: &str) {
        let before = self.c.current_url().await.unwrap();
        self.click(css).await;
        self.wait_until(title, Some(before.as_str())).await;
    }

    async fn wait_until(&self, title: &str, left: Option<&str>) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.c.current_url().await.unwrap();
            let now = self.c.title().await.unwrap();
            let ready = self
                .c
                .execute("return document.readyState", vec![])
                .await
                .unwrap();
            if left != Some(url.as_str()) && now.starts_with(title) && ready == "complete" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited for '{title}', still on '{now}' at {url}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// No script ran: no alert is open, and the page is the one expected.
    async fn no_script_ran(&self) {
        assert!(self.c.get_alert_text().await.is_err(), "an alert is open");
    }

    async fn sign_in(&self, email: &str) {
        self.open("/leads").await;
        self.wait_for("Sign in").await;
        self.fill("#email", email).await;
        self.fill("#password", PASSWORD).await;
        self.submit("form[action='/login'] button", "Leads").await;
    }

    async fn sign_out(&self) {
        self.submit("form[action='/logout'] button", "Sign in")
            .await;
    }

    /// A GET or POST with the browser's session cookie, outside the browser.
    async fn fetch(
        &self,
        method: reqwest::Method,
        path: &str,
        form: Option<String>,
    ) -> reqwest::Response {
        let cookie = self.c.get_named_cookie("mailtrail_session").await.unwrap();
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .header("cookie", format!("mailtrail_session={}", cookie.value()));
        if let Some(form) = form {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form);
        }
        request.send().await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_in_a_real_browser() {
    let app = app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(axum::serve(listener, app.router()).into_future());
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, profile.path()).await;
    let ui = Ui {
        c: &client,
        base,
        app: &app,
        shots: screenshots(),
    };
    let outcome = AssertUnwindSafe(walk_through(&ui)).catch_unwind().await;
    let _ = client.close().await;
    server.abort();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn walk_through(ui: &Ui<'_>) {
    let s = &ui.app.seeded;

    // Signing in, after being sent to the sign-in page.
    ui.open("/leads").await;
    ui.wait_for("Sign in").await;
    assert!(
        ui.c.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/login?next=%2Fleads")
    );
    ui.shot("login").await;
    ui.fill("#email", ADMIN).await;
    ui.fill("#password", "not the password").await;
    ui.submit("form[action='/login'] button", "Sign in").await;
    assert!(ui.text().await.contains("Wrong email or password."));
    ui.sign_in(ADMIN).await;

    // The leads, with the hostile name as text.
    let leads = ui.text().await;
    assert!(
        leads.contains("Carla Mendes") && leads.contains(SCRIPT_NAME),
        "{leads}"
    );
    ui.no_script_ran().await;
    ui.shot("leads").await;
    ui.fill("#q", "mendes").await;
    ui.submit("form[role=search] button", "Leads").await;
    let found = ui.text().await;
    assert!(
        found.contains("Carla Mendes") && !found.contains("Gus"),
        "{found}"
    );

    // A lead's activity: labels, newest first, the reply its own item.
    ui.submit("table a", "Carla Mendes").await;
    let items = ui.c.find_all(Locator::Css(".timeline li")).await.unwrap();
    let mut texts = Vec::new();
    for item in &items {
        texts.push(item.text().await.unwrap());
    }
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(
        texts[0].contains("Reply") && texts[0].contains("Re: Spring offer"),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Autumn news") && t.contains("Delivered")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains(HTML_SUBJECT) && t.contains("Replied")),
        "{texts:?}"
    );
    ui.shot("lead").await;

    // The hostile lead and the HTML subject stay text.
    ui.open(&format!("/leads/{}", s.script_lead)).await;
    ui.wait_for(SCRIPT_NAME).await;
    ui.no_script_ran().await;
    let page = ui.text().await;
    assert!(
        page.contains(SCRIPT_NAME) && page.contains(HTML_SUBJECT),
        "{page}"
    );
    assert!(
        page.contains("Delivered"),
        "a machine open is not an open: {page}"
    );
    ui.shot("lead-escaped").await;

    // An email's events and the raw reply.
    ui.open(&format!("/emails/{}", s.carla_spring)).await;
    ui.wait_for(HTML_SUBJECT).await;
    let email = ui.text().await;
    for expected in [
        "delivered",
        "250 2.0.0 Ok: queued as 4Bx",
        "opened",
        "clicked",
        "replied",
        "reply",
    ] {
        assert!(email.contains(expected), "{expected}: {email}");
    }
    ui.shot("email").await;
    ui.submit("a[href*='/inbound/']", "Received message").await;
    let raw = ui.text_of("pre.raw").await;
    assert!(raw.contains(REPLY_TEXT), "{raw}");
    ui.shot("inbound").await;
    ui.open(&format!("/emails/{}", s.eve_spring)).await;
    ui.wait_for(HTML_SUBJECT).await;
    assert!(
        ui.text()
            .await
            .contains("550 5.1.1 <eve@shop.test>: Recipient address rejected")
    );

    // The email report, filtered by stage, then exported.
    ui.open("/reports/emails").await;
    ui.wait_for("Email report").await;
    assert_eq!(
        ui.c.find_all(Locator::Css("table.report tbody tr"))
            .await
            .unwrap()
            .len(),
        6
    );
    ui.shot("report-emails").await;
    ui.c.find(Locator::Css("#stage"))
        .await
        .unwrap()
        .select_by_value("failed")
        .await
        .unwrap();
    ui.submit("form.filters button[type=submit]", "Email report")
        .await;
    let rows =
        ui.c.find_all(Locator::Css("table.report tbody tr"))
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    let row = rows[0].text().await.unwrap();
    assert!(
        row.contains("eve@shop.test") && row.contains("Failed") && row.contains("userunknown"),
        "{row}"
    );
    assert!(row.contains(HTML_SUBJECT), "{row}");
    ui.no_script_ran().await;
    ui.shot("report-emails-failed").await;
    let export =
        ui.c.find(Locator::Css("a[download]"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(export, "/reports/emails.csv?stage=failed");
    let csv = ui.fetch(reqwest::Method::GET, &export, None).await;
    assert_eq!(csv.status(), 200);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].contains("eve@shop.test") && lines[1].contains(",Failed,userunknown,"),
        "{csv}"
    );

    // Two batches side by side, with the chart.
    ui.open("/reports/batches").await;
    ui.wait_for("Compare batches").await;
    for checkbox in
        ui.c.find_all(Locator::Css("input[name=batch]"))
            .await
            .unwrap()
    {
        if !checkbox.is_selected().await.unwrap() {
            checkbox.click().await.unwrap();
        }
    }
    ui.submit("form.filters button[type=submit]", "Compare batches")
        .await;
    let url = ui.c.current_url().await.unwrap();
    assert!(
        url.as_str().contains("batch=autumn") && url.as_str().contains("batch=spring"),
        "{url}"
    );
    let svg =
        ui.c.find(Locator::Css("figure.chart svg"))
            .await
            .unwrap()
            .html(false)
            .await
            .unwrap();
    assert!(
        svg.contains(">spring<") && svg.contains(">autumn<"),
        "{svg}"
    );
    assert!(
        svg.contains(">n/a<"),
        "autumn went out without open tracking: {svg}"
    );
    assert!(svg.contains("Opened by machines") && svg.contains("Opened by people"));
    let table = ui.text_of("table.compare").await;
    assert!(
        table.contains("Delivered rate") && table.contains("n/a"),
        "{table}"
    );
    ui.shot("batches").await;
    let chart =
        ui.c.find(Locator::Css("figure.chart"))
            .await
            .unwrap()
            .screenshot()
            .await
            .unwrap();
    std::fs::write(ui.shots.join("batches-chart.png"), chart).unwrap();

    // Settings: turn open tracking on.
    ui.open("/settings").await;
    ui.wait_for("Settings").await;
    ui.shot("settings").await;
    let open = ui.c.find(Locator::Css("#open_tracking")).await.unwrap();
    assert!(!open.is_selected().await.unwrap());
    open.click().await.unwrap();
    ui.submit("form.settings button[type=submit]", "Settings")
        .await;
    assert!(ui.text().await.contains("Settings saved."));
    assert!(
        ui.c.find(Locator::Css("#open_tracking"))
            .await
            .unwrap()
            .is_selected()
            .await
            .unwrap()
    );
    let saved = ui.app.store.settings(&s.acme).await.unwrap();
    assert!(saved.open_tracking && !saved.click_tracking, "{saved:?}");
    ui.shot("settings-saved").await;

    // Reply forwarding is saved with the other settings and shown again.
    ui.open("/settings").await;
    ui.wait_for("Settings").await;
    ui.fill("#reply_forward_to", "sales@acme.test").await;
    ui.submit("form.settings button[type=submit]", "Settings")
        .await;
    assert!(ui.text().await.contains("Settings saved."));
    let forward =
        ui.c.find(Locator::Css("#reply_forward_to"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap();
    assert_eq!(forward.as_deref(), Some("sales@acme.test"));
    assert_eq!(
        ui.app
            .store
            .reply_forward_to(&s.acme)
            .await
            .unwrap()
            .as_deref(),
        Some("sales@acme.test")
    );
    let users = ui.c.find(Locator::Css("table.users")).await.unwrap();
    let users = users.text().await.unwrap();
    assert!(users.contains(ADMIN) && users.contains(USER), "{users}");

    // A sending domain: added, its records shown to publish, unverified until checked.
    ui.fill("#new-domain", "shop.test").await;
    ui.submit("form.add-domain button[type=submit]", "Settings")
        .await;
    let domain = ui.app.store.domain(&s.acme, "shop.test").await.unwrap();
    let section = ui.text_of("section.domain").await;
    assert!(
        section.contains("shop.test") && section.contains("Not verified"),
        "{section}"
    );
    assert!(
        section.contains(&format!("{}._domainkey.shop.test", domain.selector))
            && section.contains(&format!("p={}", domain.public_key_b64)),
        "{section}"
    );
    assert!(
        section.contains("v=spf1") && section.contains("Not checked yet"),
        "{section}"
    );
    ui.shot("settings-domains").await;
    ui.sign_out().await;

    // A user reads the account's blocks and the rule, but may not lift a block.
    ui.sign_in(USER).await;
    ui.open("/suppressions").await;
    ui.wait_for("Suppression list").await;
    let list = ui.text().await;
    assert!(
        list.contains("eve@shop.test")
            && list.contains("Hard bounce: The mailbox does not exist.")
            && list.contains("Setting Permission to Email back to Yes does not lift the block; only an operator can"),
        "{list}"
    );
    assert!(
        ui.c.find(Locator::Css("table.suppressions button.danger"))
            .await
            .is_err(),
        "a user gets no remove button"
    );
    ui.shot("suppressions-read-only").await;
    let eve = ui
        .app
        .store
        .lead_by_address(
            &s.acme,
            &mailtrail_domain::EmailAddress::parse("eve@shop.test").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    ui.open(&format!("/leads/{}", eve.id)).await;
    ui.wait_for("Eve").await;
    let lead = ui.text_of(".block-mark").await;
    assert!(
        lead.contains("Blocked since")
            && lead.contains("Hard bounce: The mailbox does not exist.")
            && lead.contains("User unknown")
            && lead.contains("Setting Permission to Email back to Yes does not lift the block; only an operator can."),
        "{lead}"
    );
    ui.shot("lead-blocked").await;

    // On a phone no page scrolls sideways.
    ui.c.set_window_size(390, 844).await.unwrap();
    for (path, title) in [
        (format!("/leads/{}", eve.id), "Eve"),
        ("/leads".to_owned(), "Leads"),
        (format!("/emails/{}", s.eve_spring), "Spring"),
        ("/reports/emails".to_owned(), "Email report"),
        ("/reports/batches".to_owned(), "Compare batches"),
        ("/suppressions".to_owned(), "Suppression list"),
    ] {
        ui.open(&path).await;
        ui.wait_for(title).await;
        let width =
            ui.c.execute("return document.documentElement.scrollWidth", vec![])
                .await
                .unwrap();
        assert!(
            width.as_u64().unwrap() <= 390,
            "{path} is {width} px wide at 390 px"
        );
        ui.shot(&format!("phone{}", path.replace('/', "-"))).await;
    }
    ui.c.set_window_size(1280, 1000).await.unwrap();
    ui.open("/leads").await;
    ui.wait_for("Leads").await;
    let csrf =
        ui.c.find(Locator::Css("input[name=csrf]"))
            .await
            .unwrap()
            .attr("value")
            .await
            .unwrap()
            .unwrap();
    let form = format!(
        "csrf={csrf}&account={}&address=eve%40shop.test&reason=please",
        s.acme
    );
    let refused = ui
        .fetch(reqwest::Method::POST, "/suppressions/remove", Some(form))
        .await;
    assert_eq!(refused.status(), 403);
    let eve = EmailAddress::parse("eve@shop.test").unwrap();
    assert!(
        ui.app
            .store
            .suppression(&s.acme, &eve)
            .await
            .unwrap()
            .is_some()
    );
    ui.sign_out().await;

    // An operator lifts it, with a reason, and the trail says who.
    ui.sign_in(OPERATOR).await;
    let picker = ui.text_of("#account-picker").await;
    assert!(
        picker.contains("Acme") && picker.contains("Globex"),
        "{picker}"
    );
    ui.open("/suppressions").await;
    ui.wait_for("Suppression list").await;
    let listed = ui.text().await;
    assert!(
        listed.contains("eve@shop.test")
            && listed.contains("Acme")
            && listed.contains("userunknown")
    );
    ui.shot("suppressions").await;
    ui.fill("#reason-1", "The customer fixed the mailbox").await;
    ui.submit("table.suppressions button.danger", "Suppression list")
        .await;
    let after = ui.text().await;
    assert!(
        after.contains("The block on eve@shop.test was lifted"),
        "{after}"
    );
    assert!(
        after.contains("web:op@mailtrail.test") && after.contains("The customer fixed the mailbox"),
        "{after}"
    );
    assert!(
        ui.app
            .store
            .suppression(&s.acme, &eve)
            .await
            .unwrap()
            .is_none()
    );
    let trail = ui.app.store.suppression_log(&s.acme, &eve).await.unwrap();
    assert_eq!(
        trail.last().map(|e| e.actor.as_str()),
        Some("web:op@mailtrail.test")
    );
    ui.shot("suppressions-removed").await;

    // The operator switches account with the picker.
    ui.open("/leads").await;
    ui.wait_for("Leads").await;
    ui.c.find(Locator::Css("#account-picker"))
        .await
        .unwrap()
        .select_by_label("Globex")
        .await
        .unwrap();
    ui.submit("form.picker button", "Leads").await;
    let globex = ui.text().await;
    assert!(
        globex.contains("hal@globex.test") && !globex.contains("carla@shop.test"),
        "{globex}"
    );
    ui.shot("leads-operator").await;
}
