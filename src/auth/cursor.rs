//! Page cursors: opaque, and MACed so that a client cannot forge or alter one. A cursor names a
//! position (the last id of a page), is bound to its list and its viewer, and grants nothing: the
//! rows a page shows are always filtered by the caller's scope.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::domain::UserId;

const TAG_LEN: usize = 16;

pub struct Cursors {
    key: hmac::Key,
}

impl Cursors {
    /// The cursor key is derived from the newest data key, so every replica reads every replica's
    /// cursors (rotating that key ends the cursors handed out before).
    pub fn derive(signing_key: &[u8]) -> Self {
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, signing_key),
            b"imangor page cursor key v1",
        );
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    fn tag(&self, list: &str, viewer: UserId, id: &uuid::Uuid) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(list.as_bytes());
        ctx.update(b"\0");
        ctx.update(viewer.as_uuid().as_bytes());
        ctx.update(id.as_bytes());
        ctx.sign()
    }

    pub fn encode(&self, list: &str, viewer: UserId, id: uuid::Uuid) -> String {
        let mut bytes = id.as_bytes().to_vec();
        bytes.extend_from_slice(&self.tag(list, viewer, &id).as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The id a cursor names, if this server made it for this list and this viewer.
    pub fn decode(&self, list: &str, viewer: UserId, cursor: &str) -> Option<uuid::Uuid> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if bytes.len() != 16 + TAG_LEN {
            return None;
        }
        let id = uuid::Uuid::from_slice(&bytes[..16]).ok()?;
        let tag = self.tag(list, viewer, &id);
        constant_time::verify_slices_are_equal(&tag.as_ref()[..TAG_LEN], &bytes[16..]).ok()?;
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering_and_other_viewers() {
        let c = Cursors::derive(b"k");
        let (me, other, id) = (UserId::new(), UserId::new(), uuid::Uuid::now_v7());
        let s = c.encode("resources", me, id);
        assert_eq!(c.decode("resources", me, &s), Some(id));
        assert_eq!(c.decode("resources", other, &s), None);
        assert_eq!(c.decode("users", me, &s), None);
        let mut b = URL_SAFE_NO_PAD.decode(&s).unwrap();
        b[3] ^= 1;
        assert_eq!(c.decode("resources", me, &URL_SAFE_NO_PAD.encode(&b)), None);
        assert_eq!(c.decode("resources", me, "!!"), None);
        assert_eq!(
            Cursors::derive(b"other key").decode("resources", me, &s),
            None
        );
    }
}
