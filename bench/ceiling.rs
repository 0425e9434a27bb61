//! The ceiling of `bench/run`: a bare answer through the server stack imangor serves with (its
//! runtime, its connection loop `http::server::serve` on hyper, an axum router), minus every
//! security layer, every log line and all state. Not part of the product: an example built only
//! for benchmarks (`cargo build --release --example ceiling`).
//!
//! `ceiling serve` answers `GET /healthz` and `GET /readyz` with the body of imangor's
//! `/healthz`, on IMANGOR_LISTEN, until SIGTERM or Ctrl-C. IMANGOR_MAX_CONNECTIONS and
//! IMANGOR_MAX_CONNECTIONS_PER_ADDRESS are read as the server reads them (same defaults).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::routing::get;
use imangor::http::server::{ConnLimits, serve};
use imangor::infra::metrics::Metrics;
use imangor::limits::shares::Shares;

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() != Some("serve") {
        anyhow::bail!("usage: ceiling serve (listens on IMANGOR_LISTEN)");
    }
    let listen: SocketAddr = setting("IMANGOR_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8000)));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(healthz));
    let limits = ConnLimits {
        max_connections: setting("IMANGOR_MAX_CONNECTIONS", 1024),
        header_timeout: Duration::from_secs(10),
        write_timeout: Duration::from_secs(10),
        drain: Duration::from_secs(5),
        shares: Shares::new(setting("IMANGOR_MAX_CONNECTIONS_PER_ADDRESS", 64)),
        trusted_proxies: Vec::new(),
        metrics: std::sync::Arc::new(Metrics::default()),
    };
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    serve(listener, router, limits, stop).await
}
