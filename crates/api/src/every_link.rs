//! The "every link at once" machine-hit rule. A link scanner (a mail gateway checking where
//! links lead) follows every link of an email within moments; a person clicks one or two, a
//! page load apart. So clicks on an email with at least [`MIN_LINKS`] tracked links are held
//! for [`WINDOW`] from the first of them. When the window closes, if its clicks covered at
//! least [`MIN_LINKS`] distinct links and at least four fifths of the email's links (all of 3
//! or 4, 4 of 5, 8 of 10), every click of the window is recorded as a machine's with reason
//! [`REASON`]; a click already flagged for another reason (a scanner's user agent, a `HEAD`,
//! too soon after delivery) keeps that reason. Otherwise the clicks are recorded as they came.
//! Clicks after the window has closed start a new one.
//!
//! Holding delays the writing, never the answer: the redirect goes out at once. A crash loses
//! the clicks held at that moment (at most a [`WINDOW`]'s worth, like the recorder's unwritten
//! batch); a clean shutdown loses none: the holder ends when the router is dropped, after
//! handing every held click to the recorder, whose writer ends only after writing them.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mailtrail_store::{Record, Recorder};
use tokio::sync::mpsc;

/// The machine reason of clicks that covered (nearly) every link of their email.
pub const REASON: &str = "every-link-at-once";

/// Fewest links for the rule: with one or two, a person may well click them all.
const MIN_LINKS: i64 = 3;

/// How long after an email's first click its other clicks count as "at once". Scanners
/// fetch an email's links in parallel or back to back, well within it; a person reads a page
/// before clicking the next link.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Most clicks held at once; beyond it the oldest windows close early, so a flood of clicks
/// cannot grow memory without bound.
const MAX_HELD: usize = 100_000;

/// Clicks waiting to reach the holder; a full queue makes handlers wait (backpressure).
const QUEUE: usize = 4096;

/// Whether clicks on an email with `links` tracked links are held for the rule.
pub fn applies(links: i64) -> bool {
    links >= MIN_LINKS
}

/// Whether clicks on `clicked` distinct links, within one window, of an email with `links`
/// links are a scanner's.
fn every_link(clicked: usize, links: i64) -> bool {
    let clicked = clicked as i64;
    clicked >= MIN_LINKS && clicked * 5 >= links * 4
}

/// A click on link `link` of an email with `links` links.
struct Held {
    record: Record,
    link: u16,
    links: i64,
}

/// Hands clicks to the holder task, started with the first click held.
pub struct Window {
    /// Where held clicks are written in the end.
    recorder: Recorder,
    /// The holder's queue. Dropping it (with the router) ends the holder once it has
    /// released every click.
    holder: OnceLock<mpsc::Sender<Held>>,
}

impl Window {
    pub fn new(recorder: Recorder) -> Self {
        Self {
            recorder,
            holder: OnceLock::new(),
        }
    }

    /// Holds a click on link `link` of an email with `links` links.
    pub async fn hold(&self, record: Record, link: u16, links: i64) {
        let holder = self.holder.get_or_init(|| {
            let (sender, clicks) = mpsc::channel(QUEUE);
            tokio::spawn(hold_and_release(clicks, self.recorder.clone()));
            sender
        });
        let held = Held {
            record,
            link,
            links,
        };
        if let Err(mpsc::error::SendError(held)) = holder.send(held).await {
            // The holder is gone (it panicked): the click is written as it came.
            self.recorder.record(held.record, false).await;
        }
    }
}

/// The holder: collects clicks by email and releases each window when it closes; when every
/// sender is gone, releases what it still holds and ends.
async fn hold_and_release(mut clicks: mpsc::Receiver<Held>, recorder: Recorder) {
    let mut windows = Windows::default();
    loop {
        let next_close = windows.next_close();
        let sleep = tokio::time::sleep_until(
            next_close.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std),
        );
        tokio::select! {
            held = clicks.recv() => match held {
                Some(held) => windows.add(held, Instant::now()),
                None => break,
            },
            () = sleep, if next_close.is_some() => {}
        }
        for record in windows.close_due(Instant::now()) {
            recorder.record(record, false).await;
        }
    }
    for record in windows.close_all() {
        recorder.record(record, false).await;
    }
}

/// The open windows, by email, and when each closes.
#[derive(Default)]
struct Windows {
    open: HashMap<String, Clicks>,
    /// Emails by the time their window closes; every window is as long, so this is also the
    /// order they opened in.
    closing: VecDeque<(Instant, String)>,
    /// Clicks in all open windows.
    held: usize,
}

/// One email's clicks within its window.
struct Clicks {
    links: i64,
    clicked: BTreeSet<u16>,
    records: Vec<Record>,
}

impl Windows {
    fn add(&mut self, held: Held, now: Instant) {
        let email_id = &held.record.email_id;
        if !self.open.contains_key(email_id) {
            self.closing.push_back((now + WINDOW, email_id.clone()));
        }
        let clicks = self.open.entry(email_id.clone()).or_insert_with(|| Clicks {
            links: held.links,
            clicked: BTreeSet::new(),
            records: Vec::new(),
        });
        clicks.clicked.insert(held.link);
        clicks.records.push(held.record);
        self.held += 1;
    }

    fn next_close(&self) -> Option<Instant> {
        self.closing.front().map(|(at, _)| *at)
    }

    /// The clicks of every window closed by `now`, and of the oldest ones while too many
    /// are held, decided.
    fn close_due(&mut self, now: Instant) -> Vec<Record> {
        let mut released = Vec::new();
        while self
            .next_close()
            .is_some_and(|at| at <= now || self.held > MAX_HELD)
        {
            released.extend(self.close_oldest());
        }
        released
    }

    /// The clicks of every open window, decided with what is known now.
    fn close_all(&mut self) -> Vec<Record> {
        let mut released = Vec::new();
        while self.next_close().is_some() {
            released.extend(self.close_oldest());
        }
        released
    }

    fn close_oldest(&mut self) -> Vec<Record> {
        let Some((_, email_id)) = self.closing.pop_front() else {
            return Vec::new();
        };
        let Some(clicks) = self.open.remove(&email_id) else {
            return Vec::new();
        };
        self.held -= clicks.records.len();
        let scanner = every_link(clicks.clicked.len(), clicks.links);
        clicks
            .records
            .into_iter()
            .map(|record| {
                if scanner && !record.event.is_machine() {
                    Record {
                        event: record.event.by_machine(REASON),
                        ..record
                    }
                } else {
                    record
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use mailtrail_domain::{Event, EventKind};
    use mailtrail_store::Effects;

    use super::*;

    #[test]
    fn the_rule_wants_at_least_three_links_and_four_fifths_of_them() {
        for (clicked, links, scanner) in [
            (1, 1, false),
            (2, 2, false),
            (2, 3, false),
            (3, 3, true),
            (3, 4, false),
            (4, 4, true),
            (3, 5, false),
            (4, 5, true),
            (7, 10, false),
            (8, 10, true),
            (80, 100, true),
        ] {
            assert_eq!(every_link(clicked, links), scanner, "{clicked} of {links}");
        }
        assert!(!applies(2));
        assert!(applies(3));
    }

    fn click(email_id: &str, link: u16, machine: Option<&str>) -> Held {
        let mut event = Event::new(EventKind::Clicked, 1);
        if let Some(why) = machine {
            event = event.by_machine(why);
        }
        Held {
            record: Record {
                account_id: "acme".into(),
                email_id: email_id.into(),
                event,
                effects: Effects::default(),
            },
            link,
            links: 3,
        }
    }

    fn reasons(records: &[Record]) -> Vec<(&str, Option<&str>)> {
        records
            .iter()
            .map(|r| (r.email_id.as_str(), r.event.detail.machine.as_deref()))
            .collect()
    }

    #[test]
    fn every_link_within_the_window_is_a_scanner() {
        let start = Instant::now();
        let mut windows = Windows::default();
        windows.add(click("a", 0, None), start);
        windows.add(click("b", 0, None), start);
        windows.add(click("a", 1, Some("mimecast")), start);
        windows.add(click("b", 0, None), start);
        windows.add(click("a", 2, None), start + WINDOW / 2);
        assert!(windows.close_due(start + WINDOW / 2).is_empty(), "held");
        assert_eq!(
            reasons(&windows.close_due(start + WINDOW)),
            [
                ("a", Some(REASON)),
                ("a", Some("mimecast")),
                ("a", Some(REASON)),
                ("b", None),
                ("b", None),
            ]
        );
        assert_eq!(windows.held, 0);
    }

    #[test]
    fn a_click_after_the_window_starts_another() {
        let start = Instant::now();
        let mut windows = Windows::default();
        windows.add(click("a", 0, None), start);
        windows.add(click("a", 1, None), start);
        assert_eq!(reasons(&windows.close_due(start + WINDOW)).len(), 2);
        windows.add(click("a", 2, None), start + WINDOW);
        assert_eq!(
            reasons(&windows.close_all()),
            [("a", None)],
            "a shutdown releases what is held"
        );
    }
}
