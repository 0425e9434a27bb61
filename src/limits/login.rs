//! Brute-force defence of the login, without letting an attacker lock a victim out.
//!
//! Failures are counted per (account, address) and per account, keyed on the normalised login
//! identifier (IPv6 addresses by their /64, since one host holds many). Per pair: past
//! `lock_after` failures the pair is refused (429) for a growing while. Per account: past
//! `slow_after` failures every attempt is answered after a growing, bounded delay; past
//! `hard_cap` consecutive failures (NIST SP 800-63B: at most 100) the account refuses every
//! address except those it was logged in from before, so its owner keeps getting in (`Capped`);
//! an account with a second factor goes on there with it (`begin_past_cap`): the caller withholds
//! the password's verdict until a code, and the codes of a right password have a budget of
//! their own past the cap (`code_past_cap`). A success resets all of it. Each attempt is
//! counted when it starts, under one lock, so parallel attempts cannot slip past a threshold; a
//! success then takes its count back.

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
    /// Refuse with 429 for this pair. `first` is true for the first refusal of this lock (the
    /// one worth an audit event). Nothing was counted.
    Locked { retry_after_s: u64, first: bool },
    /// The account is past its hard cap and this address is not one it logged in from: refused
    /// like `Locked` (nothing was counted), unless a second factor is to decide, in which case
    /// the caller asks again with `begin_past_cap`.
    Capped { retry_after_s: u64, first: bool },
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
    /// Codes of right passwords tried past the hard cap, and when the first of them came.
    codes_past_cap: Option<(u32, Instant)>,
}

const MAX_ENTRIES: usize = 100_000;
const MAX_KNOWN: usize = 8;
/// Second-factor codes (after a right password) an account takes past its hard cap from
/// addresses it does not know, per `forget_after` window: someone who holds the password
/// cannot guess codes without end by spreading over addresses. Past it codes are not checked.
pub const CODES_PAST_CAP: u32 = 10;

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
        self.begin_at(account, ip, Instant::now(), false)
    }

    /// `begin` for an attempt that only a second factor can complete: the account's hard cap
    /// does not stop it (the pair's lock does); counted like any other.
    pub fn begin_past_cap(&self, account: &str, ip: IpAddr) -> Gate {
        self.begin_at(account, ip, Instant::now(), true)
    }

    /// Takes one code of the account's budget past the hard cap (`CODES_PAST_CAP`); false when
    /// it is spent (the code must then not be checked).
    pub fn code_past_cap(&self, account: &str) -> bool {
        self.code_past_cap_at(account, Instant::now())
    }

    fn code_past_cap_at(&self, account: &str, now: Instant) -> bool {
        let forget = self.policy.forget_after;
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let acct = accounts.entry(account.to_owned()).or_default();
        let (n, since) = match acct.codes_past_cap {
            Some((n, since)) if now.duration_since(since) < forget => (n + 1, since),
            _ => (1, now),
        };
        acct.codes_past_cap = Some((n, since));
        n <= CODES_PAST_CAP
    }

    /// Whether the account logged in from this address (its bucket) before.
    pub fn knows(&self, account: &str, ip: IpAddr) -> bool {
        let ip = bucket_ip(ip);
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
            .is_some_and(|a| a.known.contains(&ip))
    }

    fn begin_at(&self, account: &str, ip: IpAddr, now: Instant, past_cap: bool) -> Gate {
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
        if !past_cap && acct.failures >= self.policy.hard_cap && !acct.known.contains(&ip) {
            let until = acct.last.unwrap_or(now) + forget;
            let first = !acct.reported;
            acct.reported = true;
            return Gate::Capped {
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
        acct.codes_past_cap = None;
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

/// `LoginGuard::begin_at` on Redis, in one atomic step (milliseconds, on Redis's clock).
/// KEYS: pair, account, known addresses; ARGV[8] '1' past the cap. Returns {gate,
/// retry_after_s | delay_ms, first}, gate 0 open, 1 locked, 2 capped.
static BEGIN: Lua = Lua::new(
    r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lock_after, slow_after, hard_cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local forget, max_lock, max_delay, ip = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local past_cap = ARGV[8] == '1'
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
if not past_cap and af >= hard_cap and not redis.call('ZSCORE', KEYS[3], ip) then
  local first = 1
  if redis.call('HGET', KEYS[2], 'r') == '1' then first = 0 end
  redis.call('HSET', KEYS[2], 'r', '1')
  return {2, math.max(1, math.ceil((al + forget - now) / 1000)), first}
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

/// `LoginGuard::succeeded`: KEYS pair, account, known, codes past the cap; ARGV address, how
/// long it is known (ms).
static SUCCEEDED: Lua = Lua::new(
    r"
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
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

/// `LoginGuard::code_past_cap`: KEYS codes past the cap; ARGV the window (ms). Returns the count.
static CODE_PAST_CAP: Lua = Lua::new(
    r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1])) end
return n
",
);

/// `LoginGuard::knows`: KEYS known; ARGV the address. Returns 1 when known.
static KNOWS: Lua = Lua::new(
    r"
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
return 0
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

    pub fn policy(&self) -> &LoginPolicy {
        &self.memory.policy
    }

    /// The Redis keys of an account: its pair with this address, its counters, the addresses
    /// it knows, its codes past the cap.
    fn keys(&self, s: &Shared, account: &str, ip: IpAddr) -> [String; 4] {
        let ip = bucket_ip(ip).to_string();
        let tag = aws_lc_rs::hmac::sign(&self.names, account.as_bytes());
        let name = crate::crypto::hex(&tag.as_ref()[..16]);
        [
            s.key(&["login", "pair", &ip, &name]),
            s.key(&["login", "account", &name]),
            s.key(&["login", "known", &name]),
            s.key(&["login", "codes-past-cap", &name]),
        ]
    }

    /// Counts an attempt (as a failure until `succeeded` says otherwise) and says whether it may go on.
    pub async fn begin(&self, account: &str, ip: IpAddr) -> Gate {
        self.begin_as(account, ip, false).await
    }

    /// `LoginGuard::begin_past_cap`: an attempt that only a second factor can complete.
    pub async fn begin_past_cap(&self, account: &str, ip: IpAddr) -> Gate {
        self.begin_as(account, ip, true).await
    }

    async fn begin_as(&self, account: &str, ip: IpAddr, past_cap: bool) -> Gate {
        if let Some(s) = &self.shared {
            let p = &self.memory.policy;
            let [pair, acct, known, _] = self.keys(s, account, ip);
            let args = [
                p.lock_after.to_string(),
                p.slow_after.to_string(),
                p.hard_cap.to_string(),
                p.forget_after.as_millis().to_string(),
                p.max_lock.as_millis().to_string(),
                p.max_delay.as_millis().to_string(),
                bucket_ip(ip).to_string(),
                u8::from(past_cap).to_string(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Some(r) = s
                .run::<Vec<i64>>(&BEGIN, &[&pair, &acct, &known], &args)
                .await
                && let [gate, n, first] = r[..]
            {
                let (retry_after_s, first) = (n.max(1) as u64, first == 1);
                return match gate {
                    1 => Gate::Locked {
                        retry_after_s,
                        first,
                    },
                    2 => Gate::Capped {
                        retry_after_s,
                        first,
                    },
                    _ => Gate::Open {
                        delay: Duration::from_millis(n.max(0) as u64),
                    },
                };
            }
        }
        self.memory.begin_at(account, ip, Instant::now(), past_cap)
    }

    /// `LoginGuard::code_past_cap`, across the replicas.
    pub async fn code_past_cap(&self, account: &str) -> bool {
        if let Some(s) = &self.shared {
            let [_, _, _, codes] = self.keys(s, account, IpAddr::from([0, 0, 0, 0]));
            let window = self.memory.policy.forget_after.as_millis().to_string();
            if let Some(n) = s.run::<i64>(&CODE_PAST_CAP, &[&codes], &[&window]).await {
                return n <= i64::from(CODES_PAST_CAP);
            }
        }
        self.memory.code_past_cap(account)
    }

    /// Whether the account logged in from this address (its bucket) before: a new address is
    /// one it did not (in the shared store when it answers, this process's otherwise).
    pub async fn knows(&self, account: &str, ip: IpAddr) -> bool {
        if let Some(s) = &self.shared {
            let [_, _, known, _] = self.keys(s, account, ip);
            let addr = bucket_ip(ip).to_string();
            if let Some(n) = s.run::<i64>(&KNOWS, &[&known], &[&addr]).await {
                return n == 1;
            }
        }
        self.memory.knows(account, ip)
    }

    /// A success forgets the failures and remembers the address (in both stores, so that a
    /// fallback to memory keeps letting the owner in).
    pub async fn succeeded(&self, account: &str, ip: IpAddr) {
        self.memory.succeeded(account, ip);
        if let Some(s) = &self.shared {
            let [pair, acct, known, codes] = self.keys(s, account, ip);
            let args = [
                bucket_ip(ip).to_string(),
                KNOWN_FOR.as_millis().to_string(),
                MAX_KNOWN.to_string(),
            ];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = s
                .run::<i64>(&SUCCEEDED, &[&pair, &acct, &known, &codes], &args)
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
            let [pair, acct, _, _] = self.keys(&s, account, ip);
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
                g.begin_at("a@x.io", ip("1.1.1.1"), t, false),
                Gate::Open { .. }
            ));
        }
        assert_eq!(
            g.begin_at("a@x.io", ip("1.1.1.1"), t, false),
            Gate::Locked {
                retry_after_s: 30,
                first: true
            }
        );
        assert_eq!(
            g.begin_at("a@x.io", ip("1.1.1.1"), t, false),
            Gate::Locked {
                retry_after_s: 30,
                first: false
            },
            "reported once per lock"
        );
        // Another address is not locked out by the first one's failures.
        assert!(matches!(
            g.begin_at("a@x.io", ip("2.2.2.2"), t, false),
            Gate::Open { .. }
        ));
        let later = t + Duration::from_secs(31);
        assert!(matches!(
            g.begin_at("a@x.io", ip("1.1.1.1"), later, false),
            Gate::Open { .. }
        ));
        assert_eq!(
            g.begin_at("a@x.io", ip("1.1.1.1"), later, false),
            Gate::Locked {
                retry_after_s: 60,
                first: true
            }
        );
    }

    #[test]
    fn past_the_hard_cap_new_addresses_are_capped_unless_a_second_factor_decides() {
        let policy = LoginPolicy {
            hard_cap: 3,
            lock_after: 10,
            ..LoginPolicy::default()
        };
        let g = LoginGuard::new(policy);
        let t = Instant::now();
        g.succeeded("a@x.io", ip("9.9.9.9"));
        for _ in 0..3 {
            assert!(matches!(
                g.begin_at("a@x.io", ip("1.1.1.1"), t, false),
                Gate::Open { .. }
            ));
        }
        // Capped, counted nowhere, reported once.
        assert!(matches!(
            g.begin_at("a@x.io", ip("2.2.2.2"), t, false),
            Gate::Capped { first: true, .. }
        ));
        assert!(matches!(
            g.begin_at("a@x.io", ip("2.2.2.2"), t, false),
            Gate::Capped { first: false, .. }
        ));
        // A known address is not; a second factor goes on, counted (the pair still locks).
        assert!(matches!(
            g.begin_at("a@x.io", ip("9.9.9.9"), t, false),
            Gate::Open { .. }
        ));
        for _ in 0..10 {
            assert!(matches!(
                g.begin_at("a@x.io", ip("2.2.2.2"), t, true),
                Gate::Open { .. }
            ));
        }
        assert!(matches!(
            g.begin_at("a@x.io", ip("2.2.2.2"), t, true),
            Gate::Locked { .. }
        ));
        // The codes past the cap have a budget per window; a success gives it back.
        for _ in 0..CODES_PAST_CAP {
            assert!(g.code_past_cap_at("a@x.io", t));
        }
        assert!(!g.code_past_cap_at("a@x.io", t));
        assert!(g.code_past_cap_at("a@x.io", t + policy.forget_after));
        assert!(!g.knows("a@x.io", ip("3.3.3.3")));
        g.succeeded("a@x.io", ip("3.3.3.3"));
        assert!(g.knows("a@x.io", ip("3.3.3.3")));
        assert!(g.code_past_cap_at("a@x.io", t));
    }

    #[test]
    fn an_attempt_without_a_verdict_is_taken_back() {
        let g = LoginGuard::new(LoginPolicy::default());
        let t = Instant::now();
        for _ in 0..20 {
            assert!(matches!(
                g.begin_at("a@x.io", ip("1.1.1.1"), t, false),
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
            match g.begin_at("v@x.io", ip(&format!("10.0.{}.1", i)), t, false) {
                Gate::Open { delay } => {
                    assert!(delay >= last && delay <= Duration::from_secs(5));
                    last = delay;
                }
                Gate::Locked { .. } | Gate::Capped { .. } => {
                    panic!("distinct addresses never lock the account")
                }
            }
        }
        assert_eq!(last, Duration::from_secs(5));
        g.succeeded("v@x.io", ip("10.0.0.1"));
        assert_eq!(
            g.begin_at("v@x.io", ip("10.0.0.1"), t, false),
            Gate::Open {
                delay: Duration::ZERO
            }
        );
    }
}
