//! Submission: an API or CLI request becomes queued emails. Each recipient is a lead (by id)
//! or an address (which is that lead's when the account has one). A lead whose Permission to
//! Email is No is refused; a suppressed address is accepted and recorded at once as failed
//! `Dropped`, never tried (docs/emails.md). Every refused recipient is recorded with the
//! accepted part of its request, so the lead's activity and the batch report show it as "Not
//! sent" (§6). When the installation requires it, the From address must be in a verified
//! sending domain of the account.

use std::collections::BTreeMap;

use mailtrail_domain::merge::{self, breaks_header};
use mailtrail_domain::{EmailAddress, Permission, Reason};
use mailtrail_store::{
    Attachment, Content, DomainStatus, Idempotent, NewRefusal, QueueEntry, RefusalReason,
    RefusedRequest, Store, StoreError, Submission,
};

/// Most recipients in one request (docs/api.md).
pub const MAX_RECIPIENTS: usize = 100_000;
/// Most Cc addresses on one email; each is an email of its own.
pub const MAX_CC: usize = 50;
/// The most attachment bytes one message carries (decoded), as Postmark and SendGrid allow
/// about that much: many receivers refuse messages much larger once base64 adds a third.
pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;
pub const MAX_TAGS: usize = 10;
pub const MAX_METADATA: usize = 20;

/// Headers Mailtrail writes itself (or that only its MIME structure may set): a custom
/// header by one of these names would contradict or duplicate Mailtrail's.
const MANAGED_HEADERS: [&str; 14] = [
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "message-id",
    "reply-to",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "dkim-signature",
    "return-path",
    "mime-version",
    "date",
    "feedback-id",
];

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
    pub reason: RefusalReason,
    pub message: String,
}

/// A refusal with what is recorded of it.
struct Refused {
    index: usize,
    record: NewRefusal,
}

impl Refused {
    fn new(
        index: usize,
        reason: RefusalReason,
        lead_id: Option<String>,
        recipient: String,
        message: String,
    ) -> Refused {
        Refused {
            index,
            record: NewRefusal {
                lead_id,
                recipient,
                reason,
                message,
            },
        }
    }

    fn answer(&self) -> Refusal {
        Refusal {
            index: self.index,
            reason: self.record.reason,
            message: self.record.message.clone(),
        }
    }
}

/// A queued email, by its recipient's position in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub index: usize,
    /// Set for the copy sent to a Cc address: that address.
    pub cc: Option<String>,
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

/// A single mailbox (`Name <addr>` or `addr`), read as a From header's value is: its
/// display name, if any, and its address. `Err` says why it is not one.
pub fn mailbox(value: &str) -> Result<(Option<String>, EmailAddress), String> {
    let mut list = crate::message::parse_mailboxes(value).map_err(str::to_owned)?;
    match list.len() {
        1 => Ok(list.remove(0)),
        n => Err(format!("holds {n} addresses; give one")),
    }
}

/// The first character that would end a header line or hide in it, as `U+XXXX`.
fn line_breaker(value: &str) -> Option<String> {
    value
        .chars()
        .find(|&c| breaks_header(c))
        .map(|c| format!("U+{:04X}", c as u32))
}

/// A one-line text of 1 to `max` characters.
fn one_line_text(field: &str, value: &str, max: usize) -> Result<(), SubmitError> {
    let len = value.chars().count();
    if value.trim().is_empty() || len > max {
        return Err(invalid(field, format!("give 1 to {max} characters")));
    }
    if let Some(c) = line_breaker(value) {
        return Err(invalid(
            field,
            format!("must be one line without control characters; it holds {c}"),
        ));
    }
    Ok(())
}

/// An RFC 2045 token: the `type` or `subtype` of a media type.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// Checks a custom header: a field name (RFC 5322 §3.6.8) that Mailtrail does not manage,
/// and a value that cannot end its line.
fn check_header(name: &str, value: &str) -> Result<(), SubmitError> {
    let field = format!("headers.{name}");
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(invalid(
            &field,
            "not a header name: printable ASCII without spaces or a colon",
        ));
    }
    let lower = name.to_ascii_lowercase();
    if MANAGED_HEADERS.contains(&lower.as_str())
        || lower.starts_with("content-")
        || lower.starts_with("x-mailtrail-")
    {
        return Err(invalid(
            &field,
            format!(
                "{name} is written by Mailtrail and cannot be set; use the request's own fields (from, cc, reply_to, subject, attachments)"
            ),
        ));
    }
    if let Some(c) = line_breaker(value) {
        return Err(invalid(
            &field,
            format!("the value must be one line without control characters; it holds {c}"),
        ));
    }
    Ok(())
}

/// Checks the attachments: named, typed `type/subtype`, and together at most
/// [`MAX_ATTACHMENT_BYTES`].
fn check_attachments(attachments: &[Attachment]) -> Result<(), SubmitError> {
    for (i, a) in attachments.iter().enumerate() {
        one_line_text(&format!("attachments[{i}].filename"), &a.filename, 255)?;
        let media = a.content_type.split(';').next().unwrap_or_default().trim();
        let typed = media
            .split_once('/')
            .is_some_and(|(t, sub)| is_token(t) && is_token(sub));
        if !typed || line_breaker(&a.content_type).is_some() {
            return Err(invalid(
                &format!("attachments[{i}].content_type"),
                format!(
                    "{:?} is not a media type of the form type/subtype, e.g. application/pdf",
                    a.content_type
                ),
            ));
        }
        if let Some(id) = &a.content_id
            && (id.is_empty()
                || id.len() > 255
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>'))
        {
            return Err(invalid(
                &format!("attachments[{i}].content_id"),
                "1 to 255 printable ASCII characters without spaces or angle brackets; \
                 the HTML refers to it as cid:…",
            ));
        }
    }
    let total: usize = attachments.iter().map(|a| a.data.len()).sum();
    if total > MAX_ATTACHMENT_BYTES {
        return Err(invalid(
            "attachments",
            format!("{total} bytes in all; the limit is {MAX_ATTACHMENT_BYTES} bytes (10 MiB)"),
        ));
    }
    Ok(())
}

/// Checks the tags and metadata, which are stored and shown with every email.
fn check_tags_and_metadata(request: &Request) -> Result<(), SubmitError> {
    if request.tags.len() > MAX_TAGS {
        return Err(invalid("tags", format!("at most {MAX_TAGS} tags")));
    }
    for (i, tag) in request.tags.iter().enumerate() {
        one_line_text(&format!("tags[{i}]"), tag, 64)?;
    }
    if request.metadata.len() > MAX_METADATA {
        return Err(invalid("metadata", format!("at most {MAX_METADATA} keys")));
    }
    for (key, value) in &request.metadata {
        let field = format!("metadata.{key}");
        if key.is_empty()
            || key.len() > 64
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                &field,
                "a key is 1 to 64 of the characters A-Z, a-z, 0-9, _ and -",
            ));
        }
        if value.chars().count() > 1000 {
            return Err(invalid(&field, "a value is at most 1000 characters"));
        }
    }
    Ok(())
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
    if let Some(name) = &request.from_name
        && let Some(c) = line_breaker(name)
    {
        return Err(invalid(
            "from",
            format!("the display name must be one line without control characters; it holds {c}"),
        ));
    }
    if let Some(reply_to) = &request.reply_to {
        crate::message::parse_mailboxes(reply_to)
            .map_err(|why| invalid("reply_to", format!("{reply_to:?} {why}")))?;
    }
    if !request.cc.is_empty() {
        if request.raw.is_none() && request.recipients.len() > 1 {
            return Err(invalid(
                "cc",
                "cc is for a single email, not a batch: each Cc address gets its own copy of \
                 that one message",
            ));
        }
        if request.cc.len() > MAX_CC {
            return Err(invalid("cc", format!("at most {MAX_CC} Cc addresses")));
        }
        for (i, cc) in request.cc.iter().enumerate() {
            mailbox(cc).map_err(|why| invalid(&format!("cc[{i}]"), format!("{cc:?}: {why}")))?;
        }
    }
    check_tags_and_metadata(request)?;
    // A submitted MIME message is delivered as it is: its own headers and parts stand.
    if request.raw.is_none() {
        for (name, value) in &request.headers {
            check_header(name, value)?;
        }
        check_attachments(&request.attachments)?;
        // A template that cannot be rendered would fail every one of its emails.
        for (field, template) in [
            ("subject", Some(&request.subject)),
            ("text", request.text.as_ref()),
            ("html", request.html.as_ref()),
        ] {
            if let Some(template) = template {
                merge::check(template)
                    .map_err(|e| invalid(field, format!("the template cannot be rendered: {e}")))?;
            }
        }
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
        let mut refuse = |reason, lead_id, named: String, message: String| {
            refused.push(Refused::new(index, reason, lead_id, named, message))
        };
        match (recipient.lead_id, recipient.to) {
            (Some(lead_id), Some(to)) => refuse(
                RefusalReason::BadRecipient,
                None,
                format!("{lead_id} / {to}"),
                "give lead_id or to, not both".into(),
            ),
            (None, None) => refuse(
                RefusalReason::BadRecipient,
                None,
                String::new(),
                "give lead_id or to".into(),
            ),
            (Some(lead_id), None) => match leads_by_id.get(&lead_id) {
                Some(lead) => resolved.push(Resolved {
                    index,
                    to: EmailAddress::parse(&lead.address)
                        .expect("stored lead addresses are valid"),
                    lead_id: Some(lead_id),
                    fields: recipient.fields,
                }),
                None => refuse(
                    RefusalReason::UnknownLead,
                    None,
                    lead_id.clone(),
                    format!("no lead {lead_id} in this account"),
                ),
            },
            (None, Some(to)) => match EmailAddress::parse(&to) {
                Ok(to) => resolved.push(Resolved {
                    index,
                    to,
                    lead_id: None,
                    fields: recipient.fields,
                }),
                Err(e) => refuse(
                    RefusalReason::BadAddress,
                    None,
                    to.clone(),
                    format!("to '{to}': {e}"),
                ),
            },
        }
    }

    // Each Cc address is an email of its own (its own id, token and events) of the same
    // message, whose To header shows the primary recipient. A submitted MIME message names
    // every recipient in its envelope already, so it gets no copies.
    let cc: Vec<EmailAddress> = if request.raw.is_none() {
        request
            .cc
            .iter()
            .filter_map(|cc| mailbox(cc).ok())
            .map(|(_, address)| address)
            .collect()
    } else {
        Vec::new()
    };
    let cc_keys: Vec<String> = cc.iter().map(EmailAddress::normalized).collect();

    // Sending to an address that belongs to a lead is sending to that lead.
    let keys: Vec<String> = resolved.iter().map(|r| r.to.normalized()).collect();
    let all_keys: Vec<String> = keys.iter().chain(&cc_keys).cloned().collect();
    let leads_by_key = store.leads_by_address_keys(account_id, &all_keys).await?;
    let suppressed = store.suppressed_among(account_id, &all_keys).await?;
    for (i, (address, key)) in cc.iter().zip(&cc_keys).enumerate() {
        if leads_by_key
            .get(key)
            .is_some_and(|l| l.permission == Permission::No)
        {
            return Err(invalid(
                &format!("cc[{i}]"),
                format!("the lead {address} has Permission to Email set to No"),
            ));
        }
    }
    let mut entries = Vec::with_capacity(resolved.len() + cc.len());
    let mut indexes = Vec::with_capacity(resolved.len() + cc.len());
    let mut copies: Vec<Option<String>> = Vec::with_capacity(resolved.len() + cc.len());
    for (r, key) in resolved.into_iter().zip(keys) {
        let lead = leads_by_key.get(&key);
        if let Some(lead) = lead.filter(|l| l.permission == Permission::No) {
            refused.push(Refused::new(
                r.index,
                RefusalReason::NoPermission,
                Some(lead.id.clone()),
                r.to.to_string(),
                format!("the lead {} has Permission to Email set to No", r.to),
            ));
            continue;
        }
        let mut fields = lead.map(|l| l.fields.clone()).unwrap_or_default();
        fields.extend(r.fields);
        fields
            .entry("email".into())
            .or_insert_with(|| r.to.to_string());
        // The copies read as the primary recipient's message does: the same merge fields.
        // An address given twice (or the primary's own) gets one email.
        let mut sent_to = vec![key.clone()];
        let mut cc_entries = Vec::new();
        for (address, cc_key) in cc.iter().zip(&cc_keys) {
            if sent_to.contains(cc_key) {
                continue;
            }
            sent_to.push(cc_key.clone());
            cc_entries.push(QueueEntry {
                dropped: suppressed.contains(cc_key).then_some(Reason::Suppressed),
                header_to: Some(r.to.to_string()),
                lead_id: leads_by_key.get(cc_key).map(|l| l.id.clone()),
                to: address.clone(),
                fields: fields.clone(),
            });
        }
        indexes.push(r.index);
        copies.push(None);
        entries.push(QueueEntry {
            dropped: suppressed.contains(&key).then_some(Reason::Suppressed),
            header_to: None,
            lead_id: r.lead_id.or_else(|| lead.map(|l| l.id.clone())),
            to: r.to,
            fields,
        });
        for entry in cc_entries {
            indexes.push(r.index);
            copies.push(Some(entry.to.to_string()));
            entries.push(entry);
        }
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
            tags: {
                let mut tags = request.tags;
                let mut seen = std::collections::HashSet::new();
                tags.retain(|t| seen.insert(t.clone()));
                tags
            },
            metadata: request.metadata,
            attachments: request.attachments.into(),
            raw: request.raw.map(Into::into),
        },
        batch: request.batch,
        send_at_ms: request.send_at_ms,
        entries,
    };
    let drops: Vec<Option<Reason>> = submission.entries.iter().map(|e| e.dropped).collect();
    let records: Vec<NewRefusal> = refused.iter().map(|r| r.record.clone()).collect();
    let refused: Vec<Refusal> = refused.iter().map(Refused::answer).collect();
    let accepted = |ids: &[String]| Accepted {
        queued: indexes
            .iter()
            .zip(&copies)
            .zip(ids)
            .zip(&drops)
            .map(|(((index, cc), id), dropped)| Queued {
                index: *index,
                cc: cc.clone(),
                id: id.clone(),
                dropped: *dropped,
            })
            .collect(),
        refused: refused.clone(),
    };
    if submission.entries.is_empty() {
        let request = RefusedRequest {
            batch: submission.batch.as_deref(),
            subject: &submission.content.subject,
        };
        store.record_refusals(account_id, request, &records).await?;
        return Ok(accepted(&[]));
    }
    let ids = store
        .enqueue_with_refusals(account_id, &submission, &records, idempotent, |ids| {
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

    #[test]
    fn a_template_that_cannot_render_is_refused_naming_its_part() {
        for (field, template) in [
            ("subject", "Hi {{ first_name"),
            ("text", "{% if vip %}Dear VIP"),
            ("html", "<p>{{ first_name | defualt(\"there\") }}</p>"),
        ] {
            let mut request = message();
            match field {
                "subject" => request.subject = template.into(),
                "text" => request.text = Some(template.into()),
                _ => request.html = Some(template.into()),
            }
            match validate(&request) {
                Err(SubmitError::Invalid { field: f, message }) => {
                    assert_eq!(f, field);
                    assert!(message.contains("cannot be rendered"), "{message}");
                }
                other => panic!("{template:?}: {other:?}"),
            }
            // A submitted MIME message is not a template: its subject is only shown.
            request.raw = Some(b"Subject: x\r\n\r\nHi\r\n".to_vec());
            request.subject = "{{ not a template".into();
            assert!(validate(&request).is_ok(), "{template:?}");
        }
        let mut fine = message();
        fine.subject = "Hi {{ first_name | default(\"there\") }}".into();
        fine.html = Some("{% if vip %}<b>VIP</b>{% endif %}".into());
        assert!(validate(&fine).is_ok());
    }

    fn message() -> Request {
        Request {
            from: "sales@shop.example".into(),
            subject: "Hi".into(),
            text: Some("Hi".into()),
            recipients: vec![Recipient::default()],
            ..Request::default()
        }
    }

    fn refused_field(request: &Request) -> Option<String> {
        match validate(request) {
            Ok(()) => None,
            Err(SubmitError::Invalid { field, .. }) => Some(field),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_mailbox_is_one_address_with_or_without_a_name() {
        let (name, address) = mailbox("Sales Team <sales@shop.example>").unwrap();
        assert_eq!(
            (name.as_deref(), address.to_string().as_str()),
            (Some("Sales Team"), "sales@shop.example")
        );
        let (name, address) = mailbox("\"Pérez, Ana\" <ana@shop.example>").unwrap();
        assert_eq!(name.as_deref(), Some("Pérez, Ana"));
        assert_eq!(address.to_string(), "ana@shop.example");
        assert_eq!(mailbox("bo@shop.example").unwrap().0, None);
        for bad in ["", "nope", "Sales <nope>", "a@shop.example, b@shop.example"] {
            assert!(mailbox(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn headers_mailtrail_writes_and_lines_that_could_end_are_refused() {
        let with = |name: &str, value: &str| Request {
            headers: vec![(name.into(), value.into())],
            ..message()
        };
        for (name, value) in [("X-Campaign", "spring"), ("List-Id", "<news.shop.example>")] {
            assert_eq!(refused_field(&with(name, value)), None, "{name}");
        }
        for (name, value) in [
            ("Subject", "x"),
            ("REPLY-TO", "x@evil.example"),
            ("Content-Transfer-Encoding", "8bit"),
            ("x-mailtrail-email", "1"),
            ("List-Unsubscribe-Post", "x"),
            ("X Bad", "1"),
            ("", "1"),
            ("X-Ünicode", "1"),
            ("X-Note", "a\r\nBcc: x@evil.example"),
            ("X-Note", "a\u{85}"),
        ] {
            assert_eq!(
                refused_field(&with(name, value)),
                Some(format!("headers.{name}")),
                "{name}: {value:?}"
            );
        }
    }

    #[test]
    fn a_submitted_mime_message_is_not_refused_for_parts_it_does_not_use() {
        let request = Request {
            headers: vec![("Subject".into(), "x".into())],
            attachments: vec![Attachment {
                filename: "a.txt".into(),
                content_type: "nonsense".into(),
                content_id: None,
                data: vec![0; MAX_ATTACHMENT_BYTES + 1],
            }],
            ..message()
        };
        assert_eq!(refused_field(&request).as_deref(), Some("headers.Subject"));
        let raw = Request {
            raw: Some(b"From: sales@shop.example\r\n\r\nHi".to_vec()),
            text: None,
            ..request
        };
        assert_eq!(refused_field(&raw), None);
        let tagged = Request {
            tags: vec!["two\nlines".into()],
            ..raw
        };
        assert_eq!(
            refused_field(&tagged).as_deref(),
            Some("tags[0]"),
            "stored, so checked"
        );
    }

    #[test]
    fn attachments_are_named_typed_and_at_most_ten_mib() {
        let with = |content_type: &str, sizes: &[usize]| Request {
            attachments: sizes
                .iter()
                .map(|&n| Attachment {
                    filename: "f.bin".into(),
                    content_type: content_type.into(),
                    content_id: None,
                    data: vec![0; n],
                })
                .collect(),
            ..message()
        };
        let half = MAX_ATTACHMENT_BYTES / 2;
        assert_eq!(refused_field(&with("application/pdf", &[half, half])), None);
        assert_eq!(
            refused_field(&with("text/plain; charset=utf-8", &[1])),
            None
        );
        assert_eq!(
            refused_field(&with("application/pdf", &[half, half + 1])).as_deref(),
            Some("attachments")
        );
        for bad in [
            "pdf",
            "text/",
            "/plain",
            "text/plain\r\nBcc: x",
            "te xt/plain",
        ] {
            assert_eq!(
                refused_field(&with(bad, &[1])).as_deref(),
                Some("attachments[0].content_type"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cc_is_for_one_recipient() {
        let request = Request {
            cc: vec!["bo@partner.example".into()],
            ..message()
        };
        assert_eq!(refused_field(&request), None);
        let batch = Request {
            recipients: vec![Recipient::default(), Recipient::default()],
            ..request
        };
        assert_eq!(refused_field(&batch).as_deref(), Some("cc"));
    }
}
