//! Access tokens already verified, by their exact text: a client sends the same token with
//! every request for its lifetime, and its signature check and claims parse (about a third of
//! an authenticated read's instructions: docs/performance.md) need not run again.
//!
//! Only a token that passed every check goes in; a token is found only by a constant-time
//! comparison of its whole text with the one kept; a kept token past its expiry is checked in
//! full again (and refused), and so is one asked about at an earlier time than it was checked
//! at (a clock set back: `iat` and `nbf` hold from then on only). Revocation is not this cache's concern: the token's user and
//! session are looked up on every request after it (`auth::cache`, the database). The cache
//! belongs to one `TokenKeys`, whose keys never change: a new keyring comes with a new cache.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::RwLock;

/// Slots: a kept token goes in the slot a keyed hash (a seed drawn at start) of its last bytes
/// names, taking the place of the one there: no one can aim tokens of their own at another's
/// slot. About 700 bytes each when full.
const SLOTS: usize = 1024;

/// What a check of one token found (`V`: `token::Verified`), with its text and times.
struct Kept<V> {
    token: Box<str>,
    verified: V,
    /// When it was checked, and `exp`: Unix seconds.
    checked_at: i64,
    expires_at: i64,
}

pub(super) struct VerifiedTokens<V> {
    slots: Box<[RwLock<Option<Kept<V>>>]>,
    seed: RandomState,
}

impl<V: Clone> VerifiedTokens<V> {
    pub(super) fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| RwLock::new(None)).collect(),
            seed: RandomState::new(),
        }
    }

    fn slot(&self, token: &str) -> &RwLock<Option<Kept<V>>> {
        // The signature's last 16 characters (a MAC or a signature): 96 bits that differ from
        // one token to the next.
        let b = token.as_bytes();
        let hash = self.seed.hash_one(&b[b.len().saturating_sub(16)..]);
        &self.slots[(hash % SLOTS as u64) as usize]
    }

    /// The kept verification of exactly `token` at `now` (Unix seconds), unless it expired
    /// before `now - skew` or was checked after `now`.
    pub(super) fn get(&self, token: &str, now: i64, skew: i64) -> Option<V> {
        let slot = self.slot(token).read().ok()?;
        let kept = slot.as_ref()?;
        let same = kept.token.len() == token.len()
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                kept.token.as_bytes(),
                token.as_bytes(),
            )
            .is_ok();
        let current = kept.checked_at <= now && kept.expires_at >= now.saturating_sub(skew);
        (same && current).then(|| kept.verified.clone())
    }

    /// Keeps a token that passed every check at `now`, valid until `expires_at` (Unix seconds).
    pub(super) fn put(&self, token: &str, verified: &V, now: i64, expires_at: i64) {
        let kept = Kept {
            token: token.into(),
            verified: verified.clone(),
            checked_at: now,
            expires_at,
        };
        if let Ok(mut slot) = self.slot(token).write() {
            *slot = Some(kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a check found, reduced to a marker: the cache hands back what it was given.
    #[derive(Debug, Clone, PartialEq)]
    struct Found(&'static str);

    #[test]
    fn only_the_exact_text_kept_is_found_and_only_until_it_expires() {
        let cache = VerifiedTokens::new();
        let v = Found("alice's session");
        cache.put("aaa.bbb.0123456789abcdef", &v, 500, 1_000);
        let hit = cache
            .get("aaa.bbb.0123456789abcdef", 1_010, 10)
            .expect("kept");
        assert_eq!(hit, v);
        // Other text in the same slot (the same last 16 characters), and other lengths.
        assert!(cache.get("aaX.bbb.0123456789abcdef", 600, 10).is_none());
        assert!(cache.get("aa.bbb.0123456789abcdef", 600, 10).is_none());
        assert!(cache.get("aaaa.bbb.0123456789abcdef", 600, 10).is_none());
        assert!(
            cache.get("aaa.bbb.0123456789abcdef", 1_011, 10).is_none(),
            "expired: checked in full"
        );
        assert!(
            cache.get("aaa.bbb.0123456789abcdef", 499, 10).is_none(),
            "before it was checked: in full"
        );
    }

    #[test]
    fn a_token_takes_the_place_of_the_one_in_its_slot() {
        let cache = VerifiedTokens::new();
        // The same last 16 characters: the same slot.
        let (a, b) = ("first.x.0123456789abcdef", "other.y.0123456789abcdef");
        cache.put(a, &Found("a"), 0, 10);
        cache.put(b, &Found("b"), 0, 10);
        assert_eq!(cache.get(b, 0, 0), Some(Found("b")));
        assert!(cache.get(a, 0, 0).is_none(), "one token a slot");
        assert_eq!(cache.get("short", 0, 0), None::<Found>);
    }
}
