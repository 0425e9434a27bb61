//! `GET /api/v1/security/summary` (the console's dashboard) and `GET /api/v1/access-review`
//! (the permission review the operator also runs as `imangor access-review`).

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authz::Principal;
use crate::domain::{Role, UserId};
use crate::error::{Result, ValidationError};
use crate::service::access_review::{self, DEFAULT_DORMANT_DAYS, MAX_DORMANT_DAYS};
use crate::service::security;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(summary))
        .routes(routes!(review))
}

#[derive(Serialize, ToSchema)]
pub struct LevelView {
    /// low, medium, high or critical.
    level: &'static str,
    open: i64,
    contained: i64,
}

#[derive(Serialize, ToSchema)]
pub struct HourView {
    /// The start of the hour (UTC).
    start: String,
    success: i64,
    failure: i64,
    /// Refused by the login guard before the password was checked.
    throttled: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ThrottledView {
    /// The rate limit: api, token, register or report.
    limit: &'static str,
    requests: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SummaryView {
    /// When the figures were taken (UTC).
    at: String,
    /// Unresolved incidents by level, lowest level first.
    incidents: Vec<LevelView>,
    /// Password-grant attempts over the last 24 hours by hour, oldest first (the last hour is in progress).
    logins: Vec<HourView>,
    /// Requests refused by each rate limit since this server process started.
    throttled: Vec<ThrottledView>,
    /// Sessions neither revoked nor expired.
    active_sessions: i64,
}

/// The security dashboard's figures: unresolved incidents by level, logins by hour and outcome
/// over 24 hours, throttled requests, active sessions. Admins and managers.
#[utoipa::path(get, path = "/security/summary", tag = "security operations", security(("bearer" = [])),
    responses((status = 200, body = SummaryView), (status = 401), (status = 403, description = "not an admin or manager")))]
async fn summary(State(app): State<AppState>, who: Principal) -> Result<Json<SummaryView>> {
    let s = security::summary(&app.store, &app.sinks, &who).await?;
    Ok(Json(SummaryView {
        at: s.at.rfc3339(),
        incidents: s
            .incidents
            .into_iter()
            .map(|c| LevelView {
                level: c.level.as_str(),
                open: c.open,
                contained: c.contained,
            })
            .collect(),
        logins: s
            .logins
            .into_iter()
            .map(|h| HourView {
                start: h.start.rfc3339(),
                success: h.success,
                failure: h.failure,
                throttled: h.throttled,
            })
            .collect(),
        throttled: s
            .throttled
            .into_iter()
            .map(|(limit, requests)| ThrottledView { limit, requests })
            .collect(),
        active_sessions: s.active_sessions,
    }))
}

/// The review's parameter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReviewQuery {
    /// An account not logged in for this many days is dormant, 1..=3650 (default 90).
    #[param(minimum = 1, maximum = 3650, nullable = false)]
    dormant_days: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct FindingView {
    id: UserId,
    email: String,
    full_name: String,
    role: Role,
    disabled: bool,
    created_at: String,
    /// The newest session the account opened; null if it never logged in.
    last_login: Option<String>,
    /// Why it is listed: admin, manager, no_second_factor (privileged, password alone),
    /// never_logged_in, dormant (and disabled).
    flags: Vec<&'static str>,
}

#[derive(Serialize, ToSchema)]
pub struct ReviewView {
    dormant_days: u64,
    /// Every admin and manager, and every dormant or never-used account, by email.
    items: Vec<FindingView>,
}

/// The access review: every admin and manager, and every dormant or never-used account, with
/// its last login. Admins only (the ones who can act on it).
#[utoipa::path(get, path = "/access-review", tag = "identity", security(("bearer" = [])), params(ReviewQuery),
    responses((status = 200, body = ReviewView), (status = 401), (status = 403, description = "not an admin"),
        (status = 422, description = "bad dormant_days")))]
async fn review(
    State(app): State<AppState>,
    who: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<ReviewView>> {
    // The policy first: a refused caller learns nothing from the validation of the query.
    let grant = crate::authz::authorize_plain(Some(&who), crate::authz::Action::AccessReviewRead)?;
    let dormant_days = dormant_days(query.as_deref())?;
    let findings = access_review::run(&app.store, &grant, dormant_days).await?;
    Ok(Json(ReviewView {
        dormant_days,
        items: findings
            .into_iter()
            .map(|f| FindingView {
                id: f.user.id,
                email: f.user.email,
                full_name: f.user.full_name,
                role: f.user.role,
                disabled: f.user.disabled,
                created_at: f.user.created_at.rfc3339(),
                last_login: f.last_login.map(|t| t.rfc3339()),
                flags: f.flags,
            })
            .collect(),
    }))
}

/// Reads `dormant_days` (at most once, nothing else).
fn dormant_days(query: Option<&str>) -> Result<u64> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| ValidationError::field("query", "is not a valid query string"))?;
    let mut errors = ValidationError::default();
    let mut days = None;
    for (k, v) in pairs {
        if k != "dormant_days" {
            errors.push(k, "is not a parameter of this request");
        } else if days.is_some() {
            errors.push(k, "is given more than once");
        } else {
            match v.parse::<u64>() {
                Ok(n) if (1..=MAX_DORMANT_DAYS).contains(&n) => days = Some(n),
                _ => {
                    errors.push("dormant_days", "must be an integer from 1 to 3650");
                    days = Some(0);
                }
            }
        }
    }
    errors.into_result()?;
    Ok(days.unwrap_or(DEFAULT_DORMANT_DAYS))
}
