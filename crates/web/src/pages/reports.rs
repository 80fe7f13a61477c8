//! `GET /reports/emails`: the email report, one row per email with its Last Action, filtered
//! by date range, batch and stage and paged by keyset cursor; `GET /reports/emails.csv`
//! streams every matching row with the same filters, a page of rows at a time.

use askama::Template;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};
use mailtrail_api::AppState;
use mailtrail_api::error::ApiError;
use mailtrail_api::reports::{EMAIL_CSV_HEADER, EmailReportQuery, csv_line, email_filter};
use mailtrail_domain::Stage;
use mailtrail_store::{Cursor, EmailFilter, EmailRow, Store};
use serde::Deserialize;

use crate::error::WebError;
use crate::format::{Badge, Words, in_words, iso, query, time};
use crate::layout::{Chrome, Section};
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
    #[serde(default)]
    cursor: String,
}

impl Filters {
    /// Checked by the API's own rules; each bad field comes back as a message.
    fn parse(&self) -> Result<(EmailFilter, Option<Cursor>), Vec<String>> {
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
        email_filter(&q).map_err(|e| match e {
            ApiError::Invalid(fields) => fields
                .into_iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect(),
            other => vec![other.to_string()],
        })
    }

    /// The query string of these filters, from `cursor` (the first page when empty).
    fn query(&self, cursor: &str) -> String {
        query(&[
            ("from", &self.from),
            ("to", &self.to),
            ("batch", &self.batch),
            ("stage", &self.stage),
            ("cursor", cursor),
        ])
    }
}

struct Row {
    href: String,
    to: String,
    subject: String,
    batch: String,
    sent: String,
    sent_iso: String,
    badge: Badge,
    reason: String,
    words: Option<Words>,
    status: String,
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
    batches: Vec<Choice>,
    stages: Vec<Choice>,
    errors: Vec<String>,
    rows: Vec<Row>,
    csv_href: String,
    next: Option<String>,
    first_page: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Query(filters): Query<Filters>,
) -> Result<Response, WebError> {
    let parsed = filters.parse();
    let (rows, errors) = match &parsed {
        Ok((filter, cursor)) => {
            let rows = state
                .store
                .email_report(&viewer.account_id, filter, cursor.as_ref(), PAGE)
                .await?;
            (rows, Vec::new())
        }
        Err(errors) => (Vec::new(), errors.clone()),
    };
    let next = (rows.len() == PAGE as usize)
        .then(|| rows.last())
        .flatten()
        .map(|last| format!("/reports/emails{}", filters.query(&last.cursor().encode())));
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
        errors,
        rows: rows
            .into_iter()
            .map(|r| Row {
                href: format!("/emails/{}", r.id),
                badge: Badge::new(r.stage.as_str(), r.stage.last_action()),
                sent: time(r.created_at_ms),
                sent_iso: iso(r.created_at_ms),
                words: in_words(r.reason, r.status.as_deref()),
                reason: r.reason.map(|x| x.as_str().to_owned()).unwrap_or_default(),
                status: r.status.unwrap_or_default(),
                batch: r.batch.unwrap_or_default(),
                to: r.to,
                subject: r.subject,
            })
            .collect(),
        csv_href: format!("/reports/emails.csv{}", filters.query("")),
        first_page: (!filters.cursor.is_empty())
            .then(|| format!("/reports/emails{}", filters.query(""))),
        next,
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
    let (filter, cursor) = filters
        .parse()
        .map_err(|errors| WebError::BadRequest(errors.join("; ")))?;
    let body = Body::from_stream(email_csv(state.store, viewer.account_id, filter, cursor));
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
