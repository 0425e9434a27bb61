//! How strong a secret key must be: long enough, and not a placeholder (RFC 8725 section 3.5,
//! ASVS V11.2.3, V13.2.3). Judged on the bytes alone; `crypto` and `config` name the key in errors.

/// Why a key is too weak to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    /// Fewer bytes than required: `len` of them.
    Short { len: usize },
    /// Fewer than 10 distinct bytes: a repeated pattern or a word, not random bytes.
    Predictable { distinct: usize },
}

/// What is wrong with `key` as a key of at least `min_len` bytes, if anything.
pub fn weakness(key: &[u8], min_len: usize) -> Option<Weakness> {
    if key.len() < min_len {
        return Some(Weakness::Short { len: key.len() });
    }
    let mut distinct = key.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    (distinct.len() < 10).then_some(Weakness::Predictable {
        distinct: distinct.len(),
    })
}

/// `IMANGOR_JWT_SECRET`, an HMAC key used as given: at least 256 bits, not a placeholder. The
/// error is the message an operator reads.
pub fn check_jwt_secret(secret: &[u8]) -> Result<(), String> {
    check_hmac_secret("IMANGOR_JWT_SECRET", secret)
}

/// An HMAC key named by the variable `var` (`IMANGOR_JWT_SECRET`, `IMANGOR_LEGACY_JWT_SECRET`):
/// at least 256 bits, not a placeholder.
pub fn check_hmac_secret(var: &str, secret: &[u8]) -> Result<(), String> {
    match weakness(secret, 32) {
        None => Ok(()),
        Some(Weakness::Short { len }) => {
            Err(format!("{var} must be at least 32 bytes (it has {len})"))
        }
        Some(Weakness::Predictable { distinct }) => Err(format!(
            "{var} is too predictable (only {distinct} distinct bytes): use 32 random bytes"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_predictable_keys_are_weak() {
        assert_eq!(weakness(b"short", 32), Some(Weakness::Short { len: 5 }));
        assert_eq!(
            weakness(&[1; 32], 32),
            Some(Weakness::Predictable { distinct: 1 })
        );
        assert_eq!(weakness(&(0..32).collect::<Vec<u8>>(), 32), None);
        assert!(check_jwt_secret(b"changemechangemechangemechangeme").is_err());
        assert!(check_jwt_secret(b"0123456789abcdefghijklmnopqrstuvwxyz").is_ok());
    }
}
