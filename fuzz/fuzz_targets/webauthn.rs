//! Any bytes as a passkey ceremony: the CBOR decoder, a registration (client data and
//! attestation object) and an assertion against a fixed Ed25519 credential and against the one
//! just registered, if any. None may panic, and no assertion by the fixed key can verify: the
//! fuzzer cannot sign with it.
#![no_main]

use imangor::auth::{cbor, webauthn};
use libfuzzer_sys::fuzz_target;

/// The RFC 8032 §7.1 test 1 public key as a COSE_Key (kty OKP, alg EdDSA, crv Ed25519, x).
const FIXED_KEY: [u8; 42] = [
    0xa4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 0x20, 0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1,
    0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6,
    0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
];

/// `data` cut in `n` parts at the lengths its first `n - 1` bytes name.
fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let (lens, mut rest) = data.split_at(data.len().min(n - 1));
    let mut out = Vec::with_capacity(n);
    for &len in lens {
        let (part, after) = rest.split_at(rest.len().min(usize::from(len)));
        out.push(part);
        rest = after;
    }
    out.resize(n - 1, &[]);
    out.push(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let _ = cbor::decode(data);
    let rp = webauthn::RelyingParty {
        id: "localhost".into(),
        origin: "http://localhost:8123".into(),
    };
    let challenge = [7u8; webauthn::CHALLENGE_LEN];
    let p = parts(data, 5);
    let (client_data, object, auth_data, sig) = (p[0], p[4], p[1], p[2]);
    let uv = p[3].first().is_some_and(|b| b & 1 == 1);
    let registered = webauthn::verify_registration(&rp, &challenge, client_data, object, uv);
    let fixed = webauthn::StoredCredential {
        public_key: &FIXED_KEY,
        sign_count: 0,
        backup_eligible: false,
    };
    let r = webauthn::verify_assertion(&rp, &challenge, &fixed, client_data, auth_data, sig, uv);
    assert!(r.is_err(), "a forged assertion verified");
    // A key the fuzzer registered itself may be one it can sign with (a small-order Ed25519
    // point): only panics count there.
    if let Ok(reg) = registered {
        let stored = webauthn::StoredCredential {
            public_key: &reg.public_key,
            sign_count: reg.sign_count,
            backup_eligible: reg.backup_eligible,
        };
        let _ =
            webauthn::verify_assertion(&rp, &challenge, &stored, client_data, auth_data, sig, uv);
    }
});
