//! The client's address: the socket peer, or, when the peer is a trusted proxy, the rightmost
//! address of the one forwarding header the operator's proxy sets (`IMANGOR_CLIENT_IP_HEADER`)
//! that is not itself a trusted proxy (anything left of it could have been written by the
//! client). Every other forwarding header is ignored: a proxy passes on what it does not set
//! (ingress-nginx forwards a client's `Forwarded` untouched), so believing two headers would let
//! the client pick its own address (ASVS V4.1.3, V15.3.4).

use std::borrow::Cow;
use std::net::IpAddr;

use crate::domain::net::{Cidr, ClientIpHeader, Hops, canonical};

/// The client address of a request from `peer`: `values(name)` gives the request's values of a
/// header (read as bytes, so that a line with a byte outside ASCII still counts: only its
/// unreadable parts are), and only `header`'s are ever asked for, only when the peer is a
/// trusted proxy. `None`: the peer is a trusted proxy and the header is there but holds no
/// client address that can be believed (its hop is unreadable, or, with `Hops::Exactly`, missing);
/// the request must be refused, never counted as the proxy's own. A request without the header
/// at all is the proxy's own (a load balancer's health check): a proxy that forwards a request
/// always sets it, and a client cannot take out what the proxy adds.
pub fn resolve<'a>(
    peer: IpAddr,
    header: ClientIpHeader,
    values: impl Fn(&str) -> Vec<Cow<'a, str>>,
    trusted: &[Cidr],
    hops: Hops,
) -> Option<IpAddr> {
    if !is_trusted(peer, trusted) {
        return Some(canonical(peer));
    }
    let raw = values(header.name());
    if raw.is_empty() {
        return Some(canonical(peer));
    }
    match header {
        ClientIpHeader::Forwarded => believed(&forwarded_for_hops(&raw), trusted, hops),
        ClientIpHeader::XForwardedFor | ClientIpHeader::XRealIp => believed(&raw, trusted, hops),
    }
}

/// Whether `ip` is one of the trusted proxies.
pub fn is_trusted(ip: IpAddr, trusted: &[Cidr]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|c| c.contains(ip))
}

/// One hop of `X-Forwarded-For` or a `for=` of `Forwarded` (RFC 7239): an address, possibly
/// quoted, bracketed (IPv6) or followed by a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let h = hop.trim().trim_matches('"');
    if let Ok(ip) = h.parse() {
        return Some(ip);
    }
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    h.rsplit_once(':')
        .filter(|(ip, _)| !ip.contains(':'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// The `for=` hops of `Forwarded` header values, in order.
fn forwarded_for_hops(forwarded: &[impl AsRef<str>]) -> Vec<&str> {
    forwarded
        .iter()
        .flat_map(|v| v.as_ref().split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
            })
        })
        .collect()
}

/// The client address for a request from `peer` carrying these forwarding hops (the values of
/// `X-Forwarded-For`, or the `for=` of `Forwarded`), nearest last; `None` when the hops hold no
/// address that can be believed.
pub fn client_ip(
    peer: IpAddr,
    forwarded_for: &[impl AsRef<str>],
    trusted: &[Cidr],
    hops: Hops,
) -> Option<IpAddr> {
    if !is_trusted(peer, trusted) {
        return Some(canonical(peer));
    }
    believed(forwarded_for, trusted, hops)
}

/// The client the hops of a trusted proxy's request name (`client_ip`, the peer known trusted).
fn believed(forwarded_for: &[impl AsRef<str>], trusted: &[Cidr], hops: Hops) -> Option<IpAddr> {
    let all: Vec<&str> = forwarded_for
        .iter()
        .flat_map(|h| h.as_ref().split(','))
        .map(str::trim)
        .collect();
    if let Hops::Exactly(n) = hops {
        // The Nth from the right, or nothing: fewer hops than the proxies add is a request
        // that did not come through all of them. The N-1 hops right of it are the proxies
        // behind the first one, and must be trusted ones: otherwise a client reached an inner
        // proxy directly and wrote the "client" hop itself.
        let i = n.checked_sub(1)?;
        let inner_trusted = all
            .iter()
            .rev()
            .take(i)
            .all(|hop| parse_hop(hop).is_some_and(|ip| is_trusted(ip, trusted)));
        if !inner_trusted {
            return None;
        }
        return all
            .iter()
            .rev()
            .nth(i)
            .and_then(|hop| parse_hop(hop))
            .map(canonical);
    }
    if all.is_empty() {
        return None;
    }
    // Walk from the right: the nearest hop first. The first untrusted address is the client.
    for hop in all.iter().rev() {
        // A hop we cannot read ("unknown", an obfuscated name, a byte outside ASCII) is what a
        // trusted proxy wrote about its peer: no address right of it is the client's, and
        // counting the request as a trusted proxy's own would give it the proxy's budget.
        let ip = canonical(parse_hop(hop)?);
        if !is_trusted(ip, trusted) {
            return Some(ip);
        }
    }
    // Every hop a trusted proxy: a request of the proxies' own, the farthest of them its sender.
    all.first().and_then(|h| parse_hop(h)).map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::net::parse_list;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn walk(peer: &str, hops: &[&str], trusted: &[Cidr]) -> Option<IpAddr> {
        client_ip(ip(peer), hops, trusted, Hops::Walk)
    }

    fn some(s: &str) -> Option<IpAddr> {
        Some(ip(s))
    }

    #[test]
    fn the_header_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        let trusted = parse_list("10.0.0.0/8, ::1").unwrap();
        assert_eq!(
            walk("203.0.113.9", &["1.2.3.4"], &trusted),
            some("203.0.113.9")
        );
        assert_eq!(walk("10.1.2.3", &["1.2.3.4"], &trusted), some("1.2.3.4"));
        assert_eq!(walk("::1", &["1.2.3.4"], &trusted), some("1.2.3.4"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_wins_so_a_spoofed_left_part_is_ignored() {
        let trusted = parse_list("10.0.0.0/8").unwrap();
        assert_eq!(
            walk("10.0.0.1", &["6.6.6.6, 198.51.100.7, 10.0.0.2"], &trusted),
            some("198.51.100.7")
        );
        assert_eq!(
            walk("10.0.0.1", &["6.6.6.6", "198.51.100.7"], &trusted),
            some("198.51.100.7")
        );
        assert_eq!(
            walk("10.0.0.1", &["garbage, 198.51.100.7"], &trusted),
            some("198.51.100.7")
        );
        assert_eq!(
            walk("::ffff:10.0.0.1", &["198.51.100.7"], &trusted),
            some("198.51.100.7")
        );
        // Only proxies: the farthest of them sent it.
        assert_eq!(
            walk("10.0.0.1", &["10.0.0.3, 10.0.0.2"], &trusted),
            some("10.0.0.3")
        );
    }

    #[test]
    fn hops_with_ports_brackets_and_the_forwarded_header_are_read() {
        let trusted = parse_list("10.0.0.0/8").unwrap();
        assert_eq!(
            walk("10.0.0.1", &["198.51.100.7:5678"], &trusted),
            some("198.51.100.7")
        );
        assert_eq!(
            walk("10.0.0.1", &["[2001:db8::1]:443"], &trusted),
            some("2001:db8::1")
        );
        let hops = forwarded_for_hops(&[
            "for=6.6.6.6;proto=https, For=\"[2001:db8::7]:4711\";by=10.0.0.1",
            "for=10.0.0.9",
        ]);
        assert_eq!(walk("10.0.0.1", &hops, &trusted), some("2001:db8::7"));
    }

    #[test]
    fn an_unreadable_hop_from_a_trusted_proxy_is_no_client_never_the_proxy_itself_v4_1_3() {
        let trusted = parse_list("10.0.0.0/8").unwrap();
        // What nginx's `$proxy_add_x_forwarded_for` makes of a client's `X-Forwarded-For: \x80`
        // (the header read lossily, as `protect` does): the real address is still the rightmost.
        let line = String::from_utf8_lossy(b"\x80, 198.51.100.7").into_owned();
        assert_eq!(walk("10.0.0.1", &[&line], &trusted), some("198.51.100.7"));
        // The rightmost hop itself unreadable, or one between trusted proxies: no client.
        assert_eq!(walk("10.0.0.1", &["unknown"], &trusted), None);
        assert_eq!(walk("10.0.0.1", &["\u{fffd}"], &trusted), None);
        assert_eq!(
            walk("10.0.0.1", &["198.51.100.7, x, 10.0.0.2"], &trusted),
            None
        );
        assert_eq!(walk("10.0.0.1", &[""], &trusted), None);
        assert_eq!(walk("10.0.0.1", &[], &trusted), None);
        // From an untrusted peer the header means nothing.
        assert_eq!(
            walk("203.0.113.9", &["unknown"], &trusted),
            some("203.0.113.9")
        );
    }

    #[test]
    fn trusted_hops_take_exactly_the_nth_address_from_the_right() {
        // The whole pod network trusted, as a node's bridge address would be.
        let trusted = parse_list("10.244.0.0/16").unwrap();
        let exactly =
            |n, hops: &[&str]| client_ip(ip("10.244.1.5"), hops, &trusted, Hops::Exactly(n));
        // A client writing a trusted address of its own left of the proxy's hop is not believed.
        assert_eq!(
            walk("10.244.1.5", &["10.244.0.1, 10.244.0.1"], &trusted),
            some("10.244.0.1"),
            "the walk believes the forged hop"
        );
        assert_eq!(exactly(1, &["10.244.0.1, 10.244.0.1"]), some("10.244.0.1"));
        assert_eq!(exactly(1, &["6.6.6.6, 198.51.100.7"]), some("198.51.100.7"));
        assert_eq!(
            exactly(2, &["6.6.6.6", "198.51.100.7, 10.244.3.3"]),
            some("198.51.100.7")
        );
        // Fewer hops than the proxies add, or an unreadable one: no client.
        assert_eq!(exactly(2, &["198.51.100.7"]), None);
        // With two proxies, a client that reached the inner one directly: the hop the inner
        // proxy wrote (the client's own address) is not a trusted proxy, so nothing is believed.
        assert_eq!(exactly(2, &["6.6.6.6, 203.0.113.50"]), None);
        assert_eq!(exactly(2, &["6.6.6.6, unknown"]), None);
        assert_eq!(exactly(1, &["6.6.6.6, unknown"]), None);
        assert_eq!(exactly(0, &["198.51.100.7"]), None);
        // An untrusted peer is its own address whatever N is.
        assert_eq!(
            client_ip(ip("203.0.113.9"), &["1.2.3.4"], &trusted, Hops::Exactly(1)),
            some("203.0.113.9")
        );
    }

    /// A request carrying all three headers; `resolve` may read only the chosen one.
    fn headers(name: &str) -> Vec<Cow<'static, str>> {
        let v = match name {
            "x-forwarded-for" => "6.6.6.6, 198.51.100.7",
            "forwarded" => "for=203.0.113.66",
            "x-real-ip" => "192.0.2.44",
            other => panic!("asked for {other}"),
        };
        vec![Cow::Borrowed(v)]
    }

    #[test]
    fn only_the_configured_header_is_believed_v4_1_3_v15_3_4() {
        let trusted = parse_list("10.0.0.0/8").unwrap();
        let proxy = ip("10.0.0.1");
        let by = |h: &str| resolve(proxy, h.parse().unwrap(), headers, &trusted, Hops::Walk);
        // The client's own `Forwarded` (passed through by the proxy) never beats the proxy's XFF.
        assert_eq!(by("x-forwarded-for"), some("198.51.100.7"));
        assert_eq!(by("forwarded"), some("203.0.113.66"));
        assert_eq!(by("X-Real-IP"), some("192.0.2.44"));
        // Without the chosen header the proxy itself sent the request, whatever else came along.
        let only_forwarded = |name: &str| match name {
            "forwarded" => vec![Cow::Borrowed("for=203.0.113.66")],
            _ => vec![],
        };
        assert_eq!(
            resolve(
                proxy,
                ClientIpHeader::XForwardedFor,
                only_forwarded,
                &trusted,
                Hops::Walk
            ),
            Some(proxy)
        );
        // The chosen header there but without a `for=`: no client.
        let no_for = |_: &str| vec![Cow::Borrowed("proto=https")];
        assert_eq!(
            resolve(
                proxy,
                ClientIpHeader::Forwarded,
                no_for,
                &trusted,
                Hops::Walk
            ),
            None
        );
        // From an untrusted peer no header is even read.
        let untouched =
            |name: &str| -> Vec<Cow<'static, str>> { panic!("read {name} from an untrusted peer") };
        assert_eq!(
            resolve(
                ip("203.0.113.9"),
                ClientIpHeader::Forwarded,
                untouched,
                &trusted,
                Hops::Walk
            ),
            some("203.0.113.9")
        );
        assert!("x-client-ip".parse::<ClientIpHeader>().is_err());
    }
}
