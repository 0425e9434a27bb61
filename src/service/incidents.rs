//! Incidents: detectors that read the audit trail as it is sealed, user reports, and the
//! open -> contained -> resolved workflow with notes. Levels: low, medium, high, critical.
//!
//! | kind | raised when | level | affected systems | automatic containment |
//! |---|---|---|---|---|
//! | brute_force | 10 failed logins on one account in 10 minutes (guesses the login guard refused count) | high | auth | (the login guard already slows the account) |
//! | credential_stuffing | failed logins on 10 different accounts from one address in 10 minutes (one incident per IPv6 /64) | high | auth, network | block the address, an IPv6 address's /64 (IMANGOR_CONTAIN_STUFFING_BLOCK seconds, default 900) |
//! | refresh_reuse | a refresh token spent while its session was live presented again, once per session (`sessions.reuse_at`), even if the session was revoked after the rotation; a token of an ended session is never spent, so it raises nothing; a further replay is refused, only counted | high | auth, sessions | the session is revoked; with IMANGOR_CONTAIN_REFRESH_REUSE=all, every session of the user |
//! | recovery_code_new_address | a recovery code signs in from an address the account never signed in from (the login guard's known addresses) | medium | auth, mfa | |
//! | authz_probing | 20 refusals of the policy for one account in 10 minutes | medium | authz | |
//! | forged_tokens | 50 access tokens that fail verification from one address (an IPv6 /64) in a minute | high | auth, tokens | |
//! | role_escalation | an account made admin | high | users, authz | |
//! | shared_state_unavailable | Redis stops answering | high | redis, rate_limits | |
//! | data_integrity | a stored secret fails authentication | critical | secrets, keys | |
//! | audit_tampering | the audit chain check (the sealer, or a server's periodic walk) finds an edited, removed, reordered or forged row, checkpoint or signed head; once per process and problem, one unresolved incident across replicas (no count kept) | critical | audit | the sealer signs nothing more (it still seals, and the detectors still run) |
//! | user_report | `POST /api/v1/incidents` | as reported (default medium); a plain user's above one level below the alert level (at most medium) is stored at that level, the level asked kept as `requested_level` | as reported | |
//!
//! A detector raises the unresolved incident of the same (kind, subject) again (its count grows)
//! instead of opening another. The subject is what the detector keys on: an account id
//! (brute_force, refresh_reuse, totp_guessing, recovery_code_new_address, authz_probing,
//! role_escalation), an address (credential_stuffing,
//! forged_tokens: an IPv4 address, an IPv6 /64), `secret:ID` (data_integrity), `redis`
//! (shared_state_unavailable), `audit_trail` (audit_tampering). When no incident of that (kind,
//! subject) is unresolved but one was resolved within IMANGOR_INCIDENT_RECURRENCE_DAYS, the new
//! incident is its recurrence (`raise`). Reports have no subject.

use super::audit::{self, Event, RequestMeta};
use crate::authz::{self, Action, Authorized, Principal};
use crate::config::Config;
use crate::db::Tx;
use crate::db::audit::AuditRow;
use crate::db::incidents::{self, NewIncident};
use crate::domain::Timestamp;
use crate::domain::incident::{
    Filter, Incident, Kind, Level, Link, Note, Status, recurrence_level,
};
use crate::error::{AppError, Result, ValidationError};
use crate::infra::alerts::Alert;
use crate::service::context::{Guards, Sinks, Store};

pub use crate::config::Containment;
const WINDOW_S: u64 = 600;
pub const BRUTE_FORCE_FAILURES: i64 = 10;
pub const STUFFING_ACCOUNTS: i64 = 10;
pub const PROBING_DENIALS: i64 = 20;
/// Wrong second-factor codes on one account within the window (TOTP guessing).
pub const TOTP_GUESSES: i64 = 10;
/// Unresolved reports one account may have at once.
pub const MAX_OPEN_REPORTS: i64 = 5;
/// The highest level a plain user's report is ever stored at (lower when the alert level is
/// `medium` or `low`: `user_report_max_level`); what it asked above waits for triage.
pub const USER_REPORT_MAX_LEVEL: Level = Level::Medium;
/// Names in `affected_systems`, at most.
pub const MAX_SYSTEMS: usize = 16;

/// An incident a detector opened or raised again, for what happens after commit (metrics, alerts).
#[derive(Debug, Clone)]
pub struct Raised {
    pub incident: Incident,
    pub opened: bool,
    /// Occurrences this raise stands for.
    pub occurrences: i64,
}

/// What the detectors act on besides the events: the automatic containment, and the window in
/// which an incident of a resolved incident's (kind, subject) is its recurrence.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub contain: Containment,
    /// IMANGOR_INCIDENT_RECURRENCE_DAYS (0: no recurrence is linked).
    pub recurrence_days: u64,
}

impl Rules {
    pub fn of(config: &Config) -> Rules {
        Rules {
            contain: config.containment,
            recurrence_days: config.incident_recurrence_days,
        }
    }
}

/// A detector's incident for `new.subject`: the unresolved one of its (kind, subject) raised
/// again, or a new one. A new one whose (kind, subject) had an incident resolved within the
/// recurrence window is its recurrence: it links to the one resolved last (`recurrence_of`), is
/// raised one level (`recurrence_level`, at most critical), and says so in its opening event
/// and in a note of its own.
async fn raise(
    tx: &mut Tx,
    mut new: NewIncident<'_>,
    now: Timestamp,
    by: i64,
    rules: &Rules,
    out: &mut Vec<Raised>,
) -> sqlx::Result<Incident> {
    // Without a subject there is nothing to raise again nor to recur of (every detector names one).
    if let Some(subject) = new.subject
        && let Some(incident) = incidents::raise_again(tx, new.kind, subject, now, by).await?
    {
        // A repeat only counts (a flood must not double the trail).
        out.push(Raised {
            incident: incident.clone(),
            opened: false,
            occurrences: by,
        });
        return Ok(incident);
    }
    // The label `drill` only for what a drill sets off: one of its detectors, about a drill
    // address or a drill account (an event from a drill address is not enough: a key holder's
    // traffic must not hide a real account's incident, nor a role change or a broken secret).
    new.drill = new.drill && drill_subject(tx, new.kind, new.subject).await?;
    // A drill's incident recurs of nothing (and `last_resolved` never answers a drill's).
    let previous = match new.subject {
        Some(subject) if rules.recurrence_days > 0 && !new.drill => {
            let window_us = (rules.recurrence_days as i64).saturating_mul(86_400_000_000);
            let since = Timestamp::from_micros(now.micros().saturating_sub(window_us));
            incidents::last_resolved(tx, new.kind, subject, since).await?
        }
        _ => None,
    };
    let detected = new.level;
    if let Some(p) = &previous {
        new.level = recurrence_level(detected, p.level);
    }
    let incident =
        incidents::open(tx, &new, previous.as_ref().map(|p| p.id.as_str()), now, by).await?;
    let mut detail = format!("{} ({})", incident.kind, incident.level);
    if let Some(p) = &previous {
        let link = recurrence_note(p, detected, incident.level);
        incidents::add_note(tx, &incident.id, None, Status::Open, &link, now).await?;
        detail.push_str(&format!(", recurrence of incident:{}", p.id));
    }
    Event::new(audit::Action::IncidentOpen, audit::Outcome::Success)
        .target(format!("incident:{}", incident.id))
        .detail(detail)
        .record(tx, &RequestMeta::default())
        .await?;
    out.push(Raised {
        incident: incident.clone(),
        opened: true,
        occurrences: by,
    });
    Ok(incident)
}

/// The note a recurrence opens with: which incident it recurs of, when that was resolved, and
/// the level it was raised to.
fn recurrence_note(previous: &Incident, detected: Level, level: Level) -> String {
    let resolved = previous
        .resolved_at
        .map_or_else(|| "?".to_owned(), Timestamp::rfc3339);
    format!(
        "recurrence of incident {} (resolved {resolved}, at {}): raised from {detected} to {level}",
        previous.id, previous.level
    )
}

/// The count rules' subjects in a batch: (rule, subject) -> (events, the newest of them).
type Groups<'a> = Vec<((Kind, &'a str), (i64, &'a AuditRow))>;

fn group<'a>(groups: &mut Groups<'a>, rule: Kind, subject: &'a str, row: &'a AuditRow) {
    match groups.iter_mut().find(|(k, _)| *k == (rule, subject)) {
        Some((_, (n, last))) => {
            *n += 1;
            *last = row;
        }
        None => groups.push(((rule, subject), (1, row))),
    }
}

/// How many of a group's `n` events came at or past a `threshold` that `total` events (the
/// group's included) reached.
fn occurrences(total: i64, threshold: i64, n: i64) -> i64 {
    if total < threshold {
        0
    } else {
        n.min(total - threshold + 1)
    }
}

/// Runs every rule on a batch of newly sealed rows, in the sealing transaction. Count rules are
/// evaluated once per (rule, subject) of the batch, at its newest event, so a flood costs a few
/// queries per batch rather than per event.
pub async fn detect(
    tx: &mut Tx,
    rows: &[AuditRow],
    rules: &Rules,
    out: &mut Vec<Raised>,
) -> sqlx::Result<()> {
    use audit::{Action as A, Outcome as O};
    let contain = &rules.contain;
    let mut groups: Groups = Vec::new();
    for row in rows {
        match names(row) {
            // A guess the login guard refused (429) is still a guess on that account.
            (Some(A::AuthLogin), Some(O::Throttled)) => {
                if let Some(actor) = &row.actor_id {
                    group(&mut groups, Kind::BruteForce, actor, row);
                }
            }
            (Some(A::AuthLogin), Some(O::Failure)) => {
                if let Some(actor) = &row.actor_id {
                    group(&mut groups, Kind::BruteForce, actor, row);
                }
                if let Some(ip) = &row.ip {
                    group(&mut groups, Kind::CredentialStuffing, ip, row);
                }
            }
            (Some(A::AuthzDenied), _) => {
                if let Some(actor) = &row.actor_id {
                    group(&mut groups, Kind::AuthzProbing, actor, row);
                }
            }
            (Some(A::MfaVerify), Some(O::Failure | O::Throttled)) => {
                if let Some(actor) = &row.actor_id {
                    group(&mut groups, Kind::TotpGuessing, actor, row);
                }
            }
            _ => single(tx, row, rules, out).await?,
        }
    }
    for ((rule, subject), (n, last)) in groups {
        let at = Timestamp::from_micros(last.at);
        let since = Timestamp::from_micros(last.at - (WINDOW_S as i64) * 1_000_000);
        match rule {
            Kind::BruteForce => {
                let cap = BRUTE_FORCE_FAILURES + n;
                // Guesses the login guard refused count with the failures.
                let outcomes = [O::Failure, O::Throttled];
                let total =
                    incidents::count_by_actor(tx, A::AuthLogin, outcomes, subject, since, at, cap)
                        .await?;
                let occ = occurrences(total, BRUTE_FORCE_FAILURES, n);
                if occ > 0 {
                    let d = format!(
                        "{BRUTE_FORCE_FAILURES} or more failed or refused logins on one account within 10 minutes"
                    );
                    raise(
                        tx,
                        NewIncident {
                            kind: rule,
                            level: Level::High,
                            subject: Some(subject),
                            description: &d,
                            reported_by: None,
                            requested_level: None,
                            affected_systems: &["auth"],
                            drill: drill(last),
                        },
                        at,
                        occ,
                        rules,
                        out,
                    )
                    .await?;
                }
            }
            Kind::TotpGuessing => {
                let cap = TOTP_GUESSES + n;
                // Codes the login guard refused count with the wrong ones.
                let outcomes = [O::Failure, O::Throttled];
                let total =
                    incidents::count_by_actor(tx, A::MfaVerify, outcomes, subject, since, at, cap)
                        .await?;
                let occ = occurrences(total, TOTP_GUESSES, n);
                if occ > 0 {
                    let d = format!(
                        "{TOTP_GUESSES} or more wrong second-factor codes on one account within 10 minutes: its password is known"
                    );
                    raise(
                        tx,
                        NewIncident {
                            kind: rule,
                            level: Level::High,
                            subject: Some(subject),
                            description: &d,
                            reported_by: None,
                            requested_level: None,
                            affected_systems: &["auth", "mfa"],
                            drill: drill(last),
                        },
                        at,
                        occ,
                        rules,
                        out,
                    )
                    .await?;
                }
            }
            Kind::AuthzProbing => {
                let cap = PROBING_DENIALS + n;
                let outcomes = [O::Denied, O::Hidden];
                let total = incidents::count_by_actor(
                    tx,
                    A::AuthzDenied,
                    outcomes,
                    subject,
                    since,
                    at,
                    cap,
                )
                .await?;
                let occ = occurrences(total, PROBING_DENIALS, n);
                if occ > 0 {
                    let d = format!(
                        "{PROBING_DENIALS} or more refusals of the authorization policy for one account within 10 minutes"
                    );
                    raise(
                        tx,
                        NewIncident {
                            kind: rule,
                            level: Level::Medium,
                            subject: Some(subject),
                            description: &d,
                            reported_by: None,
                            requested_level: None,
                            affected_systems: &["authz"],
                            drill: drill(last),
                        },
                        at,
                        occ,
                        rules,
                        out,
                    )
                    .await?;
                }
            }
            _ => {
                let accounts = incidents::distinct_targets_by_ip(
                    tx,
                    A::AuthLogin,
                    O::Failure,
                    subject,
                    since,
                    at,
                    1000,
                )
                .await?;
                if accounts >= STUFFING_ACCOUNTS {
                    let d = format!(
                        "failed logins on {accounts} or more different accounts from {subject} within 10 minutes"
                    );
                    // Counted by address; one incident (and one block) per IPv6 /64.
                    let network = network_subject(subject);
                    raise(
                        tx,
                        NewIncident {
                            kind: rule,
                            level: Level::High,
                            subject: Some(&network),
                            description: &d,
                            reported_by: None,
                            requested_level: None,
                            affected_systems: &["auth", "network"],
                            drill: drill(last),
                        },
                        at,
                        occurrences(accounts, STUFFING_ACCOUNTS, n),
                        rules,
                        out,
                    )
                    .await?;
                    if contain.stuffing_block_s > 0 {
                        let cidr = block_cidr(subject);
                        incidents::block(
                            tx,
                            &cidr,
                            "credential stuffing (automatic)",
                            None,
                            at,
                            at.plus_seconds(contain.stuffing_block_s),
                        )
                        .await?;
                        Event::new(
                            audit::Action::ContainmentBlockAddress,
                            audit::Outcome::Success,
                        )
                        .target(&cidr)
                        .detail(format!("automatic, {} s", contain.stuffing_block_s))
                        .record(tx, &RequestMeta::default())
                        .await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Opens the `audit_tampering` incident for a problem of the audit chain, unless one is
/// unresolved already (whichever replica found it): a problem already being handled is not
/// counted again.
pub async fn audit_tampering(
    tx: &mut Tx,
    p: &crate::crypto::chain::Problem,
    rules: &Rules,
    out: &mut Vec<Raised>,
) -> sqlx::Result<()> {
    if incidents::unresolved_of_kind(tx, Kind::AuditTampering).await? {
        return Ok(());
    }
    let d = format!("row {} ({}): {}", p.seq, p.kind, p.message);
    raise(
        tx,
        NewIncident {
            kind: Kind::AuditTampering,
            level: Level::Critical,
            subject: Some("audit_trail"),
            description: &d,
            reported_by: None,
            requested_level: None,
            affected_systems: &["audit"],
            drill: false,
        },
        Timestamp::now(),
        1,
        rules,
        out,
    )
    .await?;
    Ok(())
}

/// A sealed row's action and outcome, each when this server knows its name (a row written by a
/// newer server may hold one it does not: no rule of this one is about it).
fn names(row: &AuditRow) -> (Option<audit::Action>, Option<audit::Outcome>) {
    (row.action.parse().ok(), row.outcome.parse().ok())
}

/// The rules that look at one event alone.
async fn single(
    tx: &mut Tx,
    row: &AuditRow,
    rules: &Rules,
    out: &mut Vec<Raised>,
) -> sqlx::Result<()> {
    use audit::{Action as A, Outcome as O};
    let contain = &rules.contain;
    let at = Timestamp::from_micros(row.at);
    match names(row) {
        (Some(A::AuthRefreshReuse), _) => {
            // The subject is the account whose session it was (whoever presented the token).
            let owner = match &row.target {
                Some(session) => crate::db::sessions::owner(tx, session).await?,
                None => None,
            };
            let subject = owner.unwrap_or_else(|| "unknown".into());
            raise(tx, NewIncident { kind: Kind::RefreshReuse, level: Level::High, subject: Some(&subject), description: "a spent refresh token was presented again: its session was revoked", reported_by: None, requested_level: None, affected_systems: &["auth", "sessions"], drill: drill(row) }, at, 1, rules, out).await?;
            if contain.reuse_revokes_all
                && let Ok(user) = subject.parse()
            {
                let n = crate::db::sessions::revoke_all_of(
                    tx,
                    user,
                    None,
                    "refresh token reuse (automatic containment)",
                    at,
                )
                .await?;
                Event::new(
                    audit::Action::ContainmentRevokeSessions,
                    audit::Outcome::Success,
                )
                .target(&subject)
                .detail(format!("automatic, {n} session(s)"))
                .record(tx, &RequestMeta::default())
                .await?;
            }
        }
        (Some(A::MfaRecoveryUse), Some(O::Success))
            if row
                .detail
                .as_deref()
                .is_some_and(|d| d.contains(crate::service::mfa::RECOVERY_FROM_NEW_ADDRESS)) =>
        {
            let subject = row.actor_id.clone().unwrap_or_default();
            raise(
                tx,
                NewIncident {
                    kind: Kind::RecoveryCodeNewAddress,
                    level: Level::Medium,
                    subject: Some(&subject),
                    description: "a recovery code signed in from an address the account never signed in from",
                    reported_by: None,
                    requested_level: None,
                    affected_systems: &["auth", "mfa"],
                    drill: drill(row),
                },
                at,
                1,
                rules,
                out,
            )
            .await?;
        }
        (Some(A::OAuthCodeReuse), _) => {
            // The subject is the account the code was issued for (the event's target).
            let subject = row.target.clone().unwrap_or_else(|| "unknown".into());
            raise(
                tx,
                NewIncident {
                    kind: Kind::CodeReuse,
                    level: Level::High,
                    subject: Some(&subject),
                    description: "a spent authorization code was presented again: the tokens its first use issued were revoked",
                    reported_by: None,
                    requested_level: None,
                    affected_systems: &["auth", "oauth"],
                    drill: drill(row),
                },
                at,
                1,
                rules,
                out,
            )
            .await?;
        }
        (Some(A::AuthTokenInvalid), _) => {
            // One incident per IPv6 /64 (one host usually holds a whole /64).
            let subject = row
                .ip
                .as_deref()
                .map_or_else(|| "unknown".into(), network_subject);
            let d = row.detail.clone().unwrap_or_default();
            raise(
                tx,
                NewIncident {
                    kind: Kind::ForgedTokens,
                    level: Level::High,
                    subject: Some(&subject),
                    description: &d,
                    reported_by: None,
                    requested_level: None,
                    affected_systems: &["auth", "tokens"],
                    drill: drill(row),
                },
                at,
                1,
                rules,
                out,
            )
            .await?;
        }
        (Some(A::UserRoleChange), Some(O::Success))
            if row
                .detail
                .as_deref()
                .is_some_and(|d| d.ends_with("-> admin")) =>
        {
            let subject = row.target.clone().unwrap_or_default();
            let by = row.actor_id.clone().unwrap_or_default();
            let d = format!("account {subject} was made admin by {by}");
            raise(
                tx,
                NewIncident {
                    kind: Kind::RoleEscalation,
                    level: Level::High,
                    subject: Some(&subject),
                    description: &d,
                    reported_by: None,
                    requested_level: None,
                    affected_systems: &["users", "authz"],
                    drill: drill(row),
                },
                at,
                1,
                rules,
                out,
            )
            .await?;
        }
        (Some(A::SharedStateUnavailable), _) => {
            let d = row.detail.clone().unwrap_or_default();
            raise(
                tx,
                NewIncident {
                    kind: Kind::SharedStateUnavailable,
                    level: Level::High,
                    subject: Some("redis"),
                    description: &d,
                    reported_by: None,
                    requested_level: None,
                    affected_systems: &["redis", "rate_limits"],
                    drill: drill(row),
                },
                at,
                1,
                rules,
                out,
            )
            .await?;
        }
        (Some(A::SecretDecrypt), Some(O::Failure)) => {
            let subject = row.target.clone().unwrap_or_default();
            let d = format!(
                "{subject}: {}",
                row.detail.as_deref().unwrap_or("did not open")
            );
            raise(
                tx,
                NewIncident {
                    kind: Kind::DataIntegrity,
                    level: Level::Critical,
                    subject: Some(&subject),
                    description: &d,
                    reported_by: None,
                    requested_level: None,
                    affected_systems: &["secrets", "keys"],
                    drill: drill(row),
                },
                at,
                1,
                rules,
                out,
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Whether an incident's subject is the drill's own: for the detectors the drill runs, a drill
/// address (or its network), or an account of the drill's email domain.
async fn drill_subject(tx: &mut Tx, kind: Kind, subject: Option<&str>) -> sqlx::Result<bool> {
    let Some(subject) = subject else {
        return Ok(false);
    };
    match kind {
        Kind::CredentialStuffing | Kind::ForgedTokens => Ok(crate::domain::net::is_drill_text(
            subject.split('/').next().unwrap_or(""),
        )),
        Kind::BruteForce
        | Kind::AuthzProbing
        | Kind::TotpGuessing
        | Kind::RecoveryCodeNewAddress
        | Kind::RefreshReuse => {
            let Ok(id) = subject.parse() else {
                return Ok(false);
            };
            Ok(crate::db::users::find(tx, id).await?.is_some_and(|u| {
                u.email
                    .rsplit_once('@')
                    .is_some_and(|(_, d)| d == crate::domain::net::DRILL_EMAIL_DOMAIN)
            }))
        }
        _ => Ok(false),
    }
}

/// Whether an event came from drill traffic (a drill address: `domain::net::DRILL_NETWORK`); the
/// incident it opens is labelled `drill`.
fn drill(row: &AuditRow) -> bool {
    row.ip
        .as_deref()
        .is_some_and(crate::domain::net::is_drill_text)
}

/// The subject of an incident about an address: an IPv4 address, or the /64 of an IPv6 one
/// (`2001:db8:1:2::/64`; `limits::bucket_ip`), so that one host cannot open an incident (and an
/// urgent page) per address of its /64.
fn network_subject(ip: &str) -> String {
    match ip.parse().map(crate::limits::bucket_ip) {
        Ok(net @ std::net::IpAddr::V6(_)) => format!("{net}/64"),
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

/// The network an address incident's automatic block covers: `/32` for IPv4, the /64 for IPv6.
fn block_cidr(ip: &str) -> String {
    match ip.parse().map(crate::limits::bucket_ip) {
        Ok(std::net::IpAddr::V4(v4)) => format!("{v4}/32"),
        Ok(net) => format!("{net}/64"),
        Err(_) => ip.to_owned(),
    }
}

/// Whether a raise by `by` occurrences that brought an incident to `count` crossed a power of
/// ten (10, 100, 1000, ...): the only re-raises that alert, so that a detector firing on every
/// request pages at most a few times per incident, whichever replica raised it.
pub fn raise_alerts(count: i64, by: i64) -> bool {
    let mut at = 10i64;
    while at <= count {
        if at > count - by {
            return true;
        }
        at = at.saturating_mul(10);
    }
    false
}

/// What happens after a sealing pass committed: metrics count every occurrence; an incident at
/// the alert level alerts when it opens, and when raised again only as its count reaches 10,
/// 100, 1000, ...
pub fn after_commit(sinks: &Sinks, config: &Config, raised: &[Raised]) {
    for r in raised {
        sinks.metrics.incident(
            r.incident.level.as_str(),
            r.incident.kind.as_str(),
            r.occurrences as u64,
        );
        if r.incident.level < config.alert_min_level {
            continue;
        }
        if r.opened {
            sinks.alerts.send(&r.incident, Alert::Opened);
        } else if raise_alerts(r.incident.count, r.occurrences) {
            sinks.alerts.send(&r.incident, Alert::Raised);
        }
    }
}

/// The highest level a plain user's report is stored at: one below the alert level, never above
/// `medium` (`low` when the alert level is `low`). A plain user's report never alerts: what it
/// asked above waits for triage as `requested_level`.
pub fn user_report_max_level(alert_min_level: Level) -> Level {
    alert_min_level.below().min(USER_REPORT_MAX_LEVEL)
}

/// A user's report: an incident of kind `user_report`. Whoever may not triage incidents (a plain
/// user) cannot page the on-call: a level above `user_report_max_level` (one below the alert
/// level, at most `medium`) is stored at that level, the level asked kept as `requested_level`
/// until an admin or a manager raises it, and the report alerts no one.
#[allow(clippy::too_many_arguments)] // each context it names is one it uses (service::context)
pub async fn report(
    store: &Store,
    guards: &Guards,
    sinks: &Sinks,
    config: &Config,
    who: &Principal,
    description: &str,
    level: Level,
    affected_systems: &[String],
    meta: &RequestMeta,
) -> Result<Incident> {
    authz::authorize_plain(Some(who), Action::IncidentReport)?;
    // One account cannot flood the incident list and the alert queue with reports: a budget of
    // reports per account (IMANGOR_RATE_LIMIT_REPORT), and a cap on the unresolved ones.
    if config.rate_limits {
        let key = format!("report:user:{}", who.user_id());
        let verdict = guards.limiter.check(&key, config.rate_limit_report).await;
        if !verdict.allowed {
            tracing::warn!(target: "security", class = "report", client = %who.user_id(), "rate limited");
            sinks.metrics.throttled("report");
            return Err(AppError::RateLimited {
                retry_after_s: verdict.retry_after_s,
            });
        }
    }
    let by = who.user_id().to_string();
    let triage = authz::authorize_plain(Some(who), Action::IncidentUpdate).is_ok();
    let cap = user_report_max_level(config.alert_min_level);
    let (stored, requested) = if !triage && level > cap {
        (cap, Some(level))
    } else {
        (level, None)
    };
    let systems: Vec<&str> = affected_systems.iter().map(String::as_str).collect();
    let now = Timestamp::now();
    // Counted in the write transaction (and, on PostgreSQL, under the reporter's lock): parallel
    // reports cannot all see the same count and pass the cap together.
    let mut tx = store.db.begin_write().await?;
    if incidents::open_reports_by(&mut tx, &by).await? >= MAX_OPEN_REPORTS {
        return Err(AppError::Refused(
            "you have too many unresolved reports; wait until they are handled",
        ));
    }
    // A report has no subject: it is never raised again nor a recurrence.
    let incident = incidents::open(
        &mut tx,
        &NewIncident {
            kind: Kind::UserReport,
            level: stored,
            subject: None,
            description,
            reported_by: Some(&by),
            requested_level: requested,
            affected_systems: &systems,
            drill: false,
        },
        None,
        now,
        1,
    )
    .await?;
    let detail = match requested {
        Some(asked) => format!("level {stored} (asked {asked}, kept for triage)"),
        None => format!("level {stored}"),
    };
    Event::new(audit::Action::IncidentReport, audit::Outcome::Success)
        .actor(who.user_id())
        .target(format!("incident:{}", incident.id))
        .detail(detail)
        .record(&mut tx, meta)
        .await?;
    store.commit(tx).await?;
    sinks
        .metrics
        .incident(incident.level.as_str(), incident.kind.as_str(), 1);
    if triage && stored >= config.alert_min_level {
        sinks.alerts.send(&incident, Alert::Opened);
    }
    Ok(incident)
}

/// A page of incidents, for the caller the handler allowed to list them (`grant`).
pub async fn list(
    store: &Store,
    grant: &Authorized<()>,
    filter: Filter<'_>,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Incident>> {
    grant.require(Action::IncidentList)?;
    Ok(incidents::list(&store.db, filter, before, i64::from(limit) + 1).await?)
}

/// One incident with its notes, for a caller allowed to list incidents, or to update them (who
/// reads back what they changed).
pub async fn get(store: &Store, grant: &Authorized<()>, id: &str) -> Result<(Incident, Vec<Note>)> {
    grant.require_any(&[Action::IncidentList, Action::IncidentUpdate])?;
    let mut tx = store.db.begin().await?;
    let i = incidents::find(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    store.commit(tx).await?;
    let notes = incidents::notes(&store.db, id).await?;
    Ok((i, notes))
}

/// Links of a chain of recurrences read each way, at most.
const CHAIN_DEPTH: i64 = 50;

/// The chain of recurrences an incident belongs to, oldest first, itself included (just itself
/// when it neither recurs nor recurred), for whom may read the incident.
pub async fn chain(store: &Store, grant: &Authorized<()>, id: &str) -> Result<Vec<Link>> {
    grant.require_any(&[Action::IncidentList, Action::IncidentUpdate])?;
    Ok(incidents::chain(&store.db, id, CHAIN_DEPTH).await?)
}

/// The events tied to an incident, for whom the policy lets read the audit trail (`None` for
/// the others: a manager handles incidents without reading the trail).
pub async fn events(
    store: &Store,
    who: &Principal,
    incident: &Incident,
) -> Result<Option<Vec<AuditRow>>> {
    if authz::authorize_plain(Some(who), Action::AuditRead).is_err() {
        return Ok(None);
    }
    Ok(Some(
        incidents::related_events(&store.db, incident, 100).await?,
    ))
}

/// What a PATCH of an incident asks: the next status with its note, and (triage) a new level
/// and list of affected systems.
pub struct Change<'a> {
    pub status: Status,
    pub note: &'a str,
    pub level: Option<Level>,
    pub affected_systems: Option<&'a [String]>,
}

/// The note the server adds to an incident when an update escalated it to `level` and paged the
/// on-call: the incident's own history of escalation alerts, read back by `update` on any replica.
fn escalation_note(level: Level) -> String {
    format!("the on-call was paged: escalated to {level}")
}

/// Moves an incident on: open -> contained -> resolved (or open -> resolved), with a note, and
/// sets its level and affected systems when asked (triage). An incident raised to a higher level
/// at or above the alert level alerts (`incident.escalated`), at most once per level reached
/// (each such alert leaves a note without author, `escalation_note`, that later updates read),
/// and never when the update resolves it. A resolved incident is closed; a new occurrence opens
/// a new one.
pub async fn update(
    store: &Store,
    sinks: &Sinks,
    config: &Config,
    grant: &Authorized<()>,
    id: &str,
    change: Change<'_>,
    meta: &RequestMeta,
) -> Result<Incident> {
    let Change {
        status,
        note,
        level,
        affected_systems,
    } = change;
    grant.require(Action::IncidentUpdate)?;
    let who = grant
        .by()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("an incident update by no one")))?;
    let now = Timestamp::now();
    let mut tx = store.db.begin_write().await?;
    incidents::lock(&mut tx, id).await?;
    let before = incidents::find(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !before.status.may_become(status) {
        return Err(AppError::Refused(
            "an incident moves open -> contained -> resolved, and a resolved one stays resolved",
        ));
    }
    incidents::set_status(&mut tx, id, status, level, affected_systems, now).await?;
    let by = who.to_string();
    incidents::add_note(&mut tx, id, Some(&by), status, note, now).await?;
    let mut detail = format!("{} -> {status}", before.status);
    if let Some(l) = level.filter(|l| *l != before.level) {
        detail.push_str(&format!("; level {} -> {l}", before.level));
    }
    if let Some(systems) = affected_systems {
        detail.push_str(&format!("; affected systems [{}]", systems.join(", ")));
    }
    Event::new(audit::Action::IncidentUpdate, audit::Outcome::Success)
        .actor(who)
        .target(format!("incident:{id}"))
        .detail(detail)
        .record(&mut tx, meta)
        .await?;
    let escalated = match level {
        Some(l)
            if status != Status::Resolved && l > before.level && l >= config.alert_min_level =>
        {
            // Every rise to a level at or above the alert level pages, once per level reached:
            // not again for this level or a lower one (an incident opened at the alert level
            // was paged as opened, and pages again when raised above it).
            let paged: Vec<String> = Level::ALL
                .iter()
                .filter(|p| **p >= l)
                .map(|p| escalation_note(*p))
                .collect();
            let notes = incidents::system_notes(&mut tx, id).await?;
            if notes.iter().any(|n| paged.contains(n)) {
                false
            } else {
                incidents::add_note(&mut tx, id, None, status, &escalation_note(l), now).await?;
                true
            }
        }
        _ => false,
    };
    let after = incidents::find(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    store.commit(tx).await?;
    if escalated {
        sinks.alerts.send(&after, Alert::Escalated);
    }
    Ok(after)
}

/// Checks a list of affected systems: at most 16 names, each `[a-z0-9_-]{1,32}`, none twice.
pub fn systems(field: &str, names: &[String]) -> std::result::Result<(), ValidationError> {
    if names.len() > MAX_SYSTEMS {
        return Err(ValidationError::field(
            field,
            format!("must name at most {MAX_SYSTEMS} systems"),
        ));
    }
    let mut errors = ValidationError::default();
    for (i, name) in names.iter().enumerate() {
        if !system_name(name) {
            errors.push(
                format!("{field}[{i}]"),
                "must be 1..=32 characters of a-z, 0-9, _ and -",
            );
        } else if names[..i].contains(name) {
            errors.push(format!("{field}[{i}]"), "names a system twice");
        }
    }
    errors.into_result()
}

/// A short name of a system: 1..=32 characters of `a-z`, `0-9`, `_` and `-`.
pub fn system_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks a report's or a note's text: 1..=2000 characters, no control characters but line breaks.
pub fn text(field: &str, raw: &str) -> std::result::Result<(), ValidationError> {
    if raw.trim().is_empty() {
        return Err(ValidationError::field(field, "must not be empty"));
    }
    if raw.chars().count() > 2000 {
        return Err(ValidationError::field(
            field,
            "must be at most 2000 characters",
        ));
    }
    if raw
        .chars()
        .any(|c| (c.is_control() && c != '\n') || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(ValidationError::field(
            field,
            "must not contain control characters other than line breaks",
        ));
    }
    Ok(())
}
