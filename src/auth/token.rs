//! Access tokens: HS256 JWTs (RFC 9068 `typ: at+jwt`) with `kid`, verified with the algorithm
//! pinned to the key, every claim required, at most `JWT_LEEWAY_S` of clock skew, and header
//! members such as `jku`, `x5u` and `jwk` never used to find a key (RFC 8725).

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::{JWT_LEEWAY_S, KeyBytes};
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

/// The signing key and the claims put in and required of every token.
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    pub ttl_s: u64,
}

impl TokenKeys {
    pub fn hs256(secret: &KeyBytes, issuer: &str, audience: &str, ttl_s: u64) -> Self {
        let key = secret.expose_secret();
        // The key id reveals nothing about the key: a hash of it, truncated.
        let kid = format!(
            "hs-{}",
            &crate::auth::sha256_hex(&format!("imangor-kid:{}", URL_SAFE_NO_PAD.encode(key)))[..16]
        );
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        // Time claims are checked below against the caller's clock, with one leeway for all three.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
            .into_iter()
            .map(String::from)
            .collect::<HashSet<_>>();
        Self {
            kid,
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_s,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
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
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.kid.clone());
        Ok((jsonwebtoken::encode(&header, &claims, &self.encoding)?, jti))
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
        if header.alg != Algorithm::HS256
            || header
                .typ
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
                != Some(ACCESS_TOKEN_TYPE)
            || header.kid.as_deref() != Some(self.kid.as_str())
            || header.crit.is_some()
        {
            return Err(TokenError::Header);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
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

    #[test]
    fn duplicate_members_are_detected() {
        assert!(unique_members(br#"{"alg":"HS256","typ":"at+jwt"}"#));
        assert!(!unique_members(br#"{"alg":"HS256","alg":"none"}"#));
        assert!(!unique_members(b"[1]"));
    }
}
