//! Sign-in throttling, shared by every node: failed sign-ins counted per key (a login or a
//! client address, named by the caller), the lock they earn — each one twice as long as the
//! last, up to a cap — and the spent tokens of sign-in forms, so each works once. What a failure does to a
//! key's count is [`after_failure`], pure and tested here.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Result, Store};

/// When failures of one key lock it, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimit {
    /// Failures that start the first lock.
    pub failures: u32,
    /// A key with no failure and no lock for this long is forgotten (ms).
    pub window_ms: i64,
    /// The first lock (ms); each later one doubles it.
    pub lock_ms: i64,
    /// The longest lock (ms).
    pub lock_max_ms: i64,
}

/// What [`Store::count_login_attempt`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Counted {
    /// A key is locked until then (ms): nothing was counted.
    AlreadyLocked(i64),
    /// Counted against every key, in the order they were given.
    Counted(Vec<Count>),
}

/// An attempt counted as a failure of one key before its password was checked: what the key
/// was and became, so [`Store::uncount_login_attempt`] can take it back if it was right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    key: String,
    before: Failures,
    after: Failures,
}

impl Count {
    /// `Some(until)` (ms) when this failure started a lock.
    pub fn lock(&self) -> Option<i64> {
        (self.after.locked_until_ms > self.after.last_failure_ms)
            .then_some(self.after.locked_until_ms)
    }
}

/// One key's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Failures {
    failures: i64,
    locks: i64,
    locked_until_ms: i64,
    last_failure_ms: i64,
}

impl Failures {
    fn read(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Failures {
            failures: row.try_get("failures")?,
            locks: row.try_get("locks")?,
            locked_until_ms: row.try_get("locked_until_ms")?,
            last_failure_ms: row.try_get("last_failure_ms")?,
        })
    }
}

/// Sets the row of `key`, locked by `tx`.
async fn write_failures(
    tx: &mut Transaction<'static, Any>,
    key: &str,
    row: &Failures,
) -> Result<()> {
    sqlx::query(
        "UPDATE login_failures SET failures = $2, locks = $3, locked_until_ms = $4,
             last_failure_ms = $5
         WHERE key = $1",
    )
    .bind(key)
    .bind(row.failures)
    .bind(row.locks)
    .bind(row.locked_until_ms)
    .bind(row.last_failure_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The key's row after one more failure at `now`. Once a key has been locked, every further
/// failure (after the lock, since a locked key is not checked) locks it again, twice as long:
/// a script gets `failures` guesses, then one per lock.
fn after_failure(previous: Option<Failures>, limit: &LoginLimit, now: i64) -> Failures {
    let mut next = previous
        .filter(|p| now - p.last_failure_ms.max(p.locked_until_ms) < limit.window_ms)
        .unwrap_or_default();
    next.failures += 1;
    next.last_failure_ms = now;
    if next.locks > 0 || next.failures >= i64::from(limit.failures) {
        let doubled = limit.lock_ms.saturating_mul(1 << next.locks.min(32));
        next.locked_until_ms = now + doubled.min(limit.lock_max_ms);
        next.locks += 1;
        next.failures = 0;
    }
    next
}

impl Store {
    /// The latest end of a lock on any of `keys` still running at `now` (ms), if any.
    pub async fn login_locked_until(&self, keys: &[&str], now: i64) -> Result<Option<i64>> {
        let mut until = None;
        for key in keys {
            let locked: Option<i64> = sqlx::query_scalar(
                "SELECT locked_until_ms FROM login_failures
                 WHERE key = $1 AND locked_until_ms > $2",
            )
            .bind(*key)
            .bind(now)
            .fetch_optional(&self.reader)
            .await?;
            until = until.max(locked);
        }
        Ok(until)
    }

    /// Counts a sign-in attempt as a failure of each of `keys` (a key and its limit) before
    /// its password is checked, unless one of them is locked at `now`: then nothing is counted.
    /// Attempts that passed [`Store::login_locked_until`] together meet here, one at a time
    /// per key, so guesses sent together cannot outrun a lock. Keys quiet for longer than
    /// the longest window are deleted on the way.
    pub async fn count_login_attempt(
        &self,
        keys: &[(&str, &LoginLimit)],
        now: i64,
    ) -> Result<Counted> {
        // Rows are locked in the order of their keys, so two attempts never wait on each other.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|&i| keys[i].0);
        let mut before = vec![Failures::default(); keys.len()];
        let mut tx = self.writer.begin().await?;
        for &i in &order {
            // Inserting a zero row or locking the one there, in one statement: on PostgreSQL
            // a `SELECT … FOR UPDATE` of a row that does not exist yet locks nothing, so the
            // first guesses sent together would each start from nothing and count as one.
            let row = sqlx::query(
                "INSERT INTO login_failures
                     (key, failures, locks, locked_until_ms, last_failure_ms)
                 VALUES ($1, 0, 0, 0, 0)
                 ON CONFLICT (key) DO UPDATE SET failures = login_failures.failures
                 RETURNING failures, locks, locked_until_ms, last_failure_ms",
            )
            .bind(keys[i].0)
            .fetch_one(&mut *tx)
            .await?;
            before[i] = Failures::read(&row)?;
        }
        if let Some(until) = before
            .iter()
            .map(|b| b.locked_until_ms)
            .filter(|&until| until > now)
            .max()
        {
            return Ok(Counted::AlreadyLocked(until));
        }
        let mut counts = Vec::with_capacity(keys.len());
        for (&(key, limit), before) in keys.iter().zip(before) {
            let after = after_failure(Some(before), limit, now);
            write_failures(&mut tx, key, &after).await?;
            counts.push(Count {
                key: key.to_owned(),
                before,
                after,
            });
        }
        // Last, and skipping rows another attempt holds: pruning never waits, so it cannot
        // close a cycle with an attempt waiting for this one's key.
        let window = keys.iter().map(|(_, l)| l.window_ms).max().unwrap_or(0);
        sqlx::query(&format!(
            "DELETE FROM login_failures WHERE key IN (
                 SELECT key FROM login_failures
                 WHERE last_failure_ms < $1 AND locked_until_ms < $1{})",
            self.skip_locked_clause()
        ))
        .bind(now - window)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Counted::Counted(counts))
    }

    /// Takes back `count` (its password was right, so it was no failure): the key is as it
    /// was before, if nothing was counted against it since; otherwise it has one failure
    /// fewer, unless a lock started since (that lock stays).
    pub async fn uncount_login_attempt(&self, count: &Count) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT failures, locks, locked_until_ms, last_failure_ms FROM login_failures
             WHERE key = $1{}",
            self.lock_clause()
        ))
        .bind(&count.key)
        .fetch_optional(&mut *tx)
        .await?;
        let current = row.as_ref().map(Failures::read).transpose()?;
        let undone = match current {
            Some(current) if current == count.after => Some(count.before),
            Some(current) if current.failures > 0 && current.locks == count.after.locks => {
                Some(Failures {
                    failures: current.failures - 1,
                    ..current
                })
            }
            _ => None,
        };
        if let Some(undone) = undone {
            write_failures(&mut tx, &count.key, &undone).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the failures of `key` (after a successful sign-in).
    pub async fn clear_login_failures(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Spends a sign-in form's token, known by its `nonce` and valid until `expires_at_ms`
    /// (the caller checked its signature and expiry): whether it was not spent before. Only
    /// spent tokens are kept, until they expire (deleted on the way, never waiting for a
    /// token being spent), so showing a form writes nothing.
    pub async fn spend_login_form(
        &self,
        nonce: &str,
        expires_at_ms: i64,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let spent = sqlx::query(
            "INSERT INTO spent_login_forms (nonce, expires_at_ms) VALUES ($1, $2)
             ON CONFLICT (nonce) DO NOTHING",
        )
        .bind(nonce)
        .bind(expires_at_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(&format!(
            "DELETE FROM spent_login_forms WHERE nonce IN (
                 SELECT nonce FROM spent_login_forms WHERE expires_at_ms <= $1{})",
            self.skip_locked_clause()
        ))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(spent == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: LoginLimit = LoginLimit {
        failures: 3,
        window_ms: 60_000,
        lock_ms: 1_000,
        lock_max_ms: 5_000,
    };

    /// (failures, locks, locked until) after failures at each time, from nothing.
    fn replay(times: &[i64]) -> Vec<(i64, i64, i64)> {
        let mut row = None;
        times
            .iter()
            .map(|&now| {
                let next = after_failure(row, &LIMIT, now);
                row = Some(next);
                (next.failures, next.locks, next.locked_until_ms)
            })
            .collect()
    }

    #[test]
    fn failures_lock_then_each_further_failure_locks_twice_as_long_up_to_the_cap() {
        assert_eq!(
            replay(&[0, 10, 20, 1_100, 3_200, 7_300, 12_400, 17_500]),
            [
                (1, 0, 0),
                (2, 0, 0),
                // The third failure: locked for the first lock.
                (0, 1, 1_020),
                // After it: 2 s, 4 s, then the 5 s cap.
                (0, 2, 3_100),
                (0, 3, 7_200),
                (0, 4, 12_300),
                (0, 5, 17_400),
                (0, 6, 22_500),
            ]
        );
    }

    #[test]
    fn a_key_quiet_for_the_window_is_forgotten() {
        for (times, expected) in [
            // Two failures, then a quiet minute: counting starts again.
            (&[0, 10, 60_010][..], (1, 0, 0)),
            // A lock, then a quiet minute after it ended: the next failure is a first one.
            (&[0, 1, 2, 61_002], (1, 0, 0)),
            // A lock whose end is less than the window ago is remembered.
            (&[0, 1, 2, 60_500], (0, 2, 62_500)),
        ] {
            assert_eq!(replay(times).last(), Some(&expected), "{times:?}");
        }
    }

    #[test]
    fn huge_lock_counts_do_not_overflow() {
        let row = Failures {
            failures: 0,
            locks: 1_000,
            locked_until_ms: 0,
            last_failure_ms: 0,
        };
        let next = after_failure(Some(row), &LIMIT, 10);
        assert_eq!(next.locked_until_ms, 5_010);
    }
}
