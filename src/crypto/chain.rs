//! The audit trail's hash chain and its signatures, as pure functions: the hash of a row, the
//! Ed25519 key derived from a data key, the messages a checkpoint and the signed head cover, and
//! what a stored signature says. Reading and sealing rows is `service::audit`'s.

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::data::DataKeyring;
use crate::db::audit::{AuditRow, Checkpoint};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const SIGNING_INFO: &[u8] = b"imangor audit checkpoint key v1 (Ed25519 seed)";

/// The chain hash of a row: its predecessor's hash, its place, and every field, each length-prefixed.
pub fn chain_hash(prev: &str, seq: i64, r: &AuditRow) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"imangor-audit-v1\n");
    ctx.update(prev.as_bytes());
    ctx.update(format!("\n{seq}\n{}\n", r.at).as_bytes());
    for field in [
        Some(r.id.as_str()),
        Some(r.action.as_str()),
        Some(r.outcome.as_str()),
        Some(r.severity.as_str()),
        r.actor_id.as_deref(),
        r.target.as_deref(),
        r.ip.as_deref(),
        r.request_id.as_deref(),
        r.detail.as_deref(),
    ] {
        match field {
            Some(v) => {
                ctx.update(format!("{}:", v.len()).as_bytes());
                ctx.update(v.as_bytes());
                ctx.update(b"\n");
            }
            None => ctx.update(b"-\n"),
        }
    }
    crate::crypto::hex(ctx.finish().as_ref())
}

pub fn signer(keys: &DataKeyring, key_id: &str) -> Option<Ed25519KeyPair> {
    let seed = keys.derived(key_id, SIGNING_INFO)?;
    Ed25519KeyPair::from_seed_unchecked(&seed[..]).ok()
}

/// What a checkpoint's signature covers: its row, that row's hash, and when it was signed (so
/// that the age of the newest checkpoint, which says how long the tail after it has waited, cannot
/// be changed in the database).
pub fn signed_message(seq: i64, hash: &str, at: i64) -> Vec<u8> {
    format!("imangor audit checkpoint v2\n{seq}\n{hash}\n{at}").into_bytes()
}

/// Checkpoints signed before their time was covered (still verified; `at` is not covered).
pub fn signed_message_v1(seq: i64, hash: &str) -> Vec<u8> {
    format!("imangor audit checkpoint v1\n{seq}\n{hash}").into_bytes()
}

/// What the signed head's signature covers (a message no checkpoint signs).
pub fn head_message(seq: i64, hash: &str, at: i64) -> Vec<u8> {
    format!("imangor audit head v1\n{seq}\n{hash}\n{at}").into_bytes()
}

/// What a stored signature (a checkpoint's or the head's) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It verifies, over `messages[i]`.
    Holds(usize),
    Fails,
    /// Signed with a data key that is not in this keyring: it cannot be checked here.
    UnknownKey,
}

pub fn verdict(keys: &DataKeyring, key_id: &str, signature: &str, messages: &[&[u8]]) -> Verdict {
    let Some(key) = signer(keys, key_id) else {
        return Verdict::UnknownKey;
    };
    verdict_with(key.public_key().as_ref(), signature, messages)
}

/// What a stored signature says under a public key alone (an evidence bundle's, checked
/// without the data keys): `Holds(i)` over `messages[i]`, or `Fails`.
pub fn verdict_with(public: &[u8], signature: &str, messages: &[&[u8]]) -> Verdict {
    let Ok(sig) = URL_SAFE_NO_PAD.decode(signature) else {
        return Verdict::Fails;
    };
    let public = signature::UnparsedPublicKey::new(&signature::ED25519, public);
    messages
        .iter()
        .position(|m| public.verify(m, &sig).is_ok())
        .map_or(Verdict::Fails, Verdict::Holds)
}

/// The public half of the checkpoint key derived from data key `key_id` (32 bytes), if the
/// keyring holds it: what verifies its checkpoints anywhere, without the data key.
pub fn public_key(keys: &DataKeyring, key_id: &str) -> Option<Vec<u8>> {
    signer(keys, key_id).map(|k| k.public_key().as_ref().to_vec())
}

/// The checkpoint keys' public halves as a JSON Web Key Set (RFC 8037 `OKP`/`Ed25519`), one per
/// data key, the current first: `/.well-known/imangor-audit-keys` and every evidence bundle.
pub fn audit_keys_jwks(keys: &DataKeyring) -> serde_json::Value {
    let keys: Vec<serde_json::Value> = keys
        .ids()
        .filter_map(|id| {
            public_key(keys, id).map(|x| {
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(x),
                    "kid": id, "alg": "EdDSA", "use": "sig"})
            })
        })
        .collect();
    serde_json::json!({ "keys": keys })
}

/// What an evidence bundle's signature covers: the SHA-256 (hex) of its manifest (a message
/// neither a checkpoint nor the head signs).
pub fn bundle_message(manifest_sha256: &str) -> Vec<u8> {
    format!("imangor evidence bundle v1\n{manifest_sha256}").into_bytes()
}

/// A signature as stored: base64url, unpadded.
pub fn sign_with(key: &Ed25519KeyPair, message: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key.sign(message).as_ref())
}

/// A checkpoint's signature: `Holds(0)` over its row, hash and time (what the sealer signs since
/// the signed head, always with one), `Holds(1)` over its row and hash only (older checkpoints).
pub fn checkpoint_verdict(keys: &DataKeyring, c: &Checkpoint) -> Verdict {
    let (v2, v1) = (
        signed_message(c.seq, &c.hash, c.at),
        signed_message_v1(c.seq, &c.hash),
    );
    verdict(keys, &c.key_id, &c.signature, &[&v2, &v1])
}

pub fn head_signature_holds(keys: &DataKeyring, h: &Checkpoint) -> bool {
    let message = head_message(h.seq, &h.hash, h.at);
    matches!(
        verdict(keys, &h.key_id, &h.signature, &[&message]),
        Verdict::Holds(_)
    )
}

/// The first break in the chain.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Problem {
    /// Where the chain breaks.
    pub seq: i64,
    /// `edited`, `deleted`, `reordered` or `checkpoint`.
    pub kind: &'static str,
    pub message: String,
}

pub fn problem(seq: i64, kind: &'static str, message: String) -> Problem {
    Problem { seq, kind, message }
}
