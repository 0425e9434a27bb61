//! `/api/v1/resources`: owned resources, with ownership-based authorization.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::AppJson;
use super::page::{self, PageQuery};
use crate::authz::Principal;
use crate::db::resources::{Resource, ResourceFields};
use crate::domain::{Content, ResourceId, Title, UserId};
use crate::error::{AppError, Result, ValidationError};
use crate::service::{self, audit::RequestMeta};
use crate::state::AppState;

const LIST: &str = "resources";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, replace, delete))
}

/// The client-set fields of a resource; all three are required (`PUT` replaces them all).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceInput {
    /// 1..=200 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
    )]
    title: String,
    /// At most 64 KiB (UTF-8), no NUL.
    #[schema(max_length = 65536, pattern = r"^[^\u0000]*$")]
    content: String,
    is_public: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceView {
    id: ResourceId,
    owner_id: UserId,
    title: String,
    content: String,
    is_public: bool,
    created_at: String,
    updated_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcePage {
    items: Vec<ResourceView>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

impl From<Resource> for ResourceView {
    fn from(r: Resource) -> Self {
        Self {
            id: r.id,
            owner_id: r.owner_id,
            title: r.title,
            content: r.content,
            is_public: r.is_public,
            created_at: r.created_at.rfc3339(),
            updated_at: r.updated_at.rfc3339(),
        }
    }
}

impl TryFrom<ResourceInput> for ResourceFields {
    type Error = ValidationError;
    fn try_from(i: ResourceInput) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        let title = errors.collect(Title::parse(&i.title));
        let content = errors.collect(Content::parse(&i.content));
        match (title, content) {
            (Some(title), Some(content)) => Ok(ResourceFields {
                title,
                content,
                is_public: i.is_public,
            }),
            _ => Err(errors),
        }
    }
}

/// A path segment that is not a resource id names no resource (404, like one that does not exist).
fn resource_id(raw: &str) -> Result<ResourceId> {
    raw.parse().map_err(|_| AppError::NotFound)
}

/// Create a resource owned by the caller.
#[utoipa::path(post, path = "/resources", tag = "resources", security(("bearer" = [])), request_body = ResourceInput,
    responses((status = 201, body = ResourceView), (status = 401),
        (status = 403, description = "quota_exceeded: the caller holds IMANGOR_QUOTA_RESOURCES resources already", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid input")))]
async fn create(
    State(app): State<AppState>,
    who: Principal,
    AppJson(req): AppJson<ResourceInput>,
) -> Result<(StatusCode, Json<ResourceView>)> {
    let fields = req.try_into()?;
    let r = service::resources::create(&app.store, &app.config, &who, fields).await?;
    Ok((StatusCode::CREATED, Json(r.into())))
}

/// What the caller may read, newest first: public and own resources; every resource for admins and managers.
#[utoipa::path(get, path = "/resources", tag = "resources", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = ResourcePage), (status = 401), (status = 422, description = "bad limit or cursor")))]
async fn list(
    State(app): State<AppState>,
    who: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<ResourcePage>> {
    let req = page::parse(query.as_deref(), &app.cursors, LIST, who.user_id())?;
    let rows = service::resources::list(
        &app.store,
        &who,
        req.after.map(ResourceId::from_uuid),
        req.limit,
    )
    .await?;
    let (rows, next_cursor) = page::finish(
        rows,
        req,
        |r| r.id.as_uuid(),
        &app.cursors,
        LIST,
        who.user_id(),
    );
    Ok(Json(ResourcePage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// One resource: readable by its owner, admins and managers, and anyone when public. Others get 404.
#[utoipa::path(get, path = "/resources/{id}", tag = "resources", security(("bearer" = [])),
    params(("id" = String, Path, description = "the resource's id")),
    responses((status = 200, body = ResourceView), (status = 401), (status = 404)))]
async fn show(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<ResourceView>> {
    Ok(Json(
        service::resources::get(&app.store, &who, resource_id(&id)?)
            .await?
            .into(),
    ))
}

/// Replace a resource's fields: its owner or an admin. Readable but not writable: 403.
#[utoipa::path(put, path = "/resources/{id}", tag = "resources", security(("bearer" = [])), request_body = ResourceInput,
    params(("id" = String, Path, description = "the resource's id")),
    responses((status = 200, body = ResourceView), (status = 401), (status = 403), (status = 404), (status = 422)))]
async fn replace(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
    AppJson(req): AppJson<ResourceInput>,
) -> Result<Json<ResourceView>> {
    let id = resource_id(&id)?;
    let fields = req.try_into()?;
    Ok(Json(
        service::resources::update(&app.store, &who, id, fields, &meta)
            .await?
            .into(),
    ))
}

/// Delete a resource: its owner or an admin.
#[utoipa::path(delete, path = "/resources/{id}", tag = "resources", security(("bearer" = [])),
    params(("id" = String, Path, description = "the resource's id")),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
async fn delete(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    service::resources::delete(&app.store, &who, resource_id(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
