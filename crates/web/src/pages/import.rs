//! `GET/POST /leads/import`: leads from a CSV file, uploaded (multipart) or pasted. The file
//! is read by `mailtrail_store::lead_csv`, the reader `mailtrail lead import` uses, and by the
//! same rule: every line is checked first, and one bad line imports nothing unless "skip
//! invalid lines" is ticked; each bad line is listed by its number. After a refusal the
//! file's text is in the form's text box, to be fixed there and sent again.

use askama::Template;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use mailtrail_api::AppState;
use mailtrail_store::lead_csv::{self, Parsed, RowError};

use crate::csrf::same;
use crate::error::WebError;
use crate::layout::{Chrome, Section};
use crate::pages::render;
use crate::session::Viewer;

/// The largest CSV taken, in bytes (about 50,000 leads); `mailtrail lead import` takes more.
pub(crate) const MAX_CSV_BYTES: usize = 5 * 1024 * 1024;
/// Room for the upload and the text box together, and the form's own fields.
pub(crate) const MAX_BODY_BYTES: usize = 2 * MAX_CSV_BYTES + 64 * 1024;
/// Bad lines listed on the page before "and N more".
const SHOWN_ERRORS: usize = 100;

/// What the last import did.
struct Imported {
    created: u64,
    updated: u64,
    /// Lines skipped because they were invalid (with "skip invalid lines" ticked).
    skipped: Vec<u64>,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    chrome: Chrome,
    /// The CSV as last sent, to fix in place.
    csv: String,
    skip_invalid: bool,
    /// Why the file as a whole was not imported.
    error: Option<String>,
    lines: Vec<RowError>,
    more_lines: usize,
    imported: Option<Imported>,
    max_mib: usize,
}

fn page(viewer: &Viewer, uri: &Uri) -> ImportPage {
    ImportPage {
        chrome: Chrome::new(viewer, "Import leads", Section::Leads, uri.path()),
        csv: String::new(),
        skip_invalid: false,
        error: None,
        lines: Vec::new(),
        more_lines: 0,
        imported: None,
        max_mib: MAX_CSV_BYTES >> 20,
    }
}

pub(crate) async fn form(viewer: Viewer, uri: Uri) -> Result<Response, WebError> {
    Ok(render(&page(&viewer, &uri))?.into_response())
}

/// The import form as sent.
#[derive(Default)]
struct Upload {
    csrf: String,
    /// The chosen file's bytes; empty when none was chosen.
    file: Vec<u8>,
    /// The text box.
    text: String,
    skip_invalid: bool,
}

/// Why an upload could not be read.
enum Unreadable {
    TooLarge,
    Broken(String),
}

/// A field's bytes, refused past [`MAX_CSV_BYTES`].
async fn field_bytes(
    field: &mut axum::extract::multipart::Field<'_>,
) -> Result<Vec<u8>, Unreadable> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| read_error(&e))? {
        if bytes.len() + chunk.len() > MAX_CSV_BYTES {
            return Err(Unreadable::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn read_error(e: &axum::extract::multipart::MultipartError) -> Unreadable {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Unreadable::TooLarge
    } else {
        Unreadable::Broken(e.body_text())
    }
}

async fn upload(mut multipart: Multipart) -> Result<Upload, Unreadable> {
    let mut upload = Upload::default();
    while let Some(mut field) = multipart.next_field().await.map_err(|e| read_error(&e))? {
        let name = field.name().unwrap_or_default().to_owned();
        let bytes = field_bytes(&mut field).await?;
        match name.as_str() {
            "csrf" => upload.csrf = String::from_utf8_lossy(&bytes).into_owned(),
            "file" => upload.file = bytes,
            "csv" => upload.text = String::from_utf8_lossy(&bytes).into_owned(),
            "skip_invalid" => upload.skip_invalid = true,
            _ => {}
        }
    }
    Ok(upload)
}

/// The CSV to import: the chosen file, else the text box.
fn csv_text(upload: &Upload) -> Result<String, String> {
    if upload.file.is_empty() {
        if upload.text.trim().is_empty() {
            return Err("Choose a CSV file, or paste its lines in the box.".into());
        }
        return Ok(upload.text.replace("\r\n", "\n"));
    }
    String::from_utf8(upload.file.clone()).map_err(|_| {
        "The file is not UTF-8 text: save it from your spreadsheet as “CSV UTF-8”.".into()
    })
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    request: Request,
) -> Result<Response, WebError> {
    let mut shown = page(&viewer, &uri);
    let multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|e| WebError::BadRequest(e.body_text()))?;
    let upload = match upload(multipart).await {
        Ok(upload) => upload,
        Err(Unreadable::TooLarge) => {
            shown.error = Some(format!(
                "The file is larger than {} MiB: split it, or import it with `mailtrail lead \
                 import`. Nothing was imported.",
                shown.max_mib
            ));
            return Ok((StatusCode::PAYLOAD_TOO_LARGE, render(&shown)?).into_response());
        }
        Err(Unreadable::Broken(why)) => {
            return Err(WebError::BadRequest(format!(
                "The upload could not be read: {why}."
            )));
        }
    };
    if !same(&upload.csrf, &viewer.csrf) {
        return Err(WebError::Csrf);
    }
    shown.skip_invalid = upload.skip_invalid;
    let text = match csv_text(&upload) {
        Ok(text) => text,
        Err(why) => {
            shown.error = Some(why);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&shown)?).into_response());
        }
    };
    let parsed = lead_csv::parse(text.as_bytes());
    shown.csv = text;
    let Parsed { leads, errors } = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            shown.error = Some(format!(
                "This file cannot be imported: {e}. Nothing was imported."
            ));
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&shown)?).into_response());
        }
    };
    if (!errors.is_empty() && !upload.skip_invalid) || leads.is_empty() {
        shown.error = Some(if errors.is_empty() {
            "The file has no lead under its header row. Nothing was imported.".to_owned()
        } else {
            format!(
                "Nothing was imported: {} invalid line(s). Fix them below and import again, or \
                 tick “Skip invalid lines”.",
                errors.len()
            )
        });
        shown.more_lines = errors.len().saturating_sub(SHOWN_ERRORS);
        shown.lines = errors.into_iter().take(SHOWN_ERRORS).collect();
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&shown)?).into_response());
    }
    let summary = state
        .store
        .import_leads(&viewer.account_id, &leads, |_| {})
        .await?;
    shown.csv = String::new();
    shown.imported = Some(Imported {
        created: summary.created,
        updated: summary.updated,
        skipped: errors.iter().map(|e| e.line).collect(),
    });
    Ok(render(&shown)?.into_response())
}
