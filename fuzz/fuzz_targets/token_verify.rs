//! Any bytes as a bearer token: the verifier refuses them without panicking (RFC 8725 inputs:
//! segments, base64, JSON, duplicate members, algorithms, claims).
#![no_main]

use std::sync::LazyLock;

use imangor::auth::token::TokenKeys;
use imangor::domain::Timestamp;
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<TokenKeys> = LazyLock::new(|| {
    let key = secrecy::SecretBox::new(Box::new(b"fuzzing-only-hs256-key-0123456789abcdef".to_vec()));
    TokenKeys::hs256(&key, "imangor", "imangor-api", 900)
});

fuzz_target!(|data: &[u8]| {
    let token = String::from_utf8_lossy(data);
    // Nothing forged by the fuzzer can carry a valid HMAC.
    assert!(KEYS.verify(&token, Timestamp::now()).is_err());
});
