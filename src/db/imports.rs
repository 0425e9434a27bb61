//! Imports from a deployment of the guide's Python stack: the source database, read only
//! (`Source`), and what an import writes here: accounts, resources and secrets with their
//! original times, and the `legacy_ids` table that maps each source row to the row it became.

use std::collections::HashMap;
use std::str::FromStr;

use anyhow::Context;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::{Tx, on_tx};
use crate::crypto::data::Ciphertext;
use crate::domain::{Resource, Role, SecretId, SecretName, Timestamp, UserId};

/// The source database of an import, opened read only.
pub enum Source {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

macro_rules! on_source {
    ($src:expr, $c:ident => $body:expr) => {
        match $src {
            Source::Sqlite($c) => $body,
            Source::Postgres($c) => $body,
        }
    };
}

/// A table or column name from a mapping, checked before it is spliced into a statement (names
/// cannot be bound): letters, digits and `_`, at most 63, not starting with a digit; displayed
/// quoted. The only way to make one is `ident`, so a statement that splices nothing but `Ident`s
/// (the lines marked `sql: names only`, which `.ci/run` lets through) splices no value.
struct Ident(String);

impl std::fmt::Display for Ident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

fn ident(name: &str) -> anyhow::Result<Ident> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    anyhow::ensure!(ok, "{name:?} is not a plain table or column name");
    Ok(Ident(name.to_owned()))
}

impl Source {
    /// Opens `url` (`sqlite://PATH` or `postgres://...`) so that nothing can be written through it.
    pub async fn open(url: &str) -> anyhow::Result<Source> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .context("--source is not a valid PostgreSQL URL")?
                .options([("default_transaction_read_only", "on")]);
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .connect_with(opts)
                .await
                .context("connecting to the source PostgreSQL database")?;
            Ok(Source::Postgres(pool))
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            anyhow::ensure!(
                std::path::Path::new(path).is_file(),
                "the source SQLite database {path} does not exist"
            );
            let opts = SqliteConnectOptions::new().filename(path).read_only(true);
            let pool = SqlitePoolOptions::new()
                .max_connections(2)
                .connect_with(opts)
                .await
                .with_context(|| format!("opening the source SQLite database {path}"))?;
            Ok(Source::Sqlite(pool))
        } else {
            anyhow::bail!("--source must start with sqlite:// or postgres://")
        }
    }

    /// The columns of `table`, lower-cased; empty when there is no such table.
    pub async fn columns(&self, table: &str) -> anyhow::Result<Vec<String>> {
        let names: Vec<String> = match self {
            Source::Sqlite(p) => {
                sqlx::query_scalar("select name from pragma_table_info($1)")
                    .bind(table)
                    .fetch_all(p)
                    .await
            }
            Source::Postgres(p) => {
                sqlx::query_scalar(
                    "select column_name::text from information_schema.columns
                     where table_name = $1 and table_schema = current_schema()",
                )
                .bind(table)
                .fetch_all(p)
                .await
            }
        }
        .with_context(|| format!("reading the columns of the source table {table}"))?;
        Ok(names.into_iter().map(|n| n.to_lowercase()).collect())
    }

    /// How many rows `table` holds.
    pub async fn count(&self, table: &str) -> anyhow::Result<u64> {
        let sql = format!("select count(*) from {}", ident(table)?); // sql: names only
        let n: i64 = on_source!(self, p => sqlx::query_scalar(&sql).fetch_one(p).await)
            .with_context(|| format!("counting the rows of the source table {table}"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Up to `limit` rows of `table` whose integer `id` column is above `after`, in id order:
    /// the id, then `columns` as text (booleans, times and numbers as the database prints them;
    /// `None` for null). Reading by id keeps each page an index range however large the table.
    pub async fn page(
        &self,
        table: &str,
        id: &str,
        columns: &[&str],
        after: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<(i64, Vec<Option<String>>)>> {
        let mut select = format!("select {} as id__", ident(id)?); // sql: names only
        for (i, c) in columns.iter().enumerate() {
            select.push_str(&format!(", cast({} as text) as c{i}", ident(c)?));
        }
        let id_q = ident(id)?;
        let sql = format!(
            "{select} from {} where {id_q} > $1 order by {id_q} limit $2",
            ident(table)?
        );
        let read = |r: &dyn RowText| -> sqlx::Result<(i64, Vec<Option<String>>)> {
            let cells = (0..columns.len())
                .map(|i| r.text(&format!("c{i}")))
                .collect::<sqlx::Result<_>>()?;
            Ok((r.id()?, cells))
        };
        let rows = on_source!(self, p => sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await
            .and_then(|rows| rows.iter().map(|r| read(r)).collect()));
        rows.with_context(|| format!("reading the source table {table}"))
    }

    pub async fn close(&self) {
        on_source!(self, p => p.close().await)
    }
}

/// A source row read the same way on either backend.
trait RowText {
    fn id(&self) -> sqlx::Result<i64>;
    fn text(&self, col: &str) -> sqlx::Result<Option<String>>;
}

impl RowText for sqlx::sqlite::SqliteRow {
    fn id(&self) -> sqlx::Result<i64> {
        self.try_get("id__")
    }
    fn text(&self, col: &str) -> sqlx::Result<Option<String>> {
        self.try_get(col)
    }
}

impl RowText for sqlx::postgres::PgRow {
    fn id(&self) -> sqlx::Result<i64> {
        // `integer` or `bigint`, as SQLAlchemy declared it.
        self.try_get::<i64, _>("id__")
            .or_else(|_| self.try_get::<i32, _>("id__").map(i64::from))
    }
    fn text(&self, col: &str) -> sqlx::Result<Option<String>> {
        self.try_get(col)
    }
}

/// The imangor ids of the rows of `source_table` imported so far, by source id.
pub async fn mapped(tx: &mut Tx, source_table: &str) -> sqlx::Result<HashMap<String, String>> {
    on_tx!(tx, c => sqlx::query(
        "select source_id, target_id from legacy_ids where source_table = $1")
        .bind(source_table).fetch_all(c).await?
        .iter()
        .map(|r| Ok((r.try_get("source_id")?, r.try_get("target_id")?)))
        .collect())
}

/// Records that the source row became `target_id` (in the transaction that wrote it).
pub async fn record(
    tx: &mut Tx,
    source_table: &str,
    source_id: &str,
    target_id: &str,
    now: Timestamp,
) -> sqlx::Result<()> {
    record_entry(tx, source_table, source_id, target_id, now, false).await
}

/// A source user mapped onto an account that was already there (`--merge`): marked, so that the
/// old stack's tokens for that user are never accepted (the email match proves no common owner).
pub async fn record_merged(
    tx: &mut Tx,
    source_id: &str,
    target_id: &str,
    now: Timestamp,
) -> sqlx::Result<()> {
    record_entry(tx, "users", source_id, target_id, now, true).await
}

async fn record_entry(
    tx: &mut Tx,
    source_table: &str,
    source_id: &str,
    target_id: &str,
    now: Timestamp,
    merged: bool,
) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query(
        "insert into legacy_ids (source_table, source_id, target_id, imported_at, merged) values ($1, $2, $3, $4, $5)")
        .bind(source_table).bind(source_id).bind(target_id).bind(now.micros()).bind(merged)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Accounts that neither the bootstrap admin's creation nor an earlier import made: what an
/// import refuses to mix with unless asked to merge.
pub async fn foreign_accounts(tx: &mut Tx) -> sqlx::Result<i64> {
    on_tx!(tx, c => sqlx::query_scalar(
        "select count(*) from users
         where id not in (select target from security_events
                          where action = 'user.bootstrap_admin' and target is not null)
           and id not in (select target_id from legacy_ids where source_table = 'users')")
        .fetch_one(c).await)
}

/// The id of the account with this (normalised) email.
pub async fn user_by_email(tx: &mut Tx, email: &str) -> sqlx::Result<Option<UserId>> {
    let id: Option<String> = on_tx!(tx, c => sqlx::query_scalar(
        "select id from users where email = $1").bind(email).fetch_optional(c).await)?;
    id.map(|id| id.parse().map_err(|_| super::decode_err("user id", &id)))
        .transpose()
}

/// Whether `user` is an account an import created (not one merged onto): a second source row
/// with its email (the old stack compared emails case-sensitively) is a duplicate, not a merge.
pub async fn created_by_import(tx: &mut Tx, user: UserId) -> sqlx::Result<bool> {
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "select count(*) from legacy_ids where source_table = 'users' and target_id = $1 and not merged")
        .bind(user.to_string()).fetch_one(c).await)?;
    Ok(n > 0)
}

/// An account brought over: its hash (bcrypt, verified and replaced at its first login), status
/// and creation time are the source's.
pub struct ImportedUser<'a> {
    pub id: UserId,
    pub email: &'a str,
    pub full_name: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub disabled: bool,
    pub created_at: Timestamp,
}

/// Inserts the account; false when its email is taken (nothing written).
pub async fn insert_user(tx: &mut Tx, u: &ImportedUser<'_>) -> sqlx::Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "insert into users (id, email, full_name, password_hash, role, disabled, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $7) on conflict do nothing")
        .bind(u.id.to_string()).bind(u.email).bind(u.full_name).bind(u.password_hash)
        .bind(u.role.as_str()).bind(u.disabled).bind(u.created_at.micros())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Inserts a resource with its original times.
pub async fn insert_resource(tx: &mut Tx, r: &Resource) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query(
        "insert into resources (id, owner_id, title, content, is_public, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7)")
        .bind(r.id.to_string()).bind(r.owner_id.to_string()).bind(&r.title).bind(&r.content)
        .bind(r.is_public).bind(r.created_at.micros()).bind(r.updated_at.micros())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Inserts a secret already sealed to its row; false when its owner has one of that name.
pub async fn insert_secret(
    tx: &mut Tx,
    id: SecretId,
    owner: UserId,
    name: &SecretName,
    sealed: &Ciphertext,
    created_at: Timestamp,
) -> sqlx::Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "insert into secrets (id, owner_id, name, key_id, ciphertext, created_at)
         values ($1, $2, $3, $4, $5, $6) on conflict do nothing")
        .bind(id.to_string()).bind(owner.to_string()).bind(name.as_str())
        .bind(&sealed.key_id).bind(&sealed.bytes).bind(created_at.micros())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::ident;

    #[test]
    fn a_name_from_a_mapping_is_spliced_only_when_it_is_a_plain_name() {
        assert_eq!(ident("users").unwrap().to_string(), "\"users\"");
        assert_eq!(ident("owner_id2").unwrap().to_string(), "\"owner_id2\"");
        for bad in [
            "",
            "2fa",
            "users\"; drop table users; --",
            "a b",
            "users.id",
            "naïve",
            &"x".repeat(64),
        ] {
            assert!(ident(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
