//! `/api/v1/secrets`: values sealed before they reach the database, readable by their owner only.

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
use crate::db::secrets::SecretEntry;
use crate::domain::{SecretId, SecretName, SecretValue};
use crate::error::{AppError, Result, ValidationError};
use crate::service::{self, audit::RequestMeta};
use crate::state::AppState;

const LIST: &str = "secrets";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, delete))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    /// 1..=100 characters, not blank, no control characters; unique among the caller's secrets.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"
    )]
    name: String,
    /// 1..=16384 bytes (UTF-8). Stored only encrypted; shown only to its owner.
    #[schema(min_length = 1, max_length = 16384)]
    value: String,
}

/// A secret without its value: what creation and lists answer.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSummary {
    id: SecretId,
    name: String,
    created_at: String,
}

/// A secret with its plaintext, for its owner.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretView {
    id: SecretId,
    name: String,
    value: String,
    created_at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretPage {
    items: Vec<SecretSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

impl From<SecretEntry> for SecretSummary {
    fn from(s: SecretEntry) -> Self {
        Self {
            id: s.id,
            name: s.name,
            created_at: s.created_at.rfc3339(),
        }
    }
}

/// A path segment that is not a secret id names no secret (404, like one that does not exist).
fn secret_id(raw: &str) -> Result<SecretId> {
    raw.parse().map_err(|_| AppError::NotFound)
}

/// Store a secret. The value is encrypted (AES-256-GCM, bound to its owner and id) before it is stored.
#[utoipa::path(post, path = "/secrets", tag = "secrets", security(("bearer" = [])), request_body = SecretInput,
    responses((status = 201, body = SecretSummary), (status = 401),
        (status = 403, description = "quota_exceeded: the caller holds IMANGOR_QUOTA_SECRETS secrets already", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the caller has a secret of this name"),
        (status = 422, description = "invalid input")))]
async fn create(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    AppJson(req): AppJson<SecretInput>,
) -> Result<(StatusCode, Json<SecretSummary>)> {
    let mut errors = ValidationError::default();
    let name = errors.collect(SecretName::parse(&req.name));
    let value = errors.collect(SecretValue::parse(req.value));
    let (Some(name), Some(value)) = (name, value) else {
        return Err(errors.into());
    };
    let s = service::secrets::create(&app.store, &app.config, &app.keys, &who, name, value, &meta)
        .await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// The caller's own secrets, newest first: names only, never values (whatever the caller's role).
#[utoipa::path(get, path = "/secrets", tag = "secrets", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = SecretPage), (status = 401), (status = 422, description = "bad limit or cursor")))]
async fn list(
    State(app): State<AppState>,
    who: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<SecretPage>> {
    let req = page::parse(query.as_deref(), &app.cursors, LIST, who.user_id())?;
    let rows = service::secrets::list(
        &app.store,
        &who,
        req.after.map(SecretId::from_uuid),
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
    Ok(Json(SecretPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// A secret with its value: its owner only. Anyone else, admins included, gets 404.
#[utoipa::path(get, path = "/secrets/{id}", tag = "secrets", security(("bearer" = [])),
    params(("id" = String, Path, description = "the secret's id")),
    responses((status = 200, body = SecretView, description = "sent with `Cache-Control: no-store`"), (status = 401), (status = 404),
        (status = 500, description = "the stored value failed authentication; nothing of it is shown and a critical security event is recorded")))]
async fn show(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Json<SecretView>> {
    let (row, value) = service::secrets::read(
        &app.store,
        &app.sinks,
        &app.keys,
        &who,
        secret_id(&id)?,
        &meta,
    )
    .await?;
    Ok(Json(SecretView {
        id: row.id,
        name: row.name,
        value: value.expose().to_owned(),
        created_at: row.created_at.rfc3339(),
    }))
}

/// Delete a secret: its owner, or an admin (containment; the admin never sees the value).
#[utoipa::path(delete, path = "/secrets/{id}", tag = "secrets", security(("bearer" = [])),
    params(("id" = String, Path, description = "the secret's id")),
    responses((status = 204), (status = 401), (status = 404)))]
async fn delete(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    service::secrets::delete(&app.store, &who, secret_id(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
