//! The security summary behind the console's dashboard: unresolved incidents by level, login
//! attempts of the last 24 hours by hour and outcome (from the audit events), requests refused by
//! the rate limits, and the sessions in force. Admins and managers, by the policy.

use crate::authz::{self, Action, Principal};
use crate::db::{events, incidents, sessions};
use crate::domain::Timestamp;
use crate::error::Result;
use crate::infra::metrics::Gauges;
use crate::service::context::{Identity, Sinks, Store};
use crate::service::incidents::LEVELS;

/// Hours the login chart covers.
pub const HOURS: i64 = 24;
const HOUR_US: i64 = 3_600_000_000;

/// Unresolved incidents of one level.
#[derive(Debug, Clone, Default)]
pub struct LevelCount {
    pub level: &'static str,
    pub open: i64,
    pub contained: i64,
}

/// Login attempts in one hour.
#[derive(Debug, Clone)]
pub struct HourCount {
    pub start: Timestamp,
    pub success: i64,
    pub failure: i64,
    /// Refused by the login guard before the password was checked.
    pub throttled: i64,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub at: Timestamp,
    pub incidents: Vec<LevelCount>,
    /// Oldest first, `HOURS` of them; the last one is the hour in progress.
    pub logins: Vec<HourCount>,
    /// Requests refused by each rate limit since this server started (`api`, `token`, `register`, `report`, `health`).
    pub throttled: Vec<(&'static str, u64)>,
    pub active_sessions: i64,
}

#[tracing::instrument(skip_all, fields(user_id = %who.user_id()))]
pub async fn summary(store: &Store, sinks: &Sinks, who: &Principal) -> Result<Summary> {
    authz::authorize_plain(Some(who), Action::SecuritySummaryRead)?;
    let now = Timestamp::now();
    // Whole hours: the chart's first bar starts 23 hours before the current hour began.
    let since = Timestamp::from_micros((now.micros() / HOUR_US - (HOURS - 1)) * HOUR_US);

    let mut by_level: Vec<LevelCount> = LEVELS
        .iter()
        .map(|l| LevelCount {
            level: l,
            ..Default::default()
        })
        .collect();
    for (level, status, n) in incidents::unresolved_by_level(&store.db).await? {
        if let Some(c) = by_level.iter_mut().find(|c| c.level == level) {
            match status.as_str() {
                "contained" => c.contained += n,
                _ => c.open += n,
            }
        }
    }

    let mut logins: Vec<HourCount> = (0..HOURS)
        .map(|h| HourCount {
            start: Timestamp::from_micros(since.micros() + h * HOUR_US),
            success: 0,
            failure: 0,
            throttled: 0,
        })
        .collect();
    for (hour, outcome, n) in events::logins_by_hour(&store.db, since).await? {
        let Some(slot) = usize::try_from(hour).ok().and_then(|h| logins.get_mut(h)) else {
            continue;
        };
        match outcome.as_str() {
            "success" => slot.success += n,
            "failure" => slot.failure += n,
            "throttled" => slot.throttled += n,
            _ => {}
        }
    }

    Ok(Summary {
        at: now,
        incidents: by_level,
        logins,
        throttled: sinks.metrics.throttled_counts(),
        active_sessions: sessions::count_active(&store.db, now).await?,
    })
}

/// What a scrape reports besides the counters: the active sessions (read now; left out when the
/// database does not answer) and the hashing pool's queue and timings.
pub async fn gauges(store: &Store, identity: &Identity) -> Gauges {
    let active_sessions = sessions::count_active(&store.db, Timestamp::now())
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "active_sessions not read"))
        .ok();
    Gauges {
        active_sessions,
        hash_queue_depth: identity.hasher.depth(),
        hashing: identity.hasher.timings(),
    }
}
