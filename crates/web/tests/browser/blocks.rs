//! Blocks and refusals in plain sight, as a user of the account (not an admin) sees them: the
//! leads list marks the blocked lead and says why a No is a No; a recipient refused from a
//! batch sent through the API is "Not sent" on its lead's page and in the batch's count; a
//! lead set back to Yes still reads as blocked; the batch chart keeps whole names and each
//! batch's colour; and none of these pages scrolls sideways on a phone.

use fantoccini::Locator;
use mailtrail_domain::{EmailAddress, Permission, Role};
use mailtrail_store::{LeadPatch, NewLead};
use serde_json::{Value, json};

use crate::accessibility::{axe, axe_source};
use crate::common::USER;
use crate::{Ui, in_browser};
use mailtrail_store::AccountId;

/// A batch sent only to a lead whose Permission to Email is No.
const FROST: &str = "frost";
/// A batch name longer than any label column, to be shown whole.
const WINTER: &str = "winter-2026-returning-customers-in-europe-and-north-america";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_refusals_are_visible_to_every_user_of_the_account() {
    in_browser(walk).await;
}

/// Sends a batch through the API as the account's user key would; the answer.
async fn send_batch(ui: &Ui<'_>, batch: Value) -> Value {
    let acme = &ui.app.seeded.acme;
    let key = ui
        .app
        .store
        .create_api_key(Some(acme), Role::User)
        .await
        .unwrap();
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/emails/batch", ui.base))
        .bearer_auth(&key.key)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    answer.json().await.unwrap()
}

/// The text of the leads table's row for `email`.
async fn lead_row(ui: &Ui<'_>, email: &str) -> String {
    for row in ui.c.find_all(Locator::Css("table tbody tr")).await.unwrap() {
        let text = row.text().await.unwrap();
        if text.contains(email) {
            return text;
        }
    }
    panic!("no row for {email}");
}

/// The comparison table's value for a metric, per batch column.
async fn metric(ui: &Ui<'_>, label: &str) -> Vec<String> {
    for row in
        ui.c.find_all(Locator::Css("table.compare tbody tr"))
            .await
            .unwrap()
    {
        let name = row
            .find(Locator::Css("th"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if name == label {
            let mut values = Vec::new();
            for cell in row.find_all(Locator::Css("td")).await.unwrap() {
                values.push(cell.text().await.unwrap());
            }
            return values;
        }
    }
    panic!("no line {label}");
}

/// The fill class of each bar of the chart's first group, by batch name (a batch whose rate
/// is n/a has no bar).
async fn fills(ui: &Ui<'_>) -> Vec<(String, String)> {
    let group = ui.c.find(Locator::Css(".chart-group")).await.unwrap();
    let mut fills = Vec::new();
    for bar in group.find_all(Locator::Css("li")).await.unwrap() {
        let name = bar.find(Locator::Css(".batch-name")).await.unwrap();
        if let Some(rect) = bar.find_all(Locator::Css("rect")).await.unwrap().first() {
            fills.push((
                name.text().await.unwrap(),
                rect.attr("class").await.unwrap().unwrap_or_default(),
            ));
        }
    }
    fills
}

/// Asserts axe finds nothing serious or critical on the page in view.
async fn no_serious_violations(ui: &Ui<'_>) {
    let found = axe(ui, &axe_source()).await;
    let serious: Vec<&Value> = found
        .iter()
        .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
        .collect();
    assert!(serious.is_empty(), "{serious:?}");
}

/// Asserts the page fits a phone's width; with a screenshot of the part `focus` shows.
async fn fits_a_phone(ui: &Ui<'_>, path: &str, title: &str, focus: &str, shot: &str) {
    ui.open(path).await;
    ui.wait_for(title).await;
    ui.c.execute(
        "document.querySelector(arguments[0]).scrollIntoView()",
        vec![json!(focus)],
    )
    .await
    .unwrap();
    ui.fits_a_phone(path, shot).await;
}

async fn walk(ui: &Ui<'_>) {
    let s = &ui.app.seeded;
    let store = &ui.app.store;
    let ivy = store
        .create_lead(
            &s.acme,
            &NewLead {
                address: EmailAddress::parse("ivy@shop.test").unwrap(),
                first_name: Some("Ivy".into()),
                last_name: None,
                fields: Default::default(),
                permission: Permission::No,
            },
        )
        .await
        .unwrap();
    let gus = store
        .lead_by_address(&s.acme, &EmailAddress::parse("gus@shop.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    let answer = send_batch(
        ui,
        json!({
            "from": "sales@acme.test",
            "subject": "Winter sale",
            "text": "Hello",
            "batch": WINTER,
            "recipients": [{"lead_id": gus.id}, {"lead_id": ivy.id}],
        }),
    )
    .await;
    assert_eq!(answer["refused"].as_array().unwrap().len(), 1, "{answer}");
    // A batch whose every recipient is refused: no email at all, yet it was targeted.
    let answer = send_batch(
        ui,
        json!({
            "from": "sales@acme.test",
            "subject": "Frost alert",
            "text": "Hello",
            "batch": FROST,
            "recipients": [{"lead_id": ivy.id}],
        }),
    )
    .await;
    assert_eq!(answer["emails"], json!([]), "{answer}");

    ui.c.set_window_size(1366, 900).await.unwrap();
    ui.sign_in(USER).await;

    // The leads list: Eve's block, Ivy's No and why.
    ui.open("/leads").await;
    ui.wait_for("Leads").await;
    let eve = lead_row(ui, "eve@shop.test").await;
    assert!(
        eve.contains("Blocked since") && eve.contains("Hard bounce"),
        "{eve}"
    );
    assert!(eve.contains("No — Hard bounce"), "{eve}");
    let ivy_row = lead_row(ui, "ivy@shop.test").await;
    assert!(
        ivy_row.contains("No — Set by hand") && !ivy_row.contains("Blocked"),
        "{ivy_row}"
    );
    let carla = lead_row(ui, "carla@shop.test").await;
    assert!(
        carla.contains("Yes") && !carla.contains("Blocked"),
        "{carla}"
    );
    ui.shot("blocks-leads").await;

    // Ivy's page: why she is No, and the send that was refused.
    ui.submit(&format!("a[href='/leads/{}']", ivy.id), "Ivy")
        .await;
    let facts = ui.text_of(".facts").await;
    assert!(
        facts.contains("No — Set by hand") && facts.contains("since"),
        "{facts}"
    );
    let items = ui.c.find_all(Locator::Css(".timeline li")).await.unwrap();
    assert_eq!(items.len(), 2, "two refused sends");
    assert!(
        items[0].text().await.unwrap().contains("Frost alert"),
        "newest first"
    );
    let refused = items[1].text().await.unwrap();
    assert!(
        refused.contains("Winter sale")
            && refused.contains("Not sent — Permission to Email is No")
            && refused.contains(WINTER),
        "{refused}"
    );
    assert!(!ui.text().await.contains("No emails to this lead yet"));
    ui.shot("blocks-lead-not-sent").await;
    no_serious_violations(ui).await;

    // Eve set back to Yes is still blocked, and her page says so where it bites.
    let eve_lead = store
        .lead_by_address(&s.acme, &EmailAddress::parse("eve@shop.test").unwrap())
        .await
        .unwrap()
        .unwrap();
    store
        .update_lead(
            &AccountId::from(&s.acme),
            &eve_lead.id,
            &LeadPatch {
                permission: Some(Permission::Yes),
                ..LeadPatch::default()
            },
        )
        .await
        .unwrap();
    ui.open(&format!("/leads/{}", eve_lead.id)).await;
    ui.wait_for("Eve").await;
    let facts = ui.text_of(".facts").await;
    assert!(
        facts.contains("Yes") && facts.contains("The address is still blocked"),
        "{facts}"
    );
    assert!(
        ui.text_of(".block-mark")
            .await
            .contains("only an operator can")
    );
    ui.shot("blocks-lead-yes-still-blocked").await;

    // The batch page counts the refusal: targeted = emails + not sent.
    ui.open("/reports/batches").await;
    ui.wait_for("Compare batches").await;
    let mut columns = Vec::new();
    for th in
        ui.c.find_all(Locator::Css("table.compare thead th"))
            .await
            .unwrap()
    {
        // As written: the header's style shows it in capitals.
        columns.push(th.prop("textContent").await.unwrap().unwrap_or_default());
    }
    let winter = columns
        .iter()
        .skip(1)
        .position(|c| c == WINTER)
        .unwrap_or_else(|| panic!("the newest batch is compared, named whole: {columns:?}"));
    assert_eq!(metric(ui, "Recipients targeted").await[winter], "2");
    assert_eq!(metric(ui, "Not sent (refused)").await[winter], "1");
    assert_eq!(metric(ui, "Emails").await[winter], "1");
    let frost = columns.iter().skip(1).position(|c| c == FROST).unwrap();
    assert_eq!(metric(ui, "Recipients targeted").await[frost], "1");
    assert_eq!(metric(ui, "Not sent (refused)").await[frost], "1");
    assert_eq!(metric(ui, "Emails").await[frost], "0");
    let names =
        ui.c.find_all(Locator::Css(".chart .batch-name"))
            .await
            .unwrap();
    let mut whole = false;
    for name in names {
        whole |= name.text().await.unwrap() == WINTER;
    }
    assert!(whole, "the chart shows the whole batch name");
    let together = fills(ui).await;
    ui.shot("blocks-batches").await;
    no_serious_violations(ui).await;

    // Its counts open the email report on that batch's emails.
    let link = format!("table.compare a[href='/reports/emails?batch={WINTER}']");
    ui.submit(&link, "Email report").await;
    let rows =
        ui.c.find_all(Locator::Css("table.report tbody tr"))
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].text().await.unwrap().contains("gus@shop.test"));

    // Each count of spring's opens as many emails as it says, those that ever reached it.
    for stage in ["sent", "delivered", "failed", "opened"] {
        ui.open("/reports/batches?batch=spring").await;
        ui.wait_for("Compare batches").await;
        let link = format!("table.compare a[href='/reports/emails?batch=spring&reached={stage}']");
        let count: usize = ui.text_of(&link).await.parse().unwrap();
        ui.submit(&link, "Email report").await;
        let rows =
            ui.c.find_all(Locator::Css("table.report tbody tr"))
                .await
                .unwrap();
        assert_eq!(rows.len(), count, "spring {stage}");
    }

    // A batch keeps its colour whichever batches it is compared with.
    ui.open(&format!("/reports/batches?batch={WINTER}")).await;
    ui.wait_for("Compare batches").await;
    let alone = fills(ui).await;
    assert_eq!(alone.len(), 1);
    assert!(together.contains(&alone[0]), "{together:?} vs {alone:?}");

    // On a phone, none of these pages scrolls sideways.
    ui.c.set_window_size(390, 844).await.unwrap();
    fits_a_phone(ui, "/leads", "Leads", ".blocked", "blocks-phone-leads").await;
    let ivy_page = format!("/leads/{}", ivy.id);
    fits_a_phone(
        ui,
        &ivy_page,
        "Ivy",
        ".timeline",
        "blocks-phone-lead-not-sent",
    )
    .await;
    let eve_page = format!("/leads/{}", eve_lead.id);
    fits_a_phone(ui, &eve_page, "Eve", ".facts", "blocks-phone-lead-blocked").await;
    let compare = "/reports/batches?batch=spring&batch=autumn&batch=".to_owned() + WINTER;
    fits_a_phone(
        ui,
        &compare,
        "Compare batches",
        "table.compare",
        "blocks-phone-batches",
    )
    .await;
    fits_a_phone(
        ui,
        &compare,
        "Compare batches",
        ".chart",
        "blocks-phone-batches-chart",
    )
    .await;
    ui.c.set_window_size(1366, 900).await.unwrap();
    ui.open(&compare).await;
    ui.wait_for("Compare batches").await;
    ui.shot("blocks-batches-three").await;
    let chart = ui.c.find(Locator::Css("div.chart")).await.unwrap();
    std::fs::write(
        ui.shots.join("blocks-batches-chart.png"),
        chart.screenshot().await.unwrap(),
    )
    .unwrap();
}
