//! The drill header: `X-Imangor-Drill: TIMESTAMP;ADDRESS;HEX` where HEX is HMAC-SHA256 under
//! IMANGOR_DRILL_KEY of `imangor-drill\nTIMESTAMP\nADDRESS\nMETHOD\nPATH`. A request carrying a
//! valid one, fresh (within `FRESH_S` of the server's clock) and naming an address of the drill
//! range, is drill traffic from that address; anything else about the header (no key on the
//! server, a bad or stale signature, another address) leaves the request ordinary. Signing the
//! method and path keeps a header seen on one request from marking a different one.

use std::net::IpAddr;

use aws_lc_rs::hmac;

use crate::domain::net::is_drill_address;

/// The header's name.
pub const HEADER: &str = "x-imangor-drill";
/// How far (seconds) a header's timestamp may be from the server's clock.
pub const FRESH_S: i64 = 60;

fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

fn message(ts: i64, addr: IpAddr, method: &str, path: &str) -> String {
    format!("imangor-drill\n{ts}\n{addr}\n{method}\n{path}")
}

/// The header value marking a `method` request of `path` as drill traffic from `addr` at `ts`.
pub fn sign(secret: &[u8], ts: i64, addr: IpAddr, method: &str, path: &str) -> String {
    let tag = hmac::sign(&key(secret), message(ts, addr, method, path).as_bytes());
    format!("{ts};{addr};{}", super::hex(tag.as_ref()))
}

/// The drill address a header value claims, when it is signed with `secret` for this `method`
/// and `path`, fresh at `now` and the address is in the drill range; `None` otherwise.
pub fn verify(secret: &[u8], value: &str, now: i64, method: &str, path: &str) -> Option<IpAddr> {
    let mut parts = value.trim().splitn(3, ';');
    let ts: i64 = parts.next()?.parse().ok()?;
    let addr: IpAddr = parts.next()?.parse().ok()?;
    let tag = from_hex(parts.next()?)?;
    if (now - ts).abs() > FRESH_S || !is_drill_address(addr) {
        return None;
    }
    hmac::verify(
        &key(secret),
        message(ts, addr, method, path).as_bytes(),
        &tag,
    )
    .ok()?;
    Some(addr)
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

    #[test]
    fn a_signed_fresh_header_names_its_drill_address() {
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        let v = sign(KEY, 1000, addr, "POST", "/api/v1/token");
        assert_eq!(verify(KEY, &v, 1030, "POST", "/api/v1/token"), Some(addr));
    }

    #[test]
    fn a_stale_forged_or_moved_header_is_ignored() {
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        let v = sign(KEY, 1000, addr, "POST", "/api/v1/token");
        assert_eq!(
            verify(KEY, &v, 1000 + FRESH_S + 1, "POST", "/api/v1/token"),
            None
        );
        assert_eq!(
            verify(
                b"another key of 32 bytes or more!!",
                &v,
                1000,
                "POST",
                "/api/v1/token"
            ),
            None
        );
        assert_eq!(verify(KEY, &v, 1000, "GET", "/api/v1/token"), None);
        assert_eq!(verify(KEY, &v, 1000, "POST", "/api/v1/users"), None);
        let real: IpAddr = "203.0.113.9".parse().unwrap();
        let outside = sign(KEY, 1000, real, "POST", "/api/v1/token");
        assert_eq!(verify(KEY, &outside, 1000, "POST", "/api/v1/token"), None);
        assert_eq!(
            verify(KEY, "1000;192.0.2.7;zz", 1000, "POST", "/api/v1/token"),
            None
        );
    }
}
