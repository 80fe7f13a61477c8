//! Sending domains: per account, the domains its mail comes From, each with its own DKIM key
//! pair, and the outcome of the last DNS check of the records the account publishes for it.
//! Mail from a verified domain is signed with its key and carries the domain's own return path
//! as its envelope sender; whether mail from other domains is refused is the submitter's
//! policy, not the store's.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sealed::MasterKey;
use crate::{Result, Store, StoreError, new_id, now_ms};

/// A registered sending domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendingDomain {
    pub id: String,
    pub account_id: String,
    /// Lower-case ASCII, IDNs as punycode: compared with a From address's domain as is.
    pub domain: String,
    /// The key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// `rsa`, `rsa+ed25519` (the PEM holds both keys), or `ed25519` for a domain registered
    /// before RSA was the default.
    pub algorithm: String,
    /// PKCS#8 PEM; never shown by the API.
    pub private_key_pem: String,
    /// The `p=` value of the DKIM record.
    pub public_key_b64: String,
    /// The envelope sender's domain (`bounces+TOKEN@RETURN_PATH`): the domain itself or a
    /// name under it, so SPF on it aligns with the From domain.
    pub return_path: String,
    pub created_at_ms: i64,
    /// When a check last found its records in place; `None` until then, and after a check
    /// that did not.
    pub verified_at_ms: Option<i64>,
    pub last_check_at_ms: Option<i64>,
    /// The last check's per-record results, as the checker wrote them (JSON).
    pub last_check: Option<String>,
    /// The key a rotation made, published beside the current one: mail is signed with it
    /// only once a check has found it in DNS ([`Store::promote_next_key`]).
    pub next_key: Option<NextKey>,
    /// The DKIM records of the keys rotations replaced, to keep published for a while, as
    /// the outbound crate wrote them (JSON).
    pub retired_keys: Option<String>,
}

/// A domain's next DKIM key: the same algorithm as its current one, at its own selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextKey {
    pub selector: String,
    /// PKCS#8 PEM, sealed like the current key; never shown by the API.
    pub private_key_pem: String,
    pub public_key_b64: String,
}

/// What registering a domain stores.
#[derive(Debug, Clone)]
pub struct NewDomain<'a> {
    pub domain: &'a str,
    pub selector: &'a str,
    pub algorithm: &'a str,
    pub private_key_pem: &'a str,
    pub public_key_b64: &'a str,
}

/// The return path a domain gets unless it is registered with another: `bounces.DOMAIN`.
pub fn default_return_path(domain: &str) -> String {
    format!("bounces.{domain}")
}

/// The signing key of a verified domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainKey {
    pub selector: String,
    pub algorithm: String,
    pub private_key_pem: String,
}

/// Where a domain stands for an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainStatus {
    /// The account has not registered it.
    Unregistered,
    /// Registered, but its records have not checked out (yet, or any more).
    Unverified,
    Verified,
}

const COLUMNS: &str = "id, account_id, domain, selector, algorithm, private_key, public_key_b64,
                       return_path, created_at_ms, verified_at_ms, last_check_at_ms, last_check,
                       next_selector, next_private_key, next_public_key_b64, retired_keys";

impl Store {
    /// Registers a domain with the default return path; one the account already has is a
    /// `Conflict`.
    pub async fn create_domain(
        &self,
        account_id: &str,
        new: &NewDomain<'_>,
    ) -> Result<SendingDomain> {
        self.create_domain_with_return_path(account_id, new, &default_return_path(new.domain))
            .await
    }

    /// Registers a domain whose mail is sent from `return_path` (already checked to be the
    /// domain or a name under it).
    pub async fn create_domain_with_return_path(
        &self,
        account_id: &str,
        new: &NewDomain<'_>,
        return_path: &str,
    ) -> Result<SendingDomain> {
        let domain = SendingDomain {
            id: new_id(),
            account_id: account_id.to_owned(),
            domain: new.domain.to_owned(),
            selector: new.selector.to_owned(),
            algorithm: new.algorithm.to_owned(),
            private_key_pem: new.private_key_pem.to_owned(),
            public_key_b64: new.public_key_b64.to_owned(),
            return_path: return_path.to_owned(),
            created_at_ms: now_ms(),
            verified_at_ms: None,
            last_check_at_ms: None,
            last_check: None,
            next_key: None,
            retired_keys: None,
        };
        let mut tx = self.writer.begin().await?;
        self.refuse_stale_key(&mut tx).await?;
        let inserted = sqlx::query(
            "INSERT INTO sending_domains (id, account_id, domain, selector, algorithm, private_key,
                                          public_key_b64, return_path, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&domain.id)
        .bind(account_id)
        .bind(&domain.domain)
        .bind(&domain.selector)
        .bind(&domain.algorithm)
        .bind(
            self.key()
                .seal(&key_context(&domain.id), domain.private_key_pem.as_bytes()),
        )
        .bind(&domain.public_key_b64)
        .bind(&domain.return_path)
        .bind(domain.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from);
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(domain)
            }
            Err(e) if e.is_unique_violation() => Err(StoreError::Conflict(format!(
                "{} is already a sending domain of this account",
                new.domain
            ))),
            Err(e) => Err(e),
        }
    }

    /// The account's domains in name order.
    pub async fn domains(&self, account_id: &str) -> Result<Vec<SendingDomain>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sending_domains WHERE account_id = $1 ORDER BY domain"
        ))
        .bind(account_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| domain_from_row(self.key(), row))
            .collect()
    }

    /// One of the account's domains; another account's is `NotFound` like a missing one.
    pub async fn domain(&self, account_id: &str, domain: &str) -> Result<SendingDomain> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM sending_domains WHERE account_id = $1 AND domain = $2"
        ))
        .bind(account_id)
        .bind(domain)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        domain_from_row(self.key(), &row)
    }

    /// Forgets a domain and its key: mail from it is no longer signed with that key.
    pub async fn delete_domain(&self, account_id: &str, domain: &str) -> Result<()> {
        let deleted =
            sqlx::query("DELETE FROM sending_domains WHERE account_id = $1 AND domain = $2")
                .bind(account_id)
                .bind(domain)
                .execute(&self.writer)
                .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records a DNS check: a passing one keeps the first time the domain was verified, a
    /// failing one unverifies it. A passing check has found the return path's records too,
    /// so from then on the domain's mail is sent from its return path.
    pub async fn record_domain_check(
        &self,
        account_id: &str,
        domain: &str,
        verified: bool,
        check_json: &str,
    ) -> Result<SendingDomain> {
        let updated = sqlx::query(
            "UPDATE sending_domains
             SET verified_at_ms = CASE WHEN $3 = 1 THEN COALESCE(verified_at_ms, $4) ELSE NULL END,
                 return_path_verified_at_ms =
                     CASE WHEN $3 = 1 THEN COALESCE(return_path_verified_at_ms, $4) ELSE NULL END,
                 last_check_at_ms = $4,
                 last_check = $5
             WHERE account_id = $1 AND domain = $2",
        )
        .bind(account_id)
        .bind(domain)
        .bind(i64::from(verified))
        .bind(now_ms())
        .bind(check_json)
        .execute(&self.writer)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.domain(account_id, domain).await
    }

    /// Stores `next` as the domain's next key, replacing one an earlier rotation made that no
    /// check has found published yet.
    pub async fn set_next_key(
        &self,
        account_id: &str,
        domain: &str,
        next: &NextKey,
    ) -> Result<SendingDomain> {
        let id = self.domain(account_id, domain).await?.id;
        let mut tx = self.writer.begin().await?;
        self.refuse_stale_key(&mut tx).await?;
        sqlx::query(
            "UPDATE sending_domains
             SET next_selector = $1, next_private_key = $2, next_public_key_b64 = $3
             WHERE id = $4",
        )
        .bind(&next.selector)
        .bind(
            self.key()
                .seal(&next_key_context(&id), next.private_key_pem.as_bytes()),
        )
        .bind(&next.public_key_b64)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.domain(account_id, domain).await
    }

    /// Makes the next key at `selector` the one mail is signed with, and stores
    /// `retired_keys` (the records to keep published, the replaced key's among them). Does
    /// nothing when the domain's next key is no longer at `selector` (another rotation or
    /// check came first).
    pub async fn promote_next_key(
        &self,
        account_id: &str,
        domain: &str,
        selector: &str,
        retired_keys: &str,
    ) -> Result<SendingDomain> {
        let current = self.domain(account_id, domain).await?;
        let Some(next) = current.next_key.filter(|next| next.selector == selector) else {
            return self.domain(account_id, domain).await;
        };
        let mut tx = self.writer.begin().await?;
        self.refuse_stale_key(&mut tx).await?;
        sqlx::query(
            "UPDATE sending_domains
             SET selector = next_selector, private_key = $1, public_key_b64 = next_public_key_b64,
                 next_selector = NULL, next_private_key = NULL, next_public_key_b64 = NULL,
                 retired_keys = $2
             WHERE id = $3 AND next_selector = $4",
        )
        .bind(
            self.key()
                .seal(&key_context(&current.id), next.private_key_pem.as_bytes()),
        )
        .bind(retired_keys)
        .bind(&current.id)
        .bind(selector)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.domain(account_id, domain).await
    }

    /// The key mail From `domain` is signed with, if it is a verified domain of the account.
    pub async fn verified_domain_key(
        &self,
        account_id: &str,
        domain: &str,
    ) -> Result<Option<DomainKey>> {
        let row = sqlx::query(
            "SELECT id, selector, algorithm, private_key FROM sending_domains
             WHERE account_id = $1 AND domain = $2 AND verified_at_ms IS NOT NULL",
        )
        .bind(account_id)
        .bind(domain)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(DomainKey {
                selector: row.try_get("selector")?,
                algorithm: row.try_get("algorithm")?,
                private_key_pem: self.key().open_text(
                    &key_context(&row.try_get::<String, _>("id")?),
                    &row.try_get::<String, _>("private_key")?,
                )?,
            })
        })
        .transpose()
    }

    /// The return path of mail From `domain`, if it is a verified domain of the account whose
    /// return path records were found; `None` sends from the installation's bounce domain.
    pub async fn verified_return_path(
        &self,
        account_id: &str,
        domain: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT return_path FROM sending_domains
             WHERE account_id = $1 AND domain = $2 AND verified_at_ms IS NOT NULL
               AND return_path_verified_at_ms IS NOT NULL",
        )
        .bind(account_id)
        .bind(domain)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|row| row.try_get("return_path")).transpose()?)
    }

    /// Whether some account registered `name` as a return path, verified or not: bounces of
    /// mail sent while a domain was verified still arrive after a failed check.
    pub async fn is_return_path(&self, name: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT 1 AS found FROM sending_domains WHERE return_path = $1 LIMIT 1")
                .bind(name.to_ascii_lowercase())
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.is_some())
    }

    pub async fn domain_status(&self, account_id: &str, domain: &str) -> Result<DomainStatus> {
        let row = sqlx::query(
            "SELECT verified_at_ms FROM sending_domains WHERE account_id = $1 AND domain = $2",
        )
        .bind(account_id)
        .bind(domain)
        .fetch_optional(&self.reader)
        .await?;
        Ok(match row {
            None => DomainStatus::Unregistered,
            Some(row) if row.try_get::<Option<i64>, _>("verified_at_ms")?.is_some() => {
                DomainStatus::Verified
            }
            Some(_) => DomainStatus::Unverified,
        })
    }
}

/// What a domain's private key is sealed as: bound to its row.
fn key_context(id: &str) -> String {
    crate::secrets::context("sending_domains", "private_key", id)
}

/// What a domain's next key is sealed as: bound to its row, and not interchangeable with the
/// current key's value.
fn next_key_context(id: &str) -> String {
    crate::secrets::context("sending_domains", "next_private_key", id)
}

fn domain_from_row(key: &MasterKey, row: &AnyRow) -> Result<SendingDomain> {
    let id: String = row.try_get("id")?;
    let next_key = match row.try_get::<Option<String>, _>("next_selector")? {
        None => None,
        Some(selector) => Some(NextKey {
            private_key_pem: key.open_text(
                &next_key_context(&id),
                &row.try_get::<String, _>("next_private_key")?,
            )?,
            public_key_b64: row.try_get("next_public_key_b64")?,
            selector,
        }),
    };
    Ok(SendingDomain {
        private_key_pem: key
            .open_text(&key_context(&id), &row.try_get::<String, _>("private_key")?)?,
        id,
        account_id: row.try_get("account_id")?,
        domain: row.try_get("domain")?,
        selector: row.try_get("selector")?,
        algorithm: row.try_get("algorithm")?,
        public_key_b64: row.try_get("public_key_b64")?,
        return_path: row.try_get("return_path")?,
        created_at_ms: row.try_get("created_at_ms")?,
        verified_at_ms: row.try_get("verified_at_ms")?,
        last_check_at_ms: row.try_get("last_check_at_ms")?,
        last_check: row.try_get("last_check")?,
        next_key,
        retired_keys: row.try_get("retired_keys")?,
    })
}
