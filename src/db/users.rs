//! The `users` table.

use sqlx::Row;

use super::{Db, Tx, TxConn, decode_err, on_db, on_tx};
use crate::authz::{Action, Authorized, Sealed};
use crate::domain::{Role, Timestamp, User, UserId};

/// A user to insert; the password is already hashed.
pub struct NewUser<'a> {
    pub id: UserId,
    pub email: &'a str,
    pub full_name: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub now: Timestamp,
}

/// The columns of `User`, spliced into statements at compile time (`concat!`), never at run time.
macro_rules! columns {
    () => {
        "id, email, full_name, role, disabled, created_at"
    };
}

/// What the account listings add to `columns!()`: the last login (the newest session) and the
/// count of confirmed second factors (the query reads `users` without an alias).
macro_rules! activity_columns {
    () => {
        "(select max(s.created_at) from sessions s where s.user_id = users.id) as last_login, \
         ((select count(*) from mfa_totp m where m.user_id = users.id and m.confirmed_at is not null) \
          + (select count(*) from passkeys k where k.user_id = users.id)) as factors"
    };
}

/// A row of `columns!()` and `activity_columns!()` as an `Activity`.
macro_rules! activity_row {
    ($r:expr) => {{
        let r = $r;
        let last: Option<i64> = r.try_get("last_login")?;
        let factors: i64 = r.try_get("factors")?;
        (user_row!(r), last.map(Timestamp::from_micros), factors > 0)
    }};
}

macro_rules! user_row {
    ($r:expr) => {{
        let r = $r;
        let id: String = r.try_get("id")?;
        let role: String = r.try_get("role")?;
        User {
            id: id.parse().map_err(|_| decode_err("user id", &id))?,
            email: r.try_get("email")?,
            full_name: r.try_get("full_name")?,
            role: Role::parse(&role).ok_or_else(|| decode_err("role", &role))?,
            disabled: r.try_get("disabled")?,
            created_at: Timestamp::from_micros(r.try_get("created_at")?),
        }
    }};
}

pub async fn insert(tx: &mut Tx, u: &NewUser<'_>) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query(
        "insert into users (id, email, full_name, password_hash, role, disabled, created_at, updated_at)
         values ($1, $2, $3, $4, $5, false, $6, $6)")
        .bind(u.id.to_string())
        .bind(u.email)
        .bind(u.full_name)
        .bind(u.password_hash)
        .bind(u.role.as_str())
        .bind(u.now.micros())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The user with this (normalised) email and their password hash.
pub async fn find_credentials(db: &Db, email: &str) -> sqlx::Result<Option<(User, String)>> {
    let sql: &str = concat!(
        "select ",
        columns!(),
        ", password_hash from users where email = $1"
    );
    on_db!(db, c => {
        let row = sqlx::query(sql).bind(email).fetch_optional(c).await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((user_row!(&r), r.try_get("password_hash")?))),
        }
    })
}

/// The id of the user with this (normalised) email, on a held reader connection: what a login
/// refused by the guard is recorded against (one indexed read, no password hash).
pub async fn id_by_email(
    readers: &super::readers::Readers,
    email: &str,
) -> sqlx::Result<Option<UserId>> {
    const SQL: &str = "select id from users where email = $1";
    let inline = readers.inline().and_then(|i| {
        i.row(SQL, &[("$1", &email)], |r| {
            super::inline::InlineRow::try_get::<String>(r, "id")
        })
    });
    let id: Option<String> = match inline {
        Some(id) => id,
        None => super::readers::on_reader!(readers, c => {
            sqlx::query_scalar(SQL).bind(email).fetch_optional(c).await
        })?,
    };
    id.map(|id| id.parse().map_err(|_| decode_err("user id", &id)))
        .transpose()
}

/// The password hash of a user (for a password change).
pub async fn password_hash(tx: &mut Tx, id: UserId) -> sqlx::Result<Option<String>> {
    on_tx!(tx, c => sqlx::query("select password_hash from users where id = $1")
        .bind(id.to_string()).fetch_optional(c).await?
        .map(|r| r.try_get("password_hash")).transpose())
}

pub async fn find(tx: &mut Tx, id: UserId) -> sqlx::Result<Option<User>> {
    let sql: &str = concat!("select ", columns!(), " from users where id = $1");
    on_tx!(tx, c => {
        match sqlx::query(sql).bind(id.to_string()).fetch_optional(c).await? {
            None => Ok(None),
            Some(r) => Ok(Some(user_row!(&r))),
        }
    })
}

/// What an account holds, against its quotas.
#[derive(Debug, Clone, Copy, Default)]
pub struct Holdings {
    pub resources: i64,
    pub secrets: i64,
}

/// How many resources and secrets the account holds (counts kept by triggers, migration 0008),
/// and its quota lock until the transaction ends, so that two creates of one account read and
/// insert one after the other (a quota is never overshot by concurrent creates). PostgreSQL:
/// `for no key update` on the account's row (it does not wait on inserts that only reference
/// the row); SQLite: `BEGIN IMMEDIATE` already serialises every writer.
pub async fn holdings_for_create(tx: &mut Tx, id: UserId) -> sqlx::Result<Holdings> {
    let sql = match &tx.conn {
        TxConn::Sqlite(_) => "select resource_count, secret_count from users where id = $1",
        TxConn::Postgres(_) => {
            "select resource_count, secret_count from users where id = $1 for no key update"
        }
    };
    let kept = on_tx!(tx, c => {
        match sqlx::query(sql).bind(id.to_string()).fetch_optional(c).await? {
            None => Holdings::default(),
            Some(r) => Holdings {
                resources: r.try_get("resource_count")?,
                secrets: r.try_get("secret_count")?,
            },
        }
    });
    if kept.resources >= 0 && kept.secrets >= 0 {
        return Ok(kept);
    }
    // A negative count is drift (a delete the triggers saw without its insert), never room: the
    // account's rows are counted instead, and the kept counts set to them under the lock held.
    let counted = on_tx!(tx, c => {
        let r = sqlx::query(
            "select (select count(*) from resources where owner_id = $1) as resources,
                    (select count(*) from secrets where owner_id = $1) as secrets")
            .bind(id.to_string()).fetch_one(c).await?;
        Holdings { resources: r.try_get("resources")?, secrets: r.try_get("secrets")? }
    });
    tracing::warn!(
        user_id = %id,
        kept_resources = kept.resources,
        kept_secrets = kept.secrets,
        counted_resources = counted.resources,
        counted_secrets = counted.secrets,
        "an account's kept quota count was negative (drift): its rows were counted and the count repaired"
    );
    on_tx!(tx, c => sqlx::query("update users set resource_count = $1, secret_count = $2 where id = $3")
        .bind(counted.resources).bind(counted.secrets).bind(id.to_string())
        .execute(c).await.map(drop))?;
    Ok(counted)
}

/// An account to act on, sealed until the policy allows it. Locks the row for the rest of the transaction on PostgreSQL (SQLite's `BEGIN IMMEDIATE` already holds the lock).
pub async fn find_for_update(tx: &mut Tx, id: UserId) -> sqlx::Result<Option<Sealed<User>>> {
    let sql = match &tx.conn {
        TxConn::Sqlite(_) => concat!("select ", columns!(), " from users where id = $1"),
        TxConn::Postgres(_) => concat!(
            "select ",
            columns!(),
            " from users where id = $1 for update"
        ),
    };
    on_tx!(tx, c => {
        match sqlx::query(sql).bind(id.to_string()).fetch_optional(c).await? {
            None => Ok(None),
            Some(r) => Ok(Some(Sealed::new(user_row!(&r)))),
        }
    })
}

/// A page of users in creation order (ids are UUIDv7, so id order is creation order), each with
/// its last login (the newest session it opened) and whether it has a second factor. `search`, when given, keeps the accounts whose
/// email or full name contains it, ignoring case (ASCII case on SQLite, Unicode on PostgreSQL);
/// `%`, `_` and `\` in it are matched literally.
pub async fn list(
    tx: &mut Tx,
    grant: &Authorized<()>,
    search: Option<&str>,
    after: Option<UserId>,
    limit: u32,
) -> crate::error::Result<Vec<Activity>> {
    grant.require(Action::AccountList)?;
    let after = after.map(|a| a.to_string()).unwrap_or_default();
    let pattern = search.map(|q| {
        let escaped = q
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let sql: &str = concat!(
        "select ",
        columns!(),
        ", ",
        activity_columns!(),
        " from users where id > $1
           and ($3 is null or lower(email) like $3 escape '\\' or lower(full_name) like $3 escape '\\')
         order by id limit $2"
    );
    on_tx!(tx, c => {
        let rows = sqlx::query(sql).bind(after).bind(i64::from(limit)).bind(pattern)
            .fetch_all(c).await?;
        Ok(rows.iter().map(|r| Ok(activity_row!(r))).collect::<sqlx::Result<Vec<_>>>()?)
    })
}

/// Serialises changes of roles and status. SQLite's `BEGIN IMMEDIATE` already does; on
/// PostgreSQL two admins demoting each other at once would otherwise lock their rows in
/// opposite orders and deadlock (a 500) instead of one of them getting the last-admin 409.
pub async fn lock_account_changes(tx: &mut Tx) -> sqlx::Result<()> {
    match &mut tx.conn {
        TxConn::Sqlite(_) => Ok(()),
        TxConn::Postgres(t) => sqlx::query("select pg_advisory_xact_lock(7270001)")
            .execute(&mut **t)
            .await
            .map(drop),
    }
}

/// The number of admins who can still log in. On PostgreSQL their rows are locked, so two
/// concurrent demotions cannot both see "another admin is left".
/// Accounts whose password hash is still the bcrypt one they were imported with (rehashed to
/// argon2id at their next successful login).
pub async fn count_bcrypt(db: &Db) -> sqlx::Result<i64> {
    on_db!(db, p => sqlx::query_scalar("select count(*) from users where password_hash like $1")
        .bind("$2%").fetch_one(p).await)
}

pub async fn count_active_admins(tx: &mut Tx) -> sqlx::Result<i64> {
    match &mut tx.conn {
        TxConn::Sqlite(t) => {
            sqlx::query("select count(*) as n from users where role = 'admin' and not disabled")
                .fetch_one(&mut **t)
                .await?
                .try_get("n")
        }
        TxConn::Postgres(t) => {
            let rows = sqlx::query(
                "select id from users where role = 'admin' and not disabled for update",
            )
            .fetch_all(&mut **t)
            .await?;
            Ok(rows.len() as i64)
        }
    }
}

pub async fn any_admin(tx: &mut Tx) -> sqlx::Result<bool> {
    on_tx!(tx, c => Ok(sqlx::query("select 1 from users where role = 'admin' limit 1").fetch_optional(c).await?.is_some()))
}

pub async fn set_password_hash(
    tx: &mut Tx,
    id: UserId,
    hash: &str,
    now: Timestamp,
) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query("update users set password_hash = $1, updated_at = $2 where id = $3")
        .bind(hash).bind(now.micros()).bind(id.to_string()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Renames the caller's own account (`grant` is the policy's `account.update_self`).
pub async fn set_full_name(
    tx: &mut Tx,
    grant: &Authorized<()>,
    name: &str,
    now: Timestamp,
) -> crate::error::Result<()> {
    grant.require(Action::AccountUpdateSelf)?;
    let id = grant
        .by()
        .ok_or_else(|| crate::error::AppError::Internal(anyhow::anyhow!("no account to rename")))?;
    on_tx!(tx, c => sqlx::query("update users set full_name = $1, updated_at = $2 where id = $3")
        .bind(name).bind(now.micros()).bind(id.to_string()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn set_role(
    tx: &mut Tx,
    target: &Authorized<User>,
    role: Role,
    now: Timestamp,
) -> crate::error::Result<()> {
    target.require(Action::AccountSetRole)?;
    let id = target.object().id;
    tx.auth_changed();
    on_tx!(tx, c => sqlx::query("update users set role = $1, updated_at = $2 where id = $3")
        .bind(role.as_str()).bind(now.micros()).bind(id.to_string()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn set_disabled(
    tx: &mut Tx,
    target: &Authorized<User>,
    disabled: bool,
    now: Timestamp,
) -> crate::error::Result<()> {
    target.require_any(&[Action::AccountDisableUser, Action::AccountDisableStaff])?;
    let id = target.object().id;
    tx.auth_changed();
    on_tx!(tx, c => sqlx::query("update users set disabled = $1, updated_at = $2 where id = $3")
        .bind(disabled).bind(now.micros()).bind(id.to_string()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Disables the service account of a deleted OAuth client (its id is the client's); false when
/// the client had none.
pub async fn disable_service_account(
    tx: &mut Tx,
    id: UserId,
    now: Timestamp,
) -> sqlx::Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "update users set disabled = true, updated_at = $1 where id = $2 and email like 'client-%@clients.invalid'")
        .bind(now.micros()).bind(id.to_string()).execute(c).await.map(|r| r.rows_affected()))?;
    if n > 0 {
        tx.auth_changed();
    }
    Ok(n > 0)
}

/// Every account with its last login and whether it has a confirmed second factor.
pub async fn with_last_login(db: &Db) -> sqlx::Result<Vec<Activity>> {
    const SQL: &str = concat!(
        "select ",
        columns!(),
        ", ",
        activity_columns!(),
        " from users order by email"
    );
    on_db!(db, p => {
        let rows = sqlx::query(SQL).fetch_all(p).await?;
        rows.iter().map(|r| Ok(activity_row!(r))).collect()
    })
}

/// An account as the listings show it: the account, its last login, whether it has a second factor.
pub type Activity = (User, Option<Timestamp>, bool);
