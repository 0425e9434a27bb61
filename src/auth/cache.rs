//! The state behind an access token (its user's role and status, its session, whether the token
//! was denied), kept for at most one second so that a request costs one database statement, not
//! two. An entry is keyed on everything the state was read for: the token's id, user and session
//! (`sub`, `sid`, `jti`), so a token that shares another's `jti` but names another user or
//! session never gets that token's state. Every committed change to that state drops the whole cache of this process at once (an
//! epoch), and is announced to the other replicas (`infra::announce`); a replica that misses an
//! announcement serves the old state for at most the cache's TTL (`IMANGOR_AUTH_CACHE_TTL`).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::db::sessions::AuthState;
use crate::domain::{SessionId, UserId};

/// The longest a cached state is used by default: also the bound on how late another replica
/// (or an operator's command) is applied when an announcement is lost.
pub const TTL: Duration = Duration::from_secs(1);
const MAX_ENTRIES: usize = 50_000;

/// Taken before the database is read, given to `put` with what was read: the entry is dated
/// from before the read, and a change committed meanwhile makes it stale at once.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    at: Instant,
}

struct Entry {
    state: AuthState,
    at: Instant,
    epoch: u64,
}

/// What a state was read for: a token's user, session and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key<'a> {
    pub user: UserId,
    pub session: SessionId,
    pub jti: &'a str,
}

/// A stored key, which owns its `jti`.
#[derive(PartialEq, Eq)]
struct Owned {
    user: UserId,
    session: SessionId,
    jti: Box<str>,
}

/// A key as a lookup sees it, borrowed or owned: a lookup borrows the token's `jti` instead of
/// copying it (no allocation on the request path).
trait AsKey {
    fn key(&self) -> Key<'_>;
}

impl AsKey for Owned {
    fn key(&self) -> Key<'_> {
        Key {
            user: self.user,
            session: self.session,
            jti: &self.jti,
        }
    }
}

impl AsKey for Key<'_> {
    fn key(&self) -> Key<'_> {
        *self
    }
}

impl<'a> Borrow<dyn AsKey + 'a> for Owned {
    fn borrow(&self) -> &(dyn AsKey + 'a) {
        self
    }
}

impl PartialEq for dyn AsKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn AsKey + '_ {}

/// The same hash for an owned key and a borrowed one (`Borrow`'s contract). Only the `jti` is
/// hashed: it is 128 random bits, so the ids would add no spread, and hashing them too costs
/// about 480 more instructions a lookup (SipHash over 32 more bytes); equality still compares
/// all three. Many entries under one `jti` take tokens signed with our key, whose holder can
/// already mint any token.
impl Hash for dyn AsKey + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.key().jti.hash(h);
    }
}

impl Hash for Owned {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self as &dyn AsKey).hash(h);
    }
}

/// Authentication state by (user, session, token id).
pub struct AuthCache {
    entries: Mutex<HashMap<Owned, Entry>>,
    ttl: Duration,
    /// Moves on with every committed change: an entry of an older epoch is never used.
    epoch: AtomicU64,
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
            epoch: AtomicU64::new(0),
        }
    }

    /// Drops every cached state (a change was committed, here or on another replica).
    pub fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Taken before the database is read, given to `put` with what was read.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            epoch: self.epoch(),
            at: Instant::now(),
        }
    }

    pub fn get(&self, key: Key<'_>) -> Option<AuthState> {
        let now = self.epoch();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(&key as &dyn AsKey)
            .filter(|e| e.epoch == now && e.at.elapsed() < self.ttl)
            .map(|e| e.state.clone())
    }

    /// Keeps `state`, read from the database for `key` after `ticket` was taken.
    pub fn put(&self, key: Key<'_>, state: AuthState, ticket: Ticket) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key as &dyn AsKey) {
            let now = self.epoch();
            let ttl = self.ttl;
            entries.retain(|_, e| e.epoch == now && e.at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            Owned {
                user: key.user,
                session: key.session,
                jti: key.jti.into(),
            },
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
            second_factor: false,
        }
    }

    fn key(jti: &str, user: UserId, session: SessionId) -> Key<'_> {
        Key { user, session, jti }
    }

    #[test]
    fn a_change_committed_while_reading_leaves_nothing_stale() {
        let c = AuthCache::default();
        let (u, s) = (UserId::new(), SessionId::new());
        let t = c.ticket();
        c.put(key("a", u, s), state(), t);
        assert!(c.get(key("a", u, s)).is_some());
        c.bump();
        assert!(
            c.get(key("a", u, s)).is_none(),
            "a change drops what was cached"
        );
        // A state read before the change, stored after it, is never used.
        c.put(key("b", u, s), state(), t);
        assert!(c.get(key("b", u, s)).is_none());
    }

    #[test]
    fn an_entry_answers_only_for_the_user_session_and_id_it_was_read_for() {
        let c = AuthCache::default();
        let (u, s) = (UserId::new(), SessionId::new());
        c.put(key("a", u, s), state(), c.ticket());
        assert!(c.get(key("a", u, s)).is_some());
        assert!(c.get(key("a", UserId::new(), s)).is_none(), "another sub");
        assert!(
            c.get(key("a", u, SessionId::new())).is_none(),
            "another sid"
        );
        assert!(c.get(key("b", u, s)).is_none(), "another jti");
        // Another token under the same jti has an entry of its own and evicts nothing.
        let other = UserId::new();
        c.put(key("a", other, s), state(), c.ticket());
        assert!(c.get(key("a", u, s)).is_some());
        assert!(c.get(key("a", other, s)).is_some());
    }
}
