//! Passkeys (WebAuthn Level 2, `auth::webauthn`): registered from the console, then used on the
//! sign-in page alone (a discoverable credential with user verification: phishing resistant)
//! or as the second factor after a password.
//!
//! Every ceremony answers a challenge of 32 random bytes that the server issued for exactly that
//! ceremony (registration for one account; sign-in on one browser's page; the second step of one
//! account's sign-in on one browser's page), stored as a hash, spent before its answer is judged
//! (single use whatever the answer), and dead after five minutes.

use serde_json::{Value, json};

use super::audit::{self, Event, RequestMeta};
use crate::auth::sha256_hex;
use crate::auth::webauthn::{self, Assertion, RelyingParty};
use crate::authz::{self, Action, Principal};
use crate::config::Config;
use crate::db::passkeys::{self, Ceremony, Passkey};
use crate::db::{Tx, mfa, users};
use crate::domain::{Timestamp, UserId, ValidationError};
use crate::error::{AppError, Result};
use crate::service::context::{Guards, Identity, Sinks, Store};

/// How long a challenge may be answered.
pub const CHALLENGE_TTL_S: u64 = 300;
/// Passkeys per account.
pub const MAX_PASSKEYS: usize = 10;
/// The longest name of a passkey.
const MAX_NAME_CHARS: usize = 64;

/// The relying party of this server: the configured id, and the public URL's origin.
pub fn relying_party(config: &Config) -> RelyingParty {
    RelyingParty {
        id: config.webauthn_rp_id.clone(),
        origin: crate::config::public_origin(&config.public_url),
    }
}

/// An account's WebAuthn user handle: its id's 16 bytes (no personal data, WebAuthn §14.6.1).
fn user_handle(user: UserId) -> Vec<u8> {
    user.as_uuid().as_bytes().to_vec()
}

/// A new challenge for `ceremony`, stored hashed; returned in base64url as browsers take it.
async fn new_challenge(tx: &mut Tx, ceremony: Ceremony<'_>, now: Timestamp) -> Result<String> {
    let raw = webauthn::new_challenge()?;
    let challenge = webauthn::b64url(&raw);
    passkeys::insert_challenge(
        tx,
        &sha256_hex(&challenge),
        ceremony,
        now.plus_seconds(CHALLENGE_TTL_S),
    )
    .await?;
    Ok(challenge)
}

/// The challenge a browser's `clientDataJSON` answers (checked again by the verifier).
fn answered_challenge(client_data_json: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(client_data_json).ok()?;
    let c = v.get("challenge")?.as_str()?;
    (c.len() <= 128).then(|| c.to_owned())
}

/// Spends the challenge an answer names, if it was issued for `ceremony` and is live; in its
/// own transaction (before the one that judges the answer), so that it is gone whatever the
/// answer turns out to be. Its bytes.
pub(crate) async fn spend_challenge(
    store: &Store,
    client_data_json: &[u8],
    ceremony: Ceremony<'_>,
) -> Result<Option<Vec<u8>>> {
    let Some(challenge) = answered_challenge(client_data_json) else {
        return Ok(None);
    };
    let Some(bytes) = webauthn::unb64url(&challenge) else {
        return Ok(None);
    };
    let mut tx = store.db.begin_write().await?;
    let live =
        passkeys::take_challenge(&mut tx, &sha256_hex(&challenge), ceremony, Timestamp::now())
            .await?;
    store.commit(tx).await?;
    Ok(live.then_some(bytes))
}

fn credential_error(why: impl std::fmt::Display) -> AppError {
    ValidationError::field("credential", format!("the passkey was not accepted: {why}")).into()
}

/// `POST /users/me/passkeys/options`: creation options for `navigator.credentials.create`,
/// after the current password (checked through its guard, as for a TOTP enrolment). An account
/// that already has a second factor adds one only with a recent one (RFC 9470 step-up).
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn registration_options(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    config: &Config,
    who: &Principal,
    current_password: &str,
    meta: &RequestMeta,
) -> Result<Value> {
    let user = who.user_id();
    // The step-up first, as `remove` does: a refusal that needs no password costs no hash and
    // no attempt of the login guard.
    let step_up_needed = |has: bool| has && !who.passed_second_factor_recently();
    let mut tx = store.db.begin().await?;
    if step_up_needed(mfa::has_second_factor(&mut tx, user).await?) {
        return Err(AppError::StepUpRequired {
            max_age_s: authz::STEP_UP_MAX_AGE_S,
        });
    }
    drop(tx);
    super::users::confirm_own_factor_change(
        (store, identity, guards, sinks),
        who,
        current_password,
        audit::Action::MfaPasskeyRegister,
        meta,
    )
    .await?;
    let now = Timestamp::now();
    let mut tx = store.db.begin_write().await?;
    // Checked again in the write: a factor added meanwhile asks for the step-up too.
    if step_up_needed(mfa::has_second_factor(&mut tx, user).await?) {
        return Err(AppError::StepUpRequired {
            max_age_s: authz::STEP_UP_MAX_AGE_S,
        });
    }
    let account = users::find(&mut tx, user)
        .await?
        .ok_or(AppError::NotFound)?;
    let existing = passkeys::of_user(&mut tx, user).await?;
    if existing.len() >= MAX_PASSKEYS {
        return Err(AppError::Refused(
            "an account has at most 10 passkeys: remove one first",
        ));
    }
    let challenge = new_challenge(&mut tx, Ceremony::Register { user }, now).await?;
    store.commit(tx).await?;
    let rp = relying_party(config);
    let display = if account.full_name.is_empty() {
        account.email.clone()
    } else {
        account.full_name.clone()
    };
    Ok(json!({
        "challenge": challenge,
        "rp": { "id": rp.id, "name": "imangor" },
        "user": { "id": webauthn::b64url(&user_handle(user)), "name": account.email, "displayName": display },
        "pubKeyCredParams": webauthn::ALGORITHMS
            .iter()
            .map(|alg| json!({ "type": "public-key", "alg": alg }))
            .collect::<Vec<_>>(),
        "timeout": CHALLENGE_TTL_S * 1000,
        // Attestation is neither asked for nor trusted: any authenticator the user holds.
        "attestation": "none",
        // Discoverable, with user verification: it can sign in alone.
        "authenticatorSelection": {
            "residentKey": "required",
            "requireResidentKey": true,
            "userVerification": "required",
        },
        "excludeCredentials": existing
            .iter()
            .map(|p| json!({ "type": "public-key", "id": webauthn::b64url(&p.credential_id) }))
            .collect::<Vec<_>>(),
    }))
}

/// What `navigator.credentials.create` gave, decoded.
pub struct NewCredential {
    pub raw_id: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub attestation_object: Vec<u8>,
}

/// `POST /users/me/passkeys`: verifies the answer to this account's registration challenge
/// and stores the passkey. The first second factor of an account ends its other sessions (they
/// were opened with the password alone), as a confirmed TOTP does.
pub async fn register(
    store: &Store,
    config: &Config,
    who: &Principal,
    name: &str,
    credential: &NewCredential,
    meta: &RequestMeta,
) -> Result<Passkey> {
    authz::authorize_plain(Some(who), Action::AccountUpdateSelf)?;
    super::users::in_person(store, who).await?;
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(
            ValidationError::field("name", "1 to 64 characters, no control characters").into(),
        );
    }
    let user = who.user_id();
    let Some(challenge) = spend_challenge(
        store,
        &credential.client_data_json,
        Ceremony::Register { user },
    )
    .await?
    else {
        return Err(credential_error(
            "it answers no live registration of this account (ask for new options)",
        ));
    };
    let reg = webauthn::verify_registration(
        &relying_party(config),
        &challenge,
        &credential.client_data_json,
        &credential.attestation_object,
        true,
    )
    .map_err(credential_error)?;
    if reg.credential_id != credential.raw_id {
        return Err(credential_error("rawId is not the attested credential id"));
    }
    let now = Timestamp::now();
    let passkey = Passkey {
        id: uuid::Uuid::new_v4().to_string(),
        user,
        credential_id: reg.credential_id,
        public_key: reg.public_key,
        alg: reg.alg,
        sign_count: reg.sign_count,
        backup_eligible: reg.backup_eligible,
        backed_up: reg.backed_up,
        name: name.to_owned(),
        created_at: now,
        last_used_at: None,
    };
    let mut tx = store.db.begin_write().await?;
    let first = !mfa::has_second_factor(&mut tx, user).await?;
    if passkeys::of_user(&mut tx, user).await?.len() >= MAX_PASSKEYS {
        return Err(AppError::Refused(
            "an account has at most 10 passkeys: remove one first",
        ));
    }
    if !passkeys::insert(&mut tx, &passkey).await? {
        return Err(AppError::Conflict("a passkey with this credential id"));
    }
    let ended = if first {
        crate::db::sessions::revoke_all_of(
            &mut tx,
            user,
            who.session(),
            "a second factor was enrolled",
            now,
        )
        .await?
    } else {
        0
    };
    tx.auth_changed();
    Event::new(audit::Action::MfaPasskeyRegister, audit::Outcome::Success)
        .actor(user)
        .target(user)
        .detail(format!(
            "passkey {} registered (alg {}, {}); {ended} other session(s) ended",
            passkey.id,
            passkey.alg,
            if passkey.backup_eligible {
                "synced"
            } else {
                "device-bound"
            }
        ))
        // The account's security events say so: a passkey added with a stolen password
        // would be the thief's way back in.
        .warning()
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(passkey)
}

/// The caller's passkeys.
pub async fn list(store: &Store, who: &Principal) -> Result<Vec<Passkey>> {
    authz::authorize_plain(Some(who), Action::AccountReadSelf)?;
    let mut tx = store.db.begin().await?;
    let all = passkeys::of_user(&mut tx, who.user_id()).await?;
    store.commit(tx).await?;
    Ok(all)
}

/// `DELETE /users/me/passkeys/{id}`: removing a second factor asks for a recent one and the
/// current password (as removing TOTP asks for a code and the password), and ends the
/// account's other sessions (one of them may be the lost passkey's).
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn remove(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    who: &Principal,
    id: &str,
    current_password: &str,
    meta: &RequestMeta,
) -> Result<()> {
    authz::require_recent_second_factor(who)?;
    super::users::confirm_own_factor_change(
        (store, identity, guards, sinks),
        who,
        current_password,
        audit::Action::MfaPasskeyRemove,
        meta,
    )
    .await?;
    let user = who.user_id();
    let now = Timestamp::now();
    let mut tx = store.db.begin_write().await?;
    if !passkeys::delete(&mut tx, user, id).await? {
        return Err(AppError::NotFound);
    }
    let ended = crate::db::sessions::revoke_all_of(
        &mut tx,
        user,
        who.session(),
        "a passkey was removed",
        now,
    )
    .await?;
    tx.auth_changed();
    Event::new(audit::Action::MfaPasskeyRemove, audit::Outcome::Success)
        .actor(user)
        .target(user)
        .detail(format!(
            "passkey {id} removed; {ended} other session(s) ended"
        ))
        .warning()
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(())
}

/// Request options for `navigator.credentials.get` on the sign-in page of the browser bound to
/// `binding`: for a passkey alone (any discoverable credential, user verification required),
/// or, given the `mfa_token` of a right password, for that account's passkeys. None when the
/// token is not live for this browser or its account has no passkey.
pub async fn sign_in_options(
    store: &Store,
    config: &Config,
    binding: &str,
    mfa_token: Option<&str>,
) -> Result<Option<Value>> {
    let now = Timestamp::now();
    // Read first (a refusal writes nothing), then one short write.
    let mut tx = store.db.begin().await?;
    let (ceremony, allow, verification) = match mfa_token {
        None => (Ceremony::SignIn { binding }, Vec::new(), "required"),
        Some(token) => {
            let purpose = mfa::Purpose::Page { binding };
            let Some(user) =
                mfa::live_token_user(&mut tx, &sha256_hex(token), now, mfa::MAX_FAILURES, purpose)
                    .await?
            else {
                return Ok(None);
            };
            // The account's passkeys are discoverable: the browser offers them without their
            // ids, which are not handed to whoever holds a token (past the lock-out, a wrong
            // password gets one too).
            if passkeys::of_user(&mut tx, user).await?.is_empty() {
                return Ok(None);
            }
            let allow: Vec<Value> = Vec::new();
            (Ceremony::SecondFactor { user, binding }, allow, "preferred")
        }
    };
    drop(tx);
    let mut tx = store.db.begin_write().await?;
    // One live challenge per browser and ceremony: a new one replaces the last (a page
    // reloaded, or a script asking in a loop, leaves one row).
    passkeys::drop_challenges(&mut tx, ceremony).await?;
    let challenge = new_challenge(&mut tx, ceremony, now).await?;
    store.commit(tx).await?;
    Ok(Some(json!({
        "challenge": challenge,
        "rpId": relying_party(config).id,
        "timeout": CHALLENGE_TTL_S * 1000,
        "allowCredentials": allow,
        "userVerification": verification,
    })))
}

/// What `navigator.credentials.get` gave, decoded.
pub struct Answer {
    pub raw_id: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub authenticator_data: Vec<u8>,
    pub signature: Vec<u8>,
    pub user_handle: Option<Vec<u8>>,
}

/// Why a passkey's answer was refused, for the audit trail (never shown to the browser), and
/// whose passkey it named, when one of this server's.
pub struct Refusal {
    pub owner: Option<UserId>,
    pub why: String,
}

/// Judges a passkey's answer to `challenge` (spent by `spend_challenge` for `ceremony`; none:
/// it named no live one): the passkey, its account's, and the verified assertion, with its new
/// counter recorded in `tx`; else why not.
pub(crate) async fn check(
    tx: &mut Tx,
    rp: &RelyingParty,
    answer: &Answer,
    challenge: Option<&[u8]>,
    ceremony: Ceremony<'_>,
) -> Result<std::result::Result<(Passkey, Assertion), Refusal>> {
    let Some(passkey) = passkeys::by_credential(tx, &answer.raw_id).await? else {
        return Ok(Err(Refusal {
            owner: None,
            why: "an unknown passkey".to_owned(),
        }));
    };
    let owner = passkey.user;
    let refuse = |why: &str| {
        Ok(Err(Refusal {
            owner: Some(owner),
            why: why.to_owned(),
        }))
    };
    let Some(challenge) = challenge else {
        return refuse("no live challenge of this ceremony is answered");
    };
    let (expected_user, require_uv) = match ceremony {
        Ceremony::SecondFactor { user, .. } => (Some(user), false),
        Ceremony::SignIn { .. } => (None, true),
        Ceremony::Register { .. } => return refuse("not a sign-in ceremony"),
    };
    if expected_user.is_some_and(|u| u != passkey.user) {
        return refuse("a passkey of another account");
    }
    // WebAuthn §7.2 step 6: the user handle, when given, is the passkey's account; a passkey
    // alone must give it (a discoverable credential does).
    match &answer.user_handle {
        Some(h) if *h != user_handle(passkey.user) => {
            return refuse("the user handle is not the passkey's account");
        }
        None if expected_user.is_none() => {
            return refuse("no user handle");
        }
        _ => {}
    }
    let stored = webauthn::StoredCredential {
        public_key: &passkey.public_key,
        sign_count: passkey.sign_count,
        backup_eligible: passkey.backup_eligible,
    };
    let assertion = match webauthn::verify_assertion(
        rp,
        challenge,
        &stored,
        &answer.client_data_json,
        &answer.authenticator_data,
        &answer.signature,
        require_uv,
    ) {
        Ok(a) => a,
        Err(e) => return refuse(&e.to_string()),
    };
    let now = Timestamp::now();
    if !passkeys::record_use(tx, &passkey, assertion.sign_count, assertion.backed_up, now).await? {
        return refuse("a concurrent use of the same passkey");
    }
    Ok(Ok((passkey, assertion)))
}
