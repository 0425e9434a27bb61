//! The `resources` table. Reads hand objects out sealed; writes need the policy's proof;
//! lists are filtered in SQL by the caller's scope.

use sqlx::Row;

use super::inline::InlineRow as _;
use super::readers::{Readers, on_reader};
use super::{Tx, decode_err, on_tx};
use crate::authz::{Action, Authorized, ListScope, ReadScope, Sealed};
use crate::domain::{Resource, ResourceFields, ResourceId, Timestamp};

macro_rules! columns {
    () => {
        "id, owner_id, title, content, is_public, created_at, updated_at"
    };
}

macro_rules! resource_row {
    ($r:expr) => {{
        let r = $r;
        let id: String = r.try_get("id")?;
        let owner: String = r.try_get("owner_id")?;
        Resource {
            id: id.parse().map_err(|_| decode_err("resource id", &id))?,
            owner_id: owner.parse().map_err(|_| decode_err("user id", &owner))?,
            title: r.try_get("title")?,
            content: r.try_get("content")?,
            is_public: r.try_get("is_public")?,
            created_at: Timestamp::from_micros(r.try_get("created_at")?),
            updated_at: Timestamp::from_micros(r.try_get("updated_at")?),
        }
    }};
}

/// Creates a resource owned by the caller the policy allowed.
pub async fn insert(
    tx: &mut Tx,
    grant: &Authorized<()>,
    fields: &ResourceFields,
    now: Timestamp,
) -> crate::error::Result<Resource> {
    grant.require(Action::ResourceCreate)?;
    let owner = grant.by().ok_or_else(|| {
        crate::error::AppError::Internal(anyhow::anyhow!("a resource needs an owner"))
    })?;
    let r = Resource {
        id: ResourceId::new(),
        owner_id: owner,
        title: fields.title.as_str().to_owned(),
        content: fields.content.as_str().to_owned(),
        is_public: fields.is_public,
        created_at: now,
        updated_at: now,
    };
    on_tx!(tx, c => sqlx::query(
        "insert into resources (id, owner_id, title, content, is_public, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $6)")
        .bind(r.id.to_string()).bind(r.owner_id.to_string()).bind(&r.title).bind(&r.content)
        .bind(r.is_public).bind(now.micros())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(r)
}

const FIND: &str = concat!("select ", columns!(), " from resources where id = $1");

/// One resource, sealed until the policy allows an action on it.
pub async fn find(tx: &mut Tx, id: ResourceId) -> sqlx::Result<Option<Sealed<Resource>>> {
    let sql = FIND;
    on_tx!(tx, c => {
        match sqlx::query(sql).bind(id.to_string()).fetch_optional(c).await? {
            None => Ok(None),
            Some(r) => Ok(Some(Sealed::new(resource_row!(&r)))),
        }
    })
}

/// `find` outside a transaction, on a held connection: one statement, for a read that needs no other.
pub async fn find_one(readers: &Readers, id: ResourceId) -> sqlx::Result<Option<Sealed<Resource>>> {
    let id = id.to_string();
    let inline = readers
        .inline()
        .and_then(|i| i.row(FIND, &[("$1", &id)], |r| Ok(Sealed::new(resource_row!(r)))));
    if let Some(found) = inline {
        return Ok(found);
    }
    on_reader!(readers, p => {
        match sqlx::query(FIND).bind(&id).fetch_optional(p).await? {
            None => Ok(None),
            Some(r) => Ok(Some(Sealed::new(resource_row!(&r)))),
        }
    })
}

/// Replaces the client-set fields (a full `PUT`).
pub async fn update(
    tx: &mut Tx,
    target: &Authorized<Resource>,
    fields: &ResourceFields,
    now: Timestamp,
) -> crate::error::Result<Resource> {
    target.require(Action::ResourceUpdate)?;
    let id = target.object().id;
    on_tx!(tx, c => sqlx::query(
        "update resources set title = $1, content = $2, is_public = $3, updated_at = $4 where id = $5")
        .bind(fields.title.as_str()).bind(fields.content.as_str()).bind(fields.is_public)
        .bind(now.micros()).bind(id.to_string())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(Resource {
        title: fields.title.as_str().to_owned(),
        content: fields.content.as_str().to_owned(),
        is_public: fields.is_public,
        updated_at: now,
        ..target.object().clone()
    })
}

pub async fn delete(tx: &mut Tx, target: &Authorized<Resource>) -> crate::error::Result<()> {
    target.require(Action::ResourceDelete)?;
    on_tx!(tx, c => sqlx::query("delete from resources where id = $1")
        .bind(target.object().id.to_string()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// A page of what the caller may read, newest first, strictly before `before`.
pub async fn list(
    tx: &mut Tx,
    scope: &ListScope,
    before: Option<ResourceId>,
    limit: u32,
) -> sqlx::Result<Vec<Resource>> {
    // Every id sorts below "g" (ids are lower-case hex), so no cursor means "from the newest".
    let before = before
        .map(|b| b.to_string())
        .unwrap_or_else(|| "g".to_owned());
    let limit = i64::from(limit);
    let viewer = scope.viewer().to_string();
    on_tx!(tx, c => {
        let rows = match scope.scope() {
            ReadScope::All => {
                sqlx::query(concat!("select ", columns!(), " from resources where id < $1 order by id desc limit $2"))
                    .bind(before).bind(limit).fetch_all(c).await?
            }
            ReadScope::Own => {
                sqlx::query(concat!("select ", columns!(), " from resources where owner_id = $1 and id < $2 order by id desc limit $3"))
                    .bind(viewer).bind(before).bind(limit).fetch_all(c).await?
            }
            // Two index range scans (own rows, others' public rows) merged, rather than one scan with an OR.
            ReadScope::OwnOrPublic => {
                sqlx::query(concat!(
                    "select * from (select ", columns!(), " from resources where owner_id = $1 and id < $2 order by id desc limit $3) as own
                     union all
                     select * from (select ", columns!(), " from resources where is_public and owner_id <> $1 and id < $2 order by id desc limit $3) as pub
                     order by id desc limit $3"))
                    .bind(viewer).bind(before).bind(limit).fetch_all(c).await?
            }
        };
        rows.iter().map(|r| Ok(resource_row!(r))).collect()
    })
}
