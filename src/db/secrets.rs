//! The `secrets` table. Values arrive sealed (`crypto::data::Ciphertext`) and leave sealed: this
//! module never sees a plaintext. Reads hand rows out `Sealed` for the policy; rotation reads and
//! rewrites rows in batches by key id.

use sqlx::Row;

use super::{Tx, decode_err, on_tx};
use crate::authz::{Action, Authorized, Guarded, Sealed, Visibility};
use crate::crypto::data::Ciphertext;
use crate::domain::{SecretEntry, SecretId, SecretName, Timestamp, UserId};
use crate::error::{AppError, ResultExt};

/// A secret as stored: its value still sealed.
#[derive(Debug, Clone)]
pub struct SecretRow {
    pub id: SecretId,
    pub owner_id: UserId,
    pub name: String,
    pub key_id: String,
    pub ciphertext: Vec<u8>,
    pub created_at: Timestamp,
}

impl Guarded for SecretRow {
    fn owner(&self) -> UserId {
        self.owner_id
    }
    fn visibility(&self) -> Visibility {
        Visibility::Private
    }
    fn target(&self) -> String {
        format!("secret:{}", self.id)
    }
}

/// The associated data that binds a ciphertext to its row: a value moved to another row, or to
/// another owner, does not open.
pub fn binding(owner: UserId, id: SecretId) -> Vec<u8> {
    let mut b = b"secret\0".to_vec();
    b.extend_from_slice(owner.as_uuid().as_bytes());
    b.extend_from_slice(id.as_uuid().as_bytes());
    b
}

macro_rules! secret_row {
    ($r:expr) => {{
        let r = $r;
        let id: String = r.try_get("id")?;
        let owner: String = r.try_get("owner_id")?;
        SecretRow {
            id: id.parse().map_err(|_| decode_err("secret id", &id))?,
            owner_id: owner.parse().map_err(|_| decode_err("user id", &owner))?,
            name: r.try_get("name")?,
            key_id: r.try_get("key_id")?,
            ciphertext: r.try_get("ciphertext")?,
            created_at: Timestamp::from_micros(r.try_get("created_at")?),
        }
    }};
}

/// Stores a secret for the caller the policy allowed. `id` was chosen before sealing (it is
/// part of the binding); a second secret of the same name is a conflict.
pub async fn insert(
    tx: &mut Tx,
    grant: &Authorized<()>,
    id: SecretId,
    name: &SecretName,
    sealed: &Ciphertext,
    now: Timestamp,
) -> crate::error::Result<()> {
    grant.require(Action::SecretCreate)?;
    let owner = owner_of(grant)?;
    on_tx!(tx, c => sqlx::query(
        "insert into secrets (id, owner_id, name, key_id, ciphertext, created_at) values ($1, $2, $3, $4, $5, $6)")
        .bind(id.to_string()).bind(owner.to_string()).bind(name.as_str())
        .bind(&sealed.key_id).bind(&sealed.bytes).bind(now.micros())
        .execute(c).await.map(|r| r.rows_affected()))
    .on_unique("a secret with this name")?;
    Ok(())
}

fn owner_of(grant: &Authorized<()>) -> crate::error::Result<UserId> {
    grant
        .by()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a secret needs an owner")))
}

/// One secret, sealed until the policy allows an action on it.
pub async fn find(tx: &mut Tx, id: SecretId) -> sqlx::Result<Option<Sealed<SecretRow>>> {
    on_tx!(tx, c => {
        match sqlx::query("select id, owner_id, name, key_id, ciphertext, created_at from secrets where id = $1")
            .bind(id.to_string()).fetch_optional(c).await? {
            None => Ok(None),
            Some(r) => Ok(Some(Sealed::new(secret_row!(&r)))),
        }
    })
}

pub async fn delete(tx: &mut Tx, target: &Authorized<SecretRow>) -> crate::error::Result<()> {
    target.require(Action::SecretDelete)?;
    on_tx!(tx, c => sqlx::query("delete from secrets where id = $1")
        .bind(target.object().id.to_string()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A page of the caller's own secrets (names only), newest first, strictly before `before`.
pub async fn list(
    tx: &mut Tx,
    grant: &Authorized<()>,
    before: Option<SecretId>,
    limit: u32,
) -> crate::error::Result<Vec<SecretEntry>> {
    grant.require(Action::SecretList)?;
    let owner = owner_of(grant)?.to_string();
    let before = before
        .map(|b| b.to_string())
        .unwrap_or_else(|| "g".to_owned());
    let rows: sqlx::Result<Vec<SecretEntry>> = on_tx!(tx, c => {
        let rows = sqlx::query(
            "select id, name, created_at from secrets where owner_id = $1 and id < $2 order by id desc limit $3")
            .bind(&owner).bind(&before).bind(i64::from(limit)).fetch_all(c).await?;
        rows.iter().map(|r| {
            let id: String = r.try_get("id")?;
            Ok(SecretEntry {
                id: id.parse().map_err(|_| decode_err("secret id", &id))?,
                name: r.try_get("name")?,
                created_at: Timestamp::from_micros(r.try_get("created_at")?),
            })
        }).collect()
    });
    Ok(rows?)
}

/// Rows per key id (secrets and TOTP secrets): what `imangor keys status` shows and `keys
/// retire` checks.
pub async fn count_by_key(tx: &mut Tx) -> sqlx::Result<Vec<(String, i64)>> {
    on_tx!(tx, c => {
        // TOTP secrets (`mfa_totp`) are sealed under the same keyring and counted with them.
        let rows = sqlx::query(
            "select key_id, count(*) as n from (select key_id from secrets union all select key_id from mfa_totp) t
             group by key_id order by key_id")
            .fetch_all(c).await?;
        rows.iter().map(|r| Ok((r.try_get("key_id")?, r.try_get("n")?))).collect()
    })
}

/// Imported Fernet values (`gAAAAA...`, bound to no row) per key id they name: what
/// `imangor doctor` warns about until `keys reencrypt` (or a read) reseals them.
pub async fn fernet_by_key(tx: &mut Tx) -> sqlx::Result<Vec<(String, i64)>> {
    let sql = match &tx.conn {
        super::TxConn::Sqlite(_) => {
            "select key_id, count(*) as n from secrets where substr(cast(ciphertext as blob), 1, 6) = $1 group by key_id order by key_id"
        }
        super::TxConn::Postgres(_) => {
            "select key_id, count(*) as n from secrets where substr(ciphertext, 1, 6) = $1 group by key_id order by key_id"
        }
    };
    on_tx!(tx, c => {
        let rows = sqlx::query(sql).bind(&b"gAAAAA"[..]).fetch_all(c).await?;
        rows.iter().map(|r| Ok((r.try_get("key_id")?, r.try_get("n")?))).collect()
    })
}

/// The next rows not sealed under `current` by the AEAD, in id order after `after` (rotation's
/// cursor): rows under older keys, and imported Fernet tokens (`gAAAAA...`, bound to no row)
/// whatever key they name. On SQLite an import may have stored the token as TEXT (Python's
/// sqlite3 does), which never equals a blob: the comparison casts it.
pub async fn not_under(
    tx: &mut Tx,
    current: &str,
    after: &str,
    limit: u32,
) -> sqlx::Result<Vec<SecretRow>> {
    let sql = match &tx.conn {
        super::TxConn::Sqlite(_) => {
            "select id, owner_id, name, key_id, ciphertext, created_at from secrets
             where (key_id <> $1 or substr(cast(ciphertext as blob), 1, 6) = $4) and id > $2 order by id limit $3"
        }
        super::TxConn::Postgres(_) => {
            "select id, owner_id, name, key_id, ciphertext, created_at from secrets
             where (key_id <> $1 or substr(ciphertext, 1, 6) = $4) and id > $2 order by id limit $3"
        }
    };
    on_tx!(tx, c => {
        let rows = sqlx::query(sql)
            .bind(current).bind(after).bind(i64::from(limit)).bind(&b"gAAAAA"[..]).fetch_all(c).await?;
        rows.iter().map(|r| Ok(secret_row!(r))).collect()
    })
}

/// What [`reseal`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resealed {
    /// The row now holds the new ciphertext.
    Done,
    /// The row was deleted or rewritten meanwhile, and is left as it is.
    Changed,
    /// The row still holds the value read, yet the update matched nothing: a fault (a stored
    /// form the comparison does not know), never a race.
    Unmatched,
}

/// Replaces a row's ciphertext if it is still the one that was read (a row deleted or rewritten
/// meanwhile is left alone). On SQLite the stored value is compared as a blob, so that a Fernet
/// token an import stored as TEXT matches the bytes it was read as.
pub async fn reseal(tx: &mut Tx, row: &SecretRow, sealed: &Ciphertext) -> sqlx::Result<Resealed> {
    let sql = match &tx.conn {
        super::TxConn::Sqlite(_) => {
            "update secrets set key_id = $1, ciphertext = $2
             where id = $3 and key_id = $4 and cast(ciphertext as blob) = $5"
        }
        super::TxConn::Postgres(_) => {
            "update secrets set key_id = $1, ciphertext = $2
             where id = $3 and key_id = $4 and ciphertext = $5"
        }
    };
    let n = on_tx!(tx, c => sqlx::query(sql)
        .bind(&sealed.key_id).bind(&sealed.bytes).bind(row.id.to_string())
        .bind(&row.key_id).bind(&row.ciphertext)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n == 1 {
        return Ok(Resealed::Done);
    }
    // Nothing replaced: tell a row that moved on from one the comparison missed.
    let now = on_tx!(tx, c => {
        match sqlx::query("select key_id, ciphertext from secrets where id = $1")
            .bind(row.id.to_string()).fetch_optional(c).await? {
            None => None,
            Some(r) => Some((r.try_get::<String, _>("key_id")?, r.try_get::<Vec<u8>, _>("ciphertext")?)),
        }
    });
    Ok(match now {
        Some((key_id, ciphertext)) if key_id == row.key_id && ciphertext == row.ciphertext => {
            Resealed::Unmatched
        }
        _ => Resealed::Changed,
    })
}
