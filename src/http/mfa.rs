//! `/api/v1/users/me/mfa`: the caller's second factors (API.md "Multi-factor authentication").

use axum::Json;
use axum::extract::{Path, State};
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
        .routes(routes!(passkey_options))
        .routes(routes!(register_passkey))
        .routes(routes!(remove_passkey))
}

#[derive(Serialize, ToSchema)]
pub struct MfaView {
    /// TOTP is set up and required at sign-in.
    totp: bool,
    /// Registered passkeys.
    passkeys: Vec<PasskeyView>,
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
    let passkeys = service::passkeys::list(&app.store, &who).await?;
    Ok(Json(MfaView {
        totp: s.totp,
        passkeys: passkeys.iter().map(PasskeyView::from).collect(),
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

#[derive(Serialize, ToSchema)]
pub struct PasskeyView {
    id: String,
    name: String,
    /// RFC 3339.
    created_at: String,
    last_used_at: Option<String>,
}

impl From<&crate::db::passkeys::Passkey> for PasskeyView {
    fn from(p: &crate::db::passkeys::Passkey) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            created_at: p.created_at.rfc3339(),
            last_used_at: p.last_used_at.map(|t| t.rfc3339()),
        }
    }
}

/// Creation options for `navigator.credentials.create` (WebAuthn Level 2), after the current
/// password; an account that already has a second factor needs a recent one (RFC 9470).
#[utoipa::path(post, path = "/users/me/passkeys/options", tag = "identity", security(("bearer" = [])), request_body = PasswordInput,
    responses((status = 200, description = "PublicKeyCredentialCreationOptions, binary fields in base64url", body = Object),
        (status = 401, description = "unauthenticated, or insufficient_user_authentication"), (status = 403, description = "wrong_password"),
        (status = 409, description = "ten passkeys already")))]
async fn passkey_options(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    AppJson(req): AppJson<PasswordInput>,
) -> Result<Json<serde_json::Value>> {
    let options = service::passkeys::registration_options(
        &app.store,
        &app.identity,
        &app.guards,
        &app.sinks,
        &app.config,
        &who,
        &req.current_password,
        &meta,
    )
    .await?;
    Ok(Json(options))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPasskeyInput {
    /// What the user calls it (1 to 64 characters).
    name: String,
    /// The `PublicKeyCredential` of `navigator.credentials.create`, binary fields in base64url
    /// (`PublicKeyCredential.toJSON()`); other members are ignored.
    credential: CredentialInput,
}

#[derive(Deserialize, ToSchema)]
pub struct CredentialInput {
    #[serde(rename = "rawId")]
    raw_id: String,
    #[serde(rename = "type")]
    kind: String,
    response: AttestationInput,
}

#[derive(Deserialize, ToSchema)]
pub struct AttestationInput {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    #[serde(rename = "attestationObject")]
    attestation_object: String,
}

/// Register a passkey: the answer to the options' challenge (single use, five minutes).
#[utoipa::path(post, path = "/users/me/passkeys", tag = "identity", security(("bearer" = [])), request_body = NewPasskeyInput,
    responses((status = 201, body = PasskeyView), (status = 401), (status = 409, description = "already registered, or ten passkeys"),
        (status = 422, description = "the credential was not accepted (each reason named)")))]
async fn register_passkey(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    AppJson(req): AppJson<NewPasskeyInput>,
) -> Result<(StatusCode, Json<PasskeyView>)> {
    let decode = |field: &str, v: &str| {
        crate::auth::webauthn::unb64url(v).ok_or_else(|| {
            crate::domain::ValidationError::field(
                format!("credential.{field}"),
                "not base64url without padding",
            )
        })
    };
    if req.credential.kind != "public-key" {
        return Err(
            crate::domain::ValidationError::field("credential.type", "must be public-key").into(),
        );
    }
    let credential = service::passkeys::NewCredential {
        raw_id: decode("rawId", &req.credential.raw_id)?,
        client_data_json: decode(
            "response.clientDataJSON",
            &req.credential.response.client_data_json,
        )?,
        attestation_object: decode(
            "response.attestationObject",
            &req.credential.response.attestation_object,
        )?,
    };
    let passkey =
        service::passkeys::register(&app.store, &app.config, &who, &req.name, &credential, &meta)
            .await?;
    Ok((StatusCode::CREATED, Json(PasskeyView::from(&passkey))))
}

/// Remove one of the caller's passkeys, with the current password and a recent second factor
/// (RFC 9470); the account's other sessions end.
#[utoipa::path(delete, path = "/users/me/passkeys/{id}", tag = "identity", security(("bearer" = [])),
    params(("id" = String, Path)), request_body = PasswordInput,
    responses((status = 204), (status = 401, description = "unauthenticated, or insufficient_user_authentication"),
        (status = 403, description = "wrong_password"), (status = 404)))]
async fn remove_passkey(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
    AppJson(req): AppJson<PasswordInput>,
) -> Result<StatusCode> {
    service::passkeys::remove(
        &app.store,
        &app.identity,
        &app.guards,
        &app.sinks,
        &who,
        &id,
        &req.current_password,
        &meta,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
