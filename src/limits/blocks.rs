//! The two in-process watches containment relies on: blocked addresses (read from the database
//! every second, so every replica applies a block) and invalid access tokens by address (counted
//! in memory; an event is written only when one address crosses the threshold, so saying no
//! stays cheap). The actions that block and report are `service::containment`'s.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::db::{Db, incidents};
use crate::domain::Timestamp;
use crate::domain::net::Cidr;

pub const FORGED_TOKENS: u32 = 50;

pub const FORGED_WINDOW: Duration = Duration::from_secs(60);

const WATCHED_ADDRESSES: usize = 10_000;

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
