//! Key material and what is done with it: the data keyring that encrypts sensitive values
//! (`data`), Fernet tokens read for data brought over from the Python stack (`fernet`), the
//! text form of keyrings shared by the data and signing keyrings (`keyring`), the keyrings a
//! configuration names or development generates (`configured`), the private files that hold
//! secrets on disk (`files`), and the audit chain's hashes and signatures (`chain`).
//!
//! Raw key bytes live in `Zeroizing` buffers and are never printed: no type here derives `Debug`
//! over key material.

pub mod chain;
pub mod configured;
pub mod data;
pub mod drill;
pub mod fernet;
pub mod files;
pub mod keyring;

use aws_lc_rs::hkdf;

/// Key material held as bytes (the HMAC key of HS256 tokens is used exactly as given).
pub type KeyBytes = secrecy::SecretBox<Vec<u8>>;

/// Lower-case hex of `bytes` (digests, MACs, key ids): one allocation, not one per byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Derives `N` bytes for one use (`info`) from a key, so that one key never serves two algorithms.
pub fn derive<const N: usize>(key: &[u8], info: &[u8]) -> zeroize::Zeroizing<[u8; N]> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"imangor key derivation v1").extract(key);
    let mut out = zeroize::Zeroizing::new([0u8; N]);
    prk.expand(&[info], Len(N))
        .and_then(|okm| okm.fill(&mut out[..]))
        .expect("HKDF-SHA256 gives up to 8160 bytes");
    out
}

/// `n` bytes from the operating system's CSPRNG, zeroed when dropped.
pub fn random_key(n: usize) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut bytes = zeroize::Zeroizing::new(vec![0u8; n]);
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }

    #[test]
    fn derivation_separates_uses() {
        let k = [7u8; 32];
        let a = super::derive::<32>(&k, b"a");
        let b = super::derive::<32>(&k, b"b");
        assert_ne!(*a, *b);
        assert_eq!(*a, *super::derive::<32>(&k, b"a"));
        assert_ne!(&a[..], &k[..]);
    }
}
