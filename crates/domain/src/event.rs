//! The facts recorded about an email. Events are append-only: the stage is derived from them
//! (see [`crate::stage`]), never edited in place.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Reason;

/// What happened. The names are the ones webhooks and the API use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Accepted by Mailtrail and durably queued.
    Queued,
    /// An attempt met a temporary failure; the email will be tried again.
    Deferred,
    /// The recipient's server answered 2xx after DATA, or a DSN said `delivered`/`expanded`.
    Delivered,
    /// A relay (smarthost) accepted it, or a DSN said `relayed`: counts as delivered.
    Relayed,
    /// Permanently failed: a 5xx, a bounce report, expiry, or dropped before sending.
    Failed,
    /// A DSN with `Action: delayed`: recorded, changes nothing.
    Delayed,
    Opened,
    Clicked,
    Replied,
    /// Out-of-office and other RFC 3834 auto-replies: evidence of delivery, not a reply.
    AutoReplied,
    Unsubscribed,
    /// A feedback-loop report; `abuse`, `fraud` and `opt-out` end in `unsubscribed`.
    Complained,
}

impl EventKind {
    pub const ALL: &'static [EventKind] = &[
        EventKind::Queued,
        EventKind::Deferred,
        EventKind::Delivered,
        EventKind::Relayed,
        EventKind::Failed,
        EventKind::Delayed,
        EventKind::Opened,
        EventKind::Clicked,
        EventKind::Replied,
        EventKind::AutoReplied,
        EventKind::Unsubscribed,
        EventKind::Complained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Queued => "queued",
            EventKind::Deferred => "deferred",
            EventKind::Delivered => "delivered",
            EventKind::Relayed => "relayed",
            EventKind::Failed => "failed",
            EventKind::Delayed => "delayed",
            EventKind::Opened => "opened",
            EventKind::Clicked => "clicked",
            EventKind::Replied => "replied",
            EventKind::AutoReplied => "auto_replied",
            EventKind::Unsubscribed => "unsubscribed",
            EventKind::Complained => "complained",
        }
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event kind '{s}'"))
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Status of an email that failed without being sent (docs/emails.md).
pub const DROPPED: &str = "Dropped";

/// Feedback types (RFC 5965) that mean "stop emailing me" (docs/inbound.md).
pub const UNSUBSCRIBING_FEEDBACK: &[&str] = &["abuse", "fraud", "opt-out"];

/// What is known beyond the kind and time; every field is optional and kept as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDetail {
    /// The SMTP reply or Diagnostic-Code that decided this event, or `Dropped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Delivery attempt number, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Set on opens and clicks made by a proxy or scanner: why it is thought a machine's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_type: Option<String>,
    /// Free-form context: the clicked URL, the remote host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The address an open, click or unsubscribe came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The `User-Agent` of an open, click or unsubscribe, cut to [`USER_AGENT_MAX`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// The most of a user agent kept with an event: real ones are a few hundred bytes, and
/// anyone on the internet can send a longer one.
pub const USER_AGENT_MAX: usize = 512;

/// One fact about one email, at a time in milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub at_ms: i64,
    #[serde(flatten)]
    pub detail: EventDetail,
}

impl Event {
    pub fn new(kind: EventKind, at_ms: i64) -> Self {
        Self {
            kind,
            at_ms,
            detail: EventDetail::default(),
        }
    }

    pub fn with_status(mut self, status: impl Into<String>) -> Self {
        self.detail.status = Some(status.into());
        self
    }

    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.detail.reason = Some(reason);
        self
    }

    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.detail.attempt = Some(attempt);
        self
    }

    pub fn by_machine(mut self, why: impl Into<String>) -> Self {
        self.detail.machine = Some(why.into());
        self
    }

    pub fn with_feedback_type(mut self, feedback_type: impl Into<String>) -> Self {
        self.detail.feedback_type = Some(feedback_type.into());
        self
    }

    pub fn is_machine(&self) -> bool {
        self.detail.machine.is_some()
    }

    /// A failure recorded without sending: the address was suppressed or its lead's
    /// Permission to Email was No (Status `Dropped`).
    pub fn is_drop(&self) -> bool {
        self.kind == EventKind::Failed && self.detail.status.as_deref() == Some(DROPPED)
    }

    /// A complaint whose feedback type unsubscribes the recipient.
    pub fn is_unsubscribing_complaint(&self) -> bool {
        self.kind == EventKind::Complained
            && self
                .detail
                .feedback_type
                .as_deref()
                .is_some_and(|t| UNSUBSCRIBING_FEEDBACK.contains(&t.to_ascii_lowercase().as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for &kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
    }

    #[test]
    fn only_abuse_fraud_and_opt_out_complaints_unsubscribe() {
        let complaint = |t: &str| Event::new(EventKind::Complained, 0).with_feedback_type(t);
        assert!(complaint("abuse").is_unsubscribing_complaint());
        assert!(complaint("Fraud").is_unsubscribing_complaint());
        assert!(complaint("opt-out").is_unsubscribing_complaint());
        assert!(!complaint("auth-failure").is_unsubscribing_complaint());
        assert!(!complaint("not-spam").is_unsubscribing_complaint());
        assert!(!Event::new(EventKind::Complained, 0).is_unsubscribing_complaint());
    }
}
