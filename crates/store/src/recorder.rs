//! Group commit: callers hand events to one writer task that records whatever has piled up in
//! a single transaction, so a burst costs one disk flush per batch instead of one per event.
//! Delivery outcomes and tracking hits go through it. A crash can lose what is not yet
//! written — an outcome (its email is tried again when its lease runs out: a duplicate, never
//! a loss) or the last fraction of a second of opens and clicks (PRODUCT.md §4); a clean
//! shutdown loses nothing: the writer ends only after writing everything sent to it.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout_at};

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
        let writer = tokio::spawn(write_batches(store, receiver, batching));
        (Self { jobs }, writer)
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
        if let Some(committed) = committed {
            let _ = committed.await;
        }
    }
}

async fn write_batches(store: Store, mut receiver: mpsc::Receiver<Job>, batching: Batching) {
    let mut batch = Vec::with_capacity(batching.most);
    while receiver.recv_many(&mut batch, batching.most).await > 0 {
        // Someone waiting for the commit is never kept waiting longer.
        let until = Instant::now() + batching.linger;
        let mut write_now = batching.linger.is_zero() || batch.iter().any(|job| job.done.is_some());
        while !write_now && batch.len() < batching.most {
            let before = batch.len();
            match timeout_at(
                until,
                receiver.recv_many(&mut batch, batching.most - before),
            )
            .await
            {
                Ok(received) if received > 0 => {
                    write_now = batch[before..].iter().any(|job| job.done.is_some());
                }
                _ => break,
            }
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
