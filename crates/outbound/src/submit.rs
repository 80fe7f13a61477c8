//! Submission: an API or CLI request becomes queued emails. Each recipient is a lead (by id)
//! or an address (which is that lead's when the account has one). A lead whose Permission to
//! Email is No is refused; a suppressed address is accepted and recorded at once as failed
//! `Dropped`, never tried (PRODUCT.md §2–§3). When the installation requires it, the From
//! address must be in a verified sending domain of the account.

use std::collections::BTreeMap;

use mailtrail_domain::merge::breaks_header;
use mailtrail_domain::{EmailAddress, Permission, Reason};
use mailtrail_store::{
    Attachment, Content, DomainStatus, Idempotent, QueueEntry, Store, StoreError, Submission,
};

/// Most recipients in one request (PRODUCT.md §8).
pub const MAX_RECIPIENTS: usize = 100_000;

#[derive(Debug, Clone, Default)]
pub struct Recipient {
    pub lead_id: Option<String>,
    pub to: Option<String>,
    /// Merge fields for this recipient, over the lead's own.
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The bare address; a display name goes in `from_name`.
    pub from: String,
    pub from_name: Option<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub cc: Vec<String>,
    pub reply_to: Option<String>,
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<Attachment>,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    /// The sender's own MIME message (SMTP submission): delivered as it is, with tracking
    /// applied; `subject` is then its decoded Subject and `text`/`html` are unused.
    pub raw: Option<Vec<u8>>,
    pub batch: Option<String>,
    pub send_at_ms: Option<i64>,
    pub recipients: Vec<Recipient>,
}

/// A recipient that was not queued, by its position in the request (from 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub index: usize,
    pub message: String,
}

/// A queued email, by its recipient's position in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub index: usize,
    pub id: String,
    /// Set when the email was recorded as failed `Dropped` instead of being queued.
    pub dropped: Option<Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub queued: Vec<Queued>,
    pub refused: Vec<Refusal>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The request as a whole is unacceptable; `field` names what to fix.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &str, message: impl Into<String>) -> SubmitError {
    SubmitError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Checks what does not depend on the recipients.
fn validate(request: &Request) -> Result<(), SubmitError> {
    EmailAddress::parse(&request.from).map_err(|e| invalid("from", e.to_string()))?;
    if request.subject.trim().is_empty() {
        return Err(invalid("subject", "the subject is empty"));
    }
    // The template goes into the Subject header as written; only merge values are made one
    // line when rendered.
    if let Some(c) = request.subject.chars().find(|&c| breaks_header(c)) {
        return Err(invalid(
            "subject",
            format!(
                "the subject must be one line without control characters; it holds U+{:04X}",
                c as u32
            ),
        ));
    }
    if request.raw.is_none()
        && request.text.as_deref().is_none_or(str::is_empty)
        && request.html.as_deref().is_none_or(str::is_empty)
    {
        return Err(invalid("text", "give a text or an html body (or both)"));
    }
    if request.recipients.is_empty() {
        return Err(invalid("recipients", "there is no recipient"));
    }
    if request.recipients.len() > MAX_RECIPIENTS {
        return Err(invalid(
            "recipients",
            format!("at most {MAX_RECIPIENTS} recipients per request"),
        ));
    }
    Ok(())
}

/// Which From addresses an account may send from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Senders {
    /// Any: the default (`require_verified_domains = false`), and always in the sandbox.
    Any,
    /// Only addresses in the account's verified sending domains.
    VerifiedDomains,
}

/// Refuses a From address outside the account's verified sending domains.
async fn check_sender(store: &Store, account_id: &str, from: &str) -> Result<(), SubmitError> {
    let address = EmailAddress::parse(from).map_err(|e| invalid("from", e.to_string()))?;
    let domain = address.domain();
    let why = match store.domain_status(account_id, domain).await? {
        DomainStatus::Verified => return Ok(()),
        DomainStatus::Unregistered => format!(
            "{from}: the domain {domain} is not a verified sending domain of this account; \
             register it with POST /v1/domains and publish its records"
        ),
        DomainStatus::Unverified => format!(
            "{from}: the domain {domain} is not a verified sending domain of this account; \
             publish its records (GET /v1/domains/{domain}) and check them with \
             POST /v1/domains/{domain}/verify"
        ),
    };
    Err(invalid("from", why))
}

/// A recipient resolved to an address (and lead), before the checks against the account.
struct Resolved {
    index: usize,
    to: EmailAddress,
    lead_id: Option<String>,
    fields: BTreeMap<String, String>,
}

/// [`submit_with`] from any address: for the command line and the demo, which an operator
/// runs on the server itself.
pub async fn submit(
    store: &Store,
    account_id: &str,
    request: Request,
    idempotent: Option<&Idempotent>,
    respond: impl FnOnce(&Accepted) -> String,
) -> Result<Accepted, SubmitError> {
    submit_with(
        store,
        Senders::Any,
        account_id,
        request,
        idempotent,
        respond,
    )
    .await
}

/// Queues the request's emails in one transaction and returns what happened to each
/// recipient; a From address that `senders` does not allow refuses the whole request.
/// `respond` makes the answer stored for an idempotency key from the result.
pub async fn submit_with(
    store: &Store,
    senders: Senders,
    account_id: &str,
    request: Request,
    idempotent: Option<&Idempotent>,
    respond: impl FnOnce(&Accepted) -> String,
) -> Result<Accepted, SubmitError> {
    validate(&request)?;
    if senders == Senders::VerifiedDomains {
        check_sender(store, account_id, &request.from).await?;
    }
    let mut refused = Vec::new();
    let lead_ids: Vec<String> = request
        .recipients
        .iter()
        .filter_map(|r| r.lead_id.clone())
        .collect();
    let leads_by_id = store.leads_by_ids(account_id, &lead_ids).await?;

    let mut resolved = Vec::with_capacity(request.recipients.len());
    for (index, recipient) in request.recipients.into_iter().enumerate() {
        let mut refuse = |message: String| refused.push(Refusal { index, message });
        match (recipient.lead_id, recipient.to) {
            (Some(_), Some(_)) => refuse("give lead_id or to, not both".into()),
            (None, None) => refuse("give lead_id or to".into()),
            (Some(lead_id), None) => match leads_by_id.get(&lead_id) {
                Some(lead) => resolved.push(Resolved {
                    index,
                    to: EmailAddress::parse(&lead.address)
                        .expect("stored lead addresses are valid"),
                    lead_id: Some(lead_id),
                    fields: recipient.fields,
                }),
                None => refuse(format!("no lead {lead_id} in this account")),
            },
            (None, Some(to)) => match EmailAddress::parse(&to) {
                Ok(to) => resolved.push(Resolved {
                    index,
                    to,
                    lead_id: None,
                    fields: recipient.fields,
                }),
                Err(e) => refuse(format!("to '{to}': {e}")),
            },
        }
    }

    // Sending to an address that belongs to a lead is sending to that lead.
    let keys: Vec<String> = resolved.iter().map(|r| r.to.normalized()).collect();
    let leads_by_key = store.leads_by_address_keys(account_id, &keys).await?;
    let suppressed = store.suppressed_among(account_id, &keys).await?;
    let mut entries = Vec::with_capacity(resolved.len());
    let mut indexes = Vec::with_capacity(resolved.len());
    for (r, key) in resolved.into_iter().zip(keys) {
        let lead = leads_by_key.get(&key);
        if lead.is_some_and(|l| l.permission == Permission::No) {
            refused.push(Refusal {
                index: r.index,
                message: format!("the lead {} has Permission to Email set to No", r.to),
            });
            continue;
        }
        let mut fields = lead.map(|l| l.fields.clone()).unwrap_or_default();
        fields.extend(r.fields);
        fields
            .entry("email".into())
            .or_insert_with(|| r.to.to_string());
        indexes.push(r.index);
        entries.push(QueueEntry {
            dropped: suppressed.contains(&key).then_some(Reason::Suppressed),
            header_to: None,
            lead_id: r.lead_id.or_else(|| lead.map(|l| l.id.clone())),
            to: r.to,
            fields,
        });
    }
    refused.sort_by_key(|r| r.index);

    let submission = Submission {
        content: Content {
            // As checked: the surrounding white space `EmailAddress::parse` allowed (CR LF
            // too) would end the From header.
            from: request.from.trim().to_owned(),
            from_name: request.from_name,
            subject: request.subject,
            text: request.text,
            html: request.html,
            cc: request.cc,
            reply_to: request.reply_to,
            headers: request.headers,
            tags: request.tags,
            metadata: request.metadata,
            attachments: request.attachments.into(),
            raw: request.raw.map(Into::into),
        },
        batch: request.batch,
        send_at_ms: request.send_at_ms,
        entries,
    };
    let drops: Vec<Option<Reason>> = submission.entries.iter().map(|e| e.dropped).collect();
    let accepted = |ids: &[String]| Accepted {
        queued: indexes
            .iter()
            .zip(ids)
            .zip(&drops)
            .map(|((index, id), dropped)| Queued {
                index: *index,
                id: id.clone(),
                dropped: *dropped,
            })
            .collect(),
        refused: refused.clone(),
    };
    if submission.entries.is_empty() {
        return Ok(accepted(&[]));
    }
    let ids = store
        .enqueue(account_id, &submission, idempotent, |ids| {
            respond(&accepted(ids))
        })
        .await?;
    Ok(accepted(&ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_that_could_end_its_header_is_refused() {
        let request = |subject: &str| Request {
            from: "sales@shop.example".into(),
            subject: subject.into(),
            text: Some("Hi".into()),
            recipients: vec![Recipient::default()],
            ..Request::default()
        };
        let cases = [
            ("Hello {{first_name}}", None),
            ("Grüße, {{ first_name }} ✓", None),
            ("   ", Some("the subject is empty")),
            ("Hi\r\nBcc: x@evil.example", Some("U+000D")),
            ("Hi\nBcc: x@evil.example", Some("U+000A")),
            ("Hi\tthere", Some("U+0009")),
            ("Hi\0", Some("U+0000")),
            ("Hi\u{7f}", Some("U+007F")),
            ("Hi\u{85}there", Some("U+0085")),
            ("Hi\u{2028}there", Some("U+2028")),
        ];
        for (subject, refused) in cases {
            match (validate(&request(subject)), refused) {
                (Ok(()), None) => {}
                (Err(SubmitError::Invalid { field, message }), Some(why)) => {
                    assert_eq!(field, "subject");
                    assert!(message.contains(why), "{subject:?}: {message}");
                }
                (other, _) => panic!("{subject:?}: {other:?}"),
            }
        }
    }
}
