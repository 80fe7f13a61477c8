//! What the crate's unit tests share: queued emails to record events against.

use std::collections::BTreeMap;

use mailtrail_domain::EmailAddress;

use crate::{Content, EmailId, QueueEntry, Store, Submission};

/// Queues a plain-text email to each address in `to` for `account`, in `batch`; their ids.
pub async fn queue(store: &Store, account: &str, to: &[&str], batch: Option<&str>) -> Vec<EmailId> {
    let submission = Submission {
        content: Content {
            from: "s@shop.test".into(),
            subject: "Hi".into(),
            text: Some("Hi".into()),
            html: None,
            ..Content::default()
        },
        batch: batch.map(Into::into),
        send_at_ms: None,
        entries: to
            .iter()
            .map(|to| QueueEntry {
                to: EmailAddress::parse(to).unwrap(),
                lead_id: None,
                fields: BTreeMap::new(),
                dropped: None,
                header_to: None,
            })
            .collect(),
    };
    store
        .enqueue(account, &submission, None, |_| String::new())
        .await
        .unwrap()
        .into_iter()
        .map(EmailId::from)
        .collect()
}
