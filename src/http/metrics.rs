//! The scrape listener: `GET /metrics` in the Prometheus text format, and the probes (`/healthz`,
//! `/readyz` with its details) for the kubelet, unlimited. It is a separate listener
//! (`IMANGOR_METRICS_LISTEN`), so the public port never serves the metrics, and the probes here
//! do not share a rate limit or a connection share with anything that reaches the public port.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::service::context::{Identity, Sinks, Store};
use crate::state::AppState;

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(super::health::alive))
        .route("/readyz", get(super::health::detailed))
        .with_state(app)
}

async fn scrape(
    State(store): State<Store>,
    State(identity): State<Identity>,
    State(sinks): State<Sinks>,
) -> Response {
    let gauges = crate::service::security::gauges(&store, &identity).await;
    let mut res = sinks.metrics.render(&gauges).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

/// Times every request of the public listener, labelled by its route template.
pub async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let endpoint = req.extensions().get::<MatchedPath>().cloned();
    let res = next.run(req).await;
    app.sinks.metrics.request(
        endpoint.as_ref().map(MatchedPath::as_str),
        &method,
        res.status().as_u16(),
        started.elapsed(),
    );
    res
}
