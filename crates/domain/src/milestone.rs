//! Milestones: every stage an email ever reached, kept as a set of flags so the batch report
//! (docs/web-ui.md) counts "emails that ever reached a stage", not emails whose current stage
//! it is. An email that was delivered and later bounced counts as delivered and as failed.
//!
//! The set only grows: each event adds its flags, in any order, so the store can keep it up
//! to date with one OR per event instead of re-reading an email's history.

use crate::{Event, EventKind};

/// A set of [`Milestone`]s, stored as an integer bit set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Milestones(i64);

/// One thing an email can have reached. The discriminant is the bit it is stored as: never
/// renumber one, stored rows depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    /// Delivery evidence: a 2xx after DATA, a relay's 250, a DSN `delivered`, or anything that
    /// implies delivery (an open, a click, a reply, an unsubscribe, a complaint).
    Delivered = 1,
    /// Failed after it was sent: a 5xx, a bounce report, expiry. Drops are apart.
    Failed = 2,
    /// Failed without being sent: suppressed address or no permission (`Dropped`).
    Dropped = 4,
    /// A soft bounce was retried at least once.
    Deferred = 8,
    /// A person opened it (a person's click counts too).
    Opened = 16,
    /// A person followed a tracked link.
    Clicked = 32,
    Replied = 64,
    AutoReplied = 128,
    /// Unsubscribed by link or one-click, or by an unsubscribing complaint.
    Unsubscribed = 256,
    /// A feedback-loop complaint of any type.
    Complained = 512,
    /// A proxy or scanner fetched the pixel.
    MachineOpened = 1024,
    /// A scanner followed a link.
    MachineClicked = 2048,
}

impl Milestone {
    pub const ALL: &'static [Milestone] = &[
        Milestone::Delivered,
        Milestone::Failed,
        Milestone::Dropped,
        Milestone::Deferred,
        Milestone::Opened,
        Milestone::Clicked,
        Milestone::Replied,
        Milestone::AutoReplied,
        Milestone::Unsubscribed,
        Milestone::Complained,
        Milestone::MachineOpened,
        Milestone::MachineClicked,
    ];

    /// The name of the batch report's count (and its column).
    pub fn as_str(self) -> &'static str {
        match self {
            Milestone::Delivered => "delivered",
            Milestone::Failed => "failed",
            Milestone::Dropped => "dropped",
            Milestone::Deferred => "deferred",
            Milestone::Opened => "opened",
            Milestone::Clicked => "clicked",
            Milestone::Replied => "replied",
            Milestone::AutoReplied => "auto_replied",
            Milestone::Unsubscribed => "unsubscribed",
            Milestone::Complained => "complained",
            Milestone::MachineOpened => "machine_opened",
            Milestone::MachineClicked => "machine_clicked",
        }
    }
}

impl Milestones {
    pub const NONE: Milestones = Milestones(0);

    pub fn from_bits(bits: i64) -> Self {
        Self(bits)
    }

    pub fn bits(self) -> i64 {
        self.0
    }

    pub fn contains(self, m: Milestone) -> bool {
        self.0 & m as i64 != 0
    }

    pub fn with(self, m: Milestone) -> Self {
        Self(self.0 | m as i64)
    }

    pub fn union(self, other: Milestones) -> Self {
        Self(self.0 | other.0)
    }

    /// The milestones in `self` that `before` did not have.
    pub fn added_to(self, before: Milestones) -> Self {
        Self(self.0 & !before.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Milestone> {
        Milestone::ALL
            .iter()
            .copied()
            .filter(move |m| self.contains(*m))
    }

    /// What one event shows the email reached (docs/emails.md: a click implies an open; an
    /// engagement implies delivery; a machine's hit implies delivery only).
    pub fn of(event: &Event) -> Self {
        use Milestone::*;
        let set = |ms: &[Milestone]| ms.iter().fold(Self::NONE, |acc, m| acc.with(*m));
        let machine = event.is_machine();
        match event.kind {
            EventKind::Queued | EventKind::Delayed => Self::NONE,
            EventKind::Deferred => set(&[Deferred]),
            EventKind::Delivered | EventKind::Relayed => set(&[Delivered]),
            EventKind::Failed if event.is_drop() => set(&[Dropped]),
            EventKind::Failed => set(&[Failed]),
            EventKind::Opened if machine => set(&[Delivered, MachineOpened]),
            EventKind::Opened => set(&[Delivered, Opened]),
            EventKind::Clicked if machine => set(&[Delivered, MachineClicked]),
            EventKind::Clicked => set(&[Delivered, Opened, Clicked]),
            EventKind::Replied => set(&[Delivered, Replied]),
            EventKind::AutoReplied => set(&[Delivered, AutoReplied]),
            EventKind::Unsubscribed => set(&[Delivered, Unsubscribed]),
            EventKind::Complained if event.is_unsubscribing_complaint() => {
                set(&[Delivered, Complained, Unsubscribed])
            }
            EventKind::Complained => set(&[Delivered, Complained]),
        }
    }

    /// Every milestone a list of events shows, in any order.
    pub fn of_all(events: &[Event]) -> Self {
        events
            .iter()
            .fold(Self::NONE, |acc, e| acc.union(Self::of(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reason;

    fn names(m: Milestones) -> Vec<&'static str> {
        m.iter().map(Milestone::as_str).collect()
    }

    #[test]
    fn each_event_shows_what_it_implies() {
        let cases: Vec<(Event, Vec<&str>)> = vec![
            (Event::new(EventKind::Queued, 1), vec![]),
            (Event::new(EventKind::Deferred, 1), vec!["deferred"]),
            (Event::new(EventKind::Relayed, 1), vec!["delivered"]),
            (
                Event::new(EventKind::Failed, 1).with_reason(Reason::UserUnknown),
                vec!["failed"],
            ),
            (
                Event::new(EventKind::Failed, 1)
                    .with_status("Dropped")
                    .with_reason(Reason::Suppressed),
                vec!["dropped"],
            ),
            (
                Event::new(EventKind::Opened, 1),
                vec!["delivered", "opened"],
            ),
            (
                Event::new(EventKind::Opened, 1).by_machine("apple-mpp"),
                vec!["delivered", "machine_opened"],
            ),
            (
                Event::new(EventKind::Clicked, 1),
                vec!["delivered", "opened", "clicked"],
            ),
            (
                Event::new(EventKind::Clicked, 1).by_machine("safe-links"),
                vec!["delivered", "machine_clicked"],
            ),
            (
                Event::new(EventKind::AutoReplied, 1),
                vec!["delivered", "auto_replied"],
            ),
            (
                Event::new(EventKind::Complained, 1).with_feedback_type("abuse"),
                vec!["delivered", "unsubscribed", "complained"],
            ),
            (
                Event::new(EventKind::Complained, 1).with_feedback_type("not-spam"),
                vec!["delivered", "complained"],
            ),
        ];
        for (event, want) in cases {
            assert_eq!(names(Milestones::of(&event)), want, "{event:?}");
        }
    }

    #[test]
    fn the_set_only_grows_and_order_does_not_matter() {
        let events = [
            Event::new(EventKind::Opened, 3),
            Event::new(EventKind::Delivered, 1),
            Event::new(EventKind::Failed, 5).with_reason(Reason::UserUnknown),
        ];
        let forward = Milestones::of_all(&events);
        let mut reversed = events.to_vec();
        reversed.reverse();
        assert_eq!(forward, Milestones::of_all(&reversed));
        assert_eq!(names(forward), ["delivered", "failed", "opened"]);
        let before = Milestones::NONE.with(Milestone::Delivered);
        assert_eq!(names(forward.added_to(before)), ["failed", "opened"]);
    }
}
