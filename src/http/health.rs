//! Liveness, readiness, and the public keys of the signing keyring.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::problem;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(jwks))
}

/// The public keys (EdDSA) that verify imangor's access tokens, by `kid` (RFC 7517): other
/// services verify tokens without sharing a secret. HMAC keys are never published; with only
/// HS256 keys configured the set is empty.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys", responses((status = 200, description = "a JSON Web Key Set")))]
async fn jwks(State(app): State<AppState>) -> Response {
    let mut res = Json(app.tokens.jwks()).into_response();
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

/// The process can serve: the database answers. Also says whether the shared store (Redis) is
/// in use (`up`), unreachable (`down`: this replica limits on its own) or not configured (`off`).
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200), (status = 503)))]
async fn readyz(State(app): State<AppState>) -> Response {
    match tokio::time::timeout(std::time::Duration::from_secs(2), app.db.ping()).await {
        // Redis down does not make a replica unready: it falls back to its own limits.
        Ok(Ok(())) => Json(serde_json::json!({
            "status": "ready",
            "database": app.db.backend(),
            "shared_state": match &app.shared {
                None => "off",
                Some(s) if s.is_up() => "up",
                Some(_) => "down",
            },
        }))
        .into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database error");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database is not reachable",
                None,
            )
        }
        Err(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database did not answer in time",
            None,
        ),
    }
}
