//! The webhook dispatcher (PRODUCT.md §7): takes due deliveries from the store's durable
//! outbox, POSTs each event's JSON to its hook's URL with an HMAC-SHA256 signature, and
//! records the outcome — delivered on a 2xx, otherwise retried with exponential backoff until
//! the retry window (24 hours by default) is over, then failed.
//!
//! Delivery is at least once: a dispatcher that dies between the receiver's 2xx and recording
//! it sends the event again after its lease. Receivers de-duplicate on the event id (the
//! `Mailtrail-Event-Id` header and the payload's `id`), which is the same on every retry.
//! Events are not ordered across retries; each carries its own time (`at_ms`).
//!
//! Every POST is signed twice:
//! - per the Standard Webhooks convention ([`sign_standard`]), so receivers verify with an
//!   existing library (`standardwebhooks` for Python, JavaScript, Go, …): `webhook-id` (the
//!   event id), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature:
//!   v1,BASE64`, HMAC-SHA256 over `"{id}.{timestamp}.{body}"` keyed with the base64-decoded
//!   part of the `whsec_…` secret. Secrets made before are `whsec_` and 64 hex digits, which
//!   are valid base64 too, so those hooks verify the same way with the secret they were shown;
//! - as before, in `Mailtrail-Signature: t=UNIX_SECONDS,v1=HEX`, HMAC-SHA256 keyed with the
//!   secret as text over `"{t}.{body}"` ([`sign`], [`verify`]), kept for receivers written
//!   against it.
//!
//! The timestamps let receivers refuse replays of old deliveries.
//!
//! The body is the recorded event with what the store adds when it is claimed (the email's
//! subject, from, tags and metadata as stored then) and what is derived here: the email's
//! Message-ID ([`MessageIds`]) and, for a reply, its From and a one-line excerpt read from
//! the received message. [`send_test`] sends a hook a `test` event at once.
//!
//! [`target`] decides which URLs a hook may have and which addresses a delivery may connect
//! to. A delivery to a refused address is recorded as failed at once, with a last error that
//! starts `blocked:` and never says what the address answered: nothing was sent, and retrying
//! would only ask DNS again.

pub mod target;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use mailtrail_domain::causes::WithCauses;
use mailtrail_domain::token::{Purpose, TokenKey};
use mailtrail_store::{AccountId, Attempt, DueDelivery, Store};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::task::JoinSet;

use crate::target::{Refused, Targets};

pub const SIGNATURE_HEADER: &str = "Mailtrail-Signature";
pub const EVENT_ID_HEADER: &str = "Mailtrail-Event-Id";
/// The Standard Webhooks headers.
pub const STANDARD_ID_HEADER: &str = "webhook-id";
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// How long a receiver has to answer.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The first retry's delay; each next one doubles, up to `max_delay`.
    #[serde(with = "humantime_serde")]
    pub first_delay: Duration,
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// After this long since the event, a delivery that keeps failing is given up.
    #[serde(with = "humantime_serde")]
    pub retry_window: Duration,
    /// Deliveries in flight at once, per node.
    pub concurrency: usize,
    /// How often the outbox is checked when it was empty.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Lets hooks point at loopback, private (RFC 1918, ULA) and link-local addresses, for a
    /// receiver on the operator's own network; off, those are refused at creation and
    /// blocked at delivery. Metadata, unspecified, multicast and reserved addresses stay refused.
    pub allow_private_targets: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            retry_window: Duration::from_secs(24 * 3600),
            concurrency: 8,
            poll_interval: Duration::from_secs(1),
            allow_private_targets: false,
        }
    }
}

/// `t=…,v1=…` for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

/// Whether `header` is a valid signature of `body` made within `tolerance` of `now` (Unix
/// seconds): what a receiver checks.
pub fn verify(secret: &str, header: &str, body: &[u8], now: u64, tolerance: u64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return false;
    };
    if now.abs_diff(timestamp) > tolerance {
        return false;
    }
    signatures.iter().any(|signature| {
        let mut mac = <Hmac<Sha256>>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        // Constant-time comparison.
        mac.verify_slice(signature).is_ok()
    })
}

/// `v1,BASE64` for the Standard Webhooks `webhook-signature` header: HMAC-SHA256 over
/// `"{id}.{timestamp}.{body}"`, keyed with the base64 after `whsec_` (a secret that is not
/// base64 is used as its bytes, which no receiver library would accept, but every secret
/// Mailtrail makes is).
pub fn sign_standard(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> String {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = data_encoding::BASE64
        .decode(encoded.as_bytes())
        .unwrap_or_else(|_| encoded.as_bytes().to_vec());
    let mut mac = <Hmac<Sha256>>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        data_encoding::BASE64.encode(&mac.finalize().into_bytes())
    )
}

fn mac(secret: &str, timestamp: u64, body: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256>>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The delay before retry number `attempts` (1 for the first retry).
fn backoff(config: &WebhookConfig, attempts: u32) -> Duration {
    // The one doubling schedule emails and forwards use too.
    mailtrail_domain::retry::backoff(config.first_delay, config.max_delay, attempts)
}

pub struct Dispatcher {
    store: Store,
    config: WebhookConfig,
    client: reqwest::Client,
    targets: Targets,
    message_ids: Option<Arc<MessageIds>>,
}

/// What makes an email's Message-ID (the token key and the HELO name the outbound builder
/// uses), so each payload can carry it: it is not stored, it is derived.
pub struct MessageIds {
    pub tokens: TokenKey,
    pub helo_name: String,
}

impl MessageIds {
    fn of(&self, email_id: &str) -> Option<String> {
        let token = self.tokens.sign(Purpose::Message, email_id, None)?;
        Some(mailtrail_outbound::message::message_id(
            email_id,
            &token,
            &self.helo_name,
        ))
    }
}

/// The most of a reply's text a payload carries, in characters.
pub const REPLY_EXCERPT_CHARS: usize = 500;

/// A reply's `data.reply`: its From (address and display name) and the start of its text,
/// on one line (the text part, or the HTML part as text when there is none). Nulls when the
/// message is gone (its lead was erased) or has no such part.
fn reply_facts(raw: &[u8]) -> serde_json::Value {
    let message = mail_parser::MessageParser::default().parse(raw);
    let from = message
        .as_ref()
        .and_then(|m| m.from())
        .and_then(|from| from.first());
    let text = message.as_ref().and_then(|m| m.body_text(0)).map(|text| {
        let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        one_line
            .chars()
            .take(REPLY_EXCERPT_CHARS)
            .collect::<String>()
    });
    serde_json::json!({
        "from": from.and_then(|a| a.address()),
        "from_name": from.and_then(|a| a.name()),
        "text": text,
    })
}

/// The body POSTed for `delivery`: its payload with the email's Message-ID and, for a reply,
/// its From and excerpt. A payload that is not JSON (it always is) goes as it is.
fn body(delivery: &DueDelivery, message_ids: Option<&MessageIds>) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&delivery.payload) else {
        return delivery.payload.clone().into_bytes();
    };
    let message_id = value["email"]["id"]
        .as_str()
        .and_then(|id| message_ids?.of(id));
    if let (Some(message_id), Some(email)) = (message_id, value["email"].as_object_mut()) {
        email.insert("message_id".into(), message_id.into());
    }
    if let (Some(raw), Some(data)) = (&delivery.reply, value["data"].as_object_mut()) {
        data.insert("reply".into(), reply_facts(raw));
    }
    value.to_string().into_bytes()
}

/// Why the dispatcher cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    #[error("cannot build the webhook HTTP client")]
    Client(#[source] reqwest::Error),
}

/// The HTTP client deliveries are sent with.
fn client(timeout: Duration, targets: &Targets) -> Result<reqwest::Client, DispatcherError> {
    reqwest::Client::builder()
        .timeout(timeout)
        // A receiver's redirect is not followed: the hook's URL is the one that was checked.
        .redirect(reqwest::redirect::Policy::none())
        // Connections go where the checked addresses are, never through a proxy from the
        // environment, whose own address is all the resolver would see.
        .no_proxy()
        .dns_resolver(Arc::new(targets.clone()))
        .user_agent(concat!("Mailtrail-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(DispatcherError::Client)
}

impl Dispatcher {
    /// `targets` resolves each hook's host at connect time and keeps only allowed addresses.
    pub fn new(
        store: Store,
        config: WebhookConfig,
        targets: Targets,
    ) -> Result<Self, DispatcherError> {
        Ok(Self {
            client: client(config.timeout, &targets)?,
            store,
            config,
            targets,
            message_ids: None,
        })
    }

    /// Each payload's email then carries its `message_id`.
    pub fn with_message_ids(mut self, message_ids: MessageIds) -> Self {
        self.message_ids = Some(Arc::new(message_ids));
        self
    }

    /// Delivers until `shutdown` resolves; deliveries in flight then finish and are recorded.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let lease_ms = (self.config.timeout.as_millis() as i64) * 2 + 5_000;
        loop {
            let due = match self
                .store
                .claim_webhook_deliveries(self.config.concurrency as i64 * 4, lease_ms)
                .await
            {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the webhook outbox");
                    Vec::new()
                }
            };
            if due.is_empty() {
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(self.config.poll_interval) => continue,
                }
            }
            let mut in_flight = JoinSet::new();
            for delivery in due {
                while in_flight.len() >= self.config.concurrency.max(1) {
                    in_flight.join_next().await;
                }
                let (store, client, config, targets, message_ids) = (
                    self.store.clone(),
                    self.client.clone(),
                    self.config.clone(),
                    self.targets.clone(),
                    self.message_ids.clone(),
                );
                in_flight.spawn(async move {
                    let body = body(&delivery, message_ids.as_deref());
                    let started = std::time::Instant::now();
                    let attempt = match send(&client, &targets, &delivery, body).await {
                        Sent::Answered(attempt) => attempt,
                        Sent::Failed { status, error } => retry(&config, &delivery, status, error),
                    };
                    log(&delivery, &attempt, started.elapsed());
                    if let Err(e) = store.finish_webhook_delivery(&delivery.id, &attempt).await {
                        tracing::warn!(error = %e, delivery = %delivery.id,
                            "cannot record a webhook attempt; it is sent again after its lease");
                    }
                });
            }
            while in_flight.join_next().await.is_some() {}
        }
    }
}

/// Sends a hook a signed `test` event now (`POST /v1/webhooks/{id}/test`) and records the
/// outcome as its delivery, which is never retried: the caller is waiting for the answer.
pub async fn send_test(
    store: &Store,
    targets: &Targets,
    account_id: &AccountId,
    webhook_id: &str,
) -> Result<mailtrail_store::Delivery, mailtrail_store::StoreError> {
    let timeout = WebhookConfig::default().timeout;
    let lease_ms = timeout.as_millis() as i64 * 2 + 5_000;
    let delivery = store
        .claim_test_delivery(account_id, webhook_id, lease_ms)
        .await?;
    let attempt = match client(timeout, targets) {
        Ok(client) => {
            let body = delivery.payload.clone().into_bytes();
            match send(&client, targets, &delivery, body).await {
                Sent::Answered(attempt) => attempt,
                Sent::Failed { status, error } => Attempt::GaveUp { status, error },
            }
        }
        Err(error) => Attempt::GaveUp {
            status: None,
            error: WithCauses(&error).to_string(),
        },
    };
    store
        .finish_webhook_delivery(&delivery.id, &attempt)
        .await?;
    store.webhook_delivery(account_id, &delivery.id).await
}

/// How one POST went.
enum Sent {
    /// Delivered, or blocked (never to be retried).
    Answered(Attempt),
    /// Another status, or no answer.
    Failed { status: Option<u16>, error: String },
}

/// One signed POST of `body`.
async fn send(
    client: &reqwest::Client,
    targets: &Targets,
    delivery: &DueDelivery,
    body: Vec<u8>,
) -> Sent {
    // A literal address never reaches the resolver: it is checked here.
    let url = match targets.parse(&delivery.url) {
        Ok(url) => url,
        Err(refused) => return Sent::Answered(blocked(&refused)),
    };
    let now = unix_now();
    let signature = sign(&delivery.secret, now, &body);
    let standard = sign_standard(&delivery.secret, &delivery.event_id, now, &body);
    let sent = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_ID_HEADER, &delivery.event_id)
        .header(SIGNATURE_HEADER, signature)
        .header(STANDARD_ID_HEADER, &delivery.event_id)
        .header(STANDARD_TIMESTAMP_HEADER, now.to_string())
        .header(STANDARD_SIGNATURE_HEADER, standard)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => Sent::Answered(Attempt::Delivered {
            status: response.status().as_u16(),
        }),
        Ok(response) => Sent::Failed {
            status: Some(response.status().as_u16()),
            error: format!("the receiver answered {}", response.status()),
        },
        Err(e) => match refusal(&e) {
            Some(refused) if refused.is_blocked() => Sent::Answered(blocked(refused)),
            Some(unresolved) => Sent::Failed {
                status: None,
                error: format!("no answer: {unresolved}"),
            },
            None => Sent::Failed {
                status: None,
                error: format!("no answer: {e}"),
            },
        },
    }
}

/// A failed attempt: retried after the backoff, or given up once past the retry window.
fn retry(
    config: &WebhookConfig,
    delivery: &DueDelivery,
    status: Option<u16>,
    error: String,
) -> Attempt {
    let delay = backoff(config, delivery.attempts + 1);
    let at_ms = mailtrail_store::now_ms() + delay.as_millis() as i64;
    let window_ends = delivery.created_at_ms + config.retry_window.as_millis() as i64;
    if at_ms > window_ends {
        Attempt::GaveUp { status, error }
    } else {
        Attempt::Retry {
            at_ms,
            status,
            error,
        }
    }
}

/// One info line per webhook attempt: the delivery and event ids, the receiver's host (never
/// the URL's path or query, which can hold a token, nor the secret), the status or error,
/// the duration and, when it is retried, when.
fn log(delivery: &DueDelivery, attempt: &Attempt, took: Duration) {
    let host = url::Url::parse(&delivery.url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned));
    let (outcome, status, error, retry_at) = match attempt {
        Attempt::Delivered { status } => ("delivered", Some(*status), None, None),
        Attempt::Retry {
            at_ms,
            status,
            error,
        } => (
            "retry",
            *status,
            Some(error.as_str()),
            chrono::DateTime::from_timestamp_millis(*at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ),
        Attempt::GaveUp { status, error } => ("failed", *status, Some(error.as_str()), None),
    };
    tracing::info!(
        delivery_id = %delivery.id,
        event_id = %delivery.event_id,
        host = host.as_deref(),
        attempt = delivery.attempts + 1,
        outcome,
        status,
        error,
        retry_at = retry_at.as_deref(),
        duration_ms = took.as_millis() as u64,
        "webhook attempt"
    );
}

/// Given up at once: nothing was sent.
fn blocked(refused: &Refused) -> Attempt {
    Attempt::GaveUp {
        status: None,
        error: format!("blocked: {refused}"),
    }
}

/// The resolver's refusal, somewhere in the chain of a failed request's causes.
fn refusal(error: &reqwest::Error) -> Option<&Refused> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        cause = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_reject_tampering_and_replays() {
        let header = sign("whsec_k", 1_000, b"{\"id\":1}");
        assert!(verify("whsec_k", &header, b"{\"id\":1}", 1_010, 300));
        assert!(
            !verify("whsec_k", &header, b"{\"id\":2}", 1_010, 300),
            "body changed"
        );
        assert!(
            !verify("whsec_other", &header, b"{\"id\":1}", 1_010, 300),
            "wrong key"
        );
        assert!(
            !verify("whsec_k", &header, b"{\"id\":1}", 2_000, 300),
            "too old"
        );
        assert!(
            !verify("whsec_k", "v1=00", b"{\"id\":1}", 1_000, 300),
            "no timestamp"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = WebhookConfig::default();
        let delays: Vec<u64> = (1..=9).map(|n| backoff(&config, n).as_secs()).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(&config, 200).as_secs(), 3600);
    }
}
