use serde::Deserialize;

/// What a new password must satisfy: a length range counted in Unicode characters, nothing else (no composition
/// rules, no truncation; any printable character including spaces and emoji).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    /// Minimum length (default 8; ASVS 5 asks for at least 8, 15 recommended).
    pub min_length: usize,
    /// Maximum length (default 128); longer passwords are refused rather than silently cut.
    pub max_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            max_length: 128,
        }
    }
}

/// Why a new password was refused. The message is safe to show to the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Shorter than the minimum.
    #[error("the password must be at least {0} characters long")]
    TooShort(usize),
    /// Longer than the maximum.
    #[error("the password must be at most {0} characters long")]
    TooLong(usize),
    /// Contains a control character (a NUL or a newline cannot be typed back reliably).
    #[error("the password must not contain control characters")]
    ControlCharacter,
}

impl PasswordPolicy {
    /// Checks a new password.
    pub fn check(&self, password: &str) -> Result<(), PolicyError> {
        let len = password.chars().count();
        if len < self.min_length {
            return Err(PolicyError::TooShort(self.min_length));
        }
        if len > self.max_length {
            return Err(PolicyError::TooLong(self.max_length));
        }
        if password.chars().any(char::is_control) {
            return Err(PolicyError::ControlCharacter);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters() {
        let p = PasswordPolicy::default();
        assert_eq!(p.check("short"), Err(PolicyError::TooShort(8)));
        assert!(p.check("eight ch").is_ok());
        assert!(p.check("🔑🔑🔑🔑🔑🔑🔑🔑").is_ok(), "8 emoji are 8 characters");
        assert!(p.check(&"x".repeat(128)).is_ok());
        assert_eq!(p.check(&"x".repeat(129)), Err(PolicyError::TooLong(128)));
        assert!(p.check("with spaces in it").is_ok());
        assert_eq!(p.check("nul\0inside"), Err(PolicyError::ControlCharacter));
    }
}
