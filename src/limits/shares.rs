//! Each client address's share of the server's connections (`IMANGOR_MAX_CONNECTIONS_PER_ADDRESS`):
//! one address cannot hold every connection and lock everyone else out.
//!
//! Counted at two places, in one table: a direct peer's connections when they are accepted, and,
//! for the requests a trusted proxy forwards, the forwarded client's requests in flight (with
//! HTTP/1.1 a request in flight is a connection held through the proxy). A trusted proxy's own
//! connections are not counted at all: it carries everyone's traffic, and its clients are
//! counted one by one at the request instead, where their address is known.
//!
//! An IPv6 address counts as its /64, and its /48 has a second share, four times as large: a
//! host given a /56 (256 /64s) would otherwise hold 256 shares, every connection of the server.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use super::bucket_ip;

/// The table of addresses (an IPv6 /64, or the /48 of the second share: the key's prefix length
/// tells them apart) and what each holds; only addresses holding something are in it, so it is
/// bounded by the connections and requests of the moment.
#[derive(Debug)]
pub struct Shares {
    per_address: usize,
    held: Mutex<HashMap<Key, usize>>,
}

/// An address of the table: the network and its prefix length.
type Key = (IpAddr, u8);

/// One connection (or forwarded request) of an address, given back when dropped.
#[derive(Debug)]
pub struct Share {
    shares: Arc<Shares>,
    keys: Keys,
}

/// How many /64 shares one /48 holds at most.
const PER_48: usize = 4;

/// The keys an address counts against: its own (IPv6: its /64), and for IPv6 its /48. No
/// allocation: this is made for every connection and every forwarded request.
#[derive(Debug, Clone, Copy)]
struct Keys {
    own: Key,
    net48: Option<Key>,
}

impl Keys {
    fn of(ip: IpAddr) -> Keys {
        let ip = bucket_ip(ip);
        let net48 = match ip {
            IpAddr::V6(v6) => Some((
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1))),
                48,
            )),
            IpAddr::V4(_) => None,
        };
        let own = (ip, if ip.is_ipv4() { 32 } else { 64 });
        Keys { own, net48 }
    }

    fn all(self) -> impl Iterator<Item = Key> {
        std::iter::once(self.own).chain(self.net48)
    }

    /// Each key with its limit.
    fn with_limits(self, per_address: usize) -> impl Iterator<Item = (Key, usize)> {
        let per_48 = per_address.saturating_mul(PER_48);
        std::iter::once((self.own, per_address)).chain(self.net48.map(|k| (k, per_48)))
    }
}

impl Shares {
    pub fn new(per_address: usize) -> Arc<Shares> {
        Arc::new(Shares {
            per_address,
            held: Mutex::default(),
        })
    }

    /// One more for `ip` (an IPv6 address counts as its /64, as for the rate limits, and its /48
    /// too), unless it already holds its share.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Share> {
        let keys = Keys::of(ip);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if keys
            .with_limits(self.per_address)
            .any(|(k, limit)| held.get(&k).copied().unwrap_or(0) >= limit)
        {
            return None;
        }
        for k in keys.all() {
            *held.entry(k).or_insert(0) += 1;
        }
        Some(Share {
            shares: self.clone(),
            keys,
        })
    }

    /// What `ip` holds now (its own share: an IPv6 address's /64).
    pub fn held(&self, ip: IpAddr) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&Keys::of(ip).own).copied().unwrap_or(0)
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|e| e.into_inner());
        for k in self.keys.all() {
            if let Entry::Occupied(mut e) = held.entry(k) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
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

    #[test]
    fn an_ipv6_48_holds_at_most_four_shares_so_a_56_cannot_take_every_connection() {
        let shares = Shares::new(2);
        // A /56: 256 /64s, each with a share of its own; its /48 caps them at 4 x 2.
        let taken: Vec<Share> = (0..256u32)
            .flat_map(|i| {
                let ip: IpAddr = format!("2001:db8:0:{i:x}::1").parse().unwrap();
                [shares.take(ip), shares.take(ip)]
            })
            .flatten()
            .collect();
        assert_eq!(taken.len(), 8);
        // Another /48 is not touched, nor is IPv4.
        assert!(shares.take("2001:db8:1::1".parse().unwrap()).is_some());
        assert!(shares.take("192.0.2.1".parse().unwrap()).is_some());
        drop(taken);
        let again = shares.take("2001:db8:0:ff::1".parse().unwrap());
        assert!(again.is_some(), "given back");
        assert_eq!(shares.held("2001:db8:0:ff::9".parse().unwrap()), 1);
    }
}
