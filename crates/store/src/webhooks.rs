//! Webhooks: per account, URLs every event of its emails is POSTed to (docs/api.md), and the
//! durable outbox they are delivered from.
//!
//! An event's outbox rows are written in the event's own transaction ([`outbox`]), one per
//! hook, so an event is never recorded without its webhook deliveries nor the other way
//! round. A dispatcher claims due rows with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
//! so several nodes share the work), POSTs them, and records the outcome: delivered, retried
//! later, or failed once the retry window is over. Every row of one event carries the same
//! `event_id`, which receivers de-duplicate on.

use mailtrail_domain::{Event, EventKind, Reason};
use rand::RngCore;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::sealed::MasterKey;
use crate::{AccountId, Backend, Result, Store, StoreError, new_id, now_ms};

/// The type of the event `POST /v1/webhooks/{id}/test` sends: not an email's, so no hook
/// subscribes to it and every hook can be sent one.
pub const TEST_EVENT: &str = "test";

/// Every event type a hook can subscribe to: the event kinds' names.
pub fn event_types() -> impl Iterator<Item = &'static str> {
    EventKind::ALL.iter().map(|k| k.as_str())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub account_id: String,
    pub url: String,
    /// The HMAC-SHA256 key receivers verify signatures with.
    pub secret: String,
    /// The event types sent; `None` for all of them.
    pub events: Option<Vec<String>>,
    pub created_at_ms: i64,
}

/// A live hook as recording an event sees it: which events it wants, not its secret, which
/// stays sealed until a delivery is sent.
#[derive(Debug, Clone)]
pub(crate) struct LiveHook {
    id: String,
    events: Option<Vec<String>>,
}

impl LiveHook {
    fn wants(&self, event_type: &str) -> bool {
        self.events
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == event_type))
    }
}

/// The `events` column: `*` for all.
fn events_of(column: &str) -> Option<Vec<String>> {
    (column != "*").then(|| column.split(',').map(str::to_owned).collect())
}

/// One event's delivery to one hook, as its history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    /// `pending`, `delivered`, `failed` or `cancelled`.
    pub state: String,
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

/// A delivery claimed by a dispatcher, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub event_id: String,
    /// The recorded event with the email's facts as stored now (see [`add_email_facts`]).
    pub payload: String,
    /// For a reply, the received message as stored now: the dispatcher adds its From and an
    /// excerpt. Empty once the lead was erased.
    pub reply: Option<Vec<u8>>,
    /// Attempts made before this one.
    pub attempts: u32,
    pub created_at_ms: i64,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx.
    Delivered { status: u16 },
    /// Another status, or no answer: try again at `at_ms`.
    Retry {
        at_ms: i64,
        status: Option<u16>,
        error: String,
    },
    /// The retry window is over.
    GaveUp { status: Option<u16>, error: String },
}

/// What an email's event says to a receiver: `failure` sorts failed emails the way senders
/// act on them.
fn payload(event_id: &str, email: &EmailFacts<'_>, event: &Event) -> String {
    let failure = (event.kind == EventKind::Failed).then(|| {
        if event.is_drop() {
            "dropped"
        } else if event.detail.reason == Some(Reason::Expired) {
            "expired"
        } else if event.detail.reason.is_some_and(Reason::is_hard) {
            "hard"
        } else {
            "policy"
        }
    });
    let d = &event.detail;
    let mut body = json!({
        "id": event_id,
        "type": event.kind.as_str(),
        "at_ms": event.at_ms,
        "email": {
            "id": email.id,
            "account_id": email.account_id,
            "to": email.to,
            "lead_id": email.lead_id,
            "batch": email.batch,
        },
        "data": {
            "status": d.status,
            "reason": d.reason.map(Reason::as_str),
            "failure": failure,
            "attempt": d.attempt,
            "machine": d.machine.is_some(),
            "machine_reason": d.machine,
            "feedback_type": d.feedback_type,
            "ip": d.ip,
            "user_agent": d.user_agent,
            // A click's note is the URL it went to.
            "url": (event.kind == EventKind::Clicked).then_some(d.note.as_deref()).flatten(),
        },
    });
    // A reply's note is the id of the received message; its From and excerpt are read from
    // it when the event is sent ([`add_email_facts`]), so an erased reply is never sent.
    if event.kind == EventKind::Replied
        && let Some(received) = &d.note
    {
        body["data"][REPLY_MESSAGE] = json!(received);
    }
    body.to_string()
}

/// Where a recorded reply event keeps the id of the received message until it is sent.
const REPLY_MESSAGE: &str = "reply_message";

/// What a payload says about the email.
pub(crate) struct EmailFacts<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub to: &'a str,
    pub lead_id: Option<&'a str>,
    pub batch: Option<&'a str>,
}

/// Adds to a recorded payload what it says about the email's message, read as it is stored
/// now: `subject`, `from`, `from_name`, `tags` and `metadata`. Read at sending rather than
/// kept in the outbox, so the rows stay small and a lead's erasure (which blanks the content
/// of an email sent to it alone) takes effect on events still waiting. Returns the payload
/// and, for a reply, the received message as it is stored now (empty once erased).
async fn add_email_facts(
    tx: &mut Transaction<'static, Any>,
    payload: &str,
) -> Result<(String, Option<Vec<u8>>)> {
    // A payload that does not read as JSON (never written so) is sent as it is rather than
    // holding up the claims of every delivery behind it.
    let Ok(mut body) = serde_json::from_str::<serde_json::Value>(payload) else {
        return Ok((payload.to_owned(), None));
    };
    let Some(email_id) = body["email"]["id"].as_str().map(str::to_owned) else {
        // A test event: no email.
        return Ok((payload.to_owned(), None));
    };
    let row = sqlx::query(
        "SELECT c.subject, c.from_address, c.from_name, c.tags, c.metadata
         FROM emails e JOIN contents c ON c.id = e.content_id WHERE e.id = $1",
    )
    .bind(&email_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let (Some(row), Some(email)) = (row, body["email"].as_object_mut()) {
        let json = |column: &str| -> Result<serde_json::Value> {
            Ok(match row.try_get::<Option<String>, _>(column)? {
                // Columns the store wrote as JSON; anything else reads as none.
                Some(text) => serde_json::from_str(&text).unwrap_or_default(),
                None => serde_json::Value::Null,
            })
        };
        let tags = match json("tags")? {
            serde_json::Value::Null => json!([]),
            tags => tags,
        };
        let metadata = match json("metadata")? {
            serde_json::Value::Null => json!({}),
            metadata => metadata,
        };
        email.insert(
            "subject".into(),
            json!(row.try_get::<String, _>("subject")?),
        );
        email.insert(
            "from".into(),
            json!(row.try_get::<String, _>("from_address")?),
        );
        email.insert(
            "from_name".into(),
            json!(row.try_get::<Option<String>, _>("from_name")?),
        );
        email.insert("tags".into(), tags);
        email.insert("metadata".into(), metadata);
    }
    let mut reply = None;
    if let Some(data) = body["data"].as_object_mut()
        && let Some(received) = data.remove(REPLY_MESSAGE)
    {
        // By id alone: the message is marked as this email's only once its processing ends,
        // which may be after this event is claimed.
        let raw = sqlx::query("SELECT raw FROM inbound_messages WHERE id = $1")
            .bind(received.as_str().unwrap_or_default())
            .fetch_optional(&mut **tx)
            .await?;
        reply = Some(match raw {
            Some(row) => row.try_get::<Vec<u8>, _>("raw")?,
            None => Vec::new(),
        });
    }
    Ok((body.to_string(), reply))
}

/// The account's live hooks, read inside a write transaction.
pub(crate) async fn live_hooks(
    tx: &mut Transaction<'_, Any>,
    account_id: &str,
) -> Result<Vec<LiveHook>> {
    let rows = sqlx::query(
        "SELECT id, events FROM webhooks WHERE account_id = $1 AND deleted_at_ms IS NULL",
    )
    .bind(account_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(LiveHook {
                id: row.try_get("id")?,
                events: events_of(&row.try_get::<String, _>("events")?),
            })
        })
        .collect()
}

/// Writes the outbox rows of one event, one per hook that wants it.
pub(crate) async fn outbox(
    tx: &mut Transaction<'_, Any>,
    hooks: &[LiveHook],
    email: &EmailFacts<'_>,
    event: &Event,
) -> Result<()> {
    let event_type = event.kind.as_str();
    let wanting: Vec<&LiveHook> = hooks.iter().filter(|h| h.wants(event_type)).collect();
    if wanting.is_empty() {
        return Ok(());
    }
    let event_id = new_id();
    let body = payload(&event_id, email, event);
    let now = now_ms();
    for hook in wanting {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, account_id, event_id, event_type,
                                             payload, state, next_attempt_at_ms, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)",
        )
        .bind(new_id())
        .bind(&hook.id)
        .bind(email.account_id)
        .bind(&event_id)
        .bind(event_type)
        .bind(&body)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// What a hook's secret is sealed as: bound to its row.
fn secret_context(id: &str) -> String {
    crate::secrets::context("webhooks", "secret", id)
}

fn webhook_from_row(key: &MasterKey, row: &AnyRow) -> Result<Webhook> {
    let id: String = row.try_get("id")?;
    Ok(Webhook {
        secret: key.open_text(&secret_context(&id), &row.try_get::<String, _>("secret")?)?,
        id,
        account_id: row.try_get("account_id")?,
        url: row.try_get("url")?,
        events: events_of(&row.try_get::<String, _>("events")?),
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<Delivery> {
    Ok(Delivery {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        payload: row.try_get("payload")?,
        state: row.try_get("state")?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        last_status: row
            .try_get::<Option<i64>, _>("last_status")?
            .map(|s| s as u16),
        last_error: row.try_get("last_error")?,
        next_attempt_at_ms: row.try_get("next_attempt_at_ms")?,
        created_at_ms: row.try_get("created_at_ms")?,
        delivered_at_ms: row.try_get("delivered_at_ms")?,
    })
}

impl Store {
    /// Registers a hook; `events` limits it to those types (checked by the caller against
    /// [`event_types`]). The signing secret is made here and shown to the account's admins.
    pub async fn create_webhook(
        &self,
        account_id: &str,
        url: &str,
        events: Option<&[String]>,
    ) -> Result<Webhook> {
        if !self.account_exists(account_id).await? {
            return Err(StoreError::NotFound);
        }
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let hook = Webhook {
            id: new_id(),
            account_id: account_id.to_owned(),
            url: url.to_owned(),
            // The Standard Webhooks form: `whsec_` and the key in base64.
            secret: format!("whsec_{}", data_encoding::BASE64.encode(&key)),
            events: events.map(<[String]>::to_vec),
            created_at_ms: now_ms(),
        };
        let mut tx = self.writer.begin().await?;
        self.refuse_stale_key(&mut tx).await?;
        sqlx::query(
            "INSERT INTO webhooks (id, account_id, url, secret, events, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&hook.id)
        .bind(account_id)
        .bind(url)
        .bind(
            self.key()
                .seal(&secret_context(&hook.id), hook.secret.as_bytes()),
        )
        .bind(events.map_or_else(|| "*".to_owned(), |e| e.join(",")))
        .bind(hook.created_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(hook)
    }

    /// The account's hooks, oldest first.
    pub async fn webhooks(&self, account_id: &str) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(
            "SELECT id, account_id, url, secret, events, created_at_ms FROM webhooks
             WHERE account_id = $1 AND deleted_at_ms IS NULL ORDER BY created_at_ms, id",
        )
        .bind(account_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| webhook_from_row(self.key(), row))
            .collect()
    }

    /// Stops a hook: it gets no new events and its pending deliveries are cancelled; its
    /// history stays readable.
    pub async fn delete_webhook(&self, account_id: &AccountId, id: &str) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let now = now_ms();
        let deleted = sqlx::query(
            "UPDATE webhooks SET deleted_at_ms = $1
             WHERE account_id = $2 AND id = $3 AND deleted_at_ms IS NULL",
        )
        .bind(now)
        .bind(account_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "UPDATE webhook_deliveries SET state = 'cancelled', next_attempt_at_ms = NULL
             WHERE webhook_id = $1 AND state = 'pending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A hook's deliveries, newest first. Another account's hook is `NotFound`.
    pub async fn webhook_deliveries(
        &self,
        account_id: &AccountId,
        webhook_id: &str,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        let exists = sqlx::query("SELECT 1 FROM webhooks WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(webhook_id)
            .fetch_optional(&self.reader)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = $1
             ORDER BY created_at_ms DESC, id DESC LIMIT $2",
        )
        .bind(webhook_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Deliveries waiting to be sent, across accounts: the webhook backlog.
    pub async fn webhook_backlog(&self) -> Result<u64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE state = 'pending'")
                .fetch_one(&self.reader)
                .await?;
        Ok(row.try_get::<i64, _>("n")? as u64)
    }

    /// Claims up to `limit` due deliveries for `lease_ms`, oldest first.
    pub async fn claim_webhook_deliveries(
        &self,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<DueDelivery>> {
        let now = now_ms();
        let skip_locked = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT id FROM webhook_deliveries
             WHERE state = 'pending' AND next_attempt_at_ms <= $1
               AND (lease_until_ms IS NULL OR lease_until_ms < $1)
             ORDER BY next_attempt_at_ms LIMIT $2{skip_locked}"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            sqlx::query("UPDATE webhook_deliveries SET lease_until_ms = $1 WHERE id = $2")
                .bind(now + lease_ms)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(
                "SELECT d.id, d.webhook_id, w.url, w.secret, d.event_id, d.payload, d.attempts,
                        d.created_at_ms
                 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.id = $1",
            )
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
            let (payload, reply) =
                add_email_facts(&mut tx, &row.try_get::<String, _>("payload")?).await?;
            claimed.push(DueDelivery {
                id: row.try_get("id")?,
                url: row.try_get("url")?,
                secret: self.key().open_text(
                    &secret_context(&row.try_get::<String, _>("webhook_id")?),
                    &row.try_get::<String, _>("secret")?,
                )?,
                event_id: row.try_get("event_id")?,
                payload,
                reply,
                attempts: row.try_get::<i64, _>("attempts")? as u32,
                created_at_ms: row.try_get("created_at_ms")?,
            });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// A `test` event for one of the account's live hooks, recorded as its delivery and
    /// claimed at once for the caller to send (`POST /v1/webhooks/{id}/test`). Another
    /// account's or a deleted hook is `NotFound`. Should the caller die before recording the
    /// outcome, the dispatcher sends it after the lease like any other delivery.
    pub async fn claim_test_delivery(
        &self,
        account_id: &AccountId,
        webhook_id: &str,
        lease_ms: i64,
    ) -> Result<DueDelivery> {
        let row = sqlx::query(
            "SELECT url, secret FROM webhooks
             WHERE account_id = $1 AND id = $2 AND deleted_at_ms IS NULL",
        )
        .bind(account_id)
        .bind(webhook_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        let now = now_ms();
        let event_id = new_id();
        let payload = json!({
            "id": event_id,
            "type": TEST_EVENT,
            "at_ms": now,
            "email": null,
            "data": {},
        })
        .to_string();
        let delivery = DueDelivery {
            id: new_id(),
            url: row.try_get("url")?,
            secret: self.key().open_text(
                &secret_context(webhook_id),
                &row.try_get::<String, _>("secret")?,
            )?,
            event_id,
            payload,
            reply: None,
            attempts: 0,
            created_at_ms: now,
        };
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, account_id, event_id, event_type,
                                             payload, state, next_attempt_at_ms, lease_until_ms,
                                             created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $7)",
        )
        .bind(&delivery.id)
        .bind(webhook_id)
        .bind(account_id)
        .bind(&delivery.event_id)
        .bind(TEST_EVENT)
        .bind(&delivery.payload)
        .bind(now)
        .bind(now + lease_ms)
        .execute(&self.writer)
        .await?;
        Ok(delivery)
    }

    /// One delivery of the account's; `NotFound` otherwise.
    pub async fn webhook_delivery(&self, account_id: &AccountId, id: &str) -> Result<Delivery> {
        let row = sqlx::query("SELECT * FROM webhook_deliveries WHERE account_id = $1 AND id = $2")
            .bind(account_id)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .ok_or(StoreError::NotFound)?;
        delivery_from_row(&row)
    }

    /// Records how an attempt ended and releases the claim.
    pub async fn finish_webhook_delivery(&self, id: &str, attempt: &Attempt) -> Result<()> {
        let now = now_ms();
        let (state, next, status, error, delivered) = match attempt {
            Attempt::Delivered { status } => ("delivered", None, Some(*status), None, Some(now)),
            Attempt::Retry {
                at_ms,
                status,
                error,
            } => ("pending", Some(*at_ms), *status, Some(error.as_str()), None),
            Attempt::GaveUp { status, error } => {
                ("failed", None, *status, Some(error.as_str()), None)
            }
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, next_attempt_at_ms = $2, last_status = $3,
                    last_error = $4, delivered_at_ms = $5, attempts = attempts + 1,
                    lease_until_ms = NULL
             WHERE id = $6 AND state = 'pending'",
        )
        .bind(state)
        .bind(next)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(delivered)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_sorted_the_way_senders_act_on_them() {
        let email = EmailFacts {
            id: "e1",
            account_id: "a1",
            to: "ana@x.test",
            lead_id: None,
            batch: Some("spring"),
        };
        let failure = |event: Event| -> serde_json::Value {
            let text = payload("ev1", &email, &event);
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["data"]["failure"].clone()
        };
        let failed = || Event::new(EventKind::Failed, 1);
        assert_eq!(failure(failed().with_reason(Reason::UserUnknown)), "hard");
        assert_eq!(failure(failed().with_reason(Reason::Expired)), "expired");
        assert_eq!(
            failure(failed().with_reason(Reason::SpamDetected)),
            "policy"
        );
        assert_eq!(
            failure(
                failed()
                    .with_status("Dropped")
                    .with_reason(Reason::Suppressed)
            ),
            "dropped"
        );
        assert_eq!(
            failure(Event::new(EventKind::Delivered, 1)),
            serde_json::Value::Null
        );
        let open = payload(
            "ev2",
            &email,
            &Event::new(EventKind::Opened, 5).by_machine("apple-mpp"),
        );
        let open: serde_json::Value = serde_json::from_str(&open).unwrap();
        assert_eq!(
            (
                &open["type"],
                &open["data"]["machine"],
                &open["email"]["batch"]
            ),
            (&json!("opened"), &json!(true), &json!("spring"))
        );
    }
}
