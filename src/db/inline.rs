//! SQLite reads run on the calling thread: the hot single-statement reads of `db::readers`
//! without sqlx's hand-off to a connection's own thread and back.
//!
//! sqlx runs every SQLite statement on a thread of the connection's own, so a read costs two
//! thread switches, and the held connections are a handful of locks that every core's requests
//! queue on. An indexed read of one row takes microseconds; here it runs where the request runs,
//! on a connection of its own taken from a stack (rusqlite, on the same libsqlite3 as sqlx).
//! `bench/run` measures both (`IMANGOR_SQLITE_INLINE_READS=off` is the other): see
//! docs/performance.md.
//!
//! These connections only read (`query_only`) and never wait for a lock (`busy_timeout` 0): a
//! read that cannot go ahead at once (SQLITE_BUSY, say while a crashed writer's journal is
//! recovered), or fails in any way, answers `None` and the caller reads through sqlx instead,
//! which waits as the pool does and reports the error as every other read does. The connection
//! that failed is closed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::FromSql;
use rusqlite::{Connection, OpenFlags, ToSql};

/// At most this many idle connections are kept; a connection is in use only while one statement
/// runs on a thread, so the tokio worker threads are the most ever in use at once.
const KEEP: usize = 64;

const RETRY_OPEN: Duration = Duration::from_secs(10);

pub struct Inline {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// A connection is being opened off the request threads.
    opening: AtomicBool,
    /// When opening one last failed: no other try for `RETRY_OPEN` (a failure, say out of file
    /// descriptors, would otherwise be tried and logged for every read).
    failed_open: Mutex<Option<Instant>>,
    served: AtomicU64,
    cold: AtomicU64,
    failed: AtomicU64,
}

/// What the reads did since start: answered here, handed on because no connection was open yet,
/// handed on because the statement failed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub served: u64,
    pub cold: u64,
    pub failed: u64,
}

impl Inline {
    /// Reads of the SQLite file at `path`; `None` for an in-memory or URI name, which another
    /// connection could not open as the same database.
    pub fn new(path: &Path) -> Option<Inline> {
        let name = path.to_str()?;
        if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
            return None;
        }
        Some(Inline {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                opening: AtomicBool::new(false),
                failed_open: Mutex::new(None),
                served: AtomicU64::new(0),
                cold: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        })
    }

    /// Runs `sql` with its `$n` parameters bound by name and maps the first row, if any.
    /// `None`: the read did not run here; read through sqlx instead.
    ///
    /// What may take long runs off the request threads: opening a connection (which reads the
    /// schema) when none is idle, this read then going through sqlx; closing one whose statement
    /// failed (the last connection to close checkpoints the WAL).
    pub fn row<T>(
        &self,
        sql: &str,
        params: &[(&str, &dyn ToSql)],
        map: impl FnOnce(&rusqlite::Row<'_>) -> sqlx::Result<T>,
    ) -> Option<Option<T>> {
        let s = &self.shared;
        let Some(conn) = s.idle.lock().ok().and_then(|mut i| i.pop()) else {
            s.cold.fetch_add(1, Ordering::Relaxed);
            self.open_one();
            return None;
        };
        let ran = (|| {
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = stmt.query(params)?;
            Ok::<_, rusqlite::Error>(rows.next()?.map(map))
        })();
        let answer = match ran {
            Ok(None) => Some(None),
            Ok(Some(Ok(v))) => Some(Some(v)),
            // A value that does not decode: the connection is sound; sqlx reports the error.
            Ok(Some(Err(_))) => None,
            Err(_) => {
                s.failed.fetch_add(1, Ordering::Relaxed);
                off_the_request_threads(move || drop(conn));
                return None;
            }
        };
        match answer {
            Some(_) => s.served.fetch_add(1, Ordering::Relaxed),
            None => s.failed.fetch_add(1, Ordering::Relaxed),
        };
        if let Ok(mut idle) = s.idle.lock()
            && idle.len() < KEEP
        {
            idle.push(conn);
        }
        answer
    }

    /// Opens a connection for the idle stack off the request threads, one at a time.
    fn open_one(&self) {
        let recent_failure = |s: &Shared| {
            s.failed_open
                .lock()
                .map_or(true, |f| f.is_some_and(|at| at.elapsed() < RETRY_OPEN))
        };
        if recent_failure(&self.shared) || self.shared.opening.swap(true, Ordering::AcqRel) {
            return;
        }
        let s = Arc::clone(&self.shared);
        off_the_request_threads(move || {
            match s.open() {
                Ok(c) => {
                    if let Ok(mut idle) = s.idle.lock() {
                        idle.push(c);
                    }
                }
                Err(e) => {
                    if let Ok(mut f) = s.failed_open.lock() {
                        *f = Some(Instant::now());
                    }
                    tracing::warn!(error = %e, retry_s = RETRY_OPEN.as_secs(), "opening a SQLite read connection failed; reads go through the pool")
                }
            }
            s.opening.store(false, Ordering::Release);
        });
    }

    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        Counts {
            served: s.served.load(Ordering::Relaxed),
            cold: s.cold.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
        }
    }

    /// Idle connections kept.
    pub fn idle_count(&self) -> usize {
        self.shared.idle.lock().map_or(0, |i| i.len())
    }
}

impl Shared {
    fn open(&self) -> rusqlite::Result<Connection> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_PRIVATE_CACHE,
        )?;
        c.busy_timeout(std::time::Duration::ZERO)?;
        // cache_size in KiB when negative: 256 KiB, the indexes' upper pages; the rest is read
        // from the operating system's cache (the pool's connections keep SQLite's 2 MiB each).
        c.execute_batch("pragma query_only = on; pragma cache_size = -256;")?;
        Ok(c)
    }
}

/// On tokio's blocking threads when there is a runtime, else here.
fn off_the_request_threads(f: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(f)),
        Err(_) => f(),
    }
}

/// `try_get` on a rusqlite row as on a sqlx row, so that one mapping of a row's columns (the
/// `*_row!` macros) serves both.
pub trait InlineRow {
    fn try_get<T: FromSql>(&self, column: &str) -> sqlx::Result<T>;
}

impl InlineRow for rusqlite::Row<'_> {
    fn try_get<T: FromSql>(&self, column: &str) -> sqlx::Result<T> {
        self.get(column)
            .map_err(|e| sqlx::Error::Decode(format!("column {column}: {e}").into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db(dir: &tempfile::TempDir) -> (crate::db::Db, Inline) {
        let path = dir.path().join("i.db");
        let db = crate::db::Db::connect(crate::db::DbOptions {
            url: &format!("sqlite://{}", path.display()),
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(5),
        })
        .await
        .unwrap();
        sqlx::query("create table t (id integer primary key, v text not null)")
            .execute(&pool(&db))
            .await
            .unwrap();
        (db, Inline::new(&path).unwrap())
    }

    fn pool(db: &crate::db::Db) -> sqlx::SqlitePool {
        match db {
            crate::db::Db::Sqlite(p) => p.clone(),
            crate::db::Db::Postgres(_) => unreachable!(),
        }
    }

    fn v(i: &Inline, id: i64) -> Option<Option<String>> {
        i.row("select v from t where id = $1", &[("$1", &id)], |r| {
            r.try_get("v")
        })
    }

    /// Waits for the connection the first read asked for, opened off the request threads.
    async fn warm(i: &Inline) {
        for _ in 0..400 {
            if i.idle_count() > 0 {
                return;
            }
            i.open_one();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("no read connection was opened");
    }

    fn counts(served: u64, cold: u64, failed: u64) -> Counts {
        Counts {
            served,
            cold,
            failed,
        }
    }

    #[tokio::test]
    async fn a_read_sees_every_commit_of_the_pool_at_once_and_keeps_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (db, i) = db(&dir).await;
        assert_eq!(
            v(&i, 1),
            None,
            "no connection yet: handed on, one opened aside"
        );
        warm(&i).await;
        assert_eq!(v(&i, 1), Some(None), "no row: answered here");
        sqlx::query("insert into t values (1, 'a')")
            .execute(&pool(&db))
            .await
            .unwrap();
        assert_eq!(v(&i, 1), Some(Some("a".into())));
        sqlx::query("update t set v = 'b' where id = 1")
            .execute(&pool(&db))
            .await
            .unwrap();
        assert_eq!(v(&i, 1), Some(Some("b".into())), "no stale snapshot");
        assert_eq!(i.idle_count(), 1, "one connection, used again");
        assert_eq!(i.counts(), counts(3, 1, 0));
    }

    #[tokio::test]
    async fn a_statement_that_fails_or_writes_is_handed_on_and_its_connection_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (db, i) = db(&dir).await;
        warm(&i).await;
        let bad = i.row("select nothing from t where id = $1", &[("$1", &1)], |r| {
            r.try_get::<String>("nothing")
        });
        assert_eq!(bad, None);
        assert_eq!(i.idle_count(), 0, "closed");
        warm(&i).await;
        let wrote = i.row(
            "insert into t values ($1, 'x') returning v",
            &[("$1", &2)],
            |r| r.try_get::<String>("v"),
        );
        assert_eq!(wrote, None, "query_only: these connections never write");
        let n: i64 = sqlx::query_scalar("select count(*) from t")
            .fetch_one(&pool(&db))
            .await
            .unwrap();
        assert_eq!(n, 0);
        warm(&i).await;
        let wrong_type = i.row("select 'text' as v", &[], |r| r.try_get::<i64>("v"));
        assert_eq!(
            wrong_type, None,
            "a value that does not decode is handed on too"
        );
        assert_eq!(i.idle_count(), 1, "and its connection, sound, kept");
        assert_eq!(i.counts(), counts(0, 0, 3));
        assert_eq!(v(&i, 1), Some(None));
    }

    #[tokio::test]
    async fn a_connection_that_cannot_be_opened_is_tried_again_only_after_a_while() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: SQLite cannot open it.
        let i = Inline::new(dir.path()).unwrap();
        assert_eq!(v(&i, 1), None);
        for _ in 0..400 {
            if i.shared.failed_open.lock().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let first = i
            .shared
            .failed_open
            .lock()
            .unwrap()
            .expect("the open failed");
        assert_eq!(v(&i, 1), None);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(
            *i.shared.failed_open.lock().unwrap(),
            Some(first),
            "no second try within RETRY_OPEN"
        );
        assert_eq!(i.counts(), counts(0, 2, 0));
    }

    #[test]
    fn an_in_memory_or_uri_database_is_not_read_here() {
        for name in [":memory:", "file:x.db?mode=ro", ""] {
            assert!(Inline::new(Path::new(name)).is_none(), "{name}");
        }
        assert!(Inline::new(Path::new("/var/lib/imangor/imangor.db")).is_some());
    }
}
