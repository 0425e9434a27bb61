//! What every request handler can reach.

use std::sync::Arc;

use crate::auth::cursor::Cursors;
use crate::auth::password::Hasher;
use crate::auth::token::TokenKeys;
use crate::config::Config;
use crate::crypto::data::DataKeyring;
use crate::db::Db;
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
    pub shared: Option<Arc<crate::infra::shared::Shared>>,
    /// The state behind access tokens, for at most a second.
    pub auth_cache: Arc<crate::auth::cache::AuthCache>,
    /// Hands what committed transactions changed to the caches here and on other replicas.
    pub announcer: Arc<crate::infra::announce::Announcer>,
    pub metrics: Arc<crate::infra::metrics::Metrics>,
    /// How far this process has verified the audit chain (in memory: see `audit::ChainWatch`).
    pub chain: Arc<crate::audit::ChainWatch>,
    /// Writes events that go with no change, off the request path.
    pub events: crate::audit::EventSink,
    /// Sends incident alerts to the webhook, off the request path.
    pub alerts: crate::infra::alerts::Alerts,
    /// Addresses refused at the door (containment).
    pub blocks: Arc<crate::service::containment::Blocklist>,
    /// Invalid access tokens by address (the forged-token detector).
    pub token_watch: Arc<crate::service::containment::TokenWatch>,
    /// Each address's share of the connections (and of forwarded requests in flight).
    pub shares: Arc<crate::limits::shares::Shares>,
    /// The readiness probe's last answer, which `/readyz` reports.
    pub readiness: Arc<crate::service::readiness::Readiness>,
}
