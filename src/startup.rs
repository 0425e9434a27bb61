//! Building the application from a `Config` and running it until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::Db;
use crate::http::server::ConnLimits;
use crate::infra::jobs::Jobs;
use crate::service::audit::{self, seal};
use crate::state::AppState;

/// Connections the scrape listener (metrics and the kubelet's probes) serves at once: enough
/// that filling it takes `SCRAPE_MAX_CONNECTIONS / SCRAPE_SHARE` = 32 addresses of the monitoring
/// network (the NetworkPolicy admits only the monitoring namespace and the node), few enough that
/// no one exhausts the process's file descriptors through it.
const SCRAPE_MAX_CONNECTIONS: usize = 256;

/// Connections one address holds at once on the scrape listener. Prometheus keeps one, the
/// kubelet opens one per probe and closes it.
const SCRAPE_SHARE: usize = 8;

/// A built application: its listener is bound, so the address is known before it serves.
pub struct App {
    listener: TcpListener,
    metrics: Option<TcpListener>,
    state: AppState,
    /// Every background job (the event writer and the alert sender from the start; the loops
    /// once it runs), stopped and joined at shutdown.
    jobs: Jobs,
}

impl App {
    /// Builds the application on `config.listen` (port 0 picks a free port, as the tests do).
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let listen = config.listen;
        let (state, jobs) = crate::state::open(config).await?;
        // The keyrings this server encrypts and signs with: when each key was first used, and
        // when the previous ones stopped (the overlap before a signing key may be retired).
        crate::service::keys::observe(
            &state.store.db,
            &state.keys,
            &state.identity.tokens,
            state.identity.legacy.as_deref(),
        )
        .await
        .context("recording the keyrings in the key log")?;
        record_start(&state).await?;
        console_client(&state).await?;
        if let Some((email, password)) =
            crate::service::users::bootstrap_admin(&state.store, &state.identity, &state.config)
                .await
                .map_err(|e| match e {
                    crate::error::AppError::Internal(e) => {
                        e.context("creating the bootstrap admin")
                    }
                    e => anyhow::anyhow!("{e}"),
                })?
        {
            use crate::service::users::BootstrapPassword;
            match password {
                // Development: printed once, on stderr, never logged.
                BootstrapPassword::Generated(p) => eprintln!(
                    "\n==== imangor: bootstrap admin created ====\n  email:    {email}\n  password: {p}\n  This password is shown once. Log in and change it.\n==========================================\n"
                ),
                // Production: the password stays in its 0600 file; only the path is logged.
                BootstrapPassword::Written(path) => tracing::warn!(
                    email = %email,
                    path = %path.display(),
                    "bootstrap admin created: its generated password is in this file (0600); log in, change it, then delete the file"
                ),
                BootstrapPassword::Configured => {
                    tracing::info!(email = %email, "bootstrap admin created from IMANGOR_BOOTSTRAP_ADMIN_*")
                }
            }
        }
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding IMANGOR_LISTEN {listen}"))?;
        let metrics = match state.config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding IMANGOR_METRICS_LISTEN {addr}"))?,
            ),
            None => None,
        };
        Ok(App {
            listener,
            metrics,
            state,
            jobs,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The scrape listener's address, unless metrics are off.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains in-flight requests
    /// (at most `shutdown_timeout`) and closes the database.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            listener,
            metrics,
            state,
            mut jobs,
        } = self;
        let drain = state.config.shutdown_timeout;
        let db = state.store.db.clone();
        jobs.spawn("token pruning", prune_loop(db.clone()));
        let sealer = jobs.spawn("audit sealer", seal::sealer(state.trail.clone()));
        jobs.spawn("audit watcher", seal::watcher(state.trail.clone()));
        jobs.spawn(
            "blocklist refresh",
            crate::limits::blocks::refresh_loop(db.clone(), state.guards.blocks.clone()),
        );
        if let Some(shared) = state.shared.clone() {
            share(&state, shared, &mut jobs);
        }
        let sealing = state.clone();
        tracing::info!(
            addr = %listener.local_addr()?,
            env = ?state.config.env,
            database = state.store.db.backend(),
            registration = ?state.config.registration,
            "imangor serving"
        );
        let limits = ConnLimits {
            max_connections: state.config.max_connections,
            header_timeout: state.config.header_timeout,
            write_timeout: state.config.write_timeout,
            drain,
            shares: state.guards.shares.clone(),
            trusted_proxies: state.config.trusted_proxies.clone(),
            metrics: state.sinks.metrics.clone(),
        };
        // Readiness is known before the first request, then checked each second in the background.
        state
            .readiness
            .check(&state.store.db, &state.sinks.metrics)
            .await;
        jobs.spawn(
            "readiness probe",
            crate::service::readiness::probe_loop(
                state.readiness.clone(),
                state.store.db.clone(),
                state.sinks.metrics.clone(),
            ),
        );
        // One shutdown signal for both listeners.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopping = Arc::new(std::sync::OnceLock::new());
        let stop_at = stopping.clone();
        jobs.spawn("shutdown signal", async move {
            shutdown.await;
            let _ = stop_at.set(std::time::Instant::now());
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Some(l) = metrics {
            tracing::info!(addr = %l.local_addr()?, "metrics served");
            let scrape = crate::http::metrics::router(state.clone());
            let rx = stop_rx.clone();
            // The probes and the scraper are few: the same header and write deadlines as the
            // API, a small cap, and a share per address, so that slow connections from the
            // monitoring network cannot hold the listener the kubelet's probes need.
            let scrape_limits = ConnLimits {
                max_connections: SCRAPE_MAX_CONNECTIONS,
                shares: crate::limits::shares::Shares::new(SCRAPE_SHARE),
                trusted_proxies: Vec::new(),
                ..limits.clone()
            };
            jobs.spawn("metrics listener", async move {
                if let Err(e) =
                    crate::http::server::serve(l, scrape, scrape_limits, stopped(rx)).await
                {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            });
        }
        let router = crate::http::router(state);
        crate::http::server::serve(listener, router, limits, stopped(stop_rx)).await?;
        // Every event of the drained requests is written and in the chain before the process ends.
        sealing.sinks.events.flush().await;
        sealer.abort();
        if let Err(e) = seal::seal_and_sign(&sealing.trail).await {
            tracing::error!(error = %format!("{e:#}"), "sealing the audit trail at shutdown failed; the next start seals it");
        }
        // Queued alerts (the last pass's among them) are delivered in what is left of the same
        // deadline (the orchestrator's grace period counts from the signal); what is left then
        // is counted (`security_alerts_dropped_total{reason="shutdown"}`).
        let left = stopping.get().map_or(drain, |t: &std::time::Instant| {
            drain.saturating_sub(t.elapsed())
        });
        sealing.sinks.alerts.shutdown(left).await;
        jobs.shutdown().await;
        db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The tasks of a replica that shares state: probing Redis while it is down, recording each
/// outage and recovery (the detector opens a high incident), and applying what other replicas announce.
fn share(state: &AppState, shared: Arc<crate::infra::shared::Shared>, jobs: &mut Jobs) {
    jobs.spawn("redis probe", shared.clone().probe_loop());
    let mut health = shared.watch();
    let sinks = state.sinks.clone();
    jobs.spawn("redis health events", async move {
        // One event per outage, and at most one a minute: a Redis that flaps must not raise
        // an alert per flip. `restored` only follows a recorded outage.
        const QUIET: Duration = Duration::from_secs(60);
        let meta = crate::service::audit::RequestMeta::default();
        let mut last_outage: Option<std::time::Instant> = None;
        let mut reported = false;
        let mut up = *health.borrow_and_update();
        loop {
            if !up && !reported && last_outage.is_none_or(|t| t.elapsed() >= QUIET) {
                crate::service::shared_state_changed(&sinks, false, &meta).await;
                last_outage = Some(std::time::Instant::now());
                reported = true;
            } else if up && reported {
                crate::service::shared_state_changed(&sinks, true, &meta).await;
                reported = false;
            }
            if health.changed().await.is_err() {
                break;
            }
            up = *health.borrow_and_update();
        }
    });
    // A reload asked for by an announcement runs in a job of its own, off the listener's path,
    // so that the next announcement is not held up; announcements that arrive during a reload
    // are answered by one more.
    let reload = Arc::new(tokio::sync::Notify::new());
    let (db, blocks) = (state.store.db.clone(), state.guards.blocks.clone());
    let asked = reload.clone();
    jobs.spawn("blocklist reload on announcement", async move {
        loop {
            asked.notified().await;
            if let Err(e) = blocks.refresh(&db).await {
                tracing::warn!(error = %e, "reloading blocked addresses failed");
            }
        }
    });
    let cache = state.identity.cache.clone();
    jobs.spawn(
        "redis announcements",
        shared.listen(move |change| {
            let (cache, reload) = (cache.clone(), reload.clone());
            async move {
                match change {
                    crate::infra::shared::Change::Auth => cache.bump(),
                    crate::infra::shared::Change::Blocks => reload.notify_one(),
                }
            }
        }),
    );
}

/// The start-up event of the audit trail: what this server runs with (never a secret).
/// The console's built-in OAuth client, registered (or brought up to date) on every start.
async fn console_client(state: &AppState) -> anyhow::Result<()> {
    use crate::service::oauth::{self, ConsoleClient};
    let outcome = oauth::ensure_console_client(&state.store, &state.config)
        .await
        .map_err(|e| match e {
            crate::error::AppError::Internal(e) | crate::error::AppError::Unavailable(e) => {
                e.context("registering the console's OAuth client")
            }
            e => anyhow::anyhow!("registering the console's OAuth client: {e}"),
        })?;
    if let ConsoleClient::Absent { why } = outcome {
        tracing::warn!(
            public_url = %state.config.public_url,
            "the console cannot sign in: its redirect URI {{IMANGOR_PUBLIC_URL}}/console is refused ({why}); set IMANGOR_PUBLIC_URL to the https URL users reach (or http://127.0.0.1:PORT on this machine)"
        );
    }
    Ok(())
}

async fn record_start(state: &AppState) -> anyhow::Result<()> {
    let c = &state.config;
    let signing: Vec<String> = state
        .identity
        .tokens
        .describe()
        .iter()
        .map(|(k, a)| format!("{k} ({a})"))
        .collect();
    let summary = format!(
        "version {}; env {:?}; database {}; registration {:?}; rate limits {}; cors origins {}; trusted proxies {} (client address from {}); data key {}; signing keys {}; metrics {}; alerts {}; old stack's tokens {}",
        env!("CARGO_PKG_VERSION"),
        c.env,
        state.store.db.backend(),
        c.registration,
        if c.rate_limits { "on" } else { "off" },
        c.cors_origins.len(),
        c.trusted_proxies.len(),
        c.client_ip_header.name(),
        state.keys.current(),
        signing.join(", "),
        c.metrics_listen
            .map(|a| a.to_string())
            .unwrap_or_else(|| "off".into()),
        if c.alert_webhook_url.is_some() {
            "on"
        } else {
            "off"
        },
        state.identity.legacy.as_ref().map_or("off", |l| l.kid()),
    );
    let mut tx = state.store.db.begin().await?;
    crate::service::audit::Event::new(audit::Action::ServerStart, audit::Outcome::Success)
        .detail(summary)
        .record(&mut tx, &crate::service::audit::RequestMeta::default())
        .await?;
    tx.commit().await.quiet()?;
    Ok(())
}

/// Deletes expired revocation entries and refresh tokens every ten minutes.
async fn prune_loop(db: Db) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        every.tick().await;
        if let Err(e) = crate::db::sessions::prune(&db, crate::domain::Timestamp::now()).await {
            tracing::warn!(error = %e, "pruning expired tokens failed");
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when the
/// future is first polled: a SIGTERM that arrives just after "imangor serving" is logged drains
/// the server instead of killing it.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! { _ = wait(term) => {}, _ = wait(int) => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
