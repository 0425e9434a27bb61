//! The fields of a secret: a name of 1..=100 characters and a value of 1..=16 KiB.

use zeroize::Zeroizing;

use super::{SecretId, Timestamp, ValidationError};

pub const NAME_MAX_CHARS: usize = 100;
pub const VALUE_MAX_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretName(String);

impl SecretName {
    /// Kept as given; blank names and control characters are refused.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        super::text::one_line(raw, "name", NAME_MAX_CHARS)?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A secret's plaintext: any text of 1..=16 KiB (UTF-8 bytes). Zeroed when dropped; `Debug`
/// never shows it.
pub struct SecretValue(Zeroizing<String>);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

impl SecretValue {
    /// Takes the request's string (so that no second copy is left behind unzeroed).
    pub fn parse(raw: String) -> Result<Self, ValidationError> {
        let raw = Zeroizing::new(raw);
        if raw.is_empty() {
            return Err(ValidationError::field("value", "must not be empty"));
        }
        if raw.len() > VALUE_MAX_BYTES {
            return Err(ValidationError::field(
                "value",
                "must be at most 16384 bytes (16 KiB)",
            ));
        }
        Ok(Self(raw))
    }

    /// A value read back from storage (already checked when it was stored).
    pub fn from_stored(bytes: Zeroizing<Vec<u8>>) -> Option<Self> {
        let s = std::str::from_utf8(&bytes).ok()?;
        Some(Self(Zeroizing::new(s.to_owned())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A secret as a list shows it: never the value.
#[derive(Debug, Clone)]
pub struct SecretEntry {
    pub id: SecretId,
    pub name: String,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_count_characters_and_values_count_bytes() {
        assert!(SecretName::parse(&"é".repeat(100)).is_ok());
        assert!(SecretName::parse(&"é".repeat(101)).is_err());
        assert!(SecretName::parse(" ").is_err());
        assert!(SecretName::parse("a\nb").is_err());
        assert!(SecretValue::parse("x".repeat(VALUE_MAX_BYTES)).is_ok());
        assert!(SecretValue::parse("é".repeat(VALUE_MAX_BYTES / 2 + 1)).is_err());
        assert!(SecretValue::parse(String::new()).is_err());
        let v = SecretValue::parse("hunter2\n-----BEGIN KEY-----".into()).unwrap();
        assert!(!format!("{v:?}").contains("hunter2"));
    }
}
