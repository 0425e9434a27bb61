//! The narrow contexts a use case asks for: each service function takes only the ones it uses
//! (`resources::create` takes the `Store`, not Redis, the webhook and the hasher). The
//! application's state (`state::AppState`) holds one of each; a handler passes what a use case
//! names, or extracts it alone (`FromRef`).

use std::sync::Arc;

use crate::auth::cache::AuthCache;
use crate::auth::legacy::LegacyTokens;
use crate::auth::password::Hasher;
use crate::auth::token::TokenKeys;
use crate::db::readers::Readers;
use crate::db::{Db, Tx};
use crate::infra::alerts::Alerts;
use crate::infra::announce::Announcer;
use crate::infra::metrics::Metrics;
use crate::limits::Limiter;
use crate::limits::blocks::{Blocklist, TokenWatch};
use crate::limits::login::{Logins, RefusalEvents};
use crate::limits::shares::Shares;
use crate::service::audit::EventSink;

/// The database: its pool, the connections held for the hot single-statement reads
/// (`db::readers`), and the announcer that a committed change goes through.
#[derive(Clone)]
pub struct Store {
    pub db: Db,
    pub readers: Arc<Readers>,
    pub announcer: Arc<Announcer>,
}

impl Store {
    /// Commits `tx` and announces what it changed (`infra::announce`).
    pub async fn commit(&self, tx: Tx) -> sqlx::Result<()> {
        self.announcer.commit(tx).await
    }
}

/// Who a caller is: password hashing, the token keys, and the state behind access tokens.
#[derive(Clone)]
pub struct Identity {
    pub tokens: Arc<TokenKeys>,
    pub hasher: Arc<Hasher>,
    /// The state behind access tokens, for at most a second.
    pub cache: Arc<AuthCache>,
    /// The old stack's access tokens, accepted while `IMANGOR_LEGACY_JWT_SECRET` is set.
    pub legacy: Option<Arc<LegacyTokens>>,
    /// Roles that must sign in with a second factor (IMANGOR_MFA_REQUIRED_ROLES).
    pub mfa_required_roles: Vec<crate::domain::Role>,
}

/// What stands between a request and the work: rate limits, the login guard, blocked addresses,
/// the forged-token watch and each address's share of the connections.
#[derive(Clone)]
pub struct Guards {
    pub limiter: Arc<Limiter>,
    pub logins: Arc<Logins>,
    /// How many of each account's refusals by the login guard were written as events.
    pub refusals: Arc<RefusalEvents>,
    /// Addresses refused at the door (containment).
    pub blocks: Arc<Blocklist>,
    /// Invalid access tokens by address (the forged-token detector).
    pub token_watch: Arc<TokenWatch>,
    /// Each address's share of the connections (and of forwarded requests in flight).
    pub shares: Arc<Shares>,
    /// The drill headers already accepted (each is accepted once).
    pub drill_seen: Arc<crate::crypto::drill::Seen>,
}

/// Where what happened goes, off the request path: security events that go with no change,
/// incident alerts to the webhook, and the metrics.
#[derive(Clone)]
pub struct Sinks {
    pub events: EventSink,
    pub alerts: Alerts,
    pub metrics: Arc<Metrics>,
}
