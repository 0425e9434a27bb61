//! The drill header: `X-Imangor-Drill: TIMESTAMP;ADDRESS;NONCE;HEX` where HEX is HMAC-SHA256
//! under IMANGOR_DRILL_KEY of `imangor-drill\nTIMESTAMP\nADDRESS\nNONCE\nMETHOD\nPATH`. A request carrying a
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
pub const FRESH_S: u64 = 30;

fn key(secret: &[u8]) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

fn message(ts: i64, addr: IpAddr, nonce: &str, method: &str, path: &str) -> String {
    format!("imangor-drill\n{ts}\n{addr}\n{nonce}\n{method}\n{path}")
}

/// The header value marking a `method` request of `path` as drill traffic from `addr` at `ts`,
/// with a random nonce: every request's header differs, and each is accepted once (`Seen`).
pub fn sign(
    secret: &[u8],
    ts: i64,
    addr: IpAddr,
    method: &str,
    path: &str,
) -> anyhow::Result<String> {
    let mut raw = [0u8; 8];
    aws_lc_rs::rand::fill(&mut raw)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let nonce = super::hex(&raw);
    let tag = hmac::sign(
        &key(secret),
        message(ts, addr, &nonce, method, path).as_bytes(),
    );
    Ok(format!("{ts};{addr};{nonce};{}", super::hex(tag.as_ref())))
}

/// The drill address a header value claims, when it is signed with `secret` for this `method`
/// and `path`, fresh at `now` and the address is in the drill range; `None` otherwise.
pub fn verify(secret: &[u8], value: &str, now: i64, method: &str, path: &str) -> Option<IpAddr> {
    let mut parts = value.trim().splitn(4, ';');
    let (ts_text, addr_text, nonce) = (parts.next()?, parts.next()?, parts.next()?);
    if nonce.len() != 16
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let ts: i64 = ts_text.parse().ok()?;
    let addr: IpAddr = addr_text.parse().ok()?;
    // One spelling per header (no `+1000`, no `::ffff:192.0.2.7`, lower-case hex only): what the
    // replay memory keys on is the header itself.
    if ts.to_string() != ts_text || addr.to_string() != addr_text || addr.to_canonical() != addr {
        return None;
    }
    let tag = from_hex(parts.next()?)?;
    if now.abs_diff(ts) > FRESH_S || !is_drill_address(addr) {
        return None;
    }
    hmac::verify(
        &key(secret),
        message(ts, addr, nonce, method, path).as_bytes(),
        &tag,
    )
    .ok()?;
    Some(addr)
}

/// The drill headers seen in the last `2 * FRESH_S` seconds: each is accepted once (a header
/// captured on its way, from a log or a proxy, cannot be replayed). In this process: across
/// replicas a replay reaches at most one more replica per header, still only as a drill address.
#[derive(Default)]
pub struct Seen(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl Seen {
    /// True the first time `value` is presented within the window.
    pub fn first(&self, value: &str) -> bool {
        let now = std::time::Instant::now();
        let keep = std::time::Duration::from_secs(2 * FRESH_S);
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|_, at| now.duration_since(*at) < keep);
        // Bounded: a drill sends a few hundred requests; a flood of valid headers needs the key.
        if seen.len() >= 100_000 {
            return false;
        }
        seen.insert(value.trim().to_owned(), now).is_none()
    }
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
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
        let v = sign(KEY, 1000, addr, "POST", "/api/v1/token").unwrap();
        assert_eq!(verify(KEY, &v, 1030, "POST", "/api/v1/token"), Some(addr));
    }

    #[test]
    fn a_stale_forged_or_moved_header_is_ignored() {
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        let v = sign(KEY, 1000, addr, "POST", "/api/v1/token").unwrap();
        assert_eq!(
            verify(KEY, &v, 1000 + FRESH_S as i64 + 1, "POST", "/api/v1/token"),
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
        let outside = sign(KEY, 1000, real, "POST", "/api/v1/token").unwrap();
        assert_eq!(verify(KEY, &outside, 1000, "POST", "/api/v1/token"), None);
        assert_eq!(
            verify(KEY, "1000;192.0.2.7;zz", 1000, "POST", "/api/v1/token"),
            None
        );
    }

    #[test]
    fn a_header_has_one_spelling_and_is_accepted_once() {
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        let v = sign(KEY, 1000, addr, "POST", "/api/v1/token").unwrap();
        assert_ne!(
            v,
            sign(KEY, 1000, addr, "POST", "/api/v1/token").unwrap(),
            "a nonce each"
        );
        let seen = Seen::default();
        assert!(seen.first(&v));
        assert!(!seen.first(&v), "replayed");
        // Other spellings of the same header do not verify.
        let (ts, rest) = v.split_once(';').unwrap();
        assert_eq!(
            verify(KEY, &format!("+{ts};{rest}"), 1000, "POST", "/api/v1/token"),
            None
        );
        assert_eq!(
            verify(KEY, &v.to_uppercase(), 1000, "POST", "/api/v1/token"),
            None
        );
        let mapped = v.replace("192.0.2.7", "::ffff:192.0.2.7");
        assert_eq!(verify(KEY, &mapped, 1000, "POST", "/api/v1/token"), None);
        // No overflow on an absurd timestamp.
        assert_eq!(
            verify(
                KEY,
                &v.replacen(ts, &i64::MIN.to_string(), 1),
                1000,
                "POST",
                "/api/v1/token"
            ),
            None
        );
    }
}
