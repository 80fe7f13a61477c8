//! The message part of the forms that send (one email from a lead's page, a batch to chosen
//! leads): From, subject, text and HTML bodies, send time. It becomes an
//! `outbound::submit::Request` and is sent through `submit_with`, the path of
//! `POST /v1/emails` and `/v1/emails/batch`, so every rule of theirs applies. The From address
//! is a local part and a domain the account may send from: with `require_verified_domains`
//! on, one of its verified sending domains, chosen from a list; else any, its registered ones
//! suggested. `templates/message_fields.html` is its part of the page.

use chrono::NaiveDateTime;
use mailtrail_api::AppState;
use mailtrail_domain::merge::{self, Context};
use mailtrail_outbound::submit::{self, Accepted, Recipient, Request, Senders, SubmitError};
use mailtrail_outbound::tracking::UNSUBSCRIBE_FIELD;
use mailtrail_store::leads::Fields;
use mailtrail_store::now_ms;

use crate::error::WebError;

/// What `{{ unsubscribe_url }}` shows in a preview: each email gets its own link when sent.
const UNSUBSCRIBE_PREVIEW: &str = "(this email's own unsubscribe link)";

/// The message as typed; every field is shown again when the page is.
#[derive(Debug, Clone, Default)]
pub(crate) struct MessageForm {
    pub from_name: String,
    pub from_local: String,
    pub from_domain: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `YYYY-MM-DD HH:MM` in UTC; empty to send now.
    pub send_at: String,
}

/// The email as one recipient would receive it.
#[derive(Debug)]
pub(crate) struct Preview {
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// Where the From address may be.
pub(crate) struct SenderDomains {
    /// Only verified sending domains, from a list; else any domain, these suggested.
    pub verified_only: bool,
    pub domains: Vec<String>,
}

/// The domains offered for From: the verified ones, and with any domain allowed the
/// registered ones too.
pub(crate) async fn senders(state: &AppState, account: &str) -> Result<SenderDomains, WebError> {
    let verified_only = state.domains.senders() == Senders::VerifiedDomains;
    let domains = state
        .store
        .domains(account)
        .await?
        .into_iter()
        .filter(|d| !verified_only || d.verified_at_ms.is_some())
        .map(|d| d.domain)
        .collect();
    Ok(SenderDomains {
        verified_only,
        domains,
    })
}

/// `YYYY-MM-DD HH:MM` (or with a `T`, or seconds), read as UTC, not in the past.
fn send_at_ms(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let at = ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .ok_or_else(|| {
            format!("Send at “{text}” is not a time: write it as 2026-12-31 09:00 (UTC).")
        })?
        .and_utc()
        .timestamp_millis();
    if at < now_ms() {
        return Err(format!(
            "Send at “{text}” has passed: give a time ahead (UTC), or leave it empty to send now."
        ));
    }
    Ok(Some(at))
}

fn body(value: &str) -> Option<String> {
    (!value.trim().is_empty()).then(|| value.to_owned())
}

impl MessageForm {
    /// Takes a form field that is the message's; `false` for any other.
    pub(crate) fn take(&mut self, key: &str, value: String) -> bool {
        let slot = match key {
            "from_name" => &mut self.from_name,
            "from_local" => &mut self.from_local,
            "from_domain" => &mut self.from_domain,
            "subject" => &mut self.subject,
            "text" => &mut self.text,
            "html" => &mut self.html,
            "send_at" => &mut self.send_at,
            _ => return false,
        };
        *slot = value;
        true
    }

    /// The submission of this message to `recipients`; or what is wrong with it before
    /// the submission's own checks.
    pub(crate) fn request(
        &self,
        recipients: Vec<Recipient>,
        batch: Option<String>,
    ) -> Result<Request, Vec<String>> {
        let mut errors = Vec::new();
        if self.from_local.trim().is_empty() || self.from_domain.trim().is_empty() {
            errors.push("Give the From address: its name before the @ and its domain.".into());
        }
        let send_at_ms = send_at_ms(&self.send_at).unwrap_or_else(|why| {
            errors.push(why);
            None
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        let name = self.from_name.trim();
        Ok(Request {
            from: format!("{}@{}", self.from_local.trim(), self.from_domain.trim()),
            from_name: (!name.is_empty()).then(|| name.to_owned()),
            subject: self.subject.clone(),
            text: body(&self.text),
            html: body(&self.html),
            send_at_ms,
            batch,
            recipients,
            ..Request::default()
        })
    }

    /// The subject and bodies merged with `fields`, as delivery renders them.
    pub(crate) fn preview(&self, fields: &Fields) -> Result<Preview, Vec<String>> {
        let lookup = |name: &str| {
            if name == UNSUBSCRIBE_FIELD {
                return Some(UNSUBSCRIBE_PREVIEW.to_owned());
            }
            fields.get(name).cloned()
        };
        let part = |label: &str, template: &str, context| {
            merge::render(template, lookup, context)
                .map_err(|e| format!("The {label} cannot be rendered: {e}."))
        };
        let subject = part("subject", &self.subject, Context::Header);
        let text = body(&self.text).map(|t| part("text", &t, Context::Text));
        let html = body(&self.html).map(|h| part("HTML", &h, Context::Html));
        let errors: Vec<String> = [Some(&subject), text.as_ref(), html.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_ref().err().cloned())
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Preview {
            subject: subject.unwrap_or_default(),
            text: text.transpose().unwrap_or_default(),
            html: html.transpose().unwrap_or_default(),
        })
    }
}

/// A refused submission in the form's words.
fn submit_error(field: &str, message: &str) -> String {
    let label = match field {
        "from" => "From",
        "subject" => "Subject",
        "text" => "Text",
        "html" => "HTML",
        "recipients" => "Recipients",
        other => other,
    };
    format!("{label}: {message}.")
}

/// Queues the request as the API's send endpoints do and wakes the delivery worker; what
/// was accepted, or why the whole request was refused.
pub(crate) async fn send(
    state: &AppState,
    account: &str,
    request: Request,
) -> Result<Result<Accepted, Vec<String>>, WebError> {
    let senders = state.domains.senders();
    match submit::submit_with(&state.store, senders, account, request, None, |_| {
        String::new()
    })
    .await
    {
        Ok(accepted) => {
            if !accepted.queued.is_empty() {
                state.queued.notify_one();
            }
            Ok(Ok(accepted))
        }
        Err(SubmitError::Invalid { field, message }) => {
            Ok(Err(vec![submit_error(&field, &message)]))
        }
        Err(SubmitError::Store(e)) => Err(e.into()),
    }
}

/// The merge fields this lead's emails get: its custom fields, names and address.
pub(crate) async fn lead_fields(
    state: &AppState,
    account: &str,
    lead_id: &str,
) -> Result<Fields, WebError> {
    Ok(state
        .store
        .leads_by_ids(account, &[lead_id.to_owned()])
        .await?
        .remove(lead_id)
        .map(|brief| brief.fields)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(subject: &str, text: &str, html: &str) -> MessageForm {
        MessageForm {
            from_local: "sales".into(),
            from_domain: "shop.test".into(),
            subject: subject.into(),
            text: text.into(),
            html: html.into(),
            ..MessageForm::default()
        }
    }

    #[test]
    fn a_preview_merges_the_fields_safely_for_each_part() {
        let fields = Fields::from([
            (
                "first_name".to_owned(),
                "Ana\r\nBcc: x@evil.test".to_owned(),
            ),
            ("company".to_owned(), "<b>Shop</b> & Co".to_owned()),
        ]);
        let preview = form(
            "Hi {{ first_name }}",
            "For {{ company }}, {{ missing | default(\"friend\") }}. {{ unsubscribe_url }}",
            "<p>{{ company }}</p>",
        )
        .preview(&fields)
        .unwrap();
        assert_eq!(preview.subject, "Hi Ana Bcc: x@evil.test");
        assert_eq!(
            preview.text.as_deref(),
            Some("For <b>Shop</b> & Co, friend. (this email's own unsubscribe link)")
        );
        assert_eq!(
            preview.html.as_deref(),
            Some("<p>&lt;b&gt;Shop&lt;/b&gt; &amp; Co</p>")
        );
        assert_eq!(form("Hi", "", "").preview(&fields).unwrap().html, None);
    }

    #[test]
    fn a_template_that_cannot_render_names_its_part() {
        let errors = form("Hi {{ first_name", "ok", "{% if x %}")
            .preview(&Fields::new())
            .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("The subject cannot be rendered"));
        assert!(errors[1].starts_with("The HTML cannot be rendered"));
    }

    #[test]
    fn send_at_is_a_utc_time_ahead_or_empty() {
        let at = chrono::NaiveDate::from_ymd_opt(2999, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        assert_eq!(send_at_ms(" "), Ok(None));
        assert_eq!(send_at_ms("2999-01-02 03:04"), Ok(Some(at)));
        assert_eq!(send_at_ms("2999-01-02T03:04"), Ok(Some(at)));
        assert!(
            send_at_ms("2000-01-01 00:00")
                .unwrap_err()
                .contains("has passed")
        );
        assert!(send_at_ms("tomorrow").unwrap_err().contains("not a time"));
    }

    #[test]
    fn a_message_without_a_from_address_is_refused_before_sending() {
        let mut f = form("Hi", "Hello", "");
        f.from_local = " ".into();
        f.send_at = "soon".into();
        assert_eq!(f.request(Vec::new(), None).unwrap_err().len(), 2);
        let request = form("Hi", "Hello", " ")
            .request(vec![Recipient::default()], Some("b".into()))
            .unwrap();
        assert_eq!(request.from, "sales@shop.test");
        assert_eq!(request.html, None);
        assert_eq!(request.batch.as_deref(), Some("b"));
    }

    #[test]
    fn fields_of_the_message_are_taken_and_others_left() {
        let mut f = MessageForm::default();
        assert!(f.take("subject", "Hi".into()));
        assert!(!f.take("csrf", "x".into()));
        assert_eq!(f.subject, "Hi");
    }
}
