//! `SubscriptionName`: the validated name a subscription's checkpoint and lock are kept under.

use std::fmt;

use crate::{InvalidInput, Result};

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 120;

/// The name of a subscription: 1 to 120 ASCII letters, digits, `_`, `-`, `.` or `:`.
///
/// One name is one checkpoint and at most one active consumer at a time, whichever process
/// runs it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionName(String);

impl SubscriptionName {
    /// Validates `name`.
    ///
    /// ```
    /// # use eventlogs_core::SubscriptionName;
    /// assert!(SubscriptionName::new("accounts.balances:v2").is_ok());
    /// assert!(SubscriptionName::new("drop table; --").is_err());
    /// ```
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if valid {
            Ok(Self(name))
        } else {
            Err(InvalidInput::SubscriptionName(name.chars().take(MAX_NAME_LEN).collect()).into())
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "accounts", "read-model.v2:eu_1", &"x".repeat(120)] {
            assert_eq!(SubscriptionName::new(good).unwrap().as_str(), good);
        }
        for bad in ["", " ", "a b", "é", "a\0", "a'b", &"x".repeat(121)] {
            assert!(
                matches!(
                    SubscriptionName::new(bad),
                    Err(crate::Error::InvalidInput(InvalidInput::SubscriptionName(
                        _
                    )))
                ),
                "{bad:?}"
            );
        }
    }
}
