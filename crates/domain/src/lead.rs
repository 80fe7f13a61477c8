//! Permission to Email, and who may do what (docs/emails.md, docs/api.md).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether a lead may be emailed. `No` is set by hard bounces, unsubscribes and complaints;
/// setting it back to `Yes` never lifts a suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Yes,
    No,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Yes => "yes",
            Permission::No => "no",
        }
    }
}

impl FromStr for Permission {
    type Err = String;
    /// Accepts the spellings CRM exports use: yes/no, true/false, 1/0, y/n.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "1" => Ok(Permission::Yes),
            "no" | "n" | "false" | "0" => Ok(Permission::No),
            other => Err(format!(
                "permission to email must be yes or no, not '{other}'"
            )),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three roles of docs/api.md. Operators belong to no account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends email and reads its account's data.
    User,
    /// Also changes the account's settings, webhooks, sending domains and users.
    Admin,
    /// Every account; suppression removal; accounts.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            other => Err(format!(
                "role must be user, admin or operator, not '{other}'"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_reads_crm_spellings() {
        for yes in ["yes", "YES", " y ", "true", "1"] {
            assert_eq!(yes.parse::<Permission>(), Ok(Permission::Yes), "{yes}");
        }
        for no in ["no", "N", "false", "0"] {
            assert_eq!(no.parse::<Permission>(), Ok(Permission::No), "{no}");
        }
        assert!("maybe".parse::<Permission>().unwrap_err().contains("maybe"));
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::User, Role::Admin, Role::Operator] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
