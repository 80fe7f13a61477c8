//! Per-destination limits shared by every node on one database (issue #9): how many sessions
//! may be open to a destination at once, how fast it may take messages, and whether it is
//! paused because it asked to slow down.
//!
//! A session holds a *slot* — one of the destination's `sessions_per_destination` — under a
//! lease that its holder renews; a crashed node's slots come back when their lease runs out.
//! Claiming locks the destination's row (PostgreSQL `FOR UPDATE`; on SQLite the single writer
//! serialises it), so two nodes never take the same slot. The rate limit is a shared
//! "next turn" time that each message moves forward by one interval in a single statement.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::{Backend, Result, Store, now_ms};

/// A session's hold on one of a destination's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub destination: String,
    pub index: i64,
    pub holder: String,
}

/// The answer to a request for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotClaim {
    Taken(Slot),
    /// Every slot is held by a live session.
    Busy,
    /// The destination asked to slow down; nothing goes to it before this time.
    Paused {
        until_ms: i64,
    },
}

/// Microseconds since the Unix epoch: rate limits above 1,000 messages/s need finer steps
/// than milliseconds.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

impl Store {
    /// Takes a free slot among the destination's first `slots` for `holder`, leased for
    /// `lease_ms`, unless the destination is paused or every slot is held.
    pub async fn claim_destination_slot(
        &self,
        destination: &str,
        slots: usize,
        holder: &str,
        lease_ms: i64,
    ) -> Result<SlotClaim> {
        let now = now_ms();
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        let mut tx = self.writer.begin().await?;
        sqlx::query("INSERT INTO destinations (destination) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(destination)
            .execute(&mut *tx)
            .await?;
        let paused_until: i64 = sqlx::query_scalar(&format!(
            "SELECT paused_until_ms FROM destinations WHERE destination = $1{lock}"
        ))
        .bind(destination)
        .fetch_one(&mut *tx)
        .await?;
        let claim = if paused_until > now {
            SlotClaim::Paused {
                until_ms: paused_until,
            }
        } else {
            take_free_slot(&mut tx, destination, slots, holder, now + lease_ms).await?
        };
        tx.commit().await?;
        Ok(claim)
    }

    /// Until when the destination is paused (0 when it is not), read without taking a slot:
    /// for a node that has the database to itself and keeps its slots in memory.
    pub async fn destination_paused_until(&self, destination: &str) -> Result<i64> {
        let paused: Option<i64> =
            sqlx::query_scalar("SELECT paused_until_ms FROM destinations WHERE destination = $1")
                .bind(destination)
                .fetch_optional(&self.reader)
                .await?;
        Ok(paused.unwrap_or(0))
    }

    /// Extends a slot's lease; `false` when it is no longer this holder's (its lease ran out
    /// and another session took it).
    pub async fn renew_destination_slot(&self, slot: &Slot, lease_ms: i64) -> Result<bool> {
        let renewed = sqlx::query(
            "UPDATE destination_slots SET until_ms = $1
             WHERE destination = $2 AND slot = $3 AND holder = $4",
        )
        .bind(now_ms() + lease_ms)
        .bind(&slot.destination)
        .bind(slot.index)
        .bind(&slot.holder)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(renewed == 1)
    }

    /// Frees a slot (a no-op if another holder has it by now).
    pub async fn release_destination_slot(&self, slot: &Slot) -> Result<()> {
        sqlx::query(
            "UPDATE destination_slots SET holder = NULL, until_ms = 0
             WHERE destination = $1 AND slot = $2 AND holder = $3",
        )
        .bind(&slot.destination)
        .bind(slot.index)
        .bind(&slot.holder)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Reserves the destination's next turn under a rate of one message per `interval_us`:
    /// returns when (µs since the epoch) this message may go, and moves the shared next turn
    /// one interval past it.
    pub async fn next_destination_turn(&self, destination: &str, interval_us: i64) -> Result<i64> {
        // One statement per message: the row is made on the destination's first turn.
        let next: i64 = sqlx::query_scalar(
            "INSERT INTO destinations (destination, next_turn_at_us) VALUES ($3, $1 + $2)
             ON CONFLICT (destination) DO UPDATE
                SET next_turn_at_us = CASE WHEN destinations.next_turn_at_us > $1
                                           THEN destinations.next_turn_at_us ELSE $1 END + $2
             RETURNING next_turn_at_us",
        )
        .bind(now_us())
        .bind(interval_us)
        .bind(destination)
        .fetch_one(&self.writer)
        .await?;
        Ok(next - interval_us)
    }

    /// Leaves the destination alone until `until_ms` on every node (it never shortens a
    /// pause already longer).
    pub async fn pause_destination(&self, destination: &str, until_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO destinations (destination, paused_until_ms) VALUES ($1, $2)
             ON CONFLICT (destination) DO UPDATE SET paused_until_ms =
                CASE WHEN destinations.paused_until_ms > excluded.paused_until_ms
                     THEN destinations.paused_until_ms ELSE excluded.paused_until_ms END",
        )
        .bind(destination)
        .bind(until_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}

/// Within the claim's transaction: the first of `slots` nobody holds, now taken.
async fn take_free_slot(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    destination: &str,
    slots: usize,
    holder: &str,
    until_ms: i64,
) -> Result<SlotClaim> {
    let now = now_ms();
    let held: Vec<i64> = sqlx::query_scalar(
        "SELECT slot FROM destination_slots WHERE destination = $1 AND until_ms >= $2",
    )
    .bind(destination)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    let Some(index) = (0..slots as i64).find(|slot| !held.contains(slot)) else {
        return Ok(SlotClaim::Busy);
    };
    sqlx::query(
        "INSERT INTO destination_slots (destination, slot, holder, until_ms)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (destination, slot) DO UPDATE
            SET holder = excluded.holder, until_ms = excluded.until_ms",
    )
    .bind(destination)
    .bind(index)
    .bind(holder)
    .bind(until_ms)
    .execute(&mut **tx)
    .await?;
    Ok(SlotClaim::Taken(Slot {
        destination: destination.to_owned(),
        index,
        holder: holder.to_owned(),
    }))
}
