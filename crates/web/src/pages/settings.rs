//! `GET /settings`: every user's own timezone (`POST /settings/timezone`), which every time on
//! every page is shown in; and, for admins and operators (`POST /settings`), open and click
//! tracking, the tracking base URL, the machine-hit threshold and where replies are forwarded,
//! checked by the same rules
//! as `PATCH /v1/settings` and saved through the store; the account's sending domains with
//! the DNS records to publish and how the last check found them, with forms to add one
//! (`POST /settings/domains`), check its DNS now (`…/check`, the API's verification) and
//! remove it (`…/remove`, confirmed by a checkbox); and the account's logins, read-only.

use std::sync::LazyLock;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use chrono_tz::{TZ_VARIANTS, Tz};
use mailtrail_api::AppState;
use mailtrail_domain::base_url::parse_base_url;
use mailtrail_domain::causes::WithCauses;
use mailtrail_domain::{EmailAddress, Role};
use mailtrail_outbound::dkim::KeyAlgorithm;
use mailtrail_outbound::domains::{Check, DnsRecord, Purpose, RegisterError, normalize, register};
use mailtrail_outbound::rotation;
use mailtrail_store::{SendingDomain, Settings, StoreError};
use serde::Deserialize;

use crate::csrf::Posted;
use crate::error::WebError;
use crate::format::{query, time};
use crate::layout::{Chrome, Section};
use crate::pages::render;
use crate::session::Viewer;

const ADMINS_ONLY: &str = "Settings are changed by the account's admins.";

/// Every IANA timezone name a user can choose, in alphabetical order.
static TIMEZONES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut names: Vec<&'static str> = TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    names.sort_unstable();
    names
});

/// A DNS record to publish, with how the last check found it.
struct RecordRow {
    kind: &'static str,
    purpose: &'static str,
    name: String,
    value: String,
    required: bool,
    description: String,
    /// For a key a rotation replaced: until when to keep its record published.
    keep_published_until: Option<String>,
    /// `None` before the first check.
    result: Option<RecordResult>,
}

struct RecordResult {
    ok: bool,
    detail: String,
}

struct DomainRow {
    domain: String,
    algorithm: &'static str,
    selector: String,
    /// The selector of a rotation's new key, not yet found published.
    next_selector: Option<String>,
    return_path: String,
    verified: bool,
    verified_at: Option<String>,
    added: String,
    last_check_at: Option<String>,
    records: Vec<RecordRow>,
}

struct UserRow {
    email: String,
    role: &'static str,
    created: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    /// The account's settings are shown (admins and operators); everyone has their timezone.
    admin: bool,
    /// The viewer's timezone, or what they last chose in the form.
    timezone: String,
    timezones: &'static [&'static str],
    /// Why the timezone form was not saved.
    timezone_error: Option<String>,
    open_tracking: bool,
    click_tracking: bool,
    tracking_base_url: String,
    machine_threshold_secs: String,
    reply_forward_to: String,
    errors: Vec<String>,
    /// What the last form did (after its redirect).
    notice: Option<String>,
    domains: Vec<DomainRow>,
    /// Why the domain form (add, remove) was not acted on.
    domain_error: Option<String>,
    new_domain: String,
    new_algorithm: String,
    new_return_path: String,
    users: Vec<UserRow>,
}

/// Set by the redirect after a form, to say what it did.
#[derive(Deserialize)]
pub(crate) struct NoticeQuery {
    saved: Option<String>,
    added: Option<String>,
    checked: Option<String>,
    rotated: Option<String>,
    removed: Option<String>,
    zone: Option<String>,
}

impl NoticeQuery {
    fn notice(self) -> Option<String> {
        if let Some(domain) = self.added {
            Some(format!(
                "{domain} was added. Publish its DNS records below, then check DNS."
            ))
        } else if let Some(domain) = self.checked {
            Some(format!(
                "The DNS records of {domain} were looked up: each record's result is below."
            ))
        } else if let Some(domain) = self.rotated {
            Some(format!(
                "{domain} has a new DKIM key: publish its record (marked new key) beside the \
                 current one, then check DNS. Mail is signed with the current key until then."
            ))
        } else if let Some(zone) = self.zone {
            Some(format!("Times are now shown in {zone}."))
        } else if let Some(domain) = self.removed {
            Some(format!(
                "{domain} was removed: its mail is no longer signed with its key."
            ))
        } else {
            self.saved.map(|_| "Settings saved.".to_owned())
        }
    }
}

fn chrome(viewer: &Viewer, uri: &Uri) -> Chrome {
    let title = match viewer.account_name() {
        Some(name) => format!("Settings — {name}"),
        None => "Settings".to_owned(),
    };
    Chrome::new(viewer, title, Section::Settings, uri.path())
}

/// A record as the page lists it, with the last check's result for it, if any.
fn record_row(record: DnsRecord, check: Option<&Check>) -> RecordRow {
    let result = check.and_then(|c| {
        c.records
            .iter()
            .find(|r| r.purpose == record.purpose && r.name == record.name)
            .map(|r| RecordResult {
                ok: r.ok,
                detail: r.detail.clone(),
            })
    });
    RecordRow {
        kind: record.kind,
        purpose: match record.purpose {
            Purpose::Dkim => "DKIM key",
            Purpose::Spf => "SPF",
            Purpose::ReturnPath => "Return path MX",
            Purpose::Dmarc => "DMARC",
        },
        name: record.name,
        value: record.value,
        required: record.required,
        description: record.description,
        keep_published_until: record.keep_published_until_ms.map(time),
        result,
    }
}

/// A domain as the page shows it: the records come from the same checker as the API's.
fn domain_row(state: &AppState, domain: SendingDomain) -> DomainRow {
    let check = domain
        .last_check
        .as_deref()
        .and_then(|json| serde_json::from_str::<Check>(json).ok());
    let records = state
        .domains
        .records(&domain)
        .into_iter()
        .map(|r| record_row(r, check.as_ref()))
        .collect();
    DomainRow {
        algorithm: KeyAlgorithm::parse(&domain.algorithm)
            .unwrap_or_default()
            .as_str(),
        verified: domain.verified_at_ms.is_some(),
        verified_at: domain.verified_at_ms.map(time),
        added: time(domain.created_at_ms),
        last_check_at: domain.last_check_at_ms.map(time),
        domain: domain.domain,
        selector: domain.selector,
        next_selector: domain.next_key.map(|next| next.selector),
        return_path: domain.return_path,
        records,
    }
}

/// The page as stored for the account in view.
async fn load(
    state: &AppState,
    viewer: &Viewer,
    uri: &Uri,
    notice: Option<String>,
) -> Result<SettingsPage, WebError> {
    let mut page = SettingsPage {
        chrome: chrome(viewer, uri),
        admin: viewer.role >= Role::Admin,
        timezone: crate::format::zone().name().to_owned(),
        timezones: &TIMEZONES,
        timezone_error: None,
        open_tracking: false,
        click_tracking: false,
        tracking_base_url: String::new(),
        machine_threshold_secs: String::new(),
        reply_forward_to: String::new(),
        errors: Vec::new(),
        notice,
        domains: Vec::new(),
        domain_error: None,
        new_domain: String::new(),
        new_algorithm: KeyAlgorithm::default().as_str().to_owned(),
        new_return_path: String::new(),
        users: Vec::new(),
    };
    if !page.admin {
        return Ok(page);
    }
    let account = &viewer.account_id;
    let s = state.store.settings(account).await?;
    let reply_forward_to = state.store.reply_forward_to(account).await?;
    let domains = state.store.domains(account).await?;
    let users = state.store.users(account).await?;
    page.open_tracking = s.open_tracking;
    page.click_tracking = s.click_tracking;
    page.tracking_base_url = s.tracking_base_url.unwrap_or_default();
    page.machine_threshold_secs = s.machine_threshold_secs.to_string();
    page.reply_forward_to = reply_forward_to.unwrap_or_default();
    page.domains = domains.into_iter().map(|d| domain_row(state, d)).collect();
    page.users = users
        .into_iter()
        .map(|u| UserRow {
            email: u.email,
            role: u.role.as_str(),
            created: time(u.created_at_ms),
        })
        .collect();
    Ok(page)
}

pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    uri: Uri,
    Query(params): Query<NoticeQuery>,
) -> Result<Response, WebError> {
    let page = load(&state, &viewer, &uri, params.notice()).await?;
    Ok(render(&page)?.into_response())
}

#[derive(Deserialize)]
pub(crate) struct TimezoneForm {
    #[serde(default)]
    timezone: String,
}

/// `POST /settings/timezone` (every user): the IANA timezone the viewer's pages show times in.
pub(crate) async fn set_timezone(
    State(state): State<AppState>,
    uri: Uri,
    posted: Posted<TimezoneForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    let name = form.timezone.trim();
    match name.parse::<Tz>() {
        Ok(tz) => {
            state
                .store
                .set_user_timezone(&viewer.user_id, tz.name())
                .await?;
            Ok(Redirect::to(&format!(
                "/settings{}#timezone",
                query(&[("zone", tz.name())])
            ))
            .into_response())
        }
        Err(_) => {
            let mut page = load(&state, &viewer, &uri, None).await?;
            page.timezone_error = Some(format!(
                "'{name}' is not a timezone: choose one from the list (an IANA name such as \
                 Europe/Paris). Times are still shown in {}.",
                page.timezone
            ));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}

/// The form as sent: an unticked checkbox sends nothing.
#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    open_tracking: Option<String>,
    click_tracking: Option<String>,
    #[serde(default)]
    tracking_base_url: String,
    #[serde(default)]
    machine_threshold_secs: String,
    #[serde(default)]
    reply_forward_to: String,
}

/// What the settings form asks to store.
#[derive(Debug)]
struct Wanted {
    settings: Settings,
    /// `None`: to each email's From address.
    reply_forward_to: Option<String>,
}

impl SettingsForm {
    /// The settings this form asks for, or what is wrong with it.
    fn wanted(&self) -> Result<Wanted, Vec<String>> {
        let mut errors = Vec::new();
        let url = self.tracking_base_url.trim();
        let tracking_base_url = if url.is_empty() {
            None
        } else {
            match parse_base_url(url) {
                Ok(url) => Some(url),
                Err(e) => {
                    errors.push(format!("The tracking base URL is refused: {e}."));
                    None
                }
            }
        };
        let threshold = self.machine_threshold_secs.trim().parse::<i64>();
        if !matches!(threshold, Ok(0..=3600)) {
            errors.push(
                "The machine-hit threshold is a whole number of seconds, 0 to 3600.".to_owned(),
            );
        }
        let forward = self.reply_forward_to.trim();
        let reply_forward_to = if forward.is_empty() {
            None
        } else {
            match EmailAddress::parse(forward) {
                Ok(address) => Some(address.to_string()),
                Err(e) => {
                    errors.push(format!(
                        "The reply forwarding address is not an email address: {e}."
                    ));
                    None
                }
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Wanted {
            settings: Settings {
                open_tracking: self.open_tracking.is_some(),
                click_tracking: self.click_tracking.is_some(),
                tracking_base_url,
                machine_threshold_secs: threshold.unwrap_or_default(),
            },
            reply_forward_to,
        })
    }
}

pub(crate) async fn save(
    State(state): State<AppState>,
    uri: Uri,
    posted: Posted<SettingsForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    viewer.require(Role::Admin, ADMINS_ONLY)?;
    match form.wanted() {
        Ok(wanted) => {
            state
                .store
                .save_settings(&viewer.account_id, &wanted.settings)
                .await?;
            state
                .store
                .set_reply_forward_to(&viewer.account_id, wanted.reply_forward_to.as_deref())
                .await?;
            Ok(Redirect::to("/settings?saved=1").into_response())
        }
        Err(errors) => {
            let mut page = load(&state, &viewer, &uri, None).await?;
            page.open_tracking = form.open_tracking.is_some();
            page.click_tracking = form.click_tracking.is_some();
            page.tracking_base_url = form.tracking_base_url;
            page.machine_threshold_secs = form.machine_threshold_secs;
            page.reply_forward_to = form.reply_forward_to;
            page.errors = errors;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}

/// The page again with what is wrong with a domain form, as a 422.
async fn domain_refused(
    state: &AppState,
    viewer: &Viewer,
    uri: &Uri,
    error: String,
    typed: Option<AddDomainForm>,
) -> Result<Response, WebError> {
    let mut page = load(state, viewer, uri, None).await?;
    page.domain_error = Some(error);
    if let Some(typed) = typed {
        page.new_domain = typed.domain;
        page.new_algorithm = typed.algorithm;
        page.new_return_path = typed.return_path;
    }
    Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
}

#[derive(Clone, Deserialize)]
pub(crate) struct AddDomainForm {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    algorithm: String,
    /// Empty for the default, `bounces.DOMAIN`.
    #[serde(default)]
    return_path: String,
}

/// `POST /settings/domains`: registers a domain with a new DKIM key, as `POST /v1/domains`.
pub(crate) async fn add_domain(
    State(state): State<AppState>,
    uri: Uri,
    posted: Posted<AddDomainForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    viewer.require(Role::Admin, ADMINS_ONLY)?;
    let created = register(
        &state.store,
        &viewer.account_id,
        &form.domain,
        Some(form.algorithm.as_str()),
        Some(form.return_path.as_str()),
    )
    .await;
    let typed = Some(form);
    let refused = |why: String| domain_refused(&state, &viewer, &uri, why, typed.clone());
    match created {
        Ok(domain) => Ok(Redirect::to(&format!(
            "/settings{}#domains",
            query(&[("added", &domain.domain)])
        ))
        .into_response()),
        Err(RegisterError::Invalid(_, why)) => refused(format!("{why}.")).await,
        Err(RegisterError::Key(e)) => Err(WebError::Internal(WithCauses(&e).to_string())),
        Err(RegisterError::Store(StoreError::Conflict(why))) => refused(format!("{why}.")).await,
        Err(RegisterError::Store(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct DomainForm {
    #[serde(default)]
    domain: String,
    /// The removal's confirmation checkbox.
    confirm: Option<String>,
}

/// The account's domain a form names; a name that is not a domain is missing too.
async fn named_domain(
    state: &AppState,
    viewer: &Viewer,
    name: &str,
) -> Result<SendingDomain, WebError> {
    let name = normalize(name).map_err(|_| WebError::NotFound)?;
    Ok(state.store.domain(&viewer.account_id, &name).await?)
}

/// `POST /settings/domains/check`: looks the domain's records up now and records the outcome,
/// as `POST /v1/domains/{domain}/verify`.
pub(crate) async fn check_domain(
    State(state): State<AppState>,
    posted: Posted<DomainForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    viewer.require(Role::Admin, ADMINS_ONLY)?;
    let domain = named_domain(&state, &viewer, &form.domain).await?;
    state.domains.verify(&state.store, &domain).await?;
    Ok(Redirect::to(&format!(
        "/settings{}#domains",
        query(&[("checked", &domain.domain)])
    ))
    .into_response())
}

/// `POST /settings/domains/rotate`: makes the domain a new DKIM key to publish beside the
/// current one, as `POST /v1/domains/{domain}/rotate`.
pub(crate) async fn rotate_domain(
    State(state): State<AppState>,
    posted: Posted<DomainForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    viewer.require(Role::Admin, ADMINS_ONLY)?;
    let domain = named_domain(&state, &viewer, &form.domain).await?;
    rotation::rotate(&state.store, &viewer.account_id, &domain)
        .await
        .map_err(|e| match e {
            RegisterError::Store(e) => e.into(),
            RegisterError::Invalid(_, why) => WebError::Internal(why),
            RegisterError::Key(e) => WebError::Internal(WithCauses(&e).to_string()),
        })?;
    Ok(Redirect::to(&format!(
        "/settings{}#domains",
        query(&[("rotated", &domain.domain)])
    ))
    .into_response())
}

/// `POST /settings/domains/remove`: forgets the domain and its key, once confirmed.
pub(crate) async fn remove_domain(
    State(state): State<AppState>,
    uri: Uri,
    posted: Posted<DomainForm>,
) -> Result<Response, WebError> {
    let Posted { viewer, form } = posted;
    viewer.require(Role::Admin, ADMINS_ONLY)?;
    let domain = named_domain(&state, &viewer, &form.domain).await?;
    if form.confirm.is_none() {
        let why = format!(
            "{} was not removed: tick the box that confirms the removal first.",
            domain.domain
        );
        return domain_refused(&state, &viewer, &uri, why, None).await;
    }
    state
        .store
        .delete_domain(&viewer.account_id, &domain.domain)
        .await?;
    Ok(Redirect::to(&format!(
        "/settings{}#domains",
        query(&[("removed", &domain.domain)])
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(url: &str, secs: &str, forward: &str) -> SettingsForm {
        SettingsForm {
            open_tracking: Some("on".into()),
            click_tracking: None,
            tracking_base_url: url.into(),
            machine_threshold_secs: secs.into(),
            reply_forward_to: forward.into(),
        }
    }

    #[test]
    fn forms_become_settings_by_the_api_rules() {
        let w = form("https://t.example.com/", "5", "").wanted().unwrap();
        let s = &w.settings;
        assert!(s.open_tracking && !s.click_tracking);
        assert_eq!(
            s.tracking_base_url.as_deref(),
            Some("https://t.example.com")
        );
        assert_eq!(s.machine_threshold_secs, 5);
        assert_eq!(w.reply_forward_to, None);
        let w = form("", "0", " Sales@Acme.test ").wanted().unwrap();
        assert_eq!(w.settings.tracking_base_url, None);
        assert!(w.reply_forward_to.is_some());
        assert_eq!(form("ftp://x", "5", "").wanted().unwrap_err().len(), 1);
        assert_eq!(
            form("https://t.example.com/\"><img src=x>", "5", "")
                .wanted()
                .unwrap_err(),
            [
                "The tracking base URL is refused: it holds '\"', which a URL may not hold \
                 (percent-encode it)."
            ]
        );
        assert_eq!(form("", "3601", "").wanted().unwrap_err().len(), 1);
        assert_eq!(form("x", "soon", "").wanted().unwrap_err().len(), 2);
        let errors = form("", "5", "no-at-sign").wanted().unwrap_err();
        assert_eq!(
            errors,
            ["The reply forwarding address is not an email address: the address has no '@'."]
        );
    }

    #[test]
    fn notices_say_what_the_last_form_did() {
        let q = |added: Option<&str>, saved: Option<&str>| NoticeQuery {
            saved: saved.map(Into::into),
            added: added.map(Into::into),
            checked: None,
            rotated: None,
            removed: None,
            zone: None,
        };
        assert_eq!(
            q(None, Some("1")).notice().as_deref(),
            Some("Settings saved.")
        );
        assert!(
            q(Some("shop.test"), None)
                .notice()
                .unwrap()
                .starts_with("shop.test was added")
        );
        assert_eq!(q(None, None).notice(), None);
        let rotated = NoticeQuery {
            rotated: Some("shop.test".into()),
            ..q(None, None)
        };
        assert!(
            rotated
                .notice()
                .unwrap()
                .starts_with("shop.test has a new DKIM key")
        );
    }
}
