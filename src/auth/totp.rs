//! Time-based one-time passwords (RFC 6238 over RFC 4226): HMAC-SHA-1, 6 digits, 30-second
//! steps, the authenticator apps' defaults. A code is accepted for the step before, the current
//! one and the one after (clock drift); the caller keeps the last step accepted, so that each
//! code works once.

use aws_lc_rs::hmac;

/// Seconds per step.
pub const STEP_S: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Bytes of a secret (160 bits, RFC 4226's recommendation).
pub const SECRET_LEN: usize = 20;

/// The code of `secret` at time step `step` (RFC 4226 §5.3, dynamic truncation).
pub fn code_at(secret: &[u8], step: i64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let h = tag.as_ref();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    bin % 10u32.pow(DIGITS)
}

/// The step of a Unix time.
pub fn step_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_S)
}

/// The step `presented` matches within one step of `now_step`, if any and only if it is later
/// than `last_used` (a code is accepted once). `presented` must be exactly six ASCII digits.
pub fn verify(secret: &[u8], presented: &str, now_step: i64, last_used: i64) -> Option<i64> {
    if presented.len() != DIGITS as usize || !presented.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let want: u32 = presented.parse().ok()?;
    // Every candidate is computed (no early exit on a match): the time taken does not say which
    // step matched.
    let mut found = None;
    for step in [now_step - 1, now_step, now_step + 1] {
        let ok = code_at(secret, step) == want;
        if ok && step > last_used && found.is_none() {
            found = Some(step);
        }
    }
    found
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding: how authenticator apps take a secret.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The bytes of an RFC 4648 base32 secret as `base32` writes it (case, spaces and `=` padding
/// ignored); `None` for any other character.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !matches!(c, b' ' | b'=')) {
        let v = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// The `otpauth://` URI an authenticator app reads from a QR code (Key Uri Format).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let label: String =
        url::form_urlencoded::byte_serialize(format!("{issuer}:{account}").as_bytes())
            .collect::<String>()
            .replace('+', "%20");
    let issuer_q: String = url::form_urlencoded::byte_serialize(issuer.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!(
        "otpauth://totp/{label}?secret={}&issuer={issuer_q}&algorithm=SHA1&digits={DIGITS}&period={STEP_S}",
        base32(secret)
    )
}

#[cfg(test)]
mod tests {

    #[test]
    fn base32_reads_back_what_it_writes() {
        let secret: Vec<u8> = (0u8..20).map(|b| b.wrapping_mul(37)).collect();
        assert_eq!(from_base32(&base32(&secret)), Some(secret.clone()));
        assert_eq!(from_base32(&base32(&secret).to_lowercase()), Some(secret));
        assert_eq!(from_base32("AB1"), None);
    }

    use super::*;

    /// RFC 6238 Appendix B, SHA-1 (8-digit values, compared on their last six digits).
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(code_at(secret, step_of(t)), eight % 1_000_000, "t={t}");
        }
    }

    #[test]
    fn a_code_is_accepted_once_and_only_near_its_step() {
        let secret = b"12345678901234567890";
        let now = step_of(1_111_111_111);
        let code = format!("{:06}", code_at(secret, now));
        assert_eq!(verify(secret, &code, now, 0), Some(now));
        assert_eq!(verify(secret, &code, now, now), None, "replayed");
        assert_eq!(
            verify(secret, &code, now + 1, 0),
            Some(now),
            "one step late"
        );
        assert_eq!(verify(secret, &code, now + 2, 0), None, "too late");
        assert_eq!(verify(secret, "12345", now, 0), None);
        assert_eq!(verify(secret, "12345a", now, 0), None);
        assert_eq!(verify(secret, " 123456", now, 0), None);
    }

    #[test]
    fn base32_is_rfc_4648_without_padding() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }
}
