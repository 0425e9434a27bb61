//! Logging in, refreshing and revoking tokens, and turning a bearer token into a `Principal`.

use anyhow::Context;

use super::audit::{self, Event, RequestMeta};
use crate::auth::legacy::{LegacyTokens, LegacyVerified};
use crate::auth::password::Verdict;
use crate::auth::token::{SignedInWith, Subject, TokenError, Verified};
use crate::auth::{random_token, sha256_hex};
use crate::authz::Principal;
use crate::config::Config;
use crate::db::{sessions, users};
use crate::domain::client::Scopes;
use crate::domain::password::MAX_LOGIN_BYTES;
use crate::domain::{ClientId, Email, SessionId, Timestamp};
use crate::error::{AppError, Result};
use crate::infra::metrics::AuthStatus;
use crate::limits::login::Gate;
use crate::service::context::{Guards, Identity, Sinks, Store};

/// Length of a refresh token: 32 random bytes in base64url.
const REFRESH_TOKEN_LEN: usize = 43;

/// What a successful grant answers.
pub struct TokenPair {
    pub access_token: String,
    pub expires_in: u64,
    /// None for the client-credentials grant (RFC 6749 §4.4.3).
    pub refresh_token: Option<String>,
    pub scope: Scopes,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// The answer to every failed grant: the same for an unknown account, a wrong password, a disabled
/// account, and a spent, expired or unknown refresh token.
fn invalid_grant() -> AppError {
    AppError::unauthenticated()
}

/// OAuth2 password grant. Exactly one password verification runs whether or not the account exists.
#[tracing::instrument(skip_all)]
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn login(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    config: &Config,
    username: &str,
    password: &str,
    meta: &RequestMeta,
) -> Result<Granted> {
    let SignedIn {
        user,
        new_hash,
        second_factor,
        password_ok,
    } = check_password(store, identity, guards, sinks, username, password, meta).await?;
    let now = Timestamp::now();
    let mut tx = store.db.begin().await?;
    if let Some(h) = &new_hash {
        users::set_password_hash(&mut tx, user.id, h, now).await?;
    }
    // An account with a second factor gets no tokens for its password alone.
    if second_factor {
        let purpose = crate::db::mfa::Purpose::Grant;
        let mfa_token =
            super::mfa::challenge(&mut tx, user.id, now, purpose, password_ok, meta).await?;
        store.commit(tx).await?;
        return Ok(Granted::MfaRequired { mfa_token });
    }
    // A role that must have a second factor, without one: a token that can only enrol one.
    let enrol_only = identity.mfa_required_roles.contains(&user.role);
    let mut new_session = user_session(user.id, config, crate::domain::SignInMethod::Password, now);
    if enrol_only {
        new_session.scopes = Some(enrolment_scopes());
    }
    let (session, refresh_token) =
        open_session(&mut tx, new_session, Some(config.refresh_token_ttl)).await?;
    let detail = if enrol_only {
        "password; this role must have a second factor: the token can only enrol one"
    } else if new_hash.is_some() {
        "password hash upgraded to argon2id"
    } else {
        "password"
    };
    Event::new(audit::Action::AuthLogin, audit::Outcome::Success)
        .actor(user.id)
        .target(session.id)
        .detail(detail)
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

/// What the password grant answers: tokens, or (for an account with a second factor) the
/// token that the second factor is presented with.
pub enum Granted {
    Tokens(TokenPair),
    MfaRequired { mfa_token: String },
}

/// What the token of an account that must have a second factor and has none is narrowed to:
/// its own profile, where a second factor is enrolled (`POST /api/v1/users/me/mfa/totp`).
pub(crate) fn enrolment_scopes() -> Scopes {
    [crate::domain::client::Scope::Profile]
        .into_iter()
        .collect()
}

/// A session of a user who signed in now (with a second factor or not), issued to no client.
pub(crate) fn user_session(
    user: crate::domain::UserId,
    config: &Config,
    method: crate::domain::SignInMethod,
    now: Timestamp,
) -> sessions::NewSession {
    sessions::NewSession {
        id: SessionId::new(),
        user,
        client: None,
        scopes: None,
        method,
        auth_time: now,
        now,
        expires_at: now.plus_seconds(config.session_max_age),
    }
}

/// Whom a new session's tokens are issued to, with the user's `role` read now.
pub(crate) fn subject(s: &sessions::NewSession, role: crate::domain::Role) -> Subject {
    Subject {
        user: s.user,
        role,
        session: s.id,
        client: s.client,
        scopes: s.scopes,
        signed_in: Some(SignedInWith {
            method: s.method,
            at: s.auth_time,
        }),
    }
}

/// Opens a session and, given a refresh token's lifetime, its first refresh token: how every
/// grant that signs a user in ends.
pub(crate) async fn open_session(
    tx: &mut crate::db::Tx,
    session: sessions::NewSession,
    refresh_ttl: Option<u64>,
) -> Result<(sessions::NewSession, Option<String>)> {
    sessions::create(tx, &session).await?;
    let refresh_token = match refresh_ttl {
        Some(ttl) => {
            Some(new_refresh_token(tx, session.id, session.now, session.expires_at, ttl).await?)
        }
        None => None,
    };
    Ok((session, refresh_token))
}

/// A password that checked out: the account, and its new argon2id hash when the stored one
/// must be upgraded (the caller writes it in the transaction that records the sign-in).
pub struct SignedIn {
    pub user: crate::domain::User,
    pub new_hash: Option<String>,
    /// The account has a confirmed second factor: no tokens yet.
    pub second_factor: bool,
    /// False only past the account's lock-out for new addresses (`limits::login`), for a wrong
    /// password of an account with a second factor: it is answered like a right one, with an
    /// mfa_token that no code completes (`second_factor` is then true), so that the answer says
    /// nothing about the password. Never a signed-in account.
    pub password_ok: bool,
}

/// Checks a username and password through the login guard (limits, lock, slow-down, the
/// events the detectors count): what the password grant and the OAuth sign-in page share.
/// Exactly one password verification runs whether or not the account exists; every failure
/// answers the same.
pub async fn check_password(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    username: &str,
    password: &str,
    meta: &RequestMeta,
) -> Result<SignedIn> {
    let email = Email::parse(username).ok();
    // One failure budget per account however its email is spelled; per address as the layers derived it.
    // Names that are not email addresses share one key: no account has them, and an attacker
    // must not fill memory with long made-up names.
    let account = email
        .as_ref()
        .map(|e| e.as_str().to_owned())
        .unwrap_or_else(|| "\0not-an-email".to_owned());
    let ip = client(meta);
    let mut gate = guards.logins.begin(&account, ip).await;
    // Past the account's cap, from an address it never logged in from: an account with a second
    // factor goes on, to an mfa_token whatever the password (its verdict is withheld until a
    // code, so that the lock-out is no password oracle); every other stays refused unhashed,
    // as before (issue 19 item 6).
    let past_cap = match (&gate, &email) {
        (Gate::Capped { .. }, Some(e)) => {
            crate::db::mfa::second_factor_by_email(&store.db, e.as_str()).await?
        }
        _ => false,
    };
    if past_cap {
        gate = guards.logins.begin_past_cap(&account, ip).await;
    }
    let slowed = match gate {
        Gate::Locked {
            retry_after_s,
            first,
        }
        | Gate::Capped {
            retry_after_s,
            first,
        } => {
            return Err(refuse_login(
                store,
                guards,
                sinks,
                email.as_ref(),
                first,
                retry_after_s,
                meta,
            )
            .await);
        }
        Gate::Open { delay } => delay,
    };
    // Until a verdict is reached, the attempt may be taken back (shed with 503, a fault).
    let mut pending = Pending {
        guard: &guards.logins,
        account: &account,
        ip,
        settled: false,
    };
    if !slowed.is_zero() {
        // Many failures on this account from anywhere: answer slowly, never refuse (no lock-out by others).
        tokio::time::sleep(slowed).await;
    }
    let found = match &email {
        Some(e) if password.len() <= MAX_LOGIN_BYTES => {
            users::find_credentials(&store.db, e.as_str()).await?
        }
        _ => None,
    };
    let (user, hash) = match found {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    // An over-long password is checked against the dummy hash, truncated: it cannot match anyway.
    let presented = if password.len() <= MAX_LOGIN_BYTES {
        password
    } else {
        &password[..password.floor_char_boundary(MAX_LOGIN_BYTES)]
    };
    let verdict = identity.hasher.verify(presented, hash).await?;
    pending.settled = true;

    // Past the cap a right and a wrong password of an account with a second factor leave the
    // same traces: the same event (the detectors and containment count it alike: a block of the
    // address must not tell a wrong guess from a right one), the same metric, no rehash (a second
    // hash only for a right password would be a timing oracle), and an mfa_token; only the
    // token knows, and only a valid code after a right password completes it.
    if let Some(u) = user.as_ref().filter(|u| past_cap && !u.disabled) {
        let password_ok = matches!(verdict, Verdict::Match { .. });
        sinks.metrics.auth(AuthStatus::Failure);
        Event::new(audit::Action::AuthLogin, audit::Outcome::Failure)
            .actor(u.id)
            .target(u.id)
            .detail(format!(
                "password from an address past the account's lock-out; its verdict waits for the second factor{}",
                if slowed.is_zero() { String::new() } else { format!("; answer slowed by {} ms", slowed.as_millis()) }
            ))
            .emit(&sinks.events, meta)
            .await;
        if !crate::db::mfa::requires_second_factor(&store.db, u.id).await? {
            // Its second factor went between the two reads: refused as past the cap.
            let retry_after_s = guards.logins.policy().forget_after.as_secs();
            return Err(refuse_login(
                store,
                guards,
                sinks,
                email.as_ref(),
                false,
                retry_after_s,
                meta,
            )
            .await);
        }
        return Ok(SignedIn {
            user: u.clone(),
            new_hash: None,
            second_factor: true,
            password_ok,
        });
    }
    let user = match (verdict, user) {
        (Verdict::Match { rehash }, Some(u)) if !u.disabled => (u, rehash),
        (_, u) => {
            let reason = match (&u, verdict) {
                (None, _) => "unknown account",
                (Some(u), Verdict::Match { .. }) if u.disabled => "account disabled",
                _ => "wrong password",
            };
            let detail = if slowed.is_zero() {
                reason.to_owned()
            } else {
                format!("{reason}; answer slowed by {} ms", slowed.as_millis())
            };
            sinks.metrics.auth(AuthStatus::Failure);
            let mut e =
                Event::new(audit::Action::AuthLogin, audit::Outcome::Failure).detail(detail);
            e = match &u {
                Some(u) => e.actor(u.id).target(u.id),
                // The account tried, pseudonymous: the credential-stuffing detector counts distinct ones.
                None => e.target(format!("login:{}", &sha256_hex(&account)[..16])),
            };
            e.emit(&sinks.events, meta).await;
            return Err(invalid_grant());
        }
    };
    let (user, rehash) = user;
    // With a second factor the sign-in is not over: the guard's count of this account's
    // failures stays until the code is right too (`mfa::pass`), or a right password would wipe
    // the count of wrong codes.
    let second_factor = crate::db::mfa::requires_second_factor(&store.db, user.id).await?;
    if !second_factor {
        guards.logins.succeeded(&account, ip).await;
    }
    sinks.metrics.auth(AuthStatus::Success);
    // The new hash is computed before any transaction opens: no lock is held while hashing.
    let new_hash = if rehash {
        Some(identity.hasher.hash(password).await?)
    } else {
        None
    };
    Ok(SignedIn {
        user,
        new_hash,
        second_factor,
        password_ok: true,
    })
}

/// A sign-in the login guard refused: counted, recorded (`record_refusal`), answered 429.
async fn refuse_login(
    store: &Store,
    guards: &Guards,
    sinks: &Sinks,
    email: Option<&Email>,
    first: bool,
    retry_after_s: u64,
    meta: &RequestMeta,
) -> AppError {
    sinks.metrics.auth(AuthStatus::Locked);
    record_refusal(store, guards, sinks, email, first, retry_after_s, meta).await;
    AppError::RateLimited { retry_after_s }
}

/// A guess the login guard refused is still a guess: an `auth.login` `throttled` event against
/// the account it aimed at, which the brute-force detector counts with the failures (ASVS
/// V16.3.1). Past the lock a refusal costs the attacker no hash, so only the first
/// `REFUSAL_EVENTS` per account and window are written, and the account is looked up only for
/// those; the others, and every refusal of a name that is not an email address (it aims at no
/// account, and all such names share one key), are counted in `security_events_skipped_total`.
async fn record_refusal(
    store: &Store,
    guards: &Guards,
    sinks: &Sinks,
    email: Option<&Email>,
    first: bool,
    retry_after_s: u64,
    meta: &RequestMeta,
) {
    const ACTION: audit::Action = audit::Action::AuthLogin;
    let Some(email) = email else {
        sinks.metrics.event_skipped(ACTION);
        return;
    };
    let Some(note) = super::refusal_recorded(guards, sinks, ACTION, email.as_str()) else {
        return;
    };
    let mut e = refusal_event(ACTION, first, retry_after_s, note);
    e = match users::id_by_email(&store.readers, email.as_str()).await {
        Ok(Some(id)) => e.actor(id).target(id),
        Ok(None) => e.target(format!("login:{}", &sha256_hex(email.as_str())[..16])),
        Err(err) => {
            // The 429 stands; the event is kept without its account.
            tracing::warn!(error = %err, "looking up a locked account failed");
            e
        }
    };
    e.emit(&sinks.events, meta).await;
}

/// The `throttled` event of a guess the login guard refused (`note`: `refusal_recorded`'s).
pub(crate) fn refusal_event(
    action: audit::Action,
    first: bool,
    retry_after_s: u64,
    note: &str,
) -> Event {
    let detail = if first {
        format!("too many failures from this address; locked for {retry_after_s} s{note}")
    } else {
        format!("refused: this address stays locked for {retry_after_s} s{note}")
    };
    Event::new(action, audit::Outcome::Throttled).detail(detail)
}

/// The client address of a request (unspecified when unknown, which then shares one budget).
pub(crate) fn client(meta: &RequestMeta) -> std::net::IpAddr {
    meta.ip.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}

/// OAuth2 refresh grant: the refresh token is spent and a new one issued. Presenting a token
/// spent while its session was live again is taken as theft: the whole session (every token of
/// the family) is revoked. A token of an ended session is refused and never spent.
#[tracing::instrument(skip_all)]
///
/// A refresh token is bound to the client it was issued to (`client`: the client that
/// authenticated this request; none for the password grant's sessions): presented by any other,
/// it is refused and not spent.
pub async fn refresh(
    store: &Store,
    identity: &Identity,
    sinks: &Sinks,
    config: &Config,
    token: &str,
    client: Option<ClientId>,
    meta: &RequestMeta,
) -> Result<TokenPair> {
    if token.len() != REFRESH_TOKEN_LEN {
        return Err(invalid_grant());
    }
    let hash = sha256_hex(token);
    let now = Timestamp::now();
    let mut tx = store.db.begin_write().await?;
    let Some(session) = sessions::spend_refresh(&mut tx, &hash, now).await? else {
        let spent = sessions::find_refresh(&mut tx, &hash)
            .await?
            .is_some_and(|r| r.spent);
        if !spent {
            // Unknown, expired, or of an ended session (signed out, contained, disabled): no
            // reuse, nothing to record.
            return Err(invalid_grant());
        }
        // The first replay of a token spent while its session was live is recorded (the
        // detector raises an incident on each record) and ends the session if it is still live,
        // whoever revoked it since: a thief who refreshed first and then revoked the session
        // still raises one. The session keeps its first revocation reason. Any other replay (in
        // a session whose reuse was already recorded, or of a token spent after its session
        // ended) is refused the same way and only counted, so that replays cannot page the
        // on-call.
        let Some(reused) = sessions::mark_reused(&mut tx, &hash, now).await? else {
            sinks.metrics.event_skipped(audit::Action::AuthRefreshReuse);
            return Err(invalid_grant());
        };
        Event::new(
            audit::Action::AuthRefreshReuse,
            audit::Outcome::SessionRevoked,
        )
        .target(reused)
        .detail("a spent refresh token was presented again; its whole family is revoked")
        .record(&mut tx, meta)
        .await?;
        store.commit(tx).await?;
        tracing::warn!(target: "security", session = %reused, "refresh token reuse: session revoked");
        return Err(invalid_grant());
    };
    let Some(live) = sessions::live_session(&mut tx, session, now).await? else {
        // Ended between the two statements (PostgreSQL reads each at its own start): the token
        // is not spent (the transaction is rolled back).
        return Err(invalid_grant());
    };
    if live.client != client {
        // Another client's token (or a client's token without its client): rolled back, not
        // spent, so that its own client can still use it.
        drop(tx);
        Event::new(audit::Action::AuthRefresh, audit::Outcome::Failure)
            .actor(live.user)
            .target(session)
            .detail(match (live.client, client) {
                (Some(_), Some(_)) => "a refresh token presented by another client than its own",
                (Some(_), None) => "a client's refresh token presented without its client",
                _ => "a password-grant refresh token presented by a client",
            })
            .emit(&sinks.events, meta)
            .await;
        return Err(invalid_grant());
    }
    let user = users::find(&mut tx, live.user)
        .await?
        .ok_or_else(invalid_grant)?;
    let refresh_token = new_refresh_token(
        &mut tx,
        session,
        now,
        live.expires_at,
        config.refresh_token_ttl,
    )
    .await?;
    Event::new(audit::Action::AuthRefresh, audit::Outcome::Success)
        .actor(user.id)
        .target(session)
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    let to = Subject {
        user: user.id,
        role: user.role,
        session,
        client: live.client,
        scopes: live.scopes,
        signed_in: Some(SignedInWith {
            method: live.method,
            at: live.auth_time,
        }),
    };
    pair(identity, &to, now, Some(refresh_token))
}

/// RFC 7009: a refresh token ends its session; an access token's id is denied until it expires.
/// Unknown or malformed tokens are not an error (the answer is always 200).
#[tracing::instrument(skip_all)]
pub async fn revoke(
    store: &Store,
    identity: &Identity,
    token: &str,
    meta: &RequestMeta,
) -> Result<()> {
    let now = Timestamp::now();
    if token.len() == REFRESH_TOKEN_LEN {
        let mut tx = store.db.begin_write().await?;
        if let Some(r) = sessions::find_refresh(&mut tx, &sha256_hex(token)).await?
            && sessions::revoke(&mut tx, r.session, "revoked by client", now).await?
        {
            Event::new(audit::Action::AuthRevoke, audit::Outcome::SessionRevoked)
                .target(r.session)
                .record(&mut tx, meta)
                .await?;
        }
        store.commit(tx).await?;
    } else if let Ok(v) = identity.tokens.verify(token, now) {
        let mut tx = store.db.begin().await?;
        sessions::deny_jti(&mut tx, &v.jti, v.expires_at).await?;
        Event::new(audit::Action::AuthRevoke, audit::Outcome::AccessTokenDenied)
            .actor(v.user)
            .target(v.session)
            .record(&mut tx, meta)
            .await?;
        store.commit(tx).await?;
    } else if let Some(legacy) = identity.legacy.as_deref()
        && let Ok(old) = legacy.verify(token, now)
        && let Some((user, _, _)) = sessions::legacy_account(&store.readers, &old.source_id).await?
    {
        // An old stack's token names no session nor id: revoking it ends every old token of
        // its account (new sign-ins are untouched).
        let mut tx = store.db.begin().await?;
        sessions::revoke_legacy_of(&mut tx, user, now).await?;
        Event::new(audit::Action::AuthRevoke, audit::Outcome::AccessTokenDenied)
            .actor(user)
            .target(user)
            .detail("an access token of the replaced stack: every old token of the account is refused from now on")
            .record(&mut tx, meta)
            .await?;
        store.commit(tx).await?;
    }
    Ok(())
}

/// A login attempt counted by the guard; dropped before its verdict, the count is taken back.
struct Pending<'a> {
    guard: &'a crate::limits::login::Logins,
    account: &'a str,
    ip: std::net::IpAddr,
    settled: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.guard.not_attempted(self.account, self.ip);
        }
    }
}

/// Verifies a bearer token and the current state of its user and session. Tokens that fail
/// verification (not merely expired) are counted by address for the forged-token detector.
pub async fn authenticate(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    token: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<Principal> {
    authenticate_checked(
        store,
        identity,
        guards,
        sinks,
        token,
        identity.tokens.verify(token, Timestamp::now()),
        ip,
    )
    .await
}

/// `authenticate` for a token whose signature and claims were already checked in this request
/// (by the rate-limit layer), with that check's outcome: a refused token is counted and refused
/// without being verified a second time by imangor's keys. A token refused for its header (not
/// one of imangor's) is tried as the old stack's when `IMANGOR_LEGACY_JWT_SECRET` is set.
pub async fn authenticate_checked(
    store: &Store,
    identity: &Identity,
    guards: &Guards,
    sinks: &Sinks,
    token: &str,
    checked: std::result::Result<Verified, TokenError>,
    ip: Option<std::net::IpAddr>,
) -> Result<Principal> {
    let v = match (checked, identity.legacy.as_deref()) {
        (Ok(v), _) => v,
        (Err(TokenError::Header), Some(legacy)) => {
            return match legacy.verify(token, Timestamp::now()) {
                Ok(old) => authenticate_legacy(store, legacy, sinks, old, ip).await,
                Err(e) => refuse(guards, sinks, e, ip).await,
            };
        }
        (Err(e), _) => return refuse(guards, sinks, e, ip).await,
    };
    authenticate_verified(store, identity, v).await
}

/// A refused token: counted by address for the forged-token watch unless it merely expired,
/// then the same 401 as every refusal.
async fn refuse(
    guards: &Guards,
    sinks: &Sinks,
    e: TokenError,
    ip: Option<std::net::IpAddr>,
) -> Result<Principal> {
    if e != TokenError::Expired
        && let Some(ip) = ip
        && guards.token_watch.refused(ip)
    {
        crate::service::containment::forged_tokens_seen(&sinks.events, ip).await;
    }
    Err(AppError::invalid_token(e.as_str()))
}

/// An old stack's token that verified: the account imported under its `sub`, with that
/// account's current role and status (the token's own `role`, if any, is never read). Each use
/// is counted (`legacy_tokens_accepted_total`) and written to the audit trail as
/// `auth.legacy_token`, once per account per `legacy::AUDIT_EVERY`, off the request path.
async fn authenticate_legacy(
    store: &Store,
    legacy: &LegacyTokens,
    sinks: &Sinks,
    old: LegacyVerified,
    ip: Option<std::net::IpAddr>,
) -> Result<Principal> {
    let (user, role, disabled) = sessions::legacy_account(&store.readers, &old.source_id)
        .await?
        .ok_or(AppError::invalid_token("legacy token: no imported account"))?;
    if disabled {
        return Err(AppError::invalid_token("account disabled"));
    }
    sinks.metrics.legacy_token_accepted();
    if legacy.should_record(user) {
        let meta = RequestMeta {
            ip,
            request_id: None,
        };
        Event::new(audit::Action::AuthLegacyToken, audit::Outcome::Success)
            .actor(user)
            .target(user)
            .detail(format!(
                "an access token of the replaced stack (user {}) was accepted; recorded once an hour per account",
                old.source_id
            ))
            .emit(&sinks.events, &meta)
            .await;
    }
    Ok(Principal::legacy(user, role, old.expires_at))
}

/// The second half of `authenticate`: the account and session state behind a verified token,
/// read from the database, or from the cache of the last second (`auth::cache`).
async fn authenticate_verified(
    store: &Store,
    identity: &Identity,
    v: Verified,
) -> Result<Principal> {
    // Everything the state is read for keys it: a token sharing another's `jti` but naming
    // another user or session is looked up on its own (and refused when they do not resolve).
    let key = crate::auth::cache::Key {
        user: v.user,
        session: v.session,
        jti: &v.jti,
    };
    let state = match identity.cache.get(key) {
        Some(s) => s,
        None => {
            let ticket = identity.cache.ticket();
            let s =
                sessions::auth_state(&store.readers, v.user, v.session, &v.jti, Timestamp::now())
                    .await?
                    .ok_or(AppError::invalid_token("no such account or session"))?;
            identity.cache.put(key, s.clone(), ticket);
            s
        }
    };
    if state.disabled {
        return Err(AppError::invalid_token("account disabled"));
    }
    if !state.session_active {
        return Err(AppError::invalid_token("session ended"));
    }
    if state.jti_denied {
        return Err(AppError::invalid_token("token revoked"));
    }
    let step_up = state.second_factor || identity.mfa_required_roles.contains(&state.role);
    Ok(Principal::new(
        v.user,
        state.role,
        v.session,
        v.expires_at,
        v.client,
        v.scopes,
    )
    .signed_in(v.mfa, v.auth_time, step_up))
}

pub(crate) async fn new_refresh_token(
    tx: &mut crate::db::Tx,
    session: SessionId,
    now: Timestamp,
    session_end: Timestamp,
    ttl: u64,
) -> Result<String> {
    let token = random_token(32)?;
    let expires = now.plus_seconds(ttl).min(session_end);
    sessions::insert_refresh(tx, &sha256_hex(&token), session, now, expires).await?;
    Ok(token)
}

/// Signs an access token for `to` and answers it with `refresh_token` (none: the
/// client-credentials grant) and the scopes it carries (a password-grant token: every scope,
/// its role deciding).
pub(crate) fn pair(
    identity: &Identity,
    to: &Subject,
    now: Timestamp,
    refresh_token: Option<String>,
) -> Result<TokenPair> {
    let (access_token, _) = identity
        .tokens
        .issue(to, now)
        .context("signing an access token")?;
    Ok(TokenPair {
        access_token,
        expires_in: identity.tokens.ttl_s,
        refresh_token,
        scope: to.scopes.unwrap_or_else(Scopes::all),
    })
}
