//! Reading the audit trail: a page for the API (newest first, with a check of the chain whose cost
//! does not grow with the trail) and the export for a SIEM (JSON Lines, or OCSF events).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_core::future::BoxFuture;

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

/// How the trail is exported: `jsonl` (each row as the API shows it, the default) or `ocsf` (each
/// row as an OCSF event, `super::ocsf`). Both are one JSON object a line, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Jsonl,
    Ocsf,
}

impl Format {
    pub const NAMES: [&'static str; 2] = ["jsonl", "ocsf"];
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "ocsf" => Ok(Format::Ocsf),
            _ => Err(format!("is not one of {}", Format::NAMES.join(", "))),
        }
    }
}

/// Rows read per query of an export.
const EXPORT_BATCH: i64 = 2000;

/// The next sealed rows after `after` written in `format`: the lines, the last row's seq and how
/// many rows; `None` when there are no more.
async fn export_batch(db: &Db, after: i64, format: Format) -> Result<Option<(Vec<u8>, i64, u64)>> {
    let rows = audit::sealed_after(db, after, EXPORT_BATCH).await?;
    let Some(last) = rows.last().and_then(|r| r.seq) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(rows.len() * 512);
    let n = rows.len() as u64;
    for r in rows {
        let line = match format {
            Format::Jsonl => serde_json::to_writer(&mut out, &Entry::from(r)),
            Format::Ocsf => serde_json::to_writer(&mut out, &super::ocsf::event(&r)),
        };
        line.map_err(anyhow::Error::from)?;
        out.push(b'\n');
    }
    Ok(Some((out, last, n)))
}

/// Writes sealed rows after `after` in `format`, oldest first (for a SIEM). Returns the count.
pub async fn export(
    db: &Db,
    after: i64,
    format: Format,
    out: &mut impl std::io::Write,
) -> anyhow::Result<u64> {
    let (mut after, mut n) = (after, 0);
    while let Some((lines, last, count)) = export_batch(db, after, format).await? {
        out.write_all(&lines)?;
        (after, n) = (last, n + count);
    }
    Ok(n)
}

/// The export for the API: the caller's permission to read the trail, then the sealed rows after
/// `after` in `format`, read a batch at a time as the answer is sent (`ExportStream`).
pub fn stream(
    trail: &Trail,
    grant: &Authorized<()>,
    after: i64,
    format: Format,
) -> Result<ExportStream> {
    grant.require(Action::AuditRead)?;
    Ok(ExportStream {
        db: trail.store.db.clone(),
        after,
        format,
        next: None,
        done: false,
    })
}

type Batch = Result<Option<(Vec<u8>, i64, u64)>>;

/// The export as a stream of batches of lines; it ends after the last sealed row, or at the first
/// error (logged; the answer is then cut short).
pub struct ExportStream {
    db: Db,
    after: i64,
    format: Format,
    next: Option<BoxFuture<'static, Batch>>,
    done: bool,
}

impl Stream for ExportStream {
    type Item = Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let next = this.next.get_or_insert_with(|| {
            let (db, after, format) = (this.db.clone(), this.after, this.format);
            Box::pin(async move { export_batch(&db, after, format).await })
        });
        let batch = std::task::ready!(next.as_mut().poll(cx));
        this.next = None;
        Poll::Ready(match batch {
            Ok(Some((lines, last, _))) => {
                this.after = last;
                Some(Ok(lines))
            }
            Ok(None) => {
                this.done = true;
                None
            }
            Err(e) => {
                tracing::error!(error = ?e, "exporting the audit trail failed");
                this.done = true;
                Some(Err(e))
            }
        })
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
