//! Resources: every use case asks the policy before it touches a row.

use super::audit::{Event, RequestMeta};
use crate::authz::{self, Action, ListScope, Principal};
use crate::config::Config;
use crate::db::resources::{self, Resource, ResourceFields};
use crate::domain::{ResourceId, Timestamp};
use crate::error::{AppError, Result};
use crate::service::context::Store;

#[tracing::instrument(skip_all, fields(user_id = %who.user_id()))]
pub async fn create(
    store: &Store,
    config: &Config,
    who: &Principal,
    fields: ResourceFields,
) -> Result<Resource> {
    let grant = authz::authorize_plain(Some(who), Action::ResourceCreate)?;
    let mut tx =
        super::users::begin_create(store, config, who.user_id(), super::users::Owned::Resources)
            .await?;
    let r = resources::insert(&mut tx, &grant, &fields, Timestamp::now()).await?;
    store.commit(tx).await?;
    Ok(r)
}

pub async fn get(store: &Store, who: &Principal, id: ResourceId) -> Result<Resource> {
    let sealed = resources::find_one(&store.readers, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(authz::authorize(Some(who), Action::ResourceRead, sealed)?.into_object())
}

#[tracing::instrument(skip_all, fields(user_id = %who.user_id(), resource = %id))]
pub async fn update(
    store: &Store,
    who: &Principal,
    id: ResourceId,
    fields: ResourceFields,
    meta: &RequestMeta,
) -> Result<Resource> {
    let mut tx = store.db.begin_write().await?;
    let sealed = resources::find(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let target = authz::authorize(Some(who), Action::ResourceUpdate, sealed)?;
    let r = resources::update(&mut tx, &target, &fields, Timestamp::now()).await?;
    if target.object().owner_id != who.user_id() {
        Event::new("resource.update", "success")
            .actor(who.user_id())
            .target(format!("resource:{id}"))
            .record(&mut tx, meta)
            .await?;
    }
    store.commit(tx).await?;
    Ok(r)
}

#[tracing::instrument(skip_all, fields(user_id = %who.user_id(), resource = %id))]
pub async fn delete(
    store: &Store,
    who: &Principal,
    id: ResourceId,
    meta: &RequestMeta,
) -> Result<()> {
    let mut tx = store.db.begin_write().await?;
    let sealed = resources::find(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let target = authz::authorize(Some(who), Action::ResourceDelete, sealed)?;
    resources::delete(&mut tx, &target).await?;
    Event::new("resource.delete", "success")
        .actor(who.user_id())
        .target(format!("resource:{id}"))
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    Ok(())
}

/// A page of what the caller may read, filtered in SQL; fetches `limit + 1` rows so the caller knows if more follow.
pub async fn list(
    store: &Store,
    who: &Principal,
    before: Option<ResourceId>,
    limit: u32,
) -> Result<Vec<Resource>> {
    let grant = authz::authorize_plain(Some(who), Action::ResourceList)?;
    let scope = ListScope::of(&grant, who)?;
    let mut tx = store.db.begin().await?;
    let rows = resources::list(&mut tx, &scope, before, limit + 1).await?;
    store.commit(tx).await?;
    Ok(rows)
}
