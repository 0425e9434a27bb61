//! The tamper-evident audit trail. Security events are written in the transaction of the change
//! they describe (or on their own); a sealer then gives each, in the order it meets them, the next
//! sequence number and `hash = SHA-256(prev hash, seq, every field)`. At checkpoints the chain
//! head is signed with an Ed25519 key derived from the newest data key, which the database does
//! not hold: rewriting the whole table after a checkpoint breaks its signature, and every
//! checkpoint is also written to the log, for a SIEM to keep.
//!
//! `verify` walks the chain and names the first edited, deleted or reordered row.

use std::time::Duration;

use aws_lc_rs::signature::{self, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::data::DataKeyring;
use crate::db::Db;
use crate::db::audit::{self, AuditRow, Checkpoint};
use crate::domain::Timestamp;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const SIGNING_INFO: &[u8] = b"imangor audit checkpoint key v1 (Ed25519 seed)";
/// Rows sealed per transaction.
const BATCH: i64 = 1000;
/// How often the sealer looks for new rows.
pub const SEAL_EVERY: Duration = Duration::from_millis(500);

/// The chain hash of a row: its predecessor's hash, its place, and every field, each length-prefixed.
pub fn chain_hash(prev: &str, seq: i64, r: &AuditRow) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"imangor-audit-v1\n");
    ctx.update(prev.as_bytes());
    ctx.update(format!("\n{seq}\n{}\n", r.at).as_bytes());
    for field in [
        Some(r.id.as_str()),
        Some(r.action.as_str()),
        Some(r.outcome.as_str()),
        Some(r.severity.as_str()),
        r.actor_id.as_deref(),
        r.target.as_deref(),
        r.ip.as_deref(),
        r.request_id.as_deref(),
        r.detail.as_deref(),
    ] {
        match field {
            Some(v) => {
                ctx.update(format!("{}:", v.len()).as_bytes());
                ctx.update(v.as_bytes());
                ctx.update(b"\n");
            }
            None => ctx.update(b"-\n"),
        }
    }
    crate::crypto::hex(ctx.finish().as_ref())
}

fn signer(keys: &DataKeyring, key_id: &str) -> Option<Ed25519KeyPair> {
    let seed = keys.derived(key_id, SIGNING_INFO)?;
    Ed25519KeyPair::from_seed_unchecked(&seed[..]).ok()
}

fn signed_message(seq: i64, hash: &str) -> Vec<u8> {
    format!("imangor audit checkpoint v1\n{seq}\n{hash}").into_bytes()
}

/// Seals every row not sealed yet (in batches); signs a checkpoint when one is due. Returns how
/// many rows were sealed. One sealer runs at a time across replicas (a database lock).
pub async fn seal_pending(
    db: &Db,
    keys: &DataKeyring,
    contain: &crate::service::incidents::Containment,
) -> anyhow::Result<Vec<crate::service::incidents::Raised>> {
    let mut sealed = 0u64;
    let mut raised = Vec::new();
    // A plain read first: the write lock is taken only when there is something to seal.
    if audit::count_unsealed(db).await? == 0 {
        return Ok(raised);
    }
    loop {
        let mut tx = audit::begin_sealing(db).await?;
        let (mut seq, mut prev) = audit::head(&mut tx)
            .await?
            .unwrap_or((0, GENESIS.to_owned()));
        let rows = audit::unsealed(&mut tx, BATCH).await?;
        for r in &rows {
            seq += 1;
            let hash = chain_hash(&prev, seq, r);
            audit::seal(&mut tx, &r.id, seq, &prev, &hash).await?;
            prev = hash;
        }
        // The detectors read the events as they join the chain, in the same transaction.
        crate::service::incidents::detect(&mut tx, &rows, contain, &mut raised).await?;
        // Every pass that sealed rows signs the new head (at most one checkpoint per pass).
        let now = Timestamp::now();
        if sealed + rows.len() as u64 > 0
            && (rows.len() as i64) < BATCH
            && let Some(key) = signer(keys, keys.current())
        {
            let sig = key.sign(&signed_message(seq, &prev));
            let c = Checkpoint {
                seq,
                hash: prev.clone(),
                key_id: keys.current().to_owned(),
                signature: URL_SAFE_NO_PAD.encode(sig.as_ref()),
                at: now.micros(),
            };
            audit::insert_checkpoint(&mut tx, &c).await?;
            tracing::info!(target: "audit", seq, hash = %prev, key_id = %c.key_id, signature = %c.signature, "audit checkpoint");
        }
        tx.commit().await?;
        sealed += rows.len() as u64;
        if (rows.len() as i64) < BATCH {
            return Ok(raised);
        }
    }
}

/// One sealing pass of a server: seals, detects, then counts and alerts what was raised.
/// The events the detectors wrote (incident openings, containment) are sealed by the next pass.
pub async fn seal_and_detect(app: &crate::state::AppState) -> anyhow::Result<()> {
    // Everything queued before this pass is written first, so the pass sees it.
    app.events.flush().await;
    let raised = seal_pending(&app.db, &app.keys, &app.config.containment).await?;
    if !raised.is_empty() {
        crate::service::incidents::after_commit(app, &raised);
        app.blocks.refresh(&app.db).await?;
        seal_pending(&app.db, &app.keys, &app.config.containment).await?;
    }
    Ok(())
}

/// Seals new rows every `SEAL_EVERY` until the process stops (the server seals once more at shutdown).
pub async fn sealer(app: crate::state::AppState) {
    let mut every = tokio::time::interval(SEAL_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = seal_and_detect(&app).await {
            tracing::warn!(error = %format!("{e:#}"), "sealing the audit trail failed; retrying");
        }
    }
}

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

/// The first break in the chain.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Problem {
    /// Where the chain breaks.
    pub seq: i64,
    /// `edited`, `deleted`, `reordered` or `checkpoint`.
    pub kind: &'static str,
    pub message: String,
}

/// What a walk of the chain found.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ChainReport {
    pub verified: bool,
    /// Sealed rows checked.
    pub rows: u64,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// Rows written but not sealed yet (sealed within a second by a running server).
    pub unsealed: i64,
    pub first_problem: Option<Problem>,
}

/// Walks the whole chain in order, checking every link, every hash and every checkpoint.
pub async fn verify(db: &Db, keys: &DataKeyring) -> anyhow::Result<ChainReport> {
    let checkpoints = audit::checkpoints(db).await?;
    let mut cps = checkpoints.iter().peekable();
    let mut report = ChainReport {
        verified: true,
        rows: 0,
        checkpoints: 0,
        unsealed: audit::count_unsealed(db).await?,
        first_problem: None,
    };
    let mut expected = 1i64;
    let mut prev = GENESIS.to_owned();
    let fail = |report: &mut ChainReport, seq, kind, message: String| {
        report.verified = false;
        report.first_problem = Some(Problem { seq, kind, message });
    };
    'walk: loop {
        let rows = audit::sealed_after(db, expected - 1, 2000).await?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            let seq = r.seq.unwrap_or_default();
            if seq != expected {
                fail(
                    &mut report,
                    expected,
                    "deleted",
                    format!("rows {expected}..{} are missing", seq - 1),
                );
                break 'walk;
            }
            if r.prev_hash.as_deref() != Some(prev.as_str()) {
                fail(
                    &mut report,
                    seq,
                    "reordered",
                    format!(
                        "row {seq} ({}) does not follow row {}: moved, or the row before it was replaced",
                        r.id,
                        seq - 1
                    ),
                );
                break 'walk;
            }
            let hash = chain_hash(&prev, seq, &r);
            if r.hash.as_deref() != Some(hash.as_str()) {
                fail(
                    &mut report,
                    seq,
                    "edited",
                    format!("row {seq} ({}) was changed after it was sealed", r.id),
                );
                break 'walk;
            }
            while let Some(c) = cps.next_if(|c| c.seq <= seq) {
                report.checkpoints += 1;
                if let Err(why) =
                    check_checkpoint(c, if c.seq == seq { Some(&hash) } else { None }, keys)
                {
                    fail(&mut report, c.seq, "checkpoint", why);
                    break 'walk;
                }
            }
            prev = hash;
            expected += 1;
            report.rows += 1;
        }
    }
    if report.verified
        && let Some(c) = cps.next()
    {
        fail(
            &mut report,
            expected,
            "deleted",
            format!(
                "the chain ends at row {}, but a signed checkpoint names row {}: the rows after it were removed",
                expected - 1,
                c.seq
            ),
        );
    }
    // Every sealing pass signs its head: a chain whose newest rows no checkpoint covers had
    // its checkpoints removed (or rows appended by hand).
    if report.verified && report.rows > 0 && report.checkpoints == 0 {
        fail(
            &mut report,
            1,
            "checkpoint",
            "the chain has no signed checkpoint: they were removed".to_owned(),
        );
    } else if report.verified
        && let Some(last) = checkpoints.last()
        && last.seq != expected - 1
    {
        fail(
            &mut report,
            last.seq + 1,
            "checkpoint",
            format!(
                "rows after {} are covered by no signed checkpoint: added or rewritten outside the sealer",
                last.seq
            ),
        );
    }
    Ok(report)
}

fn check_checkpoint(
    c: &Checkpoint,
    row_hash: Option<&String>,
    keys: &DataKeyring,
) -> Result<(), String> {
    let Some(hash) = row_hash else {
        return Err(format!(
            "checkpoint {} names a row that is not in the chain",
            c.seq
        ));
    };
    if *hash != c.hash {
        return Err(format!(
            "row {} does not match its signed checkpoint: the trail was rewritten",
            c.seq
        ));
    }
    let Some(key) = signer(keys, &c.key_id) else {
        return Err(format!(
            "checkpoint {} was signed with data key {}, which is not in the keyring",
            c.seq, c.key_id
        ));
    };
    let sig = URL_SAFE_NO_PAD
        .decode(&c.signature)
        .map_err(|_| format!("checkpoint {}: malformed signature", c.seq))?;
    signature::UnparsedPublicKey::new(&signature::ED25519, key.public_key().as_ref())
        .verify(&signed_message(c.seq, &c.hash), &sig)
        .map_err(|_| format!("checkpoint {}: the signature does not verify", c.seq))
}

/// Before a data key leaves the keyring: checks the checkpoints it signed, then signs them again
/// with the newest key, so the trail stays verifiable. Returns how many were signed again.
pub async fn resign_checkpoints(
    db: &Db,
    keys: &DataKeyring,
    retiring: &str,
) -> anyhow::Result<u64> {
    let current = keys.current();
    anyhow::ensure!(
        current != retiring,
        "the newest data key signs checkpoints; it cannot be retired"
    );
    let new_key =
        signer(keys, current).ok_or_else(|| anyhow::anyhow!("no signing key for {current}"))?;
    let mut n = 0;
    for c in audit::checkpoints(db)
        .await?
        .into_iter()
        .filter(|c| c.key_id == retiring)
    {
        check_checkpoint(&c, Some(&c.hash), keys)
            .map_err(|why| anyhow::anyhow!("{why}: run `imangor audit verify`"))?;
        let sig = new_key.sign(&signed_message(c.seq, &c.hash));
        audit::resign(db, c.seq, current, &URL_SAFE_NO_PAD.encode(sig.as_ref())).await?;
        n += 1;
    }
    Ok(n)
}

/// The event writer: events that go with no change are queued and written in batches by one
/// task, so a request never waits for the disk to record a refusal. `flush` (at shutdown)
/// returns once everything queued before it is written.
#[derive(Clone)]
pub struct EventSink {
    tx: tokio::sync::mpsc::Sender<Queued>,
}

enum Queued {
    Event(crate::db::events::NewEvent),
    Flush(tokio::sync::oneshot::Sender<()>),
}

const QUEUE: usize = 16_384;
const WRITE_BATCH: usize = 512;

impl EventSink {
    pub fn start(db: Db) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
        tokio::spawn(write_events(db, rx));
        Self { tx }
    }

    pub async fn send(&self, e: crate::db::events::NewEvent) {
        match self.tx.try_send(Queued::Event(e)) {
            Ok(()) => {}
            // Full: wait for room rather than lose the event (the database is slow or down).
            Err(tokio::sync::mpsc::error::TrySendError::Full(q)) => {
                let _ = self.tx.send(q).await;
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("the event writer has stopped: event lost");
            }
        }
    }

    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(Queued::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_events(db: Db, mut rx: tokio::sync::mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(q) = next.take() {
            match q {
                Queued::Event(e) => batch.push(e),
                Queued::Flush(done) => flushes.push(done),
            }
            if batch.len() < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        // Retried until written: an outage delays events, it does not drop them.
        let mut wait = Duration::from_millis(100);
        while !batch.is_empty() {
            match write_batch(&db, &batch).await {
                Ok(()) => batch.clear(),
                Err(e) => {
                    tracing::warn!(error = %e, events = batch.len(), "writing security events failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn write_batch(db: &Db, batch: &[crate::db::events::NewEvent]) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    for e in batch {
        crate::db::events::insert(&mut tx, e).await?;
    }
    tx.commit().await
}
