//! `mailtrail lead import FILE.csv`: reads and checks every row first, then writes them all
//! in one transaction, so a bad file imports nothing (unless `--skip-invalid`).

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mailtrail_domain::{EmailAddress, Permission};
use mailtrail_store::{NewLead, Store};

/// A row that cannot be imported, by its line in the file.
#[derive(Debug, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

/// What each CSV column is for, decided once from the header row.
enum Column {
    Email,
    FirstName,
    LastName,
    Permission,
    Field(String),
}

fn column(header: &str) -> Column {
    let normalised = header.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    match normalised.as_str() {
        "email" | "email_address" | "address" => Column::Email,
        "first_name" | "firstname" => Column::FirstName,
        "last_name" | "lastname" => Column::LastName,
        "permission_to_email" | "permission" => Column::Permission,
        _ => Column::Field(header.trim().to_owned()),
    }
}

/// Parses a CSV of leads: the valid rows, and an error for each invalid one.
pub fn parse(input: impl Read) -> anyhow::Result<(Vec<NewLead>, Vec<RowError>)> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let columns: Vec<Column> = reader
        .headers()
        .context("cannot read the header row")?
        .iter()
        .map(column)
        .collect();
    if !columns.iter().any(|c| matches!(c, Column::Email)) {
        bail!("the header row has no 'email' column");
    }
    let mut leads = Vec::new();
    let mut errors = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or_default();
                errors.push(RowError {
                    line,
                    message: format!("unreadable CSV: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or_default();
        match lead_from_record(&columns, &record) {
            Ok(lead) => leads.push(lead),
            Err(message) => errors.push(RowError { line, message }),
        }
    }
    Ok((leads, errors))
}

fn lead_from_record(columns: &[Column], record: &csv::StringRecord) -> Result<NewLead, String> {
    if record.len() != columns.len() {
        return Err(format!(
            "{} values, but the header names {} columns",
            record.len(),
            columns.len()
        ));
    }
    let mut address = None;
    let (mut first_name, mut last_name) = (None, None);
    let mut fields = std::collections::BTreeMap::new();
    let mut permission = Permission::Yes;
    for (column, value) in columns.iter().zip(record.iter()) {
        let value = value.trim();
        let present = (!value.is_empty()).then(|| value.to_owned());
        match column {
            Column::Email => {
                address =
                    Some(EmailAddress::parse(value).map_err(|e| format!("email '{value}': {e}"))?)
            }
            Column::FirstName => first_name = present,
            Column::LastName => last_name = present,
            Column::Permission if value.is_empty() => {}
            Column::Permission => permission = value.parse()?,
            Column::Field(name) => {
                if let Some(value) = present {
                    fields.insert(name.clone(), value);
                }
            }
        }
    }
    Ok(NewLead {
        address: address.ok_or("no email")?,
        first_name,
        last_name,
        fields,
        permission,
    })
}

/// Errors printed before "and N more".
const SHOWN_ERRORS: usize = 20;

pub async fn run(
    store: &Store,
    file: &Path,
    account: &str,
    skip_invalid: bool,
) -> anyhow::Result<ExitCode> {
    if !store.account_exists(account).await? {
        bail!("no account {account}");
    }
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let (leads, errors) = parse(std::io::BufReader::new(input))?;
    for error in errors.iter().take(SHOWN_ERRORS) {
        eprintln!("{}: line {}: {}", file.display(), error.line, error.message);
    }
    if errors.len() > SHOWN_ERRORS {
        eprintln!("… and {} more invalid lines", errors.len() - SHOWN_ERRORS);
    }
    if !errors.is_empty() && !skip_invalid {
        eprintln!(
            "nothing imported: {} invalid line(s); fix them or pass --skip-invalid",
            errors.len()
        );
        return Ok(ExitCode::FAILURE);
    }

    let bar = ProgressBar::new(leads.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} leads {per_sec} eta {eta}")
            .expect("valid template"),
    );
    let summary = store
        .import_leads(account, &leads, |n| bar.set_position(n as u64))
        .await?;
    bar.finish_and_clear();
    println!(
        "imported {} leads: {} created, {} updated",
        summary.created + summary.updated,
        summary.created,
        summary.updated
    );
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|e| e.line.to_string()).collect();
        println!(
            "skipped {} invalid line(s): {}",
            errors.len(),
            lines.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_columns_and_reports_bad_rows_by_line() {
        let csv = "Email,First Name,last_name,Permission to Email,Company\n\
                   ana@example.com,Ana,Berg,yes,Initech\n\
                   not-an-address,Bo,,,\n\
                   cy@example.com,Cy,,no,\n\
                   dee@example.com,Dee,,perhaps,Acme\n\
                   \"unterminated@example.com,x\n";
        let (leads, errors) = parse(csv.as_bytes()).unwrap();
        assert_eq!(leads.len(), 2);
        assert_eq!(leads[0].address.to_string(), "ana@example.com");
        assert_eq!(leads[0].first_name.as_deref(), Some("Ana"));
        assert_eq!(
            leads[0].fields.get("Company").map(String::as_str),
            Some("Initech")
        );
        assert_eq!(leads[1].permission, Permission::No);
        assert!(leads[1].fields.is_empty());
        let lines: Vec<u64> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 5, 6]);
        assert!(errors[0].message.contains("not-an-address"));
        assert!(errors[1].message.contains("perhaps"));
    }

    #[test]
    fn a_file_without_an_email_column_is_refused() {
        let error = parse("name,phone\nAna,123\n".as_bytes()).unwrap_err();
        assert!(error.to_string().contains("email"));
    }
}
