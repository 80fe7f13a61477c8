//! `GET /reports/emails`: the email report, one row per email with its Last Action and its
//! recipient linked to the lead, filtered by date range (with 7 and 30 day presets), batch,
//! stage, what the email ever reached (the overview's counts link here), recipient and
//! scheduled mail; its total, and previous and next pages by keyset cursor in both
//! directions. `GET /reports/emails.csv` streams every matching row with the same filters, a
//! page of rows at a time.

use askama::Template;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{Days, Utc};
use futures_util::{StreamExt, stream};
use mailtrail_api::AppState;
use mailtrail_api::error::ApiError;
use mailtrail_api::reports::{EMAIL_CSV_HEADER, EmailReportQuery, csv_line, email_filter};
use mailtrail_domain::Stage;
use mailtrail_store::{Cursor, EmailFilter, EmailRow, Page, Reached, Store};
use serde::Deserialize;

use crate::error::WebError;
use crate::format::{Badge, Words, in_words, iso, query, time};
use crate::layout::{Chrome, Section};
use crate::pages::overview::thousands;
use crate::pages::render;
use crate::session::Viewer;

/// Rows per page on screen, and per round trip while streaming CSV.
const PAGE: u32 = 50;
const CSV_PAGE: u32 = 1000;

/// The report's filters as the form sends them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    batch: String,
    #[serde(default)]
    stage: String,
    /// A [`Reached`]: only emails that ever reached it.
    #[serde(default)]
    reached: String,
    /// The start of a recipient's address.
    #[serde(default)]
    recipient: String,
    /// `yes`: only emails waiting for their send time.
    #[serde(default)]
    scheduled: String,
    /// The page after this row.
    #[serde(default)]
    cursor: String,
    /// The page before this row.
    #[serde(default)]
    before: String,
}

/// What a form field is called on the page, for its error.
fn label(field: &str) -> &str {
    match field {
        "from" => "Sent from",
        "to" => "Sent until",
        "stage" => "Last action",
        "reached" => "Ever reached",
        "cursor" | "before" => "Page",
        other => other,
    }
}

impl Filters {
    /// Checked by the API's own rules and the page's; each bad field comes back as a message.
    fn parse(&self) -> Result<(EmailFilter, Page), Vec<String>> {
        let q = EmailReportQuery {
            batch: Some(self.batch.clone()),
            stage: Some(self.stage.clone()),
            from: Some(self.from.clone()),
            to: Some(self.to.clone()),
            tag: None,
            limit: None,
            cursor: Some(self.cursor.clone()),
            account: None,
        };
        let mut errors = Vec::new();
        let parsed = email_filter(&q).map_err(|e| match e {
            ApiError::Invalid(fields) => fields
                .into_iter()
                .map(|f| format!("{}: {}", label(&f.field), f.message))
                .collect(),
            other => vec![other.to_string()],
        });
        let reached = match self.reached.as_str() {
            "" => None,
            r => r
                .parse::<Reached>()
                .map_err(|e| errors.push(format!("{}: {e}", label("reached"))))
                .ok(),
        };
        let before = match self.before.as_str() {
            "" => None,
            c => {
                let cursor = Cursor::decode(c);
                if cursor.is_none() {
                    errors.push(format!(
                        "{}: not a page this report gave out",
                        label("before")
                    ));
                }
                cursor
            }
        };
        let (mut filter, after) = match parsed {
            Ok(parsed) => parsed,
            Err(mut api) => {
                api.append(&mut errors);
                return Err(api);
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        filter.reached = reached;
        let recipient = self.recipient.trim().to_lowercase();
        filter.recipient = (!recipient.is_empty()).then_some(recipient);
        filter.scheduled = self.scheduled == "yes";
        let page = match (before, after) {
            (Some(before), _) => Page::Before(before),
            (None, Some(after)) => Page::After(after),
            (None, None) => Page::First,
        };
        Ok((filter, page))
    }

    /// The query string of these filters, on the page given by `cursor`/`before` (one at
    /// most; the first page when both are empty).
    fn query(&self, cursor: &str, before: &str) -> String {
        query(&[
            ("from", &self.from),
            ("to", &self.to),
            ("batch", &self.batch),
            ("stage", &self.stage),
            ("reached", &self.reached),
            ("recipient", &self.recipient),
            ("scheduled", &self.scheduled),
            ("cursor", cursor),
            ("before", before),
        ])
    }

    /// These filters over the last `days` days, today (UTC) included: what the overview's
    /// columns count.
    fn preset(&self, days: u64) -> String {
        let from = last_days(days);
        let preset = Filters {
            from,
            to: String::new(),
            batch: self.batch.clone(),
            stage: self.stage.clone(),
            reached: self.reached.clone(),
            recipient: self.recipient.clone(),
            scheduled: self.scheduled.clone(),
            ..Filters::default()
        };
        format!("/reports/emails{}", preset.query("", ""))
    }

    fn any(&self) -> bool {
        [
            &self.from,
            &self.to,
            &self.batch,
            &self.stage,
            &self.reached,
            &self.recipient,
            &self.scheduled,
        ]
        .iter()
        .any(|v| !v.is_empty())
    }
}

/// The first day (`YYYY-MM-DD`, UTC) of the last `days` days, today included.
pub(crate) fn last_days(days: u64) -> String {
    let today = Utc::now().date_naive();
    today
        .checked_sub_days(Days::new(days.saturating_sub(1)))
        .unwrap_or(today)
        .format("%Y-%m-%d")
        .to_string()
}

struct Row {
    href: String,
    to: String,
    lead_href: Option<String>,
    subject: String,
    batch: String,
    sent: String,
    sent_iso: String,
    badge: Badge,
    reason: String,
    words: Option<Words>,
    status: String,
}

impl Row {
    fn of(r: EmailRow) -> Row {
        Row {
            href: format!("/emails/{}", r.id),
            lead_href: r.lead_id.map(|l| format!("/leads/{l}")),
            badge: Badge::new(r.stage.as_str(), r.stage.last_action()),
            sent: time(r.created_at_ms),
            sent_iso: iso(r.created_at_ms),
            words: in_words(r.reason, r.status.as_deref()),
            reason: r.reason.map(|x| x.as_str().to_owned()).unwrap_or_default(),
            status: r.status.unwrap_or_default(),
            batch: r.batch.unwrap_or_default(),
            to: r.to,
            subject: r.subject,
        }
    }
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    chrome: Chrome,
    from: String,
    to: String,
    recipient: String,
    scheduled: bool,
    batches: Vec<Choice>,
    stages: Vec<Choice>,
    reached: Vec<Choice>,
    errors: Vec<String>,
    /// "1,234 emails"; `None` when the filters cannot be used.
    total: Option<String>,
    rows: Vec<Row>,
    csv_href: String,
    last_7: String,
    last_30: String,
    /// Shown on an empty result when any filter is set.
    clear: bool,
    first_page: Option<String>,
    previous: Option<String>,
    next: Option<String>,
}

/// A page of rows and whether there are newer and older ones.
struct Window {
    rows: Vec<EmailRow>,
    newer: bool,
    older: bool,
}

/// Reads the page asked for, one row more than shown to know whether another page follows.
/// A previous page that would be short is the first page instead, so it is always full.
async fn window(
    store: &Store,
    account_id: &str,
    filter: &EmailFilter,
    page: &Page,
) -> Result<Window, WebError> {
    let mut rows = store
        .email_report_page(account_id, filter, page, PAGE + 1)
        .await?;
    let full = rows.len() > PAGE as usize;
    Ok(match page {
        Page::Before(_) if full => {
            rows.remove(0);
            Window {
                rows,
                newer: true,
                older: true,
            }
        }
        Page::Before(_) => Box::pin(window(store, account_id, filter, &Page::First)).await?,
        Page::First | Page::After(_) => {
            rows.truncate(PAGE as usize);
            Window {
                rows,
                newer: matches!(page, Page::After(_)),
                older: full,
            }
        }
    })
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Query(filters): Query<Filters>,
) -> Result<Response, WebError> {
    let parsed = filters.parse();
    let (window, total, errors) = match &parsed {
        Ok((filter, page)) => {
            let window = window(&state.store, &viewer.account_id, filter, page).await?;
            let total = state
                .store
                .email_report_total(&viewer.account_id, filter)
                .await?;
            (window, Some(total), Vec::new())
        }
        Err(errors) => (
            Window {
                rows: Vec::new(),
                newer: false,
                older: false,
            },
            None,
            errors.clone(),
        ),
    };
    let link =
        |cursor: &str, before: &str| format!("/reports/emails{}", filters.query(cursor, before));
    let next = window
        .older
        .then(|| window.rows.last())
        .flatten()
        .map(|last| link(&last.cursor().encode(), ""));
    let previous = window
        .newer
        .then(|| window.rows.first())
        .flatten()
        .map(|first| link("", &first.cursor().encode()));
    let batches = state.store.batch_report(&viewer.account_id, None).await?;
    let page = ReportPage {
        chrome: Chrome::new(&viewer, "Email report", Section::EmailReport, uri.path()),
        batches: batches
            .into_iter()
            .filter_map(|b| b.batch)
            .map(|name| Choice {
                selected: name == filters.batch,
                label: name.clone(),
                value: name,
            })
            .collect(),
        stages: Stage::ALL
            .iter()
            .map(|s| Choice {
                value: s.as_str().to_owned(),
                label: s.last_action().to_owned(),
                selected: s.as_str() == filters.stage,
            })
            .collect(),
        reached: Reached::ALL
            .iter()
            .map(|r| Choice {
                value: r.as_str().to_owned(),
                label: crate::pages::overview::reached_label(*r).to_owned(),
                selected: r.as_str() == filters.reached,
            })
            .collect(),
        errors,
        total: total.map(|t| match (t.count, t.more) {
            (n, true) => format!("More than {} emails", thousands(n)),
            (1, false) => "1 email".to_owned(),
            (n, false) => format!("{} emails", thousands(n)),
        }),
        clear: window.rows.is_empty() && filters.any(),
        rows: window.rows.into_iter().map(Row::of).collect(),
        csv_href: format!("/reports/emails.csv{}", filters.query("", "")),
        last_7: filters.preset(7),
        last_30: filters.preset(30),
        first_page: (window.newer).then(|| link("", "")),
        previous,
        next,
        scheduled: filters.scheduled == "yes",
        recipient: filters.recipient,
        from: filters.from,
        to: filters.to,
    };
    let status = if parsed.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, render(&page)?).into_response())
}

/// One email as a CSV record, in the columns of [`EMAIL_CSV_HEADER`].
fn csv_row(row: &EmailRow) -> Vec<u8> {
    csv_line(&[
        &row.id,
        &row.to,
        &row.subject,
        row.batch.as_deref().unwrap_or(""),
        &iso(row.created_at_ms),
        row.stage.last_action(),
        row.reason.map_or("", |r| r.as_str()),
        row.status.as_deref().unwrap_or(""),
    ])
}

pub(crate) async fn csv(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> Result<Response, WebError> {
    // The export is every matching row, whichever page the link was on.
    let (filter, _page) = filters
        .parse()
        .map_err(|errors| WebError::BadRequest(errors.join("; ")))?;
    let body = Body::from_stream(email_csv(
        state.store,
        viewer.account_id.into(),
        filter,
        None,
    ));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"emails.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// The header, then every matching row, read [`CSV_PAGE`] rows at a time as the client takes
/// them: a report of a million rows never sits in memory.
fn email_csv(
    store: Store,
    account_id: String,
    filter: EmailFilter,
    cursor: Option<Cursor>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let header = stream::once(async { Ok(csv_line(&EMAIL_CSV_HEADER)) });
    let pages = stream::unfold(Some(cursor), move |next| {
        let (store, account_id, filter) = (store.clone(), account_id.clone(), filter.clone());
        async move {
            let after = next?;
            match store
                .email_report(&account_id, &filter, after.as_ref(), CSV_PAGE)
                .await
            {
                Ok(rows) => {
                    let following = (rows.len() == CSV_PAGE as usize)
                        .then(|| rows.last().map(EmailRow::cursor));
                    Some((Ok(rows.iter().flat_map(csv_row).collect()), following))
                }
                Err(e) => {
                    tracing::error!(error = %e, "CSV export stopped");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    header.chain(pages)
}
