//! A person's display name: 1..=100 characters after trimming, no control characters.

use super::ValidationError;

pub const MAX_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        super::text::one_line(s, "full_name", MAX_CHARS)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_characters_not_bytes() {
        assert!(FullName::parse(&"é".repeat(100)).is_ok());
        assert!(FullName::parse(&"é".repeat(101)).is_err());
    }

    #[test]
    fn trims_and_refuses_blank_and_control_characters() {
        assert_eq!(FullName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert!(FullName::parse("   ").is_err());
        assert!(FullName::parse("a\nb").is_err());
        assert!(FullName::parse("a\u{0085}b").is_err());
    }
}
