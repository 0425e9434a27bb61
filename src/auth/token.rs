//! Access tokens: JWTs (RFC 9068 `typ: at+jwt`) signed with HS256 or EdDSA and named by `kid`.
//! A keyring: the first key signs, every key verifies (until it is retired), each with the one
//! algorithm pinned to it. Every claim is required, at most `JWT_LEEWAY_S` of clock skew is
//! allowed, and header members such as `jku`, `x5u` and `jwk` are never used to find a key (RFC 8725).

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{JWT_LEEWAY_S, KeyBytes};
use crate::crypto::keyring::Entry;
use crate::domain::{Role, SessionId, Timestamp, UserId};

/// The longest bearer token looked at; anything longer is refused before parsing.
pub const MAX_TOKEN_LEN: usize = 4096;
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Claims of an access token. `sid` names the session (refresh-token family) it was issued from.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    pub iss: String,
    pub aud: serde_json::Value,
    pub sid: String,
}

/// A token whose signature and claims checked out; the user's state is checked by the caller.
#[derive(Debug, Clone)]
pub struct Verified {
    pub user: UserId,
    pub session: SessionId,
    pub jti: String,
    pub expires_at: Timestamp,
}

/// Why a token was refused. Never shown to clients (they all get the same 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unexpected header")]
    Header,
    #[error("bad signature")]
    Signature,
    #[error("invalid claims")]
    Claims,
    #[error("expired")]
    Expired,
}

/// One key of the signing keyring, its algorithm pinned: a token is checked only with the
/// algorithm of the key its `kid` names (no HS/EdDSA confusion, RFC 8725 2.1).
struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// The public half of an EdDSA key, base64url (the JWK `x`); none for HMAC keys.
    public_x: Option<String>,
}

/// The signing keyring: the first key signs, every key verifies until it is retired.
pub struct TokenKeys {
    keys: Vec<SigningKey>,
    issuer: String,
    audience: String,
    pub ttl_s: u64,
}

/// The algorithms a signing key may have.
pub const ALGORITHMS: [&str; 2] = ["HS256", "EdDSA"];

/// The key id of a bare `IMANGOR_JWT_SECRET`: a hash of the key, which reveals nothing about it.
pub fn derived_kid(key: &[u8]) -> String {
    format!(
        "hs-{}",
        &crate::auth::sha256_hex(&format!("imangor-kid:{}", URL_SAFE_NO_PAD.encode(key)))[..16]
    )
}

/// The public key (32 bytes) of an Ed25519 private key in PKCS#8 DER, or why it is refused.
pub fn ed25519_public(pkcs8: &[u8]) -> anyhow::Result<Vec<u8>> {
    use aws_lc_rs::signature::KeyPair;
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8)
        .map_err(|_| anyhow::anyhow!("not an Ed25519 private key in PKCS#8 DER"))?;
    Ok(pair.public_key().as_ref().to_vec())
}

/// A new Ed25519 private key, PKCS#8 DER.
pub fn generate_ed25519() -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    let doc =
        aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("generating an Ed25519 key failed"))?;
    Ok(zeroize::Zeroizing::new(doc.as_ref().to_vec()))
}

impl TokenKeys {
    /// Builds the keyring from its entries (`KID:ALG:BASE64`, newest first); `var` names it in errors.
    pub fn new(
        entries: &[Entry],
        var: &str,
        issuer: &str,
        audience: &str,
        ttl_s: u64,
    ) -> anyhow::Result<Self> {
        let mut keys = Vec::with_capacity(entries.len());
        for e in entries {
            let (alg, encoding, decoding, public_x) = match e.alg.as_deref() {
                Some("HS256") => {
                    crate::crypto::keyring::check_strength(var, &e.id, &e.key, 32)?;
                    (
                        Algorithm::HS256,
                        EncodingKey::from_secret(&e.key),
                        DecodingKey::from_secret(&e.key),
                        None,
                    )
                }
                Some("EdDSA") => {
                    let public = ed25519_public(&e.key)
                        .map_err(|err| anyhow::anyhow!("{var}: key {}: {err}", e.id))?;
                    (
                        Algorithm::EdDSA,
                        EncodingKey::from_ed_der(&e.key),
                        DecodingKey::from_ed_der(&public),
                        Some(URL_SAFE_NO_PAD.encode(&public)),
                    )
                }
                other => anyhow::bail!(
                    "{var}: key {}: algorithm {:?} is not one of {}",
                    e.id,
                    other.unwrap_or(""),
                    ALGORITHMS.join(", ")
                ),
            };
            keys.push(SigningKey {
                kid: e.id.clone(),
                alg,
                encoding,
                decoding,
                validation: validation(alg, issuer, audience),
                public_x,
            });
        }
        anyhow::ensure!(!keys.is_empty(), "{var} holds no key");
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_s,
        })
    }

    /// A keyring of one HS256 key with a derived `kid` (a bare `IMANGOR_JWT_SECRET`).
    pub fn hs256(secret: &KeyBytes, issuer: &str, audience: &str, ttl_s: u64) -> Self {
        let key = secret.expose_secret();
        let entry = Entry {
            id: derived_kid(key),
            alg: Some("HS256".into()),
            key: zeroize::Zeroizing::new(key.clone()),
        };
        Self::new(&[entry], "IMANGOR_JWT_SECRET", issuer, audience, ttl_s)
            .expect("a checked HS256 secret makes a keyring")
    }

    /// The `kid` of the key that signs.
    pub fn kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// `(kid, algorithm)` of every key, the signing key first.
    pub fn describe(&self) -> Vec<(&str, &'static str)> {
        self.keys
            .iter()
            .map(|k| {
                (
                    k.kid.as_str(),
                    if k.alg == Algorithm::EdDSA {
                        "EdDSA"
                    } else {
                        "HS256"
                    },
                )
            })
            .collect()
    }

    /// The JSON Web Key Set of the public (EdDSA) keys, for `/.well-known/jwks.json` (RFC 7517).
    /// HMAC keys are secret and never published.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .filter_map(|k| {
                k.public_x.as_ref().map(|x| {
                    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": k.kid,
                        "alg": "EdDSA", "use": "sig"})
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Issues an access token; returns it with its `jti`.
    pub fn issue(
        &self,
        user: UserId,
        role: Role,
        session: SessionId,
        now: Timestamp,
    ) -> anyhow::Result<(String, String)> {
        let jti = crate::auth::random_token(16)?;
        let iat = now.unix_seconds();
        let claims = Claims {
            sub: user.to_string(),
            role: role.as_str().to_owned(),
            iat,
            exp: iat + self.ttl_s as i64,
            nbf: None,
            jti: jti.clone(),
            iss: self.issuer.clone(),
            aud: serde_json::Value::String(self.audience.clone()),
            sid: session.to_string(),
        };
        let key = &self.keys[0];
        let mut header = Header::new(key.alg);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(key.kid.clone());
        Ok((jsonwebtoken::encode(&header, &claims, &key.encoding)?, jti))
    }

    /// Checks structure, header, signature and claims of an access token.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Verified, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let parts: Vec<&str> = token.split('.').collect();
        let [h, p, s] = parts[..] else {
            return Err(TokenError::Malformed);
        };
        if h.is_empty() || p.is_empty() || s.is_empty() {
            return Err(TokenError::Malformed);
        }
        for part in [h, p] {
            let json = URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenError::Malformed)?;
            // RFC 8725 3.7 / RFC 7515 4: duplicate members are refused, not resolved one way or the other.
            if !unique_members(&json) {
                return Err(TokenError::Malformed);
            }
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Header)?;
        // The key is chosen by an exact `kid` match among configured keys only (never a path,
        // URL or query), and its own algorithm is the only one accepted.
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.iter().find(|k| k.kid == kid))
            .ok_or(TokenError::Header)?;
        if header.alg != key.alg
            || header
                .typ
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
                != Some(ACCESS_TOKEN_TYPE)
            || header.crit.is_some()
        {
            return Err(TokenError::Header);
        }
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.decoding, &key.validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature => TokenError::Signature,
                    K::ExpiredSignature | K::ImmatureSignature => TokenError::Expired,
                    _ => TokenError::Claims,
                }
            })?;
        let c = data.claims;
        let (t, skew) = (now.unix_seconds(), JWT_LEEWAY_S as i64);
        if c.exp < t - skew || c.nbf.is_some_and(|nbf| nbf > t + skew) {
            return Err(TokenError::Expired);
        }
        // `iat` is required and may not lie in the future beyond the allowed skew.
        if c.iat > t + skew || c.exp <= c.iat || c.jti.is_empty() || Role::parse(&c.role).is_none()
        {
            return Err(TokenError::Claims);
        }
        let user = c.sub.parse().map_err(|_| TokenError::Claims)?;
        let session = c.sid.parse().map_err(|_| TokenError::Claims)?;
        Ok(Verified {
            user,
            session,
            jti: c.jti,
            expires_at: Timestamp::from_micros(c.exp.saturating_mul(1_000_000)),
        })
    }
}

/// Claims every token must carry, checked against one algorithm. Time claims are checked in
/// `verify` against the caller's clock, with one leeway for all three.
fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    v.validate_exp = false;
    v.validate_nbf = false;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.required_spec_claims = ["exp", "iss", "aud", "sub"]
        .into_iter()
        .map(String::from)
        .collect::<HashSet<_>>();
    v
}

/// True when `json` is an object whose members all have distinct names.
fn unique_members(json: &[u8]) -> bool {
    struct Unique;
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(k) = map.next_key::<String>()? {
                if !seen.insert(k) {
                    return Err(serde::de::Error::custom("duplicate member"));
                }
                map.next_value::<serde::de::IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    serde::Deserializer::deserialize_map(&mut de, Unique).is_ok() && de.end().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretBox;

    fn keys() -> TokenKeys {
        TokenKeys::hs256(
            &SecretBox::new(Box::new(b"0123456789abcdefghijklmnopqrstuvwxyz".to_vec())),
            "imangor",
            "imangor-api",
            900,
        )
    }

    #[test]
    fn issued_tokens_verify_and_carry_typ_and_kid() {
        let k = keys();
        let (user, session, now) = (UserId::new(), SessionId::new(), Timestamp::now());
        let (t, jti) = k.issue(user, Role::User, session, now).unwrap();
        let v = k.verify(&t, now).unwrap();
        assert_eq!((v.user, v.session, v.jti), (user, session, jti));
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.typ.as_deref(), Some("at+jwt"));
        assert_eq!(h.kid.as_deref(), Some(k.kid()));
    }

    #[test]
    fn tokens_from_the_future_and_the_past_are_refused() {
        let k = keys();
        let now = Timestamp::now();
        let (t, _) = k
            .issue(UserId::new(), Role::User, SessionId::new(), now)
            .unwrap();
        assert!(
            k.verify(&t, now.plus_seconds(900 + JWT_LEEWAY_S - 1))
                .is_ok()
        );
        assert_eq!(
            k.verify(&t, now.plus_seconds(900 + JWT_LEEWAY_S + 2))
                .unwrap_err(),
            TokenError::Expired
        );
    }

    fn ring(spec: &[(&str, &str, u8)]) -> TokenKeys {
        let entries: Vec<Entry> = spec
            .iter()
            .map(|(kid, alg, seed)| Entry {
                id: kid.to_string(),
                alg: Some(alg.to_string()),
                key: zeroize::Zeroizing::new(if *alg == "EdDSA" {
                    generate_ed25519().unwrap().to_vec()
                } else {
                    (0..32u8).map(|i| i.wrapping_mul(31) ^ seed).collect()
                }),
            })
            .collect();
        TokenKeys::new(&entries, "TEST", "imangor", "imangor-api", 900).unwrap()
    }

    #[test]
    fn the_first_key_signs_every_key_verifies_and_a_retired_kid_is_refused_v11_2_2() {
        let (user, session, now) = (UserId::new(), SessionId::new(), Timestamp::now());
        let old = ring(&[("k1", "HS256", 1)]);
        let (t1, _) = old.issue(user, Role::User, session, now).unwrap();
        let both = ring(&[("k2", "HS256", 2), ("k1", "HS256", 1)]);
        assert!(
            both.verify(&t1, now).is_ok(),
            "the old key verifies during the overlap"
        );
        let (t2, _) = both.issue(user, Role::User, session, now).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&t2).unwrap().kid.as_deref(),
            Some("k2")
        );
        let retired = ring(&[("k2", "HS256", 2)]);
        assert_eq!(retired.verify(&t1, now).unwrap_err(), TokenError::Header);
        assert!(retired.verify(&t2, now).is_ok());
        // Same kid, other key material: the signature fails.
        let impostor = ring(&[("k1", "HS256", 9)]);
        assert_eq!(
            impostor.verify(&t1, now).unwrap_err(),
            TokenError::Signature
        );
    }

    #[test]
    fn eddsa_keys_sign_verify_and_are_published_without_their_private_part() {
        let (user, session, now) = (UserId::new(), SessionId::new(), Timestamp::now());
        let r = ring(&[("e1", "EdDSA", 0), ("h1", "HS256", 1)]);
        let (t, _) = r.issue(user, Role::Admin, session, now).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&t).unwrap().alg,
            Algorithm::EdDSA
        );
        assert!(r.verify(&t, now).is_ok());
        let jwks = r.jwks();
        assert_eq!(
            jwks["keys"].as_array().unwrap().len(),
            1,
            "HMAC keys are never published"
        );
        assert_eq!(jwks["keys"][0]["kid"], "e1");
        assert!(jwks["keys"][0].get("d").is_none());
        assert_eq!(r.describe(), vec![("e1", "EdDSA"), ("h1", "HS256")]);
        let bad = Entry {
            id: "x".into(),
            alg: Some("RS256".into()),
            key: zeroize::Zeroizing::new(vec![1; 32]),
        };
        assert!(TokenKeys::new(&[bad], "V", "i", "a", 1).is_err());
        let not_a_key = Entry {
            id: "x".into(),
            alg: Some("EdDSA".into()),
            key: zeroize::Zeroizing::new(vec![1; 48]),
        };
        assert!(TokenKeys::new(&[not_a_key], "V", "i", "a", 1).is_err());
    }

    #[test]
    fn duplicate_members_are_detected() {
        assert!(unique_members(br#"{"alg":"HS256","typ":"at+jwt"}"#));
        assert!(!unique_members(br#"{"alg":"HS256","alg":"none"}"#));
        assert!(!unique_members(b"[1]"));
    }
}
