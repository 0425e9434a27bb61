//! Authentication primitives: password hashing, access/refresh tokens, TOTP and the WebAuthn
//! (passkey) verifier.

pub mod cache;
pub mod cbor;
pub mod cursor;
pub mod legacy;
pub mod password;
pub mod token;
pub mod totp;
mod verified;
pub mod webauthn;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `n` bytes from the operating system's CSPRNG, base64url without padding.
pub fn random_token(n: usize) -> anyhow::Result<String> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 as lower-case hex: how refresh tokens are stored (they carry 256 random bits, so no salt or stretching is needed).
pub fn sha256_hex(s: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    crate::crypto::hex(d.as_ref())
}
