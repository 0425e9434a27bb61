//! Liveness, readiness (answered from a background probe), and the public keys of the signing
//! keyring.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use super::error::problem;
use crate::db::Db;
use crate::metrics::Metrics;
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

/// The database's last answer to the readiness probe.
const UNKNOWN: u8 = 0;
const READY: u8 = 1;
const DB_ERROR: u8 = 2;
const DB_SILENT: u8 = 3;

/// How long the probe waits for the database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The readiness probe's last result. The probe (`probe_loop`) asks the database once a second;
/// `GET /readyz` reads the result and does no database work of its own, so that a flood of
/// probes cannot take the pool's connections from the API (or fail readiness everywhere at once).
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

impl Readiness {
    /// Asks the database once and keeps the answer; logs only a change, not every failed second.
    pub async fn check(&self, db: &Db, metrics: &Metrics) {
        metrics.readiness_check();
        let (now, error) = match tokio::time::timeout(PROBE_TIMEOUT, db.ping()).await {
            Ok(Ok(())) => (READY, None),
            Ok(Err(e)) => (DB_ERROR, Some(e.to_string())),
            Err(_) => (DB_SILENT, None),
        };
        let before = self.0.swap(now, Ordering::Relaxed);
        if before == now {
            return;
        }
        match (now, error) {
            (READY, _) if before != UNKNOWN => {
                tracing::info!("readiness: the database answers again")
            }
            (READY, _) => {}
            (_, Some(e)) => tracing::warn!(error = %e, "readiness: database error; not ready"),
            _ => tracing::warn!(
                "readiness: the database did not answer within {PROBE_TIMEOUT:?}; not ready"
            ),
        }
    }
}

/// Checks the database each second for as long as the server runs.
pub async fn probe_loop(app: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        app.readiness.check(&app.db, &app.metrics).await;
    }
}

/// The process can serve: the database answered the last readiness probe (made each second in
/// the background; this call itself does no database work). Also says whether the shared store
/// (Redis) is in use (`up`), unreachable (`down`: this replica limits on its own) or not
/// configured (`off`).
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200), (status = 503)))]
async fn readyz(State(app): State<AppState>) -> Response {
    match app.readiness.0.load(Ordering::Relaxed) {
        // Redis down does not make a replica unready: it falls back to its own limits.
        READY => Json(serde_json::json!({
            "status": "ready",
            "database": app.db.backend(),
            "shared_state": match &app.shared {
                None => "off",
                Some(s) if s.is_up() => "up",
                Some(_) => "down",
            },
        }))
        .into_response(),
        // The cause goes to the log, never to the body (no SQL or driver text).
        DB_SILENT => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database did not answer in time",
            None,
        ),
        DB_ERROR => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database is not reachable",
            None,
        ),
        _ => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database has not been checked yet",
            None,
        ),
    }
}
