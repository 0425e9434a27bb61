//! The security event log: logins, failures, token reuse and revocation, account changes.
//! (The tamper-evident audit trail will be built on it.)

use super::{Tx, on_tx};
use crate::domain::Timestamp;

/// One security-relevant event. `detail` is free text chosen by the code, never user input verbatim.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub action: &'a str,
    pub outcome: &'a str,
    /// `info`, `warning`, `high` or `critical`.
    pub severity: &'a str,
    pub actor_id: Option<String>,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
    pub at: Timestamp,
}

/// An event owned, for the queue of events written off the request path.
#[derive(Debug, Clone)]
pub struct OwnedEvent {
    pub action: String,
    pub outcome: String,
    pub severity: &'static str,
    pub actor_id: Option<String>,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
    pub at: Timestamp,
}

impl OwnedEvent {
    pub fn borrow(&self) -> NewEvent<'_> {
        NewEvent {
            action: &self.action,
            outcome: &self.outcome,
            severity: self.severity,
            actor_id: self.actor_id.clone(),
            target: self.target.clone(),
            ip: self.ip.clone(),
            request_id: self.request_id.clone(),
            detail: self.detail.clone(),
            at: self.at,
        }
    }
}

pub async fn insert(tx: &mut Tx, e: &NewEvent<'_>) -> sqlx::Result<()> {
    let id = uuid::Uuid::now_v7().to_string();
    on_tx!(tx, c => sqlx::query(
        "insert into security_events (id, at, action, outcome, actor_id, target, ip, request_id, detail, severity)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(id).bind(e.at.micros()).bind(e.action).bind(e.outcome)
        .bind(e.actor_id.as_deref()).bind(e.target.as_deref()).bind(e.ip.as_deref())
        .bind(e.request_id.as_deref()).bind(e.detail.as_deref()).bind(e.severity)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}
