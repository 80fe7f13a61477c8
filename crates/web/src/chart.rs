//! The batch comparison chart, laid out here and drawn by the template (which escapes every
//! label). Bars grouped by rate, one per batch, each labelled with its whole batch name and
//! its value, so it reads without colour; a rate that does not apply is the text `n/a`, never
//! a zero-length bar. Human and machine opens are separate groups.
//!
//! The names and values are HTML text, so they wrap instead of being cut; each bar is an SVG
//! rectangle whose width is a percentage of its row, so the chart fills its container at any
//! width. A batch's fill comes from a hash of its name, not its position, so it keeps its
//! colour whichever batches it is compared with.

use mailtrail_api::reports::percent;
use mailtrail_store::BatchStats;

/// Distinct fills (colours and a hatch); more batches than this share some (names still
/// tell them apart).
const SERIES: u64 = 8;

/// A batch name, and the rate a bar of it shows.
pub(crate) struct Bar {
    pub batch: String,
    /// The bar's length as a percentage of the row, `0`–`100`; `0` for `n/a`.
    pub width: String,
    pub value: String,
    pub na: bool,
    pub series: u64,
}

pub(crate) struct Group {
    pub title: &'static str,
    pub bars: Vec<Bar>,
}

pub(crate) struct Chart {
    pub groups: Vec<Group>,
}

/// What a rate of [`BatchStats::rates`] is called on the chart.
fn title(rate: &str) -> &'static str {
    match rate {
        "delivered" => "Delivered (of sent)",
        "failed" => "Failed (of sent)",
        "opened" => "Opened by people (of delivered)",
        "clicked" => "Clicked (of delivered)",
        "replied" => "Replied (of delivered)",
        "unsubscribed" => "Unsubscribed (of delivered)",
        "complained" => "Complained (of delivered)",
        "machine_opened" => "Opened by machines (of delivered)",
        _ => "Other",
    }
}

/// A batch's name as people read it.
pub(crate) fn batch_label(stats: &BatchStats) -> String {
    stats.batch.clone().unwrap_or_else(|| "(no batch)".into())
}

/// The fill of a batch: FNV-1a of its name, the same in every view and on every node.
pub(crate) fn series(name: &str) -> u64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % SERIES
}

/// A rate's bar length in percent of the row: a rate above zero is always visible.
fn width(rate: f64) -> String {
    let percent = rate.clamp(0.0, 1.0) * 100.0;
    let shown = if rate > 0.0 { percent.max(0.5) } else { 0.0 };
    format!("{shown:.1}")
}

/// The chart of these batches' rates, in the order given.
pub(crate) fn rates(batches: &[BatchStats]) -> Chart {
    let rates: Vec<_> = batches.iter().map(BatchStats::rates).collect();
    let names: Vec<&'static str> = rates
        .first()
        .map(|r| r.iter().map(|(name, _)| *name).collect())
        .unwrap_or_default();
    let groups = names
        .iter()
        .enumerate()
        .map(|(i, name)| Group {
            title: title(name),
            bars: batches
                .iter()
                .zip(&rates)
                .map(|(stats, rates)| {
                    let rate = rates[i].1;
                    let batch = batch_label(stats);
                    Bar {
                        width: width(rate.unwrap_or(0.0)),
                        value: percent(rate),
                        na: rate.is_none(),
                        series: series(&batch),
                        batch,
                    }
                })
                .collect(),
        })
        .collect();
    Chart { groups }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn batch(
        name: &str,
        delivered: i64,
        opened: i64,
        open_tracking: bool,
    ) -> BatchStats {
        BatchStats {
            batch: Some(name.into()),
            emails: 10,
            delivered,
            failed: 10 - delivered,
            dropped: 0,
            deferred: 0,
            opened,
            clicked: 0,
            replied: 0,
            auto_replied: 0,
            unsubscribed: 0,
            complained: 0,
            machine_opened: 1,
            machine_clicked: 0,
            open_tracking,
            click_tracking: false,
            first_queued_at_ms: 0,
            last_queued_at_ms: 0,
        }
    }

    #[test]
    fn bars_are_grouped_by_rate_and_na_is_text_not_a_bar() {
        let chart = rates(&[batch("spring", 8, 4, true), batch("autumn", 5, 0, false)]);
        assert_eq!(chart.groups.len(), 8);
        let delivered = &chart.groups[0];
        assert_eq!(delivered.title, "Delivered (of sent)");
        assert_eq!(delivered.bars[0].batch, "spring");
        assert_eq!(delivered.bars[0].value, "80.0%");
        assert_eq!(delivered.bars[0].width, "80.0");
        assert_eq!(delivered.bars[1].value, "50.0%");
        let opened = &chart.groups[2];
        assert_eq!(opened.bars[0].value, "50.0%");
        assert!(opened.bars[1].na, "open tracking was off for autumn");
        assert_eq!(
            (opened.bars[1].width.as_str(), opened.bars[1].value.as_str()),
            ("0.0", "n/a")
        );
        assert_eq!(chart.groups[7].title, "Opened by machines (of delivered)");
    }

    #[test]
    fn a_long_batch_name_is_kept_whole() {
        let name = "spring-2026-newsletter-returning-customers-europe-and-north-america";
        let chart = rates(&[batch(name, 8, 4, true)]);
        assert!(chart.groups.iter().all(|g| g.bars[0].batch == name));
    }

    #[test]
    fn a_batch_keeps_its_colour_whatever_it_is_compared_with() {
        let alone = rates(&[batch("autumn", 5, 0, true)]);
        let second = rates(&[batch("spring", 8, 4, true), batch("autumn", 5, 0, true)]);
        assert_eq!(
            alone.groups[0].bars[0].series,
            second.groups[0].bars[1].series
        );
        let names = [
            "spring", "autumn", "winter", "summer", "launch", "promo-a", "promo-b",
        ];
        let fills: std::collections::BTreeSet<u64> = names.iter().map(|n| series(n)).collect();
        assert!(fills.len() >= 4, "names spread over the fills: {fills:?}");
        assert!(fills.iter().all(|&f| f < SERIES));
    }

    #[test]
    fn a_small_rate_stays_visible_and_none_is_empty() {
        assert_eq!(width(0.0), "0.0");
        assert_eq!(width(0.001), "0.5");
        assert_eq!(width(1.5), "100.0");
    }
}
