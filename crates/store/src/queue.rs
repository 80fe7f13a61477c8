//! The outbound queue, kept in the emails table: submissions are written durably before
//! they are acknowledged; workers claim due emails with a lease, and a crashed worker's
//! claims come back when the lease runs out. Nothing is ever deleted on failure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use mailtrail_domain::event::DROPPED;
use mailtrail_domain::{EmailAddress, Event, EventKind, Permission, Reason};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::leads::Fields;
use crate::{Backend, Effects, QueueChange, Record, Result, Store, StoreError, now_ms};

/// The message an email (or a whole batch) sends, before merge fields.
///
/// Either a template (`subject`, `text`, `html`, attachments) that Mailtrail builds the MIME
/// message from, or — for mail submitted over SMTP — the sender's own message in `raw`, which
/// is delivered with its structure intact (`subject` then is its decoded Subject, for
/// reports). Either way `from` is the bare address; its display name is `from_name`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Content {
    pub from: String,
    pub from_name: Option<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// Cc mailboxes as given (`Name <addr>` or `addr`).
    pub cc: Vec<String>,
    /// The sender's Reply-To: replies are forwarded there. The outgoing Reply-To header is
    /// always Mailtrail's tokenised reply address, so replies are still seen.
    pub reply_to: Option<String>,
    /// Custom headers, in order, already checked to be neither managed by Mailtrail nor
    /// able to end their line.
    pub headers: Vec<(String, String)>,
    pub tags: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    /// Shared by every email of the content: loaded once per claim, not once per email.
    pub attachments: Arc<[Attachment]>,
    /// The submitted MIME message (SMTP submission), headers and body, as received.
    pub raw: Option<Arc<[u8]>>,
}

/// A file attached to a content; with `content_id` it is an inline image that the HTML
/// body refers to as `cid:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub content_id: Option<String>,
    pub data: Vec<u8>,
}

/// One email to queue.
#[derive(Debug, Clone)]
pub struct QueueEntry {
    pub to: EmailAddress,
    pub lead_id: Option<String>,
    /// The recipient's merge fields (besides the lead's own).
    pub fields: Fields,
    /// Decided at submission: the email is recorded as failed `Dropped` and never tried.
    pub dropped: Option<Reason>,
    /// The To header when it is not `to` itself: a Cc recipient's copy shows the primary
    /// recipient, as every copy of one message does.
    pub header_to: Option<String>,
}

/// A submission of one content to many recipients.
#[derive(Debug, Clone)]
pub struct Submission {
    pub content: Content,
    pub batch: Option<String>,
    /// When the first attempt is due (now when `None`).
    pub send_at_ms: Option<i64>,
    pub entries: Vec<QueueEntry>,
}

/// What [`Store::cancel_queued`] cancels.
#[derive(Debug, Clone, Copy)]
pub enum Cancel<'a> {
    Email(&'a str),
    Batch(&'a str),
}

/// The answer stored for a request with an `Idempotency-Key`, replayed to its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotent {
    pub key: String,
    /// A hash of the request, so the same key with a different body is detected.
    pub request_hash: String,
}

/// What a lead contributes to sending: its id, permission and merge fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadBrief {
    pub id: String,
    /// The address as stored (domain normalised).
    pub address: String,
    pub address_key: String,
    pub permission: Permission,
    pub fields: Fields,
}

/// An email claimed for delivery, with everything needed to build and send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub account_id: String,
    pub lead_id: Option<String>,
    pub to: String,
    pub to_domain: String,
    /// The To header when it is not `to` (a Cc recipient's copy).
    pub header_to: Option<String>,
    pub fields: Fields,
    pub content_id: String,
    /// How many attachments the content has; they are in `content.attachments`.
    pub attachment_count: usize,
    pub content: Content,
    /// The batch it was sent in, if any: it names the campaign in the Feedback-ID header.
    pub batch: Option<String>,
    pub attempts: u32,
    pub soft_5xx_attempts: u32,
    pub first_soft_5xx_at_ms: Option<i64>,
    pub created_at_ms: i64,
    /// The send time the sender asked for, if any: the queue-to-delivery latency counts from
    /// it when it is later than `created_at_ms`.
    pub send_at_ms: Option<i64>,
}

/// Rows per multi-row INSERT: well under both backends' parameter limits.
pub(crate) const CHUNK: usize = 1000;
/// Keys per `IN (…)` lookup.
const LOOKUP_CHUNK: usize = 500;

fn fields_from(text: &str) -> Result<Fields> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn lead_brief(row: &AnyRow) -> Result<LeadBrief> {
    let permission: String = row.try_get("permission")?;
    let mut fields = fields_from(&row.try_get::<String, _>("fields")?)?;
    for (name, column) in [
        ("first_name", "first_name"),
        ("last_name", "last_name"),
        ("email", "address"),
    ] {
        if let Some(value) = row.try_get::<Option<String>, _>(column)? {
            fields.entry(name.to_owned()).or_insert(value);
        }
    }
    Ok(LeadBrief {
        id: row.try_get("id")?,
        address: row.try_get("address")?,
        address_key: row.try_get("address_key")?,
        permission: permission.parse().map_err(StoreError::Corrupt)?,
        fields,
    })
}

impl Store {
    /// The leads of an account with these normalised addresses, by address.
    pub async fn leads_by_address_keys(
        &self,
        account_id: &str,
        keys: &[String],
    ) -> Result<HashMap<String, LeadBrief>> {
        self.lead_lookup(account_id, "address_key", keys)
            .await
            .map(|leads| {
                leads
                    .into_iter()
                    .map(|l| (l.address_key.clone(), l))
                    .collect()
            })
    }

    /// The leads of an account with these ids, by id; others' ids are simply absent.
    pub async fn leads_by_ids(
        &self,
        account_id: &str,
        ids: &[String],
    ) -> Result<HashMap<String, LeadBrief>> {
        self.lead_lookup(account_id, "id", ids)
            .await
            .map(|leads| leads.into_iter().map(|l| (l.id.clone(), l)).collect())
    }

    async fn lead_lookup(
        &self,
        account_id: &str,
        column: &str,
        values: &[String],
    ) -> Result<Vec<LeadBrief>> {
        let mut found = Vec::new();
        for chunk in values.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT id, address, address_key, first_name, last_name, fields, permission
                 FROM leads WHERE account_id = {} AND {column} IN ({})",
                self.placeholders(1, 1),
                self.placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(account_id);
            for value in chunk {
                query = query.bind(value);
            }
            for row in query.fetch_all(&self.reader).await? {
                found.push(lead_brief(&row)?);
            }
        }
        Ok(found)
    }

    /// Which of these normalised addresses the account has suppressed.
    pub async fn suppressed_among(
        &self,
        account_id: &str,
        keys: &[String],
    ) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            // Each address as it is kept, and as it is kept once its lead was erased.
            let erased: HashMap<String, &String> = chunk
                .iter()
                .map(|key| (crate::suppressions::erased_key(key), key))
                .collect();
            let sql = format!(
                "SELECT address_key FROM suppressions WHERE account_id = {} AND address_key IN ({})",
                self.placeholders(1, 1),
                self.placeholders(2, chunk.len() * 2)
            );
            let mut query = sqlx::query(&sql).bind(account_id);
            for key in chunk.iter().chain(erased.keys()) {
                query = query.bind(key);
            }
            for row in query.fetch_all(&self.reader).await? {
                let key: String = row.try_get("address_key")?;
                found.insert(erased.get(&key).map_or(key.clone(), |k| (*k).clone()));
            }
        }
        Ok(found)
    }

    /// The answer stored for an idempotency key, with the hash of the request that made it.
    pub async fn idempotent_response(
        &self,
        account_id: &str,
        key: &str,
    ) -> Result<Option<(String, String)>> {
        let row = sqlx::query(
            "SELECT request_hash, response FROM idempotency_keys WHERE account_id = $1 AND key = $2",
        )
        .bind(account_id)
        .bind(key)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| Ok((r.try_get("request_hash")?, r.try_get("response")?)))
            .transpose()
    }

    /// Claims up to `limit` due emails for `lease_ms`: nobody else claims them until the
    /// lease runs out or their outcome is recorded. On PostgreSQL several nodes claim at once
    /// without waiting on each other (`FOR UPDATE SKIP LOCKED`).
    pub async fn claim_due(&self, limit: i64, lease_ms: i64) -> Result<Vec<Claimed>> {
        let now = now_ms();
        let skip_locked = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.writer.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(&format!(
            "UPDATE emails SET lease_until_ms = $1
             WHERE id IN (SELECT id FROM emails
                          WHERE next_attempt_at_ms <= $2
                            AND (lease_until_ms IS NULL OR lease_until_ms < $2)
                            AND account_id NOT IN (SELECT account_id FROM account_settings
                                                   WHERE paused_at_ms IS NOT NULL)
                          ORDER BY next_attempt_at_ms LIMIT $3{skip_locked})
             RETURNING id"
        ))
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut claimed = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT e.id, e.account_id, e.lead_id, e.to_address, e.to_domain, e.header_to,
                        e.fields, e.batch,
                        e.attempts, e.soft_5xx_attempts, e.first_soft_5xx_at_ms, e.created_at_ms,
                        e.send_at_ms, e.content_id, c.from_address, c.from_name, c.subject, c.text_body,
                        c.html_body, c.cc, c.reply_to, c.headers, c.tags, c.metadata,
                        c.raw_message, c.attachment_count
                 FROM emails e JOIN contents c ON c.id = e.content_id
                 WHERE e.id IN ({})",
                self.placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id);
            }
            for row in query.fetch_all(&mut *tx).await? {
                claimed.push(claimed_from_row(&row)?);
            }
        }
        attach_all(&mut tx, &mut claimed).await?;
        tx.commit().await?;
        claimed.sort_by(|a, b| a.to_domain.cmp(&b.to_domain));
        Ok(claimed)
    }

    /// Cancels queued emails that are not being attempted at this moment: each fails
    /// `Dropped` with reason `cancelled`, in one transaction. Returns the ids cancelled; an
    /// email already sent, failed, or claimed by a worker right now is left alone.
    pub async fn cancel_queued(&self, account_id: &str, which: Cancel<'_>) -> Result<Vec<String>> {
        let now = now_ms();
        let (column, value) = match which {
            Cancel::Email(id) => ("id", id),
            Cancel::Batch(batch) => ("batch", batch),
        };
        let mut tx = self.writer.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM emails
             WHERE account_id = $1 AND {column} = $2 AND next_attempt_at_ms IS NOT NULL
               AND (lease_until_ms IS NULL OR lease_until_ms < $3)
             ORDER BY id{}",
            self.lock_clause()
        ))
        .bind(account_id)
        .bind(value)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let cancelled = Event::new(EventKind::Failed, now)
            .with_status(DROPPED)
            .with_reason(Reason::Cancelled);
        let effects = Effects {
            queue: QueueChange::Leave,
            ..Effects::default()
        };
        let records: Vec<Record> = ids
            .iter()
            .map(|id| Record {
                account_id: account_id.to_owned(),
                email_id: id.clone(),
                event: cancelled.clone(),
                effects,
            })
            .collect();
        let mut state = crate::emails::InTransaction::default();
        self.record_in(&mut tx, &mut state, &records).await?;
        state.counts.apply(&mut tx).await?;
        tx.commit().await?;
        for _ in &ids {
            self.counters.count(&cancelled, false);
        }
        Ok(ids)
    }

    /// Gives emails back to the queue untried, due at `at_ms` (their destination asked to
    /// slow down, or has no free session slot).
    pub async fn postpone(&self, email_ids: &[&str], at_ms: i64) -> Result<()> {
        for chunk in email_ids.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "UPDATE emails SET next_attempt_at_ms = {}, lease_until_ms = NULL
                 WHERE next_attempt_at_ms IS NOT NULL AND id IN ({})",
                self.placeholders(1, 1),
                self.placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(&sql).bind(at_ms);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&self.writer).await?;
        }
        Ok(())
    }

    /// Releases every lease: the queue's claims and the destinations' session slots. Only for
    /// the embedded database at start-up, where this process is the only worker, so claims
    /// left by a crash need not wait for their lease to run out.
    pub async fn release_all_leases(&self) -> Result<u64> {
        if self.backend != Backend::Sqlite {
            return Ok(0);
        }
        let mut tx = self.writer.begin().await?;
        let released =
            sqlx::query("UPDATE emails SET lease_until_ms = NULL WHERE lease_until_ms IS NOT NULL")
                .execute(&mut *tx)
                .await?
                .rows_affected();
        sqlx::query("DELETE FROM destination_slots")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(released)
    }

    /// How many emails wait in the queue (due or not).
    pub async fn queue_depth(&self) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM emails WHERE next_attempt_at_ms IS NOT NULL")
                .fetch_one(&self.reader)
                .await?;
        Ok(n as u64)
    }
}

fn claimed_from_row(row: &AnyRow) -> Result<Claimed> {
    let fields: BTreeMap<String, String> = fields_from(&row.try_get::<String, _>("fields")?)?;
    Ok(Claimed {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        lead_id: row.try_get("lead_id")?,
        to: row.try_get("to_address")?,
        to_domain: row.try_get("to_domain")?,
        header_to: row.try_get("header_to")?,
        fields,
        content_id: row.try_get("content_id")?,
        attachment_count: row.try_get::<i64, _>("attachment_count")? as usize,
        content: Content {
            from: row.try_get("from_address")?,
            from_name: row.try_get("from_name")?,
            subject: row.try_get("subject")?,
            text: row.try_get("text_body")?,
            html: row.try_get("html_body")?,
            cc: json_or_default(row.try_get("cc")?)?,
            reply_to: row.try_get("reply_to")?,
            headers: json_or_default(row.try_get("headers")?)?,
            tags: json_or_default(row.try_get("tags")?)?,
            metadata: json_or_default(row.try_get("metadata")?)?,
            attachments: Arc::new([]),
            raw: row
                .try_get::<Option<Vec<u8>>, _>("raw_message")?
                .map(Arc::from),
        },
        batch: row.try_get("batch")?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        soft_5xx_attempts: row.try_get::<i64, _>("soft_5xx_attempts")? as u32,
        first_soft_5xx_at_ms: row.try_get("first_soft_5xx_at_ms")?,
        created_at_ms: row.try_get("created_at_ms")?,
        send_at_ms: row.try_get("send_at_ms")?,
    })
}

/// A JSON column that is NULL when empty.
pub(crate) fn json_or_default<T: serde::de::DeserializeOwned + Default>(
    text: Option<String>,
) -> Result<T> {
    match text {
        None => Ok(T::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string())),
    }
}

/// JSON for a column that is NULL when empty.
fn json_unless_empty<T: serde::Serialize>(value: &T, empty: bool) -> Option<String> {
    (!empty).then(|| serde_json::to_string(value).expect("plain values serialise"))
}

/// Writes a content with its attachments and tags.
pub(crate) async fn insert_content(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    account_id: &str,
    content_id: &str,
    c: &Content,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO contents (id, account_id, from_address, from_name, subject, text_body,
                               html_body, cc, reply_to, headers, tags, metadata, raw_message,
                               attachment_count, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(content_id)
    .bind(account_id)
    .bind(&c.from)
    .bind(c.from_name.as_deref())
    .bind(&c.subject)
    .bind(c.text.as_deref())
    .bind(c.html.as_deref())
    .bind(json_unless_empty(&c.cc, c.cc.is_empty()))
    .bind(c.reply_to.as_deref())
    .bind(json_unless_empty(&c.headers, c.headers.is_empty()))
    .bind(json_unless_empty(&c.tags, c.tags.is_empty()))
    .bind(json_unless_empty(&c.metadata, c.metadata.is_empty()))
    .bind(c.raw.as_deref().map(<[u8]>::to_vec))
    .bind(c.attachments.len() as i64)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    for (position, a) in c.attachments.iter().enumerate() {
        sqlx::query(
            "INSERT INTO content_attachments
                 (content_id, position, filename, content_type, content_id_header, data)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(content_id)
        .bind(position as i64)
        .bind(&a.filename)
        .bind(&a.content_type)
        .bind(a.content_id.as_deref())
        .bind(a.data.clone())
        .execute(&mut **tx)
        .await?;
    }
    let mut tags: Vec<&String> = c.tags.iter().collect();
    tags.sort();
    tags.dedup();
    for tag in tags {
        sqlx::query("INSERT INTO content_tags (content_id, account_id, tag) VALUES ($1, $2, $3)")
            .bind(content_id)
            .bind(account_id)
            .bind(tag)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Loads the attachments of the claimed emails' contents, once per content, shared by all
/// its emails.
async fn attach_all(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    claimed: &mut [Claimed],
) -> Result<()> {
    let mut loaded: HashMap<String, Arc<[Attachment]>> = HashMap::new();
    for email in claimed.iter_mut().filter(|e| e.attachment_count > 0) {
        if let Some(attachments) = loaded.get(&email.content_id) {
            email.content.attachments = attachments.clone();
            continue;
        }
        let rows = sqlx::query(
            "SELECT filename, content_type, content_id_header, data FROM content_attachments
             WHERE content_id = $1 ORDER BY position",
        )
        .bind(&email.content_id)
        .fetch_all(&mut **tx)
        .await?;
        let attachments: Arc<[Attachment]> = rows
            .iter()
            .map(|row| {
                Ok(Attachment {
                    filename: row.try_get("filename")?,
                    content_type: row.try_get("content_type")?,
                    content_id: row.try_get("content_id_header")?,
                    data: row.try_get("data")?,
                })
            })
            .collect::<Result<Vec<_>>>()?
            .into();
        loaded.insert(email.content_id.clone(), attachments.clone());
        email.content.attachments = attachments;
    }
    Ok(())
}
