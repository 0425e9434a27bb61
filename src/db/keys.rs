//! The `key_log` table: when each key of a keyring was first seen, when it stopped being the
//! key that encrypts or signs, and when it was retired. It holds ids and times, never key material.

use sqlx::Row;

use super::{Db, on_db};
use crate::domain::Timestamp;

/// Which keyring a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    Data,
    Signing,
    /// The old stack's HS256 key (`IMANGOR_LEGACY_JWT_SECRET`): since when its tokens are accepted.
    Legacy,
}

impl Ring {
    pub fn as_str(self) -> &'static str {
        match self {
            Ring::Data => "data",
            Ring::Signing => "signing",
            Ring::Legacy => "legacy-jwt",
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_id: String,
    pub first_seen: Timestamp,
    pub superseded_at: Option<Timestamp>,
    pub retired_at: Option<Timestamp>,
}

/// Records the keyring as it is now (`ids` newest first): new ids are first seen now, and every
/// id but the first has stopped encrypting or signing (if it was not already recorded so).
pub async fn observe(db: &Db, ring: Ring, ids: &[&str], now: Timestamp) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    for (i, id) in ids.iter().enumerate() {
        let r: sqlx::Result<()> = super::on_tx!(&mut tx, c => {
            sqlx::query("insert into key_log (ring, key_id, first_seen) values ($1, $2, $3) on conflict do nothing")
                .bind(ring.as_str()).bind(*id).bind(now.micros()).execute(&mut *c).await?;
            if i > 0 {
                sqlx::query("update key_log set superseded_at = $1 where ring = $2 and key_id = $3 and superseded_at is null")
                    .bind(now.micros()).bind(ring.as_str()).bind(*id).execute(&mut *c).await?;
            }
            Ok(())
        });
        r?;
    }
    tx.commit().await.quiet()
}

pub async fn list(db: &Db, ring: Ring) -> sqlx::Result<Vec<KeyRecord>> {
    on_db!(db, p => {
        let rows = sqlx::query(
            "select key_id, first_seen, superseded_at, retired_at from key_log where ring = $1 order by first_seen desc, key_id")
            .bind(ring.as_str()).fetch_all(p).await?;
        rows.iter().map(|r| {
            let t = |c: &str| -> sqlx::Result<Option<Timestamp>> {
                Ok(r.try_get::<Option<i64>, _>(c)?.map(Timestamp::from_micros))
            };
            Ok(KeyRecord {
                key_id: r.try_get("key_id")?,
                first_seen: Timestamp::from_micros(r.try_get("first_seen")?),
                superseded_at: t("superseded_at")?,
                retired_at: t("retired_at")?,
            })
        }).collect()
    })
}

pub async fn retire(db: &Db, ring: Ring, id: &str, now: Timestamp) -> sqlx::Result<()> {
    on_db!(db, p => sqlx::query("update key_log set retired_at = $1 where ring = $2 and key_id = $3")
        .bind(now.micros()).bind(ring.as_str()).bind(id).execute(p).await.map(|_| ()))
}
