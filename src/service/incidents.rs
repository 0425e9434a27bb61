//! Incidents: detectors that read the audit trail as it is sealed, user reports, and the
//! open -> contained -> resolved workflow with notes. Levels: low, medium, high, critical.
//!
//! | kind | raised when | level | automatic containment |
//! |---|---|---|---|
//! | brute_force | 10 failed logins on one account in 10 minutes (guesses the login guard refused count) | high | (the login guard already slows the account) |
//! | credential_stuffing | failed logins on 10 different accounts from one address in 10 minutes | high | block the address (IMANGOR_CONTAIN_STUFFING_BLOCK seconds, default 900) |
//! | refresh_reuse | a spent refresh token presented again | high | the session is revoked; with IMANGOR_CONTAIN_REFRESH_REUSE=all, every session of the user |
//! | authz_probing | 20 refusals of the policy for one account in 10 minutes | medium | |
//! | forged_tokens | 50 access tokens that fail verification from one address in a minute | high | |
//! | role_escalation | an account made admin | high | |
//! | data_integrity | a stored secret fails authentication | critical | |
//! | user_report | `POST /api/v1/incidents` | as reported (default medium) | |
//!
//! A detector raises the unresolved incident of the same (kind, subject) again (its count grows)
//! instead of opening another.

use super::{Event, RequestMeta};
use crate::authz::{self, Action, Principal};
use crate::db::Tx;
use crate::db::audit::AuditRow;
use crate::db::incidents::{self, Incident, NewIncident};
use crate::domain::Timestamp;
use crate::error::{AppError, Result, ValidationError};
use crate::state::AppState;

pub const LEVELS: [&str; 4] = ["low", "medium", "high", "critical"];
pub const STATUSES: [&str; 3] = ["open", "contained", "resolved"];
const WINDOW_S: u64 = 600;
pub const BRUTE_FORCE_FAILURES: i64 = 10;
pub const STUFFING_ACCOUNTS: i64 = 10;
pub const PROBING_DENIALS: i64 = 20;
/// Unresolved reports one account may have at once.
pub const MAX_OPEN_REPORTS: i64 = 5;

pub fn level_rank(level: &str) -> usize {
    LEVELS.iter().position(|l| *l == level).unwrap_or(0)
}

/// Automatic containment, per detector.
#[derive(Debug, Clone, Copy)]
pub struct Containment {
    /// Seconds an address doing credential stuffing is blocked (0: not blocked).
    pub stuffing_block_s: u64,
    /// Refresh-token reuse revokes every session of the user, not only the reused family.
    pub reuse_revokes_all: bool,
}

/// An incident a detector opened or raised again, for what happens after commit (metrics, alerts).
#[derive(Debug, Clone)]
pub struct Raised {
    pub incident: Incident,
    pub opened: bool,
    /// Occurrences this raise stands for.
    pub occurrences: i64,
}

async fn raise(
    tx: &mut Tx,
    new: NewIncident<'_>,
    now: Timestamp,
    by: i64,
    out: &mut Vec<Raised>,
) -> sqlx::Result<Incident> {
    let (incident, opened) = incidents::raise(tx, &new, now, by).await?;
    // The opening is an audit event; a repeat only counts (a flood must not double the trail).
    if opened {
        Event::new("incident.open", "success")
            .target(format!("incident:{}", incident.id))
            .detail(format!("{} ({})", incident.kind, incident.level))
            .record(tx, &RequestMeta::default())
            .await?;
    }
    out.push(Raised {
        incident: incident.clone(),
        opened,
        occurrences: by,
    });
    Ok(incident)
}

/// The count rules' subjects in a batch: (rule, subject) -> (events, the newest of them).
type Groups<'a> = Vec<((&'static str, &'a str), (i64, &'a AuditRow))>;

fn group<'a>(groups: &mut Groups<'a>, rule: &'static str, subject: &'a str, row: &'a AuditRow) {
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
    contain: &Containment,
    out: &mut Vec<Raised>,
) -> sqlx::Result<()> {
    let mut groups: Groups = Vec::new();
    for row in rows {
        match (row.action.as_str(), row.outcome.as_str()) {
            // A guess the login guard refused (429) is still a guess on that account.
            ("auth.login", "throttled") => {
                if let Some(actor) = &row.actor_id {
                    group(&mut groups, "brute_force", actor, row);
                }
            }
            ("auth.login", "failure") => {
                if let Some(actor) = &row.actor_id {
                    group(&mut groups, "brute_force", actor, row);
                }
                if let Some(ip) = &row.ip {
                    group(&mut groups, "credential_stuffing", ip, row);
                }
            }
            ("authz.denied", _) => {
                if let Some(actor) = &row.actor_id {
                    group(&mut groups, "authz_probing", actor, row);
                }
            }
            _ => single(tx, row, contain, out).await?,
        }
    }
    for ((rule, subject), (n, last)) in groups {
        let at = Timestamp::from_micros(last.at);
        let since = Timestamp::from_micros(last.at - (WINDOW_S as i64) * 1_000_000);
        match rule {
            "brute_force" => {
                let cap = BRUTE_FORCE_FAILURES + n;
                let total =
                    incidents::count_by_actor(tx, "auth.login", "failure", subject, since, at, cap)
                        .await?
                        + incidents::count_by_actor(
                            tx,
                            "auth.login",
                            "throttled",
                            subject,
                            since,
                            at,
                            cap,
                        )
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
                            level: "high",
                            subject: Some(subject),
                            description: &d,
                            reported_by: None,
                        },
                        at,
                        occ,
                        out,
                    )
                    .await?;
                }
            }
            "authz_probing" => {
                let cap = PROBING_DENIALS + n;
                let total = incidents::count_by_actor(
                    tx,
                    "authz.denied",
                    "denied",
                    subject,
                    since,
                    at,
                    cap,
                )
                .await?
                    + incidents::count_by_actor(
                        tx,
                        "authz.denied",
                        "hidden",
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
                            level: "medium",
                            subject: Some(subject),
                            description: &d,
                            reported_by: None,
                        },
                        at,
                        occ,
                        out,
                    )
                    .await?;
                }
            }
            _ => {
                let accounts = incidents::distinct_targets_by_ip(
                    tx,
                    "auth.login",
                    "failure",
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
                    raise(
                        tx,
                        NewIncident {
                            kind: rule,
                            level: "high",
                            subject: Some(subject),
                            description: &d,
                            reported_by: None,
                        },
                        at,
                        occurrences(accounts, STUFFING_ACCOUNTS, n),
                        out,
                    )
                    .await?;
                    if contain.stuffing_block_s > 0 {
                        let cidr = host_cidr(subject);
                        incidents::block(
                            tx,
                            &cidr,
                            "credential stuffing (automatic)",
                            None,
                            at,
                            at.plus_seconds(contain.stuffing_block_s),
                        )
                        .await?;
                        Event::new("containment.block_address", "success")
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

/// The rules that look at one event alone.
async fn single(
    tx: &mut Tx,
    row: &AuditRow,
    contain: &Containment,
    out: &mut Vec<Raised>,
) -> sqlx::Result<()> {
    let at = Timestamp::from_micros(row.at);
    match (row.action.as_str(), row.outcome.as_str()) {
        ("auth.refresh_reuse", _) => {
            // The subject is the account whose session it was (whoever presented the token).
            let owner = match &row.target {
                Some(session) => crate::db::sessions::owner(tx, session).await?,
                None => None,
            };
            let subject = owner.unwrap_or_else(|| "unknown".into());
            raise(tx, NewIncident { kind: "refresh_reuse", level: "high", subject: Some(&subject), description: "a spent refresh token was presented again: its session was revoked", reported_by: None }, at, 1, out).await?;
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
                Event::new("containment.revoke_sessions", "success")
                    .target(&subject)
                    .detail(format!("automatic, {n} session(s)"))
                    .record(tx, &RequestMeta::default())
                    .await?;
            }
        }
        ("auth.token_invalid", _) => {
            let subject = row.ip.clone().unwrap_or_else(|| "unknown".into());
            let d = row.detail.clone().unwrap_or_default();
            raise(
                tx,
                NewIncident {
                    kind: "forged_tokens",
                    level: "high",
                    subject: Some(&subject),
                    description: &d,
                    reported_by: None,
                },
                at,
                1,
                out,
            )
            .await?;
        }
        ("user.role_change", "success")
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
                    kind: "role_escalation",
                    level: "high",
                    subject: Some(&subject),
                    description: &d,
                    reported_by: None,
                },
                at,
                1,
                out,
            )
            .await?;
        }
        ("shared_state.unavailable", _) => {
            let d = row.detail.clone().unwrap_or_default();
            raise(
                tx,
                NewIncident {
                    kind: "shared_state_unavailable",
                    level: "high",
                    subject: Some("redis"),
                    description: &d,
                    reported_by: None,
                },
                at,
                1,
                out,
            )
            .await?;
        }
        ("secret.decrypt", "failure") => {
            let subject = row.target.clone().unwrap_or_default();
            let d = format!(
                "{subject}: {}",
                row.detail.as_deref().unwrap_or("did not open")
            );
            raise(
                tx,
                NewIncident {
                    kind: "data_integrity",
                    level: "critical",
                    subject: Some(&subject),
                    description: &d,
                    reported_by: None,
                },
                at,
                1,
                out,
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// A single address as a CIDR (`/32` or `/128`).
fn host_cidr(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => format!("{ip}/32"),
        Ok(std::net::IpAddr::V6(_)) => format!("{ip}/128"),
        Err(_) => ip.to_owned(),
    }
}

/// What happens after a sealing pass committed: metrics count every occurrence.
pub fn after_commit(app: &AppState, raised: &[Raised]) {
    for r in raised {
        app.metrics
            .incident(&r.incident.level, &r.incident.kind, r.occurrences as u64);
        if level_rank(&r.incident.level) >= level_rank(&app.config.alert_min_level) {
            app.alerts.send(&r.incident, r.opened);
        }
    }
}

/// A user's report: an incident of kind `user_report`.
pub async fn report(
    app: &AppState,
    who: &Principal,
    description: &str,
    level: &str,
    meta: &RequestMeta,
) -> Result<Incident> {
    authz::authorize_plain(Some(who), Action::IncidentReport)?;
    // One account cannot flood the incident list and the alert queue with reports.
    let by = who.user_id().to_string();
    if incidents::open_reports_by(&app.db, &by).await? >= MAX_OPEN_REPORTS {
        return Err(AppError::Refused(
            "you have too many unresolved reports; wait until they are handled",
        ));
    }
    let now = Timestamp::now();
    let mut tx = app.db.begin().await?;
    let (incident, _) = incidents::raise(
        &mut tx,
        &NewIncident {
            kind: "user_report",
            level,
            subject: None,
            description,
            reported_by: Some(&by),
        },
        now,
        1,
    )
    .await?;
    Event::new("incident.report", "success")
        .actor(who.user_id())
        .target(format!("incident:{}", incident.id))
        .detail(format!("level {level}"))
        .record(&mut tx, meta)
        .await?;
    tx.commit().await?;
    app.metrics.incident(&incident.level, &incident.kind, 1);
    if level_rank(level) >= level_rank(&app.config.alert_min_level) {
        app.alerts.send(&incident, true);
    }
    Ok(incident)
}

pub async fn list(
    app: &AppState,
    who: &Principal,
    level: Option<&str>,
    status: Option<&str>,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Incident>> {
    authz::authorize_plain(Some(who), Action::IncidentList)?;
    Ok(incidents::list(&app.db, level, status, before, i64::from(limit) + 1).await?)
}

pub async fn get(
    app: &AppState,
    who: &Principal,
    id: &str,
) -> Result<(Incident, Vec<incidents::Note>)> {
    authz::authorize_plain(Some(who), Action::IncidentList)?;
    let mut tx = app.db.begin().await?;
    let i = incidents::find(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let notes = incidents::notes(&app.db, id).await?;
    Ok((i, notes))
}

/// The events tied to an incident, for whom the policy lets read the audit trail (`None` for
/// the others: a manager handles incidents without reading the trail).
pub async fn events(
    app: &AppState,
    who: &Principal,
    incident: &Incident,
) -> Result<Option<Vec<AuditRow>>> {
    if authz::authorize_plain(Some(who), Action::AuditRead).is_err() {
        return Ok(None);
    }
    Ok(Some(
        incidents::related_events(&app.db, incident, 100).await?,
    ))
}

/// Moves an incident on: open -> contained -> resolved (or open -> resolved), with a note.
/// A resolved incident is closed; a new occurrence opens a new one.
pub async fn update(
    app: &AppState,
    who: &Principal,
    id: &str,
    status: &str,
    note: &str,
    meta: &RequestMeta,
) -> Result<Incident> {
    authz::authorize_plain(Some(who), Action::IncidentUpdate)?;
    let now = Timestamp::now();
    let mut tx = app.db.begin_write().await?;
    let before = incidents::find(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let allowed = match (before.status.as_str(), status) {
        ("open", "contained" | "resolved") | ("contained", "resolved") => true,
        (a, b) => a == b && a != "resolved",
    };
    if !allowed {
        return Err(AppError::Refused(
            "an incident moves open -> contained -> resolved, and a resolved one stays resolved",
        ));
    }
    incidents::set_status(&mut tx, id, status, now).await?;
    let by = who.user_id().to_string();
    incidents::add_note(&mut tx, id, Some(&by), status, note, now).await?;
    Event::new("incident.update", "success")
        .actor(who.user_id())
        .target(format!("incident:{id}"))
        .detail(format!("{} -> {status}", before.status))
        .record(&mut tx, meta)
        .await?;
    let after = incidents::find(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(after)
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
