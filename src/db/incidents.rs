//! Incidents, their notes, blocked addresses, and the event counts the detectors ask for.

use sqlx::Row;

use super::{Db, Tx, TxConn, decode_err, on_db, on_tx};
use crate::domain::Timestamp;
use crate::domain::audit::{Action, Outcome};
use crate::domain::incident::{Filter, Incident, Kind, Level, Link, Note, Status};

macro_rules! columns {
    () => {
        "id, kind, level, status, subject, description, reported_by, count, first_seen, last_seen, updated_at, requested_level, affected_systems, resolved_at, recurrence_of"
    };
}

macro_rules! incident_row {
    ($r:expr) => {{
        let r = $r;
        Incident {
            id: r.try_get("id")?,
            kind: named(r.try_get("kind")?)?,
            level: named(r.try_get("level")?)?,
            status: named(r.try_get("status")?)?,
            subject: r.try_get("subject")?,
            description: r.try_get("description")?,
            reported_by: r.try_get("reported_by")?,
            requested_level: r
                .try_get::<Option<String>, _>("requested_level")?
                .map(named)
                .transpose()?,
            affected_systems: systems_of(r.try_get("affected_systems")?)?,
            count: r.try_get("count")?,
            first_seen: Timestamp::from_micros(r.try_get("first_seen")?),
            last_seen: Timestamp::from_micros(r.try_get("last_seen")?),
            updated_at: Timestamp::from_micros(r.try_get("updated_at")?),
            resolved_at: r
                .try_get::<Option<i64>, _>("resolved_at")?
                .map(Timestamp::from_micros),
            recurrence_of: r.try_get("recurrence_of")?,
        }
    }};
}

/// A stored name of a closed vocabulary (a kind, a level, a status).
fn named<T>(raw: String) -> sqlx::Result<T>
where
    T: std::str::FromStr<Err = crate::domain::vocabulary::Unknown>,
{
    raw.parse()
        .map_err(|e: crate::domain::vocabulary::Unknown| decode_err(e.what, &raw))
}

/// The stored list of affected systems (a JSON array of names).
fn systems_of(raw: String) -> sqlx::Result<Vec<String>> {
    serde_json::from_str(&raw).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A list of affected systems as it is stored.
fn systems_json<S: AsRef<str>>(names: &[S]) -> String {
    let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned())
}

/// What a new incident says.
pub struct NewIncident<'a> {
    pub kind: Kind,
    pub level: Level,
    pub subject: Option<&'a str>,
    pub description: &'a str,
    pub reported_by: Option<&'a str>,
    /// The level a report asked for, when `level` is lower (triage decides).
    pub requested_level: Option<Level>,
    pub affected_systems: &'a [&'a str],
}

/// Raises the unresolved incident of this (kind, subject) again (`by` more occurrences), if
/// there is one.
pub async fn raise_again(
    tx: &mut Tx,
    kind: Kind,
    subject: &str,
    now: Timestamp,
    by: i64,
) -> sqlx::Result<Option<Incident>> {
    on_tx!(tx, c => {
        let r = sqlx::query(concat!(
            "update incidents set count = count + $4, last_seen = $1, updated_at = $1
             where kind = $2 and subject = $3 and status <> 'resolved' returning ", columns!()))
            .bind(now.micros()).bind(kind.as_str()).bind(subject).bind(by).fetch_optional(c).await?;
        r.map(|r| Ok::<_, sqlx::Error>(incident_row!(&r))).transpose()
    })
}

/// The incident of this (kind, subject) resolved last, at or after `since` (a recurrence's
/// predecessor).
pub async fn last_resolved(
    tx: &mut Tx,
    kind: Kind,
    subject: &str,
    since: Timestamp,
) -> sqlx::Result<Option<Incident>> {
    on_tx!(tx, c => {
        let r = sqlx::query(concat!("select ", columns!(), " from incidents
            where kind = $1 and subject = $2 and status = 'resolved' and resolved_at >= $3
            order by resolved_at desc, id desc limit 1"))
            .bind(kind.as_str()).bind(subject).bind(since.micros()).fetch_optional(c).await?;
        r.map(|r| Ok(incident_row!(&r))).transpose()
    })
}

/// Opens an incident with `by` occurrences, a recurrence of `recurrence_of` when given.
pub async fn open(
    tx: &mut Tx,
    n: &NewIncident<'_>,
    recurrence_of: Option<&str>,
    now: Timestamp,
    by: i64,
) -> sqlx::Result<Incident> {
    let i = Incident {
        id: uuid::Uuid::now_v7().to_string(),
        kind: n.kind,
        level: n.level,
        status: Status::Open,
        subject: n.subject.map(str::to_owned),
        description: n.description.to_owned(),
        reported_by: n.reported_by.map(str::to_owned),
        requested_level: n.requested_level,
        affected_systems: n.affected_systems.iter().map(|s| (*s).to_owned()).collect(),
        count: by,
        first_seen: now,
        last_seen: now,
        updated_at: now,
        resolved_at: None,
        recurrence_of: recurrence_of.map(str::to_owned),
    };
    on_tx!(tx, c => sqlx::query(concat!("insert into incidents (", columns!(), ") values ($1, $2, $3, $4, $5, $6, $7, $9, $8, $8, $8, $10, $11, null, $12)"))
        .bind(&i.id).bind(i.kind.as_str()).bind(i.level.as_str()).bind(i.status.as_str()).bind(i.subject.as_deref())
        .bind(&i.description).bind(i.reported_by.as_deref()).bind(now.micros()).bind(by)
        .bind(i.requested_level.map(Level::as_str)).bind(systems_json(&i.affected_systems))
        .bind(i.recurrence_of.as_deref())
        .execute(c).await.map(drop))?;
    Ok(i)
}

/// The chain of recurrences `id` belongs to, oldest first, itself included: the incidents it
/// recurs of (following `recurrence_of`) and those recurring of it, at most `depth` links each
/// way.
pub async fn chain(db: &Db, id: &str, depth: i64) -> sqlx::Result<Vec<Link>> {
    on_db!(db, p => {
        let rows = sqlx::query(
            "with recursive
               up(id, recurrence_of, depth) as (
                 select id, recurrence_of, 0 from incidents where id = $1
                 union all
                 select i.id, i.recurrence_of, up.depth + 1 from incidents i join up on i.id = up.recurrence_of
                 where up.depth < $2),
               down(id, depth) as (
                 select id, 0 from incidents where id = $1
                 union all
                 select i.id, down.depth + 1 from incidents i join down on i.recurrence_of = down.id
                 where down.depth < $2)
             select id, level, status, first_seen, resolved_at, recurrence_of from incidents
             where id in (select id from up union select id from down)
             order by first_seen, id")
            .bind(id).bind(depth).fetch_all(p).await?;
        rows.iter().map(|r| Ok(Link {
            id: r.try_get("id")?,
            level: named(r.try_get("level")?)?,
            status: named(r.try_get("status")?)?,
            first_seen: Timestamp::from_micros(r.try_get("first_seen")?),
            resolved_at: r.try_get::<Option<i64>, _>("resolved_at")?.map(Timestamp::from_micros),
            recurrence_of: r.try_get("recurrence_of")?,
        })).collect()
    })
}

/// Whether an incident of `kind` is open or contained.
pub async fn unresolved_of_kind(tx: &mut Tx, kind: Kind) -> sqlx::Result<bool> {
    on_tx!(tx, c => {
        let r = sqlx::query("select 1 from incidents where kind = $1 and status <> 'resolved' limit 1")
            .bind(kind.as_str()).fetch_optional(c).await?;
        Ok(r.is_some())
    })
}

pub async fn find(tx: &mut Tx, id: &str) -> sqlx::Result<Option<Incident>> {
    on_tx!(tx, c => {
        let r = sqlx::query(concat!("select ", columns!(), " from incidents where id = $1"))
            .bind(id).fetch_optional(c).await?;
        r.map(|r| Ok(incident_row!(&r))).transpose()
    })
}

/// The `like` pattern that finds `name` in a stored list: the name with its JSON quotes, so that
/// `auth` does not match `oauth` or `auth2`, and `_` escaped (it is a wildcard of `like`). The
/// escape character is `!` (`escape '!'`): unlike a backslash, it means the same on SQLite and on
/// PostgreSQL whatever `standard_conforming_strings` says.
fn system_pattern(name: &str) -> String {
    format!(
        "%\"{}\"%",
        name.replace('!', "!!")
            .replace('%', "!%")
            .replace('_', "!_")
    )
}

/// A page of incidents, newest first, filtered as asked.
pub async fn list(
    db: &Db,
    filter: Filter<'_>,
    before: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<Incident>> {
    let before = before.unwrap_or("g");
    let system = filter.system.map(system_pattern);
    on_db!(db, p => {
        let rows = sqlx::query(concat!("select ", columns!(), " from incidents
            where id < $1 and ($2 is null or level = $2) and ($3 is null or status = $3)
              and ($5 is null or affected_systems like $5 escape '!')
            order by id desc limit $4"))
            .bind(before).bind(filter.level.map(Level::as_str)).bind(filter.status.map(Status::as_str))
            .bind(limit).bind(system)
            .fetch_all(p).await?;
        rows.iter().map(|r| Ok(incident_row!(r))).collect()
    })
}

/// Sets an incident's status, and its level and affected systems when given; resolving it
/// stamps `resolved_at` (the start of its recurrence window).
pub async fn set_status(
    tx: &mut Tx,
    id: &str,
    status: Status,
    level: Option<Level>,
    systems: Option<&[String]>,
    now: Timestamp,
) -> sqlx::Result<()> {
    let systems = systems.map(systems_json);
    on_tx!(tx, c => sqlx::query("update incidents set status = $1, updated_at = $2,
            level = coalesce($4, level), affected_systems = coalesce($5, affected_systems),
            resolved_at = case when $1 = 'resolved' then $2 else resolved_at end where id = $3")
        .bind(status.as_str()).bind(now.micros()).bind(id).bind(level.map(Level::as_str)).bind(systems.as_deref())
        .execute(c).await.map(drop))
}

pub async fn add_note(
    tx: &mut Tx,
    incident: &str,
    author: Option<&str>,
    status: Status,
    note: &str,
    now: Timestamp,
) -> sqlx::Result<()> {
    on_tx!(tx, c => sqlx::query("insert into incident_notes (id, incident_id, at, author_id, status, note) values ($1, $2, $3, $4, $5, $6)")
        .bind(uuid::Uuid::now_v7().to_string()).bind(incident).bind(now.micros()).bind(author).bind(status.as_str()).bind(note)
        .execute(c).await.map(drop))
}

/// Locks an incident's row for the rest of the transaction on PostgreSQL (SQLite's
/// `BEGIN IMMEDIATE` already serialises writers), so that two updates read it in turn.
pub async fn lock(tx: &mut Tx, id: &str) -> sqlx::Result<()> {
    if let TxConn::Postgres(t) = &mut tx.conn {
        sqlx::query("select id from incidents where id = $1 for update")
            .bind(id)
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

/// The texts of an incident's notes written by the server itself (no author).
pub async fn system_notes(tx: &mut Tx, incident: &str) -> sqlx::Result<Vec<String>> {
    on_tx!(tx, c => sqlx::query_scalar(
        "select note from incident_notes where incident_id = $1 and author_id is null")
        .bind(incident).fetch_all(c).await)
}

pub async fn notes(db: &Db, incident: &str) -> sqlx::Result<Vec<Note>> {
    on_db!(db, p => {
        let rows = sqlx::query("select at, author_id, status, note from incident_notes where incident_id = $1 order by at, id")
            .bind(incident).fetch_all(p).await?;
        rows.iter().map(|r| Ok(Note {
            at: Timestamp::from_micros(r.try_get("at")?),
            author_id: r.try_get("author_id")?,
            status: named(r.try_get("status")?)?,
            note: r.try_get("note")?,
        })).collect()
    })
}

/// Blocks `cidr` until `expires_at` (a longer block of the same network wins).
pub async fn block(
    tx: &mut Tx,
    cidr: &str,
    reason: &str,
    by: Option<&str>,
    now: Timestamp,
    expires_at: Timestamp,
) -> sqlx::Result<()> {
    tx.blocks_changed();
    on_tx!(tx, c => sqlx::query(
        "insert into blocked_addresses (cidr, reason, created_by, created_at, expires_at) values ($1, $2, $3, $4, $5)
         on conflict (cidr) do update set reason = excluded.reason, created_by = excluded.created_by,
           created_at = excluded.created_at,
           expires_at = case when excluded.expires_at > blocked_addresses.expires_at then excluded.expires_at else blocked_addresses.expires_at end")
        .bind(cidr).bind(reason).bind(by).bind(now.micros()).bind(expires_at.micros())
        .execute(c).await.map(drop))
}

/// Blocks in force: (cidr, expires_at).
pub async fn active_blocks(db: &Db, now: Timestamp) -> sqlx::Result<Vec<(String, Timestamp)>> {
    on_db!(db, p => {
        let rows = sqlx::query("select cidr, expires_at from blocked_addresses where expires_at > $1")
            .bind(now.micros()).fetch_all(p).await?;
        rows.iter().map(|r| Ok((r.try_get("cidr")?, Timestamp::from_micros(r.try_get("expires_at")?)))).collect()
    })
}

/// How many `action` events with either of `outcomes` `actor` caused in `[since, until]`,
/// counted up to `cap` (a rule only asks whether a threshold is reached: the cost stays bounded
/// under a flood). One pass over the actor's index range, whichever outcome a row has.
pub async fn count_by_actor(
    tx: &mut Tx,
    action: Action,
    outcomes: [Outcome; 2],
    actor: &str,
    since: Timestamp,
    until: Timestamp,
    cap: i64,
) -> sqlx::Result<i64> {
    on_tx!(tx, c => sqlx::query_scalar(
        "select count(*) from (select 1 from security_events where action = $1 and actor_id = $2
           and outcome in ($3, $4) and at >= $5 and at <= $6 limit $7) as recent")
        .bind(action.as_str()).bind(actor).bind(outcomes[0].as_str()).bind(outcomes[1].as_str()).bind(since.micros())
        .bind(until.micros()).bind(cap).fetch_one(c).await)
}

/// How many distinct targets the newest `action`/`outcome` events from address `ip` in
/// `[since, until]` had, looking at no more than `scan` of them (bounded under a flood).
pub async fn distinct_targets_by_ip(
    tx: &mut Tx,
    action: Action,
    outcome: Outcome,
    ip: &str,
    since: Timestamp,
    until: Timestamp,
    scan: i64,
) -> sqlx::Result<i64> {
    on_tx!(tx, c => sqlx::query_scalar(
        "select count(distinct target) from (select target from security_events
           where action = $1 and ip = $2 and outcome = $3 and at >= $4 and at <= $5
           order by at desc limit $6) as recent")
        .bind(action.as_str()).bind(ip).bind(outcome.as_str()).bind(since.micros()).bind(until.micros()).bind(scan).fetch_one(c).await)
}

/// Unresolved user reports by one account, in a write transaction. On PostgreSQL the reporter's
/// reports are serialised first (a transaction-scoped advisory lock on the account), so two
/// parallel reports cannot both count below the cap; SQLite's `BEGIN IMMEDIATE` already does.
pub async fn open_reports_by(tx: &mut Tx, reporter: &str) -> sqlx::Result<i64> {
    if let TxConn::Postgres(t) = &mut tx.conn {
        sqlx::query("select pg_advisory_xact_lock(7270002, hashtext($1))")
            .bind(reporter)
            .execute(&mut **t)
            .await?;
    }
    on_tx!(tx, c => sqlx::query_scalar(
        "select count(*) from incidents where kind = 'user_report' and reported_by = $1 and status <> 'resolved'")
        .bind(reporter).fetch_one(c).await)
}

/// Unresolved incidents counted by (level, status), for the security summary.
pub async fn unresolved_by_level(db: &Db) -> sqlx::Result<Vec<(Level, Status, i64)>> {
    on_db!(db, p => {
        let rows = sqlx::query(
            "select level, status, count(*) as n from incidents where status <> 'resolved'
             group by level, status")
            .fetch_all(p).await?;
        rows.iter().map(|r| Ok((named(r.try_get("level")?)?, named(r.try_get("status")?)?, r.try_get("n")?))).collect()
    })
}

/// The events tied to an incident, in its time window (ten minutes before it was first seen,
/// until a minute after it was last raised or changed): those naming it (its opening, report,
/// status changes) and those of its subject (an account or an address: the failures that raised
/// it, the containment of it). Newest first, at most `limit`. The window bounds the scan by the
/// index on `at`, whatever the size of the trail.
pub async fn related_events(
    db: &Db,
    incident: &Incident,
    limit: i64,
) -> sqlx::Result<Vec<super::audit::AuditRow>> {
    let target = format!("incident:{}", incident.id);
    let subject = incident.subject.as_deref();
    let since = incident.first_seen.micros() - 600 * 1_000_000;
    let until = incident.last_seen.max(incident.updated_at).micros() + 60 * 1_000_000;
    on_db!(db, p => {
        let rows = sqlx::query(
            "select id, seq, at, action, outcome, severity, actor_id, target, ip, request_id, detail, prev_hash, hash
             from security_events
             where at >= $3 and at <= $4
               and (target = $1 or ($2 is not null and (actor_id = $2 or ip = $2 or target = $2)))
             order by at desc, id desc limit $5")
            .bind(&target).bind(subject).bind(since).bind(until).bind(limit).fetch_all(p).await?;
        rows.iter().map(super::audit::row).collect()
    })
}
