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
use crate::infra::jobs::Jobs;
use crate::limits::Limiter;
use crate::limits::login::Logins;
use crate::service::audit::EventSink;
use crate::service::audit::check::Trail;
use crate::service::context::{Guards, Identity, Sinks, Store};

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
    pub store: Store,
    pub identity: Identity,
    pub guards: Guards,
    pub sinks: Sinks,
    pub config: Arc<Config>,
    /// Seals and opens sensitive values (secrets).
    pub keys: Arc<DataKeyring>,
    pub cursors: Arc<Cursors>,
    /// Sealing and checking the audit trail (its context holds the chain's watch).
    pub trail: Trail,
    /// The store the replicas share (Redis), when configured.
    pub shared: Option<Arc<crate::infra::shared::Shared>>,
    /// The readiness probe's last answer, which `/readyz` reports.
    pub readiness: Arc<crate::service::readiness::Readiness>,
}

macro_rules! from_ref {
    ($($field:ident: $ty:ty),*) => {$(
        impl axum::extract::FromRef<AppState> for $ty {
            fn from_ref(app: &AppState) -> $ty {
                app.$field.clone()
            }
        }
    )*};
}

// A handler may extract one context alone: `State(store): State<Store>`.
from_ref!(store: Store, identity: Identity, guards: Guards, sinks: Sinks, trail: Trail);

/// Opens the database (migrating it), loads keys, makes the hashing pool, connects to Redis; the
/// event writer and the alert sender run among the returned jobs.
pub async fn open(config: Config) -> anyhow::Result<(AppState, Jobs)> {
    let mut jobs = Jobs::default();
    let (tokens, keys) = open_keyrings(&config)?;
    let keys = Arc::new(keys);
    let db = open_store(&config).await?;
    // IMANGOR_DB_MAX_CONNECTIONS counts both: the pool, and the connections held for reads.
    let held = crate::db::readers::held_of(config.db_max_connections);
    let readers = crate::db::readers::Readers::new(
        db.clone(),
        held,
        config.db_acquire_timeout,
        config.sqlite_inline_reads,
    );
    let hasher = Hasher::new(
        config.hash_concurrency,
        config.hash_queue,
        config.hash_idle_release,
    )?;
    let cursors = Cursors::derive(keys.cursor_key());
    let shared = match &config.redis_url {
        Some(url) => {
            let s =
                crate::infra::shared::Shared::connect(url.expose(), &config.redis_prefix).await?;
            if !s.is_up() {
                tracing::error!(target: "security", "Redis (IMANGOR_REDIS_URL) does not answer: starting with this replica's own limits until it does");
            }
            Some(s)
        }
        None => None,
    };
    let logins = Logins::new(
        config.login,
        shared.clone(),
        &crate::crypto::derive::<32>(keys.cursor_key(), b"imangor redis account names v1")[..],
    );
    let metrics = Arc::new(crate::infra::metrics::Metrics::default());
    let alerts = crate::infra::alerts::Alerts::start(
        config
            .alert_webhook_url
            .as_ref()
            .map(|u| u.expose().to_owned()),
        config.alert_webhook_secret.clone(),
        config.alert_queue,
        metrics.clone(),
        &mut jobs,
    )?;
    let events = EventSink::start(db.clone(), &mut jobs);
    let blocks = Arc::new(crate::limits::blocks::Blocklist::default());
    blocks.refresh(&db).await?;
    let cache = Arc::new(crate::auth::cache::AuthCache::new(config.auth_cache_ttl));
    let announcer = Arc::new(crate::infra::announce::Announcer::new(
        cache.clone(),
        shared.clone(),
    ));
    let store = Store {
        db,
        readers: Arc::new(readers),
        announcer,
    };
    let sinks = Sinks {
        events,
        alerts,
        metrics,
    };
    let config = Arc::new(config);
    let trail = Trail {
        store: store.clone(),
        sinks: sinks.clone(),
        blocks: blocks.clone(),
        keys: keys.clone(),
        chain: Arc::default(),
        config: config.clone(),
    };
    let state = AppState::new(Services {
        identity: Identity {
            tokens: Arc::new(tokens),
            hasher: Arc::new(hasher),
            cache,
            legacy: crate::auth::legacy::LegacyTokens::configured(&config).map(Arc::new),
            mfa_required_roles: config.mfa_required_roles.clone(),
        },
        guards: Guards {
            limiter: Arc::new(Limiter::new(shared.clone())),
            logins: Arc::new(logins),
            refusals: Arc::default(),
            blocks,
            token_watch: Arc::default(),
            shares: crate::limits::shares::Shares::new(config.max_connections_per_address),
            drill_seen: Default::default(),
        },
        store,
        sinks,
        trail,
        config,
        keys,
        cursors: Arc::new(cursors),
        shared,
        readiness: Arc::default(),
    });
    Ok((state, jobs))
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
