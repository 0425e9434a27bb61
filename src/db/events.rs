//! The security event log: logins, failures, token reuse and revocation, account changes.
//! `crate::audit` seals it into a hash chain.

use super::{Db, Tx, on_db, on_tx};
use crate::domain::Timestamp;
use crate::domain::audit::{Action, Outcome};

/// One security-relevant event. `detail` is free text chosen by the code, never user input
/// verbatim. It owns what it carries, so it can wait in the event writer's queue.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub action: Action,
    pub outcome: Outcome,
    /// `info`, `warning`, `high` or `critical`.
    pub severity: &'static str,
    pub actor_id: Option<String>,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
    pub at: Timestamp,
}

pub async fn insert(tx: &mut Tx, e: &NewEvent) -> sqlx::Result<()> {
    let id = uuid::Uuid::now_v7().to_string();
    on_tx!(tx, c => sqlx::query(
        "insert into security_events (id, at, action, outcome, actor_id, target, ip, request_id, detail, severity)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(id).bind(e.at.micros()).bind(e.action.as_str()).bind(e.outcome.as_str())
        .bind(e.actor_id.as_deref()).bind(e.target.as_deref()).bind(e.ip.as_deref())
        .bind(e.request_id.as_deref()).bind(e.detail.as_deref()).bind(e.severity)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Login attempts since `since`, counted by hour (0 = the hour starting at `since`) and outcome.
pub async fn logins_by_hour(db: &Db, since: Timestamp) -> sqlx::Result<Vec<(i64, String, i64)>> {
    use sqlx::Row;
    on_db!(db, p => {
        let rows = sqlx::query(
            "select (at - $1) / 3600000000 as hour, outcome, count(*) as n from security_events
             where action = 'auth.login' and at >= $1 group by 1, 2")
            .bind(since.micros()).fetch_all(p).await?;
        rows.iter().map(|r| Ok((r.try_get("hour")?, r.try_get("outcome")?, r.try_get("n")?))).collect()
    })
}
