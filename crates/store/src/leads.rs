//! Leads: the CRM's contacts, one per normalised address within an account, each with its
//! Permission to Email and why and when it last changed.

use std::collections::BTreeMap;

use std::fmt;
use std::str::FromStr;

use mailtrail_domain::{EmailAddress, Permission, Reason};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{AccountId, Result, Store, StoreError, new_id, now_ms};

/// Custom fields: free-form name → value pairs, used as merge fields in emails.
pub type Fields = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lead {
    pub id: String,
    pub account_id: String,
    /// The address as it was given (its domain normalised).
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub fields: Fields,
    pub permission: Permission,
    /// Why Permission to Email last changed; `None` while it is still the Yes it was created
    /// with (or for a lead from before causes were kept).
    pub permission_cause: Option<PermissionCause>,
    pub permission_changed_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What last changed a lead's Permission to Email (docs/web-ui.md: "No" shows its cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionCause {
    /// The recipient unsubscribed (link, one-click or mailto).
    Unsubscribe,
    /// The recipient reported an email as spam or abuse.
    Complaint,
    /// An email hard-bounced: the address itself is bad.
    HardBounce,
    /// A CSV import set it.
    Import,
    /// Someone set it by hand, through the API, the CLI or the UI.
    Manual,
    /// The address was blocked for another reason.
    Suppression,
}

impl PermissionCause {
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionCause::Unsubscribe => "unsubscribe",
            PermissionCause::Complaint => "complaint",
            PermissionCause::HardBounce => "hardbounce",
            PermissionCause::Import => "import",
            PermissionCause::Manual => "manual",
            PermissionCause::Suppression => "suppression",
        }
    }

    /// The cause of the No that a block for `reason` sets.
    pub fn of_block(reason: Reason) -> PermissionCause {
        match reason {
            Reason::Unsubscribed => PermissionCause::Unsubscribe,
            Reason::Complaint => PermissionCause::Complaint,
            r if r.is_hard() => PermissionCause::HardBounce,
            _ => PermissionCause::Suppression,
        }
    }
}

impl FromStr for PermissionCause {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "unsubscribe" => PermissionCause::Unsubscribe,
            "complaint" => PermissionCause::Complaint,
            "hardbounce" => PermissionCause::HardBounce,
            "import" => PermissionCause::Import,
            "manual" => PermissionCause::Manual,
            "suppression" => PermissionCause::Suppression,
            other => return Err(format!("unknown permission cause '{other}'")),
        })
    }
}

impl fmt::Display for PermissionCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct NewLead {
    pub address: EmailAddress,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub fields: Fields,
    pub permission: Permission,
}

/// A partial update: `None` leaves a value as it is; given fields are merged into the lead's.
#[derive(Debug, Clone, Default)]
pub struct LeadPatch {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub fields: Option<Fields>,
    pub permission: Option<Permission>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    pub created: u64,
    pub updated: u64,
}

const LEAD_COLUMNS: &str = "id, account_id, address, first_name, last_name, fields, permission, \
                            permission_cause, permission_changed_at_ms, created_at_ms, \
                            updated_at_ms";

/// Rows per INSERT in a bulk import: 12 parameters a row stays far below both backends'
/// parameter limits (SQLite 32,766, PostgreSQL 65,535).
const IMPORT_CHUNK: usize = 500;

fn lead_from_row(row: &AnyRow) -> Result<Lead> {
    let fields: String = row.try_get("fields")?;
    let permission: String = row.try_get("permission")?;
    let cause: Option<String> = row.try_get("permission_cause")?;
    Ok(Lead {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        email: row.try_get("address")?,
        first_name: row.try_get("first_name")?,
        last_name: row.try_get("last_name")?,
        fields: serde_json::from_str(&fields).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        permission: permission.parse().map_err(StoreError::Corrupt)?,
        permission_cause: cause
            .map(|c| c.parse())
            .transpose()
            .map_err(StoreError::Corrupt)?,
        permission_changed_at_ms: row.try_get("permission_changed_at_ms")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn fields_json(fields: &Fields) -> String {
    serde_json::to_string(fields).expect("a string map always serialises")
}

impl Store {
    /// Creates a lead; an address already used by a lead of this account is a conflict.
    /// A lead created with Permission to Email No was set so by hand.
    pub async fn create_lead(&self, account_id: &str, lead: &NewLead) -> Result<Lead> {
        let id = new_id();
        let now = now_ms();
        let cause = (lead.permission == Permission::No).then_some(PermissionCause::Manual);
        let inserted = sqlx::query(
            "INSERT INTO leads (id, account_id, address, address_key, first_name, last_name,
                                fields, permission, permission_cause, permission_changed_at_ms,
                                created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(&id)
        .bind(account_id)
        .bind(lead.address.to_string())
        .bind(lead.address.normalized())
        .bind(lead.first_name.as_deref())
        .bind(lead.last_name.as_deref())
        .bind(fields_json(&lead.fields))
        .bind(lead.permission.as_str())
        .bind(cause.map(PermissionCause::as_str))
        .bind(cause.map(|_| now))
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(StoreError::from);
        match inserted {
            Ok(_) => self.lead(&account_id.into(), &id).await,
            Err(e) if e.is_unique_violation() => Err(StoreError::Conflict(format!(
                "a lead with the address {} already exists",
                lead.address
            ))),
            Err(e) => Err(e),
        }
    }

    /// A page of an account's leads in address order, those whose address or name contains
    /// `query` (case-insensitive) when one is given; `after` is the last address key of the
    /// previous page.
    pub async fn search_leads(
        &self,
        account_id: &str,
        query: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Lead>> {
        let pattern = query.map(str::trim).filter(|q| !q.is_empty()).map(|q| {
            let escaped = q
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let matching = if pattern.is_some() {
            " AND (address_key LIKE $4 ESCAPE '\\'
                   OR LOWER(COALESCE(first_name, '') || ' ' || COALESCE(last_name, ''))
                      LIKE $4 ESCAPE '\\')"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE account_id = $1 AND address_key > $2{matching}
             ORDER BY address_key LIMIT $3"
        );
        let mut select = sqlx::query(&sql)
            .bind(account_id)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit));
        if let Some(pattern) = pattern {
            select = select.bind(pattern);
        }
        let rows = select.fetch_all(&self.reader).await?;
        rows.iter().map(lead_from_row).collect()
    }

    /// One lead of one account; another account's lead is `NotFound`, like a missing one.
    pub async fn lead(&self, account_id: &AccountId, lead_id: &str) -> Result<Lead> {
        let row = sqlx::query(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE account_id = $1 AND id = $2"
        ))
        .bind(account_id)
        .bind(lead_id)
        .fetch_optional(&self.reader)
        .await?
        .ok_or(StoreError::NotFound)?;
        lead_from_row(&row)
    }

    /// The lead of this account whose address normalises like `address`.
    pub async fn lead_by_address(
        &self,
        account_id: &str,
        address: &EmailAddress,
    ) -> Result<Option<Lead>> {
        let row = sqlx::query(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE account_id = $1 AND address_key = $2"
        ))
        .bind(account_id)
        .bind(address.normalized())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(lead_from_row).transpose()
    }

    /// Updates a lead; a change of Permission to Email is recorded as made by hand.
    pub async fn update_lead(
        &self,
        account_id: &AccountId,
        lead_id: &str,
        patch: &LeadPatch,
    ) -> Result<Lead> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {LEAD_COLUMNS} FROM leads WHERE account_id = $1 AND id = $2{}",
            self.lock_clause()
        ))
        .bind(account_id)
        .bind(lead_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let mut lead = lead_from_row(&row)?;
        if let Some(first) = &patch.first_name {
            lead.first_name = Some(first.clone());
        }
        if let Some(last) = &patch.last_name {
            lead.last_name = Some(last.clone());
        }
        if let Some(fields) = &patch.fields {
            lead.fields.extend(fields.clone());
        }
        lead.updated_at_ms = now_ms();
        if let Some(permission) = patch.permission
            && permission != lead.permission
        {
            lead.permission = permission;
            lead.permission_cause = Some(PermissionCause::Manual);
            lead.permission_changed_at_ms = Some(lead.updated_at_ms);
        }
        sqlx::query(
            "UPDATE leads SET first_name = $1, last_name = $2, fields = $3, permission = $4,
                              permission_cause = $5, permission_changed_at_ms = $6,
                              updated_at_ms = $7
             WHERE account_id = $8 AND id = $9",
        )
        .bind(lead.first_name.as_deref())
        .bind(lead.last_name.as_deref())
        .bind(fields_json(&lead.fields))
        .bind(lead.permission.as_str())
        .bind(lead.permission_cause.map(PermissionCause::as_str))
        .bind(lead.permission_changed_at_ms)
        .bind(lead.updated_at_ms)
        .bind(account_id)
        .bind(lead_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(lead)
    }

    pub async fn count_leads(&self, account_id: &str) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leads WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(&self.reader)
            .await?;
        Ok(count as u64)
    }

    /// Creates or updates many leads in one transaction: all of them, or none on error.
    /// An existing lead takes the new names and custom fields (when the import has any), but
    /// its Permission to Email is never turned from No to Yes; a No it gets from the import
    /// is recorded as caused by the import. Within `leads`, a later row
    /// for the same address wins. `progress` is called with the rows written so far.
    pub async fn import_leads(
        &self,
        account_id: &str,
        leads: &[NewLead],
        mut progress: impl FnMut(usize),
    ) -> Result<ImportSummary> {
        let mut latest: BTreeMap<String, &NewLead> = BTreeMap::new();
        for lead in leads {
            latest.insert(lead.address.normalized(), lead);
        }
        let unique: Vec<(&String, &&NewLead)> = latest.iter().collect();

        let mut tx = self.writer.begin().await?;
        let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leads WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(&mut *tx)
            .await?;
        let now = now_ms();
        let mut written = 0;
        for chunk in unique.chunks(IMPORT_CHUNK) {
            let sql = format!(
                "INSERT INTO leads (id, account_id, address, address_key, first_name, last_name,
                                    fields, permission, permission_cause,
                                    permission_changed_at_ms, created_at_ms, updated_at_ms)
                 VALUES {}
                 ON CONFLICT (account_id, address_key) DO UPDATE SET
                    address = excluded.address,
                    first_name = COALESCE(excluded.first_name, leads.first_name),
                    last_name = COALESCE(excluded.last_name, leads.last_name),
                    fields = CASE WHEN excluded.fields = '{{}}' THEN leads.fields
                                  ELSE excluded.fields END,
                    permission = CASE WHEN leads.permission = 'no' THEN 'no'
                                      ELSE excluded.permission END,
                    permission_cause = CASE WHEN leads.permission = 'yes'
                                                 AND excluded.permission = 'no'
                                            THEN excluded.permission_cause
                                            ELSE leads.permission_cause END,
                    permission_changed_at_ms = CASE WHEN leads.permission = 'yes'
                                                         AND excluded.permission = 'no'
                                                    THEN excluded.permission_changed_at_ms
                                                    ELSE leads.permission_changed_at_ms END,
                    updated_at_ms = excluded.updated_at_ms",
                self.row_placeholders(chunk.len(), 12)
            );
            let mut query = sqlx::query(&sql);
            for (key, lead) in chunk {
                let no = lead.permission == Permission::No;
                query = query
                    .bind(new_id())
                    .bind(account_id)
                    .bind(lead.address.to_string())
                    .bind(key.as_str())
                    .bind(lead.first_name.as_deref())
                    .bind(lead.last_name.as_deref())
                    .bind(fields_json(&lead.fields))
                    .bind(lead.permission.as_str())
                    .bind(no.then_some(PermissionCause::Import.as_str()))
                    .bind(no.then_some(now))
                    .bind(now)
                    .bind(now);
            }
            query.execute(&mut *tx).await?;
            written += chunk.len();
            progress(written);
        }
        let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM leads WHERE account_id = $1")
            .bind(account_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        let created = (after - before) as u64;
        Ok(ImportSummary {
            created,
            updated: unique.len() as u64 - created,
        })
    }
}
