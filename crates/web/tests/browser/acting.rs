//! Acting in the UI as a salesperson does: write an email on a lead's page, preview it and
//! send it, and see it reach the recipient's server (Postfix's smtp-sink, through the real
//! delivery worker) and the lead's timeline; import a CSV whose bad line is named and nothing
//! imported, fix the line in the page and import; schedule an email and cancel it; add a lead
//! and edit its Permission to Email; and on a phone no new page scrolls sideways.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use mailtrail_domain::EmailAddress;
use mailtrail_outbound::{Outbound, OutboundConfig};
use mailtrail_testkit::smtp_sink::Sink;
use tokio::sync::watch;

use crate::common::USER;
use crate::{Ui, in_browser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acting_in_the_web_ui() {
    in_browser(act).await;
}

/// The delivery worker on the service's store, every `shop.test` email routed to `sink`;
/// stopped when the returned sender is dropped.
async fn deliver_to(ui: &Ui<'_>, sink: &Sink) -> watch::Sender<bool> {
    let config = OutboundConfig {
        helo_name: "mta.mailtrail.test".into(),
        routes: [("shop.test".to_owned(), sink.address())].into(),
        poll_interval: Duration::from_millis(50),
        ..OutboundConfig::default()
    };
    let outbound = Outbound::new(ui.app.store.clone(), config, &[])
        .await
        .unwrap();
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(outbound.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    stop
}

/// The messages the sink received that contain `needle`, waiting up to 15 s for one.
async fn received(sink: &Sink, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(message) = sink.messages().into_iter().find(|m| m.contains(needle)) {
            return message;
        }
        assert!(
            Instant::now() < deadline,
            "no message with {needle:?} arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks what posts a form that answers at the same address, and waits for the new page:
/// a mark set on the old one is gone and the new one is loaded.
async fn post_here(ui: &Ui<'_>, css: &str) {
    ui.c.execute("window.mailtrailOldPage = true", vec![])
        .await
        .unwrap();
    ui.click(css).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let fresh =
            ui.c.execute(
                "return !window.mailtrailOldPage && document.readyState === 'complete'",
                vec![],
            )
            .await
            .unwrap();
        if fresh == true {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no new page after clicking {css}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Both sizes of a page: the desktop one as it is, the phone one checked for sideways
/// scrolling.
async fn shots(ui: &Ui<'_>, name: &str) {
    ui.c.set_window_size(1366, 900).await.unwrap();
    ui.shot(&format!("acting-{name}-1366")).await;
    ui.c.set_window_size(390, 844).await.unwrap();
    ui.fits_a_phone(name, &format!("acting-{name}-390")).await;
    ui.c.set_window_size(1366, 900).await.unwrap();
}

async fn act(ui: &Ui<'_>) {
    let s = &ui.app.seeded;
    let sink = Sink::start(&[]);
    let _worker = deliver_to(ui, &sink).await;
    ui.sign_in(USER).await;

    // Compose on Carla's page, preview with her fields, send.
    ui.open(&format!("/leads/{}", s.carla)).await;
    ui.wait_for("Carla Mendes").await;
    ui.submit("a[href$='/compose']", "Email to Carla").await;
    ui.fill("#from_local", "sales").await;
    ui.fill("#from_domain", "acme.test").await;
    ui.fill("#subject", "Hello {{ first_name }}").await;
    ui.fill("#text", "Hi {{ first_name }}, news for {{ company }}.")
        .await;
    post_here(ui, "button[value=preview]").await;
    let preview = ui.text_of(".preview").await;
    assert!(
        preview.contains("Hello Carla") && preview.contains("Hi Carla, news for Shop & Co."),
        "{preview}"
    );
    assert_eq!(
        ui.c.find(Locator::Css("#subject"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("Hello {{ first_name }}"),
        "the form keeps the template"
    );
    shots(ui, "compose").await;
    ui.submit("button[value=send]", "Hello").await;
    assert!(
        ui.c.current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/emails/")
    );
    let message = received(&sink, "Subject: Hello Carla").await;
    assert!(message.contains("carla@shop.test"), "{message}");
    assert!(
        message.contains("Hi Carla, news for Shop & Co."),
        "{message}"
    );
    ui.open(&format!("/leads/{}", s.carla)).await;
    ui.wait_for("Carla Mendes").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ui.text_of(".timeline li").await.contains("Delivered") {
        assert!(Instant::now() < deadline, "the email never read Delivered");
        ui.c.refresh().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ui.text_of(".timeline li").await.contains("Hello Carla"));

    // A CSV with a bad line: named, nothing imported; fixed in the page, imported.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leads.csv");
    std::fs::write(
        &file,
        "email,first_name,company\nida@shop.test,Ida,Initech\njo@@shop.test,Jo,Hooli\n",
    )
    .unwrap();
    let acme = &s.acme;
    let before = ui.app.store.count_leads(acme).await.unwrap();
    ui.submit("nav a[href='/leads/import']", "Import leads")
        .await;
    ui.c.find(Locator::Css("#file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    post_here(ui, "form.import button").await;
    let refused = ui.text_of("[role=alert]").await;
    assert!(
        refused.contains("Nothing was imported")
            && refused.contains("Line 3: email 'jo@@shop.test'"),
        "{refused}"
    );
    assert_eq!(ui.app.store.count_leads(acme).await.unwrap(), before);
    shots(ui, "import-refused").await;
    ui.fill(
        "#csv",
        "email,first_name,company\nida@shop.test,Ida,Initech\njo@shop.test,Jo,Hooli\n",
    )
    .await;
    post_here(ui, "form.import button").await;
    assert!(
        ui.text_of("[role=status]")
            .await
            .contains("Imported 2 leads: 2 new, 0 updated."),
    );
    assert_eq!(ui.app.store.count_leads(acme).await.unwrap(), before + 2);
    shots(ui, "import").await;

    // A scheduled email, cancelled from its page.
    ui.open(&format!("/leads/{}/compose", s.carla)).await;
    ui.wait_for("Email to Carla").await;
    ui.fill("#from_local", "sales").await;
    ui.fill("#from_domain", "acme.test").await;
    ui.fill("#subject", "Next year").await;
    ui.fill("#text", "Later.").await;
    ui.fill("#send_at", "2999-01-01 09:00").await;
    ui.submit("button[value=send]", "Next year").await;
    assert!(ui.text_of(".lede").await.contains("Scheduled for"));
    shots(ui, "email-scheduled").await;
    post_here(ui, "form.cancel button").await;
    assert!(ui.text_of(".lede").await.contains("Cancelled"));
    assert!(ui.text().await.contains("Not sent: it was cancelled"));
    assert!(sink.messages().iter().all(|m| !m.contains("Next year")));

    // Add a lead, then edit it to Permission to Email No.
    ui.submit("nav a[href='/leads/new']", "Add a lead").await;
    shots(ui, "lead-new").await;
    ui.fill("#email", "kai@shop.test").await;
    ui.fill("#first_name", "Kai").await;
    ui.fill("#field-name-1", "company").await;
    ui.fill("#field-value-1", "Initech").await;
    ui.submit("form.lead-form button", "Kai").await;
    assert!(ui.text().await.contains("Initech"));
    ui.submit("a[href$='/edit']", "Edit Kai").await;
    ui.click("#permission-no").await;
    ui.fill("#last_name", "Berg").await;
    shots(ui, "lead-edit").await;
    ui.submit("form.lead-form button", "Kai Berg").await;
    assert!(ui.text_of(".facts").await.contains("No"));
    let kai = ui
        .app
        .store
        .lead_by_address(acme, &EmailAddress::parse("kai@shop.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kai.permission, mailtrail_domain::Permission::No);

    // The batch form, for its looks.
    ui.submit("nav a[href='/batches/new']", "Send a batch")
        .await;
    shots(ui, "batch-new").await;
}
