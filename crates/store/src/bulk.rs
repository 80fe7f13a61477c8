//! Recording events, the one write path for them ([`Store::record_many`], and [`Store::record`]
//! for a single event): delivery outcomes and tracking hits arrive by the thousand, so a batch
//! costs a few statements whatever its size. The emails are read and locked together, the
//! events of the emails whose stage the batch may move are read together, each event's stage
//! is derived in memory as it is appended, and then all events are inserted in multi-row
//! statements and each email is rewritten once. One email's events keep their order.

use std::collections::{BTreeMap, HashMap};

use mailtrail_domain::stage::{Derived, derive, unchanged_by};
use mailtrail_domain::{Event, EventKind, Milestones, Reason};
use sqlx::{Any, Row, Transaction};

use crate::emails::{Effects, InTransaction, QueueChange, Record, event_from_row};
use crate::suppressions::{Block, suppress_in};
use crate::webhooks::{EmailFacts, outbox};
use crate::{Result, Store, StoreError, now_ms};

/// Emails read, locked or rewritten per statement (twelve parameters a row at most, well
/// under both backends' limits).
const EMAILS_PER_STATEMENT: usize = 500;
/// Events inserted per statement (six parameters each).
const EVENTS_PER_STATEMENT: usize = 500;

/// An email as the batch sees it: read with its row locked, then changed as its events are
/// appended in memory.
struct Email {
    account_id: String,
    to: String,
    to_key: String,
    lead_id: Option<String>,
    batch: Option<String>,
    created_at_ms: i64,
    derived: Derived,
    milestones: Milestones,
    /// Its milestones as read.
    stored: Milestones,
    /// The last `seq` of its events.
    seq: i64,
    /// All its events, oldest first; read only when the batch may move its stage.
    events: Option<Vec<Event>>,
    /// At least one event of the batch was its account's, and recorded.
    recorded: bool,
    rewrite: Rewrite,
}

/// What the batch's events change in an email's row beyond its milestones.
#[derive(Default)]
struct Rewrite {
    /// The stage, Status and reason were derived again.
    derived: bool,
    attempts: i64,
    soft_5xx: i64,
    /// The time of the batch's first temporary-looking 5xx.
    first_soft_5xx_at_ms: Option<i64>,
    /// The email left the queue (`None`) or is due again: its lease ends either way.
    queue: Option<Option<i64>>,
    /// The time of the batch's first delivery evidence.
    delivered_at_ms: Option<i64>,
}

/// An event waiting for the batch's multi-row insert, with its place among its email's events.
struct Pending<'a> {
    record: &'a Record,
    seq: i64,
}

impl Store {
    /// Records many events in one transaction (one disk flush for all of them): how delivery
    /// workers keep up with fast peers and the tracking endpoints with a flood of opens. An
    /// email that no longer exists (or is another account's) is skipped.
    pub async fn record_many(&self, records: &[Record]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let mut state = InTransaction::default();
        self.record_in(&mut tx, &mut state, records).await?;
        state.counts.apply(&mut tx).await?;
        tx.commit().await?;
        for r in records {
            self.counters.count(&r.event, r.effects.attempted);
        }
        Ok(())
    }

    /// Records events within `tx`, adding to what the transaction accumulates; returns the
    /// final derivation of each email found with an event of its account. Emails are locked in id order and batch counts
    /// are written last (by the caller), so concurrent writers on several nodes take locks
    /// in the same order.
    pub(crate) async fn record_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        state: &mut InTransaction,
        records: &[Record],
    ) -> Result<HashMap<String, Derived>> {
        let mut by_email: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for record in records {
            by_email.entry(&record.email_id).or_default().push(record);
        }
        let ids: Vec<&str> = by_email.keys().copied().collect();
        let mut emails = self.lock_emails(tx, &ids).await?;
        // Only an event that may move the stage needs the email's history; every other
        // one (most opens and clicks) leaves the stored derivation as it is.
        let moving: Vec<&str> = by_email
            .iter()
            .filter(|(id, records)| {
                emails.get(**id).is_some_and(|email| {
                    records.iter().any(|r| {
                        r.account_id == email.account_id
                            && (r.effects != Effects::default()
                                || !unchanged_by(email.derived.stage, &r.event))
                    })
                })
            })
            .map(|(id, _)| *id)
            .collect();
        // Both read once the rows are locked (statements of their own, so PostgreSQL sees
        // events committed while the locks were awaited); the history gives its last `seq`.
        self.read_events(tx, &moving, &mut emails).await?;
        self.read_last_seqs(tx, &mut emails).await?;

        let now = now_ms();
        let mut pending: Vec<Pending> = Vec::with_capacity(records.len());
        for (email_id, records) in by_email {
            let Some(email) = emails.get_mut(email_id) else {
                continue;
            };
            for record in records {
                if record.account_id != email.account_id {
                    continue;
                }
                email.seq += 1;
                email.recorded = true;
                pending.push(Pending {
                    record,
                    seq: email.seq,
                });
                email.append(tx, state, email_id, record, now).await?;
            }
        }
        insert_events(tx, self, &pending).await?;
        self.rewrite_emails(tx, &emails).await?;
        Ok(emails
            .into_iter()
            .filter(|(_, email)| email.recorded)
            .map(|(id, email)| (id, email.derived))
            .collect())
    }

    /// Reads and locks the emails in id order (`FOR UPDATE` on PostgreSQL).
    async fn lock_emails(
        &self,
        tx: &mut Transaction<'static, Any>,
        ids: &[&str],
    ) -> Result<HashMap<String, Email>> {
        let mut emails = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(EMAILS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, account_id, to_address, to_key, lead_id, batch, created_at_ms,
                        stage, status, reason, milestones
                 FROM emails WHERE id IN ({}) ORDER BY id{}",
                self.placeholders(1, chunk.len()),
                self.lock_clause()
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let stage: String = row.try_get("stage")?;
                let reason: Option<String> = row.try_get("reason")?;
                emails.insert(
                    row.try_get("id")?,
                    Email {
                        account_id: row.try_get("account_id")?,
                        to: row.try_get("to_address")?,
                        to_key: row.try_get("to_key")?,
                        lead_id: row.try_get("lead_id")?,
                        batch: row.try_get("batch")?,
                        created_at_ms: row.try_get("created_at_ms")?,
                        derived: Derived {
                            stage: stage.parse().map_err(StoreError::Corrupt)?,
                            status: row.try_get("status")?,
                            reason: reason
                                .map(|r| {
                                    r.parse::<Reason>()
                                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                                })
                                .transpose()?,
                        },
                        milestones: Milestones::from_bits(row.try_get("milestones")?),
                        stored: Milestones::from_bits(row.try_get("milestones")?),
                        seq: 0,
                        events: None,
                        recorded: false,
                        rewrite: Rewrite::default(),
                    },
                );
            }
        }
        Ok(emails)
    }

    /// The last `seq` of each email whose history was not read. One index lookup per email:
    /// a correlated `MAX`, never a scan of a much-opened email's events.
    async fn read_last_seqs(
        &self,
        tx: &mut Transaction<'static, Any>,
        emails: &mut HashMap<String, Email>,
    ) -> Result<()> {
        let ids: Vec<&String> = emails
            .iter()
            .filter(|(_, email)| email.events.is_none())
            .map(|(id, _)| id)
            .collect();
        let mut seqs = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(EMAILS_PER_STATEMENT) {
            let sql = format!(
                "SELECT e.id, (SELECT MAX(v.seq) FROM events v WHERE v.email_id = e.id) AS seq
                 FROM emails e WHERE e.id IN ({})",
                self.placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(&mut **tx).await? {
                if let Some(seq) = row.try_get::<Option<i64>, _>("seq")? {
                    seqs.push((row.try_get::<String, _>("id")?, seq));
                }
            }
        }
        for (id, seq) in seqs {
            if let Some(email) = emails.get_mut(&id) {
                email.seq = seq;
            }
        }
        Ok(())
    }

    /// Reads the events of the emails `ids`, oldest first, into `emails`, and their last `seq`.
    async fn read_events(
        &self,
        tx: &mut Transaction<'static, Any>,
        ids: &[&str],
        emails: &mut HashMap<String, Email>,
    ) -> Result<()> {
        for id in ids {
            if let Some(email) = emails.get_mut(*id) {
                email.events = Some(Vec::new());
            }
        }
        for chunk in ids.chunks(EMAILS_PER_STATEMENT) {
            let sql = format!(
                "SELECT email_id, seq, kind, at_ms, detail FROM events
                 WHERE email_id IN ({}) ORDER BY email_id, seq",
                self.placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                let id: String = row.try_get("email_id")?;
                let stored = event_from_row(&row)?;
                if let Some(email) = emails.get_mut(&id)
                    && let Some(events) = email.events.as_mut()
                {
                    events.push(stored.event);
                    email.seq = stored.seq;
                }
            }
        }
        Ok(())
    }

    /// Writes each changed email once: the rewritten ones (stage, queue, counters) in
    /// multi-row updates, then those whose milestones alone grew.
    async fn rewrite_emails(
        &self,
        tx: &mut Transaction<'static, Any>,
        emails: &HashMap<String, Email>,
    ) -> Result<()> {
        let mut rewritten: Vec<(&String, &Email)> = emails
            .iter()
            .filter(|(_, email)| email.rewrite.derived)
            .collect();
        rewritten.sort_by_key(|(id, _)| *id);
        let now = now_ms();
        for chunk in rewritten.chunks(EMAILS_PER_STATEMENT) {
            let sql = format!(
                "WITH v (id, stage, status, reason, now, attempts, soft, soft_at, queue, next_at,
                         delivered_at, milestones) AS (VALUES {})
                 UPDATE emails SET stage = v.stage, status = v.status, reason = v.reason,
                        updated_at_ms = v.now, attempts = emails.attempts + v.attempts,
                        soft_5xx_attempts = emails.soft_5xx_attempts + v.soft,
                        first_soft_5xx_at_ms = COALESCE(emails.first_soft_5xx_at_ms, v.soft_at),
                        next_attempt_at_ms = CASE WHEN v.queue = 1 THEN v.next_at
                                                  ELSE emails.next_attempt_at_ms END,
                        lease_until_ms = CASE WHEN v.queue = 1 THEN NULL
                                              ELSE emails.lease_until_ms END,
                        delivered_at_ms = COALESCE(emails.delivered_at_ms, v.delivered_at),
                        milestones = v.milestones
                 FROM v WHERE emails.id = v.id",
                self.row_placeholders(chunk.len(), 12)
            );
            let mut query = sqlx::query(&sql);
            for (id, email) in chunk {
                let Rewrite {
                    attempts,
                    soft_5xx,
                    first_soft_5xx_at_ms,
                    queue,
                    delivered_at_ms,
                    ..
                } = email.rewrite;
                query = query
                    .bind(id.as_str())
                    .bind(email.derived.stage.as_str())
                    .bind(email.derived.status.as_deref())
                    .bind(email.derived.reason.map(Reason::as_str))
                    .bind(now)
                    .bind(attempts)
                    .bind(soft_5xx)
                    .bind(first_soft_5xx_at_ms)
                    .bind(i64::from(queue.is_some()))
                    .bind(queue.flatten())
                    .bind(delivered_at_ms)
                    .bind(email.milestones.bits());
            }
            query.execute(&mut **tx).await?;
        }
        let mut grown: Vec<(&String, Milestones)> = emails
            .iter()
            .filter(|(_, email)| !email.rewrite.derived && email.milestones != email.stored)
            .map(|(id, email)| (id, email.milestones))
            .collect();
        grown.sort_by_key(|(id, _)| *id);
        for chunk in grown.chunks(EMAILS_PER_STATEMENT) {
            let sql = format!(
                "WITH v (id, milestones) AS (VALUES {})
                 UPDATE emails SET milestones = v.milestones FROM v WHERE emails.id = v.id",
                self.row_placeholders(chunk.len(), 2)
            );
            let mut query = sqlx::query(&sql);
            for (id, milestones) in chunk {
                query = query.bind(id.as_str()).bind(milestones.bits());
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }
}

impl Email {
    /// Appends one of this email's events in memory: webhooks, batch counts, and — when it
    /// may move the stage or has effects — a new derivation and its effects.
    async fn append(
        &mut self,
        tx: &mut Transaction<'static, Any>,
        state: &mut InTransaction,
        email_id: &str,
        record: &Record,
        now: i64,
    ) -> Result<()> {
        let event = &record.event;
        let facts = EmailFacts {
            id: email_id,
            account_id: &self.account_id,
            to: &self.to,
            lead_id: self.lead_id.as_deref(),
            batch: self.batch.as_deref(),
        };
        let hooks = state.hooks(tx, &self.account_id).await?;
        outbox(tx, hooks, &facts, event).await?;
        let reached = self.milestones.union(Milestones::of(event));
        state.counts.add(
            &self.account_id,
            self.batch.as_deref(),
            self.created_at_ms,
            reached.added_to(self.milestones),
        );
        self.milestones = reached;
        let effects = record.effects;
        if effects == Effects::default() && unchanged_by(self.derived.stage, event) {
            if let Some(events) = self.events.as_mut() {
                events.push(event.clone());
            }
            return Ok(());
        }
        let events = self
            .events
            .as_mut()
            .expect("the events of an email whose stage may move are read first");
        events.push(event.clone());
        self.derived = derive(events);
        let rewrite = &mut self.rewrite;
        rewrite.derived = true;
        rewrite.attempts += i64::from(effects.attempted);
        match effects.queue {
            QueueChange::Keep => {}
            QueueChange::Leave => rewrite.queue = Some(None),
            QueueChange::RetryAt { at_ms, soft_5xx } => {
                rewrite.queue = Some(Some(at_ms));
                if soft_5xx {
                    rewrite.soft_5xx += 1;
                    rewrite.first_soft_5xx_at_ms.get_or_insert(now);
                }
            }
        }
        if matches!(event.kind, EventKind::Delivered | EventKind::Relayed) {
            rewrite.delivered_at_ms.get_or_insert(event.at_ms);
        }
        if effects.suppress {
            let block = Block {
                reason: event.detail.reason.unwrap_or(Reason::Undefined),
                status: event.detail.status.clone(),
                email_id: Some(email_id.to_owned()),
            };
            suppress_in(tx, &self.account_id, &self.to_key, &block, "mailtrail").await?;
        }
        Ok(())
    }
}

/// Inserts events whose `seq` is already decided, many rows per statement.
async fn insert_events(
    tx: &mut Transaction<'static, Any>,
    store: &Store,
    events: &[Pending<'_>],
) -> Result<()> {
    for chunk in events.chunks(EVENTS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO events (email_id, seq, account_id, kind, at_ms, detail) VALUES {}",
            store.row_placeholders(chunk.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for Pending { record, seq } in chunk {
            let Event {
                kind,
                at_ms,
                detail,
            } = &record.event;
            let detail = serde_json::to_string(detail).expect("event details always serialise");
            query = query
                .bind(record.email_id.as_str())
                .bind(*seq)
                .bind(record.account_id.as_str())
                .bind(kind.as_str())
                .bind(*at_ms)
                .bind(detail);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! `record_many` must leave the database exactly as recording each event alone would,
    //! on both backends.

    use mailtrail_domain::{EventKind, Stage};

    use super::*;
    use crate::{AccountId, BatchStats, EmailId};

    /// Two stores on fresh databases of one backend (the temp dir keeps SQLite's files).
    async fn stores(postgres: bool) -> ([Store; 2], Option<tempfile::TempDir>) {
        if postgres {
            let mut open = Vec::new();
            for _ in 0..2 {
                let url = mailtrail_testkit::postgres::fresh_database();
                open.push(
                    Store::open_postgres(&url, 4, crate::MasterKey::generate())
                        .await
                        .unwrap(),
                );
            }
            return (open.try_into().unwrap(), None);
        }
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open_sqlite(&dir.path().join("a"), crate::MasterKey::generate())
            .await
            .unwrap();
        let b = Store::open_sqlite(&dir.path().join("b"), crate::MasterKey::generate())
            .await
            .unwrap();
        ([a, b], Some(dir))
    }

    /// An account with a webhook that wants every event, another account, and three queued
    /// emails of the first in batch "spring".
    async fn setup(store: &Store) -> (AccountId, AccountId, String, Vec<EmailId>) {
        let (account, _) = store.create_account("Acme").await.unwrap();
        let (other, _) = store.create_account("Other").await.unwrap();
        let hook = store
            .create_webhook(&account, "https://hooks.example/", None)
            .await
            .unwrap();
        let ids = crate::testing::queue(
            store,
            &account,
            &["a@x.test", "b@x.test", "c@x.test"],
            Some("spring"),
        )
        .await;
        (account, other, hook.id, ids)
    }

    /// Opens, clicks and delivery outcomes mixed as the recorders see them: hits before and
    /// after the stage moves, machine hits, effects, an unknown email and a foreign account.
    fn script(account: &str, other: &str, ids: &[EmailId]) -> Vec<Record> {
        let t = now_ms();
        let event = |kind, at: i64| Event::new(kind, t + at);
        let delivered = || event(EventKind::Delivered, 0).with_status("250 ok");
        let leave = Effects {
            queue: QueueChange::Leave,
            attempted: true,
            ..Effects::default()
        };
        let retry = Effects {
            queue: QueueChange::RetryAt {
                at_ms: t + 60_000,
                soft_5xx: false,
            },
            attempted: true,
            ..Effects::default()
        };
        let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
        [
            (a, delivered(), leave),
            (a, event(EventKind::Opened, 5_000), Effects::default()),
            (
                b,
                event(EventKind::Opened, 1).by_machine("bot"),
                Effects::default(),
            ),
            (a, event(EventKind::Opened, 6_000), Effects::default()),
            (c, event(EventKind::Opened, 7_000), Effects::default()),
            (
                a,
                event(EventKind::Opened, 6_500).by_machine("bot"),
                Effects::default(),
            ),
            (
                b,
                event(EventKind::Deferred, 2).with_status("451 later"),
                retry,
            ),
            (c, event(EventKind::Opened, 7_100), Effects::default()),
            (a, event(EventKind::Clicked, 8_000), Effects::default()),
            (b, delivered(), leave),
            (a, event(EventKind::Opened, 9_000), Effects::default()),
            (
                b,
                event(EventKind::Clicked, 9_500).by_machine("bot"),
                Effects::default(),
            ),
            (b, event(EventKind::Opened, 9_600), Effects::default()),
        ]
        .into_iter()
        .map(|(id, event, effects)| (account, id.as_str(), event, effects))
        .chain([
            (
                account,
                "0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b",
                event(EventKind::Opened, 1),
                Effects::default(),
            ),
            (
                other,
                a.as_str(),
                event(EventKind::Opened, 1),
                Effects::default(),
            ),
        ])
        .map(|(account_id, email_id, event, effects)| Record {
            account_id: account_id.to_owned(),
            email_id: email_id.to_owned(),
            event,
            effects,
        })
        .collect()
    }

    /// An email's stage, Status, attempts, whether it is queued, and its events.
    type EmailSnapshot = (
        Stage,
        Option<String>,
        u32,
        bool,
        Vec<(i64, EventKind, Option<String>)>,
    );
    type Snapshot = (Vec<EmailSnapshot>, Vec<[i64; 8]>, usize);

    /// What there is to compare, without ids and clock times.
    async fn snapshot(store: &Store, account: &AccountId, hook: &str, ids: &[EmailId]) -> Snapshot {
        let mut emails = Vec::new();
        for id in ids {
            let email = store.email(account, id).await.unwrap();
            let events = store.events(account, id).await.unwrap();
            let events = events
                .into_iter()
                .map(|e| (e.seq, e.event.kind, e.event.detail.machine))
                .collect();
            emails.push((
                email.stage,
                email.status,
                email.attempts,
                email.next_attempt_at_ms.is_some(),
                events,
            ));
        }
        let counts = |b: BatchStats| {
            [
                b.emails,
                b.delivered,
                b.deferred,
                b.opened,
                b.clicked,
                b.machine_opened,
                b.machine_clicked,
                b.failed,
            ]
        };
        let batches = store.batch_report(account, None).await.unwrap();
        let deliveries = store.webhook_deliveries(account, hook, 1000).await.unwrap();
        (
            emails,
            batches.into_iter().map(counts).collect(),
            deliveries.len(),
        )
    }

    async fn record_many_is_recording_each_alone(postgres: bool) {
        let ([many, alone], _dir) = stores(postgres).await;
        let (account, other, hook, ids) = setup(&many).await;
        let records = script(&account, &other, &ids);
        // Two batches, the first ending between an email's hits.
        many.record_many(&records[..4]).await.unwrap();
        many.record_many(&records[4..]).await.unwrap();

        let (account_b, other_b, hook_b, ids_b) = setup(&alone).await;
        for r in script(&account_b, &other_b, &ids_b) {
            let _ = alone
                .record(
                    &AccountId::from(&r.account_id),
                    &EmailId::from(&r.email_id),
                    &r.event,
                    r.effects,
                )
                .await;
        }
        let expected = snapshot(&alone, &account_b, &hook_b, &ids_b).await;
        assert_eq!(snapshot(&many, &account, &hook, &ids).await, expected);
        assert_eq!(
            expected.0.iter().map(|e| e.0).collect::<Vec<_>>(),
            [Stage::Clicked, Stage::Opened, Stage::Opened],
            "the script moves every stage"
        );
        assert!(many.check_stages(|_| {}).await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn record_many_is_recording_each_alone_on_sqlite() {
        record_many_is_recording_each_alone(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn record_many_is_recording_each_alone_on_postgres() {
        record_many_is_recording_each_alone(true).await;
    }
}
