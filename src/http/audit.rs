//! `GET /api/v1/audit`: the audit trail for admins, newest first, with a check of the hash chain
//! whose cost does not grow with the trail (`service::audit::page::list`); with `format`, the export
//! for a SIEM, oldest first, one JSON object a line (`jsonl`: the rows as the page shows them;
//! `ocsf`: OCSF events, `service::audit::ocsf`). Nothing in the API writes, changes or deletes
//! audit rows.

use axum::Json;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::page::{self, PageQuery, once};
use crate::authz::{self, Action, Principal};
use crate::error::{Result, ValidationError};
use crate::service::audit::check::ChainReport;
use crate::service::audit::page::{Entry, Format};
use crate::state::AppState;

const LIST: &str = "audit";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    items: Vec<Entry>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    next_cursor: Option<String>,
    /// The chain check made for this answer: the rows after the newest signed checkpoint, the
    /// rows this page shows (from the checkpoints around them), and what this server's periodic
    /// walks of the whole chain found (`full_check_at`).
    chain: ChainReport,
}

/// The export's parameters (with `format`, instead of `limit` and `cursor`).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ExportQuery {
    /// `jsonl` (the rows as the page shows them) or `ocsf` (OCSF 1.3.0 events): the whole sealed
    /// trail, oldest first, one JSON object a line (`application/x-ndjson`). Absent: the page.
    #[param(nullable = false, pattern = "^(jsonl|ocsf)$")]
    format: Option<String>,
    /// With `format`: only the rows after this sequence number (where the last export stopped).
    #[param(minimum = 0, nullable = false)]
    after: Option<i64>,
}

/// The audit trail, newest first (sealed rows; new events appear within a second), and whether
/// its hash chain is intact; or, with `format`, the sealed trail exported for a SIEM. Admins only.
#[utoipa::path(get, path = "/audit", tag = "security operations", security(("bearer" = [])), params(PageQuery, ExportQuery),
    responses((status = 200, description = "the page; with `format`, JSON Lines, one event a line",
            content((AuditPage = "application/json"), (String = "application/x-ndjson"))),
        (status = 401), (status = 403, description = "not an admin"),
        (status = 422, description = "bad limit, cursor, format or after")))]
async fn list(
    State(app): State<AppState>,
    who: Principal,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let grant = authz::authorize_plain(Some(&who), Action::AuditRead)?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
            .map_err(|_| ValidationError::field("query", "is not a valid query string"))?;
    let mut errors = ValidationError::default();
    let (mut format, mut after, mut rest) = (None, None, Vec::new());
    for (k, v) in pairs {
        match k.as_str() {
            "format" => once(&mut errors, &k, &mut format, v.parse::<Format>()),
            "after" => {
                let seq = v
                    .parse::<i64>()
                    .ok()
                    .filter(|s| *s >= 0)
                    .ok_or_else(|| "must be a sequence number (an integer from 0)".to_owned());
                once(&mut errors, &k, &mut after, seq)
            }
            _ => rest.push((k, v)),
        }
    }
    let Some(format) = format else {
        if after.is_some() {
            errors.push("after", "is a parameter of an export (with format)");
        }
        errors.into_result()?;
        let rest = serde_urlencoded::to_string(&rest).unwrap_or_default();
        return Ok(trail_page(&app, &who, &grant, &rest).await?.into_response());
    };
    for (k, _) in rest {
        errors.push(k, "is not a parameter of an export");
    }
    errors.into_result()?;
    let lines =
        crate::service::audit::page::stream(&app.trail, &grant, after.unwrap_or(0), format)?;
    let mut res = Body::from_stream(lines).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(res)
}

/// A page of the trail, newest first, with its chain check.
async fn trail_page(
    app: &AppState,
    who: &Principal,
    grant: &authz::Authorized<()>,
    query: &str,
) -> Result<Json<AuditPage>> {
    let req = page::parse(Some(query), &app.cursors, LIST, who.user_id())?;
    // Cursor positions are sequence numbers, carried in the cursor's 128 bits.
    let before = req.after.map(|u| u.as_u128() as i64);
    let (rows, chain) =
        crate::service::audit::page::list(&app.trail, grant, before, req.limit).await?;
    let (items, next_cursor) = page::finish(
        rows,
        req,
        |r| uuid::Uuid::from_u128(r.seq as u128),
        &app.cursors,
        LIST,
        who.user_id(),
    );
    Ok(Json(AuditPage {
        items,
        next_cursor,
        chain,
    }))
}
