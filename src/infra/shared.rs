//! What the replicas share through Redis (`IMANGOR_REDIS_URL`): rate-limit buckets, login-failure
//! counters, and the announcements that make every replica drop what it cached (a user disabled,
//! a role changed, a session or token revoked, an address blocked).
//!
//! The database stays the system of record; Redis holds counters that may be lost and messages
//! that may be missed. So every use has a fallback, chosen per use (docs/operations.md):
//! - rate limits and login-failure counters fall back to this replica's own memory, and the
//!   outage is recorded (`shared_state.unavailable`), which opens a high incident;
//! - cached authentication state lives at most `IMANGOR_AUTH_CACHE_TTL` (one second), so a missed
//!   announcement delays a revocation by at most that; the database is read after it;
//! - blocked addresses are reloaded from the database every second anyway.
//!
//! A call to Redis waits at most `CALL_TIMEOUT`; while Redis is down no request waits for it at
//! all (the `up` flag), and a probe every half second brings it back when Redis returns.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The longest a request waits for Redis before it uses its fallback.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
const PROBE_EVERY: Duration = Duration::from_millis(500);
const SUBSCRIPTION_PING: Duration = Duration::from_secs(5);

/// What changed, announced to every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Accounts, roles, sessions or denied tokens: drop cached authentication state.
    Auth,
    /// Blocked addresses: reload them.
    Blocks,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Auth => "auth",
            Change::Blocks => "blocks",
        }
    }
}

/// A Lua script run atomically by Redis (sent by its hash, loaded on first use).
pub struct Lua {
    code: &'static str,
    script: OnceLock<redis::Script>,
}

impl Lua {
    pub const fn new(code: &'static str) -> Lua {
        Lua {
            code,
            script: OnceLock::new(),
        }
    }

    fn script(&self) -> &redis::Script {
        self.script.get_or_init(|| redis::Script::new(self.code))
    }
}

/// A connection to the shared store, with its health.
pub struct Shared {
    client: redis::Client,
    /// Replaced by a new one when a probe fails: a manager keeps replaying a failed connection
    /// attempt that was not an I/O error, and keeps a socket that only times out.
    conn: std::sync::RwLock<ConnectionManager>,
    prefix: String,
    up: AtomicBool,
    health: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// Prepares the connection without waiting for Redis: a replica starts (degraded) when
    /// Redis is down, and uses it once it answers.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Arc<Shared>> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("IMANGOR_REDIS_URL is not a valid Redis URL: {e}"))?;
        let conn = manager(&client)?;
        let (health, _) = tokio::sync::watch::channel(true);
        let shared = Arc::new(Shared {
            client,
            conn: std::sync::RwLock::new(conn),
            prefix: prefix.to_owned(),
            up: AtomicBool::new(true),
            health,
        });
        if !shared.ping().await {
            shared.set_up(false);
        }
        Ok(shared)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Starts over with a new connection (the old one is dropped with its last handle).
    fn renew(&self) {
        match manager(&self.client) {
            Ok(m) => *self.conn.write().unwrap_or_else(|e| e.into_inner()) = m,
            Err(e) => tracing::warn!(error = %e, "preparing a new Redis connection failed"),
        }
    }

    /// A failed call: an unreachable Redis marks it down (every request then uses its fallback
    /// until a probe finds it back); any other error (a script error, out of memory) is only
    /// this call's, answered by the fallback without flipping the whole replica.
    fn failed(&self, e: &redis::RedisError) {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            tracing::warn!(error = %e, "shared state unreachable");
            self.set_up(false);
        } else {
            tracing::warn!(error = %e, "shared state call failed");
        }
    }

    pub fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                k.push(':');
            }
            k.push_str(p);
        }
        k
    }

    fn channel(&self) -> String {
        self.key(&["changes"])
    }

    /// Whether Redis answered its last call or probe.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Follows the health: `false` when Redis stopped answering, `true` when it is back.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<bool> {
        self.health.subscribe()
    }

    fn set_up(&self, up: bool) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!(target: "security", "shared state (Redis) answers again");
            } else {
                tracing::error!(target: "security", "shared state (Redis) unreachable: replicas fall back to their own limits");
            }
            self.health.send_replace(up);
        }
    }

    async fn ping(&self) -> bool {
        let mut c = self.conn();
        let r = tokio::time::timeout(
            CALL_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut c),
        )
        .await;
        matches!(r, Ok(Ok(_)))
    }

    /// Runs a script; `None` (and Redis marked down) when it fails or is slow, or at once
    /// while Redis is known to be down.
    pub async fn run<T: redis::FromRedisValue>(
        &self,
        lua: &Lua,
        keys: &[&str],
        args: &[&str],
    ) -> Option<T> {
        if !self.is_up() {
            return None;
        }
        let mut inv = lua.script().prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        let mut c = self.conn();
        match tokio::time::timeout(CALL_TIMEOUT, inv.invoke_async::<T>(&mut c)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(&e);
                None
            }
            Err(_) => {
                tracing::warn!("shared state call timed out");
                self.set_up(false);
                None
            }
        }
    }

    /// Tells every replica (this one included) that something changed.
    pub async fn announce(&self, change: Change) {
        if !self.is_up() {
            return;
        }
        let mut c = self.conn();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.channel()).arg(change.as_str());
        let publish = cmd.query_async::<i64>(&mut c);
        match tokio::time::timeout(CALL_TIMEOUT, publish).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => self.failed(&e),
            Err(_) => self.set_up(false),
        }
    }

    /// Probes a Redis that is down, every half second, until it answers again.
    pub async fn probe_loop(self: Arc<Self>) {
        let mut every = tokio::time::interval(PROBE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if !self.is_up() {
                if self.ping().await {
                    self.set_up(true);
                } else {
                    self.renew();
                }
            }
        }
    }

    /// Receives the announcements and calls `on` with each. Whenever a subscription starts
    /// (messages may have been missed before it), `on` is called with every kind of change. A
    /// subscription is pinged every few seconds, so a half-dead connection is noticed.
    pub async fn listen<F, Fut>(self: Arc<Self>, on: F)
    where
        F: Fn(Change) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        use futures_core::Stream;
        let channel = self.channel();
        loop {
            let subscribed = async {
                let mut ps = self.client.get_async_pubsub().await?;
                ps.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(ps.split())
            };
            let Ok(Ok((mut sink, mut stream))) =
                tokio::time::timeout(CALL_TIMEOUT * 4, subscribed).await
            else {
                tokio::time::sleep(PROBE_EVERY).await;
                continue;
            };
            on(Change::Auth).await;
            on(Change::Blocks).await;
            let mut ping = tokio::time::interval(SUBSCRIPTION_PING);
            ping.tick().await;
            loop {
                let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx));
                tokio::select! {
                    msg = next => match msg {
                        Some(msg) => match msg.get_payload::<String>().as_deref() {
                            Ok("auth") => on(Change::Auth).await,
                            Ok("blocks") => on(Change::Blocks).await,
                            _ => {}
                        },
                        None => break,
                    },
                    _ = ping.tick() => {
                        let alive = tokio::time::timeout(CALL_TIMEOUT * 4, sink.ping::<String>()).await;
                        if !matches!(alive, Ok(Ok(_))) {
                            break;
                        }
                    }
                }
            }
            tracing::warn!("shared state subscription lost; subscribing again");
            // What was announced from now until the next subscription is missed.
            on(Change::Auth).await;
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }
}

/// A connection manager that connects on first use and never waits long for Redis.
fn manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CALL_TIMEOUT))
        .set_response_timeout(Some(CALL_TIMEOUT))
        .set_number_of_retries(0);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}
