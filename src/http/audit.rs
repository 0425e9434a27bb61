//! `GET /api/v1/audit`: the audit trail for admins, newest first, with a check of the hash chain
//! whose cost does not grow with the trail (`service::audit::page::list`). Nothing in the API writes,
//! changes or deletes audit rows.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::page::{self, PageQuery};
use crate::authz::{self, Action, Principal};
use crate::error::Result;
use crate::service::audit::check::ChainReport;
use crate::service::audit::page::Entry;
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

/// The audit trail, newest first (sealed rows; new events appear within a second), and whether
/// its hash chain is intact. Admins only.
#[utoipa::path(get, path = "/audit", tag = "security operations", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = AuditPage), (status = 401), (status = 403, description = "not an admin"),
        (status = 422, description = "bad limit or cursor")))]
async fn list(
    State(app): State<AppState>,
    who: Principal,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditPage>> {
    let grant = authz::authorize_plain(Some(&who), Action::AuditRead)?;
    let req = page::parse(query.as_deref(), &app.cursors, LIST, who.user_id())?;
    // Cursor positions are sequence numbers, carried in the cursor's 128 bits.
    let before = req.after.map(|u| u.as_u128() as i64);
    let (rows, chain) =
        crate::service::audit::page::list(&app.trail, &grant, before, req.limit).await?;
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
