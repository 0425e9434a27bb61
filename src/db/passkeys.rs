//! Passkeys (WebAuthn credentials) and the challenges their ceremonies answer (hashes only).

use sqlx::Row;

use super::{Tx, decode_err, on_tx};
use crate::domain::{Timestamp, UserId};

/// A registered passkey.
pub struct Passkey {
    pub id: String,
    pub user: UserId,
    pub credential_id: Vec<u8>,
    /// The COSE_Key exactly as the authenticator sent it.
    pub public_key: Vec<u8>,
    pub alg: i64,
    pub sign_count: u32,
    pub backup_eligible: bool,
    pub backed_up: bool,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, user_id, credential_id, public_key, alg, sign_count, backup_eligible, backed_up, name, created_at, last_used_at";

macro_rules! passkey_row {
    ($r:expr) => {{
        let r = $r;
        let user: String = r.try_get("user_id")?;
        let count: i64 = r.try_get("sign_count")?;
        Ok::<_, sqlx::Error>(Passkey {
            id: r.try_get("id")?,
            user: user.parse().map_err(|_| decode_err("user id", &user))?,
            credential_id: r.try_get("credential_id")?,
            public_key: r.try_get("public_key")?,
            alg: r.try_get::<i32, _>("alg")?.into(),
            sign_count: u32::try_from(count)
                .map_err(|_| decode_err("sign count", &count.to_string()))?,
            backup_eligible: r.try_get("backup_eligible")?,
            backed_up: r.try_get("backed_up")?,
            name: r.try_get("name")?,
            created_at: Timestamp::from_micros(r.try_get("created_at")?),
            last_used_at: r
                .try_get::<Option<i64>, _>("last_used_at")?
                .map(Timestamp::from_micros),
        })
    }};
}

/// Stores a new passkey; false when its credential id is already registered (to any account).
pub async fn insert(tx: &mut Tx, p: &Passkey) -> sqlx::Result<bool> {
    let alg = i32::try_from(p.alg).map_err(|_| decode_err("alg", &p.alg.to_string()))?;
    let n = on_tx!(tx, c => sqlx::query(
        "insert into passkeys (id, user_id, credential_id, public_key, alg, sign_count, backup_eligible, backed_up, name, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) on conflict (credential_id) do nothing")
        .bind(&p.id).bind(p.user.to_string()).bind(&p.credential_id).bind(&p.public_key).bind(alg)
        .bind(i64::from(p.sign_count)).bind(p.backup_eligible).bind(p.backed_up).bind(&p.name)
        .bind(p.created_at.micros())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The account's passkeys, oldest first.
pub async fn of_user(tx: &mut Tx, user: UserId) -> sqlx::Result<Vec<Passkey>> {
    let sql = format!("select {COLUMNS} from passkeys where user_id = $1 order by created_at, id"); // sql: names only
    on_tx!(tx, c => {
        let rows = sqlx::query(&sql).bind(user.to_string()).fetch_all(c).await?;
        rows.iter().map(|r| passkey_row!(r)).collect()
    })
}

/// The passkey a browser names by its credential id.
pub async fn by_credential(tx: &mut Tx, credential_id: &[u8]) -> sqlx::Result<Option<Passkey>> {
    let sql = format!("select {COLUMNS} from passkeys where credential_id = $1"); // sql: names only
    on_tx!(tx, c => {
        let row = sqlx::query(&sql).bind(credential_id).fetch_optional(c).await?;
        row.map(|r| passkey_row!(&r)).transpose()
    })
}

/// Records a verified use: the new counter and backup state, only while the counter is still
/// the one the assertion was checked against (of two uses racing, one wins). False otherwise.
pub async fn record_use(
    tx: &mut Tx,
    read: &Passkey,
    sign_count: u32,
    backed_up: bool,
    now: Timestamp,
) -> sqlx::Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "update passkeys set sign_count = $1, backed_up = $2, last_used_at = $3
         where id = $4 and sign_count = $5")
        .bind(i64::from(sign_count)).bind(backed_up).bind(now.micros()).bind(&read.id)
        .bind(i64::from(read.sign_count))
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Removes one of the account's passkeys; false when it has none of that id.
pub async fn delete(tx: &mut Tx, user: UserId, id: &str) -> sqlx::Result<bool> {
    let n = on_tx!(tx, c => sqlx::query("delete from passkeys where id = $1 and user_id = $2")
        .bind(id).bind(user.to_string()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// What a WebAuthn challenge was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony<'a> {
    /// A passkey for this account.
    Register { user: UserId },
    /// A passkey alone, on the sign-in page of the browser bound to `binding`.
    SignIn { binding: &'a str },
    /// A passkey after this account's right password, on that browser's page.
    SecondFactor { user: UserId, binding: &'a str },
}

impl Ceremony<'_> {
    fn parts(&self) -> (&'static str, Option<String>, Option<&str>) {
        match self {
            Ceremony::Register { user } => ("register", Some(user.to_string()), None),
            Ceremony::SignIn { binding } => ("sign_in", None, Some(binding)),
            Ceremony::SecondFactor { user, binding } => {
                ("second_factor", Some(user.to_string()), Some(binding))
            }
        }
    }
}

pub async fn insert_challenge(
    tx: &mut Tx,
    hash: &str,
    ceremony: Ceremony<'_>,
    expires_at: Timestamp,
) -> sqlx::Result<()> {
    let (purpose, user, binding) = ceremony.parts();
    on_tx!(tx, c => sqlx::query(
        "insert into webauthn_challenges (challenge_hash, purpose, user_id, binding, expires_at) values ($1, $2, $3, $4, $5)")
        .bind(hash).bind(purpose).bind(user).bind(binding).bind(expires_at.micros())
        .execute(c).await.map(drop))
}

/// Takes (deletes) a live challenge issued for exactly this ceremony: single use, whatever
/// the answer turns out to be. False when it is unknown, expired, spent or for another one.
pub async fn take_challenge(
    tx: &mut Tx,
    hash: &str,
    ceremony: Ceremony<'_>,
    now: Timestamp,
) -> sqlx::Result<bool> {
    let (purpose, user, binding) = ceremony.parts();
    let n = on_tx!(tx, c => sqlx::query(
        "delete from webauthn_challenges where challenge_hash = $1 and purpose = $2
           and coalesce(user_id, '') = coalesce($3, '') and coalesce(binding, '') = coalesce($4, '')
           and expires_at > $5")
        .bind(hash).bind(purpose).bind(user).bind(binding).bind(now.micros())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Drops the live challenges of exactly this ceremony (a new one takes their place).
pub async fn drop_challenges(tx: &mut Tx, ceremony: Ceremony<'_>) -> sqlx::Result<()> {
    let (purpose, user, binding) = ceremony.parts();
    on_tx!(tx, c => sqlx::query(
        "delete from webauthn_challenges where purpose = $1
           and coalesce(user_id, '') = coalesce($2, '') and coalesce(binding, '') = coalesce($3, '')")
        .bind(purpose).bind(user).bind(binding)
        .execute(c).await.map(drop))
}

/// Removes every passkey of the account; how many.
pub async fn delete_all_of(tx: &mut Tx, user: UserId) -> sqlx::Result<u64> {
    on_tx!(tx, c => sqlx::query("delete from passkeys where user_id = $1")
        .bind(user.to_string()).execute(c).await.map(|r| r.rows_affected()))
}
