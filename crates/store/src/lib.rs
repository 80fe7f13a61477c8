//! Mailtrail's storage: one API over SQLite (the embedded default) and PostgreSQL (several
//! nodes), every row scoped to an account.
//!
//! - this file: opening a store, migrations, the error type, ids and clocks;
//! - [`copy`]: online backup of the embedded database, and moving it into PostgreSQL;
//! - [`counters`]: what this process recorded, for `/metrics`;
//! - [`destinations`]: per-destination session slots, rate limit and pause, shared by nodes;
//! - [`accounts`]: accounts, API keys and UI users;
//! - [`blocks`]: the suppression and permission check right before each attempt;
//! - [`domains`]: sending domains, their DKIM keys and the last check of their DNS records;
//! - [`leads`]: leads and their bulk import;
//! - [`login_throttle`]: failed sign-ins and the locks they earn, and single-use sign-in forms;
//! - [`erasure`]: erasing a lead's personal data, keeping its block as a hash;
//! - [`emails`]: emails and their append-only events, with the derived stage kept in step;
//! - `bulk`: recording many events in one transaction, a few statements per batch;
//! - [`inbound`]: raw received mail and its processing state;
//! - [`forwards`]: replies waiting to be forwarded to their email's sender;
//! - [`ids`]: account and email ids as types, so two cannot be swapped;
//! - [`protection`]: recent bounce/complaint rates and the pause of an account's sending;
//! - [`queue`]: submissions, and the outbound queue workers claim from;
//! - [`refusals`]: recipients a send request named that were refused, kept to be shown;
//! - [`retention`]: how long raw mail and old emails are kept, and the sweep;
//! - [`reports`]: the email report, the batch report and a lead's activity;
//! - [`overview`]: the overview's counts per range of days, and scheduled mail;
//! - [`recorder`]: group commit of events (delivery outcomes, opens, clicks);
//! - [`suppressions`]: blocked addresses and their audit trail;
//! - [`webhooks`]: per-account webhook URLs and the durable outbox of their deliveries;
//! - [`secrets`]: installation-wide secrets such as the token signing key, and keeping every
//!   secret column sealed under the master key;
//! - [`sealed`]: the master key, and values encrypted under it;
//! - `private`: the data directory, database and key file readable by their owner only;
//! - [`settings`]: account settings, and the links tracked clicks redirect to;
//! - [`web`]: the web UI's logins, sessions and account picker.
//!
//! Both backends run the same SQL through sqlx's `any` driver (numbered `$N` parameters,
//! portable types); the few statements that differ are chosen by [`Backend`] here, never
//! outside this crate. On SQLite every write goes through a single connection, so write
//! transactions are serialised in-process and never meet `SQLITE_BUSY` among themselves; on
//! PostgreSQL rows are locked with `FOR UPDATE`.

pub mod accounts;
pub mod blocks;
mod bulk;
pub mod copy;
pub mod counters;
pub mod destinations;
pub mod domains;
pub mod emails;
mod enqueue;
pub mod erasure;
pub mod forwards;
pub mod ids;
pub mod inbound;
pub mod lead_csv;
pub mod leads;
pub mod login_throttle;
pub mod overview;
mod private;
pub mod protection;
pub mod queue;
pub mod recorder;
pub mod refusals;
pub mod reports;
pub mod retention;
pub mod sealed;
pub mod secrets;
pub mod settings;
pub mod smtp_credentials;
pub mod suppressions;
#[cfg(test)]
mod testing;
pub mod web;
pub mod webhooks;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Connection, Executor};

pub use accounts::{ApiCaller, NewKey};
pub use blocks::BlockCheck;
pub use counters::Counters;
pub use destinations::{Slot, SlotClaim, now_us};
pub use domains::{
    DomainKey, DomainStatus, NewDomain, NextKey, SendingDomain, default_return_path,
};
pub use emails::{
    AttachmentInfo, Effects, EmailRecord, Mismatch, QueueChange, Record, StoredEvent,
};
pub use erasure::Erased;
pub use forwards::{Forward, ForwardOutcome, ForwardTargets};
pub use ids::{AccountId, EmailId};
pub use inbound::{InboundRecord, Pending, Processed};
pub use leads::{ImportSummary, Lead, LeadPatch, NewLead, PermissionCause};
pub use overview::{DayCounts, Reached, Scheduled, ScheduledEmail};
pub use protection::{Pause, RecentRates};
pub use queue::{
    Attachment, Cancel, Claimed, Content, Idempotent, LeadBrief, QueueEntry, Submission,
};
pub use recorder::Recorder;
pub use refusals::{BatchRefusals, NewRefusal, Refusal, RefusalReason, RefusedRequest};
pub use reports::{BatchStats, Cursor, EmailFilter, EmailRow, Page, ReplyRow};
pub use sealed::MasterKey;
pub use settings::{HitContext, Settings};
pub use smtp_credentials::{NewSmtpCredential, SmtpCredential};
pub use suppressions::{Block, Suppression, SuppressionLogEntry};
pub use web::{AccountBrief, AccountUser, WebSession, WebUser};
pub use webhooks::{Attempt, Delivery, DueDelivery, Webhook};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The master key is missing, unusable or not the one the database's secrets are
    /// sealed under.
    #[error("master key: {0}")]
    MasterKey(String),
}

impl StoreError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }

    /// The database cannot take requests right now — unreachable, restarting, out of disk or
    /// overloaded — as opposed to a request it refused: callers answer "try again later"
    /// (503, SMTP 451) and nothing is half-written.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // SQLite: BUSY, LOCKED, IOERR, FULL, CANTOPEN (and their extended codes).
                let sqlite = code
                    .parse::<u32>()
                    .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 10 | 13 | 14));
                // PostgreSQL: connection exceptions, insufficient resources (disk full, out
                // of memory, too many connections), operator intervention (shutdown).
                let postgres = ["08", "53", "57P"]
                    .iter()
                    .any(|class| code.starts_with(class));
                sqlite || postgres
            }),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone (the pools are shared).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// Every write transaction. One connection on SQLite (see the module docs).
    writer: AnyPool,
    /// Reads that need no lock. The same pool as `writer` on PostgreSQL.
    reader: AnyPool,
    counters: std::sync::Arc<counters::Counters>,
    /// Submissions waiting for their commit ([`enqueue`]).
    group: std::sync::Arc<enqueue::GroupCommit>,
    /// What the secret columns are sealed under.
    key: std::sync::Arc<MasterKey>,
}

impl Store {
    /// Opens (creating if needed) the embedded database `mailtrail.db` under `data_dir`, in WAL
    /// mode with `synchronous = FULL`: a commit is on disk before Mailtrail answers. Its
    /// secrets are sealed under `key`, which must be the one they were sealed under before.
    /// The directory is its owner's alone (0700), the database and its journals 0600.
    pub async fn open_sqlite(data_dir: &Path, key: MasterKey) -> Result<Self> {
        install_default_drivers();
        private::create_dir(data_dir)?;
        let database = data_dir.join("mailtrail.db");
        // SQLite gives its `-wal` and `-shm` files the database file's mode.
        if let Err(e) = private::create_file(&database)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                format!("cannot create {}: {e}", database.display()).into(),
            )));
        }
        for suffix in ["", "-wal", "-shm"] {
            private::tighten(&data_dir.join(format!("mailtrail.db{suffix}")), 0o600)?;
        }
        let url = format!("sqlite://{}?mode=rwc", database.display());
        let pool = |max, temp_store: &'static str| {
            AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA busy_timeout = 10000",
                            "PRAGMA foreign_keys = ON",
                            // What a write frees is zeroed, not left in the page: a secret
                            // re-sealed or deleted leaves no copy of its old bytes.
                            "PRAGMA secure_delete = ON",
                            temp_store,
                        ] {
                            conn.execute(pragma).await?;
                        }
                        Ok(())
                    })
                })
                .after_release(|conn, _| {
                    Box::pin(async move {
                        // When SQLite rolls a transaction back by itself (disk full, I/O
                        // error), sqlx's own ROLLBACK fails and it goes on counting a
                        // transaction that no longer exists: every later "commit" would then
                        // only release a savepoint and never reach the disk. A connection
                        // that still counts one when it comes back is closed, not reused.
                        // The ping runs after any rollback still queued on the connection.
                        if conn.ping().await.is_err() {
                            return Ok(false);
                        }
                        Ok(!conn.is_in_transaction())
                    })
                })
        };
        // Each of the writer's multi-row statements keeps a statement journal (the pages it
        // changed, to undo it alone on a constraint error); past 64 KiB SQLite moves it to a
        // temporary file, and with the pixel's batches that was ~40 % of the writer's `pwrite`
        // calls. In memory it holds at most one statement's pages of a bounded batch. Readers
        // keep temporary files on disk: a report's sort may be large.
        let writer = pool(1, "PRAGMA temp_store = MEMORY").connect(&url).await?;
        MIGRATOR.run(&writer).await?;
        let reader = pool(8, "PRAGMA temp_store = DEFAULT").connect(&url).await?;
        let store = Self {
            backend: Backend::Sqlite,
            writer,
            reader,
            counters: Default::default(),
            group: Default::default(),
            key: key.into(),
        };
        store.take_up_key().await?;
        Ok(store)
    }

    /// Connects to PostgreSQL at `url` and brings its schema up to date. Several nodes may
    /// do this at once: sqlx serialises migrations with an advisory lock. Every node must have
    /// the same `key`.
    pub async fn open_postgres(url: &str, max_connections: u32, key: MasterKey) -> Result<Self> {
        install_default_drivers();
        // While PostgreSQL is down or restarting, a request waits at most this long for a
        // connection, then answers 503 (the API) or 451 (SMTP) and the client retries; the
        // background loops retry on their own.
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        let store = Self {
            backend: Backend::Postgres,
            writer: pool.clone(),
            reader: pool,
            counters: Default::default(),
            group: Default::default(),
            key: key.into(),
        };
        store.take_up_key().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What this process recorded since it started.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// Closes the pools, waiting for connections in use.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// A new time-ordered id.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl Store {
    /// `count` parameters numbered from `first`, comma-separated, for statements built with
    /// many parameters (bulk inserts, `IN (…)` lists). Such a statement must take *all* its
    /// parameters from here, in order: on SQLite they are plain `?`, because SQLite looks a
    /// numbered parameter's name up by a linear scan, which makes binding thousands of `$N`
    /// quadratic (80% of a 20,000-email submission's time before this).
    fn placeholders(&self, first: usize, count: usize) -> String {
        match self.backend {
            Backend::Postgres => (first..first + count)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", "),
            Backend::Sqlite => vec!["?"; count].join(", "),
        }
    }

    /// `(…), (…)` for `rows` rows of `columns` parameters, as [`Store::placeholders`].
    fn row_placeholders(&self, rows: usize, columns: usize) -> String {
        (0..rows)
            .map(|i| format!("({})", self.placeholders(i * columns + 1, columns)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What a claim's read appends so several nodes claim different rows at once:
    /// `FOR UPDATE SKIP LOCKED` on PostgreSQL; nothing on SQLite's single writer.
    fn skip_locked_clause(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// What a read inside a write transaction appends to lock its row: PostgreSQL needs
    /// `FOR UPDATE`; SQLite's single writer connection already excludes other writers.
    fn lock_clause(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }
}
