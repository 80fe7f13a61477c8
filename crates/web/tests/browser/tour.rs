//! The tour: sign in, read a lead's activity, filter and export the email report, compare
//! batches, change settings, lift a block as an operator and be refused as a user, and see
//! hostile names and subjects as plain text.

use fantoccini::Locator;
use mailtrail_domain::EmailAddress;

use crate::common::{ADMIN, HTML_SUBJECT, OPERATOR, REPLY_TEXT, SCRIPT_NAME, USER};
use crate::{Ui, in_browser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_in_a_real_browser() {
    in_browser(walk_through).await;
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
        ui.c.find(Locator::Css("div.chart"))
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
        ui.c.find(Locator::Css("div.chart"))
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
