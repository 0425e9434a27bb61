//! Networks and the client-address settings: a CIDR (`IMANGOR_TRUSTED_PROXIES`), the one
//! forwarding header believed from a trusted proxy (`IMANGOR_CLIENT_IP_HEADER`) and how far into
//! it (`IMANGOR_TRUSTED_HOPS`). Parsing and matching only; `limits::address` reads requests.

use std::net::IpAddr;

/// An IP network, `ADDR/PREFIX` (or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .trim()
            .split_once('/')
            .map(|(a, p)| (a, Some(p)))
            .unwrap_or((s.trim(), None));
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?,
        };
        // An IPv4-mapped IPv6 network is its IPv4 network (its prefix counted in IPv4 bits).
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            let prefix = prefix.checked_sub(96).ok_or_else(|| {
                format!("{s:?}: an IPv4-mapped network needs a prefix of 96 or more")
            })?;
            return Ok(Cidr {
                addr: IpAddr::V4(v4),
                prefix,
            });
        }
        Ok(Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Prefix length in bits, and the address family's full length.
    pub fn prefix(&self) -> (u8, u8) {
        (self.prefix, if self.addr.is_ipv4() { 32 } else { 128 })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.addr), ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                mask(u32::from(n).into(), u32::from(i).into(), self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => mask(u128::from(n), u128::from(i), self.prefix, 128),
            _ => false,
        }
    }
}

fn mask(net: u128, ip: u128, prefix: u8, bits: u32) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = bits - u32::from(prefix);
    (net >> shift) == (ip >> shift)
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are their IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Parses `IMANGOR_TRUSTED_PROXIES`: comma-separated CIDRs.
pub fn parse_list(s: &str) -> Result<Vec<Cidr>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// The forwarding header believed from a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`, the proxy appending the peer it saw (nginx `$proxy_add_x_forwarded_for`).
    XForwardedFor,
    /// RFC 7239 `Forwarded`, its `for=` parameters.
    Forwarded,
    /// `X-Real-IP`, one address the proxy sets (replacing any the client sent).
    XRealIp,
}

impl ClientIpHeader {
    /// The header's name, lower case, as `HeaderMap` looks it up.
    pub fn name(self) -> &'static str {
        match self {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
            ClientIpHeader::XRealIp => "x-real-ip",
        }
    }
}

impl std::str::FromStr for ClientIpHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ClientIpHeader::XForwardedFor),
            "forwarded" => Ok(ClientIpHeader::Forwarded),
            "x-real-ip" => Ok(ClientIpHeader::XRealIp),
            _ => Err("expected `x-forwarded-for`, `forwarded` or `x-real-ip`".into()),
        }
    }
}

/// How far into the chosen header a trusted proxy's request is believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hops {
    /// From the right, past every hop that is itself a trusted proxy (`IMANGOR_TRUSTED_PROXIES`).
    #[default]
    Walk,
    /// Exactly the Nth address from the right (`IMANGOR_TRUSTED_HOPS=N`): the proxies in front
    /// add N hops, whatever their addresses, and nothing left of them is read.
    Exactly(usize),
}

/// The addresses drill traffic is given (`imangor drill`): TEST-NET-1 (RFC 5737), reserved for
/// documentation and never routed, so no real client has one and a block of one stops no one
/// but the drill. A request gets one only when its drill header verifies (`crypto::drill`).
pub const DRILL_NETWORK: &str = "192.0.2.0/24";
/// The email domain of the drill's throw-away accounts (`drill-RUN-NAME@drill.example.com`).
pub const DRILL_EMAIL_DOMAIN: &str = "drill.example.com";

/// Whether `ip` is a drill address (`DRILL_NETWORK`).
pub fn is_drill_address(ip: IpAddr) -> bool {
    matches!(canonical(ip), IpAddr::V4(v4) if v4.octets()[..3] == [192, 0, 2])
}

/// Whether an address as the audit trail stores it is a drill address.
pub fn is_drill_text(ip: &str) -> bool {
    ip.parse().is_ok_and(is_drill_address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn mapped_networks_are_ipv4_networks() {
        let c: Cidr = "::ffff:10.0.0.0/120".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/24");
        assert!(c.contains("10.0.0.7".parse().unwrap()));
        assert!(!c.contains("11.0.0.7".parse().unwrap()));
        let host: Cidr = "::ffff:10.0.0.1/128".parse().unwrap();
        assert!(!host.contains("192.0.2.1".parse().unwrap()));
        assert!("::ffff:10.0.0.1/64".parse::<Cidr>().is_err());
    }
    #[test]
    fn cidrs_parse_and_match() {
        assert!("192.168.0.0/33".parse::<Cidr>().is_err());
        assert!("x".parse::<Cidr>().is_err());
        let c: Cidr = "192.168.0.0/16".parse().unwrap();
        assert!(c.contains(ip("192.168.44.1")));
        assert!(!c.contains(ip("192.169.0.1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
    }
}
