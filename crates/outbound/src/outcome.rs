//! What one attempt's result does to an email: the event to record and its effects on the
//! queue and the address. Pure, so the lifecycle rules of docs/emails.md are tested with
//! tables here, apart from any socket.

use std::time::Duration;

use mailtrail_domain::classify::{Verdict, classify};
use mailtrail_domain::event::DROPPED;
use mailtrail_domain::retry::Retry;
use mailtrail_domain::{Event, EventKind, Reason, RetryPolicy, SmtpReply};
use mailtrail_store::{Claimed, Effects, QueueChange};

/// The result of trying (or not trying) one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server's answer that decided this email.
    Reply(SmtpReply),
    /// No answer to decide by: a connection, DNS or TLS failure, described in `detail`.
    NoReply {
        reason: Reason,
        detail: String,
        permanent: bool,
    },
    /// Not attempted: suppressed or refused since it was queued.
    Dropped(Reason),
}

/// The event, its effects, and whether the destination asked to slow down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub event: Event,
    pub effects: Effects,
    pub throttle: bool,
}

/// Decides an outcome for `email` at `now_ms`. `relay` records a 2xx as `relayed`.
pub fn decide(
    email: &Claimed,
    outcome: &Outcome,
    policy: &RetryPolicy,
    relay: bool,
    now_ms: i64,
) -> Decision {
    let attempt = email.attempts + 1;
    let age = Duration::from_millis((now_ms - due_at_ms(email)).max(0) as u64);
    let leave = |suppress| Effects {
        queue: QueueChange::Leave,
        attempted: true,
        suppress,
    };
    let retry_or_expire =
        |status: String, reason: Option<Reason>, retry: Retry, soft_5xx: bool| match retry {
            Retry::After(delay) => Decision {
                event: with_reason(
                    Event::new(EventKind::Deferred, now_ms)
                        .with_status(status)
                        .with_attempt(attempt),
                    reason,
                ),
                effects: Effects {
                    queue: QueueChange::RetryAt {
                        at_ms: now_ms + delay.as_millis() as i64,
                        soft_5xx,
                    },
                    attempted: true,
                    suppress: false,
                },
                throttle: false,
            },
            Retry::GiveUp => Decision {
                event: Event::new(EventKind::Failed, now_ms)
                    .with_status(status)
                    .with_reason(if soft_5xx {
                        reason.unwrap_or(Reason::Undefined)
                    } else {
                        Reason::Expired
                    })
                    .with_attempt(attempt),
                effects: leave(false),
                throttle: false,
            },
        };
    match outcome {
        Outcome::Dropped(reason) => Decision {
            event: Event::new(EventKind::Failed, now_ms)
                .with_status(DROPPED)
                .with_reason(*reason),
            effects: Effects {
                queue: QueueChange::Leave,
                attempted: false,
                suppress: false,
            },
            throttle: false,
        },
        Outcome::NoReply {
            reason,
            detail,
            permanent: true,
        } => Decision {
            event: Event::new(EventKind::Failed, now_ms)
                .with_status(detail.clone())
                .with_reason(*reason)
                .with_attempt(attempt),
            effects: leave(reason.is_hard()),
            throttle: false,
        },
        Outcome::NoReply {
            reason,
            detail,
            permanent: false,
        } => {
            let retry = policy.after_soft_failure(attempt, age, None);
            retry_or_expire(detail.clone(), Some(*reason), retry, false)
        }
        Outcome::Reply(reply) => {
            let classification = classify(reply);
            let status = reply.to_string();
            let mut decision = match classification.verdict {
                Verdict::Delivered => Decision {
                    event: Event::new(
                        if relay {
                            EventKind::Relayed
                        } else {
                            EventKind::Delivered
                        },
                        now_ms,
                    )
                    .with_status(status)
                    .with_attempt(attempt),
                    effects: leave(false),
                    throttle: false,
                },
                Verdict::Retry => {
                    let retry = policy.after_soft_failure(attempt, age, classification.hint);
                    retry_or_expire(status, classification.reason, retry, false)
                }
                Verdict::RetryFewTimes => {
                    let since_first = email
                        .first_soft_5xx_at_ms
                        .map(|first| Duration::from_millis((now_ms - first).max(0) as u64))
                        .unwrap_or_default();
                    let retry = match policy.after_soft_failure(attempt, age, None) {
                        Retry::GiveUp => Retry::GiveUp,
                        Retry::After(_) => {
                            policy.after_soft_5xx(email.soft_5xx_attempts + 1, since_first)
                        }
                    };
                    retry_or_expire(status, classification.reason, retry, true)
                }
                Verdict::Fail { suppress } => Decision {
                    event: with_reason(
                        Event::new(EventKind::Failed, now_ms)
                            .with_status(status)
                            .with_attempt(attempt),
                        classification.reason,
                    ),
                    effects: leave(suppress),
                    throttle: false,
                },
            };
            decision.throttle = classification.throttle;
            decision
        }
    }
}

/// When `email` was first due: its send time when the sender asked for a later one, else when
/// it was queued. Its age for the retry policy's `give_up_after` counts from here, so mail
/// scheduled days ahead gets the whole retry window once it is due.
pub fn due_at_ms(email: &Claimed) -> i64 {
    email.send_at_ms.map_or(email.created_at_ms, |send_at| {
        send_at.max(email.created_at_ms)
    })
}

fn with_reason(event: Event, reason: Option<Reason>) -> Event {
    match reason {
        Some(reason) => event.with_reason(reason),
        None => event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailtrail_store::Content;

    const NOW: i64 = 10_000_000;

    fn email(attempts: u32, age_ms: i64) -> Claimed {
        Claimed {
            id: "0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b".into(),
            account_id: "a".into(),
            lead_id: None,
            to: "ana@example.com".into(),
            to_domain: "example.com".into(),
            header_to: None,
            fields: Default::default(),
            content_id: "content".into(),
            attachment_count: 0,
            content: Content {
                from: "f@example.com".into(),
                subject: "s".into(),
                text: None,
                html: None,
                ..Content::default()
            },
            batch: None,
            attempts,
            soft_5xx_attempts: 0,
            first_soft_5xx_at_ms: None,
            created_at_ms: NOW - age_ms,
            send_at_ms: None,
        }
    }

    fn reply(text: &str) -> Outcome {
        Outcome::Reply(text.parse().unwrap())
    }

    #[test]
    fn the_lifecycle_of_each_kind_of_answer() {
        let policy = RetryPolicy::default();
        let five_days = 5 * 24 * 3600 * 1000;
        // (case, email, outcome, event, reason, queue change, suppress)
        type Case = (
            &'static str,
            Claimed,
            Outcome,
            EventKind,
            Option<Reason>,
            QueueChange,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "accepted",
                email(0, 0),
                reply("250 2.0.0 Ok: queued"),
                EventKind::Delivered,
                None,
                QueueChange::Leave,
                false,
            ),
            (
                "user unknown is hard",
                email(0, 0),
                reply("550 5.1.1 User unknown"),
                EventKind::Failed,
                Some(Reason::UserUnknown),
                QueueChange::Leave,
                true,
            ),
            (
                "policy block fails without suppression",
                email(0, 0),
                reply("554 5.7.1 Relay access denied"),
                EventKind::Failed,
                Some(Reason::NoRelaying),
                QueueChange::Leave,
                false,
            ),
            (
                "suspended mailbox fails without suppression",
                email(0, 0),
                reply("550 5.2.1 Mailbox disabled"),
                EventKind::Failed,
                Some(Reason::Suspend),
                QueueChange::Leave,
                false,
            ),
            (
                "mailbox full is retried in 5 minutes",
                email(0, 0),
                reply("452 4.2.2 Mailbox full"),
                EventKind::Deferred,
                Some(Reason::MailboxFull),
                QueueChange::RetryAt {
                    at_ms: NOW + 300_000,
                    soft_5xx: false,
                },
                false,
            ),
            (
                "the server's hint is honoured",
                email(0, 0),
                reply("450 4.7.1 Try again in 30 seconds"),
                EventKind::Deferred,
                Some(Reason::RateLimited),
                QueueChange::RetryAt {
                    at_ms: NOW + 30_000,
                    soft_5xx: false,
                },
                false,
            ),
            (
                "a temporary 5xx is retried a few times",
                email(0, 0),
                reply("552 5.2.2 Mailbox full"),
                EventKind::Deferred,
                Some(Reason::MailboxFull),
                QueueChange::RetryAt {
                    at_ms: NOW + 8 * 3600 * 1000,
                    soft_5xx: true,
                },
                false,
            ),
            (
                "soft bounces expire after five days",
                email(120, five_days),
                reply("451 4.3.0 Try later"),
                EventKind::Failed,
                Some(Reason::Expired),
                QueueChange::Leave,
                false,
            ),
            (
                "connection refused is retried",
                email(0, 0),
                Outcome::NoReply {
                    reason: Reason::NetworkError,
                    detail: "connection refused".into(),
                    permanent: false,
                },
                EventKind::Deferred,
                Some(Reason::NetworkError),
                QueueChange::RetryAt {
                    at_ms: NOW + 300_000,
                    soft_5xx: false,
                },
                false,
            ),
            (
                "a domain that does not exist is hard",
                email(0, 0),
                Outcome::NoReply {
                    reason: Reason::HostUnknown,
                    detail: "NXDOMAIN".into(),
                    permanent: true,
                },
                EventKind::Failed,
                Some(Reason::HostUnknown),
                QueueChange::Leave,
                true,
            ),
            (
                "a null MX is hard",
                email(0, 0),
                Outcome::NoReply {
                    reason: Reason::NotAccept,
                    detail: "null MX".into(),
                    permanent: true,
                },
                EventKind::Failed,
                Some(Reason::NotAccept),
                QueueChange::Leave,
                true,
            ),
        ];
        for (name, email, outcome, kind, reason, queue, suppress) in cases {
            let d = decide(&email, &outcome, &policy, false, NOW);
            assert_eq!(d.event.kind, kind, "{name}");
            assert_eq!(d.event.detail.reason, reason, "{name}");
            assert_eq!(d.effects.queue, queue, "{name}");
            assert_eq!(d.effects.suppress, suppress, "{name}");
            assert!(d.effects.attempted, "{name}");
            assert_eq!(d.event.detail.attempt, Some(email.attempts + 1), "{name}");
        }
    }

    #[test]
    fn the_status_field_is_the_whole_reply() {
        let d = decide(
            &email(0, 0),
            &reply("550 5.1.1 <a@b.example>: Recipient address rejected: User unknown"),
            &RetryPolicy::default(),
            false,
            NOW,
        );
        assert_eq!(
            d.event.detail.status.as_deref(),
            Some("550 5.1.1 <a@b.example>: Recipient address rejected: User unknown")
        );
    }

    #[test]
    fn mail_scheduled_days_ahead_is_retried_at_its_first_deferral() {
        let day = 24 * 3600 * 1000;
        let mut scheduled = email(0, 6 * day);
        scheduled.send_at_ms = Some(NOW);
        let d = decide(
            &scheduled,
            &reply("451 4.3.0 Try again later"),
            &RetryPolicy::default(),
            false,
            NOW,
        );
        assert_eq!(d.event.kind, EventKind::Deferred);
        assert!(matches!(d.effects.queue, QueueChange::RetryAt { at_ms, .. } if at_ms > NOW));

        // Unscheduled mail queued as long ago has used up its window.
        let late = decide(
            &email(0, 6 * day),
            &reply("451 4.3.0 Try again later"),
            &RetryPolicy::default(),
            false,
            NOW,
        );
        assert_eq!(late.event.kind, EventKind::Failed);
    }

    #[test]
    fn a_temporary_5xx_gives_up_after_three_tries() {
        let mut third = email(2, 16 * 3600 * 1000);
        third.soft_5xx_attempts = 2;
        third.first_soft_5xx_at_ms = Some(NOW - 16 * 3600 * 1000);
        let d = decide(
            &third,
            &reply("552 5.2.2 Mailbox full"),
            &RetryPolicy::default(),
            false,
            NOW,
        );
        assert_eq!(
            (d.event.kind, d.event.detail.reason),
            (EventKind::Failed, Some(Reason::MailboxFull))
        );
        assert!(!d.effects.suppress);
    }

    #[test]
    fn relays_and_drops_and_throttles() {
        let policy = RetryPolicy::default();
        assert_eq!(
            decide(&email(0, 0), &reply("250 ok"), &policy, true, NOW)
                .event
                .kind,
            EventKind::Relayed
        );
        let dropped = decide(
            &email(0, 0),
            &Outcome::Dropped(Reason::Suppressed),
            &policy,
            false,
            NOW,
        );
        assert_eq!(dropped.event.detail.status.as_deref(), Some("Dropped"));
        assert!(!dropped.effects.attempted);
        assert!(
            decide(
                &email(0, 0),
                &reply("421 4.7.0 Too many connections, slow down"),
                &policy,
                false,
                NOW
            )
            .throttle
        );
    }

    /// The server's "try again in N" (read by the domain's interpreter) sets the next try.
    #[test]
    fn a_retry_hint_in_the_reply_sets_the_next_try() {
        let policy = RetryPolicy::default();
        let decision = decide(
            &email(0, 0),
            &reply("450 4.7.1 Greylisted, please try again in 30 seconds"),
            &policy,
            false,
            NOW,
        );
        assert_eq!(
            decision.effects.queue,
            QueueChange::RetryAt {
                at_ms: NOW + 30_000,
                soft_5xx: false
            }
        );
    }
}
