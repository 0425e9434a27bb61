//! `/api/v1/token`: the OAuth2 token endpoint (RFC 6749) and revocation (RFC 7009).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::OAuthError;
use super::extract::OAuthForm;
use crate::domain::client::{Client, GrantType};
use crate::error::{AppError, OAuthCode};
use crate::service::auth::{Granted, TokenPair};
use crate::service::mfa::Factor;
use crate::service::oauth::{ClientAuth, Redemption};
use crate::service::{self, audit::RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(revoke))
        .routes(routes!(introspect))
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenResponse {
    access_token: String,
    /// Always `bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// None for the client-credentials grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// The scopes the access token carries, space-separated (a password-grant token: every
    /// scope, its role deciding).
    scope: String,
}

/// The form fields of a token request, for the documentation (the body is parsed by `OAuthForm`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    /// `password`, `authorization_code`, `client_credentials` or `refresh_token`.
    grant_type: String,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    /// `authorization_code`: the code, the redirect URI of the authorization request, and the
    /// PKCE verifier.
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    /// A public client names itself; a confidential one authenticates with HTTP Basic.
    client_id: Option<String>,
    /// `client_credentials`: the scopes asked for (default: all the client's).
    scope: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IntrospectRequest {
    token: String,
    token_type_hint: Option<String>,
}

/// RFC 7662 answer: `active`, and for an active token its `scope`, `client_id`, `sub`, `exp`,
/// `iat`, `iss` and `token_type`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IntrospectResponse {
    active: bool,
    scope: Option<String>,
    client_id: Option<String>,
    sub: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    iss: Option<String>,
    token_type: Option<String>,
}

/// The client a token request authenticates as, if it names one: HTTP Basic
/// (`client_secret_basic`, RFC 6749 §2.3.1: id and secret form-urlencoded) or, for a public
/// client, `client_id` in the form. Both at once must agree.
async fn client_of(
    app: &AppState,
    headers: &HeaderMap,
    form: &OAuthForm,
    meta: &RequestMeta,
) -> Result<Option<Client>, OAuthError> {
    let basic = basic_credentials(headers)?;
    let auth = match (&basic, form.get("client_id")) {
        (Some((id, _)), Some(named)) if named != id => {
            return Err(OAuthError::invalid_request(
                "client_id differs from the HTTP Basic client",
            ));
        }
        (Some((id, secret)), _) => ClientAuth::Basic { id, secret },
        (None, Some(id)) => ClientAuth::Public { id },
        (None, None) => return Ok(None),
    };
    Ok(Some(
        service::oauth::authenticate_client(&app.store, &app.sinks, auth, meta).await?,
    ))
}

/// The confidential client a request authenticates as with HTTP Basic (required).
async fn confidential_client(
    app: &AppState,
    headers: &HeaderMap,
    meta: &RequestMeta,
) -> Result<Client, OAuthError> {
    let Some((id, secret)) = basic_credentials(headers)? else {
        return Err(client_auth_failed());
    };
    let auth = ClientAuth::Basic {
        id: &id,
        secret: &secret,
    };
    Ok(service::oauth::authenticate_client(&app.store, &app.sinks, auth, meta).await?)
}

fn client_auth_failed() -> OAuthError {
    OAuthError::from(AppError::oauth(
        OAuthCode::InvalidClient,
        "client authentication failed",
    ))
}

/// `Authorization: Basic` credentials, decoded; none when the header is absent.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = client_auth_failed;
    let v = v.to_str().map_err(|_| bad())?;
    let Some(b64) = v
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim())
    else {
        return Err(bad());
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = raw.split_once(':').ok_or_else(bad)?;
    let decode = |s: &str| form_urlencoded_decode(s).ok_or_else(bad);
    Ok(Some((decode(id)?, decode(secret)?)))
}

/// `application/x-www-form-urlencoded` decoding of one value (RFC 6749 §2.3.1).
fn form_urlencoded_decode(s: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={s}")).ok()?;
    match pairs.as_slice() {
        [(_, v)] => Some(v.clone()),
        _ => None,
    }
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RevokeRequest {
    token: String,
    token_type_hint: Option<String>,
}

/// Issue tokens: `grant_type=password` (username = email), `authorization_code` (with PKCE),
/// `client_credentials` (HTTP Basic) or `refresh_token` (rotates it; bound to its client).
#[utoipa::path(post, path = "/token", tag = "identity",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = 400, description = "OAuth2 error: invalid_grant, invalid_request, invalid_scope, unauthorized_client, unsupported_grant_type"),
        (status = 401, description = "OAuth2 error invalid_client: client authentication failed")))]
async fn token(
    State(app): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let pair = match form.get("grant_type") {
        Some("password") => {
            if !app.config.password_grant {
                return Err(OAuthError::from(AppError::oauth(
                    OAuthCode::UnsupportedGrantType,
                    "the password grant is switched off here (IMANGOR_PASSWORD_GRANT=off)",
                )));
            }
            let (Some(username), Some(password)) = (form.get("username"), form.get("password"))
            else {
                return Err(OAuthError::invalid_request(
                    "username and password are required",
                ));
            };
            let granted = service::auth::login(
                &app.store,
                &app.identity,
                &app.guards,
                &app.sinks,
                &app.config,
                username,
                password,
                &meta,
            )
            .await?;
            tokens_or_mfa(granted)?
        }
        Some(MFA_GRANT) => {
            // The second half of the password grant: off with it.
            if !app.config.password_grant {
                return Err(OAuthError::from(AppError::oauth(
                    OAuthCode::UnsupportedGrantType,
                    "the password grant is switched off here (IMANGOR_PASSWORD_GRANT=off)",
                )));
            }
            let Some(mfa_token) = form.get("mfa_token") else {
                return Err(OAuthError::invalid_request("mfa_token is required"));
            };
            let factor = match (form.get("otp"), form.get("recovery_code")) {
                (Some(otp), None) => Factor::Totp(otp),
                (None, Some(code)) => Factor::RecoveryCode(code),
                _ => {
                    return Err(OAuthError::invalid_request(
                        "give one of otp and recovery_code",
                    ));
                }
            };
            let granted = service::mfa::redeem(
                &app.store,
                &app.identity,
                &app.guards,
                &app.sinks,
                &app.keys,
                &app.config,
                mfa_token,
                factor,
                &meta,
            )
            .await?;
            tokens_or_mfa(granted)?
        }
        Some("refresh_token") => {
            let Some(refresh) = form.get("refresh_token") else {
                return Err(OAuthError::invalid_request("refresh_token is required"));
            };
            let client = client_of(&app, &headers, &form, &meta).await?;
            let refreshed = service::auth::refresh(
                &app.store,
                &app.identity,
                &app.sinks,
                &app.config,
                refresh,
                client.as_ref().map(|c| c.id),
                &meta,
            )
            .await;
            // The password grant's refreshes are not a client's grant.
            match client {
                Some(_) => counted(&app, GrantType::RefreshToken, refreshed)?,
                None => refreshed?,
            }
        }
        Some("authorization_code") => {
            let Some(client) = client_of(&app, &headers, &form, &meta).await? else {
                return Err(client_auth_failed());
            };
            let Some(code) = form.get("code") else {
                return Err(OAuthError::invalid_request("code is required"));
            };
            let presented = Redemption {
                code,
                redirect_uri: form.get("redirect_uri"),
                verifier: form.get("code_verifier"),
            };
            let redeemed = service::oauth::redeem_code(
                &app.store,
                &app.identity,
                &app.sinks,
                &app.config,
                &client,
                &presented,
                &meta,
            )
            .await;
            counted(&app, GrantType::AuthorizationCode, redeemed)?
        }
        Some("client_credentials") => {
            let client = confidential_client(&app, &headers, &meta).await?;
            let issued = service::oauth::client_credentials(
                &app.store,
                &app.identity,
                &app.sinks,
                &client,
                form.get("scope"),
                &meta,
            )
            .await;
            counted(&app, GrantType::ClientCredentials, issued)?
        }
        Some(_) => return Err(OAuthError::unsupported_grant_type()),
        None => return Err(OAuthError::invalid_request("grant_type is required")),
    };
    let body = TokenResponse {
        access_token: pair.access_token,
        token_type: "bearer",
        expires_in: pair.expires_in,
        refresh_token: pair.refresh_token,
        scope: pair.scope.to_string(),
    };
    Ok(no_store(Json(body).into_response()))
}

/// A client's grant, counted by its outcome (`oauth_grants_total`).
fn counted(
    app: &AppState,
    grant: GrantType,
    result: Result<TokenPair, AppError>,
) -> Result<TokenPair, AppError> {
    app.sinks.metrics.oauth_grant(grant, result.is_ok());
    result
}

/// The MFA grant's type (API.md "Multi-factor authentication").
const MFA_GRANT: &str = "urn:imangor:grant-type:mfa";

/// Tokens, or the `mfa_required` answer: 400 with the `mfa_token` the second factor is
/// presented with, and no tokens.
fn tokens_or_mfa(granted: Granted) -> Result<TokenPair, OAuthError> {
    match granted {
        Granted::Tokens(pair) => Ok(pair),
        Granted::MfaRequired { mfa_token } => Err(OAuthError::mfa_required(mfa_token)),
    }
}

/// Introspect an access token (RFC 7662), for a confidential client (HTTP Basic).
#[utoipa::path(post, path = "/token/introspect", tag = "identity",
    request_body(content = IntrospectRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = IntrospectResponse), (status = 400, description = "OAuth2 error invalid_request: no `token`, or not a form body"),
        (status = 401, description = "OAuth2 error invalid_client: no or wrong HTTP Basic credentials of a confidential client")))]
async fn introspect(
    State(app): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let client = confidential_client(&app, &headers, &meta).await?;
    let Some(token) = form.get("token") else {
        return Err(OAuthError::invalid_request("token is required"));
    };
    let answer = service::oauth::introspect(&app.store, &app.identity, &client, token).await?;
    Ok(no_store(Json(answer).into_response()))
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
