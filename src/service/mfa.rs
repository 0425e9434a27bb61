//! Multi-factor authentication: TOTP enrolment (RFC 6238), recovery codes, and signing in with
//! a second factor after the password (`mfa_token`, then the MFA grant).
//!
//! An account with a confirmed TOTP gets no tokens for its password alone: the password grant
//! answers `mfa_required` with an `mfa_token` (five minutes, single use, ended by five wrong
//! codes), redeemed by `grant_type=urn:imangor:grant-type:mfa` with a TOTP or a recovery code.
//! Every code is checked through the login guard of the account (wrong codes count like wrong
//! passwords), and each TOTP step is accepted once.

use super::audit::{self, Event, RequestMeta};
use super::auth::{Granted, open_session, pair, subject, user_session};
use crate::auth::totp;
use crate::auth::{random_token, sha256_hex};
use crate::authz::{self, Action, Principal};
use crate::config::Config;
use crate::crypto::data::DataKeyring;
use crate::db::passkeys::Ceremony;
use crate::db::{Tx, mfa, users};
use crate::domain::{SignInMethod, Timestamp, UserId};
use crate::error::{AppError, OAuthCode, Result};
use crate::limits::login::{CODES_PAST_CAP, Gate};
use crate::service::context::{Guards, Identity, Sinks, Store};

/// How long an `mfa_token` lives.
pub const MFA_TOKEN_TTL_S: u64 = 300;
/// Wrong codes that end an `mfa_token`.
pub use crate::db::mfa::MAX_FAILURES;
/// Recovery codes per account.
pub const RECOVERY_CODES: usize = 10;
/// How a recovery-code sign-in from an address the account never signed in from starts its
/// `mfa.recovery_use` event's detail (what the `recovery_code_new_address` detector reads).
pub const RECOVERY_FROM_NEW_ADDRESS: &str = "from an address this account never signed in from";
/// Length of an `mfa_token`: 32 random bytes in base64url.
const TOKEN_LEN: usize = 43;

/// Starts the second step of a sign-in whose password was right: a new `mfa_token`. Past the
/// account's lock-out for new addresses a wrong password gets one too (`password_ok` false,
/// `auth::SignedIn`), which no code completes; its failure was recorded already.
pub async fn challenge(
    tx: &mut Tx,
    user: UserId,
    now: Timestamp,
    purpose: mfa::Purpose<'_>,
    password_ok: bool,
    meta: &RequestMeta,
) -> Result<String> {
    let token = random_token(32)?;
    mfa::insert_token(
        tx,
        &sha256_hex(&token),
        user,
        now.plus_seconds(MFA_TOKEN_TTL_S),
        purpose,
        password_ok,
    )
    .await?;
    if !password_ok {
        return Ok(token);
    }
    Event::new(
        audit::Action::AuthLogin,
        audit::Outcome::SecondFactorRequired,
    )
    .actor(user)
    .target(user)
    .detail("password; second factor required")
    .record(tx, meta)
    .await?;
    Ok(token)
}

/// The caller's second factors.
pub struct Status {
    pub totp: bool,
    pub recovery_codes_left: i64,
}

pub async fn status(store: &Store, who: &Principal) -> Result<Status> {
    authz::authorize_plain(Some(who), Action::AccountReadSelf)?;
    let mut tx = store.db.begin().await?;
    let totp = mfa::totp(&mut tx, who.user_id())
        .await?
        .is_some_and(|t| t.confirmed);
    let left = mfa::recovery_codes_left(&mut tx, who.user_id()).await?;
    store.commit(tx).await?;
    Ok(Status {
        totp,
        recovery_codes_left: left,
    })
}

/// A pending TOTP enrolment: the secret as an authenticator app takes it.
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// Starts (or restarts) a TOTP enrolment after checking the current password. The secret is
/// sealed under the data keyring, bound to the account; it becomes required at sign-in only
/// once a first code confirms it.
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn begin_totp(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    keys: &DataKeyring,
    config: &Config,
    who: &Principal,
    current_password: &str,
    meta: &RequestMeta,
) -> Result<Enrolment> {
    super::users::confirm_own_factor_change(
        (store, identity, guards, sinks),
        who,
        current_password,
        audit::Action::MfaTotpEnroll,
        meta,
    )
    .await?;
    let user = who.user_id();
    let mut secret = zeroize::Zeroizing::new(vec![0u8; totp::SECRET_LEN]);
    aws_lc_rs::rand::fill(&mut secret)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let sealed = keys.seal(&secret, &mfa::binding(user))?;
    let now = Timestamp::now();
    let mut tx = store.db.begin_write().await?;
    if mfa::totp(&mut tx, user).await?.is_some_and(|t| t.confirmed) {
        return Err(AppError::Conflict("a TOTP second factor"));
    }
    // An account with a passkey adds TOTP only with a recent second factor (RFC 9470).
    if mfa::has_second_factor(&mut tx, user).await? && !who.passed_second_factor_recently() {
        return Err(AppError::StepUpRequired {
            max_age_s: authz::STEP_UP_MAX_AGE_S,
        });
    }
    mfa::put_pending(&mut tx, user, &sealed, now).await?;
    let account = users::find(&mut tx, user)
        .await?
        .ok_or(AppError::NotFound)?;
    Event::new(audit::Action::MfaTotpEnroll, audit::Outcome::Success)
        .actor(user)
        .target(user)
        .detail("enrolment started; waits for a first code")
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(Enrolment {
        secret: totp::base32(&secret),
        otpauth_uri: totp::otpauth_uri(issuer_label(config), &account.email, &secret),
    })
}

/// The issuer an authenticator app shows: the public URL's host.
fn issuer_label(config: &Config) -> &str {
    config.public_url.split("://").nth(1).unwrap_or("imangor")
}

/// Confirms a pending enrolment with a first code: TOTP is required at sign-in from now on,
/// and the answer holds the ten recovery codes (shown once).
pub async fn confirm_totp(
    store: &Store,
    keys: &DataKeyring,
    who: &Principal,
    code: &str,
    meta: &RequestMeta,
) -> Result<Vec<String>> {
    authz::authorize_plain(Some(who), Action::AccountUpdateSelf)?;
    let user = who.user_id();
    let now = Timestamp::now();
    let mut tx = store.db.begin_write().await?;
    let Some(stored) = mfa::totp(&mut tx, user).await? else {
        return Err(AppError::Refused("no TOTP enrolment was started"));
    };
    if stored.confirmed {
        return Err(AppError::Conflict("a TOTP second factor"));
    }
    let step = totp_step(keys, user, &stored, code, now)?;
    let ok = match step {
        Some(step) => mfa::accept_step(&mut tx, user, &stored, step, now).await?,
        None => false,
    };
    if !ok {
        drop(tx);
        return Err(crate::domain::ValidationError::field(
            "code",
            "the code is not the current one",
        )
        .into());
    }
    let codes = new_recovery_codes(&mut tx, user).await?;
    // Sessions opened with the password alone end (this one stays: it just proved the code),
    // and with them the replaced stack's tokens; sensitive operations now ask for the second
    // factor (cached state drops).
    let ended = crate::db::sessions::revoke_all_of(
        &mut tx,
        user,
        who.session(),
        "a second factor was enrolled",
        now,
    )
    .await?;
    tx.auth_changed();
    Event::new(audit::Action::MfaTotpEnroll, audit::Outcome::Success)
        .actor(user)
        .target(user)
        .detail(format!(
            "confirmed: TOTP is required at sign-in; 10 recovery codes issued; {ended} other session(s) ended"
        ))
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(codes)
}

/// Checks a code against a stored secret; the step it matched, if any and not yet used.
fn totp_step(
    keys: &DataKeyring,
    user: UserId,
    stored: &mfa::Totp,
    code: &str,
    now: Timestamp,
) -> Result<Option<i64>> {
    let secret = keys
        .open(&stored.key_id, &stored.secret, &mfa::binding(user))
        .map_err(|e| anyhow::anyhow!("a TOTP secret did not open: {e}"))?;
    Ok(totp::verify(
        &secret,
        code.trim(),
        totp::step_of(now.unix_seconds()),
        stored.last_step,
    ))
}

/// Ten new recovery codes (hashes stored, the old ones gone): each 24 characters of a
/// 31-symbol alphabet without look-alikes (about 119 bits, past the 112 below which NIST SP
/// 800-63B wants a slow hash), grouped `xxxxxx-xxxxxx-xxxxxx-xxxxxx` for reading.
async fn new_recovery_codes(tx: &mut Tx, user: UserId) -> Result<Vec<String>> {
    const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
    const CHARS: usize = 24;
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut code = String::with_capacity(CHARS + 3);
        let mut taken = 0;
        while taken < CHARS {
            let mut raw = [0u8; 32];
            aws_lc_rs::rand::fill(&mut raw)
                .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
            // 248 = 8 x 31: bytes above it would bias the choice.
            for b in raw.into_iter().filter(|b| *b < 248) {
                if taken == CHARS {
                    break;
                }
                if taken > 0 && taken % 6 == 0 {
                    code.push('-');
                }
                code.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
                taken += 1;
            }
        }
        codes.push(code);
    }
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(user, c)).collect();
    mfa::set_recovery_codes(tx, user, &hashes).await?;
    Ok(codes)
}

/// A recovery code as typed (any case, with or without the dashes) to its stored hash, salted
/// with the account (one table of hashes cannot be attacked for every account at once).
fn recovery_hash(user: UserId, code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    sha256_hex(&format!("recovery\0{user}\0{normal}"))
}

/// Removes TOTP (and the recovery codes) after the current password and a current code.
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn remove_totp(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    keys: &DataKeyring,
    who: &Principal,
    current_password: &str,
    code: &str,
    meta: &RequestMeta,
) -> Result<()> {
    let (mut tx, user) = with_password_and_code(
        store,
        identity,
        guards,
        sinks,
        keys,
        who,
        (current_password, code),
        audit::Action::MfaTotpRemove,
        meta,
    )
    .await?;
    mfa::remove(&mut tx, user).await?;
    tx.auth_changed();
    Event::new(audit::Action::MfaTotpRemove, audit::Outcome::Success)
        .actor(user)
        .target(user)
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(())
}

/// The checks before a change to the caller's own second factor: the policy, the current
/// password (through its guard), then a current code; returns the write transaction the
/// change goes in.
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
async fn with_password_and_code(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    keys: &DataKeyring,
    who: &Principal,
    (current_password, code): (&str, &str),
    action: audit::Action,
    meta: &RequestMeta,
) -> Result<(Tx, UserId)> {
    // Changing the second factor is itself sensitive: a token whose user passed it recently.
    authz::require_recent_second_factor(who)?;
    super::users::confirm_own_factor_change(
        (store, identity, guards, sinks),
        who,
        current_password,
        action,
        meta,
    )
    .await?;
    let user = who.user_id();
    // The code goes through the account's login guard like one at sign-in.
    let mut tx = store.db.begin().await?;
    let email = users::find(&mut tx, user)
        .await?
        .ok_or(AppError::NotFound)?
        .email;
    drop(tx);
    let ip = super::auth::client(meta);
    match guards.logins.begin(&email, ip).await {
        Gate::Locked {
            retry_after_s,
            first,
        }
        | Gate::Capped {
            retry_after_s,
            first,
        } => {
            let action = audit::Action::MfaVerify;
            refused(
                guards,
                sinks,
                action,
                (user, &email),
                first,
                retry_after_s,
                meta,
            )
            .await;
            return Err(AppError::RateLimited { retry_after_s });
        }
        Gate::Open { delay } if !delay.is_zero() => tokio::time::sleep(delay).await,
        Gate::Open { .. } => {}
    }
    let mut tx = store.db.begin_write().await?;
    if let Err(e) = current_code(&mut tx, keys, user, code, Timestamp::now()).await {
        drop(tx);
        Event::new(audit::Action::MfaVerify, audit::Outcome::Failure)
            .actor(user)
            .target(user)
            .detail(format!("wrong TOTP code for {action}"))
            .emit(&sinks.events, meta)
            .await;
        return Err(e);
    }
    guards.logins.succeeded(&email, ip).await;
    Ok((tx, user))
}

/// A code the login guard refused is still a guess: a `throttled` event of `action` against
/// the account (the detectors count it with the failures), capped per account and window like
/// a refused password (`service::refusal_recorded`, ASVS V16.3.1).
async fn refused(
    guards: &Guards,
    sinks: &Sinks,
    action: audit::Action,
    (user, email): (UserId, &str),
    first: bool,
    retry_after_s: u64,
    meta: &RequestMeta,
) {
    if let Some(note) = super::refusal_recorded(guards, sinks, action, email) {
        super::auth::refusal_event(action, first, retry_after_s, note)
            .actor(user)
            .target(user)
            .emit(&sinks.events, meta)
            .await;
    }
}

/// Requires a current, unused code of the account's confirmed TOTP (and spends its step).
async fn current_code(
    tx: &mut Tx,
    keys: &DataKeyring,
    user: UserId,
    code: &str,
    now: Timestamp,
) -> Result<()> {
    let Some(stored) = mfa::totp(tx, user).await?.filter(|t| t.confirmed) else {
        return Err(AppError::Refused("this account has no TOTP second factor"));
    };
    let ok = match totp_step(keys, user, &stored, code, now)? {
        Some(step) => mfa::accept_step(tx, user, &stored, step, now).await?,
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(crate::domain::ValidationError::field("code", "the code is not the current one").into())
    }
}

/// New recovery codes after the current password and a current code; the old ones stop.
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn regenerate_recovery_codes(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    keys: &DataKeyring,
    who: &Principal,
    current_password: &str,
    code: &str,
    meta: &RequestMeta,
) -> Result<Vec<String>> {
    let (mut tx, user) = with_password_and_code(
        store,
        identity,
        guards,
        sinks,
        keys,
        who,
        (current_password, code),
        audit::Action::MfaRecoveryCodes,
        meta,
    )
    .await?;
    let codes = new_recovery_codes(&mut tx, user).await?;
    Event::new(audit::Action::MfaRecoveryCodes, audit::Outcome::Success)
        .actor(user)
        .target(user)
        .detail("10 new recovery codes; the old ones no longer work")
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(codes)
}

/// The second factor as presented to the MFA grant.
#[derive(Clone, Copy)]
pub enum Factor<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
    /// A passkey's answer (the sign-in page only), judged for this relying party.
    Passkey(
        &'a super::passkeys::Answer,
        &'a crate::auth::webauthn::RelyingParty,
    ),
}

impl Factor<'_> {
    /// How a sign-in that passes it was made.
    pub fn method(&self) -> SignInMethod {
        match self {
            Factor::Totp(_) | Factor::RecoveryCode(_) => SignInMethod::PasswordAndCode,
            Factor::Passkey(..) => SignInMethod::PasswordAndPasskey,
        }
    }
}

/// `grant_type=urn:imangor:grant-type:mfa`: the `mfa_token` of a right password and a second
/// factor (`pass`); tokens carry `amr: ["pwd", "mfa"]` and `auth_time`.
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn redeem(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    keys: &DataKeyring,
    config: &Config,
    mfa_token: &str,
    factor: Factor<'_>,
    meta: &RequestMeta,
) -> Result<Granted> {
    let method = factor.method();
    let (user, how) = pass(
        store,
        guards,
        sinks,
        keys,
        mfa_token,
        mfa::Purpose::Grant,
        factor,
        meta,
    )
    .await?;
    let now = Timestamp::now();
    let mut tx = store.db.begin().await?;
    let (session, refresh_token) = open_session(
        &mut tx,
        user_session(user.id, config, method, now),
        Some(config.refresh_token_ttl),
    )
    .await?;
    Event::new(audit::Action::AuthLogin, audit::Outcome::Success)
        .actor(user.id)
        .target(session.id)
        .detail(how)
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(Granted::Tokens(pair(
        identity,
        &subject(&session, user.role),
        now,
        refresh_token,
    )?))
}

/// The second step of a sign-in: the `mfa_token` of a right password and a second factor,
/// checked through the account's login guard (a wrong code counts like a wrong password; a
/// locked account is refused before the code is looked at); five wrong codes end the token.
/// On success the token is spent and the account returned with how it signed in.
///
/// Past the account's lock-out for new addresses (`limits::login`) the guard lets a code
/// through (`begin_past_cap`): the token of a wrong password fails whatever the code, and the
/// codes of right passwords have a budget (`CODES_PAST_CAP`) past which they are not checked.
/// Both fail exactly like a wrong code, so nobody without a valid code learns anything.
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn pass(
    store: &Store,
    guards: &Guards,
    sinks: &Sinks,
    keys: &DataKeyring,
    mfa_token: &str,
    purpose: mfa::Purpose<'_>,
    factor: Factor<'_>,
    meta: &RequestMeta,
) -> Result<(crate::domain::User, &'static str)> {
    let invalid = || {
        AppError::oauth(
            OAuthCode::InvalidGrant,
            "the mfa_token or the code is not valid",
        )
    };
    if mfa_token.len() != TOKEN_LEN {
        return Err(invalid());
    }
    let hash = sha256_hex(mfa_token);
    let now = Timestamp::now();
    // The attempt is reserved (counted) and committed before the code is judged: parallel
    // guesses on one token cannot pass MAX_FAILURES.
    let mut tx = store.db.begin_write().await?;
    let Some((user_id, password_ok)) =
        mfa::reserve_attempt(&mut tx, &hash, now, MAX_FAILURES, purpose).await?
    else {
        return Err(invalid());
    };
    let user = users::find(&mut tx, user_id).await?;
    store.commit(tx).await?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Err(invalid());
    };
    // What this attempt guesses: a code, or (the token of a wrong password) still the password.
    let action = if password_ok {
        audit::Action::MfaVerify
    } else {
        audit::Action::AuthLogin
    };
    // The login guard of the account, as for its password: a lock refuses before the code is
    // read, the slow-down applies.
    let ip = super::auth::client(meta);
    let mut gate = guards.logins.begin(&user.email, ip).await;
    let past_cap = matches!(gate, Gate::Capped { .. });
    if past_cap {
        gate = guards.logins.begin_past_cap(&user.email, ip).await;
    }
    match gate {
        Gate::Locked {
            retry_after_s,
            first,
        }
        | Gate::Capped {
            retry_after_s,
            first,
        } => {
            let whom = (user.id, user.email.as_str());
            refused(guards, sinks, action, whom, first, retry_after_s, meta).await;
            return Err(AppError::RateLimited { retry_after_s });
        }
        Gate::Open { delay } if !delay.is_zero() => tokio::time::sleep(delay).await,
        Gate::Open { .. } => {}
    }
    // A passkey's challenge is spent first, in its own transaction (single use, whatever the
    // answer); only one issued for this account's second step on this browser's page counts.
    let challenge = match (factor, purpose) {
        (Factor::Passkey(answer, _), mfa::Purpose::Page { binding }) => {
            let ceremony = Ceremony::SecondFactor {
                user: user.id,
                binding,
            };
            super::passkeys::spend_challenge(store, &answer.client_data_json, ceremony).await?
        }
        _ => None,
    };
    // Past the cap a code is counted against the account's budget only after its right
    // password; after a wrong one (a blind token, which no code completes) the same round trip
    // goes to a budget of its own, so that the time of this answer does not say which it was.
    let within_budget = !past_cap || {
        let budget = if password_ok {
            user.email.clone()
        } else {
            format!("\u{0}blind {}", user.email)
        };
        guards.logins.code_past_cap(&budget).await || !password_ok
    };
    let mut tx = store.db.begin_write().await?;
    // The code is checked (and its step or recovery code spent) in every case, then rolled back
    // unless the sign-in completes: the same work whatever the token.
    let mut refused_because = None;
    let (ok, how) = match factor {
        Factor::Totp(code) => {
            let ok = match mfa::totp(&mut tx, user.id).await?.filter(|t| t.confirmed) {
                Some(stored) => match totp_step(keys, user.id, &stored, code, now)? {
                    Some(step) => mfa::accept_step(&mut tx, user.id, &stored, step, now).await?,
                    None => false,
                },
                None => false,
            };
            (ok, "password + TOTP")
        }
        Factor::RecoveryCode(code) => (
            mfa::spend_recovery_code(&mut tx, user.id, &recovery_hash(user.id, code), now).await?,
            "password + recovery code",
        ),
        Factor::Passkey(answer, rp) => {
            let ok = match purpose {
                mfa::Purpose::Page { binding } => {
                    let ceremony = Ceremony::SecondFactor {
                        user: user.id,
                        binding,
                    };
                    match super::passkeys::check(
                        &mut tx,
                        rp,
                        answer,
                        challenge.as_deref(),
                        ceremony,
                    )
                    .await?
                    {
                        Ok(_) => true,
                        Err(refusal) => {
                            refused_because = Some(refusal.why);
                            false
                        }
                    }
                }
                mfa::Purpose::Grant => false,
            };
            (ok, "password + passkey")
        }
    };
    let ok = ok && password_ok && within_budget;
    if !ok || !mfa::spend_token(&mut tx, &hash, now).await? {
        drop(tx);
        let what = match factor {
            Factor::Totp(_) => "TOTP code",
            Factor::RecoveryCode(_) => "recovery code",
            Factor::Passkey(..) => "passkey answer",
        };
        let detail = if !password_ok {
            format!(
                "a {what} on the mfa_token of a wrong password (past the account's lock-out); no code completes it"
            )
        } else if !within_budget {
            format!(
                "{what} not checked: the {CODES_PAST_CAP} codes an account takes past its lock-out are spent; answered as wrong"
            )
        } else {
            let why = refused_because
                .map(|why| format!(": {why}"))
                .unwrap_or_default();
            format!("wrong {what} (an attempt of at most {MAX_FAILURES} for this sign-in){why}")
        };
        let mut tx = store.db.begin().await?;
        Event::new(action, audit::Outcome::Failure)
            .actor(user.id)
            .target(user.id)
            .detail(detail)
            .record(&mut tx, meta)
            .await?;
        store.commit(tx).await?;
        return Err(invalid());
    }
    if matches!(factor, Factor::RecoveryCode(_)) {
        let left = mfa::recovery_codes_left(&mut tx, user.id).await?;
        // From an address the account never signed in from: the `recovery_code_new_address`
        // detector raises an incident on it (the guard's notion of a known address).
        let from = if guards.logins.knows(&user.email, ip).await {
            String::new()
        } else {
            format!(" {RECOVERY_FROM_NEW_ADDRESS}")
        };
        Event::new(audit::Action::MfaRecoveryUse, audit::Outcome::Success)
            .actor(user.id)
            .target(user.id)
            .detail(format!("a recovery code was used{from}; {left} left"))
            .warning()
            .record(&mut tx, meta)
            .await?;
    }
    store.commit(tx).await?;
    // Only now is the sign-in over: the guard forgets this account's failures.
    guards.logins.succeeded(&user.email, ip).await;
    Ok((user, how))
}
