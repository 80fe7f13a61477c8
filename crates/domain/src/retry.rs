//! When a soft-bounced email is tried again, and when Mailtrail gives up (docs/emails.md).
//! Pure arithmetic over (policy, attempt, age), so the schedule is tested with tables.

use std::time::Duration;

/// The backoff schedule. The default is close to Postfix's: 5 minutes, doubling, at most an
/// hour apart, give up after 5 days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub first_delay: Duration,
    /// Ceiling for the doubling delay.
    pub max_delay: Duration,
    /// Age after which a soft-bouncing email fails as `expired`.
    pub give_up_after: Duration,
    /// A 5xx whose text says the problem is temporary is tried at most this many times...
    pub soft_5xx_attempts: u32,
    /// ...within this window from the first such reply (RFC 5321 §4.2.1: do not repeat a
    /// 5xx blindly).
    pub soft_5xx_window: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(5 * 60),
            max_delay: Duration::from_secs(60 * 60),
            give_up_after: Duration::from_secs(5 * 24 * 60 * 60),
            soft_5xx_attempts: 3,
            soft_5xx_window: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// The one doubling schedule of every retry (emails here; webhooks and reply forwards with
/// their own first delay and cap): `first` after the first failure (`attempts` = 1), doubled
/// after each further one, never more than `max`.
pub fn backoff(first: Duration, max: Duration, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    first.saturating_mul(1u32 << doublings).min(max)
}

/// What to do after a temporary failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again after this delay.
    After(Duration),
    /// Stop: the email fails as `expired`.
    GiveUp,
}

impl RetryPolicy {
    /// The decision after `attempts` failed attempts (1 after the first), `age` after the email
    /// was queued. A server's "retry in N seconds" hint replaces the schedule's delay. The last
    /// try is made at the give-up deadline rather than skipped.
    pub fn after_soft_failure(
        &self,
        attempts: u32,
        age: Duration,
        hint: Option<Duration>,
    ) -> Retry {
        if age >= self.give_up_after {
            return Retry::GiveUp;
        }
        let scheduled = backoff(self.first_delay, self.max_delay, attempts);
        let delay = hint.unwrap_or(scheduled).max(Duration::from_secs(1));
        Retry::After(delay.min(self.give_up_after - age))
    }

    /// The decision after a 5xx that reads as temporary: `soft_5xx_attempts` tries spread over
    /// `soft_5xx_window` from the first, then give up.
    pub fn after_soft_5xx(&self, attempts_5xx: u32, since_first_5xx: Duration) -> Retry {
        if attempts_5xx >= self.soft_5xx_attempts || since_first_5xx >= self.soft_5xx_window {
            return Retry::GiveUp;
        }
        let spacing = self.soft_5xx_window / self.soft_5xx_attempts;
        Retry::After(spacing.min(self.soft_5xx_window - since_first_5xx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn default_schedule_doubles_to_an_hour_and_gives_up_after_five_days() {
        let policy = RetryPolicy::default();
        let cases = [
            (1, Duration::ZERO, Retry::After(5 * MIN)),
            (2, 5 * MIN, Retry::After(10 * MIN)),
            (3, 15 * MIN, Retry::After(20 * MIN)),
            (4, 35 * MIN, Retry::After(40 * MIN)),
            (5, 75 * MIN, Retry::After(60 * MIN)),
            (40, 48 * 60 * MIN, Retry::After(60 * MIN)),
            (100, 5 * 24 * 60 * MIN - 10 * MIN, Retry::After(10 * MIN)),
            (101, 5 * 24 * 60 * MIN, Retry::GiveUp),
        ];
        for (attempts, age, expected) in cases {
            assert_eq!(
                policy.after_soft_failure(attempts, age, None),
                expected,
                "attempt {attempts} at {age:?}"
            );
        }
    }

    #[test]
    fn the_backoff_doubles_to_its_cap_and_never_overflows() {
        let delays: Vec<u64> = [0, 1, 2, 3, 7, 8, 40, u32::MAX]
            .iter()
            .map(|&n| backoff(MIN / 2, 60 * MIN, n).as_secs())
            .collect();
        assert_eq!(delays, [30, 30, 60, 120, 1920, 3600, 3600, 3600]);
    }

    #[test]
    fn a_retry_hint_replaces_the_schedule() {
        let policy = RetryPolicy::default();
        let hint = Some(Duration::from_secs(30));
        assert_eq!(
            policy.after_soft_failure(1, Duration::ZERO, hint),
            Retry::After(Duration::from_secs(30))
        );
        assert_eq!(
            policy.after_soft_failure(1, Duration::ZERO, Some(Duration::ZERO)),
            Retry::After(Duration::from_secs(1))
        );
    }

    #[test]
    fn a_temporary_5xx_is_tried_three_times_in_a_day() {
        let policy = RetryPolicy::default();
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert_eq!(policy.after_soft_5xx(1, hours(0)), Retry::After(hours(8)));
        assert_eq!(policy.after_soft_5xx(2, hours(8)), Retry::After(hours(8)));
        assert_eq!(policy.after_soft_5xx(3, hours(16)), Retry::GiveUp);
        assert_eq!(policy.after_soft_5xx(2, hours(20)), Retry::After(hours(4)));
        assert_eq!(policy.after_soft_5xx(1, hours(24)), Retry::GiveUp);
    }
}
