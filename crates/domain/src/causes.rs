//! An error and its causes on one line, for the places that keep only text: notes stored with
//! a record, and log fields a JSON log writes as one string.

use std::error::Error;
use std::fmt;

/// Displays `error: its cause: that cause's cause`, as anyhow's `{:#}` does.
pub struct WithCauses<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for WithCauses<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Start(#[source] std::io::Error);

    #[test]
    fn every_cause_follows_the_error() {
        let error = Start(std::io::Error::other("the disk is full"));
        assert_eq!(
            WithCauses(&error).to_string(),
            "cannot start: the disk is full"
        );
        let alone = std::io::Error::other("no cause");
        assert_eq!(WithCauses(&alone).to_string(), "no cause");
    }
}
