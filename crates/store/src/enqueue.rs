//! Queuing submissions, with group commit.
//!
//! A submission is acknowledged (`202`, SMTP `250`) only once its emails are on disk, so each
//! one waits for a commit: on SQLite an `fsync` of the write-ahead log through the one writer
//! connection. Twenty SMTP sessions submitting at once would wait in line for twenty commits.
//! Instead, submissions that arrive while a commit is under way wait for the next one, and
//! whoever writes next (the *leader*) writes them all in one transaction, each in a savepoint
//! of its own: one submission's failure (a conflicting idempotency key, say) undoes only its
//! own rows, and every caller still returns only after the commit that holds its rows.
//!
//! There is no background task: the callers themselves take turns as the leader. A caller
//! that goes away while it leads (its request was cancelled) takes the transaction with it;
//! the others it had taken up are told their write was abandoned, and answer "try again".

use std::sync::Mutex;

use mailtrail_domain::event::DROPPED;
use mailtrail_domain::{Event, EventKind, Milestone, Milestones, Reason};
use sqlx::Acquire;
use tokio::sync::oneshot;

use crate::queue::{CHUNK, Idempotent, Submission, insert_content};
use crate::refusals::{NewRefusal, RefusedRequest};
use crate::settings::Settings;
use crate::{Result, Store, StoreError, new_id, now_ms};

/// The submissions waiting for the next commit, and the turn to lead it.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    waiting: Mutex<Vec<Job>>,
    /// Held by the leader while it writes and commits.
    turn: tokio::sync::Mutex<()>,
}

/// One submission, ready to write: everything that needs no transaction is decided.
#[derive(Debug)]
struct Job {
    account_id: String,
    submission: Submission,
    content_id: String,
    ids: Vec<String>,
    settings: Settings,
    /// The idempotency key with the answer to store under it.
    idempotent: Option<(Idempotent, String)>,
    /// The request's refused recipients, recorded with its emails.
    refused: Vec<NewRefusal>,
    now: i64,
    written: oneshot::Sender<Result<()>>,
}

impl Store {
    /// Queues a submission: the content, every email with its `queued` event (and `failed`
    /// for drops), and the idempotent answer, which `respond` makes from the new ids — all or
    /// nothing. When this returns, every email is on disk. A concurrent request with the
    /// same idempotency key makes this fail with `Conflict`.
    pub async fn enqueue(
        &self,
        account_id: &str,
        submission: &Submission,
        idempotent: Option<&Idempotent>,
        respond: impl FnOnce(&[String]) -> String,
    ) -> Result<Vec<String>> {
        self.enqueue_with_refusals(account_id, submission, &[], idempotent, respond)
            .await
    }

    /// [`Store::enqueue`], recording the request's `refused` recipients in the same commit.
    pub async fn enqueue_with_refusals(
        &self,
        account_id: &str,
        submission: &Submission,
        refused: &[NewRefusal],
        idempotent: Option<&Idempotent>,
        respond: impl FnOnce(&[String]) -> String,
    ) -> Result<Vec<String>> {
        let ids: Vec<String> = submission.entries.iter().map(|_| new_id()).collect();
        let (written, mut done) = oneshot::channel();
        let job = Job {
            account_id: account_id.to_owned(),
            submission: submission.clone(),
            content_id: new_id(),
            idempotent: idempotent.map(|i| (i.clone(), respond(&ids))),
            refused: refused.to_vec(),
            ids: ids.clone(),
            settings: self.settings(account_id).await?,
            now: now_ms(),
            written,
        };
        self.group.waiting.lock().expect("never poisoned").push(job);

        let abandoned = || {
            StoreError::Database(sqlx::Error::Io(std::io::Error::other(
                "the commit that held this submission was abandoned",
            )))
        };
        let result = tokio::select! {
            biased;
            result = &mut done => result.unwrap_or_else(|_| Err(abandoned())),
            _turn = self.group.turn.lock() => match done.try_recv() {
                // A leader took this submission up while we waited for the turn.
                Ok(result) => result,
                Err(oneshot::error::TryRecvError::Closed) => Err(abandoned()),
                Err(oneshot::error::TryRecvError::Empty) => {
                    let jobs = std::mem::take(&mut *self.group.waiting.lock().expect("never poisoned"));
                    self.commit_group(jobs).await;
                    done.await.unwrap_or_else(|_| Err(abandoned()))
                }
            },
        };
        result.map(|()| ids)
    }

    /// Writes `jobs` in one transaction and tells each how its own write went.
    async fn commit_group(&self, jobs: Vec<Job>) {
        let mut tx = match self.writer.begin().await {
            Ok(tx) => tx,
            Err(e) => return fail_all(jobs, &e.into()),
        };
        let alone = jobs.len() == 1;
        let mut written = Vec::with_capacity(jobs.len());
        for job in jobs {
            let result = if alone {
                self.write(&mut tx, &job).await
            } else {
                match (&mut tx).begin().await {
                    Ok(mut savepoint) => match self.write(&mut savepoint, &job).await {
                        Ok(()) => savepoint.commit().await.map_err(Into::into),
                        Err(e) => match savepoint.rollback().await {
                            Ok(()) => Err(e),
                            // The transaction is unusable: nothing of it will be committed.
                            Err(rollback) => {
                                let _ = job.written.send(Err(e));
                                let jobs = written.into_iter().map(|(job, _)| job).collect();
                                return fail_all(jobs, &rollback.into());
                            }
                        },
                    },
                    Err(e) => Err(e.into()),
                }
            };
            written.push((job, result));
        }
        if written.iter().any(|(_, result)| result.is_ok())
            && let Err(e) = tx.commit().await
        {
            let jobs = written.into_iter().map(|(job, _)| job).collect();
            return fail_all(jobs, &e.into());
        }
        for (job, result) in written {
            if result.is_ok() {
                self.count(&job);
            }
            let _ = job.written.send(result);
        }
    }

    /// One submission's rows, in `tx`.
    async fn write(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>, job: &Job) -> Result<()> {
        let Job {
            account_id,
            submission,
            content_id,
            ids,
            settings,
            now,
            ..
        } = job;
        let (account_id, now) = (account_id.as_str(), *now);
        let due = submission.send_at_ms.unwrap_or(now);
        insert_content(tx, account_id, content_id, &submission.content, now).await?;
        let request = RefusedRequest {
            batch: submission.batch.as_deref(),
            subject: &submission.content.subject,
        };
        self.insert_refusals(tx, account_id, request, &job.refused, now)
            .await?;

        let hooks = crate::webhooks::live_hooks(tx, account_id).await?;
        let rows: Vec<_> = ids.iter().zip(&submission.entries).collect();
        let queued = serde_json::to_string(&Event::new(EventKind::Queued, now).detail)
            .expect("event details serialise");
        for chunk in rows.chunks(CHUNK) {
            const COLUMNS: usize = 18;
            let sql = format!(
                "INSERT INTO emails (id, account_id, lead_id, content_id, to_address, to_key,
                                     to_domain, fields, batch, stage, status, reason,
                                     next_attempt_at_ms, created_at_ms, updated_at_ms,
                                     milestones, header_to, send_at_ms)
                 VALUES {}",
                self.row_placeholders(chunk.len(), COLUMNS)
            );
            let mut query = sqlx::query(&sql);
            for (id, entry) in chunk {
                let dropped = entry.dropped.map(Reason::as_str);
                query = query
                    .bind(id.as_str())
                    .bind(account_id)
                    .bind(entry.lead_id.as_deref())
                    .bind(content_id.as_str())
                    .bind(entry.to.to_string())
                    .bind(entry.to.normalized())
                    .bind(entry.to.domain().to_owned())
                    .bind(serde_json::to_string(&entry.fields).expect("string maps serialise"))
                    .bind(submission.batch.as_deref())
                    .bind(if dropped.is_some() { "failed" } else { "sent" })
                    .bind(dropped.map(|_| DROPPED))
                    .bind(dropped)
                    .bind(dropped.is_none().then_some(due))
                    .bind(now)
                    .bind(now)
                    .bind(if dropped.is_some() {
                        Milestones::NONE.with(Milestone::Dropped).bits()
                    } else {
                        0
                    })
                    .bind(entry.header_to.as_deref())
                    .bind(submission.send_at_ms);
            }
            query.execute(&mut **tx).await?;

            // The first events of new emails: `queued`, then `failed` for a drop.
            let mut events: Vec<(&str, i64, &str, String)> = Vec::with_capacity(chunk.len());
            for (id, entry) in chunk {
                events.push((id.as_str(), 1, "queued", queued.clone()));
                let to = entry.to.to_string();
                let facts = crate::webhooks::EmailFacts {
                    id,
                    account_id,
                    to: &to,
                    lead_id: entry.lead_id.as_deref(),
                    batch: submission.batch.as_deref(),
                };
                if !hooks.is_empty() {
                    let queued = Event::new(EventKind::Queued, now);
                    crate::webhooks::outbox(tx, &hooks, &facts, &queued).await?;
                }
                if let Some(reason) = entry.dropped {
                    let dropped = Event::new(EventKind::Failed, now)
                        .with_status(DROPPED)
                        .with_reason(reason);
                    if !hooks.is_empty() {
                        crate::webhooks::outbox(tx, &hooks, &facts, &dropped).await?;
                    }
                    let detail =
                        serde_json::to_string(&dropped.detail).expect("event details serialise");
                    events.push((id.as_str(), 2, "failed", detail));
                }
            }
            for events in events.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO events (email_id, seq, account_id, kind, at_ms, detail) VALUES {}",
                    self.row_placeholders(events.len(), 6)
                );
                let mut query = sqlx::query(&sql);
                for (id, seq, kind, detail) in events {
                    query = query
                        .bind(*id)
                        .bind(*seq)
                        .bind(account_id)
                        .bind(*kind)
                        .bind(now)
                        .bind(detail.as_str());
                }
                query.execute(&mut **tx).await?;
            }
        }
        let dropped = submission
            .entries
            .iter()
            .filter(|e| e.dropped.is_some())
            .count();
        crate::reports::count_queued(
            tx,
            account_id,
            submission.batch.as_deref(),
            submission.entries.len() as i64,
            dropped as i64,
            settings,
            now,
        )
        .await?;
        if let Some((idempotent, response)) = &job.idempotent {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (account_id, key, request_hash, response, created_at_ms)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, key) DO NOTHING",
            )
            .bind(account_id)
            .bind(&idempotent.key)
            .bind(&idempotent.request_hash)
            .bind(response)
            .bind(now)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::Conflict(
                    "a request with this Idempotency-Key was processed meanwhile".into(),
                ));
            }
        }
        Ok(())
    }

    /// The in-memory counters of a committed submission.
    fn count(&self, job: &Job) {
        let queued = Event::new(EventKind::Queued, job.now);
        for entry in &job.submission.entries {
            self.counters.count(&queued, false);
            if let Some(reason) = entry.dropped {
                let dropped = Event::new(EventKind::Failed, job.now).with_reason(reason);
                self.counters.count(&dropped, false);
            }
        }
    }
}

/// Tells every one of `jobs` that nothing of theirs was committed, because of `cause`. They
/// get an error of the same kind: one the database could not take is one to retry.
fn fail_all(jobs: Vec<Job>, cause: &StoreError) {
    for job in jobs {
        let error = if cause.is_unavailable() {
            sqlx::Error::Io(std::io::Error::other(cause.to_string()))
        } else {
            sqlx::Error::Protocol(cause.to_string())
        };
        let _ = job.written.send(Err(StoreError::Database(error)));
    }
}
