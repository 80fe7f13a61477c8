//! The web UI in a real headless Chromium, driven through chromedriver (WebDriver). Each module
//! is one walk through the pages; this file holds what they share: chromedriver, the browser,
//! and `Ui`, a signed-in view of a seeded service. A PNG of every page goes to
//! `target/screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/install-test-deps`); without
//! them the test fails and says so.

mod accessibility;
mod acting;
mod admin;
mod blocks;
#[path = "../common/mod.rs"]
mod common;
mod overview;
mod tour;

use std::net::TcpListener as StdListener;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{App, PASSWORD, app};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
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

    /// Asserts the page in view does not scroll sideways at the window's width (a phone's,
    /// where the walks check it), naming what sticks out when it does; then saves its
    /// screenshot as `shot`, either way.
    async fn fits_a_phone(&self, what: &str, shot: &str) {
        let fits = self
            .c
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth",
                vec![],
            )
            .await
            .unwrap();
        if fits != true {
            let wide = self
                .c
                .execute(
                    "return [...document.querySelectorAll('body *')]
                       .filter(e => e.getBoundingClientRect().right > window.innerWidth)
                       .slice(-5)
                       .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))",
                    vec![],
                )
                .await
                .unwrap();
            self.shot(shot).await;
            panic!("{what} scrolls sideways at a phone's width: {wide}");
        }
        self.shot(shot).await;
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

/// Runs `walk` in a fresh Chromium against a freshly seeded service, then closes both, even
/// when `walk` panics (the panic is then the test's failure).
async fn in_browser<F>(walk: F)
where
    F: for<'u> AsyncFnOnce(&'u Ui<'u>),
{
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
    let outcome = AssertUnwindSafe(walk(&ui)).catch_unwind().await;
    let _ = client.close().await;
    server.abort();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
