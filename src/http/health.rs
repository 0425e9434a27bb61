//! Liveness and readiness.

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
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200)))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The process can serve: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200), (status = 503)))]
async fn readyz(State(app): State<AppState>) -> Response {
    match tokio::time::timeout(std::time::Duration::from_secs(2), app.db.ping()).await {
        Ok(Ok(())) => Json(serde_json::json!({ "status": "ready", "database": app.db.backend() }))
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
