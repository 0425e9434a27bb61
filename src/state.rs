//! What every request handler can reach, and how it is opened from a `Config`: the whole state
//! (`open`), or for a command that needs less, the store alone (`open_store`) and the keyrings
//! (`open_keyrings`).

use std::sync::Arc;

use crate::auth::cursor::Cursors;
use crate::auth::password::Hasher;
use crate::auth::token::TokenKeys;
use crate::config::{Config, Secret};
use crate::crypto::data::DataKeyring;
use crate::db::{Db, DbOptions};
use crate::limits::Limiter;
use crate::limits::login::Logins;

/// The application's services, shared by every request behind one `Arc`: a request clones one
/// pointer, not one per service (cloning them all cost ~12 000 instructions per request).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub db: Db,
    /// Connections held for the hot single-statement reads (`db::readers`).
    pub readers: Arc<crate::db::readers::Readers>,
    pub config: Arc<Config>,
    pub tokens: Arc<TokenKeys>,
    /// Seals and opens sensitive values (secrets).
    pub keys: Arc<DataKeyring>,
    pub hasher: Arc<Hasher>,
    pub cursors: Arc<Cursors>,
    pub limiter: Arc<Limiter>,
    pub logins: Arc<Logins>,
    /// How many of each account's refusals by the login guard were written as events.
    pub refusals: Arc<crate::limits::login::RefusalEvents>,
    /// The store the replicas share (Redis), when configured.
    pub shared: Option<Arc<crate::shared::Shared>>,
    /// The state behind access tokens, for at most a second.
    pub auth_cache: Arc<crate::auth::cache::AuthCache>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How far this process has verified the audit chain (in memory: see `audit::ChainWatch`).
    pub chain: Arc<crate::audit::ChainWatch>,
    /// Writes events that go with no change, off the request path.
    pub events: crate::audit::EventSink,
    /// Sends incident alerts to the webhook, off the request path.
    pub alerts: crate::alerts::Alerts,
    /// Addresses refused at the door (containment).
    pub blocks: Arc<crate::service::containment::Blocklist>,
    /// Invalid access tokens by address (the forged-token detector).
    pub token_watch: Arc<crate::service::containment::TokenWatch>,
    /// Each address's share of the connections (and of forwarded requests in flight).
    pub shares: Arc<crate::limits::shares::Shares>,
    /// The readiness probe's last answer, which `/readyz` reports.
    pub readiness: Arc<crate::service::readiness::Readiness>,
}

/// Opens the database (migrating it), loads keys, makes the hashing pool, connects to Redis.
pub async fn open(config: Config) -> anyhow::Result<AppState> {
    let (tokens, keys) = open_keyrings(&config)?;
    let db = open_store(&config).await?;
    // IMANGOR_DB_MAX_CONNECTIONS counts both: the pool, and the connections held for reads.
    let held = crate::db::readers::held_of(config.db_max_connections);
    let readers = crate::db::readers::Readers::new(db.clone(), held, config.db_acquire_timeout);
    let hasher = Hasher::new(config.hash_concurrency, config.hash_queue)?;
    let cursors = Cursors::derive(keys.cursor_key());
    let shared = match &config.redis_url {
        Some(url) => {
            let s = crate::shared::Shared::connect(url.expose(), &config.redis_prefix).await?;
            if !s.is_up() {
                tracing::error!(target: "security", "Redis (IMANGOR_REDIS_URL) does not answer: starting with this replica's own limits until it does");
            }
            crate::shared::set_announcer(s.clone());
            Some(s)
        }
        None => None,
    };
    let logins = Logins::new(
        config.login,
        shared.clone(),
        &crate::crypto::derive::<32>(keys.cursor_key(), b"imangor redis account names v1")[..],
    );
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let alerts = crate::alerts::Alerts::start(
        config
            .alert_webhook_url
            .as_ref()
            .map(|u| u.expose().to_owned()),
        config.alert_webhook_secret.clone(),
        config.alert_queue,
        metrics.clone(),
    )?;
    let events = crate::audit::EventSink::start(db.clone());
    let blocks = crate::service::containment::Blocklist::default();
    blocks.refresh(&db).await?;
    let auth_cache = crate::auth::cache::AuthCache::new(config.auth_cache_ttl);
    let shares = crate::limits::shares::Shares::new(config.max_connections_per_address);
    Ok(AppState::new(Services {
        db,
        readers: Arc::new(readers),
        config: Arc::new(config),
        tokens: Arc::new(tokens),
        keys: Arc::new(keys),
        hasher: Arc::new(hasher),
        cursors: Arc::new(cursors),
        limiter: Arc::new(Limiter::new(shared.clone())),
        logins: Arc::new(logins),
        refusals: Arc::default(),
        shared,
        auth_cache: Arc::new(auth_cache),
        metrics,
        alerts,
        chain: Arc::default(),
        events,
        blocks: Arc::new(blocks),
        token_watch: Arc::default(),
        shares,
        readiness: Arc::default(),
    }))
}

/// The signing and the data keyring. The data dir is made first: development generates the
/// keyrings there when none is configured.
pub fn open_keyrings(config: &Config) -> anyhow::Result<(TokenKeys, DataKeyring)> {
    crate::crypto::files::ensure_data_dir(&config.data_dir)?;
    let tokens = TokenKeys::configured(config)?;
    let keys = crate::crypto::configured::data_keyring(config)?;
    Ok((tokens, keys))
}

/// The store alone, connected and migrated: all a command needs that runs no use case. The
/// pool leaves out the connections a server holds for reads (`db::readers`).
pub async fn open_store(config: &Config) -> anyhow::Result<Db> {
    // The SQLite file, unless IMANGOR_DATABASE_URL says otherwise, is in the data dir.
    crate::crypto::files::ensure_data_dir(&config.data_dir)?;
    let url = match &config.database_url {
        Some(u) => u.clone(),
        None => Secret::new(format!("sqlite://{}", config.sqlite_path().display())),
    };
    let held = crate::db::readers::held_of(config.db_max_connections);
    let db = Db::connect(DbOptions {
        url: url.expose(),
        max_connections: config.db_max_connections - held,
        acquire_timeout: config.db_acquire_timeout,
    })
    .await?;
    db.migrate().await?;
    Ok(db)
}
