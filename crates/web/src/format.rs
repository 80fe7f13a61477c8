//! How values look on the pages: times as `YYYY-MM-DD HH:MM:SS ZONE` in the viewer's own
//! timezone, stage badges that read without colour, and query strings for links.
//!
//! The timezone is the signed-in person's ([`use_zone`], called once their session is read);
//! [`in_viewers_zone`] gives each request its own, so every page's times follow it without
//! each handler passing it along. Without a session (or outside a request) times are UTC.

use std::sync::OnceLock;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat};
use chrono_tz::Tz;
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

tokio::task_local! {
    /// The timezone of the request being answered, once its viewer is known.
    static ZONE: OnceLock<Tz>;
}

/// Runs the rest of the request with a timezone of its own, set by [`use_zone`].
pub(crate) async fn in_viewers_zone(request: Request, next: Next) -> Response {
    ZONE.scope(OnceLock::new(), next.run(request)).await
}

/// The timezone this request's times are shown in: the viewer's, else UTC.
pub(crate) fn zone() -> Tz {
    ZONE.try_with(|zone| zone.get().copied())
        .ok()
        .flatten()
        .unwrap_or(Tz::UTC)
}

/// Shows the rest of this request's times in `name` (the viewer's stored choice); an unknown
/// name leaves UTC.
pub(crate) fn use_zone(name: &str) {
    if let Ok(tz) = name.parse::<Tz>() {
        let _ = ZONE.try_with(|zone| zone.set(tz));
    }
}

/// A time as the pages show it: `2025-03-01 15:05:09 CET` in the viewer's timezone, named by
/// its abbreviation; to the second so events that follow each other closely (a send and its
/// bounce) keep a readable order.
pub(crate) fn time(ms: i64) -> String {
    time_in(ms, zone())
}

/// [`time`] in a given timezone.
fn time_in(ms: i64, tz: Tz) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
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
    fn times_are_seconds_in_the_zone_they_name() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC", "UTC outside a request");
        assert_eq!(time(1_700_000_059_999), "2023-11-14 22:14:19 UTC");
        let paris: Tz = "Europe/Paris".parse().unwrap();
        // Winter and summer time, and a zone whose abbreviation is an offset.
        assert_eq!(time_in(1_700_000_059_999, paris), "2023-11-14 23:14:19 CET");
        assert_eq!(
            time_in(1_690_000_000_000, paris),
            "2023-07-22 06:26:40 CEST"
        );
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        assert_eq!(time_in(0, tokyo), "1970-01-01 09:00:00 JST");
        let sao_paulo: Tz = "America/Sao_Paulo".parse().unwrap();
        assert_eq!(time_in(0, sao_paulo), "1969-12-31 21:00:00 -03");
        assert_eq!(iso(1000), "1970-01-01T00:00:01.000Z");
    }

    #[tokio::test]
    async fn a_request_shows_times_in_the_zone_its_viewer_chose() {
        let shown = ZONE
            .scope(OnceLock::new(), async {
                use_zone("Not/A_Zone");
                let before = time(0);
                use_zone("Asia/Tokyo");
                (before, time(0))
            })
            .await;
        assert_eq!(shown.0, "1970-01-01 00:00:00 UTC");
        assert_eq!(shown.1, "1970-01-01 09:00:00 JST");
        assert_eq!(
            time(0),
            "1970-01-01 00:00:00 UTC",
            "only inside that request"
        );
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
