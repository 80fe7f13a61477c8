//! The delivery worker: claims due emails in batches, groups them by destination, runs SMTP
//! sessions within the global and per-destination limits, and records every outcome. On
//! shutdown it stops claiming, lets sessions in flight finish, and writes their outcomes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailtrail_domain::token::TokenKey;
use mailtrail_domain::{EventKind, RetryPolicy};
use mailtrail_store::{Claimed, Record, Recorder, Store, now_ms};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::OutboundConfig;
use crate::dkim::{KeyError, Signers};
use crate::limits::{Admission, Destinations};
use crate::outcome::{Outcome, decide, due_at_ms};
use crate::resolve::{DnsClientError, ResolveError, Resolver};
use crate::session::{self, Context, Ending, Report, Reported};
use crate::tracking::Tracking;

/// Most emails claimed in one round trip.
const MAX_CLAIM: usize = 1000;

/// Everything a session task shares.
struct Shared {
    store: Store,
    config: OutboundConfig,
    resolver: Resolver,
    tokens: TokenKey,
    signers: Signers,
    policy: RetryPolicy,
    recorder: Recorder,
    destinations: Destinations,
}

/// Why the delivery worker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Dns(#[from] DnsClientError),
    #[error(transparent)]
    DkimKey(#[from] KeyError),
    #[error("cannot read the token secret")]
    TokenSecret(#[source] mailtrail_store::StoreError),
}

pub struct Outbound {
    store: Store,
    config: OutboundConfig,
    resolver: Resolver,
    tokens: TokenKey,
    signers: Signers,
    wake: Arc<Notify>,
}

impl Outbound {
    pub async fn new(
        store: Store,
        config: OutboundConfig,
        dns_servers: &[SocketAddr],
    ) -> Result<Self, StartError> {
        let resolver = Resolver::new(&config, dns_servers)?;
        let signers = Signers::load(&config.dkim)?;
        let secret = store
            .shared_secret("token")
            .await
            .map_err(StartError::TokenSecret)?;
        Ok(Self {
            store,
            config,
            resolver,
            tokens: TokenKey::new(&secret),
            signers,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Notified when new emails are queued, so they go out without waiting for the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The key tokens are signed with, for the parts of Mailtrail that read them back.
    pub fn tokens(&self) -> TokenKey {
        self.tokens.clone()
    }

    /// Runs until `shutdown` resolves, then finishes the sessions in flight.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        match self.store.release_all_leases().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(emails = n, "released the claims of a previous run"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot release old claims; they return after their lease")
            }
        }
        let (recorder, writer) = Recorder::spawn(self.store.clone());
        let shared = Arc::new(Shared {
            policy: self.config.retry.policy(),
            destinations: Destinations::new(self.store.clone(), &self.config),
            store: self.store,
            resolver: self.resolver,
            tokens: self.tokens,
            signers: self.signers,
            recorder,
            config: self.config,
        });
        let sessions = Arc::new(Semaphore::new(shared.config.sessions.max(1)));
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            while tasks.try_join_next().is_some() {}
            let free = sessions.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = tasks.join_next() => continue,
                    () = &mut shutdown => break,
                }
            }
            let limit = (free * shared.config.messages_per_connection).clamp(1, MAX_CLAIM);
            let lease_ms = shared.config.lease.as_millis() as i64;
            let claimed = match shared.store.claim_due(limit as i64, lease_ms).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim emails; retrying");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    () = tokio::time::sleep(shared.config.poll_interval) => {},
                    () = self.wake.notified() => {},
                    () = &mut shutdown => break,
                }
                continue;
            }
            for group in by_destination(claimed) {
                for chunk in group.chunks(shared.config.messages_per_connection.max(1)) {
                    let permit = sessions
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("never closed");
                    let shared = shared.clone();
                    let chunk = chunk.to_vec();
                    tasks.spawn(async move {
                        shared.deliver(chunk).await;
                        // The session's slot is free only once its outcomes are committed:
                        // what a crash can send twice is then at most the sessions in flight,
                        // not also a backlog of outcomes waiting in the recorder.
                        shared.recorder.flush().await;
                        drop(permit);
                    });
                }
            }
        }
        tracing::info!(
            sessions = tasks.len(),
            "stopping delivery: finishing sessions in flight"
        );
        while tasks.join_next().await.is_some() {}
        drop(shared);
        let _ = writer.await;
    }
}

/// Splits claimed emails (sorted by domain) into one group per domain.
fn by_destination(claimed: Vec<Claimed>) -> Vec<Vec<Claimed>> {
    let mut groups: Vec<Vec<Claimed>> = Vec::new();
    for email in claimed {
        match groups.last_mut() {
            Some(group) if group[0].to_domain == email.to_domain => group.push(email),
            _ => groups.push(vec![email]),
        }
    }
    groups
}

/// Records each outcome through the shared recorder, and logs one line per attempt.
struct Recording<'a> {
    shared: &'a Shared,
    throttle: bool,
    /// The host the session is connected to (name, address), once it is.
    mx: Option<(String, SocketAddr)>,
    /// When the previous outcome was known (or the session began): an attempt's duration is
    /// the time since, so the first one includes the DNS lookup and connecting.
    since: std::time::Instant,
    /// When the session's TCP connection was made, for the session duration histogram.
    connected_at: Option<Instant>,
}

/// The most of a reply a log line carries, in characters.
const LOGGED_REPLY_CHARS: usize = 300;

/// `text` on one line, cut to `LOGGED_REPLY_CHARS` with an ellipsis.
fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(LOGGED_REPLY_CHARS)
        .collect();
    if text.chars().nth(LOGGED_REPLY_CHARS).is_some() {
        line.push('…');
    }
    line
}

/// How long `email` has waited since it was due: since it was queued, or since its send time
/// when the sender asked for a later one.
fn waited(email: &Claimed) -> Duration {
    Duration::from_millis(u64::try_from(now_ms() - due_at_ms(email)).unwrap_or(0))
}

impl Report for Recording<'_> {
    async fn outcome(&mut self, email: &Claimed, outcome: Outcome) -> Reported {
        let decision = decide(
            email,
            &outcome,
            &self.shared.policy,
            self.shared.resolver.is_relay(),
            now_ms(),
        );
        self.throttle |= decision.throttle;
        self.log(email, &outcome, &decision);
        if matches!(
            decision.event.kind,
            EventKind::Delivered | EventKind::Relayed
        ) {
            self.shared.store.counters().delivered_after(waited(email));
        }
        let wait = decision.effects.suppress;
        let record = Record {
            account_id: email.account_id.clone(),
            email_id: email.id.clone(),
            event: decision.event,
            effects: decision.effects,
        };
        self.shared.recorder.record(record, wait).await;
        Reported {
            blocked: wait,
            throttle: decision.throttle,
        }
    }

    fn connected(&mut self, target: &crate::resolve::Target) {
        self.mx = Some((target.host.clone(), target.addr));
        self.connected_at = Some(Instant::now());
    }
}

impl Recording<'_> {
    /// One info line per attempt, as Postfix writes one per delivery: never the recipient's
    /// address (only its domain), the message or a secret.
    fn log(&mut self, email: &Claimed, outcome: &Outcome, decision: &crate::outcome::Decision) {
        let duration_ms = self.since.elapsed().as_millis() as u64;
        self.since = std::time::Instant::now();
        let name = match outcome {
            Outcome::Dropped(_) => "dropped",
            _ => decision.event.kind.as_str(),
        };
        let until = match decision.effects.queue {
            mailtrail_store::QueueChange::RetryAt { at_ms, .. } => {
                chrono::DateTime::from_timestamp_millis(at_ms)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }
            _ => None,
        };
        tracing::info!(
            email_id = %email.id,
            account_id = %email.account_id,
            domain = %email.to_domain,
            mx = self.mx.as_ref().map(|(host, _)| host.as_str()),
            mx_addr = self.mx.as_ref().map(|(_, addr)| addr.to_string()),
            attempt = decision.event.detail.attempt,
            decision = name,
            until = until.as_deref(),
            reason = decision.event.detail.reason.map(|r| r.as_str()),
            reply = %one_line(decision.event.detail.status.as_deref().unwrap_or_default()),
            duration_ms,
            "delivery attempt"
        );
    }
}

impl Shared {
    async fn deliver(&self, emails: Vec<Claimed>) {
        let domain = emails[0].to_domain.clone();
        let session = match self.destinations.admit(&domain).await {
            Ok(Admission::Open(session)) => session,
            Ok(Admission::Paused { until_ms }) => return self.postpone(&emails, until_ms).await,
            Ok(Admission::Busy) => {
                let later = now_ms() + self.config.poll_interval.as_millis() as i64;
                return self.postpone(&emails, later).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, %domain, "cannot take a session slot; retrying shortly");
                return self.postpone(&emails, now_ms() + 1000).await;
            }
        };
        self.deliver_in(&domain, emails).await;
        session.end().await;
    }

    /// Delivers to `domain` within a session slot already taken.
    async fn deliver_in(&self, domain: &str, emails: Vec<Claimed>) {
        let mut report = Recording {
            shared: self,
            throttle: false,
            mx: None,
            since: std::time::Instant::now(),
            connected_at: None,
        };
        let targets = match self.resolver.targets(domain).await {
            Ok(targets) => targets,
            Err(e) => {
                let outcome = match e {
                    ResolveError::Permanent { reason, detail } => Outcome::NoReply {
                        reason,
                        detail,
                        permanent: true,
                    },
                    ResolveError::Temporary { detail } => Outcome::NoReply {
                        reason: mailtrail_domain::Reason::NetworkError,
                        detail,
                        permanent: false,
                    },
                };
                for email in &emails {
                    report.outcome(email, outcome.clone()).await;
                }
                return;
            }
        };
        let tracking = match self.tracking_for(&emails).await {
            Ok(tracking) => tracking,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read account settings; retrying shortly");
                self.postpone(&emails, now_ms() + 1000).await;
                return;
            }
        };
        let context = Context {
            tracking: &tracking,
            pace: self.destinations.pace(domain),
            config: &self.config,
            tokens: &self.tokens,
            signers: &self.signers,
            store: &self.store,
        };
        let ending = session::deliver(&context, &targets, emails, &mut report).await;
        if let Some(connected_at) = report.connected_at {
            self.store.counters().session_lasted(connected_at.elapsed());
        }
        if let Ending::Stopped { untried, throttled } = ending {
            let until = if throttled || report.throttle {
                let until = now_ms() + self.config.throttle.as_millis() as i64;
                tracing::info!(%domain, "destination asked to slow down; pausing it on every node");
                if let Err(e) = self.destinations.pause(domain, until).await {
                    tracing::warn!(error = %e, %domain, "cannot record the pause; only these emails wait");
                }
                until
            } else {
                now_ms() + 1000
            };
            self.postpone(&untried, until).await;
        }
    }

    /// The tracking settings of each account among `emails`.
    async fn tracking_for(
        &self,
        emails: &[Claimed],
    ) -> Result<HashMap<String, Tracking>, mailtrail_store::StoreError> {
        let mut tracking = HashMap::new();
        for email in emails {
            if tracking.contains_key(&email.account_id) {
                continue;
            }
            let settings = self.store.settings(&email.account_id).await?;
            let base_url = settings
                .tracking_base_url
                .unwrap_or_else(|| self.config.tracking_base_url.clone())
                .trim_end_matches('/')
                .to_owned();
            tracking.insert(
                email.account_id.clone(),
                Tracking {
                    base_url,
                    opens: settings.open_tracking,
                    clicks: settings.click_tracking,
                },
            );
        }
        Ok(tracking)
    }

    async fn postpone(&self, emails: &[Claimed], until_ms: i64) {
        let ids: Vec<&str> = emails.iter().map(|email| email.id.as_str()).collect();
        if let Err(e) = self.store.postpone(&ids, until_ms).await {
            tracing::warn!(error = %e, emails = ids.len(), "cannot postpone; they return after their lease");
        }
    }
}
