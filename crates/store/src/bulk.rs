//! Recording many events in one transaction ([`Store::record_many`]), the write path of group
//! commit ([`crate::recorder`]). Opens and clicks come in tens of thousands a second, most of
//! them on emails whose stage they cannot move, so a batch costs a few statements whatever its
//! size: the emails are read and locked together, the events that leave the stage as it is
//! are inserted in multi-row statements and each email's milestones are written once. An
//! event that can move the stage, or that has effects on the queue or the address, goes
//! through [`Store::record_in`] as if recorded alone, in order with the email's other events.

use std::collections::{BTreeMap, HashMap};

use mailtrail_domain::stage::unchanged_by;
use mailtrail_domain::{Event, Milestones, Stage};
use sqlx::{Any, Row, Transaction};

use crate::emails::{Effects, InTransaction, Record};
use crate::webhooks::{EmailFacts, outbox};
use crate::{Result, Store, StoreError};

/// Emails read and locked per statement.
const EMAILS_PER_STATEMENT: usize = 500;
/// Events inserted per statement (six parameters each, well under both backends' limits).
const EVENTS_PER_STATEMENT: usize = 500;

/// What a batch needs of an email, read with its row locked.
struct Locked {
    account_id: String,
    to: String,
    lead_id: Option<String>,
    batch: Option<String>,
    stage: Stage,
    milestones: Milestones,
}

/// An event waiting for the batch's multi-row insert, with its place among its email's events.
struct Pending<'a> {
    record: &'a Record,
    seq: i64,
}

impl Store {
    /// Records many events in one transaction (one disk flush for all of them): how delivery
    /// workers keep up with fast peers and the tracking endpoints with a flood of opens. An
    /// email that no longer exists (or is another account's) is skipped. Emails are locked in
    /// id order (one email's events keep their order) and batch counts written last, so
    /// concurrent writers on several nodes take locks in the same order.
    pub async fn record_many(&self, records: &[Record]) -> Result<()> {
        let mut by_email: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
        for record in records {
            by_email.entry(&record.email_id).or_default().push(record);
        }
        let ids: Vec<&str> = by_email.keys().copied().collect();
        let mut tx = self.writer.begin().await?;
        let emails = self.lock_emails(&mut tx, &ids).await?;
        let mut last_seqs = self.last_seqs(&mut tx, &ids).await?;
        let mut state = InTransaction::default();
        let mut pending: Vec<Pending> = Vec::new();
        let mut grown: Vec<(&str, Milestones)> = Vec::new();
        for (email_id, records) in by_email {
            let Some(email) = emails.get(email_id) else {
                continue;
            };
            let facts = EmailFacts {
                id: email_id,
                account_id: &email.account_id,
                to: &email.to,
                lead_id: email.lead_id.as_deref(),
                batch: email.batch.as_deref(),
            };
            let mut stage = email.stage;
            let mut milestones = email.milestones;
            let mut written = milestones;
            let mut seq = last_seqs.remove(email_id).unwrap_or(0);
            // Where this email's events start in `pending`.
            let first = pending.len();
            for record in records {
                if record.account_id != email.account_id {
                    continue;
                }
                let event = &record.event;
                if record.effects == Effects::default() && unchanged_by(stage, event) {
                    let hooks = state.hooks(&mut tx, &email.account_id).await?;
                    outbox(&mut tx, hooks, &facts, event).await?;
                    let reached = milestones.union(Milestones::of(event));
                    state
                        .counts
                        .add(&email.account_id, facts.batch, reached.added_to(milestones));
                    milestones = reached;
                    seq += 1;
                    pending.push(Pending { record, seq });
                    continue;
                }
                // The full path reads the email's events and milestones from the database:
                // what this batch holds for it so far is written first.
                insert_events(&mut tx, self, &pending[first..]).await?;
                pending.truncate(first);
                if milestones != written {
                    write_milestones(&mut tx, email_id, milestones).await?;
                }
                let Some(derived) = self
                    .record_in(
                        &mut tx,
                        &mut state,
                        &email.account_id,
                        email_id,
                        event,
                        record.effects,
                    )
                    .await?
                else {
                    continue;
                };
                stage = derived.stage;
                milestones = milestones.union(Milestones::of(event));
                written = milestones;
                seq += 1;
            }
            if milestones != written {
                grown.push((email_id, milestones));
            }
        }
        insert_events(&mut tx, self, &pending).await?;
        for (email_id, milestones) in grown {
            write_milestones(&mut tx, email_id, milestones).await?;
        }
        state.counts.apply(&mut tx).await?;
        tx.commit().await?;
        for r in records {
            self.counters.count(&r.event, r.effects.attempted);
        }
        Ok(())
    }

    /// Reads and locks the emails in id order (`FOR UPDATE` on PostgreSQL).
    async fn lock_emails(
        &self,
        tx: &mut Transaction<'static, Any>,
        ids: &[&str],
    ) -> Result<HashMap<String, Locked>> {
        let mut emails = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(EMAILS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, account_id, to_address, lead_id, batch, stage, milestones
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
                emails.insert(
                    row.try_get("id")?,
                    Locked {
                        account_id: row.try_get("account_id")?,
                        to: row.try_get("to_address")?,
                        lead_id: row.try_get("lead_id")?,
                        batch: row.try_get("batch")?,
                        stage: stage.parse().map_err(StoreError::Corrupt)?,
                        milestones: Milestones::from_bits(row.try_get("milestones")?),
                    },
                );
            }
        }
        Ok(emails)
    }

    /// The last `seq` of each email's events, read once its row is locked (a statement of
    /// its own, so PostgreSQL reads events committed while the lock was awaited). One
    /// index lookup per email: a correlated `MAX`, never a scan of a much-opened email's
    /// events.
    async fn last_seqs(
        &self,
        tx: &mut Transaction<'static, Any>,
        ids: &[&str],
    ) -> Result<HashMap<String, i64>> {
        let mut seqs = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(EMAILS_PER_STATEMENT) {
            let sql = format!(
                "SELECT e.id, (SELECT MAX(v.seq) FROM events v WHERE v.email_id = e.id) AS seq
                 FROM emails e WHERE e.id IN ({})",
                self.placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            for row in query.fetch_all(&mut **tx).await? {
                if let Some(seq) = row.try_get::<Option<i64>, _>("seq")? {
                    seqs.insert(row.try_get("id")?, seq);
                }
            }
        }
        Ok(seqs)
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

async fn write_milestones(
    tx: &mut Transaction<'static, Any>,
    email_id: &str,
    milestones: Milestones,
) -> Result<()> {
    sqlx::query("UPDATE emails SET milestones = $1 WHERE id = $2")
        .bind(milestones.bits())
        .bind(email_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! `record_many` must leave the database exactly as recording each event alone would,
    //! on both backends.

    use std::collections::BTreeMap;

    use mailtrail_domain::{EmailAddress, EventKind};

    use super::*;
    use crate::{BatchStats, Content, QueueChange, QueueEntry, Submission, now_ms};

    /// Two stores on fresh databases of one backend (the temp dir keeps SQLite's files).
    async fn stores(postgres: bool) -> ([Store; 2], Option<tempfile::TempDir>) {
        if postgres {
            let mut open = Vec::new();
            for _ in 0..2 {
                let url = mailtrail_testkit::postgres::fresh_database();
                open.push(Store::open_postgres(&url, 4).await.unwrap());
            }
            return (open.try_into().unwrap(), None);
        }
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open_sqlite(&dir.path().join("a")).await.unwrap();
        let b = Store::open_sqlite(&dir.path().join("b")).await.unwrap();
        ([a, b], Some(dir))
    }

    /// An account with a webhook that wants every event, another account, and three queued
    /// emails of the first in batch "spring".
    async fn setup(store: &Store) -> (String, String, String, Vec<String>) {
        let (account, _) = store.create_account("Acme").await.unwrap();
        let (other, _) = store.create_account("Other").await.unwrap();
        let hook = store
            .create_webhook(&account, "https://hooks.example/", None)
            .await
            .unwrap();
        let submission = Submission {
            content: Content {
                from: "s@shop.test".into(),
                subject: "Hi".into(),
                text: Some("Hi".into()),
                html: None,
            },
            batch: Some("spring".into()),
            send_at_ms: None,
            entries: ["a@x.test", "b@x.test", "c@x.test"]
                .iter()
                .map(|to| QueueEntry {
                    to: EmailAddress::parse(to).unwrap(),
                    lead_id: None,
                    fields: BTreeMap::new(),
                    dropped: None,
                })
                .collect(),
        };
        let ids = store
            .enqueue(&account, &submission, None, |_| String::new())
            .await
            .unwrap();
        (account, other, hook.id, ids)
    }

    /// Opens, clicks and delivery outcomes mixed as the recorders see them: hits before and
    /// after the stage moves, machine hits, effects, an unknown email and a foreign account.
    fn script(account: &str, other: &str, ids: &[String]) -> Vec<Record> {
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

    type Snapshot = (
        Vec<(Stage, Option<String>, Vec<(i64, EventKind, Option<String>)>)>,
        Vec<[i64; 8]>,
        usize,
    );

    /// What there is to compare, without ids and clock times.
    async fn snapshot(store: &Store, account: &str, hook: &str, ids: &[String]) -> Snapshot {
        let mut emails = Vec::new();
        for id in ids {
            let email = store.email(account, id).await.unwrap();
            let events = store.events(account, id).await.unwrap();
            let events = events
                .into_iter()
                .map(|e| (e.seq, e.event.kind, e.event.detail.machine))
                .collect();
            emails.push((email.stage, email.status, events));
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
                .record(&r.account_id, &r.email_id, &r.event, r.effects)
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
