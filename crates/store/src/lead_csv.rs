//! Leads from a CSV file, the one reader behind `mailtrail lead import` and the web UI's
//! import: a header row with an `email` column (`first_name`, `last_name` and
//! `permission_to_email` recognised, case and spaces aside; every other column a custom
//! field), then one lead per row. The whole file is read before anything is written, so a
//! caller can refuse it whole when a row is bad ([`Store::import_leads`] then writes all or
//! nothing).
//!
//! Values come from outside and end up in pages, merge fields and exported reports: a cell a
//! spreadsheet would run as a formula (`=cmd|' /C calc'!A0`, `@SUM(…)`, `+cmd…`) is refused
//! with its line, as is a header that would.
//!
//! [`Store::import_leads`]: crate::Store::import_leads

use std::collections::BTreeMap;
use std::io::Read;

use mailtrail_domain::{EmailAddress, Permission};

use crate::NewLead;

/// A row that cannot be imported, by its line in the file (from 1, the header's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

/// The file read: every valid row's lead, and an error for each invalid row.
#[derive(Debug)]
pub struct Parsed {
    pub leads: Vec<NewLead>,
    pub errors: Vec<RowError>,
}

/// Why a file cannot be read at all: its header row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("cannot read the header row: {0}")]
    Unreadable(String),
    #[error("the file is empty: the first line names the columns, one of them email")]
    Empty,
    #[error("the header row has no 'email' column")]
    NoEmail,
    #[error("column {0} of the header row has no name")]
    Unnamed(usize),
    #[error("the header row names '{name}' twice (columns {first} and {second})")]
    Repeated {
        name: String,
        first: usize,
        second: usize,
    },
    #[error("column {column} of the header row, '{name}', {why}")]
    Formula {
        column: usize,
        name: String,
        why: String,
    },
}

/// What each column is for, decided once from the header row.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Why a spreadsheet would run `value` as a formula, if it would: it starts with `=` or `@`
/// (or a tab or carriage return, which hide such a start), or with `+` or `-` followed by
/// more than a number or phone number is made of, so `+1 (555) 010-0199` and `-5` stay
/// values.
pub fn formula(value: &str) -> Option<String> {
    let mut chars = value.chars();
    let first = chars.next()?;
    let rest = chars.as_str();
    let runs = match first {
        '=' | '@' => true,
        '\t' | '\r' => return Some("starts with a control character".to_owned()),
        '+' | '-' => !rest
            .chars()
            .all(|c| c.is_ascii_digit() || " ()-./+".contains(c)),
        _ => false,
    };
    runs.then(|| {
        format!(
            "starts with '{first}', which a spreadsheet runs as a formula; remove the '{first}' \
             (or start the value with an apostrophe)"
        )
    })
}

/// The header's columns, or why they cannot be imported.
fn columns(header: &csv::StringRecord) -> Result<Vec<Column>, FileError> {
    let mut columns: Vec<Column> = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        let number = i + 1;
        let name = name.trim();
        if name.is_empty() {
            return Err(FileError::Unnamed(number));
        }
        if let Some(why) = formula(name) {
            return Err(FileError::Formula {
                column: number,
                name: name.to_owned(),
                why,
            });
        }
        let this = column(name);
        if let Some(first) = columns.iter().position(|c| *c == this) {
            return Err(FileError::Repeated {
                name: name.to_owned(),
                first: first + 1,
                second: number,
            });
        }
        columns.push(this);
    }
    if !columns.contains(&Column::Email) {
        return Err(FileError::NoEmail);
    }
    Ok(columns)
}

/// Reads a CSV of leads: the valid rows, and an error for each invalid one.
pub fn parse(input: impl Read) -> Result<Parsed, FileError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| FileError::Unreadable(e.to_string()))?
        .clone();
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(FileError::Empty);
    }
    let columns = columns(&header)?;
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
    Ok(Parsed { leads, errors })
}

/// The column's name in an error message.
fn label(column: &Column) -> &str {
    match column {
        Column::Email => "email",
        Column::FirstName => "first_name",
        Column::LastName => "last_name",
        Column::Permission => "permission_to_email",
        Column::Field(name) => name,
    }
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
    let mut fields = BTreeMap::new();
    let mut permission = Permission::Yes;
    for (column, value) in columns.iter().zip(record.iter()) {
        let value = value.trim();
        if let Some(why) = formula(value) {
            return Err(format!("{} '{value}' {why}", label(column)));
        }
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
        let Parsed { leads, errors } = parse(csv.as_bytes()).unwrap();
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
    fn a_header_that_cannot_be_imported_is_refused_whole() {
        for (csv, error) in [
            ("name,phone\nAna,123\n", FileError::NoEmail),
            ("", FileError::Empty),
            ("email,,company\n", FileError::Unnamed(2)),
            (
                "email,Email Address\n",
                FileError::Repeated {
                    name: "Email Address".into(),
                    first: 1,
                    second: 2,
                },
            ),
            (
                "email,company,Company, company \n",
                FileError::Repeated {
                    name: "company".into(),
                    first: 2,
                    second: 4,
                },
            ),
        ] {
            assert_eq!(parse(csv.as_bytes()).unwrap_err(), error, "{csv:?}");
        }
        let formula = parse("email,=HYPERLINK(\"x\")\n".as_bytes()).unwrap_err();
        assert!(
            matches!(formula, FileError::Formula { column: 2, .. }),
            "{formula:?}"
        );
    }

    #[test]
    fn cells_a_spreadsheet_would_run_are_refused_and_phone_numbers_are_not() {
        for value in [
            "=cmd|' /C calc'!A0",
            "@SUM(A1:A9)",
            "+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0",
            "=1+1",
        ] {
            assert!(formula(value).is_some(), "{value:?}");
        }
        for value in [
            "+1 (555) 010-0199",
            "-5",
            "-",
            "+44 20 7946 0958",
            "Ana",
            "",
        ] {
            assert_eq!(formula(value), None, "{value:?}");
        }
        let csv = "email,first_name,phone\n\
                   ana@example.com,Ana,+1 555 0100\n\
                   bo@example.com,=cmd|' /C calc'!A0,\n\
                   =x@example.com,Cy,\n";
        let Parsed { leads, errors } = parse(csv.as_bytes()).unwrap();
        assert_eq!(leads.len(), 1);
        assert_eq!(leads[0].fields["phone"], "+1 555 0100");
        assert_eq!(errors.len(), 2);
        assert_eq!((errors[0].line, errors[1].line), (3, 4));
        assert!(
            errors[0]
                .message
                .starts_with("first_name '=cmd|' /C calc'!A0' starts with '='"),
            "{}",
            errors[0].message
        );
        assert!(errors[1].message.starts_with("email '=x@example.com'"));
    }
}
