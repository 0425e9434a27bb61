//! `/api/v1/users/me/mfa`: the caller's second factors (API.md "Multi-factor authentication").

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::AppJson;
use crate::authz::Principal;
use crate::error::Result;
use crate::service::{self, audit::RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(begin_totp, remove_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(recovery_codes))
}

#[derive(Serialize, ToSchema)]
pub struct MfaView {
    /// TOTP is set up and required at sign-in.
    totp: bool,
    /// Registered passkeys (none yet: passkeys are not supported by this server).
    passkeys: Vec<serde_json::Value>,
    recovery_codes_left: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordInput {
    current_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeInput {
    /// The current 6-digit code of the authenticator app.
    code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordAndCodeInput {
    current_password: String,
    code: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnrolmentView {
    /// The secret, base32 (RFC 4648), for typing into an authenticator app.
    secret: String,
    /// The same as an `otpauth://` URI (for a QR code).
    otpauth_uri: String,
    /// The URI as a QR code: a complete `<svg>` element (one `rect` and one `path`, a
    /// four-module quiet zone, no script or style), drawn by the server for the console.
    qr_svg: String,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesView {
    /// Ten single-use codes, shown this once.
    recovery_codes: Vec<String>,
}

/// The caller's second factors.
#[utoipa::path(get, path = "/users/me/mfa", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = MfaView), (status = 401)))]
async fn status(State(app): State<AppState>, who: Principal) -> Result<Json<MfaView>> {
    let s = service::mfa::status(&app.store, &who).await?;
    Ok(Json(MfaView {
        totp: s.totp,
        passkeys: Vec::new(),
        recovery_codes_left: s.recovery_codes_left,
    }))
}

/// Start a TOTP enrolment (RFC 6238: SHA-1, 6 digits, 30 s) after the current password; it is
/// required at sign-in once confirmed with a first code.
#[utoipa::path(post, path = "/users/me/mfa/totp", tag = "identity", security(("bearer" = [])), request_body = PasswordInput,
    responses((status = 200, body = EnrolmentView), (status = 401), (status = 403, description = "wrong_password"),
        (status = 409, description = "TOTP is already set up")))]
async fn begin_totp(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    AppJson(req): AppJson<PasswordInput>,
) -> Result<Json<EnrolmentView>> {
    let e = service::mfa::begin_totp(
        &app.store,
        &app.identity,
        &app.guards,
        &app.sinks,
        &app.keys,
        &app.config,
        &who,
        &req.current_password,
        &meta,
    )
    .await?;
    // An email and a host name are bounded far below what a QR code holds (2,331 bytes).
    let qr_svg = super::qr::svg(&e.otpauth_uri, "QR code of the authenticator app's secret")
        .ok_or_else(|| anyhow::anyhow!("the otpauth URI does not fit a QR code"))?;
    Ok(Json(EnrolmentView {
        secret: e.secret,
        otpauth_uri: e.otpauth_uri,
        qr_svg,
    }))
}

/// Confirm the enrolment with a first code: TOTP is now required at sign-in; the answer holds
/// the ten recovery codes.
#[utoipa::path(post, path = "/users/me/mfa/totp/confirm", tag = "identity", security(("bearer" = [])), request_body = CodeInput,
    responses((status = 200, body = RecoveryCodesView), (status = 401), (status = 409, description = "no enrolment started, or already confirmed"),
        (status = 422, description = "not the current code")))]
async fn confirm_totp(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    AppJson(req): AppJson<CodeInput>,
) -> Result<Json<RecoveryCodesView>> {
    let codes = service::mfa::confirm_totp(&app.store, &app.keys, &who, &req.code, &meta).await?;
    Ok(Json(RecoveryCodesView {
        recovery_codes: codes,
    }))
}

/// Remove TOTP (and the recovery codes) with the current password and a current code.
#[utoipa::path(delete, path = "/users/me/mfa/totp", tag = "identity", security(("bearer" = [])), request_body = PasswordAndCodeInput,
    responses((status = 204), (status = 401), (status = 403, description = "wrong_password"), (status = 409, description = "no TOTP"),
        (status = 422, description = "not the current code")))]
async fn remove_totp(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    AppJson(req): AppJson<PasswordAndCodeInput>,
) -> Result<StatusCode> {
    service::mfa::remove_totp(
        &app.store,
        &app.identity,
        &app.guards,
        &app.sinks,
        &app.keys,
        &who,
        &req.current_password,
        &req.code,
        &meta,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// New recovery codes (the old ones stop working), with the current password and a current code.
#[utoipa::path(post, path = "/users/me/mfa/recovery-codes", tag = "identity", security(("bearer" = [])), request_body = PasswordAndCodeInput,
    responses((status = 200, body = RecoveryCodesView), (status = 401), (status = 403, description = "wrong_password"),
        (status = 409, description = "no TOTP"), (status = 422, description = "not the current code")))]
async fn recovery_codes(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    AppJson(req): AppJson<PasswordAndCodeInput>,
) -> Result<Json<RecoveryCodesView>> {
    let codes = service::mfa::regenerate_recovery_codes(
        &app.store,
        &app.identity,
        &app.guards,
        &app.sinks,
        &app.keys,
        &who,
        &req.current_password,
        &req.code,
        &meta,
    )
    .await?;
    Ok(Json(RecoveryCodesView {
        recovery_codes: codes,
    }))
}
