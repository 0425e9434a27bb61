//! Liveness, readiness (answered from a background probe), and the public keys of the signing
//! keyring.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use std::time::Instant;

use super::error::problem;
use crate::service::readiness::{self, STALE_AFTER};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(jwks))
        .routes(routes!(audit_keys))
}

/// The public keys (EdDSA) that verify imangor's access tokens, by `kid` (RFC 7517): other
/// services verify tokens without sharing a secret. HMAC keys are never published; with only
/// HS256 keys configured the set is empty.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys", responses((status = 200, description = "a JSON Web Key Set")))]
async fn jwks(State(app): State<AppState>) -> Response {
    let mut res = Json(app.identity.tokens.jwks()).into_response();
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=300"),
    );
    res
}

/// The public keys (Ed25519, by `kid`: the data key's id) that verify the audit chain's signed
/// checkpoints and evidence bundles (`imangor evidence verify --keys`), in the shape of a JSON Web
/// Key Set: an investigator checks a bundle against keys fetched from the deployment, not only
/// against those the bundle carries. Never a data key itself.
#[utoipa::path(get, path = "/.well-known/imangor-audit-keys", tag = "keys",
    responses((status = 200, description = "a JSON Web Key Set of Ed25519 keys (`kty` OKP, `crv` Ed25519, `x`, `kid`, `use` sig)")))]
async fn audit_keys(State(app): State<AppState>) -> Response {
    let mut res = Json(crate::crypto::chain::audit_keys_jwks(&app.keys)).into_response();
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=300"),
    );
    res
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200)))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The process can serve: the database answered the last readiness probe (made each second in
/// the background; this call itself does no database work). The public answer says nothing
/// more; the metrics listener's copy (`detailed`) names the database and the shared store.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200), (status = 503)))]
async fn readyz(State(app): State<AppState>) -> Response {
    if app.readiness.is_ready() {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        // One text whatever the cause: the cause is in the log and on the metrics listener.
        problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the service is not ready",
            None,
        )
    }
}

/// `GET /readyz` on the metrics listener (unlimited, for the kubelet and the operator): the
/// same verdict, with the database's backend and whether the shared store (Redis) is in use
/// (`up`), unreachable (`down`: this replica limits on its own) or not configured (`off`).
pub async fn detailed(State(app): State<AppState>) -> Response {
    match app.readiness.at(Instant::now()) {
        // Redis down does not make a replica unready: it falls back to its own limits.
        readiness::State::Ready => Json(serde_json::json!({
            "status": "ready",
            "database": app.store.db.backend(),
            "shared_state": match &app.shared {
                None => "off",
                Some(s) if s.is_up() => "up",
                Some(_) => "down",
            },
        }))
        .into_response(),
        // The cause goes to the log, never to the body (no SQL or driver text).
        readiness::State::DbSilent => not_ready("the database did not answer in time"),
        readiness::State::DbError => not_ready("the database is not reachable"),
        readiness::State::Stale => not_ready(&format!(
            "the readiness probe has not answered for more than {} s",
            STALE_AFTER.as_secs()
        )),
        readiness::State::Unknown => not_ready("the database has not been checked yet"),
    }
}

fn not_ready(detail: &str) -> Response {
    problem(StatusCode::SERVICE_UNAVAILABLE, "not_ready", detail, None)
}

/// `GET /healthz` on the metrics listener: the process is up.
pub async fn alive() -> Json<serde_json::Value> {
    healthz().await
}
