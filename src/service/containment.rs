//! Containment: revoke every session of a user, disable a user, block an address or network for
//! a while; the same actions for admins and managers through the API and for the operator on the
//! command line; and the event of an address that sent too many invalid tokens (the watches
//! themselves are `limits::blocks`).

use std::net::IpAddr;

use super::audit::{self, Event, EventSink, RequestMeta};
use crate::authz::{self, Action, Principal};
use crate::db::{incidents, sessions, users};
use crate::domain::net::Cidr;
use crate::domain::{Role, Timestamp, User, UserId};
use crate::error::{AppError, Result};
use crate::limits::blocks::{FORGED_TOKENS, FORGED_WINDOW};
use crate::service::context::{Guards, Store};

pub const MAX_BLOCK_S: u64 = 30 * 86_400;

/// Records, off the request path (the event writer), that `ip` sent too many invalid tokens
/// (the detector opens the incident). Waits only when the writer's queue is full.
pub async fn forged_tokens_seen(events: &EventSink, ip: IpAddr) {
    let meta = RequestMeta {
        ip: Some(ip),
        request_id: None,
    };
    Event::new(audit::Action::AuthTokenInvalid, audit::Outcome::Failure)
        .detail(format!(
            "{FORGED_TOKENS} access tokens failed verification within {} s",
            FORGED_WINDOW.as_secs()
        ))
        .emit(events, &meta)
        .await;
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
    store: &Store,
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
    let mut tx = store.db.begin_write().await?;
    let sealed = users::find_for_update(&mut tx, user)
        .await?
        .ok_or(AppError::NotFound)?;
    if let By::Person(who) = &by {
        authz::authorize_by(Some(who), |u: &User| disable_action(u.role), sealed)?;
        if who.user_id() == user {
            return Err(AppError::Refused(
                "you cannot contain your own account (log out, or change your password)",
            ));
        }
    }
    let n = sessions::revoke_all_of(&mut tx, user, None, "containment", now).await?;
    Event::new(
        audit::Action::ContainmentRevokeSessions,
        audit::Outcome::Success,
    )
    .actor(by.actor())
    .target(user)
    .detail(format!("{n} session(s)"))
    .record(&mut tx, meta)
    .await?;
    store.commit(tx).await?;
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
    store: &Store,
    guards: &Guards,
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
    let mut tx = store.db.begin().await?;
    let actor = by.actor();
    incidents::block(&mut tx, &cidr.to_string(), reason, Some(&actor), now, until).await?;
    Event::new(
        audit::Action::ContainmentBlockAddress,
        audit::Outcome::Success,
    )
    .actor(&actor)
    .target(cidr)
    .detail(format!("until {}: {reason}", until.rfc3339()))
    .record(&mut tx, meta)
    .await?;
    store.commit(tx).await?;
    guards.blocks.refresh(&store.db).await?;
    Ok(until)
}

/// Lifts the block of exactly `cidr` before its end (admins: `AddressUnblock`); 404 when no
/// block of that network is in force. Every replica drops it at its next reload of the blocks.
pub async fn unblock(
    store: &Store,
    guards: &Guards,
    by: By<'_>,
    cidr: Cidr,
    reason: &str,
    meta: &RequestMeta,
) -> Result<()> {
    if let By::Person(who) = &by {
        authz::authorize_plain(Some(who), Action::AddressUnblock)?;
    }
    let now = Timestamp::now();
    let mut tx = store.db.begin().await?;
    let actor = by.actor();
    if !incidents::unblock(&mut tx, &cidr.to_string(), now).await? {
        return Err(AppError::NotFound);
    }
    Event::new(
        audit::Action::ContainmentUnblockAddress,
        audit::Outcome::Success,
    )
    .actor(&actor)
    .target(cidr)
    .detail(reason.to_owned())
    .record(&mut tx, meta)
    .await?;
    store.commit(tx).await?;
    guards.blocks.refresh(&store.db).await?;
    Ok(())
}
