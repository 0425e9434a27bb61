//! Evidence bundles: one incident handed to an investigator as a file that checks itself
//! offline. A bundle holds the incident with its notes, the audit events tied to it, the chain
//! segment from its first event to the signed checkpoint (or signed head) that covers its last,
//! every checkpoint in that segment, the public halves of the checkpoint keys, a summary of the
//! deployment's configuration (no secret, key ids only), a manifest of the SHA-256 of each of
//! those parts, and a signature over the manifest by the current checkpoint key.
//!
//! `verify` needs nothing but the file (and, optionally, a copy of
//! `/.well-known/imangor-audit-keys` to pin the keys): it recomputes every row's hash and link,
//! checks each checkpoint's signature and the row it names, that the signatures cover every
//! event, the manifest and its signature, and names each thing that was changed.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Action as EventAction, Event, Outcome, RequestMeta};
use crate::auth::token::TokenKeys;
use crate::authz::{Action, Authorized};
use crate::config::{Config, Environment, Registration};
use crate::crypto::chain::{
    Verdict, audit_keys_jwks, bundle_message, chain_hash, head_message, sign_with, signed_message,
    signed_message_v1, signer, verdict_with,
};
use crate::crypto::data::DataKeyring;
use crate::db::Db;
use crate::db::audit::{self, AuditRow, Checkpoint};
use crate::db::incidents;
use crate::domain::Timestamp;
use crate::domain::incident::{Incident, Note};
use crate::error::{AppError, Result};

/// What the `format` field of a bundle says (a verifier refuses any other).
pub const FORMAT: &str = "imangor-evidence-bundle/1";
/// The parts the manifest hashes, in its order.
pub const PARTS: [&str; 6] = [
    "export",
    "incident",
    "events",
    "chain",
    "keys",
    "deployment",
];
/// The incident's events a bundle holds at most (`events_truncated` says when there were more).
pub const MAX_EVENTS: i64 = 1000;
/// The longest chain segment a bundle carries: a segment runs from the incident's first event to
/// the checkpoint after its last, at most `IMANGOR_AUDIT_CHECKPOINT_EVENTS` past it.
pub const MAX_SEGMENT: i64 = 100_000;

/// What a bundle is made from: the store, the keyrings (checkpoint keys, the ids of the token
/// keys) and the configuration it summarises.
pub struct Sources<'a> {
    pub db: &'a Db,
    pub keys: &'a DataKeyring,
    pub tokens: &'a TokenKeys,
    pub config: &'a Config,
}

/// A signed point of the chain in a bundle: a checkpoint, or the signed head when no checkpoint
/// covers the incident's newest event yet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signed {
    /// `checkpoint` or `head`.
    pub kind: String,
    pub seq: i64,
    pub hash: String,
    pub key_id: String,
    pub signature: String,
    /// When it was signed (microseconds since the epoch).
    pub at: i64,
}

impl Signed {
    fn of(kind: &str, c: &Checkpoint) -> Signed {
        Signed {
            kind: kind.to_owned(),
            seq: c.seq,
            hash: c.hash.clone(),
            key_id: c.key_id.clone(),
            signature: c.signature.clone(),
            at: c.at,
        }
    }

    /// What its signature may cover: a checkpoint's row, hash and time (or, signed before its
    /// time was covered, row and hash); the head's own message.
    fn messages(&self) -> Vec<Vec<u8>> {
        match self.kind.as_str() {
            "head" => vec![head_message(self.seq, &self.hash, self.at)],
            _ => vec![
                signed_message(self.seq, &self.hash, self.at),
                signed_message_v1(self.seq, &self.hash),
            ],
        }
    }

    fn name(&self) -> String {
        match self.kind.as_str() {
            "head" => format!("the signed head (row {})", self.seq),
            _ => format!("checkpoint {}", self.seq),
        }
    }
}

/// The chain part: the rows of the segment in order, and the signed points within it.
#[derive(Debug, Serialize, Deserialize)]
struct Chain {
    rows: Vec<AuditRow>,
    signed: Vec<Signed>,
}

/// The bundle of incident `id` as the operator exports it (`imangor incident evidence`): the
/// command line acts as the system, not under the policy. The export is recorded in the trail.
pub async fn as_operator(src: &Sources<'_>, id: &str) -> Result<Vec<u8>> {
    let bundle = build(src, id, "operator").await?;
    recorded(src.db, None, id, &RequestMeta::default()).await?;
    Ok(bundle)
}

/// The bundle through the API, with the caller's permission (`incident.evidence`: admins),
/// decided by the handler. The export is recorded in the trail with who asked.
#[tracing::instrument(skip_all, fields(incident = %id))]
pub async fn export(
    src: &Sources<'_>,
    grant: &Authorized<()>,
    id: &str,
    meta: &RequestMeta,
) -> Result<Vec<u8>> {
    grant.require(Action::IncidentEvidence)?;
    let by = grant
        .by()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("an evidence export by no one")))?;
    let bundle = build(src, id, &by.to_string()).await?;
    recorded(src.db, Some(&by.to_string()), id, meta).await?;
    Ok(bundle)
}

/// Records who exported the evidence of an incident (an event of its own transaction).
async fn recorded(db: &Db, by: Option<&str>, id: &str, meta: &RequestMeta) -> Result<()> {
    let mut tx = db.begin_write().await?;
    let mut e = Event::new(EventAction::IncidentEvidence, Outcome::Success)
        .target(format!("incident:{id}"))
        .detail(format!("evidence bundle ({FORMAT})"));
    if let Some(by) = by {
        e = e.actor(by);
    }
    e.record(&mut tx, meta).await?;
    tx.commit().await.quiet()?;
    Ok(())
}

/// Reads everything the bundle holds and writes it out, pretty-printed JSON.
async fn build(src: &Sources<'_>, id: &str, by: &str) -> Result<Vec<u8>> {
    let db = src.db;
    let mut tx = db.begin().await?;
    let incident = incidents::find(&mut tx, id).await?;
    tx.commit().await.quiet()?;
    let incident = incident.ok_or(AppError::NotFound)?;
    let notes = incidents::notes(db, id).await?;
    let related = incidents::related_events(db, &incident, MAX_EVENTS + 1).await?;
    let truncated = related.len() as i64 > MAX_EVENTS;
    let (mut events, unsealed): (Vec<AuditRow>, Vec<AuditRow>) = related
        .into_iter()
        .take(MAX_EVENTS as usize)
        .partition(|r| r.seq.is_some());
    events.sort_by_key(|r| r.seq);
    let chain = segment(db, &events).await?;
    let parts: [(&str, Value); 6] = [
        (
            "export",
            json!({
                "created_at": Timestamp::now().rfc3339(),
                "by": by,
                "server_version": env!("CARGO_PKG_VERSION"),
                // Events tied to the incident but not sealed into the chain yet (sealed within
                // a second by a running server): not in this bundle.
                "unsealed_events_left_out": unsealed.len(),
                "events_truncated": truncated,
            }),
        ),
        ("incident", incident_json(&incident, &notes)),
        ("events", serde_json::to_value(&events).map_err(internal)?),
        ("chain", serde_json::to_value(&chain).map_err(internal)?),
        ("keys", audit_keys_jwks(src.keys)),
        ("deployment", deployment(src)),
    ];
    assemble(parts, src.keys)
}

/// The bundle of `parts` (in `PARTS`' order), with its manifest signed by the current
/// checkpoint key: pretty-printed JSON.
fn assemble(parts: [(&str, Value); 6], keys: &DataKeyring) -> Result<Vec<u8>> {
    let mut digests = serde_json::Map::new();
    for (name, part) in &parts {
        digests.insert((*name).to_owned(), Value::String(digest(part)));
    }
    let manifest = json!({
        "algorithm": "sha-256",
        "canonical_form": "JSON, object keys sorted, no whitespace",
        "parts": digests,
    });
    let key_id = keys.current();
    let key = signer(keys, key_id)
        .ok_or_else(|| internal(format!("no checkpoint key for data key {key_id}")))?;
    let signature = json!({
        "key_id": key_id,
        "alg": "EdDSA",
        "value": sign_with(&key, &bundle_message(&digest(&manifest))),
    });
    let mut bundle = serde_json::Map::new();
    bundle.insert("format".into(), Value::String(FORMAT.into()));
    for (name, part) in parts {
        bundle.insert(name.to_owned(), part);
    }
    bundle.insert("manifest".into(), manifest);
    bundle.insert("signature".into(), signature);
    let mut out = serde_json::to_vec_pretty(&Value::Object(bundle)).map_err(internal)?;
    out.push(b'\n');
    Ok(out)
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("building an evidence bundle: {e}"))
}

/// The chain from the first of `events` to the first signed point at or after the last: the
/// oldest checkpoint there, else the signed head.
async fn segment(db: &Db, events: &[AuditRow]) -> Result<Chain> {
    let (Some(first), Some(last)) = (
        events.first().and_then(|r| r.seq),
        events.last().and_then(|r| r.seq),
    ) else {
        return Ok(Chain {
            rows: Vec::new(),
            signed: Vec::new(),
        });
    };
    let head = audit::signed_head(db).await?;
    let end = match audit::checkpoint_after(db, last - 1).await? {
        Some(c) => Signed::of("checkpoint", &c),
        None => match head {
            Some(h) if h.seq >= last => Signed::of("head", &h),
            _ => {
                return Err(AppError::Refused(
                    "the incident's newest events are not signed yet; try again in a few seconds",
                ));
            }
        },
    };
    if end.seq - first + 1 > MAX_SEGMENT {
        return Err(AppError::Refused(
            "the chain segment of this incident is too long for a bundle",
        ));
    }
    let rows = audit::sealed_between(db, first - 1, end.seq, MAX_SEGMENT).await?;
    let mut signed: Vec<Signed> = audit::checkpoints_between(db, first - 1, end.seq)
        .await?
        .iter()
        .map(|c| Signed::of("checkpoint", c))
        .collect();
    if end.kind == "head" {
        signed.push(end);
    }
    Ok(Chain { rows, signed })
}

fn incident_json(i: &Incident, notes: &[Note]) -> Value {
    let notes: Vec<Value> = notes
        .iter()
        .map(|n| {
            json!({"at": n.at.rfc3339(), "author_id": n.author_id, "status": n.status.as_str(),
                "note": n.note})
        })
        .collect();
    json!({
        "id": i.id,
        "kind": i.kind.as_str(),
        "level": i.level.as_str(),
        "requested_level": i.requested_level.map(|l| l.as_str()),
        "status": i.status.as_str(),
        "affected_systems": i.affected_systems,
        "subject": i.subject,
        "description": i.description,
        "reported_by": i.reported_by,
        "count": i.count,
        "first_seen": i.first_seen.rfc3339(),
        "last_seen": i.last_seen.rfc3339(),
        "updated_at": i.updated_at.rfc3339(),
        "resolved_at": i.resolved_at.map(|t| t.rfc3339()),
        "recurrence_of": i.recurrence_of,
        "notes": notes,
    })
}

/// What the deployment runs with, as an investigator needs it: no secret, no URL, no key bytes;
/// the ids of the keys only.
fn deployment(src: &Sources<'_>) -> Value {
    let c = src.config;
    let token_keys: Vec<Value> = src
        .tokens
        .describe()
        .into_iter()
        .map(|(kid, alg)| json!({"kid": kid, "alg": alg}))
        .collect();
    json!({
        "environment": match c.env {
            Environment::Production => "production",
            Environment::Development => "development",
        },
        "database": src.db.backend(),
        "shared_state": c.redis_url.is_some(),
        "registration": match c.registration {
            Registration::Open => "open",
            Registration::AdminOnly => "admin",
        },
        "rate_limits": c.rate_limits,
        "alert_min_level": c.alert_min_level.as_str(),
        "alert_webhook": c.alert_webhook_url.is_some(),
        "containment": {
            "stuffing_block_s": c.containment.stuffing_block_s,
            "refresh_reuse_revokes_all": c.containment.reuse_revokes_all,
        },
        "audit_checkpoints": {
            "events": c.audit_checkpoints.events,
            "every_s": c.audit_checkpoints.every.as_secs(),
        },
        "access_token_ttl_s": c.access_token_ttl,
        "refresh_token_ttl_s": c.refresh_token_ttl,
        "session_max_age_s": c.session_max_age,
        "legacy_tokens_accepted": c.legacy_jwt_secret.is_some(),
        "data_keys": src.keys.ids().collect::<Vec<_>>(),
        "token_keys": token_keys,
    })
}

/// The SHA-256 (hex) of a value's canonical form.
pub fn digest(v: &Value) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canonical(v));
    crate::crypto::hex(d.as_ref())
}

/// A value as the manifest hashes it: object keys sorted, no whitespace. A bundle re-indented or
/// re-serialized (a browser's download) keeps its digests.
pub fn canonical(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            out.push(b'{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                scalar(&Value::String(k.clone()), out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        other => scalar(other, out),
    }
}

fn scalar(v: &Value, out: &mut Vec<u8>) {
    // Writing a string, number, boolean or null into memory cannot fail.
    let _ = serde_json::to_writer(out, v);
}

/// What `verify` found: what it checked (for the operator), and every change it found.
#[derive(Debug, Default)]
pub struct Report {
    /// What the bundle says of itself (unchecked until the manifest is).
    pub about: Vec<String>,
    pub checked: Vec<String>,
    pub changes: Vec<String>,
}

impl Report {
    /// One change found (said once: an event changed in both its part and the chain is one).
    fn changed(&mut self, what: impl Into<String>) {
        let what = what.into();
        if !self.changes.contains(&what) {
            self.changes.push(what);
        }
    }
}

/// One key of a key set: its id and its 32 public bytes.
fn key_set(v: &Value) -> std::result::Result<BTreeMap<String, Vec<u8>>, String> {
    let keys = v["keys"]
        .as_array()
        .ok_or("holds no `keys` array".to_owned())?;
    let mut out = BTreeMap::new();
    for k in keys {
        let (Some(kid), Some(x)) = (k["kid"].as_str(), k["x"].as_str()) else {
            return Err("holds a key without `kid` or `x`".into());
        };
        if k["kty"] != "OKP" || k["crv"] != "Ed25519" {
            return Err(format!("key {kid} is not an Ed25519 key"));
        }
        let x = URL_SAFE_NO_PAD
            .decode(x)
            .ok()
            .filter(|x| x.len() == 32)
            .ok_or_else(|| format!("key {kid}: `x` is not 32 bytes of base64url"))?;
        out.insert(kid.to_owned(), x);
    }
    Ok(out)
}

/// Checks a bundle offline. `pinned`: a key set the investigator trusts (a copy of
/// `/.well-known/imangor-audit-keys`); without it the bundle's own keys are used, and the report
/// names them to be compared.
pub fn verify(bytes: &[u8], pinned: Option<&[u8]>) -> Report {
    let mut r = Report::default();
    let bundle: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            r.changed(format!("the file is not a JSON bundle: {e}"));
            return r;
        }
    };
    if bundle["format"] != FORMAT {
        r.changed(format!(
            "`format` is {}, not {FORMAT:?}: not a bundle this version reads",
            bundle["format"]
        ));
        return r;
    }
    let (export, incident) = (&bundle["export"], &bundle["incident"]);
    // The bundle is untrusted until checked: its strings are printed escaped (no terminal
    // control sequence or line break can fake a line of the verdict).
    let text = |v: &Value| {
        v.as_str()
            .map_or_else(|| v.to_string(), |s| s.escape_debug().to_string())
    };
    r.about.push(format!(
        "incident {} ({}, {}, {}), exported {} by {} from imangor {}",
        text(&incident["id"]),
        text(&incident["kind"]),
        text(&incident["level"]),
        text(&incident["status"]),
        text(&export["created_at"]),
        text(&export["by"]),
        text(&export["server_version"])
    ));
    if export["unsealed_events_left_out"]
        .as_u64()
        .is_some_and(|n| n > 0)
    {
        r.about.push(format!(
            "{} events of the incident were not sealed yet when it was exported: they are not in it",
            export["unsealed_events_left_out"]
        ));
    }
    if export["events_truncated"] == true {
        r.about.push(format!(
            "the incident had more than {MAX_EVENTS} events: the newest {MAX_EVENTS} are in it"
        ));
    }
    let keys = match key_set(&bundle["keys"]) {
        Ok(k) => k,
        Err(e) => {
            r.changed(format!("the `keys` part {e}"));
            BTreeMap::new()
        }
    };
    let keys = match pinned.map(pin) {
        None => {
            r.checked.push(format!(
                "signatures checked with the bundle's own keys: {}; compare them with /.well-known/imangor-audit-keys (or pass --keys)",
                keys.iter()
                    .map(|(k, x)| format!("{k} (x={})", URL_SAFE_NO_PAD.encode(x)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            keys
        }
        Some(Err(e)) => {
            r.changed(format!("the pinned key set {e}"));
            return r;
        }
        Some(Ok(trusted)) => {
            for (kid, x) in &keys {
                match trusted.get(kid) {
                    Some(t) if t == x => {}
                    Some(_) => r.changed(format!(
                        "key {kid} in the bundle differs from the pinned key {kid}"
                    )),
                    None => r.changed(format!(
                        "key {kid} in the bundle is not among the pinned keys"
                    )),
                }
            }
            r.checked.push(format!(
                "signatures checked with {} pinned keys",
                trusted.len()
            ));
            trusted
        }
    };
    manifest(&bundle, &keys, &mut r);
    let chain = match serde_json::from_value::<Chain>(bundle["chain"].clone()) {
        Ok(c) => c,
        Err(e) => {
            r.changed(format!("the `chain` part is malformed: {e}"));
            return r;
        }
    };
    let covered = check_chain(&chain, &keys, &mut r);
    match serde_json::from_value::<Vec<AuditRow>>(bundle["events"].clone()) {
        Ok(events) => check_events(&events, &chain, covered, &mut r),
        Err(e) => r.changed(format!("the `events` part is malformed: {e}")),
    }
    r
}

fn pin(bytes: &[u8]) -> std::result::Result<BTreeMap<String, Vec<u8>>, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("is not JSON: {e}"))?;
    key_set(&v)
}

/// The manifest names each part's digest, and its signature holds.
fn manifest(bundle: &Value, keys: &BTreeMap<String, Vec<u8>>, r: &mut Report) {
    let m = &bundle["manifest"];
    let mut matching = 0;
    for part in PARTS {
        let Some(entry) = m["parts"][part].as_str() else {
            r.changed(format!("manifest entry {part:?} is missing"));
            continue;
        };
        if bundle.get(part).is_none() {
            r.changed(format!("part {part:?} is missing"));
        } else if digest(&bundle[part]) != entry {
            r.changed(format!(
                "manifest entry {part:?} does not match the part: the part or its entry was changed"
            ));
        } else {
            matching += 1;
        }
    }
    if let Some(extra) = m["parts"]
        .as_object()
        .and_then(|o| o.keys().find(|k| !PARTS.contains(&k.as_str())))
    {
        r.changed(format!(
            "manifest entry {extra:?} names no part of a bundle"
        ));
    }
    r.checked.push(format!(
        "manifest: {matching} of {} parts match their SHA-256",
        PARTS.len()
    ));
    let s = &bundle["signature"];
    let (Some(kid), Some(sig)) = (s["key_id"].as_str(), s["value"].as_str()) else {
        r.changed("the manifest's signature is missing");
        return;
    };
    let Some(public) = keys.get(kid) else {
        r.changed(format!(
            "the manifest is signed with key {kid}, which is not in the key set"
        ));
        return;
    };
    let message = bundle_message(&digest(m));
    match verdict_with(public, sig, &[&message]) {
        Verdict::Holds(_) => r
            .checked
            .push(format!("the manifest's signature holds (key {kid})")),
        Verdict::Fails | Verdict::UnknownKey => r.changed(format!(
            "the manifest's signature (key {kid}) does not verify: the manifest was changed"
        )),
    }
}

/// Every row's hash and link, every signed point's row and signature. Returns the highest row a
/// valid signature covers (0: none).
fn check_chain(chain: &Chain, keys: &BTreeMap<String, Vec<u8>>, r: &mut Report) -> i64 {
    let Some(start) = chain.rows.first().and_then(|row| row.seq) else {
        if !chain.signed.is_empty() {
            r.changed("the chain segment holds signatures but no rows: its rows were removed");
        }
        return 0;
    };
    let mut hashes: BTreeMap<i64, &str> = BTreeMap::new();
    let mut prev: Option<&AuditRow> = None;
    for (i, row) in chain.rows.iter().enumerate() {
        let expected = start + i as i64;
        let Some(seq) = row.seq.filter(|s| *s == expected) else {
            r.changed(format!(
                "the chain segment has row {} where row {expected} belongs: rows were removed, added or reordered",
                row.seq.map_or("without seq".into(), |s| s.to_string())
            ));
            return 0;
        };
        let recomputed = chain_hash(row.prev_hash.as_deref().unwrap_or_default(), seq, row);
        if row.hash.as_deref() != Some(recomputed.as_str()) {
            r.changed(format!(
                "event seq {seq} ({}) was changed: its fields no longer match its hash",
                row.id
            ));
        }
        if let Some(p) = prev
            && row.prev_hash != p.hash
        {
            r.changed(format!(
                "event seq {seq} does not follow seq {}: the link between them was changed",
                seq - 1
            ));
        }
        hashes.insert(seq, row.hash.as_deref().unwrap_or_default());
        prev = Some(row);
    }
    let end = start + chain.rows.len() as i64 - 1;
    r.checked.push(format!(
        "chain segment: rows {start}..{end}, each hash recomputed and each link checked"
    ));
    let mut covered = 0;
    for s in &chain.signed {
        let name = s.name();
        let Some(row_hash) = hashes.get(&s.seq) else {
            r.changed(format!("{name} names a row outside the chain segment"));
            continue;
        };
        if *row_hash != s.hash {
            r.changed(format!(
                "{name} was changed: the hash it signs is not row {}'s",
                s.seq
            ));
            continue;
        }
        let Some(public) = keys.get(&s.key_id) else {
            r.changed(format!(
                "{name} is signed with key {}, which is not in the key set",
                s.key_id
            ));
            continue;
        };
        let messages = s.messages();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        match verdict_with(public, &s.signature, &refs) {
            Verdict::Holds(_) => covered = covered.max(s.seq),
            Verdict::Fails | Verdict::UnknownKey => r.changed(format!(
                "{name} was changed: its signature (key {}) does not verify",
                s.key_id
            )),
        }
    }
    r.checked.push(format!(
        "signed points (checkpoints, head) checked: {}; the segment is signed up to row {covered}",
        chain.signed.len()
    ));
    if covered < end {
        r.changed(format!(
            "rows {}..{end} of the chain segment are covered by no valid signature",
            covered + 1
        ));
    }
    covered
}

/// Each event is a row of the segment, unchanged, and covered by a signature.
fn check_events(events: &[AuditRow], chain: &Chain, covered: i64, r: &mut Report) {
    let rows: BTreeMap<i64, &AuditRow> = chain
        .rows
        .iter()
        .filter_map(|row| row.seq.map(|s| (s, row)))
        .collect();
    for e in events {
        let Some(seq) = e.seq else {
            r.changed(format!("event {} has no seq: it is not in the chain", e.id));
            continue;
        };
        let recomputed = chain_hash(e.prev_hash.as_deref().unwrap_or_default(), seq, e);
        if e.hash.as_deref() != Some(recomputed.as_str()) {
            r.changed(format!(
                "event seq {seq} ({}) was changed: its fields no longer match its hash",
                e.id
            ));
        }
        match rows.get(&seq) {
            None => r.changed(format!("event seq {seq} is not in the chain segment")),
            Some(row) if !same(row, e) => r.changed(format!(
                "event seq {seq} ({}) differs from row {seq} of the chain segment",
                e.id
            )),
            Some(_) if seq > covered => {
                r.changed(format!("event seq {seq} is covered by no valid signature"))
            }
            Some(_) => {}
        }
    }
    r.checked.push(format!(
        "{} events of the incident, each a signed row of the chain",
        events.len()
    ));
}

fn same(a: &AuditRow, b: &AuditRow) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::data::tests::ring;

    fn row(seq: i64, prev: &str, detail: &str) -> AuditRow {
        let mut r = AuditRow {
            id: format!("e{seq}"),
            seq: Some(seq),
            at: 1_700_000_000_000_000 + seq,
            action: "auth.login".into(),
            outcome: "failure".into(),
            severity: "info".into(),
            actor_id: Some("u1".into()),
            target: None,
            ip: Some("203.0.113.7".into()),
            request_id: None,
            detail: Some(detail.into()),
            prev_hash: Some(prev.into()),
            hash: None,
        };
        r.hash = Some(chain_hash(prev, seq, &r));
        r
    }

    /// Rows 1..=6 of a chain, a checkpoint at 3 and the signed head at 6; the incident's events are
    /// rows 2 and 5.
    fn bundle(keys: &DataKeyring) -> Value {
        let mut rows = Vec::new();
        let mut prev = crate::crypto::chain::GENESIS.to_owned();
        for seq in 1..=6 {
            let r = row(seq, &prev, &format!("try {seq}"));
            prev = r.hash.clone().unwrap_or_default();
            rows.push(r);
        }
        let key = signer(keys, "k1").unwrap();
        let at = 1_700_000_000_000_100;
        let h3 = rows[2].hash.clone().unwrap_or_default();
        let signed = vec![
            Signed {
                kind: "checkpoint".into(),
                seq: 3,
                signature: sign_with(&key, &signed_message(3, &h3, at)),
                hash: h3,
                key_id: "k1".into(),
                at,
            },
            Signed {
                kind: "head".into(),
                seq: 6,
                signature: sign_with(&key, &head_message(6, &prev, at)),
                hash: prev.clone(),
                key_id: "k1".into(),
                at,
            },
        ];
        let events = vec![rows[1].clone(), rows[4].clone()];
        let chain = Chain {
            rows: rows[1..].to_vec(),
            signed,
        };
        let parts = [
            ("export", json!({"by": "operator"})),
            ("incident", json!({"id": "i1", "notes": []})),
            ("events", serde_json::to_value(&events).unwrap()),
            ("chain", serde_json::to_value(&chain).unwrap()),
            ("keys", audit_keys_jwks(keys)),
            ("deployment", json!({"data_keys": ["k1"]})),
        ];
        serde_json::from_slice(&assemble(parts, keys).unwrap()).unwrap()
    }

    fn check(b: &Value) -> Report {
        verify(&serde_json::to_vec(b).unwrap(), None)
    }

    /// `b` with its manifest computed and signed again by `keys` (a forger who holds a key).
    fn resealed(b: &Value, keys: &DataKeyring) -> Value {
        let parts = PARTS.map(|p| (p, b[p].clone()));
        serde_json::from_slice(&assemble(parts, keys).unwrap()).unwrap()
    }

    #[test]
    fn the_canonical_form_sorts_keys_and_ignores_layout() {
        let a: Value =
            serde_json::from_str(r#"{"b": [1, {"z": null, "a": "\u00e9"}], "a": true}"#).unwrap();
        assert_eq!(
            String::from_utf8(canonical(&a)).unwrap(),
            r#"{"a":true,"b":[1,{"a":"é","z":null}]}"#
        );
        let pretty = serde_json::to_string_pretty(&a).unwrap();
        assert_eq!(digest(&serde_json::from_str(&pretty).unwrap()), digest(&a));
    }

    #[test]
    fn an_intact_bundle_verifies_with_its_keys_and_with_the_same_keys_pinned() {
        let keys = ring(&[("k1", 1), ("k0", 2)]);
        let b = bundle(&keys);
        let r = check(&b);
        assert!(r.changes.is_empty(), "{:?}", r.changes);
        let published = serde_json::to_vec(&audit_keys_jwks(&keys)).unwrap();
        let r = verify(&serde_json::to_vec(&b).unwrap(), Some(&published));
        assert!(r.changes.is_empty(), "{:?}", r.changes);
    }

    #[test]
    fn removed_reordered_or_cut_rows_are_named() {
        let keys = ring(&[("k1", 1)]);
        let b = bundle(&keys);
        // A row removed from the middle of the segment.
        let mut cut = b.clone();
        cut["chain"]["rows"].as_array_mut().unwrap().remove(2);
        let r = check(&resealed(&cut, &keys));
        assert!(
            r.changes
                .iter()
                .any(|c| c.contains("row 5 where row 4 belongs")),
            "{:?}",
            r.changes
        );
        // Two rows swapped.
        let mut swapped = b.clone();
        swapped["chain"]["rows"].as_array_mut().unwrap().swap(0, 1);
        let r = check(&resealed(&swapped, &keys));
        assert!(
            r.changes.iter().any(|c| c.contains("belongs")),
            "{:?}",
            r.changes
        );
        // The tail cut off with the head that signed it: the last event is no longer covered.
        let mut short = b.clone();
        short["chain"]["rows"].as_array_mut().unwrap().truncate(3);
        short["chain"]["signed"].as_array_mut().unwrap().pop();
        let r = check(&resealed(&short, &keys));
        assert!(
            r.changes
                .contains(&"event seq 5 is not in the chain segment".to_owned()),
            "{:?}",
            r.changes
        );
        // A forged head: signed by a key the deployment does not publish.
        let other = ring(&[("k1", 9)]);
        let forged = resealed(&bundle(&other), &other);
        let published = serde_json::to_vec(&audit_keys_jwks(&keys)).unwrap();
        let r = verify(&serde_json::to_vec(&forged).unwrap(), Some(&published));
        assert!(
            r.changes
                .iter()
                .any(|c| c.contains("key k1 in the bundle differs")),
            "{:?}",
            r.changes
        );
        assert!(
            r.changes
                .iter()
                .any(|c| c.contains("the signed head (row 6) was changed")),
            "{:?}",
            r.changes
        );
    }

    #[test]
    fn an_event_changed_in_both_places_is_named_once_by_its_seq() {
        let keys = ring(&[("k1", 1)]);
        let mut b = bundle(&keys);
        b["events"][0]["detail"] = "nothing happened".into();
        b["chain"]["rows"][0]["detail"] = "nothing happened".into();
        let r = check(&b);
        let named: Vec<_> = r
            .changes
            .iter()
            .filter(|c| c.starts_with("event seq 2 (e2) was changed"))
            .collect();
        assert_eq!(named.len(), 1, "{:?}", r.changes);
        assert!(
            r.changes
                .iter()
                .any(|c| c.contains("manifest entry \"chain\"")),
            "{:?}",
            r.changes
        );
    }

    #[test]
    fn what_is_not_a_bundle_is_said() {
        assert!(verify(b"not json", None).changes[0].contains("not a JSON bundle"));
        let r = verify(br#"{"format": "imangor-evidence-bundle/0"}"#, None);
        assert!(
            r.changes[0].contains("not a bundle this version reads"),
            "{:?}",
            r.changes
        );
    }

    #[test]
    fn a_bundles_strings_are_printed_escaped() {
        let keys = ring(&[("k1", 1)]);
        let mut b = bundle(&keys);
        b["export"]["by"] = json!("evil\u{1b}[2K\nintact: no change");
        let r = check(&b);
        let line = r.about.iter().find(|l| l.contains("evil")).unwrap();
        assert!(!line.contains('\u{1b}') && !line.contains('\n'), "{line:?}");
    }
}
