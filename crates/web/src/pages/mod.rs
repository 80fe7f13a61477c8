//! One module per page (docs/web-ui.md). Handlers read through the store and
//! the API crate's helpers, and hand plain view structs to askama templates, which escape
//! every value.

pub(crate) mod admin;
pub(crate) mod batch_send;
pub(crate) mod batches;
pub(crate) mod compose;
pub(crate) mod emails;
pub(crate) mod import;
pub(crate) mod lead_form;
pub(crate) mod leads;
pub(crate) mod login;
pub(crate) mod message;
pub(crate) mod overview;
pub(crate) mod reports;
pub(crate) mod settings;
pub(crate) mod suppressions;

use askama::Template;
use axum::response::Html;

use crate::error::WebError;

/// A page as HTML.
pub(crate) fn render(page: &impl Template) -> Result<Html<String>, WebError> {
    Ok(Html(page.render()?))
}

/// A form body as a handler reads it (`Vec<(name, value)>`), for the unit tests.
#[cfg(test)]
pub(crate) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
