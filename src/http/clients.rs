//! `/api/v1/clients`: the OAuth client registry, for admins (API.md "Clients and OAuth flows").

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::AppJson;
use crate::authz::{Action, Principal, authorize_plain};
use crate::domain::ClientId;
use crate::domain::client::{Client, NewClient};
use crate::error::{AppError, Result};
use crate::service::{self, audit::RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(delete))
        .routes(routes!(rotate_secret))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    /// 1 to 100 characters, shown on the consent page.
    name: String,
    /// `public` (no secret: single-page and native apps) or `confidential`.
    #[serde(rename = "type")]
    kind: String,
    /// Exact redirect URIs: https, http on 127.0.0.1 or [::1] (any port), or a private-use
    /// scheme like `com.example.app:/cb`; at most 10.
    #[serde(default)]
    redirect_uris: Vec<String>,
    /// `authorization_code`, `client_credentials` (confidential clients only), `refresh_token`;
    /// default: `authorization_code` and `refresh_token`.
    grant_types: Option<Vec<String>>,
    /// The scopes its tokens may carry; default: `resources:read resources:write secrets:read
    /// secrets:write profile`.
    scopes: Option<Vec<String>>,
    /// Signs in without a consent page. Default false.
    #[serde(default)]
    first_party: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ClientView {
    client_id: String,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    redirect_uris: Vec<String>,
    grant_types: Vec<&'static str>,
    scopes: Vec<&'static str>,
    first_party: bool,
    created_at: String,
    /// Only in the answer to the registration of a confidential client: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

impl ClientView {
    fn of(c: Client, secret: Option<String>) -> Self {
        Self {
            client_id: c.id.to_string(),
            name: c.name,
            kind: c.kind.as_str(),
            redirect_uris: c
                .redirect_uris
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            grant_types: c.grant_types.iter().map(|g| g.as_str()).collect(),
            scopes: c.scopes.iter().map(|s| s.as_str()).collect(),
            first_party: c.first_party,
            created_at: c.created_at.rfc3339(),
            client_secret: secret,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SecretView {
    /// The new secret, shown this once; the old one no longer works.
    client_secret: String,
}

/// A path segment that is not a client id names no client (404).
fn client_id(raw: &str) -> Result<ClientId> {
    raw.parse().map_err(|_| AppError::NotFound)
}

/// Register an OAuth client. The secret of a confidential client is in this answer only.
#[utoipa::path(post, path = "/clients", tag = "clients", security(("bearer" = [])), request_body = ClientInput,
    responses((status = 201, body = ClientView), (status = 401), (status = 403, description = "not an admin"),
        (status = 422, description = "invalid input")))]
async fn create(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    AppJson(req): AppJson<ClientInput>,
) -> Result<(StatusCode, Json<ClientView>)> {
    let grant = authorize_plain(Some(&who), Action::ClientManage)?;
    let new = NewClient::parse(
        &req.name,
        &req.kind,
        &req.redirect_uris,
        req.grant_types.as_deref(),
        req.scopes.as_deref(),
        req.first_party,
    )?;
    let r = service::oauth::create_client(&app.store, &app.identity, &grant, new, &meta).await?;
    Ok((
        StatusCode::CREATED,
        Json(ClientView::of(r.client, r.secret)),
    ))
}

/// Every registered client, oldest first (no secrets).
#[utoipa::path(get, path = "/clients", tag = "clients", security(("bearer" = [])),
    responses((status = 200, body = Vec<ClientView>), (status = 401), (status = 403, description = "not an admin")))]
async fn list(State(app): State<AppState>, who: Principal) -> Result<Json<Vec<ClientView>>> {
    let grant = authorize_plain(Some(&who), Action::ClientManage)?;
    let all = service::oauth::list_clients(&app.store, &grant).await?;
    Ok(Json(
        all.into_iter().map(|c| ClientView::of(c, None)).collect(),
    ))
}

/// Delete a client: every token issued to it stops working at once. The console's built-in
/// client (`c0a5c01e-0000-4000-8000-000000000001`) cannot be deleted.
#[utoipa::path(delete, path = "/clients/{client_id}", tag = "clients", security(("bearer" = [])),
    params(("client_id" = String, Path)),
    responses((status = 204), (status = 401), (status = 403, description = "not an admin"), (status = 404),
        (status = 409, description = "the console's built-in client")))]
async fn delete(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let grant = authorize_plain(Some(&who), Action::ClientManage)?;
    service::oauth::delete_client(&app.store, &grant, client_id(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a confidential client's secret: the new one is in this answer only.
#[utoipa::path(post, path = "/clients/{client_id}/secret", tag = "clients", security(("bearer" = [])),
    params(("client_id" = String, Path)),
    responses((status = 200, body = SecretView), (status = 401), (status = 403, description = "not an admin"), (status = 404),
        (status = 409, description = "a public client has no secret")))]
async fn rotate_secret(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Json<SecretView>> {
    let grant = authorize_plain(Some(&who), Action::ClientManage)?;
    let secret = service::oauth::rotate_secret(&app.store, &grant, client_id(&id)?, &meta).await?;
    Ok(Json(SecretView {
        client_secret: secret,
    }))
}
