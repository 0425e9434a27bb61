//! Checking the audit chain: a whole walk (`verify`, and each server's `rewalk`), the check of the
//! rows after the newest checkpoint that the API's page runs (`check_recent`, `check_page`), what
//! this process has verified so far (`ChainWatch`), and the context sealing and checking share
//! (`Trail`). Sealing is `seal`'s.

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

/// The end of the chain, read consistently: the newest checkpoint, the signed head, and the last
/// sealed row (seq 0 and the genesis hash when none; its hash absent where it was removed).
pub(super) struct End {
    pub(super) newest: Option<Checkpoint>,
    pub(super) signed: Option<Checkpoint>,
    pub(super) seq: i64,
    pub(super) hash: Option<String>,
}

pub(super) async fn read_end(db: &Db) -> anyhow::Result<End> {
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
pub(super) fn unknown_head_key<'a>(keys: &DataKeyring, end: &'a End) -> Option<&'a str> {
    let h = end.signed.as_ref()?;
    (!keys.ids().any(|id| id == h.key_id)).then_some(h.key_id.as_str())
}

/// `check_signed_head` on a server: a head it cannot check (`unknown_head_key`) is warned about
/// once, and is neither a problem nor verified (the second value: false).
pub(super) async fn check_signed_head_here(
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
pub(super) async fn check_signed_head(
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

/// The hash of row `seq` (absent where the row or its hash was removed), from `end` when it is
/// the last row.
pub(super) async fn row_hash(db: &Db, end: &End, seq: i64) -> anyhow::Result<Option<String>> {
    Ok(if seq == end.seq {
        end.hash.clone()
    } else {
        audit::row_hash(db, seq).await?
    })
}

/// Whether the checkpoint at `a.seq`, which this process signed or verified, is still there with
/// the hash it had.
pub(super) async fn still_there(db: &Db, a: &Anchor) -> anyhow::Result<bool> {
    Ok(audit::checkpoint_upto(db, a.seq)
        .await?
        .is_some_and(|c| c.seq == a.seq && c.hash == a.hash))
}

/// A checkpoint no sealer writes: before the first row (rows start at 1).
pub(super) fn out_of_range(c: &Checkpoint) -> Problem {
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
pub(super) fn cut_back(seen: &Watched, head: i64) -> Option<Problem> {
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
pub(super) struct Anchor {
    pub(super) seq: i64,
    pub(super) hash: String,
    pub(super) at: i64,
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
pub(super) struct Walk {
    pub(super) rows: u64,
    pub(super) checkpoints: u64,
    pub(super) problem: Option<Problem>,
    /// The newest checkpoint passed (or the one the walk started from).
    pub(super) last: Option<Anchor>,
}

/// Walks the sealed rows after `from` (from the genesis when none) up to `head`, checking every
/// link, every hash and every checkpoint among them. `from` was checked by the caller.
pub(super) async fn walk(
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
pub(super) async fn check_start(
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
pub(super) async fn check_head(
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
pub(super) fn uncovered(after: i64, head: i64, schedule: CheckpointSchedule) -> Option<Problem> {
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
pub(super) fn first(problems: impl IntoIterator<Item = Option<Problem>>) -> Option<Problem> {
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
    pub(super) watched: std::sync::Mutex<Watched>,
    /// Held for a whole sealing pass, its alerts and blocks included: this process's passes
    /// (the sealer's, a shutdown's, a command's) run one at a time, so a pass that finds nothing
    /// left to seal returns only once what an earlier pass raised has been handed on.
    pub(super) passes: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Watched {
    pub(super) through: Option<Anchor>,
    pub(super) full_at: Option<Timestamp>,
    pub(super) problem: Option<Problem>,
    /// Tampering no later walk clears (until the process restarts): the chain cut back below
    /// `through` or below `head`, or the sealer refusing to extend a chain it cannot vouch for.
    /// While it is set the sealer signs nothing.
    pub(super) lasting: Option<Problem>,
    /// The newest checkpoint the sealer of this process signed or verified.
    pub(super) sealed: Option<Anchor>,
    /// The head (seq, hash) this process sealed or verified last: that row keeps its hash, and
    /// the chain never ends before it.
    pub(super) head: Option<(i64, String)>,
    /// The problems `report` has logged, counted and raised, by (seq, kind).
    pub(super) reported: Vec<(i64, &'static str)>,
    /// The data key of a signed head this process could not check, last warned about.
    pub(super) unknown_key: Option<String>,
}

impl ChainWatch {
    /// Holds off this process's sealing passes until the guard is dropped: a test that tampers
    /// with the trail in several statements is not raced by the background sealer between them.
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.passes.lock().await
    }

    pub(super) fn get(&self) -> Watched {
        self.watched.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Whether tampering was found that stops signing until the process restarts.
    pub(super) fn lasting(&self) -> bool {
        self.watched.lock().map_or(true, |w| w.lasting.is_some())
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut Watched)) {
        if let Ok(mut w) = self.watched.lock() {
            f(&mut w);
        }
    }

    pub(super) fn sealed(&self, seq: i64, hash: &str, anchor: Option<Anchor>) {
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
    pub(super) fn tampered(&self, p: Problem) {
        self.update(|w| {
            if w.lasting.as_ref().is_none_or(|q| q.seq > p.seq) {
                w.lasting = Some(p);
            }
        });
    }

    /// A signed head this process cannot check (`unknown_head_key`): warned about once per key.
    pub(super) fn cannot_verify(&self, key_id: &str) {
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
    pub(super) fn first_sight(&self, p: &Problem) -> bool {
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

pub(super) fn check_checkpoint(
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

pub(super) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}
