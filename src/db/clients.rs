//! OAuth clients, their authorization codes and the consent tickets between sign-in and consent.
//! Secrets, codes and tickets are kept as SHA-256 hashes only.

use sqlx::Row;

use super::{Db, Tx, decode_err, on_db, on_tx};
use crate::domain::client::{Client, ClientKind, GrantType, RedirectUri, Scopes};
use crate::domain::{ClientId, SessionId, SignInMethod, Timestamp, UserId};

macro_rules! columns {
    () => {
        "id, name, kind, redirect_uris, grant_types, scopes, first_party, created_at"
    };
}

fn client_row(r: &impl RowGet) -> sqlx::Result<Client> {
    let id: String = r.text("id")?;
    let kind: String = r.text("kind")?;
    let uris: String = r.text("redirect_uris")?;
    let grants: String = r.text("grant_types")?;
    let scopes: String = r.text("scopes")?;
    Ok(Client {
        id: id.parse().map_err(|_| decode_err("client id", &id))?,
        name: r.text("name")?,
        kind: kind
            .parse::<ClientKind>()
            .map_err(|_| decode_err("client type", &kind))?,
        redirect_uris: uris
            .lines()
            .map(|u| RedirectUri::parse_own(u).map_err(|_| decode_err("redirect URI", u)))
            .collect::<sqlx::Result<_>>()?,
        grant_types: grants
            .split(' ')
            .filter(|g| !g.is_empty())
            .map(|g| {
                g.parse::<GrantType>()
                    .map_err(|_| decode_err("grant type", g))
            })
            .collect::<sqlx::Result<_>>()?,
        scopes: Scopes::parse(&scopes).map_err(|_| decode_err("scopes", &scopes))?,
        first_party: r.flag("first_party")?,
        created_at: Timestamp::from_micros(r.int("created_at")?),
    })
}

/// The columns a row of either backend is read by.
trait RowGet {
    fn text(&self, c: &str) -> sqlx::Result<String>;
    fn int(&self, c: &str) -> sqlx::Result<i64>;
    fn flag(&self, c: &str) -> sqlx::Result<bool>;
    fn opt_text(&self, c: &str) -> sqlx::Result<Option<String>>;
}

macro_rules! row_get {
    ($t:ty) => {
        impl RowGet for $t {
            fn text(&self, c: &str) -> sqlx::Result<String> {
                self.try_get(c)
            }
            fn int(&self, c: &str) -> sqlx::Result<i64> {
                self.try_get(c)
            }
            fn flag(&self, c: &str) -> sqlx::Result<bool> {
                self.try_get(c)
            }
            fn opt_text(&self, c: &str) -> sqlx::Result<Option<String>> {
                self.try_get(c)
            }
        }
    };
}
row_get!(sqlx::sqlite::SqliteRow);
row_get!(sqlx::postgres::PgRow);

fn uris_text(c: &Client) -> String {
    c.redirect_uris
        .iter()
        .map(RedirectUri::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

fn grants_text(c: &Client) -> String {
    c.grant_types
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

pub async fn insert(tx: &mut Tx, c: &Client, secret_hash: Option<&str>) -> sqlx::Result<()> {
    on_tx!(tx, conn => sqlx::query(
        "insert into oauth_clients (id, name, kind, secret_hash, redirect_uris, grant_types, scopes,
                                    first_party, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)")
        .bind(c.id.to_string()).bind(&c.name).bind(c.kind.as_str()).bind(secret_hash)
        .bind(uris_text(c)).bind(grants_text(c)).bind(c.scopes.to_string())
        .bind(c.first_party).bind(c.created_at.micros())
        .execute(conn).await.map(drop))
}

/// Inserts a client, or brings an existing one with its id to `c`'s kind, name, redirect URIs,
/// grants, scopes and `first_party` (no secret; `created_at` kept): one statement, so that
/// replicas starting together all end on the same row.
pub async fn upsert_public(tx: &mut Tx, c: &Client) -> sqlx::Result<()> {
    on_tx!(tx, conn => sqlx::query(
        "insert into oauth_clients (id, name, kind, secret_hash, redirect_uris, grant_types, scopes,
                                    first_party, created_at, updated_at)
         values ($1, $2, 'public', null, $3, $4, $5, $6, $7, $7)
         on conflict (id) do update set name = excluded.name, kind = 'public', secret_hash = null,
             redirect_uris = excluded.redirect_uris, grant_types = excluded.grant_types,
             scopes = excluded.scopes, first_party = excluded.first_party,
             updated_at = excluded.updated_at")
        .bind(c.id.to_string()).bind(&c.name)
        .bind(uris_text(c)).bind(grants_text(c)).bind(c.scopes.to_string())
        .bind(c.first_party).bind(c.created_at.micros())
        .execute(conn).await.map(drop))
}

/// Every client, oldest first.
pub async fn list(db: &Db) -> sqlx::Result<Vec<Client>> {
    let sql: &str = concat!(
        "select ",
        columns!(),
        " from oauth_clients order by created_at, id"
    );
    on_db!(db, c => {
        let rows = sqlx::query(sql).fetch_all(c).await?;
        rows.iter().map(client_row).collect()
    })
}

/// A client and the hash of its secret (none for a public client).
pub async fn find(db: &Db, id: ClientId) -> sqlx::Result<Option<(Client, Option<String>)>> {
    let sql: &str = concat!(
        "select ",
        columns!(),
        ", secret_hash from oauth_clients where id = $1"
    );
    on_db!(db, c => {
        match sqlx::query(sql).bind(id.to_string()).fetch_optional(c).await? {
            None => Ok(None),
            Some(r) => Ok(Some((client_row(&r)?, r.try_get("secret_hash")?))),
        }
    })
}

/// True when `id` is a registered client's (a user with this id is its service account).
pub async fn exists(tx: &mut Tx, id: ClientId) -> sqlx::Result<bool> {
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar("select count(*) from oauth_clients where id = $1")
        .bind(id.to_string()).fetch_one(c).await)?;
    Ok(n > 0)
}

/// Replaces a confidential client's secret; false when there is no such client.
pub async fn set_secret(
    tx: &mut Tx,
    id: ClientId,
    secret_hash: &str,
    now: Timestamp,
) -> sqlx::Result<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "update oauth_clients set secret_hash = $1, updated_at = $2 where id = $3 and kind = 'confidential'")
        .bind(secret_hash).bind(now.micros()).bind(id.to_string())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Removes a client and its unredeemed codes and tickets; the caller ends its sessions.
pub async fn delete(tx: &mut Tx, id: ClientId) -> sqlx::Result<bool> {
    let id = id.to_string();
    on_tx!(tx, c => sqlx::query("delete from oauth_codes where client_id = $1")
        .bind(&id).execute(c).await.map(drop))?;
    on_tx!(tx, c => sqlx::query("delete from oauth_consents where client_id = $1")
        .bind(&id).execute(c).await.map(drop))?;
    let n = on_tx!(tx, c => sqlx::query("delete from oauth_clients where id = $1")
        .bind(&id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// What an authorization code or a consent ticket is bound to.
#[derive(Debug, Clone)]
pub struct Grant {
    pub client: ClientId,
    pub user: UserId,
    pub redirect_uri: String,
    /// The PKCE `code_challenge` (S256).
    pub challenge: String,
    pub scope: Scopes,
    /// When the user signed in (the token's `auth_time`), and whether with a second factor.
    pub auth_time: Timestamp,
    pub method: SignInMethod,
}

fn grant_row(r: &impl RowGet) -> sqlx::Result<Grant> {
    let client: String = r.text("client_id")?;
    let user: String = r.text("user_id")?;
    let scope: String = r.text("scope")?;
    Ok(Grant {
        client: client
            .parse()
            .map_err(|_| decode_err("client id", &client))?,
        user: user.parse().map_err(|_| decode_err("user id", &user))?,
        redirect_uri: r.text("redirect_uri")?,
        challenge: r.text("challenge")?,
        scope: Scopes::parse(&scope).map_err(|_| decode_err("scope", &scope))?,
        auth_time: Timestamp::from_micros(r.int("auth_time")?),
        method: SignInMethod::from_stored(r.flag("mfa")?, r.opt_text("amr")?.as_deref()),
    })
}

pub async fn insert_code(
    tx: &mut Tx,
    code_hash: &str,
    g: &Grant,
    expires_at: Timestamp,
) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query(
        "insert into oauth_codes (code_hash, client_id, user_id, redirect_uri, challenge, scope, auth_time, mfa, amr, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(code_hash).bind(g.client.to_string()).bind(g.user.to_string()).bind(&g.redirect_uri)
        .bind(&g.challenge).bind(g.scope.to_string()).bind(g.auth_time.micros()).bind(g.method.stored().0)
        .bind(g.method.stored().1).bind(expires_at.micros())
        .execute(c).await.map(drop))
}

/// Spends an unspent, unexpired code: only one of several concurrent redemptions wins (the
/// update is conditional on `used_at is null`). None: unknown, expired or already spent.
pub async fn redeem_code(
    tx: &mut Tx,
    code_hash: &str,
    now: Timestamp,
) -> sqlx::Result<Option<Grant>> {
    on_tx!(tx, c => {
        let row = sqlx::query(
            "update oauth_codes set used_at = $1
             where code_hash = $2 and used_at is null and expires_at > $1
             returning client_id, user_id, redirect_uri, challenge, scope, auth_time, mfa, amr")
            .bind(now.micros()).bind(code_hash).fetch_optional(c).await?;
        row.map(|r| grant_row(&r)).transpose()
    })
}

/// What a replayed code tells.
pub enum Replay {
    /// Not a spent code: unknown, or never redeemed (expired).
    Unknown,
    /// A spent code whose reuse was recorded before: only counted.
    Repeated,
    /// The first replay of a spent code, recorded now: its user and the session its first
    /// redemption started (if it did).
    First {
        user: UserId,
        session: Option<SessionId>,
    },
}

/// Records the first replay of a spent code (`reuse_at` is set once).
pub async fn mark_code_reused(
    tx: &mut Tx,
    code_hash: &str,
    now: Timestamp,
) -> sqlx::Result<Replay> {
    let row = on_tx!(tx, c => {
        let row = sqlx::query(
            "update oauth_codes set reuse_at = $1
             where code_hash = $2 and used_at is not null and reuse_at is null
             returning user_id, session_id")
            .bind(now.micros()).bind(code_hash).fetch_optional(c).await?;
        row.map(|r| -> sqlx::Result<(String, Option<String>)> {
            Ok((r.try_get("user_id")?, r.try_get("session_id")?))
        }).transpose()
    })?;
    if let Some((user, session)) = row {
        return Ok(Replay::First {
            user: user.parse().map_err(|_| decode_err("user id", &user))?,
            session: session
                .map(|s| s.parse().map_err(|_| decode_err("session id", &s)))
                .transpose()?,
        });
    }
    let spent: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "select count(*) from oauth_codes where code_hash = $1 and used_at is not null")
        .bind(code_hash).fetch_one(c).await)?;
    Ok(if spent > 0 {
        Replay::Repeated
    } else {
        Replay::Unknown
    })
}

/// Names the session a code's redemption started, so that a second redemption can end it.
pub async fn set_code_session(
    tx: &mut Tx,
    code_hash: &str,
    session: SessionId,
) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query("update oauth_codes set session_id = $1 where code_hash = $2")
        .bind(session.to_string()).bind(code_hash).execute(c).await.map(drop))
}

pub async fn insert_ticket(
    tx: &mut Tx,
    ticket_hash: &str,
    binding: &str,
    g: &Grant,
    state: Option<&str>,
    expires_at: Timestamp,
) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query(
        "insert into oauth_consents (ticket_hash, binding, user_id, client_id, redirect_uri, challenge, scope, state, auth_time, mfa, amr, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(ticket_hash).bind(binding).bind(g.user.to_string()).bind(g.client.to_string())
        .bind(&g.redirect_uri).bind(&g.challenge).bind(g.scope.to_string()).bind(state)
        .bind(g.auth_time.micros()).bind(g.method.stored().0).bind(g.method.stored().1).bind(expires_at.micros())
        .execute(c).await.map(drop))
}

/// Takes (deletes and returns) an unexpired consent ticket bound to this browser, with the
/// request's `state`.
pub async fn take_ticket(
    tx: &mut Tx,
    ticket_hash: &str,
    binding: &str,
    now: Timestamp,
) -> sqlx::Result<Option<(Grant, Option<String>)>> {
    on_tx!(tx, c => {
        let row = sqlx::query(
            "delete from oauth_consents where ticket_hash = $1 and binding = $2 and expires_at > $3
             returning client_id, user_id, redirect_uri, challenge, scope, auth_time, mfa, amr, state")
            .bind(ticket_hash).bind(binding).bind(now.micros()).fetch_optional(c).await?;
        row.map(|r| Ok((grant_row(&r)?, r.try_get("state")?))).transpose()
    })
}
