use std::fmt;

use serde::{Deserialize, Serialize};

use crate::IdError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $max:expr, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                let check: fn(&str) -> bool = $check;
                if value.is_empty() || value.len() > $max || !check(&value) {
                    return Err(IdError { kind: stringify!($name) });
                }
                Ok($name(value))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                $name::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// A source's id from configuration (`local`, `corp`, `google`): half of every identity key, and a URL path
    /// segment, so it is limited to lowercase ASCII letters, digits, `-` and `_`.
    SourceId,
    64,
    |s| s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
);

id_type!(
    /// A local account's id: opaque, random, never reused.
    AccountId,
    64,
    |s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
);

id_type!(
    /// The stable id a source asserts for a person (OIDC `sub`, LDAP `entryUUID`, GitHub's numeric id). Any
    /// printable text without control characters; never an email or a login name, which change hands.
    Subject,
    255,
    |s| !s.chars().any(char::is_control)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_are_path_safe() {
        assert!(SourceId::new("corp-ldap_2").is_ok());
        for bad in ["", "Corp", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(SourceId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn subjects_refuse_control_characters() {
        assert!(Subject::new("1234-abcd").is_ok());
        assert!(Subject::new("a\0b").is_err());
        assert!(Subject::new("a\nb").is_err());
        assert!(Subject::new("").is_err());
    }

    #[test]
    fn ids_deserialize_through_validation() {
        let ok: Result<SourceId, _> = serde_json::from_str("\"google\"");
        assert!(ok.is_ok());
        let bad: Result<SourceId, _> = serde_json::from_str("\"../x\"");
        assert!(bad.is_err());
    }
}
