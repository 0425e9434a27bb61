//! Login sessions, their refresh tokens (stored as SHA-256 hashes only) and denied access-token ids.

use sqlx::Row;

use super::inline::InlineRow as _;
use super::readers::{Readers, on_reader};
use super::{Db, Tx, decode_err, on_db, on_tx};
use crate::domain::client::Scopes;
use crate::domain::{ClientId, Role, SessionId, SignInMethod, Timestamp, UserId};

/// What a request's access token is checked against: the user's current state, not the token's claims.
#[derive(Debug, Clone)]
pub struct AuthState {
    pub role: Role,
    pub disabled: bool,
    pub session_active: bool,
    pub jti_denied: bool,
    /// The account has a confirmed second factor (sensitive operations then need it).
    pub second_factor: bool,
}

/// A session to open.
pub struct NewSession {
    pub id: SessionId,
    pub user: UserId,
    /// The client its tokens are issued to (none: the password grant).
    pub client: Option<ClientId>,
    /// The scopes they are narrowed to (none: the whole role).
    pub scopes: Option<Scopes>,
    /// How the user signed in.
    pub method: SignInMethod,
    /// When the user signed in.
    pub auth_time: Timestamp,
    pub now: Timestamp,
    pub expires_at: Timestamp,
}

pub async fn create(tx: &mut Tx, s: &NewSession) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query(
        "insert into sessions (id, user_id, client_id, scope, mfa, amr, auth_time, created_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(s.id.to_string()).bind(s.user.to_string()).bind(s.client.map(|c| c.to_string()))
        .bind(s.scopes.map(|s| s.to_string())).bind(s.method.stored().0).bind(s.method.stored().1).bind(s.auth_time.micros())
        .bind(s.now.micros()).bind(s.expires_at.micros())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Ends every live session issued to `client` (the client was deleted): their refresh tokens
/// and access tokens stop working.
pub async fn revoke_client(
    tx: &mut Tx,
    client: ClientId,
    reason: &str,
    now: Timestamp,
) -> sqlx::Result<u64> {
    let done = on_tx!(tx, c => sqlx::query(
        "update sessions set revoked_at = $1, revoked_reason = $2 where client_id = $3 and revoked_at is null")
        .bind(now.micros()).bind(reason).bind(client.to_string()).execute(c).await.map(|r| r.rows_affected()))?;
    if done > 0 {
        tx.auth_changed();
    }
    Ok(done)
}

pub async fn insert_refresh(
    tx: &mut Tx,
    hash: &str,
    session: SessionId,
    now: Timestamp,
    expires_at: Timestamp,
) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query(
        "insert into refresh_tokens (token_hash, session_id, created_at, expires_at) values ($1, $2, $3, $4)")
        .bind(hash).bind(session.to_string()).bind(now.micros()).bind(expires_at.micros())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Marks an unspent, unexpired refresh token of a live session (not revoked, not expired, its
/// user not disabled) as spent and returns its session. A token of an ended session is never
/// spent, so a spent token is always one that was rotated while its session was live. Only one
/// of several concurrent callers can win: the update is conditional on `used_at is null`.
pub async fn spend_refresh(
    tx: &mut Tx,
    hash: &str,
    now: Timestamp,
) -> sqlx::Result<Option<SessionId>> {
    on_tx!(tx, c => {
        let row = sqlx::query(
            "update refresh_tokens set used_at = $1
             where token_hash = $2 and used_at is null and expires_at > $1
               and exists (select 1 from sessions s join users u on u.id = s.user_id
                           where s.id = refresh_tokens.session_id and s.revoked_at is null
                             and s.expires_at > $1 and not u.disabled)
             returning session_id")
            .bind(now.micros()).bind(hash).fetch_optional(c).await?;
        row.map(|r| session_id(r.try_get("session_id")?)).transpose()
    })
}

/// A refresh token known to the database, spent or not.
pub struct RefreshRecord {
    pub session: SessionId,
    pub spent: bool,
}

pub async fn find_refresh(tx: &mut Tx, hash: &str) -> sqlx::Result<Option<RefreshRecord>> {
    on_tx!(tx, c => {
        let row = sqlx::query("select session_id, used_at from refresh_tokens where token_hash = $1")
            .bind(hash).fetch_optional(c).await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(RefreshRecord {
                session: session_id(r.try_get("session_id")?)?,
                spent: r.try_get::<Option<i64>, _>("used_at")?.is_some(),
            })),
        }
    })
}

/// A live session as a refresh reads it.
pub struct LiveSession {
    pub user: UserId,
    /// The session's absolute expiry: a refresh token never outlives it.
    pub expires_at: Timestamp,
    /// The client its tokens were issued to (none: the password grant).
    pub client: Option<ClientId>,
    /// The scopes its tokens are narrowed to (none: the whole role).
    pub scopes: Option<Scopes>,
    /// How and when its user signed in.
    pub method: SignInMethod,
    pub auth_time: Timestamp,
}

/// The owner, absolute expiry and client of a session, if the session is live and its user may
/// log in: one statement for all three.
pub async fn live_session(
    tx: &mut Tx,
    session: SessionId,
    now: Timestamp,
) -> sqlx::Result<Option<LiveSession>> {
    on_tx!(tx, c => {
        let row = sqlx::query(
            "select s.user_id, s.expires_at, s.client_id, s.scope, s.mfa, s.amr, coalesce(s.auth_time, s.created_at) as auth_time from sessions s join users u on u.id = s.user_id
             where s.id = $1 and s.revoked_at is null and s.expires_at > $2 and not u.disabled")
            .bind(session.to_string()).bind(now.micros()).fetch_optional(c).await?;
        row.map(|r| {
            let id: String = r.try_get("user_id")?;
            let client: Option<String> = r.try_get("client_id")?;
            let scope: Option<String> = r.try_get("scope")?;
            Ok(LiveSession {
                user: id.parse().map_err(|_| decode_err("user id", &id))?,
                expires_at: Timestamp::from_micros(r.try_get("expires_at")?),
                client: client
                    .map(|c| c.parse().map_err(|_| decode_err("client id", &c)))
                    .transpose()?,
                scopes: scope
                    .map(|s| Scopes::parse(&s).map_err(|_| decode_err("scope", &s)))
                    .transpose()?,
                method: SignInMethod::from_stored(
                    r.try_get("mfa")?,
                    r.try_get::<Option<String>, _>("amr")?.as_deref(),
                ),
                auth_time: Timestamp::from_micros(r.try_get("auth_time")?),
            })
        }).transpose()
    })
}

/// Ends a session: its refresh tokens and the access tokens issued from it stop working.
pub async fn revoke(
    tx: &mut Tx,
    session: SessionId,
    reason: &str,
    now: Timestamp,
) -> sqlx::Result<bool> {
    let done = on_tx!(tx, c => sqlx::query(
        "update sessions set revoked_at = $1, revoked_reason = $2 where id = $3 and revoked_at is null")
        .bind(now.micros()).bind(reason).bind(session.to_string()).execute(c).await.map(|r| r.rows_affected()))?;
    // Only a real change drops the replicas' caches (a repeated revocation must not).
    if done > 0 {
        tx.auth_changed();
    }
    Ok(done > 0)
}

/// The reason a session ended on a reused refresh token, when the reuse is what ended it.
pub const REUSE_REASON: &str = "refresh token reuse";

/// Records a reuse of the spent refresh token `hash` against its session, once per session
/// (`sessions.reuse_at` is set once) and only if the token was spent while the session was live:
/// the session is live, or was revoked after the token was spent (a thief who refreshed first
/// and then revoked the session). A live session ends with `REUSE_REASON`; an ended one keeps
/// its first revocation time and reason. Returns the session when the reuse was recorded now.
pub async fn mark_reused(
    tx: &mut Tx,
    hash: &str,
    now: Timestamp,
) -> sqlx::Result<Option<SessionId>> {
    // In an update every column read is the row's value before it (both backends). Both
    // subqueries are uncorrelated, so the session is found by its primary key, never by a scan.
    let recorded = on_tx!(tx, c => {
        let row = sqlx::query(
            "update sessions set reuse_at = $1,
                    revoked_reason = case when revoked_at is null then $2 else revoked_reason end,
                    revoked_at = coalesce(revoked_at, $1)
             where reuse_at is null
               and id = (select session_id from refresh_tokens
                         where token_hash = $3 and used_at is not null)
               and (revoked_at is null
                    or revoked_at > (select used_at from refresh_tokens where token_hash = $3))
             returning id")
            .bind(now.micros()).bind(REUSE_REASON).bind(hash).fetch_optional(c).await?;
        row.map(|r| session_id(r.try_get("id")?)).transpose()
    })?;
    if recorded.is_some() {
        // The session may have been live: the replicas drop their caches (once per session).
        tx.auth_changed();
    }
    Ok(recorded)
}

/// Ends every live session of a user, except `keep` (the caller's own, on a password change).
pub async fn revoke_all_of(
    tx: &mut Tx,
    user: UserId,
    keep: Option<SessionId>,
    reason: &str,
    now: Timestamp,
) -> sqlx::Result<u64> {
    let keep = keep.map(|k| k.to_string()).unwrap_or_default();
    let done = on_tx!(tx, c => sqlx::query(
        "update sessions set revoked_at = $1, revoked_reason = $2
         where user_id = $3 and revoked_at is null and id <> $4")
        .bind(now.micros()).bind(reason).bind(user.to_string()).bind(keep).execute(c).await.map(|r| r.rows_affected()))?;
    if done > 0 {
        tx.auth_changed();
    }
    // The old stack's tokens of the account (they belong to no session) end with its sessions.
    revoke_legacy_of(tx, user, now).await?;
    Ok(done)
}

/// From now on no access token of the replaced stack is accepted for `user` (its tokens carry no
/// issue time to tell older from newer).
pub async fn revoke_legacy_of(tx: &mut Tx, user: UserId, now: Timestamp) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query(
        "update legacy_ids set tokens_revoked_at = $1
         where source_table = 'users' and target_id = $2 and tokens_revoked_at is null")
        .bind(now.micros()).bind(user.to_string()).execute(c).await.map(drop))?;
    Ok(())
}

/// Denies one access token until it expires (RFC 7009 revocation of an access token).
pub async fn deny_jti(tx: &mut Tx, jti: &str, expires_at: Timestamp) -> sqlx::Result<()> {
    let added = on_tx!(tx, c => sqlx::query("insert into denied_tokens (jti, expires_at) values ($1, $2) on conflict (jti) do nothing")
        .bind(jti).bind(expires_at.micros()).execute(c).await.map(|r| r.rows_affected()))?;
    if added > 0 {
        tx.auth_changed();
    }
    Ok(())
}

/// Maps a row of `AUTH_STATE` (a sqlx or an inline row: both have `try_get`).
macro_rules! auth_state_row {
    ($r:expr, $now:expr) => {{
        let r = $r;
        let role: String = r.try_get("role")?;
        let revoked: Option<i64> = r.try_get("revoked_at")?;
        let expires: i64 = r.try_get("expires_at")?;
        AuthState {
            role: Role::parse(&role).ok_or_else(|| decode_err("role", &role))?,
            disabled: r.try_get("disabled")?,
            session_active: revoked.is_none() && expires > $now.micros(),
            jti_denied: {
                let n: i64 = r.try_get("denied")?;
                n > 0
            },
            second_factor: {
                let n: i64 = r.try_get("factors")?;
                n > 0
            },
        }
    }};
}

const AUTH_STATE: &str = "select u.role, u.disabled, s.revoked_at, s.expires_at,
        (select count(*) from denied_tokens d where d.jti = $3) as denied,
        ((select count(*) from mfa_totp m where m.user_id = u.id and m.confirmed_at is not null)
         + (select count(*) from passkeys k where k.user_id = u.id)) as factors
    from users u join sessions s on s.user_id = u.id
    where u.id = $1 and s.id = $2";

/// One query per authenticated request: the user's role and status, the session's liveness
/// and whether the token's id was denied. `None` when the user or the session does not exist.
pub async fn auth_state(
    readers: &Readers,
    user: UserId,
    session: SessionId,
    jti: &str,
    now: Timestamp,
) -> sqlx::Result<Option<AuthState>> {
    let (user, session) = (user.to_string(), session.to_string());
    let inline = readers.inline().and_then(|i| {
        let params: [(&str, &dyn rusqlite::ToSql); 3] =
            [("$1", &user), ("$2", &session), ("$3", &jti)];
        i.row(AUTH_STATE, &params, |r| Ok(auth_state_row!(r, now)))
    });
    if let Some(state) = inline {
        return Ok(state);
    }
    on_reader!(readers, c => {
        let row = sqlx::query(AUTH_STATE)
            .bind(&user).bind(&session).bind(jti)
            .fetch_optional(c).await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(auth_state_row!(&r, now))),
        }
    })
}

/// Maps a row of `LEGACY_ACCOUNT` (a sqlx or an inline row).
macro_rules! legacy_account_row {
    ($r:expr) => {{
        let r = $r;
        let id: String = r.try_get("id")?;
        let role: String = r.try_get("role")?;
        (
            id.parse().map_err(|_| decode_err("id", &id))?,
            Role::parse(&role).ok_or_else(|| decode_err("role", &role))?,
            r.try_get("disabled")?,
        )
    }};
}

const LEGACY_ACCOUNT: &str =
    "select u.id, u.role, u.disabled from legacy_ids l join users u on u.id = l.target_id
    where l.source_table = 'users' and l.source_id = $1
      and not l.merged and l.tokens_revoked_at is null";

/// The account an old stack's user id was imported as (`legacy_ids`, table `users`), with its
/// current role and status. `None` when no account was imported under that id, when the id was
/// merged onto an account that already existed, or when the account's old tokens were revoked.
pub async fn legacy_account(
    readers: &Readers,
    source_id: &str,
) -> sqlx::Result<Option<(UserId, Role, bool)>> {
    let inline = readers.inline().and_then(|i| {
        i.row(LEGACY_ACCOUNT, &[("$1", &source_id)], |r| {
            Ok(legacy_account_row!(r))
        })
    });
    if let Some(account) = inline {
        return Ok(account);
    }
    on_reader!(readers, c => {
        let row = sqlx::query(LEGACY_ACCOUNT).bind(source_id).fetch_optional(c).await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(legacy_account_row!(&r))),
        }
    })
}

/// Deletes what can no longer be used: denied ids of tokens past their expiry and its leeway,
/// refresh tokens of expired sessions, the sessions of client-credentials tokens (one per
/// token, its user the client's service account) once their token expired, and authorization
/// codes and consent tickets a day after they expired (a late second use of a code is still
/// recognised as reuse until then), and expired mfa tokens and WebAuthn challenges.
pub async fn prune(db: &Db, now: Timestamp) -> sqlx::Result<u64> {
    // A token is accepted up to the leeway past its `exp`: what refuses it must outlive that.
    let past_leeway = now.micros() - crate::auth::token::JWT_LEEWAY_S as i64 * 1_000_000;
    let day_ago = now.micros() - 86_400 * 1_000_000;
    let n = on_db!(db, c => {
        let a = sqlx::query("delete from denied_tokens where expires_at < $1")
            .bind(past_leeway).execute(c).await?;
        let b = sqlx::query("delete from refresh_tokens where expires_at < $1").bind(now.micros()).execute(c).await?;
        let d = sqlx::query("delete from sessions where expires_at < $1 and client_id is not null and user_id = client_id")
            .bind(past_leeway).execute(c).await?;
        let e = sqlx::query("delete from oauth_codes where expires_at < $1").bind(day_ago).execute(c).await?;
        let f = sqlx::query("delete from oauth_consents where expires_at < $1").bind(now.micros()).execute(c).await?;
        let g = sqlx::query("delete from mfa_tokens where expires_at < $1").bind(now.micros()).execute(c).await?;
        let h = sqlx::query("delete from webauthn_challenges where expires_at < $1").bind(now.micros()).execute(c).await?;
        a.rows_affected() + b.rows_affected() + d.rows_affected() + e.rows_affected() + f.rows_affected()
            + g.rows_affected() + h.rows_affected()
    });
    Ok(n)
}

fn session_id(s: String) -> sqlx::Result<SessionId> {
    s.parse().map_err(|_| decode_err("session id", &s))
}

/// Sessions neither revoked nor past their absolute expiry (the `active_sessions` gauge).
pub async fn count_active(db: &Db, now: Timestamp) -> sqlx::Result<i64> {
    on_db!(db, p => sqlx::query_scalar("select count(*) from sessions where revoked_at is null and expires_at > $1")
        .bind(now.micros()).fetch_one(p).await)
}

/// The user a session belongs to.
pub async fn owner(tx: &mut Tx, session: &str) -> sqlx::Result<Option<String>> {
    on_tx!(tx, c => sqlx::query_scalar("select user_id from sessions where id = $1")
        .bind(session).fetch_optional(c).await)
}
