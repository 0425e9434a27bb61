//! What every request handler can reach.

use std::sync::Arc;

use crate::auth::cursor::Cursors;
use crate::config::Config;
use crate::crypto::data::DataKeyring;
use crate::service::audit::seal::Trail;
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
