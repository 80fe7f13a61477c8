//! The ids of accounts and emails as types of their own, so a function taking both cannot be
//! handed them the wrong way round (`store.email(&account, &email)`). Each reads as the
//! string it is (`Deref<Target = str>`, `Display`, serde and sqlx as a plain string), and is
//! made from one only on purpose (`From<String>`, `From<&str>` and the like).

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl<T: AsRef<str> + ?Sized> From<&T> for $name {
            fn from(id: &T) -> Self {
                Self(id.as_ref().to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

id! {
    /// An account's id.
    AccountId
}

id! {
    /// An email's id.
    EmailId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_and_writes_as_its_string() {
        let id = EmailId::from("0190-e");
        assert_eq!(id.as_str(), "0190-e");
        assert_eq!(id.to_string(), "0190-e");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0190-e\"");
        let back: EmailId = serde_json::from_str("\"0190-e\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(id, "0190-e");
        assert_eq!("0190-e", id);
    }
}
