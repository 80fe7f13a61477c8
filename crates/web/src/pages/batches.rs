//! `GET /reports/batches`: pick batches (checkboxes in a GET form) and compare them side by
//! side — recipients targeted and refused ("Not sent"), counts of emails that ever reached
//! each stage and the rates, as a table (the API's own rows, turned so batches are columns;
//! each count links to those emails in the email report) and as a chart.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Html;
use mailtrail_api::AppState;
use mailtrail_api::reports::batch_csv_rows;
use mailtrail_store::{BatchRefusals, BatchStats};

use crate::chart::{self, Chart, batch_label};
use crate::error::WebError;
use crate::format::query;
use crate::layout::{Chrome, Section};
use crate::pages::render;
use crate::session::Viewer;

/// Batches compared when none is chosen: the most recent ones.
const DEFAULT_COUNT: usize = 3;

struct Choice {
    value: String,
    label: String,
    checked: bool,
}

/// One line of the comparison table: a count or a rate, per batch.
struct Metric {
    label: String,
    rate: bool,
    values: Vec<Cell>,
}

/// A value of the table, linked to the emails it counts when the email report can list them.
struct Cell {
    text: String,
    href: Option<String>,
}

impl Cell {
    fn plain(text: String) -> Cell {
        Cell { text, href: None }
    }
}

/// The email report's filter listing what a column of [`batch_csv_rows`] counts: `Some("")`
/// for every email of the batch, `Some(stage)` for those that ever reached it.
fn reached_filter(column: &str) -> Option<&'static str> {
    Some(match column {
        "emails" => "",
        "sent" => "sent",
        "delivered" => "delivered",
        "failed" => "failed",
        "opened" => "opened",
        "clicked" => "clicked",
        "replied" => "replied",
        "unsubscribed" => "unsubscribed",
        "complained" => "complained",
        _ => return None,
    })
}

/// The email report's link for a count of a batch; none for emails without a batch, which
/// the report cannot single out.
fn report_href(stats: &BatchStats, column: &str) -> Option<String> {
    let batch = stats.batch.as_deref()?;
    let reached = reached_filter(column)?;
    Some(format!(
        "/reports/emails{}",
        query(&[("batch", batch), ("reached", reached)])
    ))
}

/// The batch report with the batches whose every recipient was refused: they have no email,
/// so no counts, but they were targeted. Newest first, as the report is.
fn with_refused_only(
    mut report: Vec<BatchStats>,
    refusals: &BTreeMap<Option<String>, BatchRefusals>,
) -> Vec<BatchStats> {
    for (batch, counted) in refusals {
        if !report.iter().any(|b| &b.batch == batch) {
            report.push(BatchStats {
                batch: batch.clone(),
                emails: 0,
                delivered: 0,
                failed: 0,
                dropped: 0,
                deferred: 0,
                opened: 0,
                clicked: 0,
                replied: 0,
                auto_replied: 0,
                unsubscribed: 0,
                complained: 0,
                machine_opened: 0,
                machine_clicked: 0,
                open_tracking: false,
                click_tracking: false,
                first_queued_at_ms: counted.last_at_ms,
                last_queued_at_ms: counted.last_at_ms,
            });
        }
    }
    report.sort_by_key(|b| std::cmp::Reverse(b.last_queued_at_ms));
    report
}

/// The two lines before the API's: every recipient the requests named, and those refused.
fn targeted_lines(stats: &[BatchStats], refused: &[i64]) -> [Metric; 2] {
    [
        Metric {
            label: "Recipients targeted".into(),
            rate: false,
            values: stats
                .iter()
                .zip(refused)
                .map(|(b, n)| Cell::plain((b.emails + n).to_string()))
                .collect(),
        },
        Metric {
            label: "Not sent (refused)".into(),
            rate: false,
            values: refused.iter().map(|n| Cell::plain(n.to_string())).collect(),
        },
    ]
}

#[derive(Template)]
#[template(path = "batches.html")]
struct BatchesPage {
    chrome: Chrome,
    choices: Vec<Choice>,
    columns: Vec<String>,
    metrics: Vec<Metric>,
    chart: Chart,
}

/// `machine_opened_rate` → `Machine opened rate`.
fn metric_label(column: &str) -> String {
    let words = column.replace('_', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
) -> Result<Html<String>, WebError> {
    // Checkboxes repeat their name (`batch=a&batch=b`); `""` stands for emails without one.
    let asked: Vec<String> = uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .filter(|(name, _)| name == "batch")
                .map(|(_, value)| value.into_owned())
                .collect()
        })
        .unwrap_or_default();
    let refusals = state.store.refusals_by_batch(&viewer.account_id).await?;
    let all = with_refused_only(
        state.store.batch_report(&viewer.account_id, None).await?,
        &refusals,
    );
    let chosen: Vec<String> = if asked.is_empty() {
        all.iter()
            .take(DEFAULT_COUNT)
            .map(|b| b.batch.clone().unwrap_or_default())
            .collect()
    } else {
        asked
    };
    let stats: Vec<_> = all
        .iter()
        .filter(|b| chosen.contains(&b.batch.clone().unwrap_or_default()))
        .cloned()
        .collect();
    let refused: Vec<i64> = stats
        .iter()
        .map(|b| refusals.get(&b.batch).map_or(0, |r| r.refused))
        .collect();
    let rows = batch_csv_rows(&stats);
    let (header, batches) = rows
        .split_first()
        .map_or((&[][..], &[][..]), |(h, b)| (h, b));
    let counted = header.iter().enumerate().skip(1).map(|(i, column)| Metric {
        label: metric_label(column),
        rate: column.ends_with("_rate"),
        values: batches
            .iter()
            .zip(&stats)
            .map(|(row, b)| {
                let text = row.get(i).cloned().unwrap_or_default();
                Cell {
                    // Nothing to list behind a zero.
                    href: (text != "0").then(|| report_href(b, column)).flatten(),
                    text,
                }
            })
            .collect(),
    });
    let page = BatchesPage {
        chrome: Chrome::new(&viewer, "Compare batches", Section::Batches, uri.path()),
        choices: all
            .iter()
            .map(|b| {
                let value = b.batch.clone().unwrap_or_default();
                Choice {
                    checked: chosen.contains(&value),
                    label: batch_label(b),
                    value,
                }
            })
            .collect(),
        columns: stats.iter().map(batch_label).collect(),
        metrics: targeted_lines(&stats, &refused)
            .into_iter()
            .chain(counted)
            .collect(),
        chart: chart::rates(&stats),
    };
    render(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_link_to_the_emails_of_their_batch_that_reached_the_stage() {
        let mut stats = crate::chart::tests::batch("spring & co", 8, 4, true);
        assert_eq!(
            report_href(&stats, "delivered").as_deref(),
            Some("/reports/emails?batch=spring+%26+co&reached=delivered")
        );
        assert_eq!(
            report_href(&stats, "emails").as_deref(),
            Some("/reports/emails?batch=spring+%26+co")
        );
        assert_eq!(
            report_href(&stats, "opened_rate"),
            None,
            "a rate is no list"
        );
        assert_eq!(report_href(&stats, "machine_opened"), None);
        stats.batch = None;
        assert_eq!(report_href(&stats, "delivered"), None);
    }

    #[test]
    fn targeted_is_every_email_and_every_refusal() {
        let stats = [crate::chart::tests::batch("spring", 8, 4, true)];
        let [targeted, refused] = targeted_lines(&stats, &[1]);
        assert_eq!(targeted.values[0].text, "11", "10 emails and 1 refused");
        assert_eq!(refused.values[0].text, "1");
    }

    #[test]
    fn a_batch_whose_every_recipient_was_refused_is_listed_in_its_place() {
        let mut older = crate::chart::tests::batch("spring", 8, 4, true);
        older.last_queued_at_ms = 100;
        let mut newer = crate::chart::tests::batch("autumn", 8, 4, true);
        newer.last_queued_at_ms = 300;
        let refusals = BTreeMap::from([
            (
                Some("spring".to_owned()),
                BatchRefusals {
                    refused: 1,
                    last_at_ms: 90,
                },
            ),
            (
                Some("winter".to_owned()),
                BatchRefusals {
                    refused: 17,
                    last_at_ms: 200,
                },
            ),
        ]);
        let listed = with_refused_only(vec![newer, older], &refusals);
        let names: Vec<_> = listed.iter().map(|b| b.batch.as_deref().unwrap()).collect();
        assert_eq!(names, ["autumn", "winter", "spring"]);
        let [targeted, refused] = targeted_lines(&listed[1..2], &[17]);
        assert_eq!(
            (
                targeted.values[0].text.as_str(),
                refused.values[0].text.as_str()
            ),
            ("17", "17")
        );
        assert!(
            listed[1].rates().iter().all(|(_, rate)| rate.is_none()),
            "no rate without emails"
        );
    }

    #[test]
    fn column_names_read_as_words() {
        assert_eq!(metric_label("machine_opened_rate"), "Machine opened rate");
        assert_eq!(metric_label("emails"), "Emails");
        assert_eq!(metric_label(""), "");
    }
}
