//! Connections held outside the pool for the hot single-statement reads (one resource, the
//! state behind an access token).
//!
//! sqlx's pool pings every connection it takes back: on PostgreSQL one more round trip, on
//! SQLite one more hand-off to the connection's own thread and back, for every statement run on
//! the pool. A held connection is used again without one: `bench/run`'s (b) went from 3.9 to
//! 2.0 thread switches per request on SQLite (see docs/performance.md).
//!
//! A connection is taken out of its slot while a statement runs and put back only when the
//! statement succeeded: one that failed, or whose request was cancelled half-way, is dropped,
//! and the slot opens a fresh one from the pool's settings on next use. Reads are idempotent, so
//! a statement that failed on a connection broken while idle is tried once more on a fresh one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::{PgConnection, SqliteConnection};
use tokio::sync::{Mutex, MutexGuard};

use super::Db;
use super::inline::Inline;

/// A held connection on one of the two backends.
pub enum ReadConn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// A few connections, each behind its own lock; on SQLite, reads on the calling thread first
/// (`db::inline`), these when one cannot run there.
pub struct Readers {
    db: Db,
    slots: Vec<Mutex<Option<ReadConn>>>,
    next: AtomicUsize,
    acquire_timeout: Duration,
    inline: Option<Inline>,
}

/// How many connections of `max_connections` are held for reads: a quarter, at most 8; the
/// pool keeps the rest for transactions. A read waits for a held connection rather than spill
/// into the pool: under load the reads of all in-flight requests queue on the held ones at one
/// round trip each, where in the pool they cost two. Measured on PostgreSQL with the server on
/// one core ((b), 32 connections): spilling into the pool, 5 000-5 800 req/s, as without held
/// connections; 2 held, 10 800-11 300; 5 held, 7 400-8 300 (more backends busy on shared cores).
pub fn held_of(max_connections: u32) -> u32 {
    if max_connections < 4 {
        0
    } else {
        (max_connections / 4).min(8)
    }
}

impl Readers {
    /// `count` slots, opened on first use from `db`'s pool (and then detached from it). With no
    /// slots every read runs on the pool. `inline`: on a SQLite file, read on the calling thread
    /// first (`IMANGOR_SQLITE_INLINE_READS`).
    pub fn new(db: Db, count: u32, acquire_timeout: Duration, inline: bool) -> Readers {
        let inline = match &db {
            Db::Sqlite(p) if inline => Inline::new(p.connect_options().get_filename()),
            _ => None,
        };
        Readers {
            db,
            slots: (0..count).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            acquire_timeout,
            inline,
        }
    }

    /// The reads on the calling thread, where there are.
    pub fn inline(&self) -> Option<&Inline> {
        self.inline.as_ref()
    }

    /// The pool, for reads when no connection is held.
    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Connections open in their slots (a slot in use counts as open).
    pub fn open_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.try_lock().map_or(true, |c| c.is_some()))
            .count()
    }

    /// A free slot if there is one, else the next in turn once it is free (at most the pool's
    /// acquire timeout: then the database counts as unavailable, as with the pool).
    async fn slot(&self) -> sqlx::Result<MutexGuard<'_, Option<ReadConn>>> {
        if let Some(free) = self.slots.iter().find_map(|s| s.try_lock().ok()) {
            return Ok(free);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        tokio::time::timeout(self.acquire_timeout, self.slots[i].lock())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)
    }

    /// A connection from the pool, detached from it (the pool may open another in its place).
    async fn open(&self) -> sqlx::Result<ReadConn> {
        Ok(match &self.db {
            Db::Sqlite(p) => ReadConn::Sqlite(p.acquire().await?.detach()),
            Db::Postgres(p) => ReadConn::Postgres(p.acquire().await?.detach()),
        })
    }

    /// A held connection for one read (opened now if its slot had none).
    pub async fn hold(&self) -> sqlx::Result<Held<'_>> {
        let mut slot = self.slot().await?;
        let (conn, fresh) = match slot.take() {
            Some(c) => (c, false),
            None => (self.open().await?, true),
        };
        Ok(Held {
            readers: self,
            slot,
            conn: Some(conn),
            fresh,
        })
    }
}

/// A connection taken out of its slot for one read. Dropped without `settle` (the request was
/// cancelled half-way), the connection is closed and the slot stays empty.
pub struct Held<'a> {
    readers: &'a Readers,
    slot: MutexGuard<'a, Option<ReadConn>>,
    /// Taken until the read settles; `None` only after `settle` gave a final answer.
    conn: Option<ReadConn>,
    fresh: bool,
}

/// What to do after a read: give its result, or run it again on a fresh connection.
pub enum Settled<T> {
    Done(sqlx::Result<T>),
    Retry,
}

impl Held<'_> {
    pub fn conn(&mut self) -> sqlx::Result<&mut ReadConn> {
        self.conn.as_mut().ok_or_else(|| {
            sqlx::Error::Protocol("a held connection was used after it settled".into())
        })
    }

    /// Puts the connection back after a success; after a connection error on a connection that
    /// was idle, opens a fresh one to try again; otherwise drops it with the error.
    pub async fn settle<T>(&mut self, result: sqlx::Result<T>) -> sqlx::Result<Settled<T>> {
        match result {
            Ok(v) => {
                *self.slot = self.conn.take();
                Ok(Settled::Done(Ok(v)))
            }
            Err(e) if !self.fresh && is_connection_error(&e) => {
                self.conn = Some(self.readers.open().await?);
                self.fresh = true;
                Ok(Settled::Retry)
            }
            Err(e) => {
                self.conn = None;
                Ok(Settled::Done(Err(e)))
            }
        }
    }
}

/// Pins the output type of a read's future (so `?` inside it knows its error type).
pub fn read<T, F: Future<Output = sqlx::Result<T>>>(f: F) -> F {
    f
}

/// Errors of the connection rather than of the statement: I/O, protocol, and PostgreSQL's
/// connection exceptions (SQLSTATE class 08) and shutdowns (57P01-57P03: the server ended the
/// session, e.g. `pg_terminate_backend` or a restart).
fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// Runs `$body` once per backend with `$c` bound to a held connection (`&mut SqliteConnection`
/// or `&mut PgConnection`), or to the pool when no connection is held; each arm is
/// type-checked on its own. `$body` gives `sqlx::Result<_>` (`?` inside it ends the read, not
/// the caller), and so does the macro.
macro_rules! on_reader {
    ($readers:expr, $c:ident => $body:expr) => {{
        use $crate::db::readers::{ReadConn, Settled, read};
        let readers: &$crate::db::readers::Readers = $readers;
        if readers.is_empty() {
            read(async { $crate::db::on_db!(readers.db(), $c => $body) }).await
        } else {
            read(async {
                let mut held = readers.hold().await?;
                loop {
                    let result = read(async {
                        match held.conn()? {
                            ReadConn::Sqlite($c) => $body,
                            ReadConn::Postgres($c) => $body,
                        }
                    })
                    .await;
                    match held.settle(result).await? {
                        Settled::Done(r) => break r,
                        Settled::Retry => {}
                    }
                }
            })
            .await
        }
    }};
}
pub(crate) use on_reader;

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite(dir: &tempfile::TempDir) -> Db {
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        Db::connect(super::super::DbOptions {
            url: &url,
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap()
    }

    async fn one(readers: &Readers) -> sqlx::Result<i64> {
        on_reader!(readers, c => sqlx::query_scalar::<_, i64>("select 1").fetch_one(c).await)
    }

    #[test]
    fn a_quarter_of_the_connections_up_to_eight_are_held() {
        assert_eq!(
            [1, 3, 4, 10, 16, 40].map(held_of),
            [0, 0, 1, 2, 4, 8],
            "the pool keeps at least three"
        );
    }

    #[tokio::test]
    async fn a_connection_is_kept_after_a_success_and_dropped_after_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::new(sqlite(&dir).await, 2, Duration::from_secs(5), false);
        assert_eq!(readers.open_count(), 0, "opened on first use");
        assert_eq!(one(&readers).await.unwrap(), 1);
        assert_eq!(readers.open_count(), 1, "kept for the next read");
        assert_eq!(one(&readers).await.unwrap(), 1);
        assert_eq!(readers.open_count(), 1, "the same one was used again");
        let failed: sqlx::Result<i64> = on_reader!(&readers, c =>
            sqlx::query_scalar::<_, i64>("select no_such_column").fetch_one(c).await);
        assert!(failed.is_err());
        assert_eq!(
            readers.open_count(),
            0,
            "a failed read drops its connection"
        );
        assert_eq!(
            one(&readers).await.unwrap(),
            1,
            "and the next one opens a fresh one"
        );
    }

    #[tokio::test]
    async fn a_read_cancelled_half_way_never_puts_its_connection_back() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::new(sqlite(&dir).await, 1, Duration::from_secs(5), false);
        assert_eq!(one(&readers).await.unwrap(), 1);
        let held = readers.hold().await.unwrap();
        assert_eq!(readers.open_count(), 1, "in use");
        drop(held);
        assert_eq!(
            readers.open_count(),
            0,
            "closed, not returned in an unknown state"
        );
        assert_eq!(one(&readers).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn with_no_slots_reads_run_on_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::new(sqlite(&dir).await, 0, Duration::from_secs(5), false);
        assert!(readers.is_empty());
        assert_eq!(one(&readers).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_busy_slot_is_waited_for_no_longer_than_the_acquire_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let readers = Readers::new(sqlite(&dir).await, 1, Duration::from_millis(50), false);
        let _held = readers.hold().await.unwrap();
        assert!(matches!(
            one(&readers).await,
            Err(sqlx::Error::PoolTimedOut)
        ));
    }
}
