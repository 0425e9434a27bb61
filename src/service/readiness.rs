//! Readiness: a background probe asks the database once a second, on a connection of its own, and
//! keeps the answer; `/readyz` (in `http::health`) reads the last one and does no database work.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::db::Db;
use crate::db::readers::ReadConn;
use crate::infra::metrics::Metrics;

/// The readiness probe's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Not checked yet.
    Unknown = 0,
    Ready = 1,
    /// The database answered with an error (or could not be reached).
    DbError = 2,
    /// The database did not answer within `PROBE_TIMEOUT`.
    DbSilent = 3,
    /// No answer recorded for longer than `STALE_AFTER`: the probe loop is dead or stuck. Never
    /// stored; `Readiness::at` reports it.
    Stale = 4,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            1 => State::Ready,
            2 => State::DbError,
            3 => State::DbSilent,
            4 => State::Stale,
            _ => State::Unknown,
        }
    }
}

/// How long the probe waits for the database (opening its connection included).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A result older than this is not believed. A result is stamped with its check's start and
/// written at its end: a check starts at most `PROBE_TIMEOUT` after the one before (one a second,
/// a late tick fires at once) and takes at most `PROBE_TIMEOUT`, so a live probe's newest result
/// is at most 2 x `PROBE_TIMEOUT` = 4 s old when the next one lands, even on a slow database.
pub const STALE_AFTER: Duration = Duration::from_secs(5);

/// The readiness probe's last result and when it came. The probe (`probe_loop`) asks the
/// database once a second, on a connection of its own outside the pool: a saturated pool is an
/// overloaded replica, not a dead database, and must not take every replica out of the Service
/// at once. `GET /readyz` reads the result and does no database work of its own, so that a flood
/// of probes cannot take the pool's connections from the API.
pub struct Readiness {
    state: AtomicU8,
    /// When the check that made the last result started, in milliseconds since `born`.
    at_ms: AtomicU64,
    born: Instant,
    conn: tokio::sync::Mutex<Option<ReadConn>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            state: AtomicU8::new(State::Unknown as u8),
            at_ms: AtomicU64::new(0),
            born: Instant::now(),
            conn: tokio::sync::Mutex::new(None),
        }
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("state", &self.state)
            .field("at_ms", &self.at_ms)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    /// Asks the database once and keeps the answer; logs only a change, not every failed second.
    pub async fn check(&self, db: &Db, metrics: &Metrics) {
        metrics.readiness_check();
        // A result is as old as the check that made it (see `STALE_AFTER`).
        let started = Instant::now();
        let (now, error) = match tokio::time::timeout(PROBE_TIMEOUT, self.ping(db)).await {
            Ok(Ok(())) => (State::Ready, None),
            Ok(Err(e)) => (State::DbError, Some(e)),
            Err(_) => (State::DbSilent, None),
        };
        self.stamp(started);
        let before = State::from_u8(self.state.swap(now as u8, Ordering::Relaxed));
        if before == now {
            return;
        }
        match (now, error) {
            (State::Ready, _) if before != State::Unknown => {
                tracing::info!("readiness: the database answers again")
            }
            (State::Ready, _) => {}
            (_, Some(e)) => tracing::warn!(error = %e, "readiness: database error; not ready"),
            _ => tracing::warn!(
                "readiness: the database did not answer within {PROBE_TIMEOUT:?}; not ready"
            ),
        }
    }

    /// `select 1` on the probe's own connection, opened when it has none; a connection that
    /// failed (or whose ping was cut off by the timeout) is dropped and opened afresh next time.
    async fn ping(&self, db: &Db) -> sqlx::Result<()> {
        let mut slot = self.conn.lock().await;
        let mut conn = match slot.take() {
            Some(c) => c,
            None => db.connect_apart().await?,
        };
        let q = "select 1";
        match &mut conn {
            ReadConn::Sqlite(c) => sqlx::query(q).execute(c).await.map(drop)?,
            ReadConn::Postgres(c) => sqlx::query(q).execute(c).await.map(drop)?,
        }
        *slot = Some(conn);
        Ok(())
    }

    /// When the result about to be stored came.
    fn stamp(&self, at: Instant) {
        let ms = at.saturating_duration_since(self.born).as_millis();
        self.at_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    #[cfg(test)]
    fn record(&self, state: State, at: Instant) {
        self.stamp(at);
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// The last result, unless it is older than `STALE_AFTER` at `now`.
    pub fn at(&self, now: Instant) -> State {
        let state = State::from_u8(self.state.load(Ordering::Relaxed));
        let at = self.born + Duration::from_millis(self.at_ms.load(Ordering::Relaxed));
        if state != State::Unknown && now.saturating_duration_since(at) > STALE_AFTER {
            return State::Stale;
        }
        state
    }

    /// Whether the last result, still fresh, says ready.
    pub fn is_ready(&self) -> bool {
        self.at(Instant::now()) == State::Ready
    }
}

/// Checks the database each second for as long as the server runs.
pub async fn probe_loop(readiness: Arc<Readiness>, db: Db, metrics: Arc<Metrics>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        readiness.check(&db, &metrics).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_older_than_stale_after_is_not_believed() {
        let r = Readiness::default();
        let t = r.born + Duration::from_secs(10);
        assert_eq!(r.at(t), State::Unknown, "never checked");
        r.record(State::Ready, t);
        // A slow but live probe: its result is up to 2 x PROBE_TIMEOUT old when the next lands.
        assert_eq!(r.at(t + 2 * PROBE_TIMEOUT), State::Ready);
        assert_eq!(
            r.at(t + STALE_AFTER - Duration::from_millis(100)),
            State::Ready
        );
        // The probe loop died after its last answer: no longer ready.
        assert_eq!(
            r.at(t + STALE_AFTER + Duration::from_millis(100)),
            State::Stale
        );
        r.record(State::DbError, t + Duration::from_secs(4));
        assert_eq!(r.at(t + Duration::from_secs(5)), State::DbError);
    }
}
