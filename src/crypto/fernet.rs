//! Reading Fernet tokens (the format of Python's `cryptography.fernet`, which the guide uses), so
//! that values encrypted by a deployment of the Python stack stay readable after they are brought
//! over. Only decryption: new values are always sealed with the data keyring's AEAD.
//!
//! A token is base64url(0x80 | timestamp (8) | IV (16) | AES-128-CBC ciphertext | HMAC-SHA256 (32));
//! the key's first 16 bytes sign, the last 16 encrypt. The MAC is checked (in constant time)
//! before anything is decrypted.

use aws_lc_rs::cipher::{AES_128, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use base64::Engine;
use zeroize::Zeroizing;

const VERSION: u8 = 0x80;
const HEADER: usize = 1 + 8 + 16;
const MAC: usize = 32;

/// True when `stored` looks like a Fernet token (base64url text starting with the version byte).
pub fn looks_like(stored: &[u8]) -> bool {
    stored.starts_with(b"gAAAAA")
}

/// Decrypts a Fernet token with a 32-byte Fernet key. Any fault gives `None`, never a partial value.
pub fn decrypt(key: &[u8], token: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if key.len() != 32 {
        return None;
    }
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .ok()?;
    if raw.len() < HEADER + 16 + MAC
        || raw[0] != VERSION
        || !(raw.len() - HEADER - MAC).is_multiple_of(16)
    {
        return None;
    }
    let (signed, tag) = raw.split_at(raw.len() - MAC);
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &key[..16]), signed, tag).ok()?;
    let iv: [u8; 16] = signed[9..HEADER].try_into().ok()?;
    let cipher =
        PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_128, &key[16..]).ok()?)
            .ok()?;
    let mut buf = Zeroizing::new(signed[HEADER..].to_vec());
    let plain_len = cipher
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
        .ok()?
        .len();
    buf.truncate(plain_len);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token made by Python's `cryptography` (`scripts/make-fernet-fixture.py`), and its key and plaintext.
    fn fixture() -> (Vec<u8>, String, String) {
        let f: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/fernet.json")).unwrap();
        let key = crate::crypto::keyring::decode_b64(f["key"].as_str().unwrap()).unwrap();
        (
            key.to_vec(),
            f["token"].as_str().unwrap().to_owned(),
            f["plaintext"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn a_token_made_by_python_cryptography_decrypts() {
        let (key, token, plain) = fixture();
        assert!(looks_like(token.as_bytes()));
        let out = decrypt(&key, token.as_bytes()).expect("decrypts");
        assert_eq!(std::str::from_utf8(&out).unwrap(), plain);
    }

    #[test]
    fn any_changed_byte_or_another_key_fails() {
        let (key, token, _) = fixture();
        let mut raw = base64::engine::general_purpose::URL_SAFE
            .decode(&token)
            .unwrap();
        for i in [0, 5, 12, 30, raw.len() - 40, raw.len() - 1] {
            raw[i] ^= 1;
            let t = base64::engine::general_purpose::URL_SAFE.encode(&raw);
            assert!(decrypt(&key, t.as_bytes()).is_none(), "byte {i}");
            raw[i] ^= 1;
        }
        let mut other = key.clone();
        other[0] ^= 1;
        assert!(decrypt(&other, token.as_bytes()).is_none());
        assert!(decrypt(&key, b"gAAAAA").is_none());
        assert!(decrypt(&key[..16], token.as_bytes()).is_none());
    }
}
