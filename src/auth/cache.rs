//! The state behind an access token (its user's role and status, its session, whether the token
//! was denied), kept for at most one second so that a request costs one database statement, not
//! two. Every committed change to that state drops the whole cache of this process at once (an
//! epoch), and is announced to the other replicas (`shared::announce`); a replica that misses an
//! announcement serves the old state for at most the cache's TTL (`IMANGOR_AUTH_CACHE_TTL`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::db::sessions::AuthState;

/// The longest a cached state is used by default: also the bound on how late another replica
/// (or an operator's command) is applied when an announcement is lost.
pub const TTL: Duration = Duration::from_secs(1);
const MAX_ENTRIES: usize = 50_000;

static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Drops every cached state of this process (a change was committed).
pub fn bump() {
    EPOCH.fetch_add(1, Ordering::SeqCst);
}

fn epoch() -> u64 {
    EPOCH.load(Ordering::SeqCst)
}

/// Taken before the database is read, given to `put` with what was read: the entry is dated
/// from before the read, and a change committed meanwhile makes it stale at once.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    at: Instant,
}

pub fn ticket() -> Ticket {
    Ticket {
        epoch: epoch(),
        at: Instant::now(),
    }
}

struct Entry {
    state: AuthState,
    at: Instant,
    epoch: u64,
}

/// Authentication state by token id.
pub struct AuthCache {
    entries: Mutex<HashMap<String, Entry>>,
    ttl: Duration,
}

impl Default for AuthCache {
    fn default() -> AuthCache {
        AuthCache::new(TTL)
    }
}

impl AuthCache {
    /// A cache whose entries live at most `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> AuthCache {
        AuthCache {
            entries: Mutex::default(),
            ttl,
        }
    }

    pub fn get(&self, jti: &str) -> Option<AuthState> {
        let now = epoch();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(jti)
            .filter(|e| e.epoch == now && e.at.elapsed() < self.ttl)
            .map(|e| e.state.clone())
    }

    /// Keeps `state`, read from the database after `ticket` was taken.
    pub fn put(&self, jti: &str, state: AuthState, ticket: Ticket) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(jti) {
            let now = self::epoch();
            let ttl = self.ttl;
            entries.retain(|_, e| e.epoch == now && e.at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            jti.to_owned(),
            Entry {
                state,
                at: ticket.at,
                epoch: ticket.epoch,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn state() -> AuthState {
        AuthState {
            role: Role::User,
            disabled: false,
            session_active: true,
            jti_denied: false,
        }
    }

    #[test]
    fn a_change_committed_while_reading_leaves_nothing_stale() {
        let c = AuthCache::default();
        let t = ticket();
        c.put("a", state(), t);
        assert!(c.get("a").is_some());
        bump();
        assert!(c.get("a").is_none(), "a change drops what was cached");
        // A state read before the change, stored after it, is never used.
        c.put("b", state(), t);
        assert!(c.get("b").is_none());
    }
}
