//! Each client address's share of the server's connections (`IMANGOR_MAX_CONNECTIONS_PER_ADDRESS`):
//! one address cannot hold every connection and lock everyone else out.
//!
//! Counted at two places, in one table: a direct peer's connections when they are accepted, and,
//! for the requests a trusted proxy forwards, the forwarded client's requests in flight (with
//! HTTP/1.1 a request in flight is a connection held through the proxy). A trusted proxy's own
//! connections are not counted at all: it carries everyone's traffic, and its clients are
//! counted one by one at the request instead, where their address is known.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::bucket_ip;

/// The table of addresses and what each holds; only addresses holding something are in it, so
/// it is bounded by the connections and requests of the moment.
#[derive(Debug)]
pub struct Shares {
    per_address: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection (or forwarded request) of an address, given back when dropped.
#[derive(Debug)]
pub struct Share {
    shares: Arc<Shares>,
    ip: IpAddr,
}

impl Shares {
    pub fn new(per_address: usize) -> Arc<Shares> {
        Arc::new(Shares {
            per_address,
            held: Mutex::default(),
        })
    }

    /// One more for `ip` (an IPv6 address counts as its /64, as for the rate limits), unless it
    /// already holds its share.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Share> {
        let ip = bucket_ip(ip);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= self.per_address {
            return None;
        }
        *n += 1;
        Some(Share {
            shares: self.clone(),
            ip,
        })
    }

    /// What `ip` holds now.
    pub fn held(&self, ip: IpAddr) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&bucket_ip(ip)).copied().unwrap_or(0)
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Entry::Occupied(mut e) = held.entry(self.ip) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_gets_it_back() {
        let shares = Shares::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let (s1, s2) = (shares.take(a).unwrap(), shares.take(a).unwrap());
        assert!(shares.take(a).is_none());
        // Another host of the same /64 is the same address.
        let b1 = shares.take(b).unwrap();
        let b2 = shares.take("2001:db8::2".parse().unwrap()).unwrap();
        assert!(shares.take(b).is_none());
        drop(s1);
        assert_eq!(shares.held(a), 1);
        let s3 = shares.take(a).unwrap();
        drop((s2, s3, b1, b2));
        assert!(shares.held.lock().unwrap().is_empty(), "nothing is kept");
    }
}
