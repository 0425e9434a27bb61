//! Storage: one `Db` over SQLite or PostgreSQL, picked at run time from the URL. SQL lives only
//! in this module's files; every value is bound (`$1`), never formatted into a statement.

pub mod audit;
pub mod clients;
pub mod events;
pub mod imports;
pub mod incidents;
pub mod inline;
pub mod keys;
pub mod mfa;
pub mod passkeys;
pub mod readers;
pub mod resources;
pub mod secrets;
pub mod sessions;
pub mod users;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use futures_core::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};

/// A pool on one of the two supported backends.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on one of the two backends, and what it changed that caches (this process's and
/// the other replicas') must hear of once it commits: `commit` returns it as a `ChangeSet`.
pub struct Tx {
    pub(crate) conn: TxConn,
    auth_changed: bool,
    blocks_changed: bool,
}

pub enum TxConn {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Expands `$body` once per backend with `$c` bound to the transaction's connection;
/// each arm is type-checked on its own.
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match &mut $tx.conn {
            $crate::db::TxConn::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::db::TxConn::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// Where to connect and how big the pool is.
pub struct DbOptions<'a> {
    pub url: &'a str,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Db {
    pub async fn connect(o: DbOptions<'_>) -> anyhow::Result<Db> {
        if o.url.starts_with("postgres://") || o.url.starts_with("postgresql://") {
            // `?options=-c search_path=...` in the URL selects a schema (the tests give each run its own).
            let opts = PgConnectOptions::from_str(o.url)
                .context("IMANGOR_DATABASE_URL is not a valid PostgreSQL URL")?;
            // No ping before each use: a broken connection fails its statement and is dropped,
            // and a round trip per statement is what an API request cannot afford.
            let pool = PgPoolOptions::new()
                .test_before_acquire(false)
                .max_connections(o.max_connections)
                .acquire_timeout(o.acquire_timeout)
                .connect_with(opts)
                .await
                .context("connecting to PostgreSQL")?;
            Ok(Db::Postgres(pool))
        } else if let Some(path) = o
            .url
            .strip_prefix("sqlite://")
            .or_else(|| o.url.strip_prefix("sqlite:"))
        {
            let opts = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                // WAL with full sync: a commit acknowledged to a client survives a power cut.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(o.max_connections)
                .acquire_timeout(o.acquire_timeout)
                .connect_with(opts)
                .await
                .with_context(|| format!("opening SQLite database {path}"))?;
            Ok(Db::Sqlite(pool))
        } else {
            anyhow::bail!("IMANGOR_DATABASE_URL must start with sqlite:// or postgres://")
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite(p) => {
                Migrator::new(Embedded(SQLITE_MIGRATIONS))
                    .await?
                    .run(p)
                    .await
            }
            Db::Postgres(p) => {
                Migrator::new(Embedded(POSTGRES_MIGRATIONS))
                    .await?
                    .run(p)
                    .await
            }
        }
        .context("applying database migrations")
    }

    /// A transaction for reads, or for writes whose conflicts are settled by constraints.
    pub async fn begin(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Db::Sqlite(p) => TxConn::Sqlite(p.begin().await?),
            Db::Postgres(p) => TxConn::Postgres(p.begin().await?),
        }
        .into())
    }

    /// A transaction that writes after reading. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so two such transactions serialise instead of failing on upgrade;
    /// on PostgreSQL the statements lock the rows they need (`for update`).
    pub async fn begin_write(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Db::Sqlite(p) => TxConn::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => TxConn::Postgres(p.begin().await?),
        }
        .into())
    }

    /// Readiness: the database answers a trivial query.
    pub async fn ping(&self) -> sqlx::Result<()> {
        match self {
            Db::Sqlite(p) => sqlx::query("select 1").execute(p).await.map(drop),
            Db::Postgres(p) => sqlx::query("select 1").execute(p).await.map(drop),
        }
    }

    /// A connection of its own, opened from the pool's settings but never part of the pool: what
    /// runs on it neither waits for the pool nor takes a connection from the API.
    pub async fn connect_apart(&self) -> sqlx::Result<readers::ReadConn> {
        use sqlx::ConnectOptions;
        Ok(match self {
            Db::Sqlite(p) => readers::ReadConn::Sqlite(p.connect_options().connect().await?),
            Db::Postgres(p) => readers::ReadConn::Postgres(p.connect_options().connect().await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

impl From<TxConn> for Tx {
    fn from(conn: TxConn) -> Tx {
        Tx {
            conn,
            auth_changed: false,
            blocks_changed: false,
        }
    }
}

impl Tx {
    /// This transaction changes who may do what (a role, an account's status, a session, a
    /// denied token): once committed, cached authentication state is dropped everywhere.
    pub(crate) fn auth_changed(&mut self) {
        self.auth_changed = true;
    }

    /// This transaction changes the blocked addresses: once committed, every replica reloads them.
    pub(crate) fn blocks_changed(&mut self) {
        self.blocks_changed = true;
    }

    /// Commits, and says what the transaction changed, also after a failed commit, whose outcome
    /// may be unknown (the server may have committed): dropping caches is always safe. The
    /// storage layer announces nothing itself; a service hands the `ChangeSet` to its announcer.
    pub async fn commit(self) -> Committed {
        let changes = ChangeSet {
            auth: self.auth_changed,
            blocks: self.blocks_changed,
        };
        let result = match self.conn {
            TxConn::Sqlite(t) => t.commit().await,
            TxConn::Postgres(t) => t.commit().await,
        };
        Committed { changes, result }
    }
}

/// What a committed transaction changed that cached state depends on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Who may do what (a role, an account's status, a session, a denied token).
    pub auth: bool,
    /// The blocked addresses.
    pub blocks: bool,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        !self.auth && !self.blocks
    }
}

/// The outcome of a commit and what it changed. Dropping it unread is a compile error (with
/// `-D warnings`): what changed must reach the announcer, or the change is known to be none.
#[must_use = "hand it to the announcer (`infra::announce::Announcer::commit`), or call `quiet()`"]
pub struct Committed {
    changes: ChangeSet,
    result: sqlx::Result<()>,
}

impl Committed {
    /// What changed and the commit's result, for the announcer (the one reader of both).
    pub fn into_parts(self) -> (ChangeSet, sqlx::Result<()>) {
        (self.changes, self.result)
    }

    /// The result of a transaction that changed nothing cached state depends on (the audit
    /// trail, incidents, keys). One that did is a bug: it is logged and answered as a failure,
    /// so that it is never silent (and a debug build stops there).
    pub fn quiet(self) -> sqlx::Result<()> {
        if !self.changes.is_empty() {
            tracing::error!(changes = ?self.changes, "a transaction that changed cached state was committed without announcing it");
            debug_assert!(false, "unannounced changes: {:?}", self.changes);
            return Err(sqlx::Error::Protocol(
                "a change to cached state was committed without being announced".into(),
            ));
        }
        self.result
    }
}

/// (version, description, SQL) per backend. The version numbers of the two lists match (a test checks it).
pub const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "identity",
        include_str!("../../migrations/sqlite/0001_identity.sql"),
    ),
    (
        2,
        "resources",
        include_str!("../../migrations/sqlite/0002_resources.sql"),
    ),
    (
        3,
        "secrets",
        include_str!("../../migrations/sqlite/0003_secrets.sql"),
    ),
    (
        4,
        "audit chain",
        include_str!("../../migrations/sqlite/0004_audit_chain.sql"),
    ),
    (
        5,
        "incidents",
        include_str!("../../migrations/sqlite/0005_incidents.sql"),
    ),
    (
        6,
        "incidents triage",
        include_str!("../../migrations/sqlite/0006_incidents_triage.sql"),
    ),
    (
        7,
        "audit head",
        include_str!("../../migrations/sqlite/0007_audit_head.sql"),
    ),
    (
        8,
        "quota counts",
        include_str!("../../migrations/sqlite/0008_quota_counts.sql"),
    ),
    (
        9,
        "session reuse",
        include_str!("../../migrations/sqlite/0009_session_reuse.sql"),
    ),
    (
        10,
        "legacy ids",
        include_str!("../../migrations/sqlite/0010_legacy_ids.sql"),
    ),
    (
        11,
        "legacy guard",
        include_str!("../../migrations/sqlite/0011_legacy_guard.sql"),
    ),
    (
        12,
        "incident recurrence",
        include_str!("../../migrations/sqlite/0012_incident_recurrence.sql"),
    ),
    (
        14,
        "oauth",
        include_str!("../../migrations/sqlite/0014_oauth.sql"),
    ),
    (
        15,
        "drill",
        include_str!("../../migrations/sqlite/0015_drill.sql"),
    ),
    (
        16,
        "mfa",
        include_str!("../../migrations/sqlite/0016_mfa.sql"),
    ),
    (
        17,
        "passkeys",
        include_str!("../../migrations/sqlite/0017_passkeys.sql"),
    ),
    (
        18,
        "mfa withheld",
        include_str!("../../migrations/sqlite/0018_mfa_withheld.sql"),
    ),
];
pub const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "identity",
        include_str!("../../migrations/postgres/0001_identity.sql"),
    ),
    (
        2,
        "resources",
        include_str!("../../migrations/postgres/0002_resources.sql"),
    ),
    (
        3,
        "secrets",
        include_str!("../../migrations/postgres/0003_secrets.sql"),
    ),
    (
        4,
        "audit chain",
        include_str!("../../migrations/postgres/0004_audit_chain.sql"),
    ),
    (
        5,
        "incidents",
        include_str!("../../migrations/postgres/0005_incidents.sql"),
    ),
    (
        6,
        "incidents triage",
        include_str!("../../migrations/postgres/0006_incidents_triage.sql"),
    ),
    (
        7,
        "audit head",
        include_str!("../../migrations/postgres/0007_audit_head.sql"),
    ),
    (
        8,
        "quota counts",
        include_str!("../../migrations/postgres/0008_quota_counts.sql"),
    ),
    (
        9,
        "session reuse",
        include_str!("../../migrations/postgres/0009_session_reuse.sql"),
    ),
    (
        10,
        "legacy ids",
        include_str!("../../migrations/postgres/0010_legacy_ids.sql"),
    ),
    (
        11,
        "legacy guard",
        include_str!("../../migrations/postgres/0011_legacy_guard.sql"),
    ),
    (
        12,
        "incident recurrence",
        include_str!("../../migrations/postgres/0012_incident_recurrence.sql"),
    ),
    (
        14,
        "oauth",
        include_str!("../../migrations/postgres/0014_oauth.sql"),
    ),
    (
        15,
        "drill",
        include_str!("../../migrations/postgres/0015_drill.sql"),
    ),
    (
        16,
        "mfa",
        include_str!("../../migrations/postgres/0016_mfa.sql"),
    ),
    (
        17,
        "passkeys",
        include_str!("../../migrations/postgres/0017_passkeys.sql"),
    ),
    (
        18,
        "mfa withheld",
        include_str!("../../migrations/postgres/0018_mfa_withheld.sql"),
    ),
];

/// Migrations compiled into the binary, so a deployment is one file.
#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(*d),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Like `on_tx!`, for a single statement on the pool (no transaction).
macro_rules! on_db {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($c) => $body,
            $crate::db::Db::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_db;

/// A value read from the database that does not parse is a decoding error, not a panic.
pub(crate) fn decode_err(what: &str, value: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unexpected {what} in the database: {value:?}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migration_versions() {
        let v = |m: &[(i64, &str, &str)]| {
            m.iter()
                .map(|(v, d, _)| (*v, d.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(v(SQLITE_MIGRATIONS), v(POSTGRES_MIGRATIONS));
        let files = |dir: &str| {
            let mut f: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            f.sort();
            f
        };
        assert_eq!(files("migrations/sqlite"), files("migrations/postgres"));
        assert_eq!(files("migrations/sqlite").len(), SQLITE_MIGRATIONS.len());
    }
}
