//! The batch comparison chart as inline SVG, laid out here and drawn by the template (which
//! escapes every label). Horizontal bars grouped by rate, one bar per batch, each labelled
//! with its batch and its value, so it reads without colour; a rate that does not apply is
//! the text `n/a`, never a zero-length bar. Human and machine opens are separate groups.

use mailtrail_api::reports::percent;
use mailtrail_store::BatchStats;

/// Room on the left for the batch names, and the length of a 100% bar.
const LABEL_WIDTH: u32 = 180;
const BAR_SPACE: u32 = 420;
const VALUE_SPACE: u32 = 70;
const BAR_HEIGHT: u32 = 18;
const BAR_GAP: u32 = 4;
const GROUP_TITLE: u32 = 26;
const GROUP_GAP: u32 = 14;
/// Distinct fills for up to this many batches; more repeat them (names still tell apart).
const SERIES: usize = 6;

/// A batch name, and the rate a bar of it shows.
pub(crate) struct Bar {
    pub batch: String,
    /// Where the batch's name ends (right-aligned) and the bar starts.
    pub y: u32,
    pub text_y: u32,
    /// 0 for `n/a`: then no bar is drawn, only the text.
    pub width: u32,
    pub value: String,
    pub value_x: u32,
    pub na: bool,
    pub series: usize,
}

pub(crate) struct Group {
    pub title: &'static str,
    pub title_y: u32,
    pub bars: Vec<Bar>,
}

pub(crate) struct Chart {
    pub width: u32,
    pub height: u32,
    pub label_x: u32,
    pub bar_x: u32,
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

/// The chart of these batches' rates, in the order given.
pub(crate) fn rates(batches: &[BatchStats]) -> Chart {
    let rates: Vec<_> = batches.iter().map(BatchStats::rates).collect();
    let names: Vec<&'static str> = rates
        .first()
        .map(|r| r.iter().map(|(name, _)| *name).collect())
        .unwrap_or_default();
    let bar_x = LABEL_WIDTH + 10;
    let mut y = 0;
    let groups = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let title_y = y + 18;
            y += GROUP_TITLE;
            let bars = batches
                .iter()
                .zip(&rates)
                .enumerate()
                .map(|(series, (stats, rates))| {
                    let rate = rates[i].1;
                    let width = rate.map_or(0, |r| {
                        let w = (r.clamp(0.0, 1.0) * f64::from(BAR_SPACE)).round() as u32;
                        if r > 0.0 { w.max(1) } else { w }
                    });
                    let bar = Bar {
                        batch: batch_label(stats),
                        y,
                        text_y: y + BAR_HEIGHT - 5,
                        width,
                        value: percent(rate),
                        value_x: bar_x + width + 6,
                        na: rate.is_none(),
                        series: series % SERIES,
                    };
                    y += BAR_HEIGHT + BAR_GAP;
                    bar
                })
                .collect();
            y += GROUP_GAP;
            Group {
                title: title(name),
                title_y,
                bars,
            }
        })
        .collect();
    Chart {
        width: bar_x + BAR_SPACE + VALUE_SPACE,
        height: y,
        label_x: LABEL_WIDTH,
        bar_x,
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(name: &str, delivered: i64, opened: i64, open_tracking: bool) -> BatchStats {
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
        assert_eq!(delivered.bars[0].width, 336);
        assert_eq!(delivered.bars[1].value, "50.0%");
        let opened = &chart.groups[2];
        assert_eq!(opened.bars[0].value, "50.0%");
        assert!(opened.bars[1].na, "open tracking was off for autumn");
        assert_eq!(
            (opened.bars[1].width, opened.bars[1].value.as_str()),
            (0, "n/a")
        );
        assert_eq!(chart.groups[7].title, "Opened by machines (of delivered)");
        let last = chart.groups[7].bars[1].y + BAR_HEIGHT;
        assert!(chart.height >= last, "everything fits");
    }
}
