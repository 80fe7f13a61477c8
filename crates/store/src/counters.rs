//! What this process recorded since it started, for `/metrics`: events by kind, delivery
//! attempts by result, failures by reason, tracking hits by machines (counted after each
//! commit, so a rolled-back transaction counts nothing), and how long delivered emails waited
//! and outbound SMTP sessions lasted (histograms the delivery worker fills). Per node, as
//! Prometheus expects: sum over nodes and use `rate()`.

use std::hash::Hash;
use std::time::Duration;

use mailtrail_domain::{Event, EventKind, Reason};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The kinds a delivery attempt can end in: the only `result`s `/metrics` lists, so none is
/// always 0.
const ATTEMPT_RESULTS: [EventKind; 4] = [
    EventKind::Delivered,
    EventKind::Relayed,
    EventKind::Deferred,
    EventKind::Failed,
];

/// The tracking hits a machine (a proxy or a scanner) can make.
const MACHINE_HITS: [EventKind; 2] = [EventKind::Opened, EventKind::Clicked];

/// Upper bounds, in seconds, of the queue-to-delivery latency buckets. An email delivered at
/// its first attempt waits for the next poll (1 s), a DNS lookup and one SMTP transaction:
/// under a second to a minute, in fine buckets. One that was deferred waits for the retry
/// schedule (5 minutes, doubling up to an hour): a bucket per retry step up to two hours.
/// Then hours and days, up to the default `give_up_after` of 5 days.
const DELIVERY_LATENCY_BUCKETS: [f64; 17] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
    21_600.0, 86_400.0, 432_000.0,
];

/// Upper bounds, in seconds, of the SMTP session duration buckets. A session to a nearby
/// server carrying one email takes milliseconds, one across the internet a fraction of a
/// second to a few seconds, one carrying up to `messages_per_connection` emails (100) at a
/// destination's pace minutes; the last bucket is the DATA timeout (10 minutes).
const SESSION_DURATION_BUCKETS: [f64; 15] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByKind {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByResult {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByReason {
    reason: &'static str,
}

/// The process's counters and histograms. Every series of a label whose values are known in
/// advance (event kinds, attempt results, machine hits) exists from the start, at 0, so
/// `rate()` sees the first increment; failures appear by reason as they happen, so every
/// reason listed has occurred.
#[derive(Debug)]
pub struct Counters {
    events: Family<ByKind, Counter>,
    attempts: Family<ByResult, Counter>,
    failures: Family<ByReason, Counter>,
    machine_hits: Family<ByKind, Counter>,
    /// From when an email was queued (or its send time, if later) to its delivery.
    delivery_latency: Histogram,
    /// One outbound SMTP session, from its TCP connection to its end.
    session_duration: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        let counters = Counters {
            events: Family::default(),
            attempts: Family::default(),
            failures: Family::default(),
            machine_hits: Family::default(),
            delivery_latency: Histogram::new(DELIVERY_LATENCY_BUCKETS),
            session_duration: Histogram::new(SESSION_DURATION_BUCKETS),
        };
        at_zero(
            &counters.events,
            EventKind::ALL.iter().map(|k| ByKind { kind: k.as_str() }),
        );
        at_zero(
            &counters.attempts,
            ATTEMPT_RESULTS.map(|k| ByResult { result: k.as_str() }),
        );
        at_zero(
            &counters.machine_hits,
            MACHINE_HITS.map(|k| ByKind { kind: k.as_str() }),
        );
        counters
    }
}

/// Creates the series of each of `labels` in `family`, at 0.
fn at_zero<S: Clone + Hash + Eq>(family: &Family<S, Counter>, labels: impl IntoIterator<Item = S>) {
    for label in labels {
        // Only creating the series matters, not the handle on it.
        let _ = family.get_or_create(&label);
    }
}

impl Counters {
    /// Counts a committed event; `attempted` when it is the outcome of a delivery attempt.
    pub(crate) fn count(&self, event: &Event, attempted: bool) {
        let kind = event.kind.as_str();
        self.events.get_or_create(&ByKind { kind }).inc();
        if attempted {
            self.attempts
                .get_or_create(&ByResult { result: kind })
                .inc();
        }
        if event.is_machine() {
            self.machine_hits.get_or_create(&ByKind { kind }).inc();
        }
        if event.kind == EventKind::Failed {
            let reason = event.detail.reason.unwrap_or(Reason::Undefined).as_str();
            self.failures.get_or_create(&ByReason { reason }).inc();
        }
    }

    /// An email was delivered (or handed to the relay) `waited` after it was due.
    pub fn delivered_after(&self, waited: Duration) {
        self.delivery_latency.observe(waited.as_secs_f64());
    }

    /// An outbound SMTP session lasted `duration`.
    pub fn session_lasted(&self, duration: Duration) {
        self.session_duration.observe(duration.as_secs_f64());
    }

    /// Adds every counter and histogram to `registry`, under the names `/metrics` shows.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "events",
            "Events recorded by this node, by kind",
            self.events.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Delivery attempts made by this node, by result",
            self.attempts.clone(),
        );
        registry.register(
            "failures",
            "Failed emails (bounces, rejections, expiries, drops) recorded by this node, by reason",
            self.failures.clone(),
        );
        registry.register(
            "machine_hits",
            "Opens and clicks by proxies and scanners recorded by this node",
            self.machine_hits.clone(),
        );
        registry.register_with_unit(
            "delivery_latency",
            "From when an email was queued, or its send time if later, to its delivery or \
             relay, for the emails this node delivered",
            Unit::Seconds,
            self.delivery_latency.clone(),
        );
        registry.register_with_unit(
            "smtp_session_duration",
            "Outbound SMTP sessions of this node, from the TCP connection to the end",
            Unit::Seconds,
            self.session_duration.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailtrail_domain::EventKind;

    fn encoded(counters: &Counters) -> String {
        let mut registry = Registry::with_prefix("mailtrail");
        counters.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn known_labels_start_at_zero_and_failures_appear_as_they_happen() {
        let counters = Counters::default();
        let text = encoded(&counters);
        for line in [
            "mailtrail_events_total{kind=\"complained\"} 0",
            "mailtrail_delivery_attempts_total{result=\"relayed\"} 0",
            "mailtrail_machine_hits_total{kind=\"clicked\"} 0",
            "mailtrail_delivery_latency_seconds_count 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        assert!(!text.contains("mailtrail_failures_total{"), "{text}");

        let mut failed = Event::new(EventKind::Failed, 0);
        failed.detail.reason = Some(Reason::UserUnknown);
        counters.count(&failed, true);
        let text = encoded(&counters);
        for line in [
            "mailtrail_failures_total{reason=\"userunknown\"} 1",
            "mailtrail_delivery_attempts_total{result=\"failed\"} 1",
            "mailtrail_events_total{kind=\"failed\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }

    #[test]
    fn latencies_fall_in_the_buckets_of_their_range() {
        let counters = Counters::default();
        counters.delivered_after(Duration::from_millis(300));
        counters.delivered_after(Duration::from_secs(2 * 3600));
        let text = encoded(&counters);
        for line in [
            "mailtrail_delivery_latency_seconds_bucket{le=\"0.25\"} 0",
            "mailtrail_delivery_latency_seconds_bucket{le=\"0.5\"} 1",
            "mailtrail_delivery_latency_seconds_bucket{le=\"3600\"} 1",
            "mailtrail_delivery_latency_seconds_bucket{le=\"7200\"} 2",
            "mailtrail_delivery_latency_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }
}
