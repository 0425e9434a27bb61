//! Containment: revoke every session of a user, disable a user, block an address or network for
//! a while; the same actions for admins and managers through the API and for the operator on the
//! command line. Also the two in-process watches the detectors rely on: blocked addresses (read
//! from the database every second, so every replica applies a block) and invalid access tokens
//! by address (counted in memory; an event is written only when one address crosses the
//! threshold, so saying no stays cheap).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use super::{Event, RequestMeta};
use crate::authz::{self, Action, Principal};
use crate::db::{Db, incidents, sessions, users};
use crate::domain::net::Cidr;
use crate::domain::{Role, Timestamp, UserId};
use crate::error::{AppError, Result};
use crate::state::AppState;

pub const FORGED_TOKENS: u32 = 50;
const FORGED_WINDOW: Duration = Duration::from_secs(60);
const WATCHED_ADDRESSES: usize = 10_000;
pub const MAX_BLOCK_S: u64 = 30 * 86_400;

/// Addresses refused at the door.
#[derive(Debug, Default)]
pub struct Blocklist {
    nets: RwLock<Vec<(Cidr, Timestamp)>>,
}

impl Blocklist {
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let now = Timestamp::now();
        self.nets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|(c, until)| *until > now && c.contains(ip))
    }

    pub async fn refresh(&self, db: &Db) -> sqlx::Result<()> {
        let rows = incidents::active_blocks(db, Timestamp::now()).await?;
        let nets = rows
            .into_iter()
            .filter_map(|(c, until)| c.parse::<Cidr>().ok().map(|c| (c, until)))
            .collect();
        *self.nets.write().unwrap_or_else(|e| e.into_inner()) = nets;
        Ok(())
    }
}

/// Reloads the blocklist every second.
pub async fn refresh_loop(db: Db, blocks: std::sync::Arc<Blocklist>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        if let Err(e) = blocks.refresh(&db).await {
            tracing::warn!(error = %e, "reloading blocked addresses failed");
        }
    }
}

/// Invalid access tokens by address (an IPv6 address counts for its /64, `limits::bucket_ip`),
/// in a sliding minute.
#[derive(Debug, Default)]
pub struct TokenWatch {
    /// By address: when its window started, refusals in it, whether it was reported.
    seen: Mutex<HashMap<IpAddr, (Instant, u32, bool)>>,
}

impl TokenWatch {
    /// Counts one refused token from `ip`; true when this one crosses the threshold (once per window).
    pub fn refused(&self, ip: IpAddr) -> bool {
        let ip = crate::limits::bucket_ip(ip);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= WATCHED_ADDRESSES && !seen.contains_key(&ip) {
            seen.retain(|_, (start, _, _)| start.elapsed() < FORGED_WINDOW);
            // Still (nearly) full of live windows: the addresses with the fewest refusals, the
            // oldest first among equals, make room for a quarter of the watch, so that a spray
            // of fresh addresses cannot wipe the count of one about to cross the threshold, and
            // the scan runs once per quarter of new addresses, not once per refusal.
            let over = seen
                .len()
                .saturating_sub(WATCHED_ADDRESSES - WATCHED_ADDRESSES / 4);
            if over > 0 {
                let mut least: Vec<(u32, Instant, IpAddr)> = seen
                    .iter()
                    .map(|(ip, (start, n, _))| (*n, *start, *ip))
                    .collect();
                least.select_nth_unstable(over - 1);
                for (_, _, ip) in &least[..over] {
                    seen.remove(ip);
                }
            }
        }
        let e = seen.entry(ip).or_insert((Instant::now(), 0, false));
        if e.0.elapsed() >= FORGED_WINDOW {
            *e = (Instant::now(), 0, false);
        }
        e.1 = e.1.saturating_add(1);
        // One report per address per window, however many more tokens it sends: saying no
        // stays cheap under a sustained forgery.
        if e.1 >= FORGED_TOKENS && !e.2 {
            e.2 = true;
            true
        } else {
            false
        }
    }
}

/// Records, off the request path, that `ip` sent too many invalid tokens (the detector opens the incident).
pub fn forged_tokens_seen(app: &AppState, ip: IpAddr) {
    let db = app.db.clone();
    tokio::spawn(async move {
        let meta = RequestMeta {
            ip: Some(ip),
            request_id: None,
        };
        let r: anyhow::Result<()> = async {
            let mut tx = db.begin().await?;
            Event::new("auth.token_invalid", "failure")
                .detail(format!(
                    "{FORGED_TOKENS} access tokens failed verification within {} s",
                    FORGED_WINDOW.as_secs()
                ))
                .record(&mut tx, &meta)
                .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "recording invalid tokens failed");
        }
    });
}

/// Who acts: a person through the API (the policy decides), or the operator's command line.
pub enum By<'a> {
    Person(&'a Principal),
    Operator,
}

impl By<'_> {
    fn actor(&self) -> String {
        match self {
            By::Person(p) => p.user_id().to_string(),
            By::Operator => "operator".to_owned(),
        }
    }
}

/// Ends every session of `user`: with the rights needed to disable that account.
pub async fn revoke_sessions(
    app: &AppState,
    by: By<'_>,
    user: UserId,
    meta: &RequestMeta,
) -> Result<u64> {
    // The policy first: a caller who may contain no account learns nothing about which exist.
    if let By::Person(who) = &by {
        authz::authorize_any(
            Some(who),
            &[Action::AccountDisableUser, Action::AccountDisableStaff],
        )?;
    }
    let now = Timestamp::now();
    let mut tx = app.db.begin_write().await?;
    let sealed = users::find_for_update(&mut tx, user)
        .await?
        .ok_or(AppError::NotFound)?;
    if let By::Person(who) = &by {
        authz::authorize_by(Some(who), |u: &users::User| disable_action(u.role), sealed)?;
        if who.user_id() == user {
            return Err(AppError::Refused(
                "you cannot contain your own account (log out, or change your password)",
            ));
        }
    }
    let n = sessions::revoke_all_of(&mut tx, user, None, "containment", now).await?;
    Event::new("containment.revoke_sessions", "success")
        .actor(by.actor())
        .target(user)
        .detail(format!("{n} session(s)"))
        .record(&mut tx, meta)
        .await?;
    tx.commit().await?;
    Ok(n)
}

fn disable_action(role: Role) -> Action {
    match role {
        Role::User => Action::AccountDisableUser,
        Role::Manager | Role::Admin => Action::AccountDisableStaff,
    }
}

/// Blocks `cidr` for `seconds`. A block that would cover the caller's own address is refused.
pub async fn block(
    app: &AppState,
    by: By<'_>,
    cidr: Cidr,
    seconds: u64,
    reason: &str,
    meta: &RequestMeta,
) -> Result<Timestamp> {
    if let By::Person(who) = &by {
        authz::authorize_plain(Some(who), Action::AddressBlock)?;
        // A person blocks a network, not the Internet: at least /16 for IPv4, /32 for IPv6.
        let (prefix, bits) = cidr.prefix();
        if prefix < if bits == 32 { 16 } else { 32 } {
            return Err(AppError::Refused(
                "a block covers at most a /16 (IPv4) or a /32 (IPv6)",
            ));
        }
        if meta.ip.is_some_and(|ip| cidr.contains(ip)) {
            return Err(AppError::Refused("the block would cover your own address"));
        }
    }
    let now = Timestamp::now();
    let until = now.plus_seconds(seconds.clamp(1, MAX_BLOCK_S));
    let mut tx = app.db.begin().await?;
    let actor = by.actor();
    incidents::block(&mut tx, &cidr.to_string(), reason, Some(&actor), now, until).await?;
    Event::new("containment.block_address", "success")
        .actor(&actor)
        .target(cidr)
        .detail(format!("until {}: {reason}", until.rfc3339()))
        .record(&mut tx, meta)
        .await?;
    tx.commit().await?;
    app.blocks.refresh(&app.db).await?;
    Ok(until)
}
