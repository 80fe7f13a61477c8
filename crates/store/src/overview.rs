//! The overview's numbers (docs/web-ui.md): for a range of UTC days, how many of the account's
//! emails queued on them ever reached each stage, and the mail waiting for its send time.
//!
//! The counts are read from `account_days`, one row per account and day kept up to date in
//! the same transaction as the events that change it (`reports::BatchCounts`), so a month of a
//! million emails costs what a day of ten does. What each count counts is a [`Reached`], which
//! is also a filter of the email report: a count and the report it links to agree by
//! construction, and the report's total for such a filter is read from the same rows.

use std::fmt;
use std::str::FromStr;

use mailtrail_domain::{Milestone, Stage};
use sqlx::Row;

use crate::{Result, Store};

/// One UTC day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day (days since 1970-01-01) a time falls on.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// What a count of the overview counts: emails that ever reached a stage (docs/web-ui.md), so
/// an email opened and then unsubscribed counts as delivered, opened and unsubscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Every email not dropped: Mailtrail tried, or will try, to send it.
    Sent,
    Delivered,
    Failed,
    /// A person opened it (a proxy's or scanner's fetch is not counted).
    Opened,
    /// A person followed a tracked link.
    Clicked,
    Replied,
    Unsubscribed,
    /// A feedback-loop complaint.
    Complained,
}

impl Reached {
    pub const ALL: [Reached; 8] = [
        Reached::Sent,
        Reached::Delivered,
        Reached::Failed,
        Reached::Opened,
        Reached::Clicked,
        Reached::Replied,
        Reached::Unsubscribed,
        Reached::Complained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reached::Sent => "sent",
            Reached::Delivered => "delivered",
            Reached::Failed => "failed",
            Reached::Opened => "opened",
            Reached::Clicked => "clicked",
            Reached::Replied => "replied",
            Reached::Unsubscribed => "unsubscribed",
            Reached::Complained => "complained",
        }
    }

    /// The milestone it counts; `None` for [`Reached::Sent`], which counts its absence.
    fn milestone(self) -> Option<Milestone> {
        match self {
            Reached::Sent => None,
            Reached::Delivered => Some(Milestone::Delivered),
            Reached::Failed => Some(Milestone::Failed),
            Reached::Opened => Some(Milestone::Opened),
            Reached::Clicked => Some(Milestone::Clicked),
            Reached::Replied => Some(Milestone::Replied),
            Reached::Unsubscribed => Some(Milestone::Unsubscribed),
            Reached::Complained => Some(Milestone::Complained),
        }
    }

    /// The expression over an `account_days` row that counts it: the column of its name, but
    /// for sent, which is every email not dropped.
    fn column(self) -> &'static str {
        match self {
            Reached::Sent => "emails - dropped",
            other => other.as_str(),
        }
    }

    /// The condition on `e.milestones`, built from the fixed bits only.
    pub(crate) fn condition(self) -> String {
        match self.milestone() {
            None => format!("(e.milestones & {}) = 0", Milestone::Dropped as i64),
            Some(m) => format!("(e.milestones & {}) <> 0", m as i64),
        }
    }
}

impl fmt::Display for Reached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reached {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Reached::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "'{s}' is not a count; use one of {}",
                    Reached::ALL.map(Reached::as_str).join(", ")
                )
            })
    }
}

/// How the emails queued on a range of days fared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub emails: i64,
    pub dropped: i64,
    pub delivered: i64,
    pub failed: i64,
    pub opened: i64,
    pub clicked: i64,
    pub replied: i64,
    pub unsubscribed: i64,
    pub complained: i64,
    /// Open tracking was on when at least one of these emails was queued.
    pub open_tracking: bool,
    pub click_tracking: bool,
}

impl DayCounts {
    pub fn count(&self, reached: Reached) -> i64 {
        match reached {
            Reached::Sent => self.emails - self.dropped,
            Reached::Delivered => self.delivered,
            Reached::Failed => self.failed,
            Reached::Opened => self.opened,
            Reached::Clicked => self.clicked,
            Reached::Replied => self.replied,
            Reached::Unsubscribed => self.unsubscribed,
            Reached::Complained => self.complained,
        }
    }

    /// The rate shown beside a count, as SendGrid's and Postal's statistics show them:
    /// delivered and failed per email sent, everything a recipient does per email delivered.
    /// `None` (`n/a`) for the sent count itself, when there is nothing to divide by, or when
    /// the tracking that would have counted it was off for every one of these emails.
    pub fn rate(&self, reached: Reached) -> Option<f64> {
        let (of, tracked) = match reached {
            Reached::Sent => return None,
            Reached::Delivered | Reached::Failed => (self.count(Reached::Sent), true),
            Reached::Opened => (self.delivered, self.open_tracking),
            Reached::Clicked => (self.delivered, self.click_tracking),
            Reached::Replied | Reached::Unsubscribed | Reached::Complained => {
                (self.delivered, true)
            }
        };
        (tracked && of > 0).then(|| self.count(reached) as f64 / of as f64)
    }
}

/// An email waiting for its send time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledEmail {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub send_at_ms: i64,
}

/// The account's scheduled mail: how much, and what goes first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scheduled {
    pub count: i64,
    pub next: Vec<ScheduledEmail>,
}

/// The report's condition for a scheduled email; `$now` is its parameter for the time.
pub(crate) fn scheduled_condition(now: &str) -> String {
    format!(
        "e.stage = '{}' AND e.attempts = 0 AND e.next_attempt_at_ms > {now}",
        Stage::Sent.as_str()
    )
}

impl Store {
    /// The counts of the emails queued from day `from_day` until (not including)
    /// `until_day`; `None` leaves that end open.
    pub async fn day_counts(
        &self,
        account_id: &str,
        from_day: Option<i64>,
        until_day: Option<i64>,
    ) -> Result<DayCounts> {
        // SUM of a BIGINT is NUMERIC on PostgreSQL, hence the casts.
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(emails), 0) AS BIGINT) AS emails,
                    CAST(COALESCE(SUM(dropped), 0) AS BIGINT) AS dropped,
                    CAST(COALESCE(SUM(delivered), 0) AS BIGINT) AS delivered,
                    CAST(COALESCE(SUM(failed), 0) AS BIGINT) AS failed,
                    CAST(COALESCE(SUM(opened), 0) AS BIGINT) AS opened,
                    CAST(COALESCE(SUM(clicked), 0) AS BIGINT) AS clicked,
                    CAST(COALESCE(SUM(replied), 0) AS BIGINT) AS replied,
                    CAST(COALESCE(SUM(unsubscribed), 0) AS BIGINT) AS unsubscribed,
                    CAST(COALESCE(SUM(complained), 0) AS BIGINT) AS complained,
                    COALESCE(MAX(open_tracking), 0) AS open_tracking,
                    COALESCE(MAX(click_tracking), 0) AS click_tracking
             FROM account_days WHERE account_id = $1 AND day >= $2 AND day < $3",
        )
        .bind(account_id)
        .bind(from_day.unwrap_or(i64::MIN))
        .bind(until_day.unwrap_or(i64::MAX))
        .fetch_one(&self.reader)
        .await?;
        let count = |name: &str| row.try_get::<i64, _>(name);
        Ok(DayCounts {
            emails: count("emails")?,
            dropped: count("dropped")?,
            delivered: count("delivered")?,
            failed: count("failed")?,
            opened: count("opened")?,
            clicked: count("clicked")?,
            replied: count("replied")?,
            unsubscribed: count("unsubscribed")?,
            complained: count("complained")?,
            open_tracking: count("open_tracking")? != 0,
            click_tracking: count("click_tracking")? != 0,
        })
    }

    /// The days from `from_day` until (not including) `until_day` with emails that reached
    /// `reached`, and how many each has: newest first, or oldest first.
    pub(crate) async fn reached_days(
        &self,
        account_id: &str,
        reached: Reached,
        from_day: Option<i64>,
        until_day: Option<i64>,
        newest_first: bool,
    ) -> Result<Vec<(i64, i64)>> {
        let column = reached.column();
        let order = if newest_first { "DESC" } else { "ASC" };
        let rows = sqlx::query(&format!(
            "SELECT day, {column} AS n FROM account_days
             WHERE account_id = $1 AND day >= $2 AND day < $3 AND {column} > 0
             ORDER BY day {order}"
        ))
        .bind(account_id)
        .bind(from_day.unwrap_or(i64::MIN))
        .bind(until_day.unwrap_or(i64::MAX))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("day")?, row.try_get("n")?)))
            .collect()
    }

    /// The account's emails waiting for their send time (never tried, due after `now`): how
    /// many, and the first `limit` to go.
    pub async fn scheduled(&self, account_id: &str, now: i64, limit: u32) -> Result<Scheduled> {
        let condition = scheduled_condition("$2");
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM emails e WHERE e.account_id = $1 AND {condition}"
        ))
        .bind(account_id)
        .bind(now)
        .fetch_one(&self.reader)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT e.id, e.to_address, e.fields, c.subject, e.next_attempt_at_ms
             FROM emails e JOIN contents c ON c.id = e.content_id
             WHERE e.account_id = $1 AND {condition}
             ORDER BY e.next_attempt_at_ms, e.id LIMIT $3"
        ))
        .bind(account_id)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        let next = rows
            .iter()
            .map(|row| {
                Ok(ScheduledEmail {
                    id: row.try_get("id")?,
                    to: row.try_get("to_address")?,
                    subject: crate::emails::subject_from_row(row)?,
                    send_at_ms: row.try_get("next_attempt_at_ms")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Scheduled { count, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reached_names_round_trip_and_junk_is_named() {
        for r in Reached::ALL {
            assert_eq!(r.as_str().parse::<Reached>(), Ok(r));
        }
        let err = "bounced".parse::<Reached>().unwrap_err();
        assert!(
            err.contains("'bounced'") && err.contains("complained"),
            "{err}"
        );
    }

    #[test]
    fn rates_divide_by_sent_or_delivered_and_say_na_without_tracking() {
        let counts = DayCounts {
            emails: 12,
            dropped: 2,
            delivered: 8,
            failed: 2,
            opened: 4,
            clicked: 2,
            replied: 1,
            unsubscribed: 0,
            complained: 1,
            open_tracking: true,
            click_tracking: false,
        };
        assert_eq!(counts.count(Reached::Sent), 10);
        assert_eq!(counts.rate(Reached::Sent), None);
        assert_eq!(counts.rate(Reached::Delivered), Some(0.8));
        assert_eq!(counts.rate(Reached::Failed), Some(0.2));
        assert_eq!(counts.rate(Reached::Opened), Some(0.5));
        assert_eq!(
            counts.rate(Reached::Clicked),
            None,
            "click tracking was off"
        );
        assert_eq!(counts.rate(Reached::Complained), Some(0.125));
        assert_eq!(DayCounts::default().rate(Reached::Delivered), None);
    }

    #[test]
    fn days_are_utc_and_times_before_1970_fall_on_the_day_before() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
        assert_eq!(day_of(-1), -1);
    }
}
