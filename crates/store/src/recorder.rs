//! Group commit: callers hand events to one writer task that records whatever has piled up in
//! a single transaction, so a burst costs one disk flush per batch instead of one per event.
//! Delivery outcomes and tracking hits go through it. A crash can lose what is not yet
//! written — an outcome (its email is tried again when its lease runs out: a duplicate, never
//! a loss) or the last fraction of a second of opens and clicks (PRODUCT.md §4); a clean
//! shutdown loses nothing: the writer ends only after writing everything sent to it.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::{Record, Store};

/// Most records written in one transaction.
const BATCH: usize = 512;

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
    /// Starts the writer. It ends, after writing everything sent to it, when every
    /// `Recorder` clone is dropped; await the handle to know it has.
    pub fn spawn(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        // A short queue: what waits here is lost on a crash and sent again after it, so it
        // bounds the duplicates (a longer one measured ~4,600 unwritten outcomes at a kill).
        let (jobs, receiver) = mpsc::channel(BATCH * 2);
        let writer = tokio::spawn(write_batches(store, receiver));
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

async fn write_batches(store: Store, mut receiver: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        let records: Vec<Record> = batch.iter().filter_map(|job| job.record.clone()).collect();
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
