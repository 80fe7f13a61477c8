//! The reports of docs/web-ui.md: `GET /v1/reports/emails` (one row per email with its Last
//! Action, filtered and paged; `Accept: text/csv` streams every matching row as CSV) and
//! `GET /v1/reports/batches` (per batch, the emails that ever reached each stage, and rates).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, NaiveTime};
use futures_util::stream;
use mailtrail_domain::Stage;
use mailtrail_store::{BatchStats, Cursor, EmailFilter, EmailRow, Store};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Scoped;
use crate::error::{ApiError, KeyedErrors, QueryErrors};
use crate::extract::ApiQuery;
use crate::{AppState, rfc3339};

/// Rows per page when the client does not say, and the most it may ask for.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;
/// Rows read per round trip while streaming CSV.
const CSV_PAGE: u32 = 1000;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EmailReportQuery {
    pub batch: Option<String>,
    /// A stage name: sent, failed, delivered, opened, clicked, replied, unsubscribed.
    pub stage: Option<String>,
    /// Queued at or after: RFC 3339, or a date (from its start, UTC).
    pub from: Option<String>,
    /// Queued before: RFC 3339 (exclusive), or a date (to its end, UTC).
    pub to: Option<String>,
    /// Only emails sent with this tag (`tags` of `POST /v1/emails`).
    pub tag: Option<String>,
    /// Rows per page (50 when absent); CSV has every row.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Operators name the account here (see [`crate::auth`]).
    pub account: Option<String>,
}

/// One email of the report.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailReportRow {
    pub id: String,
    pub lead_id: Option<String>,
    pub to: String,
    pub subject: String,
    pub batch: Option<String>,
    pub sent_at: String,
    pub stage: &'static str,
    pub last_action: &'static str,
    pub reason: Option<&'static str>,
    /// The reply that decided the stage, or `Dropped`.
    pub status: Option<String>,
}

impl From<EmailRow> for EmailReportRow {
    fn from(row: EmailRow) -> Self {
        Self {
            sent_at: rfc3339(row.created_at_ms),
            stage: row.stage.as_str(),
            last_action: row.stage.last_action(),
            reason: row.reason.map(|r| r.as_str()),
            id: row.id,
            lead_id: row.lead_id,
            to: row.to,
            subject: row.subject,
            batch: row.batch,
            status: row.status,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailReport {
    pub emails: Vec<EmailReportRow>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The filters of a report query, checked: every bad parameter is named.
pub fn email_filter(q: &EmailReportQuery) -> Result<(EmailFilter, Option<Cursor>), ApiError> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: String| {
        errors.push(crate::error::FieldError {
            field: field.to_owned(),
            message,
        })
    };
    let stage = match q.stage.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.to_ascii_lowercase().parse::<Stage>() {
            Ok(stage) => Some(stage),
            Err(_) => {
                bad(
                    "stage",
                    format!(
                        "'{s}' is not a stage; use one of sent, failed, delivered, opened, \
                         clicked, replied, unsubscribed"
                    ),
                );
                None
            }
        },
    };
    let mut time = |field: &str, value: Option<&str>, end_of_day: bool| {
        let value = value.filter(|v| !v.is_empty())?;
        match parse_time(value, end_of_day) {
            Some(ms) => Some(ms),
            None => {
                bad(
                    field,
                    format!("'{value}' is neither an RFC 3339 time nor a YYYY-MM-DD date"),
                );
                None
            }
        }
    };
    let from_ms = time("from", q.from.as_deref(), false);
    let to_ms = time("to", q.to.as_deref(), true);
    if let (Some(from), Some(to)) = (from_ms, to_ms)
        && from >= to
    {
        bad(
            "to",
            format!(
                "'{}' is before 'from' ('{}'): the range ends before it starts",
                q.to.as_deref().unwrap_or(""),
                q.from.as_deref().unwrap_or("")
            ),
        );
    }
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let cursor = Cursor::decode(c);
            if cursor.is_none() {
                bad("cursor", "not a cursor this API gave out".into());
            }
            cursor
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let filter = EmailFilter {
        batch: q.batch.clone().filter(|b| !b.is_empty()),
        stage,
        from_ms,
        to_ms,
        tag: q.tag.clone().filter(|t| !t.is_empty()),
        ..EmailFilter::default()
    };
    Ok((filter, cursor))
}

/// Milliseconds since the epoch of an RFC 3339 time, or of a date's first (or, with
/// `end_of_day`, next day's first) millisecond in UTC.
fn parse_time(value: &str, end_of_day: bool) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Some(t.timestamp_millis());
    }
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?;
    let date = if end_of_day { date.succ_opt()? } else { date };
    Some(date.and_time(NaiveTime::MIN).and_utc().timestamp_millis())
}

fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"))
}

#[utoipa::path(
    get,
    path = "/v1/reports/emails",
    operation_id = "email_report",
    tag = "reports",
    params(EmailReportQuery),
    responses(
        (
            status = 200,
            description = "one row per email, newest first; with `Accept: text/csv`, every \
                           matching row as CSV (id,recipient,subject,batch,sent_at,last_action,reason,status)",
            content((EmailReport = "application/json"), (String = "text/csv"))
        ),
        KeyedErrors,
        QueryErrors,
    )
)]
pub async fn emails(
    State(state): State<AppState>,
    scope: Scoped,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EmailReportQuery>,
) -> Result<Response, ApiError> {
    let (filter, cursor) = email_filter(&query)?;
    if wants_csv(&headers) {
        return Ok(csv_response(
            "emails.csv",
            email_csv(state.store, scope.account_id.into(), filter, cursor),
        ));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let rows = state
        .store
        .email_report(&scope.account_id, &filter, cursor.as_ref(), limit)
        .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.cursor().encode()))
        .flatten();
    Ok(Json(EmailReport {
        emails: rows.into_iter().map(EmailReportRow::from).collect(),
        next_cursor,
    })
    .into_response())
}

/// The CSV columns of the email report.
pub const EMAIL_CSV_HEADER: [&str; 8] = [
    "id",
    "recipient",
    "subject",
    "batch",
    "sent_at",
    "last_action",
    "reason",
    "status",
];

/// Every matching email as CSV, read a page at a time as the client takes it, so a report
/// of a million rows never sits in memory.
fn email_csv(
    store: Store,
    account_id: String,
    filter: EmailFilter,
    cursor: Option<Cursor>,
) -> Body {
    let header = csv_line(&EMAIL_CSV_HEADER);
    let pages = stream::unfold(Some(cursor), move |next| {
        let (store, account_id, filter) = (store.clone(), account_id.clone(), filter.clone());
        async move {
            let after = next?;
            let rows = match store
                .email_report(&account_id, &filter, after.as_ref(), CSV_PAGE)
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "CSV export stopped");
                    return Some((Err(std::io::Error::other(e.to_string())), None));
                }
            };
            let following =
                (rows.len() == CSV_PAGE as usize).then(|| rows.last().map(EmailRow::cursor));
            let mut out = Vec::new();
            for row in rows {
                let row = EmailReportRow::from(row);
                out.extend(csv_line(&[
                    &row.id,
                    &row.to,
                    &row.subject,
                    row.batch.as_deref().unwrap_or(""),
                    &row.sent_at,
                    row.last_action,
                    row.reason.unwrap_or(""),
                    row.status.as_deref().unwrap_or(""),
                ]));
            }
            Some((Ok(out), following))
        }
    });
    let header = stream::once(async move { Ok::<_, std::io::Error>(header) });
    Body::from_stream(futures_util::StreamExt::chain(header, pages))
}

/// What a cell may not start with: a spreadsheet runs it as a formula (`=`, `+`, `-`, `@`,
/// their full-width forms, which some spreadsheets fold to them), or skips it to find one
/// (TAB, CR, LF).
const FORMULA_STARTS: [char; 11] = [
    '=', '+', '-', '@', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}', '\t', '\r', '\n',
];

/// One CSV record, quoted where needed: every CSV export (API, web UI, `mailtrail report`)
/// writes its rows with this. A cell that could start a formula ([`FORMULA_STARTS`]) is
/// prefixed with `'`, so an exported subject cannot attack the person who opens the file.
pub fn csv_line(cells: &[&str]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let safe: Vec<String> = cells
        .iter()
        .map(|c| {
            if c.starts_with(FORMULA_STARTS) {
                format!("'{c}")
            } else {
                (*c).to_owned()
            }
        })
        .collect();
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(&safe);
    writer.into_inner().unwrap_or_default()
}

fn csv_response(filename: &str, body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BatchReportQuery {
    /// Comma-separated batch names to compare, in this order; every batch when absent.
    pub batches: Option<String>,
    /// The account an operator key acts on.
    pub account: Option<String>,
}

/// One batch of the batch report.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchRow {
    pub batch: Option<String>,
    pub emails: i64,
    /// Emails not dropped: those Mailtrail tried to send.
    pub sent: i64,
    pub dropped: i64,
    pub delivered: i64,
    pub failed: i64,
    pub deferred: i64,
    pub opened: i64,
    pub clicked: i64,
    pub replied: i64,
    pub auto_replied: i64,
    pub unsubscribed: i64,
    pub complained: i64,
    pub machine_opened: i64,
    pub machine_clicked: i64,
    pub open_tracking: bool,
    pub click_tracking: bool,
    pub first_queued_at: String,
    pub last_queued_at: String,
    /// Fractions from 0 to 1: `delivered` and `failed` per email sent, the rest per email
    /// delivered; `null` means n/a (tracking was off, or nothing to divide by).
    #[schema(value_type = std::collections::BTreeMap<String, Option<f64>>)]
    pub rates: std::collections::BTreeMap<&'static str, Option<f64>>,
}

impl From<BatchStats> for BatchRow {
    fn from(b: BatchStats) -> Self {
        Self {
            rates: b
                .rates()
                .into_iter()
                .map(|(name, rate)| (name, rate.map(|r| (r * 10_000.0).round() / 10_000.0)))
                .collect(),
            sent: b.sent(),
            first_queued_at: rfc3339(b.first_queued_at_ms),
            last_queued_at: rfc3339(b.last_queued_at_ms),
            batch: b.batch,
            emails: b.emails,
            dropped: b.dropped,
            delivered: b.delivered,
            failed: b.failed,
            deferred: b.deferred,
            opened: b.opened,
            clicked: b.clicked,
            replied: b.replied,
            auto_replied: b.auto_replied,
            unsubscribed: b.unsubscribed,
            complained: b.complained,
            machine_opened: b.machine_opened,
            machine_clicked: b.machine_clicked,
            open_tracking: b.open_tracking,
            click_tracking: b.click_tracking,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchReport {
    pub batches: Vec<BatchRow>,
}

/// Splits `a,b,,c` into names, or `None` for "every batch".
pub fn batch_names(list: Option<&str>) -> Option<Vec<String>> {
    let names: Vec<String> = list?
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    (!names.is_empty()).then_some(names)
}

/// The batch report as text for a terminal or CSV file: counts, then rates as percentages,
/// `n/a` where they do not apply.
pub fn batch_csv_rows(stats: &[BatchStats]) -> Vec<Vec<String>> {
    let mut header: Vec<String> = [
        "batch",
        "emails",
        "sent",
        "dropped",
        "delivered",
        "failed",
        "opened",
        "clicked",
        "replied",
        "unsubscribed",
        "complained",
        "machine_opened",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(first) = stats.first() {
        header.extend(first.rates().iter().map(|(name, _)| format!("{name}_rate")));
    }
    let mut rows = vec![header];
    for b in stats {
        let mut row = vec![
            b.batch.clone().unwrap_or_else(|| "(none)".into()),
            b.emails.to_string(),
            b.sent().to_string(),
            b.dropped.to_string(),
            b.delivered.to_string(),
            b.failed.to_string(),
            b.opened.to_string(),
            b.clicked.to_string(),
            b.replied.to_string(),
            b.unsubscribed.to_string(),
            b.complained.to_string(),
            b.machine_opened.to_string(),
        ];
        row.extend(b.rates().iter().map(|(_, rate)| percent(*rate)));
        rows.push(row);
    }
    rows
}

/// A rate as people read it: `42.5%`, or `n/a`.
pub fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "n/a".into(),
    }
}

#[utoipa::path(
    get,
    path = "/v1/reports/batches",
    operation_id = "batch_report",
    tag = "reports",
    params(BatchReportQuery),
    responses(
        (
            status = 200,
            description = "per batch, the emails that ever reached each stage, and rates; with \
                           `Accept: text/csv`, the same as CSV with rates as percentages",
            content((BatchReport = "application/json"), (String = "text/csv"))
        ),
        KeyedErrors,
        QueryErrors,
    )
)]
pub async fn batches(
    State(state): State<AppState>,
    scope: Scoped,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<BatchReportQuery>,
) -> Result<Response, ApiError> {
    let names = batch_names(query.batches.as_deref());
    let stats = state
        .store
        .batch_report(&scope.account_id, names.as_deref())
        .await?;
    if wants_csv(&headers) {
        let body: Vec<u8> = batch_csv_rows(&stats)
            .iter()
            .flat_map(|row| csv_line(&row.iter().map(String::as_str).collect::<Vec<_>>()))
            .collect();
        return Ok(csv_response("batches.csv", Body::from(body)));
    }
    Ok(Json(BatchReport {
        batches: stats.into_iter().map(BatchRow::from).collect(),
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_parse_to_utc_milliseconds() {
        assert_eq!(parse_time("1970-01-02", false), Some(86_400_000));
        assert_eq!(parse_time("1970-01-01", true), Some(86_400_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z", false), Some(1000));
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00", true), Some(0));
        assert_eq!(parse_time("yesterday", false), None);
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        let line = String::from_utf8(csv_line(&["a,b", "=HYPERLINK(\"x\")", "plain"])).unwrap();
        assert_eq!(line, "\"a,b\",\"'=HYPERLINK(\"\"x\"\")\",plain\n");
        for (cell, written) in [
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\u{ff1d}1+1", "'\u{ff1d}1+1"),
            ("\u{ff0b}1", "'\u{ff0b}1"),
            ("\u{ff0d}1", "'\u{ff0d}1"),
            ("\u{ff20}A1", "'\u{ff20}A1"),
            ("\t=1+1", "'\t=1+1"),
            ("\r=1+1", "\"'\r=1+1\""),
            ("\n=1+1", "\"'\n=1+1\""),
            ("a=1", "a=1"),
            ("", "\"\""),
        ] {
            let line = String::from_utf8(csv_line(&[cell])).unwrap();
            assert_eq!(line, format!("{written}\n"), "{cell:?}");
        }
    }
}
