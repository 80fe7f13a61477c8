//! The stage of an email, derived from its events alone (docs/emails.md).
//!
//! The rules, in the order [`derive`] applies them:
//! - engagement by a person ranks sent < delivered < opened < clicked < replied < unsubscribed,
//!   and the stage is the highest rank reached, whatever order the events came in;
//! - a click implies an open; any engagement, auto-reply or complaint implies delivery;
//!   machine opens and clicks imply delivery only;
//! - `failed` replaces `sent` and `delivered`, never a person's engagement.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Event, EventKind, Reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Sent,
    Failed,
    Delivered,
    Opened,
    Clicked,
    Replied,
    Unsubscribed,
}

impl Stage {
    pub const ALL: &'static [Stage] = &[
        Stage::Sent,
        Stage::Failed,
        Stage::Delivered,
        Stage::Opened,
        Stage::Clicked,
        Stage::Replied,
        Stage::Unsubscribed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Sent => "sent",
            Stage::Failed => "failed",
            Stage::Delivered => "delivered",
            Stage::Opened => "opened",
            Stage::Clicked => "clicked",
            Stage::Replied => "replied",
            Stage::Unsubscribed => "unsubscribed",
        }
    }

    /// The Last Action column of the email reports.
    pub fn last_action(self) -> &'static str {
        match self {
            Stage::Sent => "Sent",
            Stage::Failed => "Failed",
            Stage::Delivered => "Delivered",
            Stage::Opened => "Opened",
            Stage::Clicked => "Clicked",
            Stage::Replied => "Replied",
            Stage::Unsubscribed => "Unsubscribed",
        }
    }

    /// The label next to the date in a lead's activity; a sent email shows none.
    pub fn activity_label(self) -> Option<&'static str> {
        (self != Stage::Sent).then(|| self.last_action())
    }
}

impl FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .iter()
            .copied()
            .find(|stage| stage.as_str() == s)
            .ok_or_else(|| format!("unknown stage '{s}'"))
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the events of one email add up to: its stage, and the Status field and reason that
/// explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub stage: Stage,
    /// The reply that decided the stage: an SMTP reply, a Diagnostic-Code, or `Dropped`.
    pub status: Option<String>,
    pub reason: Option<Reason>,
}

/// The latest of the events that match, by time; among equal times the later in the slice.
fn latest(events: &[Event], wanted: impl Fn(&Event) -> bool) -> Option<&Event> {
    events
        .iter()
        .filter(|e| wanted(e))
        .fold(None, |best: Option<&Event>, e| match best {
            Some(b) if b.at_ms > e.at_ms => Some(b),
            _ => Some(e),
        })
}

/// Derives the stage, Status and reason from an email's events, in any order.
pub fn derive(events: &[Event]) -> Derived {
    let person = |kind: EventKind| events.iter().any(|e| e.kind == kind && !e.is_machine());
    let unsubscribed = events
        .iter()
        .any(|e| e.kind == EventKind::Unsubscribed || e.is_unsubscribing_complaint());
    let engaged = if unsubscribed {
        Some(Stage::Unsubscribed)
    } else if person(EventKind::Replied) {
        Some(Stage::Replied)
    } else if person(EventKind::Clicked) {
        Some(Stage::Clicked)
    } else if person(EventKind::Opened) {
        Some(Stage::Opened)
    } else {
        None
    };

    let failure = latest(events, |e| e.kind == EventKind::Failed);
    let delivery = latest(events, |e| {
        matches!(e.kind, EventKind::Delivered | EventKind::Relayed)
    });
    let implies_delivery = events.iter().any(|e| {
        matches!(
            e.kind,
            EventKind::Delivered
                | EventKind::Relayed
                | EventKind::Opened
                | EventKind::Clicked
                | EventKind::Replied
                | EventKind::AutoReplied
                | EventKind::Unsubscribed
                | EventKind::Complained
        )
    });

    let from_event = |stage, event: Option<&Event>| Derived {
        stage,
        status: event.and_then(|e| e.detail.status.clone()),
        reason: event.and_then(|e| e.detail.reason),
    };

    match (engaged, failure) {
        (Some(Stage::Unsubscribed), _) => {
            let complaint = latest(events, Event::is_unsubscribing_complaint);
            let unsubscribe = latest(events, |e| e.kind == EventKind::Unsubscribed);
            Derived {
                stage: Stage::Unsubscribed,
                status: delivery.and_then(|e| e.detail.status.clone()),
                reason: (unsubscribe.is_none() && complaint.is_some()).then_some(Reason::Complaint),
            }
        }
        (Some(stage), _) => from_event(stage, delivery),
        (None, Some(failed)) => from_event(Stage::Failed, Some(failed)),
        (None, None) if implies_delivery => from_event(Stage::Delivered, delivery),
        (None, None) => from_event(
            Stage::Sent,
            latest(events, |e| e.kind == EventKind::Deferred),
        ),
    }
}

/// Whether appending `event` to an email whose derivation has stage `stored` leaves the
/// derivation (stage, Status and reason) exactly as it is: an open or click that cannot raise
/// the stage. Lets the store skip re-deriving from every event on the hot tracking path.
pub fn unchanged_by(stored: Stage, event: &Event) -> bool {
    use Stage::*;
    match (event.kind, event.is_machine()) {
        // A machine's hit implies delivery only.
        (EventKind::Opened | EventKind::Clicked, true) => stored != Sent,
        (EventKind::Opened, false) => matches!(stored, Opened | Clicked | Replied | Unsubscribed),
        (EventKind::Clicked, false) => matches!(stored, Clicked | Replied | Unsubscribed),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::*;

    fn at(kind: EventKind, t: i64) -> Event {
        Event::new(kind, t)
    }

    fn stage_of(events: &[Event]) -> Stage {
        derive(events).stage
    }

    #[test]
    fn stage_table_covers_every_rule() {
        let machine = |kind, t| at(kind, t).by_machine("apple-mpp");
        let hard = |t| {
            at(Failed, t)
                .with_status("550 5.1.1 User unknown")
                .with_reason(Reason::UserUnknown)
        };
        let cases: Vec<(&str, Vec<Event>, Stage)> = vec![
            ("just queued", vec![at(Queued, 1)], Stage::Sent),
            (
                "soft bounce keeps sent",
                vec![at(Queued, 1), at(Deferred, 2)],
                Stage::Sent,
            ),
            (
                "delivery",
                vec![at(Queued, 1), at(Delivered, 2)],
                Stage::Delivered,
            ),
            (
                "relay counts as delivery",
                vec![at(Queued, 1), at(Relayed, 2)],
                Stage::Delivered,
            ),
            (
                "retried then delivered",
                vec![at(Queued, 1), at(Deferred, 2), at(Delivered, 3)],
                Stage::Delivered,
            ),
            ("rejected", vec![at(Queued, 1), hard(2)], Stage::Failed),
            (
                "async hard bounce after delivery",
                vec![at(Queued, 1), at(Delivered, 2), hard(3)],
                Stage::Failed,
            ),
            (
                "bounce recorded before the delivery it follows",
                vec![hard(3), at(Delivered, 2), at(Queued, 1)],
                Stage::Failed,
            ),
            (
                "hard bounce after a person's open keeps opened",
                vec![at(Delivered, 2), at(Opened, 3), hard(4)],
                Stage::Opened,
            ),
            (
                "open before the delivery record",
                vec![at(Opened, 5), at(Queued, 1), at(Delivered, 6)],
                Stage::Opened,
            ),
            (
                "open implies delivery",
                vec![at(Queued, 1), at(Opened, 2)],
                Stage::Opened,
            ),
            (
                "click implies open",
                vec![at(Queued, 1), at(Clicked, 2)],
                Stage::Clicked,
            ),
            (
                "an open after a click does not go back",
                vec![at(Clicked, 2), at(Opened, 3)],
                Stage::Clicked,
            ),
            (
                "machine open implies delivery only",
                vec![at(Queued, 1), machine(Opened, 2)],
                Stage::Delivered,
            ),
            (
                "machine click implies delivery only",
                vec![at(Queued, 1), machine(Clicked, 2)],
                Stage::Delivered,
            ),
            (
                "machine open does not hide a bounce",
                vec![machine(Opened, 2), hard(3)],
                Stage::Failed,
            ),
            (
                "person open after machine open",
                vec![machine(Opened, 2), at(Opened, 9)],
                Stage::Opened,
            ),
            (
                "reply",
                vec![at(Delivered, 2), at(Opened, 3), at(Replied, 4)],
                Stage::Replied,
            ),
            (
                "auto-reply is delivery, not a reply",
                vec![at(Queued, 1), at(AutoReplied, 2)],
                Stage::Delivered,
            ),
            (
                "delayed DSN changes nothing",
                vec![at(Queued, 1), at(Delayed, 2)],
                Stage::Sent,
            ),
            (
                "unsubscribe outranks reply",
                vec![at(Replied, 3), at(Unsubscribed, 4)],
                Stage::Unsubscribed,
            ),
            (
                "unsubscribe survives a later bounce",
                vec![at(Unsubscribed, 4), hard(5)],
                Stage::Unsubscribed,
            ),
            (
                "abuse complaint unsubscribes",
                vec![
                    at(Delivered, 1),
                    at(Complained, 2).with_feedback_type("abuse"),
                ],
                Stage::Unsubscribed,
            ),
            (
                "auth-failure report is an event only",
                vec![
                    at(Delivered, 1),
                    at(Complained, 2).with_feedback_type("auth-failure"),
                ],
                Stage::Delivered,
            ),
            (
                "dropped before sending",
                vec![
                    at(Queued, 1),
                    at(Failed, 1)
                        .with_status("Dropped")
                        .with_reason(Reason::Suppressed),
                ],
                Stage::Failed,
            ),
        ];
        for (name, events, expected) in cases {
            assert_eq!(stage_of(&events), expected, "{name}");
            let mut reversed = events.clone();
            reversed.reverse();
            assert_eq!(stage_of(&reversed), expected, "{name}, events reversed");
        }
    }

    #[test]
    fn status_and_reason_come_from_the_deciding_event() {
        let deferred = at(Deferred, 2)
            .with_status("452 4.2.2 Mailbox full")
            .with_reason(Reason::MailboxFull);
        let derived = derive(&[at(Queued, 1), deferred]);
        assert_eq!(derived.status.as_deref(), Some("452 4.2.2 Mailbox full"));
        assert_eq!(derived.reason, Some(Reason::MailboxFull));

        let delivered = at(Delivered, 3).with_status("250 2.0.0 Ok: queued as ABC");
        let derived = derive(&[at(Queued, 1), at(Deferred, 2), delivered.clone()]);
        assert_eq!(
            derived.status.as_deref(),
            Some("250 2.0.0 Ok: queued as ABC")
        );
        assert_eq!(derived.reason, None);

        let bounce = at(Failed, 4)
            .with_status("550 5.1.1 <ana@example.test>: Recipient address rejected")
            .with_reason(Reason::UserUnknown);
        let derived = derive(&[delivered, bounce]);
        assert_eq!(derived.stage, Stage::Failed);
        assert_eq!(
            derived.status.as_deref(),
            Some("550 5.1.1 <ana@example.test>: Recipient address rejected")
        );
        assert_eq!(derived.reason, Some(Reason::UserUnknown));

        let dropped = at(Failed, 1)
            .with_status("Dropped")
            .with_reason(Reason::Suppressed);
        let derived = derive(&[dropped]);
        assert_eq!(
            (derived.status.as_deref(), derived.reason),
            (Some("Dropped"), Some(Reason::Suppressed))
        );

        let complaint = at(Complained, 2).with_feedback_type("abuse");
        assert_eq!(derive(&[complaint]).reason, Some(Reason::Complaint));
    }

    #[test]
    fn the_shortcut_never_disagrees_with_a_full_derivation() {
        // Every history of up to three events from a varied pool, then every hit appended.
        let pool = [
            at(Queued, 1),
            at(Deferred, 2)
                .with_status("451 later")
                .with_reason(Reason::MailboxFull),
            at(Delivered, 3).with_status("250 ok"),
            at(Failed, 4)
                .with_status("550 no")
                .with_reason(Reason::UserUnknown),
            at(Opened, 5),
            at(Clicked, 6),
            at(Opened, 7).by_machine("proxy"),
            at(Replied, 8),
            at(Unsubscribed, 9),
            at(Complained, 10).with_feedback_type("abuse"),
        ];
        let hits = [
            at(Opened, 20),
            at(Clicked, 21),
            at(Opened, 22).by_machine("proxy"),
            at(Clicked, 23).by_machine("scanner"),
        ];
        let mut histories: Vec<Vec<Event>> = vec![vec![]];
        for _ in 0..3 {
            let longer: Vec<Vec<Event>> = histories
                .iter()
                .flat_map(|h| {
                    pool.iter()
                        .map(move |e| [h.clone(), vec![e.clone()]].concat())
                })
                .collect();
            histories.extend(longer);
        }
        for history in &histories {
            let before = derive(history);
            for hit in &hits {
                if unchanged_by(before.stage, hit) {
                    let after = derive(&[history.clone(), vec![hit.clone()]].concat());
                    assert_eq!(after, before, "{history:?} + {hit:?}");
                }
            }
        }
    }

    #[test]
    fn labels_and_last_action() {
        assert_eq!(Stage::Sent.activity_label(), None);
        assert_eq!(Stage::Failed.activity_label(), Some("Failed"));
        assert_eq!(Stage::Sent.last_action(), "Sent");
        for &stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>(), Ok(stage));
        }
    }
}
