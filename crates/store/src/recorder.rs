//! Group commit: callers hand events to one writer task that records whatever has piled up in
//! a single transaction, so a burst costs one disk flush per batch instead of one per event.
//! Delivery outcomes and tracking hits go through it. A crash can lose what is not yet
//! written — an outcome (its email is tried again when its lease runs out: a duplicate, never
//! a loss) or the last fraction of a second of opens and clicks (docs/tracking.md); a clean
//! shutdown loses nothing: the writer ends only after writing everything sent to it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::timeout;

use crate::{Record, Store};

/// How a writer gathers its batches.
struct Batching {
    /// Most records written in one transaction.
    most: usize,
    /// Records waiting for the writer; when it is full, callers wait (backpressure).
    queue: usize,
    /// How long the writer waits for a batch to fill before writing it, unless someone waits
    /// for the commit.
    linger: Duration,
}

/// Delivery outcomes: a short queue, because what waits here is lost on a crash and sent
/// again after it, so it bounds the duplicates (a longer one measured ~4,600 unwritten
/// outcomes at a kill). A 2 ms linger gathers the outcomes of all sessions in flight into
/// one commit (one disk flush) instead of a few each; nobody waits on it but a session's
/// final flush, which is written at once.
const OUTCOMES: Batching = Batching {
    most: 512,
    queue: 1024,
    linger: Duration::from_millis(2),
};

/// Opens and clicks, tens of thousands a second: every batch rewrites the index pages of
/// each email it touches (events are keyed by email), so a commit costs about the same for
/// 50 hits as for 2,000, and waiting buys batches large enough to keep up. 50 ms rather
/// than 10 ms took the writer from 4.3 to 2.8 µs of CPU per hit and the pixel from ~72k to
/// ~80k requests/s (`bench/tracking.sh`). A crash loses at most the queue and the linger: a
/// fraction of a second of hits.
const HITS: Batching = Batching {
    most: 4096,
    queue: 16_384,
    linger: Duration::from_millis(50),
};

struct Job {
    /// `None` for a flush: a marker answered once everything before it is committed.
    record: Option<Record>,
    /// Answered once the record is committed, for callers that must see it before going on.
    done: Option<oneshot::Sender<()>>,
}

#[derive(Clone)]
pub struct Recorder {
    jobs: mpsc::Sender<Job>,
    /// Cuts the writer's linger short: someone waits for a commit, or a full batch waits.
    /// Other records reach the writer without waking it.
    hurry: Arc<Notify>,
    /// [`Batching::most`] of this writer.
    most: usize,
}

impl Recorder {
    /// Starts a writer of delivery outcomes. It ends, after writing everything sent to it,
    /// when every `Recorder` clone is dropped; await the handle to know it has.
    pub fn spawn(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        Self::start(store, OUTCOMES)
    }

    /// [`Recorder::spawn`] for opens and clicks: larger batches, gathered for a moment.
    pub fn spawn_for_hits(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        Self::start(store, HITS)
    }

    fn start(store: Store, batching: Batching) -> (Self, tokio::task::JoinHandle<()>) {
        let (jobs, receiver) = mpsc::channel(batching.queue);
        let hurry = Arc::new(Notify::new());
        let most = batching.most;
        let writer = tokio::spawn(write_batches(store, receiver, hurry.clone(), batching));
        (Self { jobs, hurry, most }, writer)
    }

    /// Queues a record; with `wait`, returns only once it is committed.
    pub async fn record(&self, record: Record, wait: bool) {
        let (done, committed) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.send(
            Job {
                record: Some(record),
                done,
            },
            committed,
        )
        .await;
    }

    /// Returns once everything recorded before it is committed.
    pub async fn flush(&self) {
        let (done, committed) = oneshot::channel();
        self.send(
            Job {
                record: None,
                done: Some(done),
            },
            Some(committed),
        )
        .await;
    }

    async fn send(&self, job: Job, committed: Option<oneshot::Receiver<()>>) {
        if self.jobs.send(job).await.is_err() {
            tracing::error!("the event writer has stopped; this event is not recorded");
            return;
        }
        let waiting = self.jobs.max_capacity() - self.jobs.capacity();
        if committed.is_some() || waiting >= self.most {
            self.hurry.notify_one();
        }
        if let Some(committed) = committed {
            let _ = committed.await;
        }
    }
}

/// The writer: waits for a first record, lets more pile up for the linger (asleep: a record
/// queued meanwhile does not wake it, which at tens of thousands of hits a second was one
/// task wake-up and one timer per hit), then writes what is there, up to a batch.
async fn write_batches(
    store: Store,
    mut receiver: mpsc::Receiver<Job>,
    hurry: Arc<Notify>,
    batching: Batching,
) {
    let mut batch = Vec::with_capacity(batching.most);
    while receiver.recv_many(&mut batch, batching.most).await > 0 {
        // Someone waiting for the commit is never kept waiting longer.
        let waited_for = batch.iter().any(|job| job.done.is_some());
        if !waited_for && !batching.linger.is_zero() && batch.len() < batching.most {
            let _ = timeout(batching.linger, hurry.notified()).await;
        }
        while batch.len() < batching.most
            && let Ok(job) = receiver.try_recv()
        {
            batch.push(job);
        }
        let records: Vec<Record> = batch
            .iter_mut()
            .filter_map(|job| job.record.take())
            .collect();
        let mut delay = Duration::from_millis(100);
        // A write that fails (database down, disk full) is retried, never dropped: sessions
        // wait on the channel meanwhile, and leases cover a crash.
        while !records.is_empty()
            && let Err(e) = store.record_many(&records).await
        {
            tracing::error!(error = %e, records = records.len(), "cannot record events; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        for job in batch.drain(..) {
            if let Some(done) = job.done {
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use mailtrail_domain::{Event, EventKind};

    use super::*;
    use crate::{AccountId, Effects, EmailId};

    /// A store with one queued email: its account and id.
    async fn store_with_an_email(dir: &std::path::Path) -> (Store, AccountId, EmailId) {
        let store = Store::open_sqlite(dir, crate::MasterKey::generate())
            .await
            .unwrap();
        let (account, _) = store.create_account("Acme").await.unwrap();
        let ids = crate::testing::queue(&store, &account, &["a@x.test"], None).await;
        (store, account, ids[0].clone())
    }

    fn open(account: &str, email: &str) -> Record {
        Record {
            account_id: account.to_owned(),
            email_id: email.to_owned(),
            event: Event::new(EventKind::Opened, crate::now_ms()),
            effects: Effects::default(),
        }
    }

    async fn opens(store: &Store, account: &AccountId, email: &EmailId) -> usize {
        let events = store.events(account, email).await.unwrap();
        events
            .iter()
            .filter(|e| e.event.kind == EventKind::Opened)
            .count()
    }

    /// A linger no test waits out: whatever is written within the test's few seconds was
    /// written because the writer was hurried.
    const LONG: Batching = Batching {
        most: 4,
        queue: 16,
        linger: Duration::from_secs(60),
    };

    #[tokio::test]
    async fn a_record_someone_waits_for_is_committed_without_the_linger() {
        let dir = tempfile::tempdir().unwrap();
        let (store, account, email) = store_with_an_email(dir.path()).await;
        let (recorder, _writer) = Recorder::start(store.clone(), LONG);
        // The writer takes this one and lingers.
        recorder.record(open(&account, &email), false).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::time::timeout(
            Duration::from_secs(10),
            recorder.record(open(&account, &email), true),
        )
        .await
        .expect("committed long before the linger");
        assert_eq!(
            opens(&store, &account, &email).await,
            2,
            "with the record queued before it"
        );
    }

    #[tokio::test]
    async fn a_full_batch_is_written_without_the_linger() {
        let dir = tempfile::tempdir().unwrap();
        let (store, account, email) = store_with_an_email(dir.path()).await;
        let (recorder, _writer) = Recorder::start(store.clone(), LONG);
        // The writer takes the first record and lingers; then a whole batch piles up.
        recorder.record(open(&account, &email), false).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        for _ in 0..LONG.most {
            recorder.record(open(&account, &email), false).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while opens(&store, &account, &email).await < LONG.most {
            assert!(
                Instant::now() < deadline,
                "a full batch waited for the linger"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_writer_ends_after_writing_everything_queued() {
        let dir = tempfile::tempdir().unwrap();
        let (store, account, email) = store_with_an_email(dir.path()).await;
        let (recorder, writer) = Recorder::start(
            store.clone(),
            Batching {
                linger: Duration::from_millis(50),
                ..LONG
            },
        );
        for _ in 0..LONG.most + 1 {
            recorder.record(open(&account, &email), false).await;
        }
        drop(recorder);
        writer.await.unwrap();
        assert_eq!(opens(&store, &account, &email).await, LONG.most + 1);
    }
}
