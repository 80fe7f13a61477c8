//! How values look on the pages: times in UTC as `YYYY-MM-DD HH:MM:SS`, stage badges that read
//! without colour, and query strings for links.

use chrono::{DateTime, SecondsFormat};
use mailtrail_domain::Reason;
use mailtrail_domain::failure::{Category, connection_in_words, explain};

/// A failure in words, shown beside its raw reason and Status.
pub(crate) struct Words {
    /// Category and sentence: "Hard bounce: The mailbox does not exist."
    pub(crate) summary: String,
    /// What Mailtrail does next, or what the user can do.
    pub(crate) next: &'static str,
}

/// The words for an email's or event's reason; `None` when there is nothing to explain (no
/// reason, or one that is not a failure such as a delivery). A connection failure's stored
/// OS error text is read into what happened; the raw Status stays on the page beside it.
pub(crate) fn in_words(reason: Option<Reason>, status: Option<&str>) -> Option<Words> {
    let explanation = explain(reason?);
    if explanation.category == Category::NotAFailure {
        return None;
    }
    let sentence = status
        .filter(|_| reason == Some(Reason::NetworkError))
        .and_then(connection_in_words)
        .map_or_else(|| explanation.sentence.to_owned(), |words| words + ".");
    Some(Words {
        summary: format!("{}: {sentence}", explanation.category.label()),
        next: explanation.next,
    })
}

/// A time as the pages show it: `2025-03-01 14:05:09` (UTC), to the second so events that
/// follow each other closely (a send and its bounce) keep a readable order.
pub(crate) fn time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A time for machines (`<time datetime>`, CSV): RFC 3339 with milliseconds, as the API.
pub(crate) fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `?a=1&b=2` from the pairs whose value is not empty; `""` when none is.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.append_pair(name, value);
    }
    let out = out.finish();
    if out.is_empty() {
        out
    } else {
        format!("?{out}")
    }
}

/// A stage shown as a label: the text is always there; the icon and the border style tell
/// the stages apart without colour (PRODUCT.md §1, WCAG 1.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Badge {
    /// The stage's name, also its CSS class (`stage-failed`, …).
    pub stage: &'static str,
    pub icon: &'static str,
    pub text: &'static str,
}

impl Badge {
    /// The badge of a stage (by its name, `failed`), labelled `text`.
    pub(crate) fn new(stage: &'static str, text: &'static str) -> Self {
        let icon = match stage {
            "failed" => "✕",
            "delivered" => "✓",
            "opened" => "●",
            "clicked" => "▲",
            "replied" => "↩",
            "unsubscribed" => "⊘",
            _ => "→",
        };
        Badge { stage, icon, text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_seconds() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_700_000_059_999), "2023-11-14 22:14:19");
        assert_eq!(iso(1000), "1970-01-01T00:00:01.000Z");
    }

    #[test]
    fn queries_skip_empty_values_and_encode_the_rest() {
        assert_eq!(query(&[("q", ""), ("after", "")]), "");
        assert_eq!(
            query(&[("next", "/leads?q=a b&x=1"), ("empty", "")]),
            "?next=%2Fleads%3Fq%3Da+b%26x%3D1"
        );
    }
}
