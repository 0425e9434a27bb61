//! A WebAuthn Level 2 relying-party verifier (passkeys), small and strict, on aws-lc-rs.
//!
//! [`verify_registration`] checks what `navigator.credentials.create()` returned (§7.1) and
//! [`verify_assertion`] what `navigator.credentials.get()` returned (§7.2). The caller keeps the
//! challenge (one use, [`CHALLENGE_LEN`] random bytes), looks the credential up by its id, checks
//! the user handle, and stores what a registration returns.
//!
//! Supported: attestation `none` and `packed` self-attestation; credential keys ES256 (P-256),
//! EdDSA (Ed25519) and RS256 (RSA PKCS#1 v1.5, 2048 to 8192 bits). The server asks browsers for
//! attestation `"none"`, so attestation certificates (`x5c`) and the other formats (tpm,
//! android-key, android-safetynet, fido-u2f, apple) are refused with
//! [`Error::UnsupportedAttestation`]: nothing here would judge an attestation CA. Refused as
//! well: cross-origin ceremonies, any origin but the one configured, token binding is ignored.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::cbor::{self, Item, Value};

/// The relying party: its id (a registrable domain, e.g. `localhost`) and the one origin its
/// pages are served from (e.g. `http://localhost:8123`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    pub id: String,
    pub origin: String,
}

/// Bytes of a challenge (256 bits; WebAuthn asks for at least 16 bytes, ASVS V6.7.2 for 64 bits).
pub const CHALLENGE_LEN: usize = 32;
/// The shortest expected challenge accepted (WebAuthn §13.4.3: at least 16 bytes).
const MIN_CHALLENGE_LEN: usize = 16;

/// COSE algorithm identifiers (IANA "COSE Algorithms").
pub const ES256: i64 = -7;
pub const EDDSA: i64 = -8;
pub const RS256: i64 = -257;
/// The algorithms accepted, in order of preference for `pubKeyCredParams`.
pub const ALGORITHMS: [i64; 3] = [ES256, EDDSA, RS256];

/// The longest credential id accepted (WebAuthn Level 3 §7.1 caps it at 1023 bytes).
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

/// Why a ceremony was refused. Each message is safe to show the client: it names the rule
/// broken, never a key, a challenge or the bytes received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the client data is for another kind of ceremony")]
    WrongType,
    #[error("the challenge is not the one issued")]
    WrongChallenge,
    #[error("the origin is not this site")]
    WrongOrigin,
    #[error("cross-origin ceremonies are not accepted")]
    CrossOrigin,
    #[error("the authenticator data is for another relying party")]
    WrongRpId,
    #[error("the authenticator did not test user presence")]
    NoUserPresence,
    #[error("the authenticator did not verify the user")]
    NoUserVerification,
    #[error("the credential's algorithm is not supported")]
    UnsupportedAlgorithm,
    #[error("the attestation format is not supported (attestation \"none\" is asked for)")]
    UnsupportedAttestation,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the signature counter went back: the credential may be cloned")]
    CounterWentBack,
    #[error("the credential's backup eligibility changed")]
    BackupEligibilityChanged,
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

impl From<cbor::Error> for Error {
    fn from(e: cbor::Error) -> Self {
        Error::Malformed(e.0)
    }
}

/// A verified registration: what to store for the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub credential_id: Vec<u8>,
    /// The COSE_Key exactly as the authenticator encoded it; [`verify_assertion`] reads it back.
    pub public_key: Vec<u8>,
    /// The COSE algorithm, one of [`ALGORITHMS`].
    pub alg: i64,
    pub sign_count: u32,
    pub user_verified: bool,
    pub backup_eligible: bool,
    pub backed_up: bool,
    /// The authenticator model (all zero under attestation "none" from most browsers).
    pub aaguid: [u8; 16],
}

/// A stored credential, as [`Registration`] gave it and later assertions updated it.
#[derive(Debug, Clone, Copy)]
pub struct StoredCredential<'a> {
    /// The COSE_Key bytes.
    pub public_key: &'a [u8],
    pub sign_count: u32,
    pub backup_eligible: bool,
}

/// A verified assertion: the caller stores the new count and backup state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assertion {
    pub sign_count: u32,
    pub user_verified: bool,
    pub backed_up: bool,
}

/// base64url without padding (how WebAuthn JSON carries bytes).
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The bytes of base64url without padding; padding, the standard alphabet and non-zero trailing
/// bits are refused.
pub fn unb64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// A fresh challenge from the operating system's CSPRNG.
pub fn new_challenge() -> anyhow::Result<[u8; CHALLENGE_LEN]> {
    let mut c = [0u8; CHALLENGE_LEN];
    aws_lc_rs::rand::fill(&mut c)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(c)
}

/// Verifies a `navigator.credentials.create()` result (WebAuthn Level 2 §7.1): the parts are the
/// bytes of `response.clientDataJSON` and `response.attestationObject`, already base64url-decoded.
/// `challenge` is the one issued for this ceremony.
///
/// Attestation: `none` (an empty statement) or `packed` self-attestation (no `x5c`); anything else
/// is [`Error::UnsupportedAttestation`], as the server asks for attestation `"none"`.
pub fn verify_registration(
    rp: &RelyingParty,
    challenge: &[u8],
    client_data_json: &[u8],
    attestation_object: &[u8],
    require_user_verification: bool,
) -> Result<Registration, Error> {
    check_client_data(rp, "webauthn.create", challenge, client_data_json)?;
    let client_data_hash = digest(&SHA256, client_data_json);

    let object = cbor::decode_exact(attestation_object)?;
    let entries = object
        .as_map()
        .ok_or(Error::Malformed("the attestation object is not a map"))?;
    if entries.len() != 3 {
        return Err(Error::Malformed(
            "the attestation object holds other than fmt, attStmt and authData",
        ));
    }
    let fmt = object
        .get_text("fmt")
        .and_then(Item::as_text)
        .ok_or(Error::Malformed("fmt"))?;
    let statement = object
        .get_text("attStmt")
        .filter(|s| s.as_map().is_some())
        .ok_or(Error::Malformed("attStmt"))?;
    let auth_data_bytes = object
        .get_text("authData")
        .and_then(Item::as_bytes)
        .ok_or(Error::Malformed("authData"))?;

    let auth_data = AuthData::parse(auth_data_bytes)?;
    auth_data.check(rp, require_user_verification)?;
    let attested = auth_data.attested.ok_or(Error::Malformed(
        "no attested credential data in a registration",
    ))?;
    let key = CoseKey::parse(attested.public_key)?;

    match fmt {
        "none" => {
            if statement.as_map().is_some_and(|m| !m.is_empty()) {
                return Err(Error::Malformed("attestation none with a statement"));
            }
        }
        "packed" => {
            if statement.get_text("x5c").is_some() || statement.get_text("ecdaaKeyId").is_some() {
                return Err(Error::UnsupportedAttestation);
            }
            let alg = statement
                .get_text("alg")
                .and_then(Item::as_int)
                .ok_or(Error::Malformed("packed attestation without alg"))?;
            let sig = statement
                .get_text("sig")
                .and_then(Item::as_bytes)
                .ok_or(Error::Malformed("packed attestation without sig"))?;
            if statement.as_map().map(<[_]>::len) != Some(2) {
                return Err(Error::Malformed("packed attestation with other members"));
            }
            // Self-attestation: signed with the credential's own key, under its algorithm.
            if alg != i128::from(key.alg) {
                return Err(Error::Malformed(
                    "packed attestation alg differs from the credential's",
                ));
            }
            let signed = [auth_data_bytes, client_data_hash.as_ref()].concat();
            key.verify(&signed, sig)?;
        }
        _ => return Err(Error::UnsupportedAttestation),
    }

    Ok(Registration {
        credential_id: attested.credential_id.to_vec(),
        public_key: attested.public_key.to_vec(),
        alg: key.alg,
        sign_count: auth_data.sign_count,
        user_verified: auth_data.flags & UV != 0,
        backup_eligible: auth_data.flags & BE != 0,
        backed_up: auth_data.flags & BS != 0,
        aaguid: attested.aaguid,
    })
}

/// Verifies a `navigator.credentials.get()` result (WebAuthn Level 2 §7.2) against the stored
/// credential the caller found by the returned credential id: the parts are the bytes of
/// `response.clientDataJSON`, `response.authenticatorData` and `response.signature`.
///
/// The signature counter must grow unless it has always been zero ([`Error::CounterWentBack`]
/// hints at a cloned authenticator), and backup eligibility never changes.
pub fn verify_assertion(
    rp: &RelyingParty,
    challenge: &[u8],
    stored: &StoredCredential,
    client_data_json: &[u8],
    authenticator_data: &[u8],
    signature: &[u8],
    require_user_verification: bool,
) -> Result<Assertion, Error> {
    check_client_data(rp, "webauthn.get", challenge, client_data_json)?;
    let auth_data = AuthData::parse(authenticator_data)?;
    if auth_data.attested.is_some() {
        return Err(Error::Malformed("attested credential data in an assertion"));
    }
    auth_data.check(rp, require_user_verification)?;

    let key =
        CoseKey::parse(stored.public_key).map_err(|_| Error::Malformed("the stored public key"))?;
    let client_data_hash = digest(&SHA256, client_data_json);
    let signed = [authenticator_data, client_data_hash.as_ref()].concat();
    key.verify(&signed, signature)?;

    // Only signed data is judged from here on.
    if (auth_data.flags & BE != 0) != stored.backup_eligible {
        return Err(Error::BackupEligibilityChanged);
    }
    if (auth_data.sign_count != 0 || stored.sign_count != 0)
        && auth_data.sign_count <= stored.sign_count
    {
        return Err(Error::CounterWentBack);
    }
    Ok(Assertion {
        sign_count: auth_data.sign_count,
        user_verified: auth_data.flags & UV != 0,
        backed_up: auth_data.flags & BS != 0,
    })
}

/// The members of `CollectedClientData` read here; others (tokenBinding, topOrigin, those a
/// browser adds) are ignored. A member given twice is refused by serde.
#[derive(serde::Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
}

/// §7.1 steps 5-10, §7.2 steps 9-14: type, challenge, origin, not cross-origin.
fn check_client_data(
    rp: &RelyingParty,
    kind: &str,
    expected_challenge: &[u8],
    client_data_json: &[u8],
) -> Result<(), Error> {
    let data: ClientData =
        serde_json::from_slice(client_data_json).map_err(|_| Error::Malformed("clientDataJSON"))?;
    if data.kind != kind {
        return Err(Error::WrongType);
    }
    let presented = unb64url(&data.challenge).ok_or(Error::WrongChallenge)?;
    if expected_challenge.len() < MIN_CHALLENGE_LEN
        || verify_slices_are_equal(&presented, expected_challenge).is_err()
    {
        return Err(Error::WrongChallenge);
    }
    if data.origin != rp.origin {
        return Err(Error::WrongOrigin);
    }
    if data.cross_origin == Some(true) {
        return Err(Error::CrossOrigin);
    }
    Ok(())
}

// Authenticator data flags (WebAuthn §6.1).
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;
const ED: u8 = 0x80;

struct AuthData<'a> {
    rp_id_hash: &'a [u8],
    flags: u8,
    sign_count: u32,
    attested: Option<Attested<'a>>,
}

struct Attested<'a> {
    aaguid: [u8; 16],
    credential_id: &'a [u8],
    /// The COSE_Key's exact bytes.
    public_key: &'a [u8],
}

impl<'a> AuthData<'a> {
    /// §6.1: rpIdHash (32), flags (1), signCount (4, big-endian), then attested credential data
    /// when AT is set and an extensions map when ED is set; nothing else may follow.
    fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        const TRUNCATED: Error = Error::Malformed("authenticator data truncated");
        if bytes.len() < 37 {
            return Err(TRUNCATED);
        }
        let (rp_id_hash, flags) = (&bytes[..32], bytes[32]);
        let sign_count = u32::from_be_bytes(bytes[33..37].try_into().expect("4 bytes"));
        let mut rest = &bytes[37..];
        let attested = if flags & AT != 0 {
            if rest.len() < 18 {
                return Err(TRUNCATED);
            }
            let aaguid: [u8; 16] = rest[..16].try_into().expect("16 bytes");
            let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            rest = &rest[18..];
            if id_len == 0 || id_len > MAX_CREDENTIAL_ID_LEN {
                return Err(Error::Malformed("credential id length"));
            }
            if rest.len() < id_len {
                return Err(TRUNCATED);
            }
            let (credential_id, after) = rest.split_at(id_len);
            let (key, after) = cbor::decode(after)?;
            rest = after;
            Some(Attested {
                aaguid,
                credential_id,
                public_key: key.raw,
            })
        } else {
            None
        };
        if flags & ED != 0 {
            let (extensions, after) = cbor::decode(rest)?;
            if extensions.as_map().is_none() {
                return Err(Error::Malformed("extensions are not a map"));
            }
            rest = after;
        }
        if !rest.is_empty() {
            return Err(Error::Malformed(
                "trailing bytes after the authenticator data",
            ));
        }
        if flags & BS != 0 && flags & BE == 0 {
            return Err(Error::Malformed("backed up but not backup eligible"));
        }
        Ok(AuthData {
            rp_id_hash,
            flags,
            sign_count,
            attested,
        })
    }

    /// The rpIdHash, then user presence and, when asked, user verification.
    fn check(&self, rp: &RelyingParty, require_user_verification: bool) -> Result<(), Error> {
        let expected = digest(&SHA256, rp.id.as_bytes());
        if verify_slices_are_equal(self.rp_id_hash, expected.as_ref()).is_err() {
            return Err(Error::WrongRpId);
        }
        if self.flags & UP == 0 {
            return Err(Error::NoUserPresence);
        }
        if require_user_verification && self.flags & UV == 0 {
            return Err(Error::NoUserVerification);
        }
        Ok(())
    }
}

/// A credential public key read from its COSE_Key (RFC 9053 §7), parsed (the point checked to be
/// on its curve) by aws-lc.
struct CoseKey {
    alg: i64,
    key: ParsedPublicKey,
}

// COSE_Key labels and values (RFC 9052 §7.1, RFC 9053 §7.1-7.2, RFC 8230 §4).
const KTY: i128 = 1;
const ALG: i128 = 3;
const KTY_OKP: i128 = 1;
const KTY_EC2: i128 = 2;
const KTY_RSA: i128 = 3;
const CRV_P256: i128 = 1;
const CRV_ED25519: i128 = 6;

impl CoseKey {
    /// Exactly one COSE_Key map with the labels its key type needs and no others (a private
    /// part, `d`, is refused with the rest).
    fn parse(bytes: &[u8]) -> Result<Self, Error> {
        const BAD: Error = Error::Malformed("COSE key");
        let map = cbor::decode_exact(bytes)?;
        let entries = map.as_map().ok_or(BAD)?;
        let int = |label: i128| map.get_int(label).and_then(Item::as_int);
        let bytes_at = |label: i128| map.get_int(label).and_then(Item::as_bytes);
        let kty = int(KTY).ok_or(BAD)?;
        let alg = int(ALG).ok_or(Error::Malformed("COSE key without alg"))?;
        let labels: &[i128] = match kty {
            KTY_EC2 => &[KTY, ALG, -1, -2, -3],
            KTY_OKP => &[KTY, ALG, -1, -2],
            KTY_RSA => &[KTY, ALG, -1, -2],
            _ => return Err(Error::UnsupportedAlgorithm),
        };
        if entries.len() != labels.len()
            || entries
                .iter()
                .any(|(k, _)| !matches!(k.value, Value::Int(l) if labels.contains(&l)))
        {
            return Err(BAD);
        }
        let rejected = |_| Error::Malformed("the public key is not valid");
        let (alg, key) = match (kty, alg) {
            (KTY_EC2, a) if a == i128::from(ES256) => {
                if int(-1) != Some(CRV_P256) {
                    return Err(Error::UnsupportedAlgorithm);
                }
                let (x, y) = (bytes_at(-2).ok_or(BAD)?, bytes_at(-3).ok_or(BAD)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(BAD);
                }
                let point = [&[0x04][..], x, y].concat();
                let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point).map_err(rejected)?;
                (ES256, key)
            }
            (KTY_OKP, a) if a == i128::from(EDDSA) => {
                if int(-1) != Some(CRV_ED25519) {
                    return Err(Error::UnsupportedAlgorithm);
                }
                let x = bytes_at(-2).ok_or(BAD)?;
                if x.len() != 32 {
                    return Err(BAD);
                }
                (EDDSA, ParsedPublicKey::new(&ED25519, x).map_err(rejected)?)
            }
            (KTY_RSA, a) if a == i128::from(RS256) => {
                let n = strip_zeros(bytes_at(-1).ok_or(BAD)?);
                let e = strip_zeros(bytes_at(-2).ok_or(BAD)?);
                // 2048 to 8192 bits, what RSA_PKCS1_2048_8192_SHA256 verifies.
                if !(256..=1024).contains(&n.len()) {
                    return Err(Error::UnsupportedAlgorithm);
                }
                // An odd exponent of at least 3 and at most 32 bits (e = 1 signs nothing).
                let exponent = match e.len() {
                    1..=4 => e.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)),
                    _ => 0,
                };
                if exponent < 3 || exponent % 2 == 0 {
                    return Err(BAD);
                }
                let key = RsaPublicKeyComponents { n, e }
                    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                    .map_err(rejected)?;
                (RS256, key)
            }
            _ => return Err(Error::UnsupportedAlgorithm),
        };
        Ok(CoseKey { alg, key })
    }

    /// ES256 signatures are ASN.1 DER (WebAuthn §6.5.6), EdDSA raw, RS256 PKCS#1 v1.5.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        self.key
            .verify_sig(message, signature)
            .map_err(|_| Error::BadSignature)
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

#[cfg(test)]
mod tests {
    //! Credentials made here with aws-lc-rs, CBOR written by the test encoder. Test names carry
    //! the ASVS id they prove, where one applies: V6.3.3 (phishing resistance: origin and RP id
    //! bound; a user-initiated action: user presence), V6.7.2 (the challenge nonce).

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
        RsaKeyPair,
    };

    use super::cbor::test_encoder::{array, bytes, head, int, map, text};
    use super::*;

    const CHALLENGE: [u8; CHALLENGE_LEN] = [7; CHALLENGE_LEN];
    const CRED_ID: &[u8] = b"credential-id-0123456789";
    const AAGUID: [u8; 16] = *b"aaguid-of-a-test";

    fn rp() -> RelyingParty {
        RelyingParty {
            id: "localhost".into(),
            origin: "http://localhost:8123".into(),
        }
    }

    enum TestKey {
        Ec(EcdsaKeyPair),
        Ed(Ed25519KeyPair),
        Rsa(Box<RsaKeyPair>),
    }

    impl TestKey {
        fn es256() -> Self {
            TestKey::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap())
        }
        fn eddsa() -> Self {
            TestKey::Ed(Ed25519KeyPair::generate().unwrap())
        }
        fn rs256() -> Self {
            TestKey::Rsa(Box::new(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()))
        }
        fn alg(&self) -> i64 {
            match self {
                TestKey::Ec(_) => ES256,
                TestKey::Ed(_) => EDDSA,
                TestKey::Rsa(_) => RS256,
            }
        }
        fn cose(&self) -> Vec<u8> {
            match self {
                TestKey::Ec(k) => {
                    let p = k.public_key().as_ref();
                    ec2_cose(&p[1..33], &p[33..65])
                }
                TestKey::Ed(k) => map(&[
                    (int(1), int(1)),
                    (int(3), int(EDDSA)),
                    (int(-1), int(6)),
                    (int(-2), bytes(k.public_key().as_ref())),
                ]),
                TestKey::Rsa(k) => {
                    let c = RsaPublicKeyComponents::<Vec<u8>>::from(k.public_key());
                    rsa_cose(&c.n, &c.e)
                }
            }
        }
        fn sign(&self, message: &[u8]) -> Vec<u8> {
            match self {
                TestKey::Ec(k) => k
                    .sign(&SystemRandom::new(), message)
                    .unwrap()
                    .as_ref()
                    .to_vec(),
                TestKey::Ed(k) => k.sign(message).as_ref().to_vec(),
                TestKey::Rsa(k) => {
                    let mut sig = vec![0; k.public_modulus_len()];
                    k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                        .unwrap();
                    sig
                }
            }
        }
    }

    fn ec2_cose(x: &[u8], y: &[u8]) -> Vec<u8> {
        map(&[
            (int(1), int(2)),
            (int(3), int(ES256)),
            (int(-1), int(1)),
            (int(-2), bytes(x)),
            (int(-3), bytes(y)),
        ])
    }

    fn rsa_cose(n: &[u8], e: &[u8]) -> Vec<u8> {
        map(&[
            (int(1), int(3)),
            (int(3), int(RS256)),
            (int(-1), bytes(n)),
            (int(-2), bytes(e)),
        ])
    }

    fn client_data(kind: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "type": kind, "challenge": b64url(challenge), "origin": origin, "crossOrigin": false,
        }))
        .unwrap()
    }

    /// Authenticator data for `rp_id`; `attested` is (credential id, COSE key) and sets AT.
    fn auth_data(rp_id: &str, flags: u8, count: u32, attested: Option<(&[u8], &[u8])>) -> Vec<u8> {
        let mut out = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
        out.push(flags | if attested.is_some() { AT } else { 0 });
        out.extend_from_slice(&count.to_be_bytes());
        if let Some((id, key)) = attested {
            out.extend_from_slice(&AAGUID);
            out.extend_from_slice(&(id.len() as u16).to_be_bytes());
            out.extend_from_slice(id);
            out.extend_from_slice(key);
        }
        out
    }

    fn attestation_object(fmt: &str, statement: Vec<u8>, auth_data: &[u8]) -> Vec<u8> {
        map(&[
            (text("fmt"), text(fmt)),
            (text("attStmt"), statement),
            (text("authData"), bytes(auth_data)),
        ])
    }

    fn none_object(auth_data: &[u8]) -> Vec<u8> {
        attestation_object("none", map(&[]), auth_data)
    }

    /// A packed self-attestation statement signed by `key` over `auth_data` and `client_data`.
    fn packed_statement(key: &TestKey, alg: i64, auth_data: &[u8], client_data: &[u8]) -> Vec<u8> {
        let signed = [auth_data, digest(&SHA256, client_data).as_ref()].concat();
        map(&[
            (text("alg"), int(alg)),
            (text("sig"), bytes(&key.sign(&signed))),
        ])
    }

    fn create_data() -> Vec<u8> {
        client_data("webauthn.create", &CHALLENGE, &rp().origin)
    }

    fn get_data() -> Vec<u8> {
        client_data("webauthn.get", &CHALLENGE, &rp().origin)
    }

    fn register(client_data: &[u8], object: &[u8]) -> Result<Registration, Error> {
        verify_registration(&rp(), &CHALLENGE, client_data, object, false)
    }

    /// Registers `key` with attestation none and the given flags.
    fn registration(key: &TestKey, flags: u8) -> Registration {
        let cose = key.cose();
        let data = auth_data("localhost", flags, 0, Some((CRED_ID, &cose)));
        register(&create_data(), &none_object(&data)).unwrap()
    }

    /// An assertion by `key`: (authenticator data, signature) over `client_data`.
    fn signed(
        key: &TestKey,
        rp_id: &str,
        flags: u8,
        count: u32,
        client_data: &[u8],
    ) -> (Vec<u8>, Vec<u8>) {
        let data = auth_data(rp_id, flags, count, None);
        let sig = key.sign(&[&data[..], digest(&SHA256, client_data).as_ref()].concat());
        (data, sig)
    }

    fn assert_as(
        stored: &StoredCredential,
        client_data: &[u8],
        data: &[u8],
        sig: &[u8],
    ) -> Result<Assertion, Error> {
        verify_assertion(&rp(), &CHALLENGE, stored, client_data, data, sig, false)
    }

    fn stored(reg: &Registration) -> StoredCredential<'_> {
        StoredCredential {
            public_key: &reg.public_key,
            sign_count: reg.sign_count,
            backup_eligible: reg.backup_eligible,
        }
    }

    /// An attestation object (format none) registering `key` for `rp_id`.
    fn created(key: &TestKey, rp_id: &str, flags: u8) -> Vec<u8> {
        none_object(&auth_data(rp_id, flags, 0, Some((CRED_ID, &key.cose()))))
    }

    /// An assertion by `key` for `rp_id` over `client_data`, verified against `reg`.
    fn got(
        key: &TestKey,
        reg: &Registration,
        rp_id: &str,
        flags: u8,
        count: u32,
        client_data: &[u8],
    ) -> Result<Assertion, Error> {
        let (data, sig) = signed(key, rp_id, flags, count, client_data);
        assert_as(&stored(reg), client_data, &data, &sig)
    }

    fn round_trip(key: &TestKey) {
        let cose = key.cose();
        let data = auth_data("localhost", UP | UV | BE | BS, 3, Some((CRED_ID, &cose)));
        let reg = verify_registration(&rp(), &CHALLENGE, &create_data(), &none_object(&data), true)
            .unwrap();
        assert_eq!(reg.credential_id, CRED_ID);
        assert_eq!(reg.public_key, cose, "the COSE key is kept byte for byte");
        assert_eq!(reg.alg, key.alg());
        assert_eq!(reg.sign_count, 3);
        assert!(reg.user_verified && reg.backup_eligible && reg.backed_up);
        assert_eq!(reg.aaguid, AAGUID);

        let (data, sig) = signed(key, "localhost", UP | UV | BE, 4, &get_data());
        let a = verify_assertion(
            &rp(),
            &CHALLENGE,
            &stored(&reg),
            &get_data(),
            &data,
            &sig,
            true,
        )
        .unwrap();
        assert_eq!(
            a,
            Assertion {
                sign_count: 4,
                user_verified: true,
                backed_up: false
            }
        );
    }

    #[test]
    fn webauthn_es256_registers_and_asserts() {
        round_trip(&TestKey::es256());
    }

    #[test]
    fn webauthn_eddsa_registers_and_asserts() {
        round_trip(&TestKey::eddsa());
    }

    #[test]
    fn webauthn_rs256_registers_and_asserts() {
        round_trip(&TestKey::rs256());
    }

    #[test]
    fn webauthn_packed_self_attestation_is_verified_with_the_credential_key() {
        for key in [TestKey::es256(), TestKey::eddsa()] {
            let cose = key.cose();
            let data = auth_data("localhost", UP, 0, Some((CRED_ID, &cose)));
            let good = packed_statement(&key, key.alg(), &data, &create_data());
            let reg = register(&create_data(), &attestation_object("packed", good, &data)).unwrap();
            assert_eq!(reg.alg, key.alg());

            // Signed by another key of the same kind.
            let other = match key {
                TestKey::Ec(_) => TestKey::es256(),
                _ => TestKey::eddsa(),
            };
            let forged = packed_statement(&other, key.alg(), &data, &create_data());
            assert_eq!(
                register(&create_data(), &attestation_object("packed", forged, &data)),
                Err(Error::BadSignature)
            );
            // Signed over other client data.
            let stale = packed_statement(&key, key.alg(), &data, &get_data());
            assert_eq!(
                register(&create_data(), &attestation_object("packed", stale, &data)),
                Err(Error::BadSignature)
            );
            // An alg other than the credential's.
            let wrong_alg = packed_statement(&key, RS256, &data, &create_data());
            assert!(matches!(
                register(
                    &create_data(),
                    &attestation_object("packed", wrong_alg, &data)
                ),
                Err(Error::Malformed(_))
            ));
        }
    }

    #[test]
    fn webauthn_attestation_with_certificates_or_other_formats_is_unsupported() {
        let key = TestKey::es256();
        let cose = key.cose();
        let data = auth_data("localhost", UP, 0, Some((CRED_ID, &cose)));
        let signed = [&data[..], digest(&SHA256, &create_data()).as_ref()].concat();
        let x5c = map(&[
            (text("alg"), int(ES256)),
            (text("sig"), bytes(&key.sign(&signed))),
            (text("x5c"), array(&[bytes(b"not a certificate")])),
        ]);
        assert_eq!(
            register(&create_data(), &attestation_object("packed", x5c, &data)),
            Err(Error::UnsupportedAttestation)
        );
        for fmt in [
            "fido-u2f",
            "tpm",
            "android-key",
            "android-safetynet",
            "apple",
            "None",
            "",
        ] {
            assert_eq!(
                register(&create_data(), &attestation_object(fmt, map(&[]), &data)),
                Err(Error::UnsupportedAttestation),
                "{fmt}"
            );
        }
        // "none" carries an empty statement, nothing else.
        let statement = map(&[(text("sig"), bytes(b"x"))]);
        assert!(matches!(
            register(
                &create_data(),
                &attestation_object("none", statement, &data)
            ),
            Err(Error::Malformed(_))
        ));
        // The attestation object holds fmt, attStmt and authData, nothing else.
        let extra = map(&[
            (text("fmt"), text("none")),
            (text("attStmt"), map(&[])),
            (text("authData"), bytes(&data)),
            (text("epAtt"), vec![0xf5]),
        ]);
        assert!(matches!(
            register(&create_data(), &extra),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn webauthn_v6_7_2_only_the_issued_challenge_of_at_least_16_bytes_is_accepted() {
        let key = TestKey::es256();
        let object = created(&key, "localhost", UP);
        let mut other = CHALLENGE;
        other[31] ^= 1;
        let wrong = client_data("webauthn.create", &other, &rp().origin);
        assert_eq!(register(&wrong, &object), Err(Error::WrongChallenge));
        let shorter = client_data("webauthn.create", &CHALLENGE[..31], &rp().origin);
        assert_eq!(register(&shorter, &object), Err(Error::WrongChallenge));
        // Padding or the standard alphabet in the echoed challenge.
        for challenge in [format!("{}=", b64url(&CHALLENGE)), "+/+/".repeat(11)] {
            let cd = serde_json::to_vec(&serde_json::json!({
                "type": "webauthn.create", "challenge": challenge, "origin": rp().origin,
            }))
            .unwrap();
            assert_eq!(register(&cd, &object), Err(Error::WrongChallenge));
        }
        // An expected challenge under 16 bytes is refused even when echoed.
        let short = [9u8; 15];
        let echoed = client_data("webauthn.create", &short, &rp().origin);
        assert_eq!(
            verify_registration(&rp(), &short, &echoed, &object, false),
            Err(Error::WrongChallenge)
        );
        assert_eq!(new_challenge().unwrap().len() * 8, 256);
        assert_ne!(new_challenge().unwrap(), new_challenge().unwrap());

        let reg = registration(&key, UP);
        let wrong = client_data("webauthn.get", &other, &rp().origin);
        assert_eq!(
            got(&key, &reg, "localhost", UP, 0, &wrong),
            Err(Error::WrongChallenge)
        );
    }

    #[test]
    fn webauthn_v6_3_3_another_origin_or_a_cross_origin_frame_is_refused() {
        let key = TestKey::es256();
        let object = created(&key, "localhost", UP);
        for origin in [
            "http://localhost:8124",
            "https://localhost:8123",
            "http://localhost:8123/",
            "http://evil.localhost:8123",
            "HTTP://LOCALHOST:8123",
            "",
        ] {
            let cd = client_data("webauthn.create", &CHALLENGE, origin);
            assert_eq!(register(&cd, &object), Err(Error::WrongOrigin), "{origin}");
        }
        let cross = serde_json::to_vec(&serde_json::json!({
            "type": "webauthn.create", "challenge": b64url(&CHALLENGE), "origin": rp().origin,
            "crossOrigin": true, "topOrigin": "https://evil.example",
        }))
        .unwrap();
        assert_eq!(register(&cross, &object), Err(Error::CrossOrigin));

        let reg = registration(&key, UP);
        let phished = client_data("webauthn.get", &CHALLENGE, "https://imangor.evil.example");
        assert_eq!(
            got(&key, &reg, "localhost", UP, 0, &phished),
            Err(Error::WrongOrigin)
        );
    }

    #[test]
    fn webauthn_v6_3_3_a_credential_for_another_rp_id_is_refused() {
        let key = TestKey::es256();
        let object = created(&key, "evil.example", UP);
        assert_eq!(register(&create_data(), &object), Err(Error::WrongRpId));

        let reg = registration(&key, UP);
        assert_eq!(
            got(&key, &reg, "localhost.evil.example", UP, 0, &get_data()),
            Err(Error::WrongRpId)
        );
    }

    #[test]
    fn webauthn_client_data_of_the_other_ceremony_or_malformed_is_refused() {
        let key = TestKey::es256();
        let object = created(&key, "localhost", UP);
        assert_eq!(register(&get_data(), &object), Err(Error::WrongType));
        let reg = registration(&key, UP);
        assert_eq!(
            got(&key, &reg, "localhost", UP, 0, &create_data()),
            Err(Error::WrongType)
        );

        let challenge = b64url(&CHALLENGE);
        for cd in [
            b"not json".to_vec(),
            b"{}".to_vec(),
            format!(r#"{{"type":"webauthn.create","type":"webauthn.create","challenge":"{challenge}","origin":"http://localhost:8123"}}"#).into_bytes(),
            format!(r#"{{"type":"webauthn.create","challenge":"{challenge}","origin":["http://localhost:8123"]}}"#).into_bytes(),
            format!(r#"{{"type":"webauthn.create","challenge":"{challenge}","origin":"http://localhost:8123","crossOrigin":"false"}}"#).into_bytes(),
        ] {
            assert!(matches!(register(&cd, &object), Err(Error::Malformed(_))), "{}", String::from_utf8_lossy(&cd));
        }
        // Members a browser adds, and token binding, are ignored.
        let extra = format!(
            r#"{{"type":"webauthn.create","challenge":"{challenge}","origin":"http://localhost:8123","other_keys_can_be_added_here":"x","tokenBinding":{{"status":"present","id":"AA"}}}}"#
        );
        assert!(register(extra.as_bytes(), &object).is_ok());
    }

    #[test]
    fn webauthn_v6_3_3_user_presence_is_required() {
        let key = TestKey::es256();
        let object = created(&key, "localhost", UV);
        assert_eq!(
            register(&create_data(), &object),
            Err(Error::NoUserPresence)
        );
        let reg = registration(&key, UP);
        assert_eq!(
            got(&key, &reg, "localhost", UV, 0, &get_data()),
            Err(Error::NoUserPresence)
        );
    }

    #[test]
    fn webauthn_user_verification_is_required_only_when_asked() {
        let key = TestKey::es256();
        let object = created(&key, "localhost", UP);
        assert_eq!(
            verify_registration(&rp(), &CHALLENGE, &create_data(), &object, true),
            Err(Error::NoUserVerification)
        );
        let reg = register(&create_data(), &object).unwrap();
        assert!(!reg.user_verified);
        let (data, sig) = signed(&key, "localhost", UP, 0, &get_data());
        assert_eq!(
            verify_assertion(
                &rp(),
                &CHALLENGE,
                &stored(&reg),
                &get_data(),
                &data,
                &sig,
                true
            ),
            Err(Error::NoUserVerification)
        );
        assert!(
            !assert_as(&stored(&reg), &get_data(), &data, &sig)
                .unwrap()
                .user_verified
        );
    }

    #[test]
    fn webauthn_a_counter_that_does_not_grow_is_refused() {
        let key = TestKey::eddsa();
        let reg = registration(&key, UP);
        let at = |stored_count: u32, new_count: u32| {
            let (data, sig) = signed(&key, "localhost", UP, new_count, &get_data());
            let s = StoredCredential {
                sign_count: stored_count,
                ..stored(&reg)
            };
            assert_as(&s, &get_data(), &data, &sig).map(|a| a.sign_count)
        };
        assert_eq!(at(0, 0), Ok(0), "an authenticator without a counter");
        assert_eq!(at(0, 1), Ok(1));
        assert_eq!(at(5, 6), Ok(6));
        assert_eq!(at(5, u32::MAX), Ok(u32::MAX));
        assert_eq!(at(5, 5), Err(Error::CounterWentBack));
        assert_eq!(at(5, 4), Err(Error::CounterWentBack));
        assert_eq!(at(5, 0), Err(Error::CounterWentBack));
    }

    #[test]
    fn webauthn_backup_eligibility_never_changes_and_backup_needs_eligibility() {
        let key = TestKey::es256();
        let eligible = registration(&key, UP | BE);
        let not_eligible = registration(&key, UP);
        assert_eq!(
            got(&key, &eligible, "localhost", UP, 1, &get_data()),
            Err(Error::BackupEligibilityChanged)
        );
        assert_eq!(
            got(
                &key,
                &not_eligible,
                "localhost",
                UP | BE | BS,
                1,
                &get_data()
            ),
            Err(Error::BackupEligibilityChanged)
        );
        let backed_up = got(&key, &eligible, "localhost", UP | BE | BS, 1, &get_data());
        assert!(backed_up.unwrap().backed_up);

        // BS without BE is malformed, in both ceremonies.
        let object = created(&key, "localhost", UP | BS);
        assert!(matches!(
            register(&create_data(), &object),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            got(&key, &not_eligible, "localhost", UP | BS, 1, &get_data()),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn webauthn_a_bad_signature_is_refused() {
        for (key, other) in [
            (TestKey::es256(), TestKey::es256()),
            (TestKey::eddsa(), TestKey::eddsa()),
        ] {
            let reg = registration(&key, UP);
            // Another key's signature.
            assert_eq!(
                got(&other, &reg, "localhost", UP, 1, &get_data()),
                Err(Error::BadSignature)
            );
            // Signed data changed afterwards: the counter, the flags, the client data.
            let (mut data, sig) = signed(&key, "localhost", UP, 1, &get_data());
            data[36] = 2;
            assert_eq!(
                assert_as(&stored(&reg), &get_data(), &data, &sig),
                Err(Error::BadSignature)
            );
            let (mut data, sig) = signed(&key, "localhost", UP, 1, &get_data());
            data[32] |= UV;
            assert_eq!(
                assert_as(&stored(&reg), &get_data(), &data, &sig),
                Err(Error::BadSignature)
            );
            let (data, sig) = signed(&key, "localhost", UP, 1, &get_data());
            let mut cd = get_data();
            cd.extend_from_slice(b" ");
            assert_eq!(
                assert_as(&stored(&reg), &cd, &data, &sig),
                Err(Error::BadSignature)
            );
            // Empty, truncated or flipped signatures.
            let mut flipped = sig.clone();
            flipped[10] ^= 1;
            for bad in [&[][..], &sig[..sig.len() - 1], &flipped] {
                assert_eq!(
                    assert_as(&stored(&reg), &get_data(), &data, bad),
                    Err(Error::BadSignature)
                );
            }
        }
        // An ES256 signature under an EdDSA credential.
        let (ed, ec) = (TestKey::eddsa(), TestKey::es256());
        let reg = registration(&ed, UP);
        assert_eq!(
            got(&ec, &reg, "localhost", UP, 1, &get_data()),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn webauthn_authenticator_data_truncated_or_with_trailing_bytes_is_refused() {
        let key = TestKey::es256();
        let cose = key.cose();
        let data = auth_data("localhost", UP, 0, Some((CRED_ID, &cose)));
        for len in 0..data.len() {
            assert!(
                matches!(
                    register(&create_data(), &none_object(&data[..len])),
                    Err(Error::Malformed(_))
                ),
                "truncated at {len}"
            );
        }
        let trailing = [&data[..], &[0]].concat();
        assert!(matches!(
            register(&create_data(), &none_object(&trailing)),
            Err(Error::Malformed(_))
        ));
        // The attestation object itself with a byte after it.
        let object = [none_object(&data), vec![0]].concat();
        assert!(matches!(
            register(&create_data(), &object),
            Err(Error::Malformed(_))
        ));

        // Extensions: a map when ED is set, nothing else after it.
        let extensions = map(&[(text("credProtect"), int(2))]);
        let mut with_ed = [&data[..], &extensions].concat();
        with_ed[32] |= ED;
        assert!(register(&create_data(), &none_object(&with_ed)).is_ok());
        let junk = [&with_ed[..], &[0]].concat();
        assert!(matches!(
            register(&create_data(), &none_object(&junk)),
            Err(Error::Malformed(_))
        ));
        let mut ed_without = data.clone();
        ed_without[32] |= ED;
        assert!(matches!(
            register(&create_data(), &none_object(&ed_without)),
            Err(Error::Malformed(_))
        ));
        let mut not_a_map = [&data[..], &int(1)].concat();
        not_a_map[32] |= ED;
        assert!(matches!(
            register(&create_data(), &none_object(&not_a_map)),
            Err(Error::Malformed(_))
        ));

        // An assertion: 37 bytes exactly, or extensions with ED; no attested credential data.
        let reg = registration(&key, UP);
        for bad in [
            auth_data("localhost", UP, 1, None)[..36].to_vec(),
            [auth_data("localhost", UP, 1, None), vec![0]].concat(),
            auth_data("localhost", UP, 1, Some((CRED_ID, &cose))),
        ] {
            let sig = key.sign(&[&bad[..], digest(&SHA256, &get_data()).as_ref()].concat());
            assert!(matches!(
                assert_as(&stored(&reg), &get_data(), &bad, &sig),
                Err(Error::Malformed(_))
            ));
        }
        let mut with_ed = [auth_data("localhost", UP, 1, None), extensions].concat();
        with_ed[32] |= ED;
        let sig = key.sign(&[&with_ed[..], digest(&SHA256, &get_data()).as_ref()].concat());
        assert!(assert_as(&stored(&reg), &get_data(), &with_ed, &sig).is_ok());
    }

    #[test]
    fn webauthn_credential_ids_of_1_to_1023_bytes_are_accepted() {
        let key = TestKey::eddsa();
        let cose = key.cose();
        for (len, ok) in [(0, false), (1, true), (1023, true), (1024, false)] {
            let id = vec![0xab; len];
            let object = none_object(&auth_data("localhost", UP, 0, Some((&id, &cose))));
            assert_eq!(register(&create_data(), &object).is_ok(), ok, "{len}");
        }
        // A length claim beyond the data.
        let mut data = auth_data("localhost", UP, 0, Some((CRED_ID, &cose)));
        data[53..55].copy_from_slice(&1000u16.to_be_bytes());
        assert!(matches!(
            register(&create_data(), &none_object(&data)),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn webauthn_malformed_cbor_is_refused() {
        let key = TestKey::es256();
        let cose = key.cose();
        let data = auth_data("localhost", UP, 0, Some((CRED_ID, &cose)));
        // An indefinite-length attestation object.
        let mut indefinite = vec![0xbf];
        indefinite.extend_from_slice(&none_object(&data)[1..]);
        indefinite.push(0xff);
        assert_eq!(
            register(&create_data(), &indefinite),
            Err(Error::Malformed("indefinite length"))
        );
        // Extensions nested beyond the limit.
        let mut deep = int(0);
        for _ in 0..cbor::MAX_DEPTH {
            deep = map(&[(int(1), deep)]);
        }
        let mut too_deep = [&data[..], &deep].concat();
        too_deep[32] |= ED;
        assert_eq!(
            register(&create_data(), &none_object(&too_deep)),
            Err(Error::Malformed("nested too deeply"))
        );
        // A COSE key claiming a 4 GiB coordinate; an attestation object claiming 2^64 entries.
        let huge = [
            head(5, 5),
            int(1),
            int(2),
            int(3),
            int(ES256),
            int(-1),
            int(1),
            int(-2),
            head(2, u32::MAX.into()),
        ]
        .concat();
        let object = none_object(&auth_data("localhost", UP, 0, Some((CRED_ID, &huge))));
        assert_eq!(
            register(&create_data(), &object),
            Err(Error::Malformed("length beyond the input"))
        );
        let object = [head(5, u64::MAX), vec![0; 16]].concat();
        assert_eq!(
            register(&create_data(), &object),
            Err(Error::Malformed("length beyond the input"))
        );
        // Not a map, or members of the wrong type.
        for object in [
            array(&[]),
            attestation_object("none", array(&[]), &data),
            map(&[
                (text("fmt"), int(1)),
                (text("attStmt"), map(&[])),
                (text("authData"), bytes(&data)),
            ]),
            map(&[
                (text("fmt"), text("none")),
                (text("attStmt"), map(&[])),
                (text("authData"), text("x")),
            ]),
        ] {
            assert!(matches!(
                register(&create_data(), &object),
                Err(Error::Malformed(_))
            ));
        }
    }

    #[test]
    fn webauthn_cose_keys_are_checked_at_registration() {
        let reg_with = |cose: &[u8]| {
            let object = none_object(&auth_data("localhost", UP, 0, Some((CRED_ID, cose))));
            register(&create_data(), &object)
        };
        let k = TestKey::es256();
        let TestKey::Ec(pair) = &k else {
            unreachable!()
        };
        let p = pair.public_key().as_ref();
        let (x, y) = (&p[1..33], &p[33..65]);
        let mut off_curve = y.to_vec();
        off_curve[31] ^= 1;
        let refused = |r: Result<Registration, Error>, what: &str| {
            assert!(
                matches!(r, Err(Error::Malformed(_) | Error::UnsupportedAlgorithm)),
                "{what}: {r:?}"
            );
        };
        assert!(reg_with(&ec2_cose(x, y)).is_ok());
        assert_eq!(
            reg_with(&ec2_cose(x, &off_curve)),
            Err(Error::Malformed("the public key is not valid")),
            "a point off the curve"
        );
        refused(reg_with(&ec2_cose(&x[1..], y)), "a short coordinate");
        let cose_map = |entries: &[(i64, Vec<u8>)]| {
            map(&entries
                .iter()
                .map(|(l, v)| (int(*l), v.clone()))
                .collect::<Vec<_>>())
        };
        let ec2 = |alg: i64, crv: i64, y: Vec<u8>| {
            vec![
                (1, int(2)),
                (3, int(alg)),
                (-1, int(crv)),
                (-2, bytes(x)),
                (-3, y),
            ]
        };
        let mut no_alg = ec2(ES256, 1, bytes(y));
        no_alg.remove(1);
        let mut private = ec2(ES256, 1, bytes(y));
        private.push((-4, bytes(&[1; 32])));
        let ed = TestKey::eddsa();
        let TestKey::Ed(pair) = &ed else {
            unreachable!()
        };
        let okp = |alg: i64, crv: i64| {
            let x = bytes(pair.public_key().as_ref());
            vec![(1, int(1)), (3, int(alg)), (-1, int(crv)), (-2, x)]
        };
        for (what, entries) in [
            ("no alg", no_alg),
            ("alg of another key type", ec2(EDDSA, 1, bytes(y))),
            ("ES384", ec2(-35, 2, bytes(y))),
            ("P-384 curve", ec2(ES256, 2, bytes(y))),
            ("a compressed point", ec2(ES256, 1, vec![0xf5])),
            ("a private part", private),
            (
                "a symmetric key",
                vec![(1, int(4)), (3, int(ES256)), (-1, bytes(&[1; 32]))],
            ),
            ("Ed448 curve", okp(EDDSA, 7)),
            ("OKP with ES256", okp(ES256, 6)),
        ] {
            refused(reg_with(&cose_map(&entries)), what);
        }
        assert!(reg_with(&cose_map(&okp(EDDSA, 6))).is_ok());

        // RSA under 2048 bits.
        refused(reg_with(&rsa_cose(&[0xc5; 128], &[1, 0, 1])), "RSA-1024");
        let rsa = TestKey::rs256();
        let TestKey::Rsa(pair) = &rsa else {
            unreachable!()
        };
        let n = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key()).n;
        assert!(reg_with(&rsa_cose(&n, &[1, 0, 1])).is_ok());
        for e in [&[][..], &[1], &[2], &[1, 0, 0], &[1, 0, 0, 0, 1]] {
            refused(reg_with(&rsa_cose(&n, e)), &format!("exponent {e:?}"));
        }
    }

    #[test]
    fn webauthn_flipping_any_bit_of_a_registration_never_panics() {
        let key = TestKey::es256();
        let cose = key.cose();
        let data = auth_data("localhost", UP | BE, 0, Some((CRED_ID, &cose)));
        let statement = packed_statement(&key, ES256, &data, &create_data());
        let object = attestation_object("packed", statement, &data);
        let mut accepted = 0;
        for i in 0..object.len() * 8 {
            let mut bad = object.clone();
            bad[i / 8] ^= 1 << (i % 8);
            accepted += usize::from(register(&create_data(), &bad).is_ok());
        }
        // Everything is signed, fixed by the format, or checked: no single flip gets through.
        assert_eq!(accepted, 0, "{accepted} flips accepted");
        let reg = registration(&key, UP);
        let (data, sig) = signed(&key, "localhost", UP, 1, &get_data());
        for i in 0..data.len() * 8 {
            let mut bad = data.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(assert_as(&stored(&reg), &get_data(), &bad, &sig).is_err());
        }
    }

    #[test]
    fn webauthn_base64url_is_unpadded_and_strict() {
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(unb64url("-_8"), Some(vec![0xfb, 0xff]));
        for bad in ["-_8=", "+/8", "-_9", "a", "a b", "-_8\n"] {
            assert_eq!(unb64url(bad), None, "{bad:?}");
        }
        assert_eq!(unb64url(""), Some(vec![]));
    }

    #[test]
    fn webauthn_algorithms_are_listed_in_order_of_preference() {
        assert_eq!(ALGORITHMS, [-7, -8, -257]);
        assert_eq!(CHALLENGE_LEN, 32);
    }
}
