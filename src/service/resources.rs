//! Resources: every use case asks the policy before it touches a row.

use super::{Event, RequestMeta};
use crate::authz::{self, Action, ListScope, Principal};
use crate::db::resources::{self, Resource, ResourceFields};
use crate::domain::{ResourceId, Timestamp};
use crate::error::{AppError, Result};
use crate::state::AppState;

#[tracing::instrument(skip_all, fields(user_id = %who.user_id()))]
pub async fn create(app: &AppState, who: &Principal, fields: ResourceFields) -> Result<Resource> {
    let grant = authz::authorize_plain(Some(who), Action::ResourceCreate)?;
    let mut tx =
        super::users::begin_create(app, who.user_id(), super::users::Owned::Resources).await?;
    let r = resources::insert(&mut tx, &grant, &fields, Timestamp::now()).await?;
    app.announcer.commit(tx).await?;
    Ok(r)
}

pub async fn get(app: &AppState, who: &Principal, id: ResourceId) -> Result<Resource> {
    let sealed = resources::find_one(&app.readers, id)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(authz::authorize(Some(who), Action::ResourceRead, sealed)?.into_object())
}

#[tracing::instrument(skip_all, fields(user_id = %who.user_id(), resource = %id))]
pub async fn update(
    app: &AppState,
    who: &Principal,
    id: ResourceId,
    fields: ResourceFields,
    meta: &RequestMeta,
) -> Result<Resource> {
    let mut tx = app.db.begin_write().await?;
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
    app.announcer.commit(tx).await?;
    Ok(r)
}

#[tracing::instrument(skip_all, fields(user_id = %who.user_id(), resource = %id))]
pub async fn delete(
    app: &AppState,
    who: &Principal,
    id: ResourceId,
    meta: &RequestMeta,
) -> Result<()> {
    let mut tx = app.db.begin_write().await?;
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
    app.announcer.commit(tx).await?;
    Ok(())
}

/// A page of what the caller may read, filtered in SQL; fetches `limit + 1` rows so the caller knows if more follow.
pub async fn list(
    app: &AppState,
    who: &Principal,
    before: Option<ResourceId>,
    limit: u32,
) -> Result<Vec<Resource>> {
    let grant = authz::authorize_plain(Some(who), Action::ResourceList)?;
    let scope = ListScope::of(&grant, who)?;
    let mut tx = app.db.begin().await?;
    let rows = resources::list(&mut tx, &scope, before, limit + 1).await?;
    app.announcer.commit(tx).await?;
    Ok(rows)
}
