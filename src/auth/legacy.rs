//! The access tokens of the Python stack imangor replaces (the guide's FastAPI service): HS256
//! JWTs signed with its `SECRET_KEY` by python-jose, header `{"alg":"HS256","typ":"JWT"}`, claims
//! `sub` (the old integer user id, as a string or a number) and `exp`, perhaps a `type`. While
//! `IMANGOR_LEGACY_JWT_SECRET` is set they are accepted for the accounts imported from that
//! stack, so that no one is logged out at cut-over. They are never issued nor refreshed here.
//!
//! Checked as strictly as imangor's own (RFC 8725): HS256 only (`none`, RS256 and the rest are
//! refused, 2.1, 3.1), every part a JSON object with distinct members (3.7), `exp` required and
//! allowed `JWT_LEEWAY_S` of skew like ours, a refresh token refused by its `type` (3.11), and
//! the claims of a token whose signature fails never parsed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::token::{JWT_LEEWAY_S, TokenError, decode_part, split_compact};
use crate::domain::{Timestamp, UserId};

/// How often one account's use of an old token is written to the audit trail, at most.
pub const AUDIT_EVERY: Duration = Duration::from_secs(3600);

/// The old stack's key, prepared once, and when each account's use was last recorded.
pub struct LegacyTokens {
    key: aws_lc_rs::hmac::Key,
    kid: String,
    recorded: Mutex<HashMap<UserId, Instant>>,
}

/// An old token whose signature and claims checked out: the old user id (decimal, as
/// `legacy_ids` keeps it) and its expiry. The account it maps to is looked up by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyVerified {
    pub source_id: String,
    pub expires_at: Timestamp,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Claims {
    sub: serde_json::Value,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
}

impl LegacyTokens {
    /// The verifier of tokens signed with `secret` (the old `SECRET_KEY`, as its bytes).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
            kid: crate::crypto::keyring::derived_kid(secret),
            recorded: Mutex::default(),
        }
    }

    /// The verifier `IMANGOR_LEGACY_JWT_SECRET` names, if it is set.
    pub fn configured(config: &crate::config::Config) -> Option<Self> {
        config
            .legacy_jwt_secret
            .as_ref()
            .map(|s| Self::new(s.expose().as_bytes()))
    }

    /// A name for the key that reveals nothing of it (`hs-` and 16 hex digits of a hash): what
    /// the key log records.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Checks structure, header, signature and claims, in that order.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<LegacyVerified, TokenError> {
        let (h, p, s) = split_compact(token)?;
        let header: Header =
            serde_json::from_slice(&decode_part(h)?).map_err(|_| TokenError::Header)?;
        // The one algorithm of this key; imangor's own `at+jwt` tokens are not looked at here.
        if header.alg != "HS256"
            || header.crit.is_some()
            || header
                .typ
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return Err(TokenError::Header);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        if aws_lc_rs::hmac::verify(&self.key, signed, &signature).is_err() {
            return Err(TokenError::Signature);
        }
        let c: Claims = serde_json::from_slice(&decode_part(p)?).map_err(|_| TokenError::Claims)?;
        let (t, skew) = (now.unix_seconds(), JWT_LEEWAY_S as i64);
        if c.exp < t - skew || c.nbf.is_some_and(|nbf| nbf > t + skew) {
            return Err(TokenError::Expired);
        }
        // Only access tokens: a refresh (or any other) token of the old stack is refused.
        let access = |k: &Option<String>| k.as_deref().is_none_or(|k| k == "access");
        if c.iat.is_some_and(|iat| iat > t + skew) || !access(&c.kind) || !access(&c.token_type) {
            return Err(TokenError::Claims);
        }
        let source_id = match &c.sub {
            serde_json::Value::String(s) => s.parse::<u64>().ok().filter(|_| {
                !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
            }),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        }
        .ok_or(TokenError::Claims)?;
        Ok(LegacyVerified {
            source_id: source_id.to_string(),
            expires_at: Timestamp::from_micros(c.exp.saturating_mul(1_000_000)),
        })
    }

    /// True when `user`'s use of an old token was not recorded within `AUDIT_EVERY`; notes
    /// that it is now. Holds at most one entry per imported account that used one.
    pub fn should_record(&self, user: UserId) -> bool {
        let now = Instant::now();
        let mut map = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&user) {
            Some(at) if now.duration_since(*at) < AUDIT_EVERY => false,
            _ => {
                map.insert(user, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"the-old-stack-secret-key-0123456789";

    fn sign(header: &str, claims: &str, key: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(claims);
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
        let tag = aws_lc_rs::hmac::sign(&k, format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    const JOSE: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn a_python_jose_access_token_verifies_with_a_string_or_number_sub() {
        let (keys, now) = (LegacyTokens::new(SECRET), Timestamp::now());
        let exp = now.unix_seconds() + 900;
        for claims in [
            format!(r#"{{"sub":"42","exp":{exp}}}"#),
            format!(r#"{{"sub":42,"exp":{exp},"type":"access","role":"admin"}}"#),
        ] {
            let v = keys.verify(&sign(JOSE, &claims, SECRET), now).unwrap();
            assert_eq!(v.source_id, "42");
        }
    }

    #[test]
    fn refresh_expired_unsigned_and_odd_tokens_are_refused_rfc8725_2_1_3_11() {
        let (keys, now) = (LegacyTokens::new(SECRET), Timestamp::now());
        let t = now.unix_seconds();
        let refused = |header: &str, claims: String, key: &[u8]| {
            keys.verify(&sign(header, &claims, key), now).unwrap_err()
        };
        let ok = format!(r#"{{"sub":"1","exp":{}}}"#, t + 900);
        assert_eq!(
            refused(JOSE, ok.clone(), b"another-secret-key-0123456789abcdef"),
            TokenError::Signature
        );
        assert_eq!(
            refused(r#"{"alg":"none","typ":"JWT"}"#, ok.clone(), SECRET),
            TokenError::Header
        );
        assert_eq!(
            refused(r#"{"alg":"HS512"}"#, ok.clone(), SECRET),
            TokenError::Header
        );
        assert_eq!(
            refused(r#"{"alg":"HS256","typ":"at+jwt"}"#, ok.clone(), SECRET),
            TokenError::Header
        );
        let claims = |c: &str| c.replace("EXP", &(t + 900).to_string());
        assert_eq!(
            refused(
                JOSE,
                claims(r#"{"sub":"1","exp":EXP,"type":"refresh"}"#),
                SECRET
            ),
            TokenError::Claims
        );
        assert_eq!(
            refused(JOSE, r#"{"sub":"1"}"#.into(), SECRET),
            TokenError::Claims
        );
        for sub in [r#""-1""#, r#""1a""#, r#""""#, "1.5", "null", r#""+1""#] {
            assert_eq!(
                refused(
                    JOSE,
                    claims(&format!(r#"{{"sub":{sub},"exp":EXP}}"#)),
                    SECRET
                ),
                TokenError::Claims,
                "{sub}"
            );
        }
        let past = format!(r#"{{"sub":"1","exp":{}}}"#, t - JWT_LEEWAY_S as i64 - 2);
        assert_eq!(refused(JOSE, past, SECRET), TokenError::Expired);
        let within = format!(r#"{{"sub":"1","exp":{}}}"#, t - JWT_LEEWAY_S as i64 + 5);
        assert!(keys.verify(&sign(JOSE, &within, SECRET), now).is_ok());
        // An unsigned token (alg none, empty signature) is malformed before anything else.
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let p = URL_SAFE_NO_PAD.encode(&ok);
        assert_eq!(
            keys.verify(&format!("{h}.{p}."), now).unwrap_err(),
            TokenError::Malformed
        );
    }

    #[test]
    fn each_account_is_recorded_once_per_window() {
        let keys = LegacyTokens::new(SECRET);
        let (a, b) = (UserId::new(), UserId::new());
        assert!(keys.should_record(a));
        assert!(!keys.should_record(a));
        assert!(keys.should_record(b));
    }
}
