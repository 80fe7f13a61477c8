//! `GET /`: the overview, the first page after sign-in (docs/web-ui.md). For the last 7 and 30
//! days (UTC, today included): sent, delivered, failed, opened, clicked, replied, unsubscribed
//! and complaints, each with its rate and linked to the email report filtered to exactly the
//! emails it counts; the latest failures and complaints; scheduled mail; and a banner while
//! sending protection has paused the account.

use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{Html, Redirect};
use mailtrail_api::AppState;
use mailtrail_domain::Role;
use mailtrail_store::{DayCounts, EmailFilter, EmailRow, Page, Reached, now_ms};
use serde::Deserialize;

use crate::csrf::Posted;
use crate::error::WebError;
use crate::format::{Words, in_words, iso, query, time};
use crate::layout::{Chrome, Section};
use crate::pages::render;
use crate::pages::reports::last_days;
use crate::session::Viewer;

/// The windows shown, in days.
const WINDOWS: [u64; 2] = [7, 30];
/// Items in each short list.
const RECENT: u32 = 5;

/// How a count is named on the overview and in the report's "Ever reached" filter.
pub(crate) fn reached_label(reached: Reached) -> &'static str {
    match reached {
        Reached::Sent => "Sent",
        Reached::Delivered => "Delivered",
        Reached::Failed => "Failed",
        Reached::Opened => "Opened",
        Reached::Clicked => "Clicked",
        Reached::Replied => "Replied",
        Reached::Unsubscribed => "Unsubscribed",
        Reached::Complained => "Complaints",
    }
}

/// What a rate is a share of, said under the table.
fn per(reached: Reached) -> &'static str {
    match reached {
        Reached::Sent => "",
        Reached::Delivered | Reached::Failed => "of sent",
        _ => "of delivered",
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A share as the overview shows it: `12.3 %`, or `n/a`.
fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "n/a".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

/// The email report's address for the emails queued since `from` that reached `reached`.
fn report_href(from: &str, reached: Reached) -> String {
    format!(
        "/reports/emails{}",
        query(&[("from", from), ("reached", reached.as_str())])
    )
}

struct Cell {
    count: String,
    href: String,
    rate: String,
}

struct Line {
    label: &'static str,
    per: &'static str,
    cells: Vec<Cell>,
}

struct Recent {
    href: String,
    to: String,
    lead_href: Option<String>,
    subject: String,
    sent: String,
    sent_iso: String,
    words: Option<Words>,
    status: String,
}

impl Recent {
    fn of(r: EmailRow) -> Recent {
        Recent {
            href: format!("/emails/{}", r.id),
            lead_href: r.lead_id.map(|l| format!("/leads/{l}")),
            sent: time(r.created_at_ms),
            sent_iso: iso(r.created_at_ms),
            words: in_words(r.reason, r.status.as_deref()),
            status: r.status.unwrap_or_default(),
            to: r.to,
            subject: r.subject,
        }
    }
}

/// One of the short lists: its items and a link to all of them in the report.
struct List {
    items: Vec<Recent>,
    all_href: String,
}

struct Upcoming {
    href: String,
    to: String,
    subject: String,
    at: String,
    at_iso: String,
}

struct Pause {
    since: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    pause: Option<Pause>,
    admin: bool,
    windows: Vec<String>,
    lines: Vec<Line>,
    failures: List,
    complaints: List,
    scheduled_count: String,
    scheduled_href: String,
    scheduled: Vec<Upcoming>,
}

/// The 30-day window's latest emails that reached `reached`, and the link to all of them.
async fn recent(
    state: &AppState,
    account_id: &str,
    from: &str,
    reached: Reached,
) -> Result<List, WebError> {
    let filter = EmailFilter {
        from_ms: Some(day_start(from)),
        reached: Some(reached),
        ..EmailFilter::default()
    };
    let rows = state
        .store
        .email_report_page(account_id, &filter, &Page::First, RECENT)
        .await?;
    Ok(List {
        items: rows.into_iter().map(Recent::of).collect(),
        all_href: report_href(from, reached),
    })
}

/// Midnight UTC of a `YYYY-MM-DD` this module made.
fn day_start(date: &str) -> i64 {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map(|d| {
            d.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_millis()
        })
        .unwrap_or_default()
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Html<String>, WebError> {
    let account = viewer.account_id.as_str();
    let mut counts: Vec<(String, DayCounts)> = Vec::new();
    for days in WINDOWS {
        let from = last_days(days);
        let from_day = mailtrail_store::overview::day_of(day_start(&from));
        counts.push((
            from,
            state
                .store
                .day_counts(account, Some(from_day), None)
                .await?,
        ));
    }
    let lines = Reached::ALL
        .into_iter()
        .map(|reached| Line {
            label: reached_label(reached),
            per: per(reached),
            cells: counts
                .iter()
                .map(|(from, c)| Cell {
                    count: thousands(c.count(reached)),
                    href: report_href(from, reached),
                    rate: if reached == Reached::Sent {
                        "—".to_owned()
                    } else {
                        percent(c.rate(reached))
                    },
                })
                .collect(),
        })
        .collect();
    let month = &counts[1].0;
    let failures = recent(&state, account, month, Reached::Failed).await?;
    let complaints = recent(&state, account, month, Reached::Complained).await?;
    let scheduled = state.store.scheduled(account, now_ms(), RECENT).await?;
    let pause = state.store.sending_pause(account).await?;
    let page = OverviewPage {
        chrome: Chrome::new(&viewer, "Overview", Section::Overview, uri.path()),
        pause: pause.map(|p| Pause {
            since: time(p.since_ms),
            reason: p.reason,
        }),
        admin: viewer.role >= Role::Admin,
        windows: WINDOWS.iter().map(|d| format!("Last {d} days")).collect(),
        lines,
        failures,
        complaints,
        scheduled_count: thousands(scheduled.count),
        scheduled_href: "/reports/emails?scheduled=yes".to_owned(),
        scheduled: scheduled
            .next
            .into_iter()
            .map(|s| Upcoming {
                href: format!("/emails/{}", s.id),
                at: time(s.send_at_ms),
                at_iso: iso(s.send_at_ms),
                to: s.to,
                subject: s.subject,
            })
            .collect(),
    };
    render(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped_by_three() {
        for (n, shown) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1_000_000, "1,000,000"),
            (-12345, "-12,345"),
        ] {
            assert_eq!(thousands(n), shown);
        }
    }

    #[test]
    fn rates_read_as_percent_or_na() {
        assert_eq!(percent(Some(0.1234)), "12.3 %");
        assert_eq!(percent(None), "n/a");
    }
}

/// The resume form carries nothing but its CSRF token.
#[derive(Deserialize)]
pub(crate) struct ResumeForm {}

/// `POST /sending/resume` (admins): lifts the account's sending pause, as
/// `POST /v1/sending/resume` does, and wakes the delivery worker for what waited.
pub(crate) async fn resume(
    State(state): State<AppState>,
    posted: Posted<ResumeForm>,
) -> Result<Redirect, WebError> {
    let viewer = posted.viewer;
    viewer.require(Role::Admin, "Sending is resumed by the account's admins.")?;
    match state.store.resume_sending(&viewer.account_id).await {
        Ok(()) => state.queued.notify_one(),
        // Not paused (any more): nothing to lift.
        Err(mailtrail_store::StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Redirect::to("/"))
}
