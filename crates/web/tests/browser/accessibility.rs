//! Every page of the UI, in one list ([`every_page`]), checked in Chromium by axe-core (the
//! engine, from npm, injected through WebDriver): no serious or critical violation; and at
//! 390×844 none scrolls sideways. A screenshot of each page at 1366×900 and at 390×844 goes
//! to `target/screenshots/` (`page-NAME-desktop.png`, `page-NAME-phone.png`), and every
//! finding, minor ones included, to `target/screenshots/axe-report.txt`.
//!
//! axe-core comes from `scripts/install-test-deps` (`/opt/mailtrail-node`), or
//! `MAILTRAIL_AXE=PATH/axe.min.js`; without it the test fails and says so.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{ADMIN, OPERATOR, Seeded, USER};
use crate::{Ui, in_browser};

/// Whose view a page is checked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Viewer {
    Nobody,
    Admin,
    User,
    Operator,
}

impl Viewer {
    fn email(self) -> Option<&'static str> {
        match self {
            Viewer::Nobody => None,
            Viewer::Admin => Some(ADMIN),
            Viewer::User => Some(USER),
            Viewer::Operator => Some(OPERATOR),
        }
    }
}

/// A page to check: its screenshot's name, its path, and who looks at it.
struct Page {
    name: &'static str,
    path: String,
    viewer: Viewer,
}

/// Every page of the UI, each in the view that shows the most of it. A new page goes here.
fn every_page(s: &Seeded, webhook: &str) -> Vec<Page> {
    let page = |name, path: String, viewer| Page { name, path, viewer };
    vec![
        page("login", "/login".into(), Viewer::Nobody),
        page("not-found", "/no/such/page".into(), Viewer::Nobody),
        page("overview", "/".into(), Viewer::Admin),
        page("leads", "/leads".into(), Viewer::Admin),
        page("lead-new", "/leads/new".into(), Viewer::Admin),
        page("lead-import", "/leads/import".into(), Viewer::Admin),
        page("lead", format!("/leads/{}", s.carla), Viewer::Admin),
        page(
            "lead-hostile",
            format!("/leads/{}", s.script_lead),
            Viewer::Admin,
        ),
        page(
            "lead-edit",
            format!("/leads/{}/edit", s.carla),
            Viewer::Admin,
        ),
        page(
            "lead-compose",
            format!("/leads/{}/compose", s.carla),
            Viewer::Admin,
        ),
        page(
            "email",
            format!("/emails/{}", s.carla_spring),
            Viewer::Admin,
        ),
        page(
            "email-bounced",
            format!("/emails/{}", s.eve_spring),
            Viewer::Admin,
        ),
        page(
            "email-reply",
            format!("/emails/{}/inbound/{}", s.carla_spring, s.reply),
            Viewer::Admin,
        ),
        page("report", "/reports/emails".into(), Viewer::Admin),
        page(
            "report-empty",
            "/reports/emails?batch=none".into(),
            Viewer::Admin,
        ),
        page("batches", "/reports/batches".into(), Viewer::Admin),
        page("batch-new", "/batches/new".into(), Viewer::Admin),
        page("suppressions", "/suppressions".into(), Viewer::User),
        page(
            "suppressions-operator",
            "/suppressions".into(),
            Viewer::Operator,
        ),
        page("settings", "/settings".into(), Viewer::Admin),
        page("settings-user", "/settings".into(), Viewer::User),
        page("admin-users", "/admin/users".into(), Viewer::Admin),
        page("admin-api-keys", "/admin/api-keys".into(), Viewer::Admin),
        page(
            "admin-smtp",
            "/admin/smtp-credentials".into(),
            Viewer::Admin,
        ),
        page("admin-webhooks", "/admin/webhooks".into(), Viewer::Admin),
        page(
            "admin-webhook",
            format!("/admin/webhooks/{webhook}"),
            Viewer::Admin,
        ),
        page("forbidden", "/admin/users".into(), Viewer::User),
    ]
}

/// axe.min.js, from where `scripts/install-test-deps` puts it.
pub(crate) fn axe_source() -> String {
    let path = std::env::var_os("MAILTRAIL_AXE").map_or_else(
        || PathBuf::from("/opt/mailtrail-node/node_modules/axe-core/axe.min.js"),
        PathBuf::from,
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is not at {} ({e}): run scripts/install-test-deps, or set MAILTRAIL_AXE",
            path.display()
        )
    })
}

/// Runs axe on the page in view; its violations as `{id, impact, help, nodes}`.
pub(crate) async fn axe(ui: &Ui<'_>, source: &str) -> Vec<Value> {
    ui.c.execute(source, vec![]).await.expect("axe loads");
    let found =
        ui.c.execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then(r => done(r.violations.map(v => ({
                 id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))
               }))))
               .catch(e => done('axe failed: ' + e));",
            vec![],
        )
        .await
        .expect("axe runs");
    match found {
        Value::Array(violations) => violations,
        other => panic!("{other}"),
    }
}

/// Opens `path` and waits until it has loaded.
async fn load(ui: &Ui<'_>, path: &str) {
    ui.open(path).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while ui
        .c
        .execute("return document.readyState", vec![])
        .await
        .unwrap()
        != "complete"
    {
        assert!(Instant::now() < deadline, "{path} did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fits_a_phone(ui: &Ui<'_>) -> Result<(), String> {
    let fits =
        ui.c.execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    if fits == Value::Bool(true) {
        return Ok(());
    }
    let wide =
        ui.c.execute(
            "return document.documentElement.scrollWidth + ' px wide; widest: ' +
               [...document.querySelectorAll('body *')]
                 .filter(e => e.getBoundingClientRect().right > window.innerWidth)
                 .slice(-3)
                 .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''))
                 .join(', ')",
            vec![],
        )
        .await
        .unwrap();
    Err(wide.as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_and_fits_a_phone() {
    in_browser(check_every_page).await;
}

async fn check_every_page(ui: &Ui<'_>) {
    let s = &ui.app.seeded;
    let source = axe_source();
    let hook = ui
        .app
        .store
        .create_webhook(&s.acme, "https://crm.example/hooks/mailtrail", None)
        .await
        .unwrap();
    // axe finds what it should: an image without a text alternative, put on a page here.
    load(ui, "/login").await;
    ui.c.execute(
        "document.querySelector('main').append(document.createElement('img'))",
        vec![],
    )
    .await
    .unwrap();
    let planted = axe(ui, &source).await;
    assert!(
        planted
            .iter()
            .any(|v| v["id"] == "image-alt" && v["impact"] == "critical"),
        "axe did not find the image without alt: {planted:?}"
    );
    let pages = every_page(s, &hook.id);
    let mut report = String::new();
    let mut failures = Vec::new();
    let mut signed_in = None;
    for viewer in [
        Viewer::Nobody,
        Viewer::Admin,
        Viewer::User,
        Viewer::Operator,
    ] {
        for page in pages.iter().filter(|p| p.viewer == viewer) {
            if signed_in != viewer.email() {
                ui.c.set_window_size(1366, 900).await.unwrap();
                if signed_in.is_some() {
                    load(ui, "/leads").await;
                    ui.sign_out().await;
                }
                if let Some(email) = viewer.email() {
                    ui.sign_in(email).await;
                }
                signed_in = viewer.email();
            }
            for (size, (width, height)) in [("desktop", (1366, 900)), ("phone", (390, 844))] {
                ui.c.set_window_size(width, height).await.unwrap();
                load(ui, &page.path).await;
                let title = ui.c.title().await.unwrap();
                if viewer != Viewer::Nobody && title.starts_with("Sign in") {
                    failures.push(format!("{} ({}): sent to sign in", page.name, page.path));
                }
                ui.shot(&format!("page-{}-{size}", page.name)).await;
                if size == "phone"
                    && let Err(wide) = fits_a_phone(ui).await
                {
                    failures.push(format!(
                        "{} ({}) scrolls sideways at 390 px: {wide}",
                        page.name, page.path
                    ));
                }
                for v in axe(ui, &source).await {
                    let impact = v["impact"].as_str().unwrap_or("unknown");
                    let line = format!(
                        "{} ({}, {size}): {impact} {} — {} at {}",
                        page.name, page.path, v["id"], v["help"], v["nodes"]
                    );
                    writeln!(report, "{line}").unwrap();
                    if matches!(impact, "serious" | "critical") {
                        failures.push(line);
                    }
                }
            }
        }
    }
    writeln!(
        report,
        "{} pages checked at 1366x900 and 390x844",
        pages.len()
    )
    .unwrap();
    std::fs::write(ui.shots.join("axe-report.txt"), &report).unwrap();
    println!("{report}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
