//! The data keyring: authenticated encryption of sensitive values at rest (ASVS V11.3.2/V11.3.3).
//!
//! A value is sealed with AES-256-GCM under the newest key, with a random 96-bit nonce, into
//! `0x01 | id length | key id | nonce (12) | ciphertext | tag (16)`. The associated data binds the
//! ciphertext to its header and to the row it belongs to (the caller's `context`: owner and id),
//! so a ciphertext copied into another row fails to open instead of showing another user's value.
//! Every key of the ring opens what it sealed; a Fernet token (data imported from the Python
//! stack) opens with the raw key its row names.
//!
//! Each configured key is 32 random bytes. The AES key is derived from it (HKDF), so the same
//! bytes can also serve as a Fernet key without one key feeding two algorithms.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use zeroize::Zeroizing;

use super::keyring::{Entry, check_strength};
use super::{derive, fernet};

const FORMAT_V1: u8 = 0x01;
pub const KEY_LEN: usize = 32;
/// The keyring variable, named in errors.
pub const VAR: &str = "IMANGOR_DATA_KEYS";

struct DataKey {
    id: String,
    aead: RandomizedNonceKey,
    /// The configured bytes, kept only to read Fernet tokens; zeroed on drop.
    raw: Zeroizing<Vec<u8>>,
}

/// The keys that protect data: the first seals, all open. `Debug` shows ids only.
pub struct DataKeyring {
    keys: Vec<DataKey>,
    cursor_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DataKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.id))
            .finish()
    }
}

/// A sealed value and the id of the key that sealed it (kept in its own column for rotation).
#[derive(Debug, Clone)]
pub struct Ciphertext {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

/// Why a stored value did not open. Never shown to clients: they get a bare 500.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The row names a key that is not in the keyring (retired too early, or a wrong keyring).
    #[error("the value was sealed with key {0}, which is not in the keyring")]
    UnknownKey(String),
    /// Authentication failed: the ciphertext, its header or its row binding was changed.
    #[error("the value failed authentication (altered, or moved from another row)")]
    Tampered,
}

impl DataKeyring {
    pub fn new(entries: Vec<Entry>) -> anyhow::Result<Self> {
        let mut keys = Vec::with_capacity(entries.len());
        for e in entries {
            if e.key.len() != KEY_LEN {
                anyhow::bail!(
                    "{VAR}: key {} must be exactly {KEY_LEN} bytes, base64-encoded (it has {})",
                    e.id,
                    e.key.len()
                );
            }
            check_strength(VAR, &e.id, &e.key, KEY_LEN)?;
            let aes = derive::<32>(&e.key, b"imangor data key: AES-256-GCM");
            let aead = RandomizedNonceKey::new(&AES_256_GCM, &aes[..])
                .map_err(|_| anyhow::anyhow!("{VAR}: key {} was refused by AES-256-GCM", e.id))?;
            keys.push(DataKey {
                id: e.id,
                aead,
                raw: e.key,
            });
        }
        let first = keys
            .first()
            .ok_or_else(|| anyhow::anyhow!("{VAR} holds no key"))?;
        let cursor_key = derive::<32>(&first.raw, b"imangor page cursor key v2");
        Ok(Self { keys, cursor_key })
    }

    /// The id of the key that seals new values.
    pub fn current(&self) -> &str {
        &self.keys[0].id
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// 32 bytes for one use (`info`) derived from the key `id`, or `None` when it is not in the ring.
    pub fn derived(&self, id: &str, info: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .map(|k| derive::<32>(&k.raw, info))
    }

    /// A key for page cursors, derived from the newest data key (rotating it ends open cursors).
    pub fn cursor_key(&self) -> &[u8] {
        &self.cursor_key[..]
    }

    fn header(id: &str) -> Vec<u8> {
        let mut h = Vec::with_capacity(2 + id.len());
        h.push(FORMAT_V1);
        h.push(id.len() as u8);
        h.extend_from_slice(id.as_bytes());
        h
    }

    fn aad(header: &[u8], context: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(16 + header.len() + context.len());
        aad.extend_from_slice(b"imangor/data/v1\0");
        aad.extend_from_slice(header);
        aad.extend_from_slice(context);
        aad
    }

    /// Seals `plaintext` under the newest key, bound to `context` (what row it belongs to).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> anyhow::Result<Ciphertext> {
        let key = &self.keys[0];
        let header = Self::header(&key.id);
        let mut body = Zeroizing::new(plaintext.to_vec());
        let nonce = key
            .aead
            .seal_in_place_append_tag(Aad::from(Self::aad(&header, context)), &mut *body)
            .map_err(|_| anyhow::anyhow!("AES-256-GCM sealing failed"))?;
        let mut bytes = header;
        bytes.extend_from_slice(nonce.as_ref());
        bytes.extend_from_slice(&body);
        Ok(Ciphertext {
            key_id: key.id.clone(),
            bytes,
        })
    }

    /// Opens a stored value: `key_id` is the row's key column, `context` must be what sealing used.
    pub fn open(
        &self,
        key_id: &str,
        stored: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| OpenError::UnknownKey(key_id.to_owned()))?;
        if fernet::looks_like(stored) {
            return fernet::decrypt(&key.raw, stored).ok_or(OpenError::Tampered);
        }
        let header = Self::header(key_id);
        let rest = stored
            .strip_prefix(header.as_slice())
            .ok_or(OpenError::Tampered)?;
        if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(OpenError::Tampered);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Tampered)?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let len = key
            .aead
            .open_in_place(nonce, Aad::from(Self::aad(&header, context)), &mut buf)
            .map_err(|_| OpenError::Tampered)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::keyring::{encode_b64, parse};

    pub fn ring(spec: &[(&str, u8)]) -> DataKeyring {
        let text: Vec<String> = spec
            .iter()
            .map(|(id, seed)| {
                let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(7) ^ seed).collect();
                format!("{id}:{}", encode_b64(&key))
            })
            .collect();
        DataKeyring::new(parse(&text.join(","), VAR, false).unwrap()).unwrap()
    }

    #[test]
    fn sealed_values_open_only_in_their_own_row_v11_3_2() {
        let r = ring(&[("k1", 1)]);
        let c = r.seal(b"hunter2", b"row-a").unwrap();
        assert_eq!(c.key_id, "k1");
        assert!(!c.bytes.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(&r.open("k1", &c.bytes, b"row-a").unwrap()[..], b"hunter2");
        assert_eq!(r.open("k1", &c.bytes, b"row-b"), Err(OpenError::Tampered));
        for i in 0..c.bytes.len() {
            let mut b = c.bytes.clone();
            b[i] ^= 0x40;
            assert!(r.open("k1", &b, b"row-a").is_err(), "byte {i} flipped");
        }
        assert_eq!(
            r.open("k9", &c.bytes, b"row-a"),
            Err(OpenError::UnknownKey("k9".into()))
        );
    }

    #[test]
    fn the_newest_key_seals_and_every_key_opens_v11_2_2() {
        let old = ring(&[("k1", 1)]);
        let both = ring(&[("k2", 2), ("k1", 1)]);
        let c1 = old.seal(b"v", b"ctx").unwrap();
        let c2 = both.seal(b"v", b"ctx").unwrap();
        assert_eq!(c2.key_id, "k2");
        assert_eq!(&both.open("k1", &c1.bytes, b"ctx").unwrap()[..], b"v");
        assert!(old.open("k2", &c2.bytes, b"ctx").is_err());
        // The column and the header must agree: a relabelled row does not open.
        assert!(both.open("k2", &c1.bytes, b"ctx").is_err());
    }

    #[test]
    fn a_thousand_seals_of_one_value_use_a_thousand_nonces_v11_3_3() {
        let r = ring(&[("k1", 1)]);
        let mut nonces = std::collections::HashSet::new();
        for _ in 0..1000 {
            let c = r.seal(b"same value", b"ctx").unwrap();
            nonces.insert(c.bytes[4..4 + NONCE_LEN].to_vec());
        }
        assert_eq!(nonces.len(), 1000);
    }

    #[test]
    fn keys_must_be_32_strong_bytes_and_debug_shows_ids_only() {
        let short = format!("k:{}", encode_b64(&[1u8; 16]));
        assert!(DataKeyring::new(parse(&short, VAR, false).unwrap()).is_err());
        let weak = format!("k:{}", encode_b64(&[0u8; 32]));
        assert!(DataKeyring::new(parse(&weak, VAR, false).unwrap()).is_err());
        assert_eq!(format!("{:?}", ring(&[("k1", 1)])), "[\"k1\"]");
    }

    #[test]
    fn fernet_tokens_open_with_the_key_their_row_names() {
        let f: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/fernet.json")).unwrap();
        let r = DataKeyring::new(
            parse(
                &format!("legacy:{}", f["key"].as_str().unwrap()),
                VAR,
                false,
            )
            .unwrap(),
        )
        .unwrap();
        let out = r
            .open(
                "legacy",
                f["token"].as_str().unwrap().as_bytes(),
                b"any row",
            )
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            f["plaintext"].as_str().unwrap()
        );
    }
}
