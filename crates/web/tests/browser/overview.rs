//! The overview walk: sign in and land on the overview; follow each of its counts to the email
//! report and find that many emails there; page through the report and back; and on a phone
//! neither page scrolls sideways.

use fantoccini::Locator;

use crate::common::ADMIN;
use crate::{Ui, in_browser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_counts_are_the_reports() {
    in_browser(walk).await;
}

/// The count shown as the report's total.
async fn report_total(ui: &Ui<'_>) -> i64 {
    let shown = ui.text_of("#total strong").await;
    let number = shown.split(' ').next().unwrap().replace(',', "");
    number
        .parse()
        .unwrap_or_else(|_| panic!("a total: {shown}"))
}

/// The recipients of the report's rows, in order.
async fn rows(ui: &Ui<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for cell in
        ui.c.find_all(Locator::Css("table.report tbody th"))
            .await
            .unwrap()
    {
        out.push(cell.text().await.unwrap());
    }
    out
}

async fn fits_a_phone(ui: &Ui<'_>, path: &str, title: &str, shot: &str) {
    ui.open(path).await;
    ui.wait_for(title).await;
    ui.fits_a_phone(path, shot).await;
}

async fn walk(ui: &Ui<'_>) {
    // The overview is the first page after signing in.
    ui.open("/login").await;
    ui.wait_for("Sign in").await;
    ui.fill("#email", ADMIN).await;
    ui.fill("#password", crate::common::PASSWORD).await;
    ui.submit("form[action='/login'] button", "Overview").await;
    ui.c.set_window_size(1366, 900).await.unwrap();
    ui.open("/").await;
    ui.wait_for("Overview").await;
    ui.shot("overview").await;

    // Every count, followed, is the report's total and its number of rows.
    let mut counts = Vec::new();
    for link in
        ui.c.find_all(Locator::Css("table.overview td a"))
            .await
            .unwrap()
    {
        let shown: i64 = link.text().await.unwrap().replace(',', "").parse().unwrap();
        counts.push((link.attr("href").await.unwrap().unwrap(), shown));
    }
    assert_eq!(counts.len(), 16, "{counts:?}");
    assert!(counts.iter().any(|(_, n)| *n > 0), "{counts:?}");
    for (i, (href, shown)) in counts.iter().enumerate() {
        ui.open("/").await;
        ui.wait_for("Overview").await;
        let css = format!("table.overview td a[href='{href}']");
        ui.submit(&css, "Email report").await;
        let total = report_total(ui).await;
        assert_eq!(total, *shown, "count {i} ({href})");
        assert_eq!(rows(ui).await.len() as i64, total.min(50), "{href}");
    }

    // Paging: enough emails for three pages, then forward and back.
    let s = &ui.app.seeded;
    let before = ui.app.store.day_counts(&s.acme, None, None).await.unwrap();
    crate::common::queue_bulk(ui.app, "bulk", 110, None).await;
    ui.open("/reports/emails").await;
    ui.wait_for("Email report").await;
    assert_eq!(report_total(ui).await, before.emails + 110);
    let first = rows(ui).await;
    assert_eq!(first.len(), 50);
    ui.shot("report").await;
    ui.submit("a[rel=next]", "Email report").await;
    let second = rows(ui).await;
    assert_eq!(second.len(), 50);
    ui.submit("a[rel=next]", "Email report").await;
    let third = rows(ui).await;
    assert_eq!(third.len() as i64, before.emails + 110 - 100);
    assert!(
        ui.c.find(Locator::Css("a[rel=next]")).await.is_err(),
        "the last page has no next page"
    );
    ui.submit("a[rel=prev]", "Email report").await;
    assert_eq!(rows(ui).await, second);
    ui.submit("a[rel=prev]", "Email report").await;
    assert_eq!(rows(ui).await, first);
    assert!(ui.c.find(Locator::Css("a[rel=prev]")).await.is_err());

    // Search by recipient, then the recipient's lead.
    ui.fill("#recipient", "carla@").await;
    ui.submit("form.filters button[type=submit]", "Email report")
        .await;
    assert_eq!(rows(ui).await, ["carla@shop.test", "carla@shop.test"]);
    ui.submit("table.report tbody th a", "Carla Mendes").await;

    // A reversed range is refused, with what was typed kept.
    ui.open("/reports/emails?from=2026-03-10&to=2026-03-01")
        .await;
    ui.wait_for("Email report").await;
    let alert = ui.text_of("[role=alert]").await;
    assert!(alert.contains("is before 'from'"), "{alert}");
    let kept = ui.c.find(Locator::Css("#from")).await.unwrap();
    assert_eq!(
        kept.prop("value").await.unwrap().as_deref(),
        Some("2026-03-10")
    );

    ui.c.set_window_size(390, 844).await.unwrap();
    fits_a_phone(ui, "/", "Overview", "phone-overview").await;
    fits_a_phone(ui, "/reports/emails", "Email report", "phone-report").await;
    // Each stacked row starts with where the email stands and why, before its subject.
    let order =
        ui.c.execute(
            "const row = document.querySelector('tbody tr');
             const top = label => row.querySelector(`td[data-label='${label}']`)
                 .getBoundingClientRect().top;
             return [top('Last Action'), top('Reason'), top('Subject')];",
            vec![],
        )
        .await
        .unwrap();
    let tops: Vec<f64> = serde_json::from_value(order).unwrap();
    assert!(
        tops[0] < tops[1] && tops[1] < tops[2],
        "Last Action, then Reason, then Subject on a phone: {tops:?}"
    );
    ui.c.set_window_size(1366, 900).await.unwrap();
}
