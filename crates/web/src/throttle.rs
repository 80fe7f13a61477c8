//! Limits on guessing passwords at `/login`. Failed sign-ins are counted in the database (so
//! every node counts the same ones) under two keys: the login as typed — known or not, so a
//! lock says nothing about which accounts exist — and the client's address. After
//! `login_failures` failures of one login, or `login_address_failures` from one address, the
//! key is locked for `login_lock`; once a key has been locked, each further failure locks it
//! again for twice as long, up to `login_lock_max`; a key quiet for `login_window` is
//! forgotten. A locked key is answered 429 with `Retry-After`, without checking the password.

use std::net::IpAddr;
use std::time::Duration;

use mailtrail_store::login_throttle::LoginLimit;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `[web]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Failed sign-ins of one login before it is locked.
    pub login_failures: u32,
    /// Failed sign-ins from one client address, whatever the login, before it is locked:
    /// higher, since the people of an office may share one address.
    pub login_address_failures: u32,
    /// Failures of a key are forgotten after this long without a failure or a lock.
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    /// The first lock; each later one is twice as long.
    #[serde(with = "humantime_serde")]
    pub login_lock: Duration,
    /// The longest lock.
    #[serde(with = "humantime_serde")]
    pub login_lock_max: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            login_failures: 5,
            login_address_failures: 20,
            login_window: Duration::from_secs(15 * 60),
            login_lock: Duration::from_secs(30),
            login_lock_max: Duration::from_secs(15 * 60),
        }
    }
}

/// The limits of both keys, in the store's terms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub login: LoginLimit,
    pub address: LoginLimit,
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl From<&WebConfig> for Limits {
    fn from(config: &WebConfig) -> Self {
        let limit = |failures| LoginLimit {
            failures,
            window_ms: ms(config.login_window),
            lock_ms: ms(config.login_lock),
            lock_max_ms: ms(config.login_lock_max),
        };
        Limits {
            login: limit(config.login_failures),
            address: limit(config.login_address_failures),
        }
    }
}

/// The key a login's failures are counted under: the SHA-256 of the email as sign-in looks
/// it up (trimmed, lower-case), so the table holds no address in clear.
pub(crate) fn login_key(email: &str) -> String {
    let email = email.trim().to_lowercase();
    format!("login:{}", hex::encode(Sha256::digest(email.as_bytes())))
}

/// The key a client address's failures are counted under. An IPv6 client is counted by its
/// /64, which one machine usually has whole.
pub(crate) fn address_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => format!("address:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("address:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// `Retry-After` in whole seconds (rounded up, at least 1) for a lock ending at `until_ms`.
pub(crate) fn retry_after_secs(until_ms: i64, now_ms: i64) -> i64 {
    ((until_ms - now_ms + 999) / 1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_one_key_however_typed_and_not_in_clear() {
        let key = login_key("Ana@Shop.test ");
        assert_eq!(key, login_key("ana@shop.test"));
        assert!(!key.contains("ana"), "{key}");
        assert_ne!(key, login_key("bo@shop.test"));
    }

    #[test]
    fn addresses_are_counted_by_host_or_ipv6_network() {
        for (address, key) in [
            ("192.0.2.7", "address:192.0.2.7"),
            ("2001:db8:1:2:3:4:5:6", "address:2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff::1", "address:2001:db8:1:2::/64"),
            ("::1", "address:0:0:0:0::/64"),
        ] {
            assert_eq!(address_key(address.parse().unwrap()), key);
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        for (until, now, secs) in [(30_000, 0, 30), (30_001, 0, 31), (1, 0, 1), (0, 0, 1)] {
            assert_eq!(retry_after_secs(until, now), secs, "{until} {now}");
        }
    }

    #[test]
    fn limits_follow_the_configuration() {
        let limits = Limits::from(&WebConfig::default());
        assert_eq!(limits.login.failures, 5);
        assert_eq!(limits.address.failures, 20);
        assert_eq!(limits.login.lock_ms, 30_000);
        assert_eq!(limits.address.lock_max_ms, 900_000);
    }
}
