//! How much a client may do: a rate (`Quota`, the `IMANGOR_RATE_LIMIT_*` settings) and the
//! login guard's thresholds (`LoginPolicy`). Numbers only; `limits` counts against them.

use std::time::Duration;

/// `n` requests per `per` (a burst of `n`, refilled evenly over `per`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub n: u32,
    pub per: Duration,
}

impl std::str::FromStr for Quota {
    type Err = String;
    /// `N/SECONDS`, e.g. `10/60`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (n, per) = s.split_once('/').ok_or("expected N/SECONDS, e.g. 10/60")?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| "N must be a positive integer")?;
        let per: u64 = per
            .trim()
            .parse()
            .map_err(|_| "SECONDS must be a positive integer")?;
        if n == 0 || per == 0 {
            return Err("N and SECONDS must be positive".into());
        }
        Ok(Quota {
            n,
            per: Duration::from_secs(per),
        })
    }
}

/// The login guard's thresholds (`limits::login`): when a pair is refused, an account slowed,
/// unknown addresses refused, and how long each lasts.
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    /// Failures of one (account, address) pair before it is refused.
    pub lock_after: u32,
    /// Failures of one account (from anywhere) before its answers are slowed.
    pub slow_after: u32,
    /// Consecutive failures of one account before unknown addresses are refused.
    pub hard_cap: u32,
    /// The longest slow-down of an answer.
    pub max_delay: Duration,
    /// The longest refusal of a pair.
    pub max_lock: Duration,
    /// Counters are forgotten after this long without an attempt.
    pub forget_after: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            lock_after: 5,
            slow_after: 10,
            hard_cap: 100,
            max_delay: Duration::from_secs(5),
            max_lock: Duration::from_secs(900),
            forget_after: Duration::from_secs(3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse() {
        assert_eq!(
            "10/60".parse::<Quota>().unwrap(),
            Quota {
                n: 10,
                per: Duration::from_secs(60)
            }
        );
        assert!("0/60".parse::<Quota>().is_err());
        assert!("ten".parse::<Quota>().is_err());
    }
}
