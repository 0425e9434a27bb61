//! The tamper-evident audit trail. Security events are written in the transaction of the change
//! they describe (or on their own); a sealer then gives each, in the order it meets them, the next
//! sequence number and `hash = SHA-256(prev hash, seq, every field)`. On a schedule (N rows or M
//! seconds after the last one) the chain head is signed with an Ed25519 key derived from the
//! newest data key, which the database does not hold: rewriting the table before a checkpoint
//! breaks its signature, and every checkpoint is also written to the log, for a SIEM to keep.
//! Every pass that seals rows also signs the head it leaves (`audit_head`), so the rows after the
//! newest checkpoint end at a signed row that every replica, and a restarted server, checks.
//! Tampering stops signing, never sealing (the detectors keep running), and is raised once as an
//! `audit_tampering` incident.
//!
//! `verify` walks the whole chain and names the first edited, deleted or reordered row;
//! `check_recent` (the API's page) checks the rows after the newest checkpoint, in time that does
//! not grow with the trail, and reports what `rewalk` (each server, every minute, the whole chain
//! every hour) found before it.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{CheckpointSchedule, Config};
use crate::crypto::chain::{
    GENESIS, Problem, Verdict, chain_hash, checkpoint_verdict, head_message, head_signature_holds,
    problem, sign_with, signed_message, signed_message_v1, signer, verdict,
};
use crate::crypto::data::DataKeyring;
use crate::db::Db;
use crate::db::audit::{self, Checkpoint};
use crate::domain::Timestamp;
use crate::limits::blocks::Blocklist;
use crate::service::context::{Sinks, Store};

/// What sealing and checking the chain use, built once with the application.
#[derive(Clone)]
pub struct Trail {
    pub store: Store,
    pub sinks: Sinks,
    /// Reloaded at once when a pass's detectors blocked an address.
    pub blocks: Arc<Blocklist>,
    pub keys: Arc<DataKeyring>,
    /// How far this process has verified the chain.
    pub chain: Arc<ChainWatch>,
    pub config: Arc<Config>,
}

/// Rows sealed per transaction.
const BATCH: i64 = 1000;
/// How often the sealer looks for new rows.
pub const SEAL_EVERY: Duration = Duration::from_millis(500);

/// Whether a sealing pass signs the head it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// When the schedule says so: `IMANGOR_AUDIT_CHECKPOINT_EVENTS` rows or
    /// `IMANGOR_AUDIT_CHECKPOINT_INTERVAL` since the newest checkpoint.
    WhenDue,
    /// Always (a server that stops leaves no unsigned row).
    Now,
}

/// Whether the head is due for a checkpoint: rows follow the newest checkpoint (or there is
/// none), and enough of them, or for long enough.
fn due(
    schedule: CheckpointSchedule,
    sign: Sign,
    head: i64,
    last: Option<(i64, i64)>,
    now: Timestamp,
) -> bool {
    let unsigned = head.saturating_sub(last.map_or(0, |(seq, _)| seq));
    unsigned > 0
        && match (sign, last) {
            (Sign::Now, _) | (_, None) => true,
            (Sign::WhenDue, Some((_, at))) => {
                unsigned >= schedule.events
                    || now.micros().saturating_sub(at) >= micros(schedule.every)
            }
        }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Seals every row not sealed yet (in batches), runs the detectors on them, and signs the head it
/// leaves (`audit_head`) and, when one is due, a checkpoint. Returns the incidents the detectors
/// raised and the first problem the chain check found. One sealer runs at a time across replicas
/// (a database lock).
///
/// A chain this process cannot vouch for (a problem found now or before, until it restarts) is
/// still sealed, so that the detectors keep running, but nothing more is signed over it: neither
/// a checkpoint nor the head.
pub async fn seal_pending(
    store: &Store,
    keys: &DataKeyring,
    watch: &ChainWatch,
    contain: &crate::config::Containment,
    schedule: CheckpointSchedule,
    sign: Sign,
) -> anyhow::Result<(Vec<crate::service::incidents::Raised>, Option<Problem>)> {
    let db = &store.db;
    let mut raised = Vec::new();
    let mut found = None;
    // Plain reads first: the write lock is taken only when there is something to seal, or a
    // quiet tail of sealed rows has waited long enough for its checkpoint (and may be signed).
    if audit::count_unsealed(db).await? == 0 {
        let (head, last) = audit::tail(db).await?;
        if !due(schedule, sign, head, last, Timestamp::now()) || watch.lasting() {
            return Ok((raised, found));
        }
    }
    // The chain is checked before the real key's signature goes on its head: an attacker who can
    // write the database must not get it on a rewritten chain.
    let mut base = checked_base(db, keys, watch, schedule, false, &mut found).await?;
    // Checks made again because the chain moved since the last one.
    let mut rechecks = 0;
    loop {
        let mut tx = audit::begin_sealing(db).await?;
        let (mut seq, mut prev) = audit::head(&mut tx)
            .await?
            .unwrap_or((0, GENESIS.to_owned()));
        let last = audit::last_checkpoint(&mut tx).await?;
        let signed_head = audit::signed_head_tx(&mut tx).await?;
        if let Some(b) = &base
            && ((seq, prev.as_str(), last) != (b.seq, b.hash.as_str(), b.last)
                || signed_head != b.signed)
        {
            // Another sealer (a replica, or this server's own) sealed since the check, or the
            // chain changed: checked again from what is there now (a stop still signs), a few
            // times, then left to the next pass.
            drop(tx);
            rechecks += 1;
            if rechecks > 3 {
                return Ok((raised, found));
            }
            base = checked_base(db, keys, watch, schedule, false, &mut found).await?;
            continue;
        }
        let rows = audit::unsealed(&mut tx, BATCH).await?;
        // At most one checkpoint per transaction, on the schedule: a pass that seals a few rows
        // leaves them to a later checkpoint (at most `schedule.events` rows, `schedule.every` old).
        // Once tampering was found nothing is signed until the process restarts.
        let now = Timestamp::now();
        let trusted = base.is_some() && !watch.lasting();
        let signs = trusted
            && due(
                schedule,
                sign,
                seq.saturating_add(rows.len() as i64),
                last,
                now,
            );
        if signs && base.as_ref().is_some_and(|b| !b.hashed) {
            // About to sign: the rows after the newest checkpoint are hashed first (an edit leaves
            // the head's hash as it was). Nothing is written yet; dropping `tx` rolls it back.
            drop(tx);
            base = checked_base(db, keys, watch, schedule, true, &mut found).await?;
            continue;
        }
        for r in &rows {
            seq = seq
                .checked_add(1)
                .ok_or_else(|| anyhow::anyhow!("the audit chain has no seq left after {seq}"))?;
            let hash = chain_hash(&prev, seq, r);
            audit::seal(&mut tx, &r.id, seq, &prev, &hash).await?;
            prev = hash;
        }
        // The detectors read the events as they join the chain, in the same transaction.
        crate::service::incidents::detect(&mut tx, &rows, contain, &mut raised).await?;
        let mut signed = None;
        let mut head_signed = false;
        if trusted
            && (signs || !rows.is_empty())
            && let Some(key) = signer(keys, keys.current())
        {
            let at = now.micros();
            let key_id = keys.current().to_owned();
            if signs {
                let c = Checkpoint {
                    seq,
                    hash: prev.clone(),
                    key_id: key_id.clone(),
                    signature: sign_with(&key, &signed_message(seq, &prev, at)),
                    at,
                };
                audit::insert_checkpoint(&mut tx, &c).await?;
                tracing::info!(target: "audit", seq, hash = %prev, key_id = %c.key_id, signature = %c.signature, at, "audit checkpoint");
                signed = Some(Anchor::from(&c));
            }
            // The head moves with every pass that sealed: one signature, whatever the rows.
            let h = Checkpoint {
                seq,
                hash: prev.clone(),
                key_id,
                signature: sign_with(&key, &head_message(seq, &prev, at)),
                at,
            };
            audit::put_signed_head(&mut tx, &h).await?;
            head_signed = true;
        }
        // The detectors may have contained (revoked sessions, blocked an address): announced.
        store.commit(tx).await?;
        if let Some(b) = &mut base {
            b.seq = seq;
            b.hash = prev.clone();
            if let Some(a) = &signed {
                b.last = Some((a.seq, a.at));
            }
            if head_signed {
                b.signed = Some((seq, prev.clone()));
            }
            // The rows this transaction sealed were hashed from what it read; a new checkpoint
            // leaves no row after it.
            b.hashed = b.hashed || signed.is_some();
        }
        watch.sealed(seq, &prev, signed);
        if (rows.len() as i64) < BATCH {
            return Ok((raised, found));
        }
    }
}

/// `sealing_base`, with a problem it finds remembered (the sealer signs nothing more until the
/// process restarts) and kept in `found` (the first one): `None` then.
async fn checked_base(
    db: &Db,
    keys: &DataKeyring,
    watch: &ChainWatch,
    schedule: CheckpointSchedule,
    before_signing: bool,
    found: &mut Option<Problem>,
) -> anyhow::Result<Option<Base>> {
    Ok(
        match sealing_base(db, keys, watch, schedule, before_signing).await? {
            Ok(base) => base,
            Err(p) => {
                watch.tampered(p.clone());
                found.get_or_insert(p);
                None
            }
        },
    )
}

/// The head a sealing pass extends, as checked before it: its row, the newest checkpoint's
/// (seq, at), and the signed head's (seq, hash).
struct Base {
    seq: i64,
    hash: String,
    last: Option<(i64, i64)>,
    signed: Option<(i64, String)>,
    /// The rows after the newest checkpoint were hashed and linked by this pass.
    hashed: bool,
}

/// The end of the chain, read consistently: the newest checkpoint, the signed head, and the last
/// sealed row (seq 0 and the genesis hash when none; its hash absent where it was removed).
struct End {
    newest: Option<Checkpoint>,
    signed: Option<Checkpoint>,
    seq: i64,
    hash: Option<String>,
}

async fn read_end(db: &Db) -> anyhow::Result<End> {
    // The checkpoint and the signed head are read before the last row and again after it: a
    // sealer that committed in between (rows, head and checkpoint together) makes them read again.
    let key = |n: &Option<Checkpoint>, s: &Option<Checkpoint>| {
        (
            n.as_ref().map(|c| c.seq),
            s.as_ref().map(|h| (h.seq, h.hash.clone(), h.at)),
        )
    };
    let mut tries = 0;
    loop {
        let newest = audit::checkpoint_upto(db, i64::MAX).await?;
        let signed = audit::signed_head(db).await?;
        let (seq, hash) = match audit::head_row(db).await? {
            None => (0, Some(GENESIS.to_owned())),
            Some(h) => h,
        };
        let again = audit::checkpoint_upto(db, i64::MAX).await?;
        let signed_again = audit::signed_head(db).await?;
        if key(&newest, &signed) == key(&again, &signed_again) {
            return Ok(End {
                newest,
                signed,
                seq,
                hash,
            });
        }
        tries += 1;
        anyhow::ensure!(
            tries < 5,
            "the audit chain kept moving while it was checked"
        );
    }
}

/// The data key that signed the head, when this keyring does not hold it: a key being rolled out
/// (made first on a replica before every replica holds it) signs heads this process cannot check.
fn unknown_head_key<'a>(keys: &DataKeyring, end: &'a End) -> Option<&'a str> {
    let h = end.signed.as_ref()?;
    (!keys.ids().any(|id| id == h.key_id)).then_some(h.key_id.as_str())
}

/// `check_signed_head` on a server: a head it cannot check (`unknown_head_key`) is warned about
/// once, and is neither a problem nor verified (the second value: false).
async fn check_signed_head_here(
    db: &Db,
    keys: &DataKeyring,
    watch: &ChainWatch,
    end: &End,
) -> anyhow::Result<(Option<Problem>, bool)> {
    if let Some(k) = unknown_head_key(keys, end) {
        watch.cannot_verify(k);
        return Ok((None, false));
    }
    Ok((check_signed_head(db, keys, end).await?, true))
}

/// Checks the end of the chain against its signed head (`audit_head`, written by every sealing
/// pass that sealed rows): the signature holds, the head is at or after the newest checkpoint
/// (each checkpoint moves it too), and the chain ends exactly at its row, with its hash. With
/// none (a trail from before the signed head, or an empty one), the chain must end at its newest
/// checkpoint.
async fn check_signed_head(
    db: &Db,
    keys: &DataKeyring,
    end: &End,
) -> anyhow::Result<Option<Problem>> {
    let (seq, newest) = (end.seq, end.newest.as_ref().map_or(0, |c| c.seq));
    let Some(h) = &end.signed else {
        if seq > newest {
            return Ok(Some(problem(
                newest.saturating_add(1),
                "checkpoint",
                format!(
                    "rows {}..{seq} follow the newest checkpoint, but the signed head is missing: it was removed, so these rows could have been rewritten",
                    newest.saturating_add(1)
                ),
            )));
        }
        // A checkpoint whose signature covers its time was written with a head, in the same
        // transaction: with none now, it was removed, with any rows after the checkpoint.
        return Ok(end
            .newest
            .as_ref()
            .filter(|c| checkpoint_verdict(keys, c) == Verdict::Holds(0))
            .map(|c| {
                problem(
                    c.seq.saturating_add(1),
                    "checkpoint",
                    format!(
                        "the signed head is missing, but checkpoint {} was signed with one: it was removed, and any rows after the checkpoint with it",
                        c.seq
                    ),
                )
            }));
    };
    let message = head_message(h.seq, &h.hash, h.at);
    match verdict(keys, &h.key_id, &h.signature, &[&message]) {
        Verdict::Holds(_) => {}
        Verdict::UnknownKey => {
            return Ok(Some(problem(
                h.seq.max(1),
                "checkpoint",
                format!(
                    "the signed head (row {}) was signed with data key {:?}, which is not in this keyring: it cannot be verified here",
                    h.seq, h.key_id
                ),
            )));
        }
        Verdict::Fails => {
            return Ok(Some(problem(
                h.seq.max(1),
                "checkpoint",
                format!(
                    "the signed head (row {}) does not verify with data key {:?}: it was forged",
                    h.seq, h.key_id
                ),
            )));
        }
    }
    if h.seq < newest {
        return Ok(Some(problem(
            h.seq.saturating_add(1).max(1),
            "checkpoint",
            format!(
                "the signed head names row {}, before the newest checkpoint {newest}: it was put back to an old copy",
                h.seq
            ),
        )));
    }
    if seq < h.seq {
        return Ok(Some(problem(
            seq.saturating_add(1),
            "deleted",
            format!(
                "the chain ends at row {seq}, but its signed head names row {}: the rows after it were removed",
                h.seq
            ),
        )));
    }
    if h.seq >= 1 && row_hash(db, end, h.seq).await?.as_deref() != Some(h.hash.as_str()) {
        return Ok(Some(problem(
            h.seq,
            "edited",
            format!(
                "row {} does not match the signed head: the rows up to it were rewritten",
                h.seq
            ),
        )));
    }
    if seq > h.seq {
        return Ok(Some(problem(
            h.seq.saturating_add(1),
            "checkpoint",
            format!(
                "rows {}..{seq} follow the signed head (row {}): no sealer signed them (sealed while tampering was reported, or added outside the sealer)",
                h.seq.saturating_add(1),
                h.seq
            ),
        )));
    }
    Ok(None)
}

/// Checks the chain the sealer is about to extend and sign: the newest checkpoint's signature and
/// row, at or after the newest checkpoint this process signed or verified (still there, with its
/// row), the head this process sealed or verified last still there with its hash (the rows up to
/// it not cut back or rewritten), the signed head (`check_signed_head`: the chain ends at it, with
/// its hash, whoever sealed it), and, before a checkpoint is signed (`before_signing`), every row
/// after the newest checkpoint (at most `schedule.events`: the schedule signs at least that often)
/// hashed and linked. With no checkpoint at all, only a chain from the genesis row that this
/// process never saw signed.
async fn sealing_base(
    db: &Db,
    keys: &DataKeyring,
    watch: &ChainWatch,
    schedule: CheckpointSchedule,
    before_signing: bool,
) -> anyhow::Result<Result<Option<Base>, Problem>> {
    // What this process saw is read first: the chain only grows past it.
    let seen = watch.get();
    if let Some(c) = audit::checkpoint_upto(db, 0).await? {
        return Ok(Err(out_of_range(&c)));
    }
    let end = read_end(db).await?;
    let (seq, newest) = (end.seq, end.newest.clone());
    let Some(hash) = end.hash.clone() else {
        return Ok(Err(problem(
            seq,
            "edited",
            format!("row {seq} has no hash"),
        )));
    };
    let known = [seen.through.clone(), seen.sealed.clone()]
        .into_iter()
        .flatten()
        .max_by_key(|a| a.seq);
    if let Some(k) = &known {
        // What `end` already holds is not read again (the sealer runs this every pass): the
        // newest checkpoint when it is the known one, the last row's hash when it is its row.
        let held = match &newest {
            Some(c) if c.seq == k.seq => c.hash == k.hash,
            Some(c) if c.seq > k.seq => still_there(db, k).await?,
            _ => false,
        } && row_hash(db, &end, k.seq).await?.as_deref() == Some(k.hash.as_str());
        if !held {
            return Ok(Err(problem(
                k.seq,
                "checkpoint",
                format!(
                    "checkpoint {}, which this server signed or verified, was removed or changed: the trail was cut back or rewritten; this server signs nothing more until it restarts",
                    k.seq
                ),
            )));
        }
    }
    let from = match &newest {
        Some(c) if c.seq > seq => {
            return Ok(Err(problem(
                seq.saturating_add(1),
                "deleted",
                format!(
                    "the chain ends at row {seq}, but a signed checkpoint names row {}",
                    c.seq
                ),
            )));
        }
        Some(c) => {
            if let Some(p) = check_start(db, keys, c).await? {
                return Ok(Err(p));
            }
            Some(Anchor::from(c))
        }
        None => None,
    };
    // The rows this process sealed (or verified) are never removed or rehashed.
    if let Some(p) = cut_back(&seen, seq) {
        return Ok(Err(p));
    }
    if let Some((s, h)) = &seen.head
        && *s >= 1
        && row_hash(db, &end, *s).await?.as_deref() != Some(h.as_str())
    {
        return Ok(Err(problem(
            *s,
            "edited",
            format!(
                "row {s}, which this server sealed or verified, is missing or has another hash: the rows up to it were rewritten; this server signs nothing more until it restarts"
            ),
        )));
    }
    // The rows after the newest checkpoint that this process never saw (sealed by a replica, or
    // before it started) end at the signed head: a tail rewritten consistently does not.
    match check_signed_head_here(db, keys, watch, &end).await? {
        (Some(p), _) => return Ok(Err(p)),
        // Not tampering, but nothing is signed over a head this process cannot check.
        (None, false) => return Ok(Ok(None)),
        (None, true) => {}
    }
    let start = from.as_ref().map_or(0, |a| a.seq);
    if let Some(p) = uncovered(start, seq, schedule) {
        return Ok(Err(p));
    }
    // Hashed only before a checkpoint is signed: the signed head vouches for the tail's end in
    // between (an edit that keeps the head's hash breaks a link or a row's own hash, which the
    // walk before the next checkpoint finds).
    if before_signing {
        let w = walk(db, keys, from.as_ref(), seq).await?;
        if let Some(p) = w.problem {
            return Ok(Err(p));
        }
    }
    watch.sealed(seq, &hash, from);
    Ok(Ok(Some(Base {
        seq,
        hash,
        last: newest.map(|c| (c.seq, c.at)),
        signed: end.signed.map(|h| (h.seq, h.hash)),
        hashed: before_signing || seq == start,
    })))
}

/// The hash of row `seq` (absent where the row or its hash was removed), from `end` when it is
/// the last row.
async fn row_hash(db: &Db, end: &End, seq: i64) -> anyhow::Result<Option<String>> {
    Ok(if seq == end.seq {
        end.hash.clone()
    } else {
        audit::row_hash(db, seq).await?
    })
}

/// Whether the checkpoint at `a.seq`, which this process signed or verified, is still there with
/// the hash it had.
async fn still_there(db: &Db, a: &Anchor) -> anyhow::Result<bool> {
    Ok(audit::checkpoint_upto(db, a.seq)
        .await?
        .is_some_and(|c| c.seq == a.seq && c.hash == a.hash))
}

/// A checkpoint no sealer writes: before the first row (rows start at 1).
fn out_of_range(c: &Checkpoint) -> Problem {
    problem(
        c.seq,
        "checkpoint",
        format!(
            "a checkpoint names row {}, before the first row: it was forged",
            c.seq
        ),
    )
}

/// The chain ends before the head this process sealed or verified (read before `head`: a head
/// only grows).
fn cut_back(seen: &Watched, head: i64) -> Option<Problem> {
    let (s, _) = seen.head.as_ref()?;
    (head < *s).then(|| {
        problem(
            head.saturating_add(1),
            "deleted",
            format!(
                "the chain ends at row {head}, but this server sealed or verified it up to row {s}: the rows after it were removed"
            ),
        )
    })
}

/// One sealing pass of a server: seals, detects, then counts and alerts what was raised.
/// The events the detectors wrote (incident openings, containment) are sealed by the next pass.
pub async fn seal_and_detect(trail: &Trail) -> anyhow::Result<()> {
    pass(trail, Sign::WhenDue).await
}

/// The last sealing pass of a server that stops: seals and signs the head, whatever the schedule.
pub async fn seal_and_sign(trail: &Trail) -> anyhow::Result<()> {
    pass(trail, Sign::Now).await
}

async fn pass(trail: &Trail, sign: Sign) -> anyhow::Result<()> {
    let _one_at_a_time = trail.chain.passes.lock().await;
    // Everything queued before this pass is written first, so the pass sees it.
    trail.sinks.events.flush().await;
    let (keys, contain) = (&trail.keys, &trail.config.containment);
    let schedule = trail.config.audit_checkpoints;
    let watch = &trail.chain;
    let (raised, found) = seal_pending(&trail.store, keys, watch, contain, schedule, sign).await?;
    if let Some(p) = found {
        report(trail, p).await?;
    }
    if !raised.is_empty() {
        crate::service::incidents::after_commit(&trail.sinks, &trail.config, &raised);
        trail.blocks.refresh(&trail.store.db).await?;
        let (_, found) = seal_pending(&trail.store, keys, watch, contain, schedule, sign).await?;
        if let Some(p) = found {
            report(trail, p).await?;
        }
    }
    Ok(())
}

/// Tampering found by the sealer or a walk: each problem is logged, counted
/// (`audit_chain_problems_total`) and raised as a critical `audit_tampering` incident once per
/// process (one unresolved incident across replicas: the next problems only add to the log).
pub async fn report(trail: &Trail, p: Problem) -> anyhow::Result<()> {
    if !trail.chain.first_sight(&p) {
        return Ok(());
    }
    tracing::error!(target: "audit", seq = p.seq, kind = p.kind, problem = %p.message, "the audit trail was tampered with: rows are still sealed, nothing more is signed");
    trail.sinks.metrics.audit_problem(p.kind);
    // In the sealing lock: replicas that find it at once open one incident.
    let mut tx = audit::begin_sealing(&trail.store.db).await?;
    let mut raised = Vec::new();
    crate::service::incidents::audit_tampering(&mut tx, &p, &mut raised).await?;
    trail.store.commit(tx).await?;
    crate::service::incidents::after_commit(&trail.sinks, &trail.config, &raised);
    Ok(())
}

/// Seals new rows every `SEAL_EVERY` until the process stops (the server seals once more at shutdown).
pub async fn sealer(trail: Trail) {
    let mut every = tokio::time::interval(SEAL_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = seal_and_detect(&trail).await {
            tracing::warn!(error = %format!("{e:#}"), "sealing the audit trail failed; retrying");
        }
    }
}

/// What a check of the chain found.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ChainReport {
    /// No problem found, and this process has walked the whole chain since it started (until
    /// then false with no `first_problem` and a null `full_check_at`: pending).
    pub verified: bool,
    /// Sealed rows hashed by this check.
    pub rows: u64,
    /// Signed checkpoints checked by this check.
    pub checkpoints: u64,
    /// Rows written but not sealed yet (sealed within a second by a running server).
    pub unsealed: i64,
    /// The check hashed the rows after this one (a signed checkpoint); 0: the whole chain.
    pub since_seq: i64,
    /// Sealed rows after the newest signed checkpoint (at most `IMANGOR_AUDIT_CHECKPOINT_EVENTS`,
    /// signed within `IMANGOR_AUDIT_CHECKPOINT_INTERVAL`).
    pub unsigned: i64,
    /// The newest checkpoint up to which this process has walked the whole chain; 0: none yet.
    pub verified_through: i64,
    /// When this process last walked the whole chain (UTC); null: not yet since it started.
    pub full_check_at: Option<String>,
    pub first_problem: Option<Problem>,
}

/// A signed checkpoint a walk passed: where a later walk may start.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Anchor {
    seq: i64,
    hash: String,
    at: i64,
}

impl From<&Checkpoint> for Anchor {
    fn from(c: &Checkpoint) -> Self {
        Anchor {
            seq: c.seq,
            hash: c.hash.clone(),
            at: c.at,
        }
    }
}

#[derive(Debug, Default)]
struct Walk {
    rows: u64,
    checkpoints: u64,
    problem: Option<Problem>,
    /// The newest checkpoint passed (or the one the walk started from).
    last: Option<Anchor>,
}

/// Walks the sealed rows after `from` (from the genesis when none) up to `head`, checking every
/// link, every hash and every checkpoint among them. `from` was checked by the caller.
async fn walk(
    db: &Db,
    keys: &DataKeyring,
    from: Option<&Anchor>,
    head: i64,
) -> anyhow::Result<Walk> {
    let start = from.map_or(0, |a| a.seq);
    let checkpoints = audit::checkpoints_between(db, start, head).await?;
    let mut cps = checkpoints.iter().peekable();
    let mut w = Walk {
        last: from.cloned(),
        ..Walk::default()
    };
    let mut expected = start.saturating_add(1);
    let mut prev = from.map_or_else(|| GENESIS.to_owned(), |a| a.hash.clone());
    'walk: while expected <= head {
        let rows = audit::sealed_between(db, expected - 1, head, 2000).await?;
        if rows.is_empty() {
            w.problem = Some(problem(
                expected,
                "deleted",
                format!("rows {expected}..{head} are missing"),
            ));
            break;
        }
        for r in rows {
            let seq = r.seq.unwrap_or_default();
            if seq != expected {
                w.problem = Some(problem(
                    expected,
                    "deleted",
                    format!("rows {expected}..{} are missing", seq.saturating_sub(1)),
                ));
                break 'walk;
            }
            if r.prev_hash.as_deref() != Some(prev.as_str()) {
                w.problem = Some(problem(
                    seq,
                    "reordered",
                    format!(
                        "row {seq} ({}) does not follow row {}: moved, or the row before it was replaced",
                        r.id,
                        seq.saturating_sub(1)
                    ),
                ));
                break 'walk;
            }
            let hash = chain_hash(&prev, seq, &r);
            if r.hash.as_deref() != Some(hash.as_str()) {
                w.problem = Some(problem(
                    seq,
                    "edited",
                    format!("row {seq} ({}) was changed after it was sealed", r.id),
                ));
                break 'walk;
            }
            while let Some(c) = cps.next_if(|c| c.seq <= seq) {
                w.checkpoints += 1;
                if let Err(why) =
                    check_checkpoint(c, if c.seq == seq { Some(&hash) } else { None }, keys)
                {
                    w.problem = Some(problem(c.seq, "checkpoint", why));
                    break 'walk;
                }
                w.last = Some(Anchor::from(c));
            }
            prev = hash;
            w.rows += 1;
            // A forged row at the largest seq ends the walk rather than overflow it.
            let Some(next) = expected.checked_add(1) else {
                break 'walk;
            };
            expected = next;
        }
    }
    Ok(w)
}

/// Checks a checkpoint a walk starts from: its row is there, with the signed hash, and the
/// signature verifies.
async fn check_start(
    db: &Db,
    keys: &DataKeyring,
    c: &Checkpoint,
) -> anyhow::Result<Option<Problem>> {
    if c.seq < 1 {
        return Ok(Some(out_of_range(c)));
    }
    let Some(hash) = audit::row_hash(db, c.seq).await? else {
        return Ok(Some(problem(
            c.seq,
            "deleted",
            format!(
                "row {} that signed checkpoint {} names is missing",
                c.seq, c.seq
            ),
        )));
    };
    Ok(check_checkpoint(c, Some(&hash), keys)
        .err()
        .map(|why| problem(c.seq, "checkpoint", why)))
}

/// What the rows cannot show: a checkpoint past the end of the chain (its newest rows cut off),
/// and rows after the newest checkpoint that the schedule should have signed by now (checkpoints
/// removed, or rows added outside the sealer). A tail younger and shorter than the schedule is
/// normal: the sealer signs it in time.
async fn check_head(
    db: &Db,
    head: i64,
    last: Option<&Anchor>,
    schedule: CheckpointSchedule,
) -> anyhow::Result<Option<Problem>> {
    if let Some(c) = audit::checkpoint_after(db, head).await? {
        // The sealer may have sealed and signed more since `head` was read.
        if audit::head_seq(db).await? < c.seq {
            return Ok(Some(problem(
                head.saturating_add(1),
                "deleted",
                format!(
                    "the chain ends at row {head}, but a signed checkpoint names row {}: the rows after it were removed",
                    c.seq
                ),
            )));
        }
    }
    let Some(last) = last else {
        if head == 0 {
            return Ok(None);
        }
        return Ok(Some(problem(
            1,
            "checkpoint",
            "the chain has no signed checkpoint: they were removed".to_owned(),
        )));
    };
    let unsigned = head.saturating_sub(last.seq);
    let age = Timestamp::now().micros().saturating_sub(last.at);
    // A checkpoint signed before its time was covered can have it changed: one dated ahead
    // (beyond any clock skew between replicas) would make any tail look young.
    if -age > micros(FUTURE_SKEW) {
        return Ok(Some(problem(
            last.seq,
            "checkpoint",
            format!(
                "checkpoint {} is dated {} s in the future: its time was changed",
                last.seq,
                -age / 1_000_000
            ),
        )));
    }
    if let Some(p) = uncovered(last.seq, head, schedule) {
        return Ok(Some(p));
    }
    if unsigned > 0 && age > micros(schedule.stale_after()) {
        return Ok(Some(problem(
            last.seq.saturating_add(1),
            "checkpoint",
            format!(
                "rows {}..{head} are covered by no signed checkpoint, and the newest is {} s old while the sealer signs within {} s: checkpoints were removed, rows added outside the sealer, or no server has sealed since",
                last.seq.saturating_add(1),
                age / 1_000_000,
                schedule.every.as_secs()
            ),
        )));
    }
    Ok(None)
}

/// More rows after the checkpoint at `after` than the schedule leaves unsigned.
fn uncovered(after: i64, head: i64, schedule: CheckpointSchedule) -> Option<Problem> {
    (head.saturating_sub(after) > schedule.events).then(|| {
        problem(
            after.saturating_add(1),
            "checkpoint",
            format!(
                "rows {}..{head} are covered by no signed checkpoint, but the sealer signs every {} rows: checkpoints were removed, or rows added outside the sealer",
                after.saturating_add(1),
                schedule.events
            ),
        )
    })
}

/// How far ahead of this clock another replica's may be.
const FUTURE_SKEW: Duration = Duration::from_secs(300);

/// The problem with the lowest row: where the chain first breaks.
fn first(problems: impl IntoIterator<Item = Option<Problem>>) -> Option<Problem> {
    problems.into_iter().flatten().min_by_key(|p| p.seq)
}

/// Walks the whole chain in order, checking every link, every hash and every checkpoint, then the
/// head (`imangor audit verify`, and the periodic check of every server).
pub async fn verify(
    db: &Db,
    keys: &DataKeyring,
    schedule: CheckpointSchedule,
) -> anyhow::Result<ChainReport> {
    let unsealed = audit::count_unsealed(db).await?;
    let head = audit::head_seq(db).await?;
    let w = walk(db, keys, None, head).await?;
    let through = w.last.as_ref().map_or(0, |a| a.seq);
    let intact = w.problem.is_none();
    let first_problem = match w.problem {
        Some(p) => Some(p),
        None => check_head(db, head, w.last.as_ref(), schedule).await?,
    };
    // What a whole walk cannot tell from the rows: a tail after the newest checkpoint rewritten
    // consistently, or cut off; its end is signed.
    let signed = check_signed_head(db, keys, &read_end(db).await?).await?;
    let first_problem = first([first_problem, signed]);
    Ok(ChainReport {
        verified: first_problem.is_none(),
        rows: w.rows,
        checkpoints: w.checkpoints,
        unsealed,
        since_seq: 0,
        unsigned: head.saturating_sub(through),
        verified_through: if intact { through } else { 0 },
        full_check_at: Some(Timestamp::now().rfc3339()),
        first_problem,
    })
}

/// What this process has verified of the chain, in memory only: what writes the database cannot
/// change. `through` is the newest checkpoint up to which the whole chain was walked (by
/// `rewalk`); `problem`, what the last walk found before it, kept until a whole walk passes.
#[derive(Default)]
pub struct ChainWatch {
    watched: std::sync::Mutex<Watched>,
    /// Held for a whole sealing pass, its alerts and blocks included: this process's passes
    /// (the sealer's, a shutdown's, a command's) run one at a time, so a pass that finds nothing
    /// left to seal returns only once what an earlier pass raised has been handed on.
    passes: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone, Default)]
struct Watched {
    through: Option<Anchor>,
    full_at: Option<Timestamp>,
    problem: Option<Problem>,
    /// Tampering no later walk clears (until the process restarts): the chain cut back below
    /// `through` or below `head`, or the sealer refusing to extend a chain it cannot vouch for.
    /// While it is set the sealer signs nothing.
    lasting: Option<Problem>,
    /// The newest checkpoint the sealer of this process signed or verified.
    sealed: Option<Anchor>,
    /// The head (seq, hash) this process sealed or verified last: that row keeps its hash, and
    /// the chain never ends before it.
    head: Option<(i64, String)>,
    /// The problems `report` has logged, counted and raised, by (seq, kind).
    reported: Vec<(i64, &'static str)>,
    /// The data key of a signed head this process could not check, last warned about.
    unknown_key: Option<String>,
}

impl ChainWatch {
    /// Holds off this process's sealing passes until the guard is dropped: a test that tampers
    /// with the trail in several statements is not raced by the background sealer between them.
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.passes.lock().await
    }

    fn get(&self) -> Watched {
        self.watched.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Whether tampering was found that stops signing until the process restarts.
    fn lasting(&self) -> bool {
        self.watched.lock().map_or(true, |w| w.lasting.is_some())
    }

    fn update(&self, f: impl FnOnce(&mut Watched)) {
        if let Ok(mut w) = self.watched.lock() {
            f(&mut w);
        }
    }

    fn sealed(&self, seq: i64, hash: &str, anchor: Option<Anchor>) {
        self.update(|w| {
            w.head = Some((seq, hash.to_owned()));
            if let Some(a) = anchor
                && w.sealed.as_ref().is_none_or(|s| s.seq < a.seq)
            {
                w.sealed = Some(a);
            }
        });
    }

    /// Records tampering that stays reported until the process restarts (`report` logs it).
    fn tampered(&self, p: Problem) {
        self.update(|w| {
            if w.lasting.as_ref().is_none_or(|q| q.seq > p.seq) {
                w.lasting = Some(p);
            }
        });
    }

    /// A signed head this process cannot check (`unknown_head_key`): warned about once per key.
    fn cannot_verify(&self, key_id: &str) {
        let mut new = false;
        self.update(|w| {
            if w.unknown_key.as_deref() != Some(key_id) {
                w.unknown_key = Some(key_id.to_owned());
                new = true;
            }
        });
        if new {
            tracing::warn!(target: "audit", key_id = ?key_id, "the audit chain's signed head was signed with a data key this server does not hold: it cannot be checked here, so this server signs nothing over it (still sealing); give every replica the key (standby) before making it first");
        }
    }

    /// Whether this process meets `p` (by row and kind) for the first time; remembered then.
    fn first_sight(&self, p: &Problem) -> bool {
        let mut new = false;
        self.update(|w| {
            let key = (p.seq, p.kind);
            if !w.reported.contains(&key) {
                new = true;
                // Bounded: an attacker who keeps changing the chain cannot grow it.
                if w.reported.len() >= 64 {
                    w.reported.remove(0);
                }
                w.reported.push(key);
            }
        });
        new
    }
}

/// How often a server walks the rows sealed since its last walk.
pub const REWALK_EVERY: Duration = Duration::from_secs(60);
/// How often that walk is of the whole chain instead.
pub const FULL_WALK_EVERY: Duration = Duration::from_secs(3600);

/// The periodic check of a server: walks the whole chain (`whole`) or the rows after the last
/// checkpoint it verified, remembers how far the chain holds, and keeps what it found for
/// `GET /api/v1/audit` until a later whole walk passes.
pub async fn rewalk(trail: &Trail, whole: bool) -> anyhow::Result<ChainReport> {
    let (db, keys, schedule) = (&trail.store.db, &trail.keys, trail.config.audit_checkpoints);
    let seen = trail.chain.get();
    let from = if whole { None } else { seen.through.clone() };
    let unsealed = audit::count_unsealed(db).await?;
    let head = audit::head_seq(db).await?;
    // Where an incremental walk starts must still be what this server verified.
    let start = match &from {
        None => None,
        Some(f) => match audit::checkpoint_upto(db, f.seq).await? {
            Some(c) if c.seq == f.seq && c.hash == f.hash => check_start(db, keys, &c).await?,
            _ => Some(problem(
                f.seq,
                "checkpoint",
                format!(
                    "checkpoint {}, which this server verified, was removed or changed",
                    f.seq
                ),
            )),
        },
    };
    let w = match start {
        Some(p) => Walk {
            problem: Some(p),
            last: from.clone(),
            ..Walk::default()
        },
        None => walk(db, keys, from.as_ref(), head).await?,
    };
    let now = Timestamp::now();
    let found = w.problem.clone();
    // A whole walk that passes but ends below the checkpoint this server verified, or finds that
    // checkpoint gone or changed: the trail was cut back (or rewritten), whatever it holds now.
    if from.is_none()
        && w.problem.is_none()
        && let Some(t) = &seen.through
        && (w.last.as_ref().is_none_or(|l| l.seq < t.seq) || !still_there(db, t).await?)
    {
        trail.chain.tampered(problem(
            t.seq,
            "checkpoint",
            format!(
                "checkpoint {}, which this server verified, was removed or changed: the trail was cut back or rewritten",
                t.seq
            ),
        ));
    }
    // Rows this process sealed or verified removed from the end, after the newest checkpoint too
    // (no walk can tell: what is left links up).
    if let Some(p) = cut_back(&seen, head) {
        trail.chain.tampered(p);
    }
    trail.chain.update(|s| {
        if from.is_none() {
            // A whole walk says how the chain stands now.
            s.full_at = Some(now);
            s.problem = found;
        } else if let Some(p) = found
            && s.problem.as_ref().is_none_or(|q| q.seq > p.seq)
        {
            s.problem = Some(p);
        }
        // How far the chain held never goes back.
        if let Some(l) = &w.last
            && s.through.as_ref().is_none_or(|t| t.seq < l.seq)
        {
            s.through = Some(l.clone());
        }
    });
    let after = trail.chain.get();
    let tail = match &w.problem {
        Some(_) => None,
        None => check_head(db, head, w.last.as_ref(), schedule).await?,
    };
    // The rows after the newest checkpoint end at the signed head, with its hash.
    let (signed, head_checked) =
        check_signed_head_here(db, keys, &trail.chain, &read_end(db).await?).await?;
    let first_problem = first([after.problem, after.lasting, w.problem, tail, signed]);
    let through = w.last.as_ref().map_or(0, |l| l.seq);
    Ok(ChainReport {
        verified: first_problem.is_none() && after.full_at.is_some() && head_checked,
        rows: w.rows,
        checkpoints: w.checkpoints + u64::from(from.is_some()),
        unsealed,
        since_seq: from.as_ref().map_or(0, |f| f.seq),
        unsigned: head.saturating_sub(through),
        verified_through: after.through.as_ref().map_or(0, |t| t.seq),
        full_check_at: after.full_at.map(Timestamp::rfc3339),
        first_problem,
    })
}

/// The chain check of an audit page, in time that does not grow with the trail: the rows after
/// the newest signed checkpoint (at most `IMANGOR_AUDIT_CHECKPOINT_EVENTS`) are hashed, that
/// checkpoint and the newest one this server verified are checked to be still there, and what
/// the server's periodic walks found before them is reported with it.
pub async fn check_recent(trail: &Trail) -> anyhow::Result<ChainReport> {
    let (db, keys, schedule) = (&trail.store.db, &trail.keys, trail.config.audit_checkpoints);
    let seen = trail.chain.get();
    let unsealed = audit::count_unsealed(db).await?;
    let head = audit::head_seq(db).await?;
    let newest = audit::checkpoint_upto(db, head).await?;
    let mut report = ChainReport {
        verified: true,
        rows: 0,
        checkpoints: 0,
        unsealed,
        since_seq: newest.as_ref().map_or(0, |c| c.seq),
        unsigned: head.saturating_sub(newest.as_ref().map_or(0, |c| c.seq)),
        verified_through: seen.through.as_ref().map_or(0, |t| t.seq),
        full_check_at: seen.full_at.map(Timestamp::rfc3339),
        first_problem: None,
    };
    let mut found = vec![seen.problem.clone(), seen.lasting.clone()];
    // Forged checkpoints the sealer never writes: before the first row.
    if let Some(c) = audit::checkpoint_upto(db, 0).await? {
        found.push(Some(out_of_range(&c)));
    }
    // With no checkpoint at all nothing is hashed: the first sealing pass signs, so rows without
    // one had theirs removed (`check_head` says so).
    if let Some(c) = &newest {
        report.checkpoints = 1;
        let start = check_start(db, keys, c).await?;
        if start.is_none() {
            let w = walk(db, keys, Some(&Anchor::from(c)), head).await?;
            report.rows = w.rows;
            report.checkpoints += w.checkpoints;
            found.push(w.problem);
        }
        found.push(start);
    }
    // The trail cut back to an older checkpoint, with the rows and checkpoints after it, still
    // misses the checkpoint this server verified.
    if let Some(t) = &seen.through {
        if !still_there(db, t).await? {
            found.push(Some(problem(
                t.seq,
                "checkpoint",
                format!(
                    "checkpoint {}, which this server verified, was removed or changed: the trail was cut back or rewritten",
                    t.seq
                ),
            )));
        } else if head < t.seq {
            found.push(Some(problem(
                head.saturating_add(1),
                "deleted",
                format!(
                    "the chain ends at row {head}, but this server verified it up to row {}",
                    t.seq
                ),
            )));
        }
    }
    found.push(cut_back(&seen, head));
    let (signed, head_checked) =
        check_signed_head_here(db, keys, &trail.chain, &read_end(db).await?).await?;
    found.push(signed);
    found.push(
        check_head(
            db,
            head,
            newest.as_ref().map(Anchor::from).as_ref(),
            schedule,
        )
        .await?,
    );
    report.first_problem = first(found);
    // Until this process has walked the whole chain once, nothing before the newest checkpoint is
    // vouched for: not verified, with no problem (`full_check_at` null says it is pending).
    report.verified = report.first_problem.is_none() && seen.full_at.is_some() && head_checked;
    Ok(report)
}

/// The rows a page shows that lie before the newest checkpoint (`lo..=hi`; `check_recent` hashes
/// those after it): hashed from the checkpoint below `lo` (or the genesis) to the one at or after
/// `hi`, both checked, when that span is at most twice the schedule's rows plus a page (the
/// periodic walks cover longer spans). Adds what it found to `report`.
pub async fn check_page(
    trail: &Trail,
    lo: i64,
    hi: i64,
    report: &mut ChainReport,
) -> anyhow::Result<()> {
    let (db, keys) = (&trail.store.db, &trail.keys);
    let hi = hi.min(report.since_seq);
    if lo < 1 || lo > hi {
        return Ok(());
    }
    let from = audit::checkpoint_upto(db, lo - 1)
        .await?
        .filter(|c| c.seq >= 1);
    let Some(to) = audit::checkpoint_after(db, hi - 1).await? else {
        return Ok(());
    };
    let start = from.as_ref().map_or(0, |c| c.seq);
    let bound = trail.config.audit_checkpoints.events.saturating_mul(2) + 100;
    if to.seq.saturating_sub(start) > bound {
        return Ok(());
    }
    let mut found = match &from {
        Some(c) => check_start(db, keys, c).await?,
        None => None,
    };
    if found.is_none() {
        let w = walk(db, keys, from.as_ref().map(Anchor::from).as_ref(), to.seq).await?;
        report.rows += w.rows;
        report.checkpoints += w.checkpoints;
        found = w.problem;
    }
    if let Some(p) = found {
        report.first_problem = first([report.first_problem.take(), Some(p)]);
        report.verified = false;
    }
    Ok(())
}

/// Walks what was sealed since the last walk every `REWALK_EVERY`, and the whole chain at start
/// and every `FULL_WALK_EVERY`, until the process stops.
pub async fn watcher(trail: Trail) {
    let mut every = tokio::time::interval(REWALK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_whole: Option<std::time::Instant> = None;
    loop {
        every.tick().await;
        let whole = last_whole.is_none_or(|t| t.elapsed() >= FULL_WALK_EVERY);
        match rewalk(&trail, whole).await {
            Ok(r) => {
                if whole {
                    last_whole = Some(std::time::Instant::now());
                }
                if let Some(p) = r.first_problem
                    && let Err(e) = report(&trail, p).await
                {
                    tracing::warn!(error = %format!("{e:#}"), "raising the audit tampering incident failed; retrying");
                }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "checking the audit chain failed; retrying")
            }
        }
    }
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
    match checkpoint_verdict(keys, c) {
        Verdict::Holds(_) => Ok(()),
        Verdict::UnknownKey => Err(format!(
            "checkpoint {} was signed with data key {:?}, which is not in the keyring",
            c.seq, c.key_id
        )),
        Verdict::Fails => Err(format!(
            "checkpoint {}: the signature does not verify",
            c.seq
        )),
    }
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
        // Signed again over what the old signature covered: a checkpoint from before the signed
        // head keeps saying so (`check_signed_head` requires a head after the newer kind).
        let message = match checkpoint_verdict(keys, &c) {
            Verdict::Holds(0) => signed_message(c.seq, &c.hash, c.at),
            _ => signed_message_v1(c.seq, &c.hash),
        };
        let sig = sign_with(&new_key, &message);
        audit::resign(db, c.seq, current, &sig).await?;
        n += 1;
    }
    // The signed head too, when that key signed it (the sealer signs the next with the newest).
    if let Some(h) = audit::signed_head(db)
        .await?
        .filter(|h| h.key_id == retiring)
    {
        anyhow::ensure!(
            head_signature_holds(keys, &h),
            "the signed head (row {}) does not verify: run `imangor audit verify`",
            h.seq
        );
        let sig = sign_with(&new_key, &head_message(h.seq, &h.hash, h.at));
        audit::resign_head(db, &h, current, &sig).await?;
    }
    Ok(n)
}
