//! The audit trail's storage: sealing rows into the hash chain, reading it in order to verify
//! it, pages for the API, checkpoints. Rows are never updated once sealed and never deleted by
//! any code path; the chain makes an edit, a deletion or a reordering visible.

use sqlx::Row;

use super::{Db, Tx, on_db, on_tx};

/// One audit row as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AuditRow {
    pub id: String,
    pub seq: Option<i64>,
    pub at: i64,
    pub action: String,
    pub outcome: String,
    pub severity: String,
    pub actor_id: Option<String>,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    pub key_id: String,
    pub signature: String,
    pub at: i64,
}

macro_rules! columns {
    () => {
        "id, seq, at, action, outcome, severity, actor_id, target, ip, request_id, detail, prev_hash, hash"
    };
}

pub(crate) fn row<R: Row>(r: &R) -> sqlx::Result<AuditRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(AuditRow {
        id: r.try_get("id")?,
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        action: r.try_get("action")?,
        outcome: r.try_get("outcome")?,
        severity: r.try_get("severity")?,
        actor_id: r.try_get("actor_id")?,
        target: r.try_get("target")?,
        ip: r.try_get("ip")?,
        request_id: r.try_get("request_id")?,
        detail: r.try_get("detail")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// Opens the sealing transaction: one sealer at a time, across every replica.
pub async fn begin_sealing(db: &Db) -> sqlx::Result<Tx> {
    let mut tx = db.begin_write().await?;
    if let crate::db::TxConn::Postgres(t) = &mut tx.conn {
        // A transaction-scoped lock, released at commit or rollback.
        sqlx::query("select pg_advisory_xact_lock(7242011)")
            .execute(&mut **t)
            .await?;
    }
    Ok(tx)
}

/// The last sealed row's (seq, hash), if any (an empty hash where it was removed: rows are still
/// sealed onto a broken chain, for the detectors).
pub async fn head(tx: &mut Tx) -> sqlx::Result<Option<(i64, String)>> {
    on_tx!(tx, c => {
        let r = sqlx::query("select seq, hash from security_events where seq is not null order by seq desc limit 1")
            .fetch_optional(c).await?;
        r.map(|r| Ok((r.try_get("seq")?, r.try_get::<Option<String>, _>("hash")?.unwrap_or_default()))).transpose()
    })
}

/// Rows not sealed yet, oldest first.
pub async fn unsealed(tx: &mut Tx, limit: i64) -> sqlx::Result<Vec<AuditRow>> {
    on_tx!(tx, c => {
        let rows = sqlx::query(concat!("select ", columns!(), " from security_events where seq is null order by at, id limit $1"))
            .bind(limit).fetch_all(c).await?;
        rows.iter().map(row).collect()
    })
}

pub async fn seal(tx: &mut Tx, id: &str, seq: i64, prev: &str, hash: &str) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query("update security_events set seq = $1, prev_hash = $2, hash = $3 where id = $4 and seq is null")
        .bind(seq).bind(prev).bind(hash).bind(id).execute(c).await.map(drop))
}

/// The newest checkpoint's (seq, at), if any: when the next one is due.
pub async fn last_checkpoint(tx: &mut Tx) -> sqlx::Result<Option<(i64, i64)>> {
    on_tx!(tx, c => {
        let r = sqlx::query("select seq, at from audit_checkpoints order by seq desc limit 1")
            .fetch_optional(c).await?;
        r.map(|r| Ok((r.try_get("seq")?, r.try_get("at")?))).transpose()
    })
}

/// The last sealed row's seq (0 when none is sealed) and the newest checkpoint's (seq, at), read
/// without the sealing lock: whether a quiet tail is due for a checkpoint.
pub async fn tail(db: &Db) -> sqlx::Result<(i64, Option<(i64, i64)>)> {
    let head = head_seq(db).await?;
    on_db!(db, p => {
        let r = sqlx::query("select seq, at from audit_checkpoints order by seq desc limit 1")
            .fetch_optional(p).await?;
        let last = r.map(|r| Ok::<_, sqlx::Error>((r.try_get("seq")?, r.try_get("at")?))).transpose()?;
        Ok((head, last))
    })
}

/// The last sealed row's seq and hash (absent where the row was tampered with), read without the
/// sealing lock: what the sealer checks before it extends the chain.
pub async fn head_row(db: &Db) -> sqlx::Result<Option<(i64, Option<String>)>> {
    on_db!(db, p => {
        let r = sqlx::query("select seq, hash from security_events where seq is not null order by seq desc limit 1")
            .fetch_optional(p).await?;
        r.map(|r| Ok((r.try_get("seq")?, r.try_get("hash")?))).transpose()
    })
}

/// The last sealed row's seq; 0 when none is sealed.
pub async fn head_seq(db: &Db) -> sqlx::Result<i64> {
    on_db!(db, p => {
        let head: Option<i64> = sqlx::query_scalar("select max(seq) from security_events").fetch_one(p).await?;
        Ok(head.unwrap_or(0))
    })
}

pub async fn insert_checkpoint(tx: &mut Tx, c: &Checkpoint) -> sqlx::Result<()> {
    on_tx!(tx, conn => sqlx::query("insert into audit_checkpoints (seq, hash, key_id, signature, at) values ($1, $2, $3, $4, $5)")
        .bind(c.seq).bind(&c.hash).bind(&c.key_id).bind(&c.signature).bind(c.at)
        .execute(conn).await.map(drop))
}

pub async fn checkpoints(db: &Db) -> sqlx::Result<Vec<Checkpoint>> {
    on_db!(db, p => {
        let rows = sqlx::query("select seq, hash, key_id, signature, at from audit_checkpoints order by seq")
            .fetch_all(p).await?;
        rows.iter().map(checkpoint).collect()
    })
}

fn checkpoint<R: Row>(r: &R) -> sqlx::Result<Checkpoint>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Checkpoint {
        seq: r.try_get("seq")?,
        hash: r.try_get("hash")?,
        key_id: r.try_get("key_id")?,
        signature: r.try_get("signature")?,
        at: r.try_get("at")?,
    })
}

/// Checkpoints with `after < seq <= upto`, in order.
pub async fn checkpoints_between(db: &Db, after: i64, upto: i64) -> sqlx::Result<Vec<Checkpoint>> {
    on_db!(db, p => {
        let rows = sqlx::query("select seq, hash, key_id, signature, at from audit_checkpoints where seq > $1 and seq <= $2 order by seq")
            .bind(after).bind(upto).fetch_all(p).await?;
        rows.iter().map(checkpoint).collect()
    })
}

/// The newest checkpoint at or below `upto`.
pub async fn checkpoint_upto(db: &Db, upto: i64) -> sqlx::Result<Option<Checkpoint>> {
    on_db!(db, p => {
        let r = sqlx::query("select seq, hash, key_id, signature, at from audit_checkpoints where seq <= $1 order by seq desc limit 1")
            .bind(upto).fetch_optional(p).await?;
        r.as_ref().map(checkpoint).transpose()
    })
}

/// The oldest checkpoint above `after`.
pub async fn checkpoint_after(db: &Db, after: i64) -> sqlx::Result<Option<Checkpoint>> {
    on_db!(db, p => {
        let r = sqlx::query("select seq, hash, key_id, signature, at from audit_checkpoints where seq > $1 order by seq limit 1")
            .bind(after).fetch_optional(p).await?;
        r.as_ref().map(checkpoint).transpose()
    })
}

/// Sealed rows in chain order, after `after_seq`: the verifier's pages.
pub async fn sealed_after(db: &Db, after_seq: i64, limit: i64) -> sqlx::Result<Vec<AuditRow>> {
    on_db!(db, p => {
        let rows = sqlx::query(concat!("select ", columns!(), " from security_events where seq > $1 order by seq limit $2"))
            .bind(after_seq).bind(limit).fetch_all(p).await?;
        rows.iter().map(row).collect()
    })
}

/// Sealed rows with `after < seq <= upto`, in chain order, at most `limit`.
pub async fn sealed_between(
    db: &Db,
    after: i64,
    upto: i64,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    on_db!(db, p => {
        let rows = sqlx::query(concat!("select ", columns!(), " from security_events where seq > $1 and seq <= $2 order by seq limit $3"))
            .bind(after).bind(upto).bind(limit).fetch_all(p).await?;
        rows.iter().map(row).collect()
    })
}

/// A page of the trail, newest first: sealed rows by seq below `before`.
pub async fn page(db: &Db, before: Option<i64>, limit: i64) -> sqlx::Result<Vec<AuditRow>> {
    let before = before.unwrap_or(i64::MAX);
    on_db!(db, p => {
        let rows = sqlx::query(concat!("select ", columns!(), " from security_events where seq < $1 order by seq desc limit $2"))
            .bind(before).bind(limit).fetch_all(p).await?;
        rows.iter().map(row).collect()
    })
}

pub async fn count_unsealed(db: &Db) -> sqlx::Result<i64> {
    on_db!(db, p => sqlx::query_scalar("select count(*) from security_events where seq is null").fetch_one(p).await)
}

/// Replaces a checkpoint's signature (when the data key that signed it is retired).
pub async fn resign(db: &Db, seq: i64, key_id: &str, signature: &str) -> sqlx::Result<()> {
    on_db!(db, p => sqlx::query("update audit_checkpoints set key_id = $1, signature = $2 where seq = $3")
        .bind(key_id).bind(signature).bind(seq).execute(p).await.map(drop))
}

/// The signed chain head (`audit_head`), if one was written: `at` is when it was signed.
pub async fn signed_head(db: &Db) -> sqlx::Result<Option<Checkpoint>> {
    on_db!(db, p => {
        let r = sqlx::query("select seq, hash, key_id, signature, signed_at as at from audit_head where id = 1")
            .fetch_optional(p).await?;
        r.as_ref().map(checkpoint).transpose()
    })
}

/// The signed chain head's (seq, hash), read in the sealing transaction.
pub async fn signed_head_tx(tx: &mut Tx) -> sqlx::Result<Option<(i64, String)>> {
    on_tx!(tx, c => {
        let r = sqlx::query("select seq, hash from audit_head where id = 1")
            .fetch_optional(c).await?;
        r.map(|r| Ok((r.try_get("seq")?, r.try_get("hash")?))).transpose()
    })
}

/// Writes the signed chain head (replacing the one before it).
pub async fn put_signed_head(tx: &mut Tx, h: &Checkpoint) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query("insert into audit_head (id, seq, hash, key_id, signature, signed_at) values (1, $1, $2, $3, $4, $5)
            on conflict (id) do update set seq = excluded.seq, hash = excluded.hash, key_id = excluded.key_id,
            signature = excluded.signature, signed_at = excluded.signed_at")
        .bind(h.seq).bind(&h.hash).bind(&h.key_id).bind(&h.signature).bind(h.at)
        .execute(c).await.map(drop))
}

/// Replaces the signed head's signature (when the data key that signed it is retired), if it
/// still names `seq` and `hash`.
pub async fn resign_head(
    db: &Db,
    old: &Checkpoint,
    key_id: &str,
    signature: &str,
) -> sqlx::Result<()> {
    // Only the head that was read and re-signed: a sealing pass that replaced it meanwhile (the
    // same row, a newer time) keeps its own signature.
    on_db!(db, p => sqlx::query("update audit_head set key_id = $1, signature = $2
            where id = 1 and seq = $3 and hash = $4 and key_id = $5 and signed_at = $6")
        .bind(key_id).bind(signature).bind(old.seq).bind(&old.hash).bind(&old.key_id).bind(old.at)
        .execute(p).await.map(drop))
}

/// The hash of the sealed row `seq`: `None` when there is no such row, or its hash was removed.
pub async fn row_hash(db: &Db, seq: i64) -> sqlx::Result<Option<String>> {
    on_db!(db, p => {
        let h: Option<Option<String>> = sqlx::query_scalar("select hash from security_events where seq = $1")
            .bind(seq).fetch_optional(p).await?;
        Ok(h.flatten())
    })
}
