//! Access tokens: JWTs (RFC 9068 `typ: at+jwt`) signed with HS256 or EdDSA and named by `kid`.
//! A keyring: the first key signs, every key verifies (until it is retired), each with the one
//! algorithm pinned to it. Every claim is required, at most `JWT_LEEWAY_S` of clock skew is
//! allowed, and header members such as `jku`, `x5u` and `jwk` are never used to find a key (RFC 8725).

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::crypto::KeyBytes;
use crate::crypto::keyring::{Entry, derived_kid};
use crate::domain::client::Scopes;
use crate::domain::{ClientId, Role, SessionId, Timestamp, UserId};

/// Clock skew allowed when checking `exp`, `nbf` and `iat` (RFC 8725 advice: small and fixed).
pub const JWT_LEEWAY_S: u64 = 60;

/// The longest bearer token looked at; anything longer is refused before parsing.
pub const MAX_TOKEN_LEN: usize = 4096;
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The most members a JOSE header or claims set may have; more is refused unparsed. Ours carry
/// three and nine; the cap keeps the duplicate check linear in a token's length.
const MAX_MEMBERS: usize = 32;

/// Claims of an access token. `sid` names the session (refresh-token family) it was issued from.
/// A token issued to an OAuth client names it (`client_id`, RFC 9068 §2.2) and carries the
/// scopes it was narrowed to (`scope`); a password-grant token has neither and carries its
/// user's whole role. A client-credentials token's `sub` is the client itself.
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// How the user signed in (RFC 8176): `pwd`, and `mfa` after a second factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// When the user signed in (RFC 9470 `auth_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// A token whose signature and claims checked out; the user's state is checked by the caller.
#[derive(Debug, Clone)]
pub struct Verified {
    pub user: UserId,
    pub session: SessionId,
    pub jti: String,
    pub expires_at: Timestamp,
    pub issued_at: Timestamp,
    /// The client it was issued to (none: the password grant).
    pub client: Option<ClientId>,
    /// The scopes it is narrowed to (none: the user's whole role).
    pub scopes: Option<Scopes>,
    /// Its user signed in with a second factor (`mfa` in `amr`), and when (`auth_time`).
    pub mfa: bool,
    pub auth_time: Option<Timestamp>,
}

/// Whom an access token is issued to, and how far it reaches.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub user: UserId,
    pub role: Role,
    pub session: SessionId,
    pub client: Option<ClientId>,
    pub scopes: Option<Scopes>,
    /// How the user signed in: `None` for a client acting for itself (no user signed in).
    pub signed_in: Option<SignedInWith>,
}

/// How and when the user behind a token signed in.
#[derive(Debug, Clone, Copy)]
pub struct SignedInWith {
    pub method: crate::domain::SignInMethod,
    pub at: Timestamp,
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

impl TokenError {
    /// The reason as the request's log line names it.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed token",
            TokenError::Header => "unexpected header",
            TokenError::Signature => "bad signature",
            TokenError::Claims => "invalid claims",
            TokenError::Expired => "expired",
        }
    }
}

/// One key of the signing keyring, its algorithm pinned: a token is checked only with the
/// algorithm of the key its `kid` names (no HS/EdDSA confusion, RFC 8725 2.1).
struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    /// Prepared once: the HMAC key or the parsed public key that checks signatures.
    verifier: Verifier,
    /// The public half of an EdDSA key, base64url (the JWK `x`); none for HMAC keys.
    public_x: Option<String>,
}

/// What checks a signature made with one key.
enum Verifier {
    /// Boxed: the key holds its prepared inner and outer SHA-256 states (over a kilobyte).
    Hs256(Box<aws_lc_rs::hmac::Key>),
    EdDsa(aws_lc_rs::signature::ParsedPublicKey),
}

impl Verifier {
    /// The `alg` header value of tokens this key signs.
    fn alg(&self) -> &'static str {
        match self {
            Verifier::Hs256(_) => "HS256",
            Verifier::EdDsa(_) => "EdDSA",
        }
    }

    /// Checks `signature` over `message` (constant time for HMAC).
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Verifier::Hs256(key) => aws_lc_rs::hmac::verify(key, message, signature).is_ok(),
            Verifier::EdDsa(key) => key.verify_sig(message, signature).is_ok(),
        }
    }
}

/// The members of a JOSE header that `verify` reads; others are ignored, and never used to
/// find a key. Known members appearing twice are refused by serde, unknown ones by `unique_members`.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// The signing keyring: the first key signs, every key verifies until it is retired.
pub struct TokenKeys {
    keys: Vec<SigningKey>,
    issuer: String,
    audience: String,
    pub ttl_s: u64,
    /// Tokens these keys verified, kept by their text (`auth::verified`).
    verified: super::verified::VerifiedTokens<Verified>,
}

/// The algorithms a signing key may have.
pub const ALGORITHMS: [&str; 2] = ["HS256", "EdDSA"];

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
    /// The signing keyring this configuration names (in development, the one generated for it).
    pub fn configured(config: &Config) -> anyhow::Result<Self> {
        let (entries, _) = crate::crypto::configured::signing_keys(config)?;
        Self::new(
            &entries,
            "IMANGOR_JWT_KEYS",
            &config.jwt_issuer,
            &config.jwt_audience,
            config.access_token_ttl,
        )
    }

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
            let (alg, encoding, verifier, public_x) = match e.alg.as_deref() {
                Some("HS256") => {
                    crate::crypto::keyring::check_strength(var, &e.id, &e.key, 32)?;
                    (
                        Algorithm::HS256,
                        EncodingKey::from_secret(&e.key),
                        Verifier::Hs256(Box::new(aws_lc_rs::hmac::Key::new(
                            aws_lc_rs::hmac::HMAC_SHA256,
                            &e.key,
                        ))),
                        None,
                    )
                }
                Some("EdDSA") => {
                    let public = ed25519_public(&e.key)
                        .map_err(|err| anyhow::anyhow!("{var}: key {}: {err}", e.id))?;
                    let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
                        &aws_lc_rs::signature::ED25519,
                        &public,
                    )
                    .map_err(|err| anyhow::anyhow!("{var}: key {}: {err}", e.id))?;
                    (
                        Algorithm::EdDSA,
                        EncodingKey::from_ed_der(&e.key),
                        Verifier::EdDsa(parsed),
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
                verifier,
                public_x,
            });
        }
        anyhow::ensure!(!keys.is_empty(), "{var} holds no key");
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl_s,
            verified: super::verified::VerifiedTokens::new(),
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
            .map(|k| (k.kid.as_str(), k.verifier.alg()))
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
    pub fn issue(&self, to: &Subject, now: Timestamp) -> anyhow::Result<(String, String)> {
        let jti = crate::auth::random_token(16)?;
        let iat = now.unix_seconds();
        let claims = Claims {
            sub: to.user.to_string(),
            role: to.role.as_str().to_owned(),
            iat,
            exp: iat + self.ttl_s as i64,
            nbf: None,
            jti: jti.clone(),
            iss: self.issuer.clone(),
            aud: serde_json::Value::String(self.audience.clone()),
            sid: to.session.to_string(),
            client_id: to.client.map(|c| c.to_string()),
            scope: to.scopes.map(|s| s.to_string()),
            amr: to
                .signed_in
                .map(|s| s.method.amr().iter().map(|m| (*m).to_owned()).collect()),
            auth_time: to.signed_in.map(|s| s.at.unix_seconds()),
        };
        let key = &self.keys[0];
        let mut header = Header::new(key.alg);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(key.kid.clone());
        Ok((jsonwebtoken::encode(&header, &claims, &key.encoding)?, jti))
    }

    /// The issuer its tokens name (`iss`), which the OAuth metadata also names.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Checks structure, header, signature and claims of an access token (`check`), once per
    /// token: a token that passed is kept (`auth::verified`), and the same text is answered from
    /// there, until it expires.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Verified, TokenError> {
        let t = now.unix_seconds();
        if let Some(v) = self.verified.get(token, t, JWT_LEEWAY_S as i64) {
            return Ok(v);
        }
        let v = self.check(token, now)?;
        self.verified.put(token, &v, t, v.expires_at.unix_seconds());
        Ok(v)
    }

    /// Checks structure, header, signature and claims of an access token, in that order: the
    /// claims of a token whose signature fails are never parsed, so a forged token costs one
    /// header parse and one signature check.
    fn check(&self, token: &str, now: Timestamp) -> Result<Verified, TokenError> {
        let (h, p, s) = split_compact(token)?;
        let header = decode_part(h)?;
        let header: JoseHeader = serde_json::from_slice(&header).map_err(|_| TokenError::Header)?;
        // The key is chosen by an exact `kid` match among configured keys only (never a path,
        // URL or query), and its own algorithm is the only one accepted (RFC 8725 2.1, 3.1).
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.iter().find(|k| k.kid == kid))
            .ok_or(TokenError::Header)?;
        if header.alg != key.verifier.alg()
            || !header
                .typ
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE))
            || header.crit.is_some()
        {
            return Err(TokenError::Header);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        if !key.verifier.verify(signed, &signature) {
            return Err(TokenError::Signature);
        }
        let claims = decode_part(p)?;
        let c: Claims = serde_json::from_slice(&claims).map_err(|_| TokenError::Claims)?;
        let audience_matches = match &c.aud {
            serde_json::Value::String(a) => *a == self.audience,
            serde_json::Value::Array(all) => all.iter().any(|a| *a == *self.audience),
            _ => false,
        };
        if c.iss != self.issuer || !audience_matches {
            return Err(TokenError::Claims);
        }
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
        let client = c
            .client_id
            .map(|id| id.parse().map_err(|_| TokenError::Claims))
            .transpose()?;
        let scopes = c
            .scope
            .map(|s| Scopes::parse(&s).map_err(|_| TokenError::Claims))
            .transpose()?;
        Ok(Verified {
            user,
            session,
            jti: c.jti,
            expires_at: Timestamp::from_micros(c.exp.saturating_mul(1_000_000)),
            issued_at: Timestamp::from_micros(c.iat.saturating_mul(1_000_000)),
            client,
            scopes,
            mfa: c.amr.as_ref().is_some_and(|a| a.iter().any(|m| m == "mfa")),
            auth_time: c
                .auth_time
                .map(|t| Timestamp::from_micros(t.saturating_mul(1_000_000))),
        })
    }
}

/// The three parts of a compact JWS (header, payload, signature), each non-empty, of a token no
/// longer than `MAX_TOKEN_LEN`: what both imangor's tokens and a replaced stack's are checked on.
pub(super) fn split_compact(token: &str) -> Result<(&str, &str, &str), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.splitn(3, '.');
    let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    if h.is_empty() || p.is_empty() || s.is_empty() || s.contains('.') {
        return Err(TokenError::Malformed);
    }
    Ok((h, p, s))
}

/// One base64url part of a token, decoded, if it is a JSON object whose members have distinct
/// names (RFC 8725 3.7 / RFC 7515 4: duplicates are refused, not resolved one way or the other).
pub(super) fn decode_part(part: &str) -> Result<Vec<u8>, TokenError> {
    let json = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    if unique_members(&json) {
        Ok(json)
    } else {
        Err(TokenError::Malformed)
    }
}

/// True when `json` is an object of at most `MAX_MEMBERS` members, all with distinct names.
fn unique_members(json: &[u8]) -> bool {
    /// A member name, borrowed from the input unless it holds escapes.
    struct Name<'de>(Cow<'de, str>);
    impl<'de> Deserialize<'de> for Name<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Name<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a member name")
                }
                fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Name<'de>, E> {
                    Ok(Name(Cow::Borrowed(s)))
                }
                fn visit_str<E>(self, s: &str) -> Result<Name<'de>, E> {
                    Ok(Name(Cow::Owned(s.to_owned())))
                }
            }
            d.deserialize_str(V)
        }
    }
    struct Unique;
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen: Vec<Name<'de>> = Vec::new();
            while let Some(k) = map.next_key::<Name<'de>>()? {
                if seen.len() == MAX_MEMBERS || seen.iter().any(|s| s.0 == k.0) {
                    return Err(serde::de::Error::custom("duplicate or too many members"));
                }
                seen.push(k);
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

    fn plain(user: UserId, role: Role, session: SessionId) -> Subject {
        Subject {
            user,
            role,
            session,
            client: None,
            scopes: None,
            signed_in: None,
        }
    }
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
        let (t, jti) = k.issue(&plain(user, Role::User, session), now).unwrap();
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
            .issue(&plain(UserId::new(), Role::User, SessionId::new()), now)
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

    /// A token kept as verified answers only for its exact text: one changed in its claims
    /// (its signature, and so its cache slot, unchanged) is checked in full and refused, and the
    /// kept one is refused once expired or asked about before the time it was checked (RFC 8725
    /// 3.1: the signature of every token that is accepted holds).
    #[test]
    fn a_verified_token_answers_only_for_its_exact_text_and_its_time() {
        let k = keys();
        let now = Timestamp::now();
        let (t, _) = k
            .issue(&plain(UserId::new(), Role::User, SessionId::new()), now)
            .unwrap();
        assert!(k.verify(&t, now).is_ok());
        assert!(k.verify(&t, now.plus_seconds(60)).is_ok(), "kept");
        let (h, rest) = t.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        claims["role"] = "admin".into();
        let forged = format!(
            "{h}.{}.{s}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
        );
        assert_eq!(k.verify(&forged, now).unwrap_err(), TokenError::Signature);
        assert!(k.verify(&t, now).is_ok(), "the kept one still answers");
        assert_eq!(
            k.verify(&t, Timestamp::from_micros(now.micros() - 3_600_000_000))
                .unwrap_err(),
            TokenError::Claims,
            "issued in the future of a clock set back"
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
        let (t1, _) = old.issue(&plain(user, Role::User, session), now).unwrap();
        let both = ring(&[("k2", "HS256", 2), ("k1", "HS256", 1)]);
        assert!(
            both.verify(&t1, now).is_ok(),
            "the old key verifies during the overlap"
        );
        let (t2, _) = both.issue(&plain(user, Role::User, session), now).unwrap();
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
        let (t, _) = r.issue(&plain(user, Role::Admin, session), now).unwrap();
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
        assert!(
            !unique_members(br#"{"a\u006cg":1,"alg":2}"#),
            "an escaped name is the same name"
        );
    }

    #[test]
    fn a_part_with_more_members_than_the_cap_is_refused() {
        let object = |n: usize| {
            let members: Vec<String> = (0..n).map(|i| format!("\"m{i}\":0")).collect();
            format!("{{{}}}", members.join(","))
        };
        assert!(unique_members(object(MAX_MEMBERS).as_bytes()));
        assert!(!unique_members(object(MAX_MEMBERS + 1).as_bytes()));
    }
}
