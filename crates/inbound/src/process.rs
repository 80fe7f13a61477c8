//! Processing received mail: each stored message is classified (bounce, complaint, reply,
//! auto-reply), matched to the email it answers by its signed token, and its effects applied
//! (PRODUCT.md §1, §3, §5). A forged or unknown token changes nothing: the message is kept as
//! `unmatched`. Processing is retried until it completes, so a crash loses nothing. A
//! person's reply is also marked for forwarding to the sender (see `mailtrail-outbound`'s
//! `forward`).

use std::sync::Arc;
use std::time::Duration;

use mailtrail_bounce::{Kind, Report};
use mailtrail_domain::token::{Purpose, TokenKey};
use mailtrail_domain::{Event, EventKind, Reason};
use mailtrail_store::{Effects, Pending, Processed, QueueChange, Store, now_ms};
use tokio::sync::Notify;

/// Which of Mailtrail's addresses a message was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// `bounces+TOKEN@`: the VERP envelope sender of an email.
    Bounce(String),
    /// `reply+TOKEN@`: the reply address of an email.
    Reply(String),
    /// `unsubscribe+TOKEN@`: the mailto form of List-Unsubscribe.
    Unsubscribe(String),
    /// `fbl@`: feedback-loop reports.
    FeedbackLoop,
}

fn address(rcpt: &str) -> Option<Address> {
    let (local, _) = rcpt.rsplit_once('@')?;
    let local = local.to_ascii_lowercase();
    let token = |prefix: &str| local.strip_prefix(prefix).map(str::to_owned);
    if let Some(t) = token("bounces+") {
        Some(Address::Bounce(t))
    } else if let Some(t) = token("reply+") {
        Some(Address::Reply(t))
    } else if let Some(t) = token("unsubscribe+") {
        Some(Address::Unsubscribe(t))
    } else if local == "fbl" {
        Some(Address::FeedbackLoop)
    } else {
        None
    }
}

pub struct Processor {
    store: Store,
    tokens: TokenKey,
    received: Arc<Notify>,
}

/// Messages claimed per round.
const BATCH: i64 = 50;
/// How long a claim on a message lasts.
const LEASE: Duration = Duration::from_secs(300);

impl Processor {
    pub fn new(store: Store, tokens: TokenKey, received: Arc<Notify>) -> Self {
        Self {
            store,
            tokens,
            received,
        }
    }

    /// Processes messages as they arrive until `shutdown`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.process_pending().await {
                Ok(0) => {}
                Ok(_) => continue,
                Err(e) => tracing::error!(error = %e, "inbound processing failed; retrying"),
            }
            tokio::select! {
                () = self.received.notified() => {},
                () = tokio::time::sleep(Duration::from_secs(1)) => {},
                () = &mut shutdown => return,
            }
        }
    }

    /// Processes what is waiting now; returns how many messages were handled.
    pub async fn process_pending(&self) -> Result<usize, mailtrail_store::StoreError> {
        let pending = self
            .store
            .claim_inbound(BATCH, LEASE.as_millis() as i64)
            .await?;
        for message in &pending {
            let processed = self.process(message).await?;
            self.store.finish_inbound(&message.id, &processed).await?;
        }
        Ok(pending.len())
    }

    async fn process(&self, message: &Pending) -> Result<Processed, mailtrail_store::StoreError> {
        let report = mailtrail_bounce::classify(&message.raw);
        let to = message.rcpt_to.iter().find_map(|r| address(r));
        // The token in the address we were sent to, else the one quoted in the returned
        // headers (feedback loops usually blank the recipient out but keep our header), else
        // the returned Message-ID, which Mailtrail makes from the email id.
        let token = match &to {
            Some(Address::Bounce(t) | Address::Reply(t) | Address::Unsubscribe(t)) => {
                Some(t.clone())
            }
            Some(Address::FeedbackLoop) | None => report.origin.token.clone(),
        };
        let kind = kind_name(&to, &report);
        let email_id = match token {
            Some(token) => self
                .tokens
                .verify(&token, Purpose::Message)
                .ok()
                .map(|t| t.email_id),
            None => report
                .origin
                .message_id
                .as_deref()
                .and_then(|id| id.split_once('@'))
                .map(|(local, _)| local.to_owned()),
        };
        let Some(email_id) = email_id else {
            return Ok(unmatched(kind, "no valid token"));
        };
        let Some(account_id) = self.store.email_account(&email_id).await? else {
            return Ok(unmatched(kind, "the token names no stored email"));
        };
        let now = now_ms();
        for (event, effects) in effects(&to, &report, now) {
            self.store
                .record(&account_id, &email_id, &event, effects)
                .await?;
        }
        // A person's reply goes on to the sender; bounces and auto-replies never do (no
        // mail loops). Marked before the processing is finished, so a crash cannot lose it.
        if is_reply(&to, &report) {
            self.store.queue_forward(&message.id).await?;
        }
        Ok(Processed {
            state: "matched",
            kind,
            account_id: Some(account_id),
            email_id: Some(email_id),
            note: None,
        })
    }
}

fn unmatched(kind: String, why: &str) -> Processed {
    Processed {
        state: "unmatched",
        kind,
        account_id: None,
        email_id: None,
        note: Some(why.into()),
    }
}

/// A person's answer to an email's reply address: neither a report nor an auto-reply.
fn is_reply(to: &Option<Address>, report: &Report) -> bool {
    matches!(to, Some(Address::Reply(_))) && report.kind == Kind::Unknown
}

fn kind_name(to: &Option<Address>, report: &Report) -> String {
    match (to, report.kind) {
        (Some(Address::Unsubscribe(_)), _) => "unsubscribe",
        (_, Kind::Complaint) => "complaint",
        (_, Kind::AutoReply) => "auto_reply",
        (_, Kind::Bounce) => "bounce",
        (_, Kind::Delivered) => "delivery_notice",
        _ if is_reply(to, report) => "reply",
        (_, Kind::Unknown) => "unknown",
    }
    .into()
}

/// The events a classified message adds to its email, with their effects.
fn effects(to: &Option<Address>, report: &Report, now: i64) -> Vec<(Event, Effects)> {
    let plain = Effects::default();
    if let Some(Address::Unsubscribe(_)) = to {
        let suppress = Effects {
            suppress: true,
            ..plain
        };
        return vec![(
            Event::new(EventKind::Unsubscribed, now)
                .with_reason(Reason::Complaint)
                .with_status("mailto unsubscribe"),
            suppress,
        )];
    }
    match report.kind {
        Kind::Complaint => report
            .recipients
            .iter()
            .take(1)
            .map(|r| {
                let feedback = r.feedback_type.clone().unwrap_or_else(|| "abuse".into());
                let event = Event::new(EventKind::Complained, now)
                    .with_feedback_type(feedback)
                    .with_reason(Reason::Complaint);
                let suppress = event.is_unsubscribing_complaint();
                (event, Effects { suppress, ..plain })
            })
            .collect(),
        Kind::AutoReply => vec![(Event::new(EventKind::AutoReplied, now), plain)],
        Kind::Unknown if is_reply(to, report) => {
            vec![(Event::new(EventKind::Replied, now), plain)]
        }
        Kind::Unknown => Vec::new(),
        Kind::Bounce | Kind::Delivered => report
            .recipients
            .iter()
            .take(1)
            .filter_map(|r| {
                let status = r
                    .diagnostic
                    .clone()
                    .or_else(|| r.status.clone())
                    .unwrap_or_else(|| "bounce report".into());
                let action = r.action.as_deref().unwrap_or("failed").to_ascii_lowercase();
                match action.as_str() {
                    "failed" => Some((
                        Event::new(EventKind::Failed, now)
                            .with_status(status)
                            .with_reason(r.reason),
                        Effects {
                            queue: QueueChange::Leave,
                            attempted: false,
                            suppress: r.hard_bounce,
                        },
                    )),
                    "delayed" => Some((
                        Event::new(EventKind::Delayed, now)
                            .with_status(status)
                            .with_reason(r.reason),
                        plain,
                    )),
                    "delivered" | "expanded" => Some((
                        Event::new(EventKind::Delivered, now).with_status(status),
                        plain,
                    )),
                    "relayed" => Some((
                        Event::new(EventKind::Relayed, now).with_status(status),
                        plain,
                    )),
                    _ => None,
                }
            })
            .collect(),
    }
}
