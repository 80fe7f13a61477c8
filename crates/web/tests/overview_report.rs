//! The overview and the email report without a browser, through the whole router: every
//! overview count links to a report whose total is that count; the report's total, its pages
//! both ways, search by recipient, date presets, "Clear filters", a reversed date range, and
//! the CSV export under the same filters.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{ADMIN, App, USER, app, queue_bulk};
use mailtrail_store::now_ms;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

/// A session cookie for `email`, made in the store (signing in has its own tests).
async fn session(app: &App, email: &str) -> String {
    let user = app.store.web_user(email).await.unwrap().unwrap();
    // Tokens are 64 hex digits, as the service makes them.
    let token = hex::encode(Sha256::digest(format!("session of {email}").as_bytes()));
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    app.store
        .create_web_session(&hash, &user.id, now_ms() + 3_600_000)
        .await
        .unwrap();
    format!("mailtrail_session={token}")
}

async fn get(app: &App, uri: &str, cookie: &str) -> (StatusCode, String) {
    let request = Request::get(uri)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap();
    let response = app.router().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// An attribute's value as the browser reads it.
fn unescape(value: &str) -> String {
    value.replace("&#38;", "&").replace("&amp;", "&")
}

/// Every `<a href="…">TEXT</a>` of a page whose href starts with `prefix`, unescaped.
fn links(body: &str, prefix: &str) -> Vec<(String, String)> {
    let needle = format!("<a href=\"{prefix}");
    body.match_indices(&needle)
        .map(|(at, _)| {
            let rest = &body[at + 9..];
            let href = &rest[..rest.find('"').unwrap()];
            let text = &rest[rest.find('>').unwrap() + 1..rest.find("</a>").unwrap()];
            (unescape(href), text.to_owned())
        })
        .collect()
}

/// The href of the link with `rel`, if the page has one.
fn rel(body: &str, rel: &str) -> Option<String> {
    let end = body.find(&format!("\" rel=\"{rel}\""))?;
    let start = body[..end].rfind("href=\"")? + 6;
    Some(unescape(&body[start..end]))
}

/// The report's "N emails match" as a number.
fn total(body: &str) -> i64 {
    let at = body.find("<p class=\"total\"").expect("a total");
    let rest = &body[at..];
    let shown = &rest[rest.find("<strong>").unwrap() + 8..rest.find(" email").unwrap()];
    shown.replace(',', "").parse().unwrap()
}

/// The recipients of the report's rows, in order.
fn recipients(body: &str) -> Vec<String> {
    body.match_indices("<th scope=\"row\">")
        .map(|(at, _)| {
            let cell = &body[at + 16..];
            let cell = &cell[..cell.find("</th>").unwrap()];
            let text = cell.rfind("\">").map_or(cell, |i| &cell[i + 2..]);
            text.trim_end_matches("</a>").to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_overview_count_links_to_a_report_whose_total_is_that_count() {
    let app = app().await;
    let cookie = session(&app, ADMIN).await;
    let (status, overview) = get(&app, "/", &cookie).await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    let counts: Vec<_> = links(&overview, "/reports/emails?from=")
        .into_iter()
        .filter(|(_, text)| text.replace(',', "").parse::<i64>().is_ok())
        .collect();
    assert_eq!(
        counts.len(),
        16,
        "8 counts for each of 2 windows: {counts:?}"
    );
    let mut nonzero = 0;
    for (href, shown) in &counts {
        let (status, report) = get(&app, href, &cookie).await;
        assert_eq!(status, StatusCode::OK, "{href}");
        let shown: i64 = shown.replace(',', "").parse().unwrap();
        assert_eq!(total(&report), shown, "{href}");
        let rows = recipients(&report).len() as i64;
        assert_eq!(rows, shown.min(50), "{href}: the rows listed");
        nonzero += i64::from(shown > 0);
    }
    assert!(nonzero >= 10, "the seed reaches most stages: {counts:?}");
    assert!(
        overview.contains("eve@shop.test"),
        "eve's bounce is a recent failure"
    );
}

#[tokio::test]
async fn the_report_pages_forward_and_back_and_says_how_many_match() {
    let app = app().await;
    let cookie = session(&app, ADMIN).await;
    queue_bulk(&app, "bulk", 120, None).await;
    let (_, first) = get(&app, "/reports/emails?batch=bulk", &cookie).await;
    assert_eq!(total(&first), 120);
    assert_eq!(recipients(&first).len(), 50);
    assert_eq!(
        rel(&first, "prev"),
        None,
        "the first page has no previous page"
    );
    let (_, second) = get(&app, &rel(&first, "next").unwrap(), &cookie).await;
    let (_, third) = get(&app, &rel(&second, "next").unwrap(), &cookie).await;
    assert_eq!(recipients(&third).len(), 20);
    assert_eq!(rel(&third, "next"), None, "the last page has no next page");
    assert!(third.contains("First page"));
    let (_, back) = get(&app, &rel(&third, "prev").unwrap(), &cookie).await;
    assert_eq!(recipients(&back), recipients(&second));
    let (_, start) = get(&app, &rel(&back, "prev").unwrap(), &cookie).await;
    assert_eq!(recipients(&start), recipients(&first));
    assert_eq!(rel(&start, "prev"), None);
    let mut seen: Vec<String> = [first, second, third]
        .iter()
        .flat_map(|p| recipients(p))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 120, "every email once");
}

#[tokio::test]
async fn a_recipient_is_found_by_the_start_of_the_address_and_links_to_the_lead() {
    let app = app().await;
    let cookie = session(&app, ADMIN).await;
    let (_, found) = get(&app, "/reports/emails?recipient=+CARLA%40", &cookie).await;
    assert_eq!(recipients(&found), ["carla@shop.test", "carla@shop.test"]);
    assert_eq!(total(&found), 2);
    let lead = format!(
        "<a href=\"/leads/{}\">carla@shop.test</a>",
        app.seeded.carla
    );
    assert!(found.contains(&lead), "{found}");
    assert!(
        found.contains("value=\" CARLA@\""),
        "the search is kept as typed"
    );
}

#[tokio::test]
async fn presets_pick_the_last_7_and_30_days_and_an_empty_result_offers_to_clear() {
    let app = app().await;
    let cookie = session(&app, ADMIN).await;
    let (_, page) = get(&app, "/reports/emails?batch=spring", &cookie).await;
    let today = chrono::Utc::now().date_naive();
    for days in [6, 29] {
        let from = (today - chrono::Days::new(days)).format("%Y-%m-%d");
        let preset = format!("/reports/emails?from={from}&batch=spring");
        assert!(
            links(&page, "/reports/emails?from=")
                .iter()
                .any(|(href, _)| *href == preset),
            "{preset} in {page}"
        );
        let (_, within) = get(&app, &preset, &cookie).await;
        assert_eq!(total(&within), 4, "spring went out today");
    }
    assert!(!page.contains("Clear filters"), "not while rows are shown");
    let (status, empty) = get(&app, "/reports/emails?recipient=nobody", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(empty.contains("No emails match."));
    assert!(empty.contains("<a href=\"/reports/emails\">Clear filters</a>"));
    assert_eq!(total(&empty), 0);
}

#[tokio::test]
async fn a_reversed_date_range_is_refused_and_keeps_what_was_typed() {
    let app = app().await;
    let cookie = session(&app, ADMIN).await;
    let (status, page) = get(
        &app,
        "/reports/emails?from=2026-03-10&to=2026-03-01&recipient=carla",
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("Sent until: &#39;2026-03-01&#39; is before &#39;from&#39;")
            || page.contains("Sent until: '2026-03-01' is before 'from'"),
        "{page}"
    );
    for typed in [
        "value=\"2026-03-10\"",
        "value=\"2026-03-01\"",
        "value=\"carla\"",
    ] {
        assert!(page.contains(typed), "{typed} kept");
    }
    assert!(
        recipients(&page).is_empty(),
        "no rows under a refused filter"
    );
    let (status, _) = get(
        &app,
        "/reports/emails.csv?from=2026-03-10&to=2026-03-01",
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the export refuses it too");
    let (status, _) = get(
        &app,
        "/reports/emails?from=2026-03-01&to=2026-03-01",
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "one day is a range");
}

#[tokio::test]
async fn the_csv_export_keeps_the_overview_filters() {
    let app = app().await;
    let cookie = session(&app, ADMIN).await;
    let (status, csv) = get(&app, "/reports/emails.csv?reached=failed", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<_> = csv.lines().skip(1).collect();
    assert_eq!(lines.len(), 1, "{csv}");
    assert!(lines[0].contains("eve@shop.test"));
    let (status, page) = get(&app, "/reports/emails?reached=bounced", &cookie).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("Ever reached: &#39;bounced&#39; is not a count")
            || page.contains("Ever reached: 'bounced' is not a count"),
        "{page}"
    );
}

#[tokio::test]
async fn the_overview_shows_scheduled_mail_and_a_banner_while_sending_is_paused() {
    let app = app().await;
    let cookie = session(&app, ADMIN).await;
    let (_, calm) = get(&app, "/", &cookie).await;
    assert!(!calm.contains("Sending is paused"));
    assert!(calm.contains(">0 scheduled</a>"));

    queue_bulk(&app, "later", 3, Some(now_ms() + 86_400_000)).await;
    app.store
        .pause_sending(
            &app.seeded.acme,
            "complaint rate 0.5 % over the last 24 hours",
        )
        .await
        .unwrap();
    let (_, page) = get(&app, "/", &cookie).await;
    assert!(
        page.contains("<strong>Sending is paused</strong>"),
        "{page}"
    );
    assert!(page.contains("complaint rate 0.5 % over the last 24 hours"));
    assert!(page.contains("<a href=\"/reports/emails?scheduled=yes\">3 scheduled</a>"));
    assert!(page.contains("later0@shop.test"));
    let (_, scheduled) = get(&app, "/reports/emails?scheduled=yes", &cookie).await;
    assert_eq!(total(&scheduled), 3);

    // A user reads the banner but cannot lift it; an admin resumes from the banner itself.
    let user = session(&app, USER).await;
    let (_, seen) = get(&app, "/", &user).await;
    assert!(
        seen.contains("An admin of this account can resume it.")
            && !seen.contains("Resume sending</button>")
    );
    assert_eq!(
        post(&app, "/sending/resume", &user, &csrf(&seen)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&app, "/sending/resume", &cookie, "forged").await,
        StatusCode::FORBIDDEN
    );
    assert!(
        app.store
            .sending_pause(&app.seeded.acme)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        post(&app, "/sending/resume", &cookie, &csrf(&page)).await,
        StatusCode::SEE_OTHER
    );
    assert!(
        app.store
            .sending_pause(&app.seeded.acme)
            .await
            .unwrap()
            .is_none()
    );
    let (_, resumed) = get(&app, "/", &cookie).await;
    assert!(!resumed.contains("Sending is paused"), "{resumed}");
}

/// The page's CSRF token (its first hidden `csrf` field).
fn csrf(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a form with a CSRF token") + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// POSTs a form holding only `csrf`, and answers the status.
async fn post(app: &App, uri: &str, cookie: &str, csrf: &str) -> StatusCode {
    let request = Request::post(uri)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}")))
        .unwrap();
    app.router().oneshot(request).await.unwrap().status()
}
