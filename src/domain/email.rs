//! An email address, normalised to lower case so that uniqueness is case-insensitive.

use super::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

const MAX_LEN: usize = 254;

impl Email {
    /// Accepts the common `local@domain.tld` form (ASCII; the local part in RFC 5322 dot-atom
    /// form), trims surrounding whitespace and lower-cases the whole address.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim().to_ascii_lowercase();
        let bad = || {
            Err(ValidationError::field(
                "email",
                "must be a valid email address",
            ))
        };
        if s.is_empty() || s.len() > MAX_LEN || !s.is_ascii() {
            return bad();
        }
        let Some((local, domain)) = s.split_once('@') else {
            return bad();
        };
        if !valid_local(local) || !valid_domain(domain) {
            return bad();
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }
}

fn valid_local(local: &str) -> bool {
    const SPECIAL: &str = "!#$%&'*+-/=?^_`{|}~";
    !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || SPECIAL.contains(c))
        })
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a..b@example.com",
            "ada@-x.com",
            "ada@example.c0m",
            "a b@example.com",
            "ada@exa mple.com",
            "ädä@example.com",
            "ada@@example.com",
            "' OR '1'='1@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn accepts_usual_addresses() {
        for ok in [
            "ada@example.com",
            "ada.lovelace+test@mail.example.co.uk",
            "o'brien@example.ie",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }
}
