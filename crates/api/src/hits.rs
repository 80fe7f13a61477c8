//! How an open or a click reaches the database: the email's [`HitContext`] comes from a small
//! in-memory cache, and the event goes to the group-commit [`Recorder`] — clicks on emails
//! with several links by way of [`every_link`], which holds them for a moment to see
//! whether a scanner is following every link.
//!
//! The cache is what lets the pixel answer without a database round trip. What it keeps can
//! go stale in three ways, each bounded:
//! - the account's machine-hit threshold (`PATCH /v1/settings`, on any node) reaches cached
//!   emails within [`TTL`];
//! - an email's first delivery time only ever goes from unknown to known, so a context
//!   without one is never cached: until delivery is recorded every hit reads it afresh, and
//!   a scanner's hit just after delivery is still seen as too soon;
//! - an email deleted (retention) within [`TTL`] of a cached hit still answers its pixel;
//!   the recorder skips emails that no longer exist, so nothing is written.
//!
//! A token that verifies but whose email is not in the database is never cached: it reads
//! the database every time and stays a 404.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mailtrail_domain::token::TokenKey;
use mailtrail_store::{HitContext, Record, Recorder, Store, StoreError};

use crate::every_link;

/// How long a cached context is trusted.
pub const TTL: Duration = Duration::from_secs(5);

/// Most emails whose contexts are kept (a few hundred bytes each): the emails being opened
/// right now, which for a campaign are a small part of all those sent.
const CAPACITY: usize = 50_000;

/// The front door of tracking hits, shared by every request of one router.
pub struct Hits {
    /// Where contexts missing from the cache are read, and clicked links.
    pub(crate) store: Store,
    /// Verifies tracking tokens (the application state's key: the handlers need nothing else
    /// of it, and not cloning it saves the pixel an allocation per request).
    pub(crate) tokens: TokenKey,
    /// Writes opens and clicks in batches.
    recorder: Recorder,
    contexts: Contexts,
    /// Holds clicks on emails with several links until it is clear who made them.
    clicks: every_link::Window,
}

impl Hits {
    pub fn new(store: Store, tokens: TokenKey, recorder: Recorder) -> Self {
        Self {
            store,
            tokens,
            clicks: every_link::Window::new(recorder.clone()),
            recorder,
            contexts: Contexts::new(TTL, CAPACITY),
        }
    }

    /// What a hit on this email needs to know; `None` when there is no such email.
    pub async fn context(&self, email_id: &str) -> Result<Option<HitContext>, StoreError> {
        if let Some(context) = self.contexts.get(email_id) {
            return Ok(Some(context));
        }
        let context = self.store.hit_context(email_id).await?;
        if let Some(context) = &context {
            self.contexts.put(email_id, context);
        }
        Ok(context)
    }

    /// Queues an open for writing.
    pub async fn open(&self, record: Record) {
        self.recorder.record(record, false).await;
    }

    /// Queues a click on link `link` of an email with `links` links for writing.
    pub async fn click(&self, record: Record, link: u16, links: i64) {
        if every_link::applies(links) {
            self.clicks.hold(record, link, links).await;
        } else {
            self.recorder.record(record, false).await;
        }
    }
}

/// A bounded map of recent contexts. Two generations instead of an exact LRU: entries go in
/// the young one; when it is full it becomes the old one and the previous old one is dropped;
/// a hit on an old entry moves it back to the young one. The emails being opened stay, the
/// rest age out, and no operation costs more than a hash lookup (a rotation only swaps).
struct Contexts {
    ttl: Duration,
    /// Entries per generation.
    generation: usize,
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    young: HashMap<String, Cached>,
    old: HashMap<String, Cached>,
}

struct Cached {
    context: HitContext,
    read_at: Instant,
}

impl Contexts {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            generation: (capacity / 2).max(1),
            generations: Mutex::default(),
        }
    }

    fn get(&self, email_id: &str) -> Option<HitContext> {
        let mut generations = self.lock();
        if !generations.young.contains_key(email_id) {
            let cached = generations.old.remove(email_id)?;
            self.insert(&mut generations, email_id.to_owned(), cached);
        }
        let cached = &generations.young[email_id];
        (cached.read_at.elapsed() < self.ttl).then(|| cached.context.clone())
    }

    fn put(&self, email_id: &str, context: &HitContext) {
        if context.delivered_at_ms.is_none() {
            return;
        }
        let cached = Cached {
            context: context.clone(),
            read_at: Instant::now(),
        };
        let mut generations = self.lock();
        self.insert(&mut generations, email_id.to_owned(), cached);
    }

    fn insert(&self, generations: &mut Generations, email_id: String, cached: Cached) {
        if generations.young.len() >= self.generation && !generations.young.contains_key(&email_id)
        {
            generations.old = std::mem::take(&mut generations.young);
        }
        generations.young.insert(email_id, cached);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic elsewhere cannot leave a half-written map: every change is one insert or
        // one swap.
        self.generations.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(delivered_at_ms: Option<i64>) -> HitContext {
        HitContext {
            account_id: "acme".into(),
            delivered_at_ms,
            machine_threshold_secs: 2,
            links: 0,
        }
    }

    #[test]
    fn a_delivered_emails_context_is_kept_until_its_ttl() {
        let contexts = Contexts::new(Duration::from_millis(50), 10);
        contexts.put("a", &context(Some(1)));
        assert_eq!(contexts.get("a"), Some(context(Some(1))));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(contexts.get("a"), None, "read again after the TTL");
    }

    #[test]
    fn an_undelivered_emails_context_is_read_every_time() {
        let contexts = Contexts::new(TTL, 10);
        contexts.put("a", &context(None));
        assert_eq!(contexts.get("a"), None);
    }

    #[test]
    fn the_cache_keeps_what_is_hit_and_drops_the_rest() {
        let contexts = Contexts::new(TTL, 4);
        for id in ["a", "b"] {
            contexts.put(id, &context(Some(1)));
        }
        // Full: "a" and "b" become the old generation; "a" is hit and moves back.
        contexts.put("c", &context(Some(1)));
        assert!(contexts.get("a").is_some());
        // Full again: "c" and "a" become old, "b" is dropped.
        contexts.put("d", &context(Some(1)));
        assert!(contexts.get("b").is_none());
        assert!(contexts.get("a").is_some());
        let generations = contexts.lock();
        assert!(generations.young.len() + generations.old.len() <= 4);
    }
}
