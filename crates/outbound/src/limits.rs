//! Per-destination limits (docs/api.md, issue #9): at most `sessions_per_destination`
//! sessions open to a destination, at most `messages_per_second_per_destination` messages,
//! and a pause of `throttle` after it asks to slow down — held in the database, so they hold
//! across every node sharing it, not per process.
//!
//! A session first waits for one of this node's local permits for the destination (so the
//! node's own sessions queue in memory, not by polling), then, on PostgreSQL, takes a
//! database slot. SQLite has one node by design, so there the local permit is the slot: a
//! database slot would only add two commits (two disk flushes) to every session. The slot
//! is leased for [`SLOT_LEASE`] and renewed while the session runs; a crashed node's slots
//! come back within a lease. A session that finds every slot held by other nodes retries for
//! [`SLOT_WAIT`], then gives its emails back to the queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailtrail_store::{Backend, Slot, SlotClaim, Store, StoreError, now_ms, now_us};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::OutboundConfig;

/// How long a slot stays held without a renewal: a crashed node's sessions stop counting
/// against their destination after at most this long.
const SLOT_LEASE: Duration = Duration::from_secs(10);
/// How long a session waits for another node to free a slot before giving its emails back.
const SLOT_WAIT: Duration = Duration::from_secs(2);
/// Between two tries for a slot.
const SLOT_RETRY: Duration = Duration::from_millis(50);

/// The limits of every destination, as this node sees them.
pub struct Destinations {
    store: Store,
    sessions: usize,
    interval_us: Option<i64>,
    /// This node's sessions per destination, queued in memory before the database slot.
    local: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Distinguishes this process's slots from every other node's.
    node: String,
    next_holder: AtomicU64,
}

/// Whether a session may start now.
pub enum Admission {
    Open(Session),
    /// The destination asked to slow down; leave it until then.
    Paused {
        until_ms: i64,
    },
    /// Other nodes hold every slot.
    Busy,
}

/// A session's place among its destination's: hold it while the session runs, then
/// [`Session::end`] it.
pub struct Session {
    /// The database slot, on a database that several nodes share.
    shared: Option<SharedSlot>,
    _local: OwnedSemaphorePermit,
}

struct SharedSlot {
    store: Store,
    slot: Slot,
    renewal: JoinHandle<()>,
}

impl Destinations {
    pub fn new(store: Store, config: &OutboundConfig) -> Self {
        Self {
            store,
            sessions: config.sessions_per_destination.max(1),
            interval_us: config
                .messages_per_second_per_destination
                .map(|rate| (1_000_000.0 / rate.max(0.001)) as i64),
            local: Mutex::default(),
            node: format!("{:016x}", rand::random::<u64>()),
            next_holder: AtomicU64::new(0),
        }
    }

    /// Waits for a session's place with `destination`.
    pub async fn admit(&self, destination: &str) -> Result<Admission, StoreError> {
        let local = self
            .local
            .lock()
            .expect("not poisoned")
            .entry(destination.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.sessions)))
            .clone();
        let permit = local.acquire_owned().await.expect("never closed");
        if self.store.backend() == Backend::Sqlite {
            let until_ms = self.store.destination_paused_until(destination).await?;
            return Ok(if until_ms > now_ms() {
                Admission::Paused { until_ms }
            } else {
                Admission::Open(Session {
                    shared: None,
                    _local: permit,
                })
            });
        }
        let holder = format!(
            "{}-{}",
            self.node,
            self.next_holder.fetch_add(1, Ordering::Relaxed)
        );
        let lease_ms = SLOT_LEASE.as_millis() as i64;
        let deadline = tokio::time::Instant::now() + SLOT_WAIT;
        loop {
            match self
                .store
                .claim_destination_slot(destination, self.sessions, &holder, lease_ms)
                .await?
            {
                SlotClaim::Taken(slot) => {
                    return Ok(Admission::Open(Session {
                        shared: Some(SharedSlot {
                            renewal: tokio::spawn(renew(self.store.clone(), slot.clone())),
                            store: self.store.clone(),
                            slot,
                        }),
                        _local: permit,
                    }));
                }
                SlotClaim::Paused { until_ms } => return Ok(Admission::Paused { until_ms }),
                SlotClaim::Busy if tokio::time::Instant::now() >= deadline => {
                    return Ok(Admission::Busy);
                }
                SlotClaim::Busy => tokio::time::sleep(SLOT_RETRY).await,
            }
        }
    }

    /// The destination's rate limit, if one is configured.
    pub fn pace<'a>(&'a self, destination: &'a str) -> Option<Pace<'a>> {
        self.interval_us.map(|interval_us| Pace {
            store: &self.store,
            destination,
            interval_us,
        })
    }

    /// Leaves the destination alone, on every node, until `until_ms`.
    pub async fn pause(&self, destination: &str, until_ms: i64) -> Result<(), StoreError> {
        self.store.pause_destination(destination, until_ms).await
    }
}

impl Session {
    /// Frees the slot for the next session, on any node.
    pub async fn end(mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        shared.renewal.abort();
        if let Err(e) = shared.store.release_destination_slot(&shared.slot).await {
            tracing::warn!(error = %e, destination = %shared.slot.destination,
                "cannot free a session slot; it frees itself when its lease runs out");
        }
    }
}

impl Drop for SharedSlot {
    /// A session dropped without [`Session::end`] (its task cancelled) stops renewing: its
    /// slot frees itself within a lease.
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

/// Keeps a slot's lease alive while its session runs.
async fn renew(store: Store, slot: Slot) {
    let mut every = tokio::time::interval(SLOT_LEASE / 3);
    every.tick().await;
    loop {
        every.tick().await;
        match store
            .renew_destination_slot(&slot, SLOT_LEASE.as_millis() as i64)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(destination = %slot.destination,
                    "a session outlived its slot's lease; the destination may briefly see one session too many");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew a session slot; retrying"),
        }
    }
}

/// A destination's rate limit: each message takes the next turn, shared by every node.
pub struct Pace<'a> {
    store: &'a Store,
    destination: &'a str,
    interval_us: i64,
}

impl Pace<'_> {
    /// Waits for this message's turn.
    pub async fn turn(&self) -> Result<(), StoreError> {
        let at = self
            .store
            .next_destination_turn(self.destination, self.interval_us)
            .await?;
        let wait = at - now_us();
        if wait > 0 {
            tokio::time::sleep(Duration::from_micros(wait as u64)).await;
        }
        Ok(())
    }
}
