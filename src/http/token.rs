//! `/api/v1/token`: the OAuth2 token endpoint (RFC 6749) and revocation (RFC 7009).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::OAuthError;
use super::extract::OAuthForm;
use crate::service::{self, audit::RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(revoke))
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenResponse {
    access_token: String,
    /// Always `bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    refresh_token: String,
}

/// The form fields of a token request, for the documentation (the body is parsed by `OAuthForm`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    /// `password` or `refresh_token`.
    grant_type: String,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RevokeRequest {
    token: String,
    token_type_hint: Option<String>,
}

/// Issue tokens: `grant_type=password` (username = email) or `grant_type=refresh_token` (rotates it).
#[utoipa::path(post, path = "/token", tag = "identity",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = 400, description = "OAuth2 error: invalid_grant, invalid_request, unsupported_grant_type")))]
async fn token(
    State(app): State<AppState>,
    meta: RequestMeta,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let pair = match form.get("grant_type") {
        Some("password") => {
            let (Some(username), Some(password)) = (form.get("username"), form.get("password"))
            else {
                return Err(OAuthError::invalid_request(
                    "username and password are required",
                ));
            };
            service::auth::login(
                &app.store,
                &app.identity,
                &app.guards,
                &app.sinks,
                &app.config,
                username,
                password,
                &meta,
            )
            .await?
        }
        Some("refresh_token") => {
            let Some(refresh) = form.get("refresh_token") else {
                return Err(OAuthError::invalid_request("refresh_token is required"));
            };
            service::auth::refresh(
                &app.store,
                &app.identity,
                &app.sinks,
                &app.config,
                refresh,
                &meta,
            )
            .await?
        }
        Some(_) => return Err(OAuthError::unsupported_grant_type()),
        None => return Err(OAuthError::invalid_request("grant_type is required")),
    };
    let body = TokenResponse {
        access_token: pair.access_token,
        token_type: "bearer",
        expires_in: pair.expires_in,
        refresh_token: pair.refresh_token,
    };
    Ok(no_store(Json(body).into_response()))
}

/// Revoke a token (RFC 7009): a refresh token ends its session, an access token is denied until it expires.
/// Answers 200 whether or not the token was known.
#[utoipa::path(post, path = "/token/revoke", tag = "identity",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "revoked, or unknown"), (status = 400, description = "OAuth2 error invalid_request: no `token`, or not a form body")))]
async fn revoke(
    State(app): State<AppState>,
    meta: RequestMeta,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let Some(token) = form.get("token") else {
        return Err(OAuthError::invalid_request("token is required"));
    };
    service::auth::revoke(&app.store, &app.identity, token, &meta).await?;
    Ok(no_store(Json(serde_json::json!({})).into_response()))
}

fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}
