//! Telling every cache that a committed change made it stale: this process's auth-state cache at
//! once, and the other replicas through Redis (`shared::Shared::announce`), which apply it when
//! the message reaches them. Storage returns what a transaction changed (`db::ChangeSet`); the
//! service that committed it hands it here. No process-wide state: each application (and each
//! test server in one process) has its own announcer.

use std::sync::Arc;

use crate::auth::cache::AuthCache;
use crate::db::{ChangeSet, Tx};
use crate::infra::shared::{Change, Shared};

pub struct Announcer {
    cache: Arc<AuthCache>,
    shared: Option<Arc<Shared>>,
}

impl Announcer {
    pub fn new(cache: Arc<AuthCache>, shared: Option<Arc<Shared>>) -> Announcer {
        Announcer { cache, shared }
    }

    /// Commits `tx`, then announces what it changed (also after a failed commit, whose outcome
    /// may be unknown: dropping caches is always safe).
    pub async fn commit(&self, tx: Tx) -> sqlx::Result<()> {
        let (changes, result) = tx.commit().await.into_parts();
        self.publish(changes).await;
        result
    }

    /// Announces a committed change: this process drops its cached authentication state at once,
    /// and the other replicas when the message reaches them.
    pub async fn publish(&self, changes: ChangeSet) {
        if changes.auth {
            self.cache.bump();
        }
        if let Some(s) = &self.shared {
            if changes.auth {
                s.announce(Change::Auth).await;
            }
            if changes.blocks {
                s.announce(Change::Blocks).await;
            }
        }
    }
}
