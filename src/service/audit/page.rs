//! Reading the audit trail: a page for the API (newest first, with a check of the chain whose cost
//! does not grow with the trail) and the export for a SIEM.

use crate::authz::{Action, Authorized};
use crate::db::Db;
use crate::db::audit::{self, AuditRow};
use crate::domain::Timestamp;
use crate::error::Result;
use crate::service::audit::check::{self, ChainReport, Trail};

/// An audit row as the API and `imangor audit export` show it: UTC RFC 3339 time.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Entry {
    pub seq: i64,
    pub at: String,
    pub action: String,
    pub outcome: String,
    pub severity: String,
    pub actor_id: Option<String>,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
    pub hash: String,
}

impl From<AuditRow> for Entry {
    fn from(r: AuditRow) -> Self {
        Entry {
            seq: r.seq.unwrap_or_default(),
            at: Timestamp::from_micros(r.at).rfc3339(),
            action: r.action,
            outcome: r.outcome,
            severity: r.severity,
            actor_id: r.actor_id,
            target: r.target,
            ip: r.ip,
            request_id: r.request_id,
            detail: r.detail,
            hash: r.hash.unwrap_or_default(),
        }
    }
}

/// Writes sealed rows after `after` as JSON Lines, oldest first (for a SIEM). Returns the count.
pub async fn export(db: &Db, after: i64, out: &mut impl std::io::Write) -> anyhow::Result<u64> {
    let (mut after, mut n) = (after, 0);
    loop {
        let rows = audit::sealed_after(db, after, 2000).await?;
        let Some(last) = rows.last() else {
            return Ok(n);
        };
        after = last.seq.unwrap_or(after);
        for r in rows {
            serde_json::to_writer(&mut *out, &Entry::from(r))?;
            out.write_all(b"\n")?;
            n += 1;
        }
    }
}

/// Rows before `before` (a sequence number; none: the newest), newest first, `limit + 1` of them so
/// the caller knows if more follow, and what a check of the chain found: the rows after the
/// newest checkpoint, and the first `limit` rows read (those shown), hashed too when they lie
/// before it. `grant` is the caller's permission to read the trail, decided once by the handler.
pub async fn list(
    trail: &Trail,
    grant: &Authorized<()>,
    before: Option<i64>,
    limit: u32,
) -> Result<(Vec<Entry>, ChainReport)> {
    grant.require(Action::AuditRead)?;
    let rows = audit::page(&trail.store.db, before, i64::from(limit) + 1).await?;
    let mut chain = check::check_recent(trail).await?;
    let seqs = rows.iter().take(limit as usize).filter_map(|r| r.seq);
    if let (Some(lo), Some(hi)) = (seqs.clone().min(), seqs.max()) {
        check::check_page(trail, lo, hi, &mut chain).await?;
    }
    Ok((rows.into_iter().map(Entry::from).collect(), chain))
}
