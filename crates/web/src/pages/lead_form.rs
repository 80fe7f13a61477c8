//! `GET/POST /leads/new` (add a lead) and `GET/POST /leads/{id}/edit` (its names, custom
//! fields and Permission to Email), checked as `POST /v1/leads` and `PATCH /v1/leads/{id}`
//! check them and saved through the same store calls. A blocked lead's form says that
//! setting Permission to Email back to Yes does not lift the block (docs/emails.md).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use mailtrail_api::AppState;
use mailtrail_domain::merge::breaks_header;
use mailtrail_domain::{EmailAddress, Permission};
use mailtrail_store::leads::Fields;
use mailtrail_store::{Lead, LeadPatch, NewLead, StoreError};

use crate::csrf::Posted;
use crate::error::WebError;
use crate::layout::{Chrome, Section};
use crate::pages::leads::full_name;
use crate::pages::render;
use crate::session::Viewer;

/// Longest name or custom field value, as the API allows.
const MAX_VALUE_BYTES: usize = 1000;
/// Longest custom field name: it is a merge field's name.
const MAX_FIELD_NAME: usize = 100;

/// The form as typed. Custom fields come as repeated `field_name` / `field_value` pairs, the
/// last pair empty for a new field.
#[derive(Debug, Clone, Default)]
struct LeadForm {
    email: String,
    first_name: String,
    last_name: String,
    /// `yes` or `no`.
    permission: String,
    fields: Vec<(String, String)>,
}

impl LeadForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = LeadForm::default();
        let (mut names, mut values) = (Vec::new(), Vec::new());
        for (key, value) in pairs {
            match key.as_str() {
                "email" => form.email = value,
                "first_name" => form.first_name = value,
                "last_name" => form.last_name = value,
                "permission" => form.permission = value,
                "field_name" => names.push(value),
                "field_value" => values.push(value),
                _ => {}
            }
        }
        values.resize(names.len(), String::new());
        form.fields = names.into_iter().zip(values).collect();
        form
    }

    fn from_lead(lead: &Lead) -> Self {
        LeadForm {
            email: lead.email.clone(),
            first_name: lead.first_name.clone().unwrap_or_default(),
            last_name: lead.last_name.clone().unwrap_or_default(),
            permission: lead.permission.as_str().to_owned(),
            fields: lead.fields.clone().into_iter().collect(),
        }
    }

    /// The names, fields and permission asked for, or what is wrong with them.
    fn checked(&self) -> Result<Checked, Vec<String>> {
        let mut errors = Vec::new();
        let first = value("First name", &self.first_name, &mut errors);
        let last = value("Last name", &self.last_name, &mut errors);
        let mut fields = Fields::new();
        for (name, field_value) in &self.fields {
            let name = name.trim();
            if name.is_empty() {
                if !field_value.trim().is_empty() {
                    errors.push(format!(
                        "The custom field with the value “{}” needs a name.",
                        field_value.trim()
                    ));
                }
                continue;
            }
            if name.chars().count() > MAX_FIELD_NAME || name.chars().any(breaks_header) {
                errors.push(format!(
                    "The custom field name “{name}” must be one line of at most \
                     {MAX_FIELD_NAME} characters."
                ));
                continue;
            }
            if fields.contains_key(name) {
                errors.push(format!("The custom field “{name}” is given twice."));
                continue;
            }
            let label = format!("The custom field “{name}”");
            let value = value(&label, field_value, &mut errors);
            fields.insert(name.to_owned(), value.unwrap_or_default());
        }
        let permission = match self.permission.as_str() {
            "yes" => Permission::Yes,
            "no" => Permission::No,
            _ => {
                errors.push("Choose Permission to Email: Yes or No.".into());
                Permission::No
            }
        };
        if errors.is_empty() {
            Ok(Checked {
                first_name: first,
                last_name: last,
                fields,
                permission,
            })
        } else {
            Err(errors)
        }
    }
}

/// What a valid form asks for.
#[derive(Debug, PartialEq, Eq)]
struct Checked {
    first_name: Option<String>,
    last_name: Option<String>,
    fields: Fields,
    permission: Permission,
}

/// A name or value as typed, trimmed; `None` when empty. Too long a one is an error.
fn value(label: &str, value: &str, errors: &mut Vec<String>) -> Option<String> {
    let value = value.trim();
    if value.len() > MAX_VALUE_BYTES {
        errors.push(format!("{label} is longer than {MAX_VALUE_BYTES} bytes."));
    }
    (!value.is_empty()).then(|| value.to_owned())
}

#[derive(Template)]
#[template(path = "lead_form.html")]
struct LeadFormPage {
    chrome: Chrome,
    /// Where the form posts.
    action: String,
    /// `None` when adding: then the address is asked for.
    lead_href: Option<String>,
    form: LeadForm,
    /// The account's block on this address, in words.
    blocked: bool,
    errors: Vec<String>,
}

impl LeadFormPage {
    /// The page with an empty row for one more custom field.
    fn new(chrome: Chrome, action: String, lead_href: Option<String>, mut form: LeadForm) -> Self {
        form.fields
            .retain(|(n, v)| !(n.trim().is_empty() && v.trim().is_empty()));
        form.fields.push(Default::default());
        LeadFormPage {
            chrome,
            action,
            lead_href,
            form,
            blocked: false,
            errors: Vec::new(),
        }
    }

    fn refused(mut self, errors: Vec<String>) -> Result<Response, WebError> {
        self.errors = errors;
        Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&self)?).into_response())
    }
}

fn new_page(viewer: &Viewer, uri: &Uri, form: LeadForm) -> LeadFormPage {
    let chrome = Chrome::new(viewer, "Add a lead", Section::Leads, uri.path());
    LeadFormPage::new(chrome, "/leads/new".into(), None, form)
}

pub(crate) async fn new_form(viewer: Viewer, uri: Uri) -> Result<Response, WebError> {
    let form = LeadForm {
        permission: "yes".into(),
        ..LeadForm::default()
    };
    Ok(render(&new_page(&viewer, &uri, form))?.into_response())
}

pub(crate) async fn create(
    State(state): State<AppState>,
    uri: Uri,
    posted: Posted<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let form = LeadForm::from_pairs(form);
    let page = new_page(&viewer, &uri, form.clone());
    let address = EmailAddress::parse(form.email.trim())
        .map_err(|e| format!("Email “{}”: {e}.", form.email.trim()));
    let (address, checked) = match (address, form.checked()) {
        (Ok(address), Ok(checked)) => (address, checked),
        (address, checked) => {
            let errors = address
                .err()
                .into_iter()
                .chain(checked.err().into_iter().flatten());
            return page.refused(errors.collect());
        }
    };
    let lead = NewLead {
        address,
        first_name: checked.first_name,
        last_name: checked.last_name,
        fields: checked.fields,
        permission: checked.permission,
    };
    match state.store.create_lead(&viewer.account_id, &lead).await {
        Ok(lead) => Ok(Redirect::to(&format!("/leads/{}", lead.id)).into_response()),
        Err(StoreError::Conflict(why)) => page.refused(vec![format!("{why} in this account.")]),
        Err(e) => Err(e.into()),
    }
}

async fn edit_page(
    state: &AppState,
    viewer: &Viewer,
    uri: &Uri,
    lead: &Lead,
    form: LeadForm,
) -> Result<LeadFormPage, WebError> {
    let name = full_name(lead.first_name.as_deref(), lead.last_name.as_deref());
    let title = format!("Edit {}", if name.is_empty() { &lead.email } else { &name });
    let chrome = Chrome::new(viewer, title, Section::Leads, uri.path());
    let href = format!("/leads/{}", lead.id);
    let mut page = LeadFormPage::new(chrome, format!("{href}/edit"), Some(href), form);
    page.form.email = lead.email.clone();
    page.blocked = match EmailAddress::parse(&lead.email) {
        Ok(address) => state
            .store
            .suppression(&viewer.account_id, &address)
            .await?
            .is_some(),
        Err(_) => false,
    };
    Ok(page)
}

pub(crate) async fn edit_form(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let lead = state.store.lead(&viewer.account_id, &id).await?;
    let page = edit_page(&state, &viewer, &uri, &lead, LeadForm::from_lead(&lead)).await?;
    Ok(render(&page)?.into_response())
}

pub(crate) async fn update(
    State(state): State<AppState>,
    uri: Uri,
    Path(id): Path<String>,
    posted: Posted<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let lead = state.store.lead(&viewer.account_id, &id).await?;
    let form = LeadForm::from_pairs(form);
    let checked = match form.checked() {
        Ok(checked) => checked,
        Err(errors) => {
            let page = edit_page(&state, &viewer, &uri, &lead, form).await?;
            return page.refused(errors);
        }
    };
    let patch = LeadPatch {
        first_name: Some(checked.first_name.unwrap_or_default()),
        last_name: Some(checked.last_name.unwrap_or_default()),
        fields: Some(checked.fields),
        permission: Some(checked.permission),
    };
    state
        .store
        .update_lead(&viewer.account_id, &lead.id, &patch)
        .await?;
    Ok(Redirect::to(&format!("/leads/{}", lead.id)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::pairs;

    #[test]
    fn custom_fields_come_in_name_and_value_pairs() {
        let form = LeadForm::from_pairs(pairs(&[
            ("csrf", "x"),
            ("first_name", " Ana "),
            ("permission", "no"),
            ("field_name", "company"),
            ("field_value", "Initech"),
            ("field_name", ""),
            ("field_value", ""),
        ]));
        assert_eq!(
            form.checked().unwrap(),
            Checked {
                first_name: Some("Ana".into()),
                last_name: None,
                fields: Fields::from([("company".into(), "Initech".into())]),
                permission: Permission::No,
            }
        );
    }

    #[test]
    fn each_mistake_is_named() {
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let form = LeadForm::from_pairs(pairs(&[
            ("first_name", &long),
            ("permission", "maybe"),
            ("field_name", ""),
            ("field_value", "orphan"),
            ("field_name", "a\nb"),
            ("field_value", "1"),
            ("field_name", "plan"),
            ("field_value", "gold"),
            ("field_name", "plan"),
            ("field_value", "silver"),
        ]));
        let errors = form.checked().unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:?}");
        assert!(errors[0].starts_with("First name is longer"));
        assert!(errors[1].contains("“orphan” needs a name"));
        assert!(errors[2].contains("must be one line"));
        assert!(errors[3].contains("“plan” is given twice"));
        assert!(errors[4].starts_with("Choose Permission to Email"));
    }
}
