//! What this process recorded since it started, for `/metrics`: events by kind, delivery
//! attempts by result, failures by reason, tracking hits by person or machine. Counted after
//! each commit, so a rolled-back transaction counts nothing. Per node, as Prometheus expects:
//! sum over nodes and use `rate()`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mailtrail_domain::{Event, EventKind, Reason};

#[derive(Debug, Default)]
pub struct Counters {
    events: [AtomicU64; EventKind::ALL.len()],
    attempts: [AtomicU64; EventKind::ALL.len()],
    machine_hits: [AtomicU64; 2],
    failures: Mutex<BTreeMap<&'static str, u64>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Events recorded, by kind.
    pub events: Vec<(&'static str, u64)>,
    /// Delivery attempts, by the kind of event they ended in (delivered, relayed, deferred,
    /// failed).
    pub attempts: Vec<(&'static str, u64)>,
    /// Failures (bounces, rejections, expiries, drops), by reason.
    pub failures: Vec<(&'static str, u64)>,
    /// Opens and clicks made by proxies and scanners: (`opened` | `clicked`, count).
    pub machine_hits: Vec<(&'static str, u64)>,
}

/// The kinds a delivery attempt can end in: the only `result`s `/metrics` lists, so none is
/// always 0.
const ATTEMPT_RESULTS: [EventKind; 4] = [
    EventKind::Delivered,
    EventKind::Relayed,
    EventKind::Deferred,
    EventKind::Failed,
];

fn index(kind: EventKind) -> usize {
    EventKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in ALL")
}

impl Counters {
    pub(crate) fn count(&self, event: &Event, attempted: bool) {
        let i = index(event.kind);
        self.events[i].fetch_add(1, Ordering::Relaxed);
        if attempted {
            self.attempts[i].fetch_add(1, Ordering::Relaxed);
        }
        if event.is_machine() {
            let hit = usize::from(event.kind == EventKind::Clicked);
            self.machine_hits[hit].fetch_add(1, Ordering::Relaxed);
        }
        if event.kind == EventKind::Failed {
            let reason = event.detail.reason.unwrap_or(Reason::Undefined).as_str();
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            *failures.entry(reason).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let by_kind = |counts: &[AtomicU64]| {
            EventKind::ALL
                .iter()
                .zip(counts)
                .map(|(k, n)| (k.as_str(), n.load(Ordering::Relaxed)))
                .collect()
        };
        CounterSnapshot {
            events: by_kind(&self.events),
            attempts: ATTEMPT_RESULTS
                .iter()
                .map(|k| (k.as_str(), self.attempts[index(*k)].load(Ordering::Relaxed)))
                .collect(),
            failures: self
                .failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(r, n)| (*r, *n))
                .collect(),
            machine_hits: vec![
                ("opened", self.machine_hits[0].load(Ordering::Relaxed)),
                ("clicked", self.machine_hits[1].load(Ordering::Relaxed)),
            ],
        }
    }
}
