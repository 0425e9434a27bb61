//! A resource and its fields: a title of 1..=200 characters and content of at most 64 KiB.

use super::{ResourceId, Timestamp, UserId, ValidationError};

pub const TITLE_MAX_CHARS: usize = 200;
pub const CONTENT_MAX_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// Kept as given (no trimming); blank titles and control characters are refused.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        super::text::one_line(raw, "title", TITLE_MAX_CHARS)?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content(String);

impl Content {
    /// Any text up to 64 KiB (UTF-8 bytes) except NUL, which no database text column stores.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.len() > CONTENT_MAX_BYTES {
            return Err(ValidationError::field(
                "content",
                "must be at most 65536 bytes (64 KiB)",
            ));
        }
        if raw.contains('\0') {
            return Err(ValidationError::field(
                "content",
                "must not contain NUL characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A resource as stored.
#[derive(Debug, Clone)]
pub struct Resource {
    pub id: ResourceId,
    pub owner_id: UserId,
    pub title: String,
    pub content: String,
    pub is_public: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The fields a client sets, already parsed.
#[derive(Debug, Clone)]
pub struct ResourceFields {
    pub title: Title,
    pub content: Content,
    pub is_public: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_bounds_count_characters() {
        assert!(Title::parse("x").is_ok());
        assert!(Title::parse(&"ß".repeat(200)).is_ok());
        assert!(Title::parse(&"ß".repeat(201)).is_err());
        assert!(Title::parse(" ").is_err());
        assert!(Title::parse("a\rb").is_err());
    }

    #[test]
    fn content_is_bounded_in_bytes_and_free_of_nul() {
        assert!(Content::parse("").is_ok());
        assert!(Content::parse(&"x".repeat(CONTENT_MAX_BYTES)).is_ok());
        assert!(Content::parse(&"x".repeat(CONTENT_MAX_BYTES + 1)).is_err());
        assert!(Content::parse("a\0b").is_err());
        assert!(Content::parse("line\nbreaks\tand </script>").is_ok());
    }
}
