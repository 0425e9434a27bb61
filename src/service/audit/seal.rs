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

use std::time::Duration;

use crate::config::CheckpointSchedule;
use crate::crypto::chain::{
    GENESIS, Problem, chain_hash, head_message, problem, sign_with, signed_message, signer,
};
use crate::crypto::data::DataKeyring;
use crate::db::Db;
use crate::db::audit::{self, Checkpoint};
use crate::domain::Timestamp;
use crate::service::audit::check::{
    Anchor, ChainWatch, FULL_WALK_EVERY, REWALK_EVERY, Trail, check_signed_head_here, check_start,
    cut_back, micros, out_of_range, read_end, rewalk, row_hash, still_there, uncovered, walk,
};
use crate::service::context::Store;

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
    rules: &crate::service::incidents::Rules,
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
        crate::service::incidents::detect(&mut tx, &rows, rules, &mut raised).await?;
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
    let (keys, rules) = (
        &trail.keys,
        &crate::service::incidents::Rules::of(&trail.config),
    );
    let schedule = trail.config.audit_checkpoints;
    let watch = &trail.chain;
    let (raised, found) = seal_pending(&trail.store, keys, watch, rules, schedule, sign).await?;
    if let Some(p) = found {
        report(trail, p).await?;
    }
    if !raised.is_empty() {
        crate::service::incidents::after_commit(&trail.sinks, &trail.config, &raised);
        trail.blocks.refresh(&trail.store.db).await?;
        let (_, found) = seal_pending(&trail.store, keys, watch, rules, schedule, sign).await?;
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
    crate::service::incidents::audit_tampering(
        &mut tx,
        &p,
        &crate::service::incidents::Rules::of(&trail.config),
        &mut raised,
    )
    .await?;
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
