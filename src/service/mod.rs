//! Use cases: each checks who may do it, does it in one transaction and records the security event.
//! No HTTP types here.

pub mod access_review;
pub mod audit;
pub mod auth;
pub mod containment;
pub mod context;
pub mod import;
pub mod incidents;
pub mod keys;
pub mod mfa;
pub mod oauth;
pub mod passkeys;
pub mod readiness;
pub mod resources;
pub mod secrets;
pub mod security;
pub mod users;

use audit::{Event, RequestMeta};
use context::{Guards, Sinks};

/// Records a refusal of the authorization policy (see `http::middleware::record_denials`).
pub async fn record_denial(
    sinks: &Sinks,
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
    e.emit(&sinks.events, meta).await;
    Ok(())
}

/// Records that the shared store (Redis) stopped or started answering. An outage is critical:
/// until it ends, each replica throttles logins on its own (the detector opens a high incident).
pub async fn shared_state_changed(sinks: &Sinks, up: bool, meta: &RequestMeta) {
    let e = if up {
        Event::new(audit::Action::SharedStateRestored, audit::Outcome::Success)
            .detail("Redis answers again: rate limits and login counters are shared again")
    } else {
        Event::new(audit::Action::SharedStateUnavailable, audit::Outcome::Failure)
            .critical()
            .detail("Redis does not answer: each replica now applies rate limits and login throttling on its own")
    };
    e.target("redis").emit(&sinks.events, meta).await;
}

/// Whether a refusal of the login guard aimed at `key` (an account) is written as an `action`
/// event: at most `REFUSAL_EVENTS` per account and window (`limits::login::RefusalEvents`), so
/// the rows grow with the accounts attacked, not with the requests; one not written is counted
/// in `security_events_skipped_total`. `Some(note)`: what the event's detail ends with.
pub(crate) fn refusal_recorded(
    guards: &Guards,
    sinks: &Sinks,
    action: audit::Action,
    key: &str,
) -> Option<&'static str> {
    use crate::limits::login::REFUSAL_EVENTS;
    match guards.refusals.record(action.as_str(), key) {
        None => {
            sinks.metrics.event_skipped(action);
            None
        }
        Some(n) if n == REFUSAL_EVENTS => Some(
            "; the last recorded for this account within 10 minutes, later ones are only counted",
        ),
        Some(_) => Some(""),
    }
}
