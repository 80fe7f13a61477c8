//! `mailtrail report emails|batches`: the reports of docs/web-ui.md in the terminal, as
//! aligned tables, or as the same CSV the API exports.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use mailtrail_api::reports::{
    EMAIL_CSV_HEADER, EmailReportQuery, batch_csv_rows, batch_names, csv_line, email_filter,
};
use mailtrail_store::{EmailRow, Store};

/// Rows read per round trip when printing CSV.
const CSV_PAGE: u32 = 1000;

pub struct EmailsArgs {
    pub batch: Option<String>,
    pub stage: Option<String>,
    pub limit: u32,
    pub csv: bool,
}

pub async fn emails(store: &Store, account: &str, args: EmailsArgs) -> anyhow::Result<ExitCode> {
    ensure_account(store, account).await?;
    let query = EmailReportQuery {
        batch: args.batch,
        stage: args.stage,
        ..EmailReportQuery::default()
    };
    let (filter, _) = email_filter(&query).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    if args.csv {
        out.write_all(&csv_line(&EMAIL_CSV_HEADER))?;
        let mut after = None;
        loop {
            let rows = store
                .email_report(account, &filter, after.as_ref(), CSV_PAGE)
                .await?;
            for row in &rows {
                out.write_all(&csv_line(&email_cells(row).each_ref().map(String::as_str)))?;
            }
            match rows.last() {
                Some(last) if rows.len() == CSV_PAGE as usize => after = Some(last.cursor()),
                _ => break,
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows = store
        .email_report(account, &filter, None, args.limit)
        .await?;
    let mut table = vec![
        [
            "recipient",
            "subject",
            "batch",
            "sent",
            "Last Action",
            "reason",
            "status",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    table.extend(rows.iter().map(|row| {
        let [_, to, subject, batch, sent, action, reason, status] = email_cells(row);
        vec![
            to,
            shorten(&subject, 40),
            batch,
            sent,
            action,
            reason,
            shorten(&status, 60),
        ]
    }));
    write!(out, "{}", render_table(&table))?;
    writeln!(out, "{} email(s) shown", rows.len())?;
    Ok(ExitCode::SUCCESS)
}

pub async fn batches(
    store: &Store,
    account: &str,
    names: Option<&str>,
    csv: bool,
) -> anyhow::Result<ExitCode> {
    ensure_account(store, account).await?;
    let names = batch_names(names);
    let stats = store.batch_report(account, names.as_deref()).await?;
    let rows = batch_csv_rows(&stats);
    let mut out = std::io::stdout().lock();
    if csv {
        for row in &rows {
            out.write_all(&csv_line(
                &row.iter().map(String::as_str).collect::<Vec<_>>(),
            ))?;
        }
    } else {
        write!(out, "{}", batch_table(&rows))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The batch report turned sideways: one column per batch, so batches compare side by side
/// however many counts there are.
pub fn batch_table(rows: &[Vec<String>]) -> String {
    let Some(header) = rows.first() else {
        return String::new();
    };
    let table: Vec<Vec<String>> = (0..header.len())
        .map(|i| rows.iter().map(|row| row[i].clone()).collect())
        .collect();
    render_table(&table)
}

async fn ensure_account(store: &Store, account: &str) -> anyhow::Result<()> {
    if !store
        .account_exists(account)
        .await
        .context("cannot read the accounts")?
    {
        bail!("there is no account {account}");
    }
    Ok(())
}

/// The CSV cells of one email, in [`EMAIL_CSV_HEADER`] order.
fn email_cells(row: &EmailRow) -> [String; 8] {
    [
        row.id.clone(),
        row.to.clone(),
        row.subject.clone(),
        row.batch.clone().unwrap_or_default(),
        chrono::DateTime::from_timestamp_millis(row.created_at_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default(),
        row.stage.last_action().to_owned(),
        row.reason
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
        row.status.clone().unwrap_or_default(),
    ]
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max - 1).collect();
    short.push('…');
    short
}

/// Left-aligned columns separated by two spaces, with a rule under the first row.
pub fn render_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_batches_turn_sideways() {
        let rows = vec![
            vec!["batch".to_owned(), "sent".to_owned()],
            vec!["spring".to_owned(), "120".to_owned()],
        ];
        assert_eq!(
            batch_table(&rows),
            "batch  spring\n-----  ------\nsent   120\n"
        );
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
