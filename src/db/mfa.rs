//! Second factors: a TOTP secret per account (sealed under the data keyring), its recovery codes
//! and the mfa tokens between a right password and the second factor (hashes only).

use sqlx::Row;

use super::{Db, Tx, decode_err, on_db, on_tx};
use crate::crypto::data::Ciphertext;
use crate::domain::{Timestamp, UserId};

/// Wrong second factors that end an `mfa_token`.
pub const MAX_FAILURES: i32 = 5;

/// What is bound into a TOTP secret's ciphertext: the account it belongs to.
pub fn binding(user: UserId) -> Vec<u8> {
    let mut b = b"totp\0".to_vec();
    b.extend_from_slice(user.as_uuid().as_bytes());
    b
}

/// An account's TOTP secret as stored.
pub struct Totp {
    pub key_id: String,
    pub secret: Vec<u8>,
    pub confirmed: bool,
    pub last_step: i64,
}

pub async fn totp(tx: &mut Tx, user: UserId) -> sqlx::Result<Option<Totp>> {
    on_tx!(tx, c => {
        let row = sqlx::query("select key_id, secret, confirmed_at, last_step from mfa_totp where user_id = $1")
            .bind(user.to_string()).fetch_optional(c).await?;
        row.map(|r| Ok(Totp {
            key_id: r.try_get("key_id")?,
            secret: r.try_get("secret")?,
            confirmed: r.try_get::<Option<i64>, _>("confirmed_at")?.is_some(),
            last_step: r.try_get("last_step")?,
        })).transpose()
    })
}

/// Starts (or restarts) an enrolment: a new secret, not yet confirmed. A confirmed secret is
/// never replaced this way (the caller checks).
pub async fn put_pending(
    tx: &mut Tx,
    user: UserId,
    sealed: &Ciphertext,
    now: Timestamp,
) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query(
        "insert into mfa_totp (user_id, key_id, secret, confirmed_at, last_step, created_at)
         values ($1, $2, $3, null, 0, $4)
         on conflict (user_id) do update set key_id = $2, secret = $3, confirmed_at = null, last_step = 0, created_at = $4
         where mfa_totp.confirmed_at is null")
        .bind(user.to_string()).bind(&sealed.key_id).bind(&sealed.bytes).bind(now.micros())
        .execute(c).await.map(drop))
}

/// Records an accepted step (only forward: a concurrent use of the same code loses) and, on the
/// first code, confirms the enrolment; only while the secret is still the one the code was
/// checked against (a restarted enrolment replaces it). False when another request took the
/// step first or the secret changed.
pub async fn accept_step(
    tx: &mut Tx,
    user: UserId,
    read: &Totp,
    step: i64,
    now: Timestamp,
) -> sqlx::Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "update mfa_totp set last_step = $1, confirmed_at = coalesce(confirmed_at, $2)
         where user_id = $3 and last_step < $1 and secret = $4")
        .bind(step).bind(now.micros()).bind(user.to_string()).bind(&read.secret)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Removes the account's TOTP secret and recovery codes.
pub async fn remove(tx: &mut Tx, user: UserId) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query("delete from mfa_recovery_codes where user_id = $1")
        .bind(user.to_string()).execute(c).await.map(drop))?;
    on_tx!(tx, c => sqlx::query("delete from mfa_totp where user_id = $1")
        .bind(user.to_string()).execute(c).await.map(drop))
}

/// Replaces the account's recovery codes with these hashes.
pub async fn set_recovery_codes(tx: &mut Tx, user: UserId, hashes: &[String]) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query("delete from mfa_recovery_codes where user_id = $1")
        .bind(user.to_string()).execute(c).await.map(drop))?;
    for h in hashes {
        on_tx!(tx, c => sqlx::query("insert into mfa_recovery_codes (user_id, code_hash) values ($1, $2)")
            .bind(user.to_string()).bind(h).execute(c).await.map(drop))?;
    }
    Ok(())
}

/// Spends an unused recovery code of the account; false when it is unknown or spent.
pub async fn spend_recovery_code(
    tx: &mut Tx,
    user: UserId,
    hash: &str,
    now: Timestamp,
) -> sqlx::Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "update mfa_recovery_codes set used_at = $1 where user_id = $2 and code_hash = $3 and used_at is null")
        .bind(now.micros()).bind(user.to_string()).bind(hash)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn recovery_codes_left(tx: &mut Tx, user: UserId) -> sqlx::Result<i64> {
    on_tx!(tx, c => sqlx::query_scalar(
        "select count(*) from mfa_recovery_codes where user_id = $1 and used_at is null")
        .bind(user.to_string()).fetch_one(c).await)
}

/// Where an mfa token may be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// The MFA grant of the token endpoint.
    Grant,
    /// The sign-in page, by the browser whose binding cookie hashes to this.
    Page { binding: &'a str },
}

impl Purpose<'_> {
    fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Purpose::Grant => ("grant", None),
            Purpose::Page { binding } => ("page", Some(binding)),
        }
    }
}

/// A new mfa token; `password_ok` false for one handed out past the account's lock-out to a
/// wrong password (no code completes it).
pub async fn insert_token(
    tx: &mut Tx,
    hash: &str,
    user: UserId,
    expires_at: Timestamp,
    purpose: Purpose<'_>,
    password_ok: bool,
) -> sqlx::Result<()> {
    let (purpose, binding) = purpose.parts();
    on_tx!(tx, c => sqlx::query(
        "insert into mfa_tokens (token_hash, user_id, expires_at, purpose, binding, password_ok) values ($1, $2, $3, $4, $5, $6)")
        .bind(hash).bind(user.to_string()).bind(expires_at.micros()).bind(purpose).bind(binding)
        .bind(i32::from(password_ok))
        .execute(c).await.map(drop))
}

/// Reserves one attempt on a live mfa token of this purpose (unexpired, unspent, fewer than
/// `max_attempts` reserved): the attempt is counted before the code is judged, so parallel
/// guesses cannot pass the limit. The token's account and whether its password was right,
/// when the attempt may go on.
pub async fn reserve_attempt(
    tx: &mut Tx,
    hash: &str,
    now: Timestamp,
    max_attempts: i32,
    purpose: Purpose<'_>,
) -> sqlx::Result<Option<(UserId, bool)>> {
    let (purpose, binding) = purpose.parts();
    let row: Option<(String, i32)> = on_tx!(tx, c => sqlx::query_as(
        "update mfa_tokens set failures = failures + 1
         where token_hash = $1 and expires_at > $2 and used_at is null and failures < $3
           and purpose = $4 and coalesce(binding, '') = coalesce($5, '')
         returning user_id, password_ok")
        .bind(hash).bind(now.micros()).bind(max_attempts).bind(purpose).bind(binding)
        .fetch_optional(c).await)?;
    row.map(|(id, ok)| {
        id.parse()
            .map(|id| (id, ok == 1))
            .map_err(|_| decode_err("user id", &id))
    })
    .transpose()
}

/// Spends a live mfa token; false when another request spent it first or it expired.
pub async fn spend_token(tx: &mut Tx, hash: &str, now: Timestamp) -> sqlx::Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "update mfa_tokens set used_at = $1 where token_hash = $2 and used_at is null and expires_at > $1")
        .bind(now.micros()).bind(hash).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// How many second factors an account has: a confirmed TOTP, and its passkeys.
const SECOND_FACTORS: &str =
    "select (select count(*) from mfa_totp where user_id = $1 and confirmed_at is not null)
     + (select count(*) from passkeys where user_id = $1)";

/// Whether the account has a confirmed second factor (TOTP or a passkey).
pub async fn has_second_factor(tx: &mut Tx, user: UserId) -> sqlx::Result<bool> {
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(
        SECOND_FACTORS)
        .bind(user.to_string()).fetch_one(c).await)?;
    Ok(n > 0)
}

/// The TOTP secrets not sealed under `current` (key rotation; few rows: one per account).
pub async fn not_under(tx: &mut Tx, current: &str) -> sqlx::Result<Vec<(UserId, Totp)>> {
    on_tx!(tx, c => {
        let rows = sqlx::query(
            "select user_id, key_id, secret, confirmed_at, last_step from mfa_totp where key_id <> $1 order by user_id")
            .bind(current).fetch_all(c).await?;
        rows.iter().map(|r| {
            let id: String = r.try_get("user_id")?;
            Ok((id.parse().map_err(|_| decode_err("user id", &id))?, Totp {
                key_id: r.try_get("key_id")?,
                secret: r.try_get("secret")?,
                confirmed: r.try_get::<Option<i64>, _>("confirmed_at")?.is_some(),
                last_step: r.try_get("last_step")?,
            }))
        }).collect()
    })
}

/// Replaces a TOTP secret's ciphertext if it is still the one read; false otherwise.
pub async fn reseal(
    tx: &mut Tx,
    user: UserId,
    read: &Totp,
    sealed: &Ciphertext,
) -> sqlx::Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "update mfa_totp set key_id = $1, secret = $2 where user_id = $3 and key_id = $4 and secret = $5")
        .bind(&sealed.key_id).bind(&sealed.bytes).bind(user.to_string()).bind(&read.key_id).bind(&read.secret)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Whether the enabled account of this email has a confirmed second factor (false for no
/// account): what the login guard's lock-out for new addresses lets through to a code. One
/// query whatever the answer.
pub async fn second_factor_by_email(db: &Db, email: &str) -> sqlx::Result<bool> {
    let n: i64 = on_db!(db, c => sqlx::query_scalar(
        "select count(*) from users u where u.email = $1 and not u.disabled
           and (exists (select 1 from mfa_totp t where t.user_id = u.id and t.confirmed_at is not null)
                or exists (select 1 from passkeys k where k.user_id = u.id))")
        .bind(email).fetch_one(c).await)?;
    Ok(n > 0)
}

/// `has_second_factor` outside a transaction: what a sign-in reads before its write transaction
/// opens (a deferred SQLite transaction that reads first may fail to upgrade to a write).
pub async fn requires_second_factor(db: &Db, user: UserId) -> sqlx::Result<bool> {
    let n: i64 = on_db!(db, c => sqlx::query_scalar(
        SECOND_FACTORS)
        .bind(user.to_string()).fetch_one(c).await)?;
    Ok(n > 0)
}

/// The account of a live mfa token of this purpose that may still take an attempt, without
/// reserving one (what a passkey challenge for the second step is issued to).
pub async fn live_token_user(
    tx: &mut Tx,
    hash: &str,
    now: Timestamp,
    max_attempts: i32,
    purpose: Purpose<'_>,
) -> sqlx::Result<Option<UserId>> {
    let (purpose, binding) = purpose.parts();
    let id: Option<String> = on_tx!(tx, c => sqlx::query_scalar(
        "select user_id from mfa_tokens
         where token_hash = $1 and expires_at > $2 and used_at is null and failures < $3
           and purpose = $4 and coalesce(binding, '') = coalesce($5, '')")
        .bind(hash).bind(now.micros()).bind(max_attempts).bind(purpose).bind(binding)
        .fetch_optional(c).await)?;
    id.map(|id| id.parse().map_err(|_| decode_err("user id", &id)))
        .transpose()
}
