//! Use cases: each checks who may do it, does it in one transaction and records the security event.
//! No HTTP types here.

pub mod access_review;
pub mod auth;
pub mod containment;
pub mod incidents;
pub mod keys;
pub mod readiness;
pub mod resources;
pub mod secrets;
pub mod security;
pub mod users;

use crate::db::{self, Tx};
use crate::domain::Timestamp;
use crate::domain::audit;

/// Records a refusal of the authorization policy (see `http::middleware::record_denials`).
pub async fn record_denial(
    app: &crate::state::AppState,
    d: &crate::authz::Denial,
    meta: &RequestMeta,
) -> anyhow::Result<()> {
    let outcome = match d.decision {
        crate::authz::Decision::Hide => audit::Outcome::Hidden,
        _ => audit::Outcome::Denied,
    };
    let mut e = Event::new(audit::Action::AuthzDenied, outcome).detail(d.action.name());
    if let Some(a) = d.actor {
        e = e.actor(a);
    }
    if let Some(t) = &d.target {
        e = e.target(t);
    }
    e.emit(app, meta).await;
    Ok(())
}

/// Records that the shared store (Redis) stopped or started answering. An outage is critical:
/// until it ends, each replica throttles logins on its own (the detector opens a high incident).
pub async fn shared_state_changed(app: &crate::state::AppState, up: bool, meta: &RequestMeta) {
    let e = if up {
        Event::new(audit::Action::SharedStateRestored, audit::Outcome::Success)
            .detail("Redis answers again: rate limits and login counters are shared again")
    } else {
        Event::new(audit::Action::SharedStateUnavailable, audit::Outcome::Failure)
            .critical()
            .detail("Redis does not answer: each replica now applies rate limits and login throttling on its own")
    };
    e.target("redis").emit(app, meta).await;
}

/// Where a request came from, for the security event log.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<std::net::IpAddr>,
    pub request_id: Option<String>,
}

/// Whether a refusal of the login guard aimed at `key` (an account) is written as an `action`
/// event: at most `REFUSAL_EVENTS` per account and window (`limits::login::RefusalEvents`), so
/// the rows grow with the accounts attacked, not with the requests; one not written is counted
/// in `security_events_skipped_total`. `Some(note)`: what the event's detail ends with.
pub(crate) fn refusal_recorded(
    app: &crate::state::AppState,
    action: audit::Action,
    key: &str,
) -> Option<&'static str> {
    use crate::limits::login::REFUSAL_EVENTS;
    match app.refusals.record(action.as_str(), key) {
        None => {
            app.metrics.event_skipped(action);
            None
        }
        Some(n) if n == REFUSAL_EVENTS => Some(
            "; the last recorded for this account within 10 minutes, later ones are only counted",
        ),
        Some(_) => Some(""),
    }
}

/// A security event about to be recorded.
pub(crate) struct Event {
    pub action: audit::Action,
    pub outcome: audit::Outcome,
    pub severity: &'static str,
    pub actor: Option<String>,
    pub target: Option<String>,
    pub detail: Option<String>,
}

impl Event {
    pub fn new(action: audit::Action, outcome: audit::Outcome) -> Self {
        Self {
            action,
            outcome,
            severity: "info",
            actor: None,
            target: None,
            detail: None,
        }
    }
    pub fn actor(mut self, a: impl ToString) -> Self {
        self.actor = Some(a.to_string());
        self
    }
    pub fn target(mut self, t: impl ToString) -> Self {
        self.target = Some(t.to_string());
        self
    }
    /// Marks an event that needs a person's attention now (data integrity, key faults).
    pub fn critical(mut self) -> Self {
        self.severity = "critical";
        self
    }
    /// Marks an event worth a look (logged at warn level): a stored value rewritten by a read.
    pub fn warning(mut self) -> Self {
        self.severity = "warning";
        self
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }

    fn into_row(self, meta: &RequestMeta) -> db::events::NewEvent {
        if self.severity == "info" {
            tracing::info!(target: "security", action = self.action.as_str(), outcome = self.outcome.as_str(), severity = self.severity, actor = ?self.actor, target_id = ?self.target, "security event");
        } else {
            tracing::warn!(target: "security", action = self.action.as_str(), outcome = self.outcome.as_str(), severity = self.severity, actor = ?self.actor, target_id = ?self.target, "security event");
        }
        db::events::NewEvent {
            action: self.action,
            outcome: self.outcome,
            severity: self.severity,
            actor_id: self.actor,
            target: self.target,
            ip: meta.ip.map(|ip| ip.to_string()),
            request_id: meta.request_id.clone(),
            detail: self.detail,
            at: Timestamp::now(),
        }
    }

    /// Queues an event that goes with no change (a refusal, a failed login) for the event
    /// writer: the request does not wait for the disk. Waits only when the queue is full.
    pub async fn emit(self, app: &crate::state::AppState, meta: &RequestMeta) {
        app.events.send(self.into_row(meta)).await;
    }

    /// Appends the event in the caller's transaction, so it is recorded exactly when the change is.
    pub async fn record(self, tx: &mut Tx, meta: &RequestMeta) -> sqlx::Result<()> {
        db::events::insert(tx, &self.into_row(meta)).await
    }
}
