//! Brute-force defence of the login, without letting an attacker lock a victim out.
//!
//! Failures are counted per (account, address) and per account, keyed on the normalised login
//! identifier (IPv6 addresses by their /64, since one host holds many). Per pair: past
//! `lock_after` failures the pair is refused (429) for a growing while. Per account: past
//! `slow_after` failures every attempt is answered after a growing, bounded delay; past
//! `hard_cap` consecutive failures (NIST SP 800-63B: at most 100) the account refuses every
//! address except those it was logged in from before, so its owner keeps getting in. A success
//! resets both. Each attempt is counted when it starts, under one lock, so parallel attempts
//! cannot slip past a threshold; a success then takes its count back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bucket_ip;
use crate::domain::LoginPolicy;
use crate::infra::shared::{Lua, Shared};

/// What to do with a login attempt before checking the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Go on, after waiting `delay` (zero below the account threshold).
    Open { delay: Duration },
    /// Refuse with 429 for this pair (or, past the hard cap, for this unknown address).
    /// `first` is true for the first refusal of this lock (the one worth an audit event).
    Locked { retry_after_s: u64, first: bool },
}

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    last: Instant,
    /// This lock's first refusal was reported.
    reported: bool,
}

#[derive(Debug, Clone, Default)]
struct Account {
    failures: u32,
    last: Option<Instant>,
    /// Addresses (buckets) this account logged in from; they pass the hard cap.
    known: Vec<IpAddr>,
    /// The hard cap's first refusal was reported.
    reported: bool,
}

const MAX_ENTRIES: usize = 100_000;
const MAX_KNOWN: usize = 8;

pub struct LoginGuard {
    policy: LoginPolicy,
    pairs: Mutex<HashMap<(String, IpAddr), Count>>,
    accounts: Mutex<HashMap<String, Account>>,
}

fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl LoginGuard {
    pub fn new(policy: LoginPolicy) -> Self {
        Self {
            policy,
            pairs: Mutex::default(),
            accounts: Mutex::default(),
        }
    }

    fn lock_for(&self, failures: u32) -> Duration {
        let over = failures.saturating_sub(self.policy.lock_after).min(16);
        (Duration::from_secs(30) * 2u32.pow(over)).min(self.policy.max_lock)
    }

    fn delay_for(&self, failures: u32) -> Duration {
        if failures < self.policy.slow_after {
            return Duration::ZERO;
        }
        let over = (failures - self.policy.slow_after).min(16);
        (Duration::from_millis(250) * 2u32.pow(over)).min(self.policy.max_delay)
    }

    /// Counts an attempt (as a failure until `succeeded` says otherwise) and says whether it may go on.
    pub fn begin(&self, account: &str, ip: IpAddr) -> Gate {
        self.begin_at(account, ip, Instant::now())
    }

    fn begin_at(&self, account: &str, ip: IpAddr, now: Instant) -> Gate {
        let ip = bucket_ip(ip);
        let forget = self.policy.forget_after;
        // Both maps under their locks for the whole decision: the check and the count are one step.
        let mut pairs = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        prune(&mut pairs, |c| now.duration_since(c.last) < forget);
        prune(&mut accounts, |a| {
            a.last.is_some_and(|l| now.duration_since(l) < forget) || !a.known.is_empty()
        });
        let key = (account.to_owned(), ip);
        let pair = pairs
            .get(&key)
            .copied()
            .filter(|c| now.duration_since(c.last) < forget);
        if let Some(c) = pair.filter(|c| c.failures >= self.policy.lock_after) {
            let until = c.last + self.lock_for(c.failures);
            if until > now {
                let first = !c.reported;
                if let Some(p) = pairs.get_mut(&key) {
                    p.reported = true;
                }
                return Gate::Locked {
                    retry_after_s: secs(until - now),
                    first,
                };
            }
        }
        let acct = accounts.entry(account.to_owned()).or_default();
        if acct.last.is_some_and(|l| now.duration_since(l) >= forget) {
            acct.failures = 0;
        }
        if acct.failures >= self.policy.hard_cap && !acct.known.contains(&ip) {
            let until = acct.last.unwrap_or(now) + forget;
            let first = !acct.reported;
            acct.reported = true;
            return Gate::Locked {
                retry_after_s: secs(until.saturating_duration_since(now)).max(1),
                first,
            };
        }
        let before = acct.failures;
        acct.failures += 1;
        acct.last = Some(now);
        acct.reported = false;
        pairs.insert(
            key,
            Count {
                failures: pair.map_or(0, |c| c.failures) + 1,
                last: now,
                reported: false,
            },
        );
        Gate::Open {
            delay: self.delay_for(before),
        }
    }

    /// Takes back the count of an attempt that never reached a verdict (shed with 503, or a
    /// fault): a client retrying as `Retry-After` told it must not lock itself out.
    pub fn not_attempted(&self, account: &str, ip: IpAddr) {
        let ip = bucket_ip(ip);
        if let Some(c) = self
            .pairs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&(account.to_owned(), ip))
        {
            c.failures = c.failures.saturating_sub(1);
        }
        if let Some(a) = self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(account)
        {
            a.failures = a.failures.saturating_sub(1);
        }
    }

    /// A success forgets the failures of the pair and of the account, and remembers the address.
    pub fn succeeded(&self, account: &str, ip: IpAddr) {
        let ip = bucket_ip(ip);
        self.pairs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(account.to_owned(), ip));
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let acct = accounts.entry(account.to_owned()).or_default();
        acct.failures = 0;
        acct.last = None;
        if !acct.known.contains(&ip) {
            if acct.known.len() >= MAX_KNOWN {
                acct.known.remove(0);
            }
            acct.known.push(ip);
        }
    }
}

/// The login defence of every replica: the counters live in Redis when the replicas share state
/// (so an attacker gets one budget, not one per replica), in this process otherwise and while
/// Redis is down. The rules are the same in both (`LoginGuard` documents them).
pub struct Logins {
    memory: LoginGuard,
    shared: Option<Arc<Shared>>,
    /// Names accounts in Redis keys by an HMAC, never by their email address.
    names: aws_lc_rs::hmac::Key,
}

/// `LoginGuard::begin` on Redis, in one atomic step (milliseconds, on Redis's clock).
/// KEYS: pair, account, known addresses. Returns {locked, retry_after_s | delay_ms, first}.
static BEGIN: Lua = Lua::new(
    r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lock_after, slow_after, hard_cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local forget, max_lock, max_delay, ip = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local pf = tonumber(redis.call('HGET', KEYS[1], 'f')) or 0
local pl = tonumber(redis.call('HGET', KEYS[1], 'l')) or now
if now - pl >= forget then pf = 0 end
if pf >= lock_after then
  local untl = pl + math.min(30000 * 2 ^ math.min(pf - lock_after, 16), max_lock)
  if untl > now then
    local first = 1
    if redis.call('HGET', KEYS[1], 'r') == '1' then first = 0 end
    redis.call('HSET', KEYS[1], 'r', '1')
    return {1, math.ceil((untl - now) / 1000), first}
  end
end
local af = tonumber(redis.call('HGET', KEYS[2], 'f')) or 0
local al = tonumber(redis.call('HGET', KEYS[2], 'l')) or now
if now - al >= forget then af = 0 end
if af >= hard_cap and not redis.call('ZSCORE', KEYS[3], ip) then
  local first = 1
  if redis.call('HGET', KEYS[2], 'r') == '1' then first = 0 end
  redis.call('HSET', KEYS[2], 'r', '1')
  return {1, math.max(1, math.ceil((al + forget - now) / 1000)), first}
end
redis.call('HSET', KEYS[2], 'f', af + 1, 'l', now, 'r', '0')
redis.call('PEXPIRE', KEYS[2], forget)
redis.call('HSET', KEYS[1], 'f', pf + 1, 'l', now, 'r', '0')
redis.call('PEXPIRE', KEYS[1], forget)
local delay = 0
if af >= slow_after then delay = math.min(250 * 2 ^ math.min(af - slow_after, 16), max_delay) end
return {0, delay, 0}
",
);

/// `LoginGuard::succeeded`: KEYS pair, account, known; ARGV address, how long it is known (ms).
static SUCCEEDED: Lua = Lua::new(
    r"
redis.call('DEL', KEYS[1], KEYS[2])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[3], tonumber(t[1]), ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[3]) + 1))
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]))
return 1
",
);

/// `LoginGuard::not_attempted`: KEYS pair, account.
static NOT_ATTEMPTED: Lua = Lua::new(
    r"
for i = 1, 2 do
  local f = tonumber(redis.call('HGET', KEYS[i], 'f')) or 0
  if f > 0 then redis.call('HSET', KEYS[i], 'f', f - 1) end
end
return 1
",
);

/// How long an account remembers the addresses it logged in from.
const KNOWN_FOR: Duration = Duration::from_secs(90 * 86_400);

impl Logins {
    /// `name_key`: 32 secret bytes the replicas share (derived from the data keyring).
    pub fn new(policy: LoginPolicy, shared: Option<Arc<Shared>>, name_key: &[u8]) -> Self {
        Self {
            memory: LoginGuard::new(policy),
            shared,
            names: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, name_key),
        }
    }

    fn keys(&self, s: &Shared, account: &str, ip: IpAddr) -> [String; 3] {
        let ip = bucket_ip(ip).to_string();
        let tag = aws_lc_rs::hmac::sign(&self.names, account.as_bytes());
        let name = crate::crypto::hex(&tag.as_ref()[..16]);
        [
            s.key(&["login", "pair", &ip, &name]),
            s.key(&["login", "account", &name]),
            s.key(&["login", "known", &name]),
        ]
    }

    /// Counts an attempt (as a failure until `succeeded` says otherwise) and says whether it may go on.
    pub async fn begin(&self, account: &str, ip: IpAddr) -> Gate {
        if let Some(s) = &self.shared {
            let p = &self.memory.policy;
            let [pair, acct, known] = self.keys(s, account, ip);
            let args = [
                p.lock_after.to_string(),
                p.slow_after.to_string(),
                p.hard_cap.to_string(),
                p.forget_after.as_millis().to_string(),
                p.max_lock.as_millis().to_string(),
                p.max_delay.as_millis().to_string(),
                bucket_ip(ip).to_string(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Some(r) = s
                .run::<Vec<i64>>(&BEGIN, &[&pair, &acct, &known], &args)
                .await
                && let [locked, n, first] = r[..]
            {
                return if locked == 1 {
                    Gate::Locked {
                        retry_after_s: n.max(1) as u64,
                        first: first == 1,
                    }
                } else {
                    Gate::Open {
                        delay: Duration::from_millis(n.max(0) as u64),
                    }
                };
            }
        }
        self.memory.begin(account, ip)
    }

    /// A success forgets the failures and remembers the address (in both stores, so that a
    /// fallback to memory keeps letting the owner in).
    pub async fn succeeded(&self, account: &str, ip: IpAddr) {
        self.memory.succeeded(account, ip);
        if let Some(s) = &self.shared {
            let [pair, acct, known] = self.keys(s, account, ip);
            let args = [
                bucket_ip(ip).to_string(),
                KNOWN_FOR.as_millis().to_string(),
                MAX_KNOWN.to_string(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = s
                .run::<i64>(&SUCCEEDED, &[&pair, &acct, &known], &args)
                .await;
        }
    }

    /// Takes back an attempt that never reached a verdict. Called from `Drop`, so the shared
    /// store is updated off the caller's path.
    pub fn not_attempted(&self, account: &str, ip: IpAddr) {
        self.memory.not_attempted(account, ip);
        if let Some(s) = &self.shared
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let s = s.clone();
            let [pair, acct, _] = self.keys(&s, account, ip);
            rt.spawn(async move {
                let _ = s.run::<i64>(&NOT_ATTEMPTED, &[&pair, &acct], &[]).await;
            });
        }
    }
}

/// Refusals of the guard written as security events, per account and window: the brute-force
/// detector needs 10 guesses in 10 minutes, so 10 rows say all there is to say.
pub const REFUSAL_EVENTS: u32 = 10;
/// The window of `REFUSAL_EVENTS`, from an account's first recorded refusal.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(600);

/// How many refusals of the guard each account had recorded in its current window, in this
/// process. Past the lock a refusal costs the attacker nothing (no hash), and an address-spread
/// attack would otherwise write one row per refusal; with this cap the rows grow with the
/// accounts attacked, not with the requests. Bounded like the guard's own maps.
#[derive(Debug, Default)]
pub struct RefusalEvents {
    seen: Mutex<HashMap<RefusalKey, RefusalWindow>>,
}

/// (action, account key).
type RefusalKey = (&'static str, String);
/// When the window started, and the events written in it.
type RefusalWindow = (Instant, u32);

impl RefusalEvents {
    /// Counts one refusal of `action` aimed at `account`: `Some(n)` when it is the n-th of its
    /// window and should be written (n is at most `REFUSAL_EVENTS`), `None` past the cap.
    pub fn record(&self, action: &'static str, account: &str) -> Option<u32> {
        self.record_at(action, account, Instant::now())
    }

    fn record_at(&self, action: &'static str, account: &str, now: Instant) -> Option<u32> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let live = |(start, _): &(Instant, u32)| now.duration_since(*start) < REFUSAL_WINDOW;
        let key = (action, account.to_owned());
        if let Some(w) = seen.get_mut(&key) {
            if !live(w) {
                *w = (now, 0);
            }
            if w.1 >= REFUSAL_EVENTS {
                return None;
            }
            w.1 += 1;
            return Some(w.1);
        }
        prune(&mut seen, live);
        seen.insert(key, (now, 1));
        Some(1)
    }
}

/// Keeps a map bounded: expired entries go first; if it is still full, half of the rest.
fn prune<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>, live: impl Fn(&V) -> bool) {
    if m.len() >= MAX_ENTRIES {
        m.retain(|_, v| live(v));
    }
    if m.len() >= MAX_ENTRIES {
        let mut n = 0usize;
        m.retain(|_, _| {
            n += 1;
            n.is_multiple_of(2)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_events_are_capped_per_action_and_account_within_their_window() {
        let r = RefusalEvents::default();
        let t = Instant::now();
        let written: Vec<Option<u32>> = (0..12)
            .map(|_| r.record_at("auth.login", "a@x.io", t))
            .collect();
        assert_eq!(written[..10], (1..=10).map(Some).collect::<Vec<_>>()[..]);
        assert_eq!(written[10..], [None, None]);
        // Another account, or another action on the same key, has its own cap.
        assert_eq!(r.record_at("auth.login", "b@x.io", t), Some(1));
        assert_eq!(r.record_at("user.password_change", "a@x.io", t), Some(1));
        // A new window starts once the last one is over.
        let later = t + REFUSAL_WINDOW;
        assert_eq!(r.record_at("auth.login", "a@x.io", later), Some(1));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_pair_is_locked_after_its_threshold_and_the_lock_grows() {
        let g = LoginGuard::new(LoginPolicy::default());
        let t = Instant::now();
        for _ in 0..5 {
            assert!(matches!(
                g.begin_at("a@x.io", ip("1.1.1.1"), t),
                Gate::Open { .. }
            ));
        }
        assert_eq!(
            g.begin_at("a@x.io", ip("1.1.1.1"), t),
            Gate::Locked {
                retry_after_s: 30,
                first: true
            }
        );
        assert_eq!(
            g.begin_at("a@x.io", ip("1.1.1.1"), t),
            Gate::Locked {
                retry_after_s: 30,
                first: false
            },
            "reported once per lock"
        );
        // Another address is not locked out by the first one's failures.
        assert!(matches!(
            g.begin_at("a@x.io", ip("2.2.2.2"), t),
            Gate::Open { .. }
        ));
        let later = t + Duration::from_secs(31);
        assert!(matches!(
            g.begin_at("a@x.io", ip("1.1.1.1"), later),
            Gate::Open { .. }
        ));
        assert_eq!(
            g.begin_at("a@x.io", ip("1.1.1.1"), later),
            Gate::Locked {
                retry_after_s: 60,
                first: true
            }
        );
    }

    #[test]
    fn an_attempt_without_a_verdict_is_taken_back() {
        let g = LoginGuard::new(LoginPolicy::default());
        let t = Instant::now();
        for _ in 0..20 {
            assert!(matches!(
                g.begin_at("a@x.io", ip("1.1.1.1"), t),
                Gate::Open { .. }
            ));
            g.not_attempted("a@x.io", ip("1.1.1.1"));
        }
    }

    #[test]
    fn an_account_is_slowed_never_locked_and_a_success_resets() {
        let g = LoginGuard::new(LoginPolicy::default());
        let t = Instant::now();
        let mut last = Duration::ZERO;
        for i in 0..40 {
            match g.begin_at("v@x.io", ip(&format!("10.0.{}.1", i)), t) {
                Gate::Open { delay } => {
                    assert!(delay >= last && delay <= Duration::from_secs(5));
                    last = delay;
                }
                Gate::Locked { .. } => panic!("distinct addresses never lock the account"),
            }
        }
        assert_eq!(last, Duration::from_secs(5));
        g.succeeded("v@x.io", ip("10.0.0.1"));
        assert_eq!(
            g.begin_at("v@x.io", ip("10.0.0.1"), t),
            Gate::Open {
                delay: Duration::ZERO
            }
        );
    }
}
