//! Processing received mail: each stored message is classified (bounce, complaint, reply,
//! auto-reply), matched to the email it answers by its signed token, and its effects applied
//! (docs/emails.md, docs/inbound.md). Only a verified token matches; an unsigned email id, a forged or
//! altered token, or one made for another use changes nothing: the message is kept as
//! `unmatched`, with a note saying why. Processing is retried until it completes, so a crash
//! loses nothing. A person's reply is also marked for forwarding to the sender (see
//! `mailtrail-outbound`'s `forward`).

use std::sync::Arc;
use std::time::Duration;

use mailtrail_bounce::{Action, Kind, Origin, Report};
use mailtrail_domain::token::{Purpose, TokenKey};
use mailtrail_domain::{Event, EventKind, Reason};
use mailtrail_store::{Effects, EmailId, Pending, Processed, QueueChange, Store, now_ms};
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
            // One line per message: what it was and what it matched; never its content.
            tracing::info!(
                message_id = %message.id,
                kind = %processed.kind,
                state = processed.state,
                email_id = processed.email_id.as_deref(),
                note = processed.note.as_deref(),
                "inbound message processed"
            );
        }
        Ok(pending.len())
    }

    async fn process(&self, message: &Pending) -> Result<Processed, mailtrail_store::StoreError> {
        let report = mailtrail_bounce::classify(&message.raw);
        let to = message.rcpt_to.iter().find_map(|r| address(r));
        let kind = kind_name(&to, &report);
        let email_id = match matched_email(&self.tokens, &to, &report.origin) {
            Ok(email_id) => EmailId::from(email_id),
            Err(why) => return Ok(unmatched(kind, why)),
        };
        let Some(account_id) = self.store.email_account(&email_id).await? else {
            return Ok(unmatched(kind, "the token names no stored email"));
        };
        let now = now_ms();
        for (mut event, effects) in effects(&to, &report, now) {
            // A reply's note is the received message: its webhook event reads the From and
            // an excerpt from it when sent, so a lead's erasure (which empties it) holds.
            if event.kind == EventKind::Replied {
                event.detail.note = Some(message.id.clone());
            }
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

/// The email a message answers: the first token that verifies as the email's own
/// (docs/inbound.md). Sent to a token address (`bounces+`, `reply+`, `unsubscribe+`), that
/// address's token alone decides, whatever the returned headers quote; otherwise (`fbl@`,
/// where feedback loops blank the recipient out) the returned token header, then the token in
/// the returned Message-ID, then those in the Message-IDs the message answers. An email id
/// alone never matches: it is public (URLs, API answers, webhooks, exports).
fn matched_email(
    tokens: &TokenKey,
    to: &Option<Address>,
    origin: &Origin,
) -> Result<String, &'static str> {
    let candidates: Vec<&str> = match to {
        Some(Address::Bounce(t) | Address::Reply(t) | Address::Unsubscribe(t)) => vec![t],
        Some(Address::FeedbackLoop) | None => origin
            .token
            .as_deref()
            .into_iter()
            .chain(
                origin
                    .message_id
                    .iter()
                    .chain(&origin.replied_to)
                    .filter_map(|id| message_id_token(id)),
            )
            .collect(),
    };
    if candidates.is_empty() {
        return Err("no token: neither a token header nor a Message-ID of Mailtrail's");
    }
    candidates
        .into_iter()
        .find_map(|token| tokens.verify(token, Purpose::Message).ok())
        .map(|token| token.email_id)
        .ok_or("no valid token: forged, altered or made for another use")
}

/// The token in a Message-ID Mailtrail made (`EMAIL_ID.TOKEN@helo_name`, see
/// `mailtrail-outbound`'s `message`): what follows the last dot of the local part.
fn message_id_token(message_id: &str) -> Option<&str> {
    let (local, _) = message_id.rsplit_once('@')?;
    local.rsplit_once('.').map(|(_, token)| token)
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
                .with_reason(Reason::Unsubscribed)
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
            .map(|r| {
                let status = r
                    .diagnostic
                    .clone()
                    .or_else(|| r.status.clone())
                    .unwrap_or_else(|| "bounce report".into());
                match r.action.unwrap_or(Action::Failed) {
                    Action::Failed => (
                        Event::new(EventKind::Failed, now)
                            .with_status(status)
                            .with_reason(r.reason),
                        Effects {
                            queue: QueueChange::Leave,
                            attempted: false,
                            suppress: r.hard_bounce,
                        },
                    ),
                    Action::Delayed => (
                        Event::new(EventKind::Delayed, now)
                            .with_status(status)
                            .with_reason(r.reason),
                        plain,
                    ),
                    Action::Delivered | Action::Expanded => (
                        Event::new(EventKind::Delivered, now).with_status(status),
                        plain,
                    ),
                    Action::Relayed => (
                        Event::new(EventKind::Relayed, now).with_status(status),
                        plain,
                    ),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANA: &str = "0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b";
    const BO: &str = "0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6c";

    #[test]
    fn only_a_verified_message_token_matches() {
        let tokens = TokenKey::new(b"k");
        let sign = |id: &str, purpose| tokens.sign(purpose, id, None).unwrap();
        let ana = sign(ANA, Purpose::Message);
        let bo = sign(BO, Purpose::Message);
        let mut altered = ana.clone().into_bytes();
        altered[20] = if altered[20] == b'a' { b'b' } else { b'a' };
        let altered = String::from_utf8(altered).unwrap();
        let other_use = sign(ANA, Purpose::Unsubscribe);
        let id = |token: &str| format!("{ANA}.{token}@mta.test");
        let fbl = Some(Address::FeedbackLoop);
        let bounce = |token: &str| Some(Address::Bounce(token.into()));
        let origin =
            |message_id: Option<String>, token: Option<&str>, replied_to: &[String]| Origin {
                message_id,
                token: token.map(str::to_owned),
                replied_to: replied_to.to_vec(),
            };
        let cases: [(&str, Option<Address>, Origin, Option<&str>); 12] = [
            (
                "the public email id alone",
                fbl.clone(),
                origin(Some(format!("{ANA}@mta.test")), None, &[]),
                None,
            ),
            ("nothing at all", fbl.clone(), Origin::default(), None),
            (
                "the token header",
                fbl.clone(),
                origin(None, Some(&ana), &[]),
                Some(ANA),
            ),
            (
                "the returned Message-ID's token",
                fbl.clone(),
                origin(Some(id(&ana)), None, &[]),
                Some(ANA),
            ),
            (
                "an altered Message-ID token",
                fbl.clone(),
                origin(Some(id(&altered)), None, &[]),
                None,
            ),
            (
                "an altered token header",
                fbl.clone(),
                origin(Some(format!("{ANA}@mta.test")), Some(&altered), &[]),
                None,
            ),
            (
                "a token of another use",
                fbl.clone(),
                origin(Some(id(&other_use)), Some(&other_use), &[]),
                None,
            ),
            (
                "an altered header, a genuine Message-ID",
                fbl.clone(),
                origin(Some(id(&ana)), Some(&altered), &[]),
                Some(ANA),
            ),
            (
                "an auto-reply's In-Reply-To",
                None,
                origin(None, None, &["x@y.test".into(), id(&ana)]),
                Some(ANA),
            ),
            (
                "the address's token",
                bounce(&ana),
                Origin::default(),
                Some(ANA),
            ),
            // Sent to a token address, that token decides whatever the returned headers say.
            (
                "the address wins over the Message-ID",
                bounce(&bo),
                origin(Some(id(&ana)), Some(&ana), &[]),
                Some(BO),
            ),
            (
                "a forged address is not rescued by headers",
                bounce(&altered),
                origin(Some(id(&ana)), Some(&ana), &[]),
                None,
            ),
        ];
        for (case, to, origin, expected) in cases {
            let found = matched_email(&tokens, &to, &origin);
            assert_eq!(found.as_deref().ok(), expected, "{case}: {found:?}");
        }
    }

    #[test]
    fn a_mailto_unsubscribe_is_an_unsubscribe_not_a_complaint() {
        let report = mailtrail_bounce::classify(
            b"From: ana@example.test\r\nTo: unsubscribe+t@bounce.test\r\nSubject: unsubscribe\r\n\r\n\r\n",
        );
        let to = Some(Address::Unsubscribe("t".into()));
        let [(event, effects)] = effects(&to, &report, 7).try_into().unwrap();
        assert_eq!(
            (event.kind, event.detail.reason),
            (EventKind::Unsubscribed, Some(Reason::Unsubscribed)),
            "the lead's Permission No then reads Unsubscribed, and no report counts a complaint"
        );
        assert!(effects.suppress);
    }

    #[test]
    fn the_token_is_what_follows_the_last_dot_of_the_local_part() {
        for (message_id, token) in [
            ("0199.abc@mta.test", Some("abc")),
            ("0199@mta.test", None),
            (
                "forward.0199.1700000000000@bounce.test",
                Some("1700000000000"),
            ),
            ("no-at-sign.abc", None),
            ("a.b@host.with.dots", Some("b")),
        ] {
            assert_eq!(message_id_token(message_id), token, "{message_id}");
        }
    }
}
