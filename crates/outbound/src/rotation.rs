//! DKIM key rotation: a new key at a new selector is published beside the current one, and
//! mail is signed with it only once a check has found it in DNS — never with a key receivers
//! cannot look up. The keys it replaces stay listed as records to keep published for
//! [`KEEP_RETIRED_MS`] after the switch, so mail signed just before it (still queued, or
//! verified late by a receiver) keeps verifying; after that they are simply no longer listed.

use mailtrail_store::{NextKey, SendingDomain, Store};
use serde::{Deserialize, Serialize};

use crate::dkim::{KeyAlgorithm, PublishedKey};
use crate::domains::RegisterError;

/// How long a replaced key stays listed as a record to keep published after signing switched
/// away from it: 7 days, longer than a message waits in a queue (Mailtrail's or a receiver's)
/// and than any sane TTL of the old record.
pub const KEEP_RETIRED_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// A key signing switched away from, as `retired_keys` stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredKey {
    pub selector: String,
    /// The `k=` tag: `rsa` or `ed25519`.
    pub kind: String,
    pub public_key_b64: String,
    /// Until when to keep its record published (ms since the epoch).
    pub until_ms: i64,
}

/// The key records of the domain's next key, beside the current ones; none without a rotation
/// under way.
pub fn next_keys(domain: &SendingDomain) -> Vec<PublishedKey> {
    let Some(next) = &domain.next_key else {
        return Vec::new();
    };
    crate::dkim::published_keys(&SendingDomain {
        selector: next.selector.clone(),
        private_key_pem: next.private_key_pem.clone(),
        public_key_b64: next.public_key_b64.clone(),
        next_key: None,
        ..domain.clone()
    })
}

/// The replaced keys still to keep published at `now_ms`.
pub fn retired_keys(domain: &SendingDomain, now_ms: i64) -> Vec<RetiredKey> {
    domain
        .retired_keys
        .as_deref()
        .and_then(|json| serde_json::from_str::<Vec<RetiredKey>>(json).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|key| key.until_ms > now_ms)
        .collect()
}

/// What a check that found the next key published (or not) changes: `None` keeps signing
/// with the current key; otherwise the selector of the next key to promote, and the retired
/// keys to store — the current ones, kept until `now_ms` + [`KEEP_RETIRED_MS`], after those
/// of earlier rotations that are still to be kept.
pub fn promotion(
    domain: &SendingDomain,
    next_published: bool,
    now_ms: i64,
) -> Option<(String, Vec<RetiredKey>)> {
    let next = domain.next_key.as_ref().filter(|_| next_published)?;
    let mut retired = retired_keys(domain, now_ms);
    retired.extend(
        crate::dkim::published_keys(domain)
            .into_iter()
            .map(|key| RetiredKey {
                selector: key.selector,
                kind: key.kind.to_owned(),
                public_key_b64: key.public_key_b64,
                until_ms: now_ms + KEEP_RETIRED_MS,
            }),
    );
    Some((next.selector.clone(), retired))
}

/// Makes a new key of the domain's algorithm at a new selector and stores it as the domain's
/// next key (replacing one no check has found yet): what `POST /v1/domains/{domain}/rotate`
/// does.
pub async fn rotate(
    store: &Store,
    account_id: &str,
    domain: &SendingDomain,
) -> Result<SendingDomain, RegisterError> {
    let algorithm = KeyAlgorithm::parse(&domain.algorithm).unwrap_or_default();
    let pair = crate::dkim::generate_in_background(algorithm)
        .await
        .map_err(RegisterError::Key)?;
    store
        .set_next_key(
            account_id,
            &domain.domain,
            &NextKey {
                selector: crate::domains::new_selector(),
                private_key_pem: pair.private_key_pem,
                public_key_b64: pair.public_key_b64,
            },
        )
        .await
        .map_err(RegisterError::Store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(next: bool, retired: &[(&str, i64)]) -> SendingDomain {
        let retired: Vec<RetiredKey> = retired
            .iter()
            .map(|&(selector, until_ms)| RetiredKey {
                selector: selector.into(),
                kind: "rsa".into(),
                public_key_b64: "OLD".into(),
                until_ms,
            })
            .collect();
        SendingDomain {
            id: "d".into(),
            account_id: "a".into(),
            domain: "shop.test".into(),
            selector: "mt1".into(),
            algorithm: "rsa".into(),
            private_key_pem: String::new(),
            public_key_b64: "CURRENT".into(),
            return_path: "bounces.shop.test".into(),
            created_at_ms: 0,
            verified_at_ms: Some(1),
            last_check_at_ms: None,
            last_check: None,
            next_key: next.then(|| NextKey {
                selector: "mt2".into(),
                private_key_pem: String::new(),
                public_key_b64: "NEXT".into(),
            }),
            retired_keys: Some(serde_json::to_string(&retired).unwrap()),
        }
    }

    /// Signing switches only when a next key exists and the check found it; the current key
    /// is then retired for seven days, and earlier retired keys stay while their date lasts.
    #[test]
    fn a_check_promotes_the_next_key_only_once_it_is_published() {
        let now = 1_000;
        let until = now + KEEP_RETIRED_MS;
        /// Retired keys: (selector, kept until).
        type Kept<'a> = &'a [(&'a str, i64)];
        /// Has a next key, the check found it, retired before; promoted to and retired after.
        type Case<'a> = (bool, bool, Kept<'a>, Option<(&'a str, Kept<'a>)>);
        let cases: [Case; 5] = [
            (false, false, &[], None),
            (false, true, &[], None),
            (true, false, &[], None),
            (true, true, &[], Some(("mt2", &[("mt1", until)]))),
            (
                true,
                true,
                &[("mt0", now - 1), ("mtA", now + 5)],
                Some(("mt2", &[("mtA", now + 5), ("mt1", until)])),
            ),
        ];
        for (next, published, retired, expected) in cases {
            let got = promotion(&domain(next, retired), published, now).map(|(selector, keys)| {
                (
                    selector,
                    keys.into_iter()
                        .map(|key| (key.selector, key.until_ms))
                        .collect::<Vec<_>>(),
                )
            });
            let expected = expected.map(|(selector, keys)| {
                (
                    selector.to_owned(),
                    keys.iter()
                        .map(|&(s, until)| (s.to_owned(), until))
                        .collect::<Vec<_>>(),
                )
            });
            assert_eq!(got, expected, "next {next}, published {published}");
        }
    }

    /// A retired key is listed up to its date and not after.
    #[test]
    fn retired_keys_are_listed_until_their_date() {
        let domain = domain(false, &[("mt0", 100)]);
        for (now, listed) in [(0, true), (99, true), (100, false), (1_000, false)] {
            assert_eq!(!retired_keys(&domain, now).is_empty(), listed, "at {now}");
        }
    }

    #[test]
    fn the_next_key_is_published_at_its_own_selector() {
        let keys = next_keys(&domain(true, &[]));
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].selector, "mt2");
        assert_eq!(keys[0].public_key_b64, "NEXT");
        assert!(next_keys(&domain(false, &[])).is_empty());
    }
}
