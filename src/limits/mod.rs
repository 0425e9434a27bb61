//! Protection against too many requests: GCRA rate limits per client and route class, and the
//! brute-force defence of the login. In memory (bounded) for one replica; in Redis when several
//! replicas share state (`shared`), with this replica's memory as the fallback while Redis is down.

pub mod address;
pub mod blocks;
pub mod login;
pub mod shares;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::Quota;
use crate::infra::shared::{Lua, Shared};

/// The answer of a limiter, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_s: u64,
    /// Seconds to wait before a request can pass (0 when allowed).
    pub retry_after_s: u64,
}

/// The address a limit counts against: an IPv4 address, or the /64 of an IPv6 address (one
/// host usually holds a whole /64, and could otherwise take a fresh bucket per request).
pub fn bucket_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
        v4 => v4,
    }
}

/// Where rate-limit buckets live: Redis when the replicas share state and it answers, this
/// process's memory otherwise (each replica then allows the limit on its own).
pub struct Limiter {
    memory: MemoryLimiter,
    shared: Option<Arc<Shared>>,
}

/// GCRA in one atomic step on Redis's clock (all replicas agree on time). Microseconds.
/// Returns {allowed, remaining, reset, retry}; the key expires when its bucket is full again.
static GCRA: Lua = Lua::new(
    r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > per then
  return {0, 0, tat - now, new_tat - now - per}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, math.floor((per - (new_tat - now)) / interval), new_tat - now, 0}
",
);

impl Limiter {
    pub fn new(shared: Option<Arc<Shared>>) -> Self {
        Self {
            memory: MemoryLimiter::default(),
            shared,
        }
    }

    pub async fn check(&self, key: &str, q: Quota) -> Verdict {
        if let Some(s) = &self.shared {
            let interval = (q.per / q.n).as_micros().to_string();
            let per = q.per.as_micros().to_string();
            let k = s.key(&["rl", key]);
            if let Some(r) = s.run::<Vec<i64>>(&GCRA, &[&k], &[&interval, &per]).await
                && let [allowed, remaining, reset_us, retry_us] = r[..]
            {
                return Verdict {
                    allowed: allowed == 1,
                    limit: q.n,
                    remaining: remaining.clamp(0, i64::from(q.n)) as u32,
                    reset_s: ceil_s(Duration::from_micros(reset_us.max(0) as u64)),
                    retry_after_s: if allowed == 1 {
                        0
                    } else {
                        ceil_s(Duration::from_micros(retry_us.max(0) as u64)).max(1)
                    },
                };
            }
        }
        self.memory.check(key, q)
    }
}

/// The most keys a limiter tracks; past it, new keys share one bucket (a flood of addresses
/// cannot exhaust memory, and it is throttled as one client).
pub const MAX_KEYS: usize = 100_000;
const OVERFLOW_KEY: &str = "\0overflow";

/// GCRA in memory: per key, the theoretical arrival time of the next request.
pub struct MemoryLimiter {
    start: Instant,
    tats: Mutex<HashMap<String, Duration>>,
    max_keys: usize,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::with_capacity(MAX_KEYS)
    }
}

impl MemoryLimiter {
    pub fn with_capacity(max_keys: usize) -> Self {
        Self {
            start: Instant::now(),
            tats: Mutex::new(HashMap::new()),
            max_keys,
        }
    }

    pub fn check(&self, key: &str, q: Quota) -> Verdict {
        self.check_at(key, q, self.start.elapsed())
    }

    fn check_at(&self, key: &str, q: Quota, now: Duration) -> Verdict {
        let interval = q.per / q.n;
        let mut tats = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        if !tats.contains_key(key) && tats.len() >= self.max_keys {
            // Idle buckets (TAT in the past) are the same as absent ones: drop them first.
            tats.retain(|_, tat| *tat > now);
        }
        let key = if tats.contains_key(key) || tats.len() < self.max_keys {
            key
        } else {
            OVERFLOW_KEY
        };
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + interval;
        if new_tat - now > q.per {
            let retry = new_tat - now - q.per;
            return Verdict {
                allowed: false,
                limit: q.n,
                remaining: 0,
                reset_s: ceil_s(tat - now),
                retry_after_s: ceil_s(retry).max(1),
            };
        }
        tats.insert(key.to_owned(), new_tat);
        let used = new_tat - now;
        let remaining = ((q.per - used).as_nanos() / interval.as_nanos().max(1)) as u32;
        Verdict {
            allowed: true,
            limit: q.n,
            remaining,
            reset_s: ceil_s(used),
            retry_after_s: 0,
        }
    }

    pub fn tracked_keys(&self) -> usize {
        self.tats.lock().map(|t| t.len()).unwrap_or(0)
    }
}

fn ceil_s(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Quota = Quota {
        n: 5,
        per: Duration::from_secs(60),
    };

    #[test]
    fn a_burst_of_n_passes_then_one_every_interval() {
        let l = MemoryLimiter::default();
        let t0 = Duration::from_secs(100);
        for i in 0..5 {
            let v = l.check_at("a", Q, t0);
            assert!(v.allowed);
            assert_eq!(v.remaining, 4 - i);
        }
        let v = l.check_at("a", Q, t0);
        assert!(!v.allowed);
        assert_eq!(v.retry_after_s, 12);
        assert!(l.check_at("b", Q, t0).allowed, "keys are independent");
        assert!(!l.check_at("a", Q, t0 + Duration::from_secs(11)).allowed);
        assert!(l.check_at("a", Q, t0 + Duration::from_secs(12)).allowed);
    }

    #[test]
    fn memory_is_bounded_and_overflow_keys_share_one_bucket() {
        let l = MemoryLimiter::with_capacity(10);
        let t0 = Duration::from_secs(1);
        for i in 0..10 {
            assert!(l.check_at(&format!("k{i}"), Q, t0).allowed);
        }
        for i in 0..5 {
            assert!(l.check_at(&format!("new{i}"), Q, t0).allowed);
        }
        assert!(
            !l.check_at("another", Q, t0).allowed,
            "new keys are throttled together"
        );
        assert!(l.tracked_keys() <= 11);
        // Once the old buckets are idle they make room again.
        assert!(
            l.check_at("fresh", Q, t0 + Duration::from_secs(3600))
                .allowed
        );
        assert!(l.tracked_keys() <= 2);
    }
}
