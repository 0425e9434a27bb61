//! `/api/v1/incidents` and `/api/v1/containment`: reports, the incident workflow, and the
//! containment actions, for the roles the policy names.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::AppJson;
use super::page::{self, once, one_of};
use crate::authz::Principal;
use crate::domain::UserId;
use crate::domain::incident::{Filter, Incident, Level, Link, Note, Status};
use crate::domain::runbook;
use crate::error::{AppError, Result, ValidationError};
use crate::service::containment::By;
use crate::service::{self, audit::RequestMeta};
use crate::state::AppState;

const LIST: &str = "incidents";
const LEVEL_MUST: &str = "must be low, medium, high or critical";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report, list))
        .routes(routes!(show, update))
        .routes(routes!(evidence))
        .routes(routes!(contain))
}

/// The short name of a system an incident touches: `auth`, `secrets`, `audit`, ...
#[derive(ToSchema)]
#[schema(pattern = "^[a-z0-9_-]{1,32}$", min_length = 1, max_length = 32)]
#[allow(dead_code)]
pub struct SystemName(String);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    /// 1..=2000 characters; line breaks allowed, other control characters not.
    #[schema(min_length = 1, max_length = 2000)]
    description: String,
    /// low, medium (default), high or critical. A plain user's report above medium is stored
    /// as medium, the level asked kept as `requested_level` for triage.
    #[schema(pattern = "^(low|medium|high|critical)$")]
    level: Option<String>,
    /// The systems it touches: at most 16 names, none twice.
    #[schema(value_type = Option<Vec<SystemName>>, max_items = 16)]
    affected_systems: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {
    #[schema(pattern = "^(open|contained|resolved)$")]
    status: String,
    /// Why: 1..=2000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    note: String,
    /// A new level (triage): low, medium, high or critical. Raised to the alert level or above,
    /// the incident alerts (`incident.escalated`).
    #[schema(pattern = "^(low|medium|high|critical)$")]
    level: Option<String>,
    /// Replaces the list of systems it touches: at most 16 names, none twice.
    #[schema(value_type = Option<Vec<SystemName>>, max_items = 16)]
    affected_systems: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct NoteView {
    at: String,
    author_id: Option<String>,
    status: String,
    note: String,
}

/// One step of an incident's runbook.
#[derive(Serialize, ToSchema)]
pub struct RunbookStep {
    /// The guide's step: detection, containment, investigation, remediation or recovery (in
    /// that order).
    #[schema(pattern = "^(detection|containment|investigation|remediation|recovery)$")]
    step: &'static str,
    /// What to do in it for this kind of incident: what was contained automatically, what to
    /// check, which call or command undoes the containment.
    text: &'static str,
}

/// An incident of a chain of recurrences.
#[derive(Serialize, ToSchema)]
pub struct ChainLink {
    id: String,
    level: String,
    status: String,
    first_seen: String,
    resolved_at: Option<String>,
    /// The incident it is a recurrence of (the one before it in the chain); null for the first.
    recurrence_of: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct IncidentView {
    id: String,
    /// brute_force, credential_stuffing, refresh_reuse, totp_guessing,
    /// recovery_code_new_address, authorization_code_reuse, authz_probing, forged_tokens,
    /// role_escalation, shared_state_unavailable, data_integrity, audit_tampering or user_report.
    kind: String,
    level: String,
    /// The level a plain user's report asked for when it was stored lower (`medium`), for
    /// triage; null otherwise.
    requested_level: Option<String>,
    status: String,
    /// Short names of the systems it touches (`auth`, `secrets`, ...).
    #[schema(value_type = Vec<SystemName>)]
    affected_systems: Vec<String>,
    /// What a detector keyed it on (an account id, an address, a secret); none for reports.
    subject: Option<String>,
    description: String,
    reported_by: Option<String>,
    /// How many times it was raised while unresolved.
    count: i64,
    first_seen: String,
    last_seen: String,
    updated_at: String,
    /// When it was resolved; null while open or contained.
    resolved_at: Option<String>,
    /// The incident of the same kind and subject, resolved within
    /// IMANGOR_INCIDENT_RECURRENCE_DAYS before this one opened, that this one is a recurrence
    /// of (and was raised one level for); null otherwise.
    recurrence_of: Option<String>,
    /// Opened by a drill's traffic (`imangor drill`), not by an attack: never the previous
    /// incident of a recurrence.
    drill: bool,
    /// On one incident: the chain of recurrences it belongs to, oldest first, itself included
    /// (only itself when it neither recurs nor recurred).
    #[serde(skip_serializing_if = "Option::is_none")]
    recurrences: Option<Vec<ChainLink>>,
    /// On one incident: its kind's response steps, the guide's five in order.
    #[serde(skip_serializing_if = "Option::is_none")]
    runbook: Option<Vec<RunbookStep>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<Vec<NoteView>>,
    /// On one incident, for those who may read the audit trail: the events naming it and those
    /// of its subject around it (newest first, at most 100; `seq` 0 = not sealed yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<crate::service::audit::page::Entry>>,
}

#[derive(Serialize, ToSchema)]
pub struct IncidentPage {
    items: Vec<IncidentView>,
    next_cursor: Option<String>,
}

/// The view of one incident: with its notes, its chain of recurrences and its runbook.
fn full_view(i: Incident, notes: Vec<Note>, chain: Vec<Link>) -> IncidentView {
    let steps = runbook::runbook(i.kind)
        .iter()
        .map(|s| RunbookStep {
            step: s.phase.as_str(),
            text: s.text,
        })
        .collect();
    let mut v = view(i, Some(notes));
    v.runbook = Some(steps);
    v.recurrences = Some(
        chain
            .into_iter()
            .map(|l| ChainLink {
                id: l.id,
                level: l.level.to_string(),
                status: l.status.to_string(),
                first_seen: l.first_seen.rfc3339(),
                resolved_at: l.resolved_at.map(|t| t.rfc3339()),
                recurrence_of: l.recurrence_of,
            })
            .collect(),
    );
    v
}

fn view(i: Incident, notes: Option<Vec<Note>>) -> IncidentView {
    IncidentView {
        id: i.id,
        kind: i.kind.to_string(),
        level: i.level.to_string(),
        requested_level: i.requested_level.map(|l| l.to_string()),
        status: i.status.to_string(),
        affected_systems: i.affected_systems,
        subject: i.subject,
        description: i.description,
        reported_by: i.reported_by,
        count: i.count,
        first_seen: i.first_seen.rfc3339(),
        last_seen: i.last_seen.rfc3339(),
        updated_at: i.updated_at.rfc3339(),
        resolved_at: i.resolved_at.map(|t| t.rfc3339()),
        recurrence_of: i.recurrence_of,
        drill: i.drill,
        recurrences: None,
        runbook: None,
        notes: notes.map(|n| {
            n.into_iter()
                .map(|n| NoteView {
                    at: n.at.rfc3339(),
                    author_id: n.author_id,
                    status: n.status.to_string(),
                    note: n.note,
                })
                .collect()
        }),
        events: None,
    }
}

fn incident_id(raw: &str) -> Result<String> {
    raw.parse::<uuid::Uuid>()
        .ok()
        .filter(|_| raw.len() == 36)
        .map(|_| raw.to_owned())
        .ok_or(AppError::NotFound)
}

/// Report a security incident (any role). The report is audited and alerts like any incident.
/// A plain user's report above `medium` is stored as `medium` (it does not page the on-call),
/// with the level asked kept as `requested_level` until an admin or a manager raises it.
#[utoipa::path(post, path = "/incidents", tag = "security operations", security(("bearer" = [])), request_body = ReportInput,
    responses((status = 201, body = IncidentView), (status = 401),
        (status = 409, description = "the caller already has five unresolved reports"), (status = 422, description = "invalid input"),
        (status = 429, description = "too many reports from this account (IMANGOR_RATE_LIMIT_REPORT); see Retry-After")))]
async fn report(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    AppJson(req): AppJson<ReportInput>,
) -> Result<(StatusCode, Json<IncidentView>)> {
    let mut errors = ValidationError::default();
    errors.collect(service::incidents::text("description", &req.description));
    let level = req
        .level
        .as_deref()
        .map_or(Ok(Level::Medium), str::parse::<Level>);
    if level.is_err() {
        errors.push("level", LEVEL_MUST);
    }
    let systems = req.affected_systems.unwrap_or_default();
    errors.collect(service::incidents::systems("affected_systems", &systems));
    errors.into_result()?;
    let Ok(level) = level else {
        return Err(AppError::Internal(anyhow::anyhow!("checked above")));
    };
    let i = service::incidents::report(
        &app.store,
        &app.guards,
        &app.sinks,
        &app.config,
        &who,
        &req.description,
        level,
        &systems,
        &meta,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(i, None))))
}

/// The list's filters (besides `limit` and `cursor`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct IncidentQuery {
    /// low, medium, high or critical.
    #[param(nullable = false, pattern = "^(low|medium|high|critical)$")]
    level: Option<String>,
    /// open, contained or resolved.
    #[param(nullable = false, pattern = "^(open|contained|resolved)$")]
    status: Option<String>,
    /// Incidents whose `affected_systems` name this system (exactly: `auth` does not match `oauth`).
    #[param(nullable = false, pattern = "^[a-z0-9_-]{1,32}$")]
    affected_system: Option<String>,
    /// Items per page, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(nullable = false)]
    cursor: Option<String>,
}

/// Incidents, newest first, filtered by level, status and affected system: admins and managers.
#[utoipa::path(get, path = "/incidents", tag = "security operations", security(("bearer" = [])), params(IncidentQuery),
    responses((status = 200, body = IncidentPage), (status = 401), (status = 403), (status = 422, description = "bad filter, limit or cursor")))]
async fn list(
    State(app): State<AppState>,
    who: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<IncidentPage>> {
    let grant = crate::authz::authorize_plain(Some(&who), crate::authz::Action::IncidentList)?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
            .map_err(|_| ValidationError::field("query", "is not a valid query string"))?;
    let mut errors = ValidationError::default();
    let (mut level, mut status, mut system, mut rest) = (None, None, None, Vec::new());
    for (k, v) in pairs {
        match k.as_str() {
            "level" => once(&mut errors, &k, &mut level, one_of(&v, Level::NAMES)),
            "status" => once(&mut errors, &k, &mut status, one_of(&v, Status::NAMES)),
            "affected_system" => {
                let valid = if service::incidents::system_name(&v) {
                    Ok(v)
                } else {
                    Err("must be 1..=32 characters of a-z, 0-9, _ and -".to_owned())
                };
                once(&mut errors, &k, &mut system, valid)
            }
            _ => rest.push((k, v)),
        }
    }
    errors.into_result()?;
    let rest = serde_urlencoded::to_string(&rest).unwrap_or_default();
    let req = page::parse(Some(&rest), &app.cursors, LIST, who.user_id())?;
    let before = req.after.map(|u| u.hyphenated().to_string());
    let filter = Filter {
        level,
        status,
        system: system.as_deref(),
    };
    let rows =
        service::incidents::list(&app.store, &grant, filter, before.as_deref(), req.limit).await?;
    let (rows, next_cursor) = page::finish(
        rows,
        req,
        |i| i.id.parse().unwrap_or_default(),
        &app.cursors,
        LIST,
        who.user_id(),
    );
    Ok(Json(IncidentPage {
        items: rows.into_iter().map(|i| view(i, None)).collect(),
        next_cursor,
    }))
}

/// One incident with its notes, its chain of recurrences and its kind's runbook: admins and
/// managers.
#[utoipa::path(get, path = "/incidents/{id}", tag = "security operations", security(("bearer" = [])),
    params(("id" = String, Path, description = "the incident's id")),
    responses((status = 200, body = IncidentView), (status = 401), (status = 403), (status = 404)))]
async fn show(
    State(app): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<IncidentView>> {
    let grant = crate::authz::authorize_plain(Some(&who), crate::authz::Action::IncidentList)?;
    let id = incident_id(&id)?;
    let (i, notes) = service::incidents::get(&app.store, &grant, &id).await?;
    let events = service::incidents::events(&app.store, &who, &i).await?;
    let chain = service::incidents::chain(&app.store, &grant, &id).await?;
    let mut v = full_view(i, notes, chain);
    v.events = events.map(|e| e.into_iter().map(Into::into).collect());
    Ok(Json(v))
}

/// The incident's evidence bundle, as a JSON file to download: the incident with its notes, its
/// audit events, the chain segment and the signed checkpoints that cover them, the public
/// checkpoint keys, the deployment's configuration (no secrets) and a signed manifest of SHA-256
/// digests. `imangor evidence verify FILE` checks it offline. Admins only; each export is recorded
/// in the audit trail (`incident.evidence`).
#[utoipa::path(get, path = "/incidents/{id}/evidence", tag = "security operations", security(("bearer" = [])),
    params(("id" = String, Path, description = "the incident's id")),
    responses((status = 200, description = "the bundle (`format`: imangor-evidence-bundle/1), as an attachment",
            content_type = "application/json", body = Object,
            headers(("Content-Disposition" = String, description = "attachment; filename=\"incident-ID-evidence.json\""),
                ("Cache-Control" = String, description = "no-store"))),
        (status = 401), (status = 403, description = "not an admin"), (status = 404),
        (status = 409, description = "the incident's newest events are not signed yet (retry in a few seconds), or its chain segment is too long")))]
async fn evidence(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Response> {
    let grant = crate::authz::authorize_plain(Some(&who), crate::authz::Action::IncidentEvidence)?;
    let id = incident_id(&id)?;
    let src = service::audit::evidence::Sources {
        db: &app.store.db,
        keys: &app.keys,
        tokens: &app.identity.tokens,
        config: &app.config,
    };
    let bundle = service::audit::evidence::export(&src, &grant, &id, &meta).await?;
    let mut res = bundle.into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // The id was checked to be a UUID: nothing in the file name needs quoting.
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"incident-{id}-evidence.json\""
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Contain or resolve an incident, with a note (open -> contained -> resolved), and triage it:
/// set its `level` (raised to the alert level or above, it alerts) and its `affected_systems`.
/// Admins and managers.
#[utoipa::path(patch, path = "/incidents/{id}", tag = "security operations", security(("bearer" = [])), request_body = UpdateInput,
    params(("id" = String, Path, description = "the incident's id")),
    responses((status = 200, body = IncidentView), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "not a step of the workflow (a resolved incident stays resolved)"), (status = 422)))]
async fn update(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
    AppJson(req): AppJson<UpdateInput>,
) -> Result<Json<IncidentView>> {
    let grant = crate::authz::authorize_plain(Some(&who), crate::authz::Action::IncidentUpdate)?;
    let id = incident_id(&id)?;
    let mut errors = ValidationError::default();
    let status = req.status.parse::<Status>();
    if status.is_err() {
        errors.push("status", "must be open, contained or resolved");
    }
    errors.collect(service::incidents::text("note", &req.note));
    let level = req.level.as_deref().map(str::parse::<Level>).transpose();
    if level.is_err() {
        errors.push("level", LEVEL_MUST);
    }
    if let Some(systems) = &req.affected_systems {
        errors.collect(service::incidents::systems("affected_systems", systems));
    }
    errors.into_result()?;
    let (Ok(status), Ok(level)) = (status, level) else {
        return Err(AppError::Internal(anyhow::anyhow!("checked above")));
    };
    let change = service::incidents::Change {
        status,
        note: &req.note,
        level,
        affected_systems: req.affected_systems.as_deref(),
    };
    service::incidents::update(
        &app.store,
        &app.sinks,
        &app.config,
        &grant,
        &id,
        change,
        &meta,
    )
    .await?;
    let (i, notes) = service::incidents::get(&app.store, &grant, &id).await?;
    let chain = service::incidents::chain(&app.store, &grant, &id).await?;
    Ok(Json(full_view(i, notes, chain)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainInput {
    /// revoke_sessions (user_id), disable_user (user_id), block_address (cidr, seconds) or
    /// unblock_address (cidr: exactly the network of a block in force; 404 when none).
    #[schema(pattern = "^(revoke_sessions|disable_user|block_address|unblock_address)$")]
    action: String,
    user_id: Option<UserId>,
    /// An address or network, `203.0.113.7` or `203.0.113.0/24`.
    cidr: Option<String>,
    /// How long a block lasts, 1..=2592000 seconds (default 900).
    #[schema(minimum = 1, maximum = 2592000)]
    seconds: Option<u64>,
    /// Why, for the audit trail (at most 200 characters).
    #[schema(max_length = 200)]
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ContainOutcome {
    action: String,
    /// Sessions ended (revoke_sessions, disable_user).
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions_revoked: Option<u64>,
    /// When the block ends (block_address).
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked_until: Option<String>,
}

/// A containment request whose every field was checked.
enum Contain<'a> {
    RevokeSessions(UserId),
    DisableUser(UserId),
    BlockAddress {
        cidr: crate::domain::net::Cidr,
        seconds: u64,
        reason: &'a str,
    },
    UnblockAddress {
        cidr: crate::domain::net::Cidr,
        reason: &'a str,
    },
}

/// Checks every field of a containment body against its documented schema, whatever the
/// action, and the fields the action needs: one 422 naming them all, before the policy, any
/// lookup or any business rule runs.
fn check_contain(req: &ContainInput) -> Result<Contain<'_>> {
    let mut errors = ValidationError::default();
    let action = req.action.as_str();
    if ![
        "revoke_sessions",
        "disable_user",
        "block_address",
        "unblock_address",
    ]
    .contains(&action)
    {
        errors.push(
            "action",
            "must be revoke_sessions, disable_user, block_address or unblock_address",
        );
    }
    if matches!(action, "revoke_sessions" | "disable_user") && req.user_id.is_none() {
        errors.push("user_id", "is required for this action");
    }
    let cidr = match req
        .cidr
        .as_deref()
        .map(str::parse::<crate::domain::net::Cidr>)
    {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            errors.push("cidr", e);
            None
        }
        None => {
            if matches!(action, "block_address" | "unblock_address") {
                errors.push("cidr", "is required for this action");
            }
            None
        }
    };
    if req
        .seconds
        .is_some_and(|s| !(1..=service::containment::MAX_BLOCK_S).contains(&s))
    {
        errors.push("seconds", "must be 1..=2592000");
    }
    if let Some(Err(e)) = req
        .reason
        .as_deref()
        .map(|r| crate::domain::text::one_line(r, "reason", 200))
    {
        errors.errors.extend(e.errors);
    }
    errors.into_result()?;
    let checked = match (action, req.user_id, cidr) {
        ("revoke_sessions", Some(user), _) => Contain::RevokeSessions(user),
        ("disable_user", Some(user), _) => Contain::DisableUser(user),
        ("block_address", _, Some(cidr)) => Contain::BlockAddress {
            cidr,
            seconds: req.seconds.unwrap_or(900),
            reason: req.reason.as_deref().unwrap_or("containment"),
        },
        ("unblock_address", _, Some(cidr)) => Contain::UnblockAddress {
            cidr,
            reason: req.reason.as_deref().unwrap_or("lifted"),
        },
        _ => return Err(AppError::Internal(anyhow::anyhow!("checked above"))),
    };
    Ok(checked)
}

/// Containment: end every session of a user, disable a user (the rights of disabling that
/// account), or block an address or network for a while (admins and managers).
#[utoipa::path(post, path = "/containment", tag = "security operations", security(("bearer" = [])), request_body = ContainInput,
    responses((status = 200, body = ContainOutcome), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "refused by a rule (your own account or address, the last admin)"), (status = 422)))]
async fn contain(
    State(app): State<AppState>,
    who: Principal,
    meta: RequestMeta,
    AppJson(req): AppJson<ContainInput>,
) -> Result<Json<ContainOutcome>> {
    let checked = check_contain(&req)?;
    let outcome = match checked {
        Contain::RevokeSessions(user) => {
            let n =
                service::containment::revoke_sessions(&app.store, By::Person(&who), user, &meta)
                    .await?;
            ContainOutcome {
                action: req.action,
                sessions_revoked: Some(n),
                blocked_until: None,
            }
        }
        Contain::DisableUser(user) => {
            let change = service::users::AccountChange {
                role: None,
                disabled: Some(true),
            };
            service::users::update(&app.store, &who, user, change, &meta).await?;
            ContainOutcome {
                action: req.action,
                sessions_revoked: None,
                blocked_until: None,
            }
        }
        Contain::BlockAddress {
            cidr,
            seconds,
            reason,
        } => {
            let until = service::containment::block(
                &app.store,
                &app.guards,
                By::Person(&who),
                cidr,
                seconds,
                reason,
                &meta,
            )
            .await?;
            ContainOutcome {
                action: req.action,
                sessions_revoked: None,
                blocked_until: Some(until.rfc3339()),
            }
        }
        Contain::UnblockAddress { cidr, reason } => {
            service::containment::unblock(
                &app.store,
                &app.guards,
                By::Person(&who),
                cidr,
                reason,
                &meta,
            )
            .await?;
            ContainOutcome {
                action: req.action,
                sessions_revoked: None,
                blocked_until: None,
            }
        }
    };
    Ok(Json(outcome))
}
