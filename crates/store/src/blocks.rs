//! The check right before each attempt (docs/emails.md): an email whose address was
//! suppressed, or whose lead's Permission to Email was set to No, since it was queued is not
//! sent. A session checks all its emails in a few queries rather than one per email.

use std::collections::{BTreeMap, HashSet};

use mailtrail_domain::{EmailAddress, Reason};
use sqlx::Row;

use crate::{Result, Store};

/// One email about to be attempted.
#[derive(Debug, Clone, Copy)]
pub struct BlockCheck<'a> {
    pub account_id: &'a str,
    pub to: &'a str,
    pub lead_id: Option<&'a str>,
}

/// Lead ids and address keys per `IN (…)` list.
const CHUNK: usize = 250;

/// How an address is kept in suppressions and leads.
fn address_key(to: &str) -> String {
    EmailAddress::parse(to)
        .map(|a| a.normalized())
        .unwrap_or_else(|_| to.to_lowercase())
}

impl Store {
    /// Why this email must not be sent now, if it must not.
    pub async fn block_reason(
        &self,
        account_id: &str,
        to: &str,
        lead_id: Option<&str>,
    ) -> Result<Option<Reason>> {
        let check = BlockCheck {
            account_id,
            to,
            lead_id,
        };
        Ok(self.block_reasons(&[check]).await?.pop().flatten())
    }

    /// [`Store::block_reason`] of each email, in order: suppression first, then permission.
    pub async fn block_reasons(&self, checks: &[BlockCheck<'_>]) -> Result<Vec<Option<Reason>>> {
        let keys: Vec<String> = checks.iter().map(|c| address_key(c.to)).collect();
        let mut by_account: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, check) in checks.iter().enumerate() {
            by_account.entry(check.account_id).or_default().push(i);
        }
        let mut reasons = vec![None; checks.len()];
        for (account_id, members) in by_account {
            let account_keys: Vec<String> = members
                .iter()
                .map(|i| keys[*i].clone())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let suppressed = self.suppressed_among(account_id, &account_keys).await?;
            let lead_ids: Vec<&str> = members
                .iter()
                .filter_map(|i| checks[*i].lead_id)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let (refused_leads, refused_keys) = self
                .refusing_leads(account_id, &lead_ids, &account_keys)
                .await?;
            for i in members {
                let refused = refused_keys.contains(&keys[i])
                    || checks[i]
                        .lead_id
                        .is_some_and(|id| refused_leads.contains(id));
                reasons[i] = if suppressed.contains(&keys[i]) {
                    Some(Reason::Suppressed)
                } else if refused {
                    Some(Reason::NoPermission)
                } else {
                    None
                };
            }
        }
        Ok(reasons)
    }

    /// Among these leads (by id) and addresses, the leads whose Permission to Email is No:
    /// their ids and address keys.
    async fn refusing_leads(
        &self,
        account_id: &str,
        lead_ids: &[&str],
        keys: &[String],
    ) -> Result<(HashSet<String>, HashSet<String>)> {
        let (mut ids, mut refused_keys) = (HashSet::new(), HashSet::new());
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        for (column, values) in [("id", lead_ids), ("address_key", &keys[..])] {
            for chunk in values.chunks(CHUNK) {
                let sql = format!(
                    "SELECT id, address_key FROM leads
                     WHERE account_id = {} AND permission = 'no' AND {column} IN ({})",
                    self.placeholders(1, 1),
                    self.placeholders(2, chunk.len())
                );
                let mut query = sqlx::query(&sql).bind(account_id);
                for value in chunk {
                    query = query.bind(*value);
                }
                for row in query.fetch_all(&self.reader).await? {
                    ids.insert(row.try_get::<String, _>("id")?);
                    refused_keys.insert(row.try_get::<String, _>("address_key")?);
                }
            }
        }
        Ok((ids, refused_keys))
    }
}
