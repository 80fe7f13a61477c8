//! The views of docs/web-ui.md: the email report (one row per email, newest first, filtered
//! and paged by keyset), the batch report (counts of emails that ever reached each stage) and
//! a lead's activity.
//!
//! The batch report reads `batch_stats`, one row per batch kept up to date in the same
//! transaction as the events that change it ([`count_queued`], `BatchCounts`), so
//! it costs the same with a million emails as with ten. `account_days` is kept the same way,
//! one row per account and UTC day of queueing, for the overview and the report's totals
//! (`crate::overview`). On PostgreSQL the row of a batch, and the row of an account's day,
//! are points of contention between nodes recording outcomes at once; each update is a
//! single-row increment, held for the rest of the event's transaction.

use std::collections::BTreeMap;

use mailtrail_domain::{Milestone, Milestones, Reason, Stage};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::overview::{Reached, day_of};
use crate::{AccountId, Result, Settings, Store, StoreError};

/// Which emails the email report lists. Times are the email's queued time, in ms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailFilter {
    pub batch: Option<String>,
    pub stage: Option<Stage>,
    pub from_ms: Option<i64>,
    /// Exclusive.
    pub to_ms: Option<i64>,
    /// Only emails whose message carries this tag.
    pub tag: Option<String>,
    /// Only emails that ever reached this (the overview's counts).
    pub reached: Option<Reached>,
    /// Only emails whose normalised recipient address starts with this (lower case).
    pub recipient: Option<String>,
    /// Only emails waiting for their send time, never tried yet.
    pub scheduled: bool,
}

impl EmailFilter {
    /// Whether the filter is at most a batch and a [`Reached`]: what `batch_stats` counts.
    fn is_batch(&self) -> bool {
        EmailFilter {
            batch: None,
            reached: None,
            ..self.clone()
        } == EmailFilter::default()
    }

    /// Whether the filter is at most a range of whole UTC days and a [`Reached`]: what
    /// `account_days` counts.
    fn is_days(&self) -> bool {
        let whole = |ms: Option<i64>| ms.is_none_or(|ms| ms % crate::overview::DAY_MS == 0);
        self.batch.is_none()
            && self.stage.is_none()
            && self.tag.is_none()
            && self.recipient.is_none()
            && !self.scheduled
            && whole(self.from_ms)
            && whole(self.to_ms)
    }
}

/// The most rows the email report counts over the emails themselves for its total; above it,
/// the total says "more than".
pub const TOTAL_CAP: i64 = 10_000;

/// How many emails the email report's filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    pub count: i64,
    /// There are more than `count` ([`TOTAL_CAP`]).
    pub more: bool,
}

/// Which page of the email report: the first, the one after a row, or the one before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    First,
    After(Cursor),
    Before(Cursor),
}

/// Where a page of the email report starts: just after this email, in newest-first order.
/// Opaque to clients as `"{created_at_ms}.{id}"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at_ms: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at_ms, self.id)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let (at, id) = s.split_once('.')?;
        let valid_id = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        Some(Cursor {
            created_at_ms: at.parse().ok()?,
            id: valid_id.then(|| id.to_owned())?,
        })
    }
}

/// One row of the email report, and one email of a lead's activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailRow {
    pub id: String,
    pub lead_id: Option<String>,
    pub to: String,
    pub subject: String,
    pub batch: Option<String>,
    pub created_at_ms: i64,
    pub stage: Stage,
    pub status: Option<String>,
    pub reason: Option<Reason>,
}

impl EmailRow {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            created_at_ms: self.created_at_ms,
            id: self.id.clone(),
        }
    }
}

/// One batch of the batch report: how many of its emails ever reached each stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchStats {
    /// `None` for emails sent without a batch.
    pub batch: Option<String>,
    pub emails: i64,
    pub delivered: i64,
    pub failed: i64,
    pub dropped: i64,
    pub deferred: i64,
    pub opened: i64,
    pub clicked: i64,
    pub replied: i64,
    pub auto_replied: i64,
    pub unsubscribed: i64,
    pub complained: i64,
    pub machine_opened: i64,
    pub machine_clicked: i64,
    pub open_tracking: bool,
    pub click_tracking: bool,
    pub first_queued_at_ms: i64,
    pub last_queued_at_ms: i64,
}

impl BatchStats {
    /// Emails Mailtrail tried to send: all but the dropped (docs/web-ui.md).
    pub fn sent(&self) -> i64 {
        self.emails - self.dropped
    }

    /// The batch's emails that reached `reached`; all of them for `None`.
    pub fn count(&self, reached: Option<Reached>) -> i64 {
        match reached {
            None => self.emails,
            Some(Reached::Sent) => self.sent(),
            Some(Reached::Delivered) => self.delivered,
            Some(Reached::Failed) => self.failed,
            Some(Reached::Opened) => self.opened,
            Some(Reached::Clicked) => self.clicked,
            Some(Reached::Replied) => self.replied,
            Some(Reached::Unsubscribed) => self.unsubscribed,
            Some(Reached::Complained) => self.complained,
        }
    }

    /// The batch report's rates, in display order: delivered and failed per email sent,
    /// the rest per email delivered. `None` is `n/a`: nothing to divide by, or the tracking
    /// that would have counted it was off for the batch.
    pub fn rates(&self) -> [(&'static str, Option<f64>); 8] {
        let per = |count: i64, of: i64, tracked: bool| {
            (tracked && of > 0).then(|| count as f64 / of as f64)
        };
        let (sent, delivered) = (self.sent(), self.delivered);
        [
            ("delivered", per(delivered, sent, true)),
            ("failed", per(self.failed, sent, true)),
            ("opened", per(self.opened, delivered, self.open_tracking)),
            ("clicked", per(self.clicked, delivered, self.click_tracking)),
            ("replied", per(self.replied, delivered, true)),
            ("unsubscribed", per(self.unsubscribed, delivered, true)),
            ("complained", per(self.complained, delivered, true)),
            (
                "machine_opened",
                per(self.machine_opened, delivered, self.open_tracking),
            ),
        ]
    }
}

/// A reply in a lead's activity: its own item, next to the email it answers.
#[derive(Debug, Clone)]
pub struct ReplyRow {
    pub inbound_id: String,
    pub email_id: String,
    pub received_at_ms: i64,
    pub mail_from: String,
    pub raw: Vec<u8>,
}

/// The columns an [`EmailRow`] is read from.
const EMAIL_ROW: &str = "e.id, e.lead_id, e.to_address, c.subject, e.fields, e.batch,
                         e.created_at_ms, e.stage, e.status, e.reason";

fn email_row(row: &AnyRow) -> Result<EmailRow> {
    let stage: String = row.try_get("stage")?;
    let reason: Option<String> = row.try_get("reason")?;
    Ok(EmailRow {
        id: row.try_get("id")?,
        lead_id: row.try_get("lead_id")?,
        to: row.try_get("to_address")?,
        subject: crate::emails::subject_from_row(row)?,
        batch: row.try_get("batch")?,
        created_at_ms: row.try_get("created_at_ms")?,
        stage: stage.parse().map_err(StoreError::Corrupt)?,
        status: row.try_get("status")?,
        reason: reason
            .map(|r| {
                r.parse::<Reason>()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()?,
    })
}

fn batch_stats(row: &AnyRow) -> Result<BatchStats> {
    let batch: String = row.try_get("batch")?;
    let count = |name: &str| row.try_get::<i64, _>(name);
    Ok(BatchStats {
        batch: (!batch.is_empty()).then_some(batch),
        emails: count("emails")?,
        delivered: count("delivered")?,
        failed: count("failed")?,
        dropped: count("dropped")?,
        deferred: count("deferred")?,
        opened: count("opened")?,
        clicked: count("clicked")?,
        replied: count("replied")?,
        auto_replied: count("auto_replied")?,
        unsubscribed: count("unsubscribed")?,
        complained: count("complained")?,
        machine_opened: count("machine_opened")?,
        machine_clicked: count("machine_clicked")?,
        open_tracking: count("open_tracking")? != 0,
        click_tracking: count("click_tracking")? != 0,
        first_queued_at_ms: count("first_queued_at_ms")?,
        last_queued_at_ms: count("last_queued_at_ms")?,
    })
}

/// Counts a submission's emails into its batch's row and its account's day (today: an email's
/// day is the one it was queued on), with the tracking settings they were queued under.
pub(crate) async fn count_queued(
    tx: &mut Transaction<'_, Any>,
    account_id: &str,
    batch: Option<&str>,
    emails: i64,
    dropped: i64,
    settings: &Settings,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO batch_stats (account_id, batch, emails, dropped, open_tracking,
                                  click_tracking, first_queued_at_ms, last_queued_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (account_id, batch) DO UPDATE SET
            emails = batch_stats.emails + excluded.emails,
            dropped = batch_stats.dropped + excluded.dropped,
            open_tracking = CASE WHEN excluded.open_tracking = 1 THEN 1
                                 ELSE batch_stats.open_tracking END,
            click_tracking = CASE WHEN excluded.click_tracking = 1 THEN 1
                                  ELSE batch_stats.click_tracking END,
            last_queued_at_ms = excluded.last_queued_at_ms",
    )
    .bind(account_id)
    .bind(batch.unwrap_or(""))
    .bind(emails)
    .bind(dropped)
    .bind(i64::from(settings.open_tracking))
    .bind(i64::from(settings.click_tracking))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO account_days (account_id, day, emails, dropped, open_tracking, click_tracking)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account_id, day) DO UPDATE SET
            emails = account_days.emails + excluded.emails,
            dropped = account_days.dropped + excluded.dropped,
            open_tracking = CASE WHEN excluded.open_tracking = 1 THEN 1
                                 ELSE account_days.open_tracking END,
            click_tracking = CASE WHEN excluded.click_tracking = 1 THEN 1
                                  ELSE account_days.click_tracking END",
    )
    .bind(account_id)
    .bind(day_of(now))
    .bind(emails)
    .bind(dropped)
    .bind(i64::from(settings.open_tracking))
    .bind(i64::from(settings.click_tracking))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The batch and day counts a transaction's events add, gathered in memory and written once
/// at its end ([`BatchCounts::apply`]): one UPDATE per batch and per day instead of one per
/// event, and always in the same order (batches, then days, each in key order), so nodes
/// recording outcomes of the same batches at once neither hold a row for every event nor lock
/// rows in opposite orders (a deadlock).
#[derive(Debug, Default)]
pub(crate) struct BatchCounts {
    batches: BTreeMap<(String, String), Counts>,
    days: BTreeMap<(String, i64), Counts>,
}

/// How many emails newly reached each of [`Milestone::ALL`].
type Counts = [i64; Milestone::ALL.len()];

impl BatchCounts {
    /// Counts the milestones an email of `batch`, queued at `created_at_ms`, newly reached.
    pub(crate) fn add(
        &mut self,
        account_id: &str,
        batch: Option<&str>,
        created_at_ms: i64,
        added: Milestones,
    ) {
        if added.is_empty() {
            return;
        }
        let batch = (account_id.to_owned(), batch.unwrap_or("").to_owned());
        let day = (account_id.to_owned(), day_of(created_at_ms));
        for counts in [
            self.batches.entry(batch).or_default(),
            self.days.entry(day).or_default(),
        ] {
            for (i, m) in Milestone::ALL.iter().enumerate() {
                if added.contains(*m) {
                    counts[i] += 1;
                }
            }
        }
    }

    /// Writes the counts: batch by batch, then day by day, in key order.
    pub(crate) async fn apply(self, tx: &mut Transaction<'static, Any>) -> Result<()> {
        for ((account_id, batch), counts) in self.batches {
            sqlx::query(&format!(
                "UPDATE batch_stats SET {} WHERE account_id = $1 AND batch = $2",
                increments(counts)
            ))
            .bind(account_id)
            .bind(batch)
            .execute(&mut **tx)
            .await?;
        }
        for ((account_id, day), counts) in self.days {
            sqlx::query(&format!(
                "UPDATE account_days SET {} WHERE account_id = $1 AND day = $2",
                increments(counts)
            ))
            .bind(account_id)
            .bind(day)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

/// `delivered = delivered + 3, …` for the milestones counted. Column names come from the fixed
/// milestone names, never from input.
fn increments(counts: Counts) -> String {
    Milestone::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n != 0)
        .map(|(m, n)| format!("{0} = {0} + {n}", m.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value bound to a numbered parameter.
enum Arg {
    Text(String),
    Int(i64),
}

/// The `WHERE` of an email report query and its parameters, numbered in the order they are
/// bound. Only the filters given appear in the statement, so each combination is a plain
/// range over its index.
struct Clause {
    sql: String,
    args: Vec<Arg>,
}

impl Clause {
    fn of(account_id: &str, filter: &EmailFilter) -> Clause {
        let mut clause = Clause {
            sql: String::new(),
            args: Vec::new(),
        };
        let account = clause.text(account_id);
        clause.sql = format!("e.account_id = {account}");
        if let Some(batch) = &filter.batch {
            let p = clause.text(batch);
            clause.and(format!("e.batch = {p}"));
        }
        if let Some(stage) = filter.stage {
            let p = clause.text(stage.as_str());
            clause.and(format!("e.stage = {p}"));
        }
        if let Some(from) = filter.from_ms {
            let p = clause.int(from);
            clause.and(format!("e.created_at_ms >= {p}"));
        }
        if let Some(to) = filter.to_ms {
            let p = clause.int(to);
            clause.and(format!("e.created_at_ms < {p}"));
        }
        if let Some(tag) = &filter.tag {
            let p = clause.text(tag);
            clause.and(format!(
                "e.content_id IN (SELECT content_id FROM content_tags
                                  WHERE account_id = {account} AND tag = {p})"
            ));
        }
        if let Some(reached) = filter.reached {
            clause.and(reached.condition());
        }
        if let Some(prefix) = &filter.recipient {
            clause.starts_with(prefix);
        }
        if filter.scheduled {
            let now = clause.int(crate::now_ms());
            clause.and(crate::overview::scheduled_condition(&now));
        }
        clause
    }

    fn and(&mut self, condition: String) {
        self.sql.push_str(" AND ");
        self.sql.push_str(&condition);
    }

    /// Recipients starting with `prefix`: a range over `emails_by_recipient`, and a `LIKE`
    /// that keeps the range honest under a collation that does not sort by code point.
    fn starts_with(&mut self, prefix: &str) {
        let escaped: String = prefix
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let like = self.text(&format!("{escaped}%"));
        self.and(format!("e.to_key LIKE {like} ESCAPE '\\'"));
        let mut chars: Vec<char> = prefix.chars().collect();
        let following = chars.pop().and_then(|last| char::from_u32(last as u32 + 1));
        if let Some(next) = following {
            let upper: String = chars.into_iter().chain([next]).collect();
            let (lo, hi) = (self.text(prefix), self.text(&upper));
            self.and(format!("e.to_key >= {lo} AND e.to_key < {hi}"));
        }
    }

    fn text(&mut self, value: &str) -> String {
        self.args.push(Arg::Text(value.to_owned()));
        format!("${}", self.args.len())
    }

    fn int(&mut self, value: i64) -> String {
        self.args.push(Arg::Int(value));
        format!("${}", self.args.len())
    }

    fn bind(self, query: Query<'_>) -> Query<'_> {
        self.args.into_iter().fold(query, |q, arg| match arg {
            Arg::Text(t) => q.bind(t),
            Arg::Int(i) => q.bind(i),
        })
    }

    fn bind_scalar(self, query: Scalar<'_>) -> Scalar<'_> {
        self.args.into_iter().fold(query, |q, arg| match arg {
            Arg::Text(t) => q.bind(t),
            Arg::Int(i) => q.bind(i),
        })
    }
}

type Query<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;
type Scalar<'q> = sqlx::query::QueryScalar<'q, Any, i64, sqlx::any::AnyArguments<'q>>;

impl Store {
    /// A page of the email report, newest first; `after` continues from a previous page's
    /// last row. Each filter combination has an index that serves it in order, so the first
    /// page costs the same however many emails the account has.
    pub async fn email_report(
        &self,
        account_id: &str,
        filter: &EmailFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<EmailRow>> {
        let page = after.map_or(Page::First, |c| Page::After(c.clone()));
        self.email_report_page(account_id, filter, &page, limit)
            .await
    }

    /// A listing of emails that reached something, narrowed to the days that hold the page:
    /// `account_days` says how many such emails each day has, so a rare stage (complaints
    /// among a million emails) is looked for only on the days that have it. `None` when no
    /// day has one. Other filters are returned as they are.
    async fn narrowed(
        &self,
        account_id: &str,
        filter: &EmailFilter,
        page: &Page,
        limit: u32,
    ) -> Result<Option<EmailFilter>> {
        let Some(reached) = filter.reached.filter(|_| filter.is_days()) else {
            return Ok(Some(filter.clone()));
        };
        let (from_day, until_day) = (
            filter.from_ms.map(day_of),
            filter.to_ms.map(|ms| day_of(ms - 1) + 1),
        );
        let (cursor_day, newer) = match page {
            Page::First => (None, false),
            Page::After(c) => (Some(day_of(c.created_at_ms)), false),
            Page::Before(c) => (Some(day_of(c.created_at_ms)), true),
        };
        let (from_day, until_day) = match (cursor_day, newer) {
            (Some(day), false) => (
                from_day,
                Some(until_day.map_or(day + 1, |u| u.min(day + 1))),
            ),
            (Some(day), true) => (Some(from_day.map_or(day, |f| f.max(day))), until_day),
            (None, _) => (from_day, until_day),
        };
        let days = self
            .reached_days(account_id, reached, from_day, until_day, !newer)
            .await?;
        // The cursor's own day may hold rows already shown: it is read but not counted.
        let mut enough = 0;
        let mut last = None;
        for (day, count) in days {
            last = Some(day);
            if Some(day) != cursor_day {
                enough += count;
            }
            if enough > i64::from(limit) {
                break;
            }
        }
        let Some(last) = last else {
            return Ok(None);
        };
        let mut narrowed = filter.clone();
        if newer {
            let to = (last + 1) * crate::overview::DAY_MS;
            narrowed.to_ms = Some(filter.to_ms.map_or(to, |t| t.min(to)));
        } else {
            let from = last * crate::overview::DAY_MS;
            narrowed.from_ms = Some(filter.from_ms.map_or(from, |f| f.max(from)));
        }
        Ok(Some(narrowed))
    }

    /// A page of the email report, newest first: the first, the `limit` rows after a row or
    /// the `limit` rows before it (fewer at either end).
    pub async fn email_report_page(
        &self,
        account_id: &str,
        filter: &EmailFilter,
        page: &Page,
        limit: u32,
    ) -> Result<Vec<EmailRow>> {
        let Some(filter) = self.narrowed(account_id, filter, page, limit).await? else {
            return Ok(Vec::new());
        };
        let mut clause = Clause::of(account_id, &filter);
        let order = match page {
            Page::First => "DESC",
            Page::After(c) | Page::Before(c) => {
                let newer = matches!(page, Page::Before(_));
                let (at, id) = (clause.int(c.created_at_ms), clause.text(&c.id));
                let cmp = if newer { '>' } else { '<' };
                clause.sql.push_str(&format!(
                    " AND (e.created_at_ms {cmp} {at} OR (e.created_at_ms = {at} AND e.id {cmp} {id}))"
                ));
                if newer { "ASC" } else { "DESC" }
            }
        };
        let limit = clause.int(i64::from(limit));
        let sql = format!(
            "SELECT {EMAIL_ROW} FROM emails e JOIN contents c ON c.id = e.content_id
             WHERE {} ORDER BY e.created_at_ms {order}, e.id {order} LIMIT {limit}",
            clause.sql
        );
        let rows = clause
            .bind(sqlx::query(&sql))
            .fetch_all(&self.reader)
            .await?;
        let mut rows: Vec<EmailRow> = rows.iter().map(email_row).collect::<Result<_>>()?;
        if order == "ASC" {
            rows.reverse();
        }
        Ok(rows)
    }

    /// How many emails the filter matches. A range of whole days with at most a [`Reached`]
    /// is read from `account_days` (the overview's own counts, one row per day), a batch with
    /// at most a [`Reached`] from `batch_stats`; anything else is counted over the index that
    /// serves the filter, up to [`TOTAL_CAP`], so a page never counts a million rows.
    pub async fn email_report_total(
        &self,
        account_id: &str,
        filter: &EmailFilter,
    ) -> Result<Total> {
        let exact = |count| Total { count, more: false };
        if filter.is_days() {
            let day = |ms: Option<i64>| ms.map(day_of);
            let counts = self
                .day_counts(account_id, day(filter.from_ms), day(filter.to_ms))
                .await?;
            return Ok(exact(match filter.reached {
                Some(reached) => counts.count(reached),
                None => counts.emails,
            }));
        }
        if let Some(batch) = filter.batch.as_deref().filter(|_| filter.is_batch()) {
            let only = [batch.to_owned()];
            let stats = self.batch_report(account_id, Some(&only)).await?;
            return Ok(exact(stats.first().map_or(0, |b| b.count(filter.reached))));
        }
        let clause = Clause::of(account_id, filter);
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM emails e WHERE {} LIMIT {}) AS counted",
            clause.sql,
            TOTAL_CAP + 1
        );
        let count = clause
            .bind_scalar(sqlx::query_scalar(&sql))
            .fetch_one(&self.reader)
            .await?;
        Ok(Total {
            count: count.min(TOTAL_CAP),
            more: count > TOTAL_CAP,
        })
    }

    /// The batch report: every batch of the account, most recently queued first, or only
    /// the named ones (in the order given; unknown names are left out).
    pub async fn batch_report(
        &self,
        account_id: &str,
        only: Option<&[String]>,
    ) -> Result<Vec<BatchStats>> {
        let rows = sqlx::query(
            "SELECT * FROM batch_stats WHERE account_id = $1 ORDER BY last_queued_at_ms DESC",
        )
        .bind(account_id)
        .fetch_all(&self.reader)
        .await?;
        let all: Vec<BatchStats> = rows.iter().map(batch_stats).collect::<Result<_>>()?;
        Ok(match only {
            None => all,
            Some(names) => names
                .iter()
                .filter_map(|name| {
                    all.iter()
                        .find(|b| b.batch.as_deref().unwrap_or("") == name)
                        .cloned()
                })
                .collect(),
        })
    }

    /// A lead's emails, newest first (up to `limit`), and the replies to them. Another
    /// account's lead is `NotFound`.
    pub async fn lead_activity(
        &self,
        account_id: &AccountId,
        lead_id: &str,
        limit: u32,
    ) -> Result<(Vec<EmailRow>, Vec<ReplyRow>)> {
        self.lead(account_id, lead_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {EMAIL_ROW} FROM emails e JOIN contents c ON c.id = e.content_id
             WHERE e.lead_id = $1 AND e.account_id = $2
             ORDER BY e.created_at_ms DESC, e.id DESC LIMIT $3"
        ))
        .bind(lead_id)
        .bind(account_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        let emails: Vec<EmailRow> = rows.iter().map(email_row).collect::<Result<_>>()?;
        if emails.is_empty() {
            return Ok((emails, Vec::new()));
        }
        let sql = format!(
            "SELECT id, email_id, received_at_ms, mail_from, raw FROM inbound_messages
             WHERE kind = 'reply' AND state = 'matched' AND email_id IN ({})
             ORDER BY received_at_ms DESC",
            self.placeholders(1, emails.len())
        );
        let rows = emails
            .iter()
            .fold(sqlx::query(&sql), |q, e| q.bind(e.id.as_str()))
            .fetch_all(&self.reader)
            .await?;
        let replies = rows
            .iter()
            .map(|row| {
                Ok(ReplyRow {
                    inbound_id: row.try_get("id")?,
                    email_id: row.try_get("email_id")?,
                    received_at_ms: row.try_get("received_at_ms")?,
                    mail_from: row.try_get("mail_from")?,
                    raw: row.try_get("raw")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok((emails, replies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_na_without_tracking_or_a_denominator() {
        let stats = BatchStats {
            batch: Some("spring".into()),
            emails: 10,
            dropped: 2,
            delivered: 4,
            failed: 2,
            opened: 2,
            clicked: 1,
            open_tracking: true,
            click_tracking: false,
            deferred: 0,
            replied: 1,
            auto_replied: 0,
            unsubscribed: 0,
            complained: 0,
            machine_opened: 1,
            machine_clicked: 0,
            first_queued_at_ms: 0,
            last_queued_at_ms: 0,
        };
        let rates: std::collections::BTreeMap<_, _> = stats.rates().into_iter().collect();
        assert_eq!(rates["delivered"], Some(0.5));
        assert_eq!(rates["failed"], Some(0.25));
        assert_eq!(rates["opened"], Some(0.5));
        assert_eq!(rates["clicked"], None, "click tracking was off");
        assert_eq!(rates["replied"], Some(0.25));
        let empty = BatchStats {
            delivered: 0,
            ..stats
        };
        assert_eq!(empty.rates()[2], ("opened", None), "nothing delivered");
    }

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = Cursor {
            created_at_ms: 1_700_000_000_000,
            id: "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for junk in [
            "",
            "12",
            "x.abc",
            "12.",
            "12.'; DROP TABLE emails",
            "12.a b",
        ] {
            assert_eq!(Cursor::decode(junk), None, "{junk}");
        }
    }
}
