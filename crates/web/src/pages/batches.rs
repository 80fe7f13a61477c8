//! `GET /reports/batches`: pick batches (checkboxes in a GET form) and compare them side by
//! side — counts of emails that ever reached each stage and the rates, as a table (the API's
//! own rows, turned so batches are columns) and as a chart.

use askama::Template;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Html;
use mailtrail_api::AppState;
use mailtrail_api::reports::batch_csv_rows;

use crate::chart::{self, Chart, batch_label};
use crate::error::WebError;
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
    values: Vec<String>,
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
    let all = state.store.batch_report(&viewer.account_id, None).await?;
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
    let rows = batch_csv_rows(&stats);
    let (header, batches) = rows
        .split_first()
        .map_or((&[][..], &[][..]), |(h, b)| (h, b));
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
        metrics: header
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, column)| Metric {
                label: metric_label(column),
                rate: column.ends_with("_rate"),
                values: batches
                    .iter()
                    .map(|row| row.get(i).cloned().unwrap_or_default())
                    .collect(),
            })
            .collect(),
        chart: chart::rates(&stats),
    };
    render(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_read_as_words() {
        assert_eq!(metric_label("machine_opened_rate"), "Machine opened rate");
        assert_eq!(metric_label("emails"), "Emails");
        assert_eq!(metric_label(""), "");
    }
}
