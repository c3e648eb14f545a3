//! The client address: the socket peer, or what a trusted proxy says it forwarded.
//!
//! NetBox believes `X-Forwarded-For` from anyone (its recorded answers show a
//! spoofed header passing an IP restriction). Here forwarding headers count
//! only when the direct peer is a configured trusted proxy. The
//! `X-Forwarded-For` chain is read from the right, skipping trusted proxies;
//! the first other address is the client. A trusted proxy that sends an
//! unusable value gets a 400, never a guess.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// A forwarding header from a trusted proxy that holds no usable address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadForwardedHeader(pub &'static str);

impl std::fmt::Display for BadForwardedHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "The {} header sent by the proxy does not hold a valid IP address.", self.0)
    }
}

/// Works out the client address of a request.
pub fn client_ip(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Result<IpAddr, BadForwardedHeader> {
    let peer_ip = peer.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer_ip) {
        return Ok(peer_ip);
    }
    let xff: Vec<&[u8]> = headers.get_all("x-forwarded-for").iter().map(|v| v.as_bytes()).collect();
    if !xff.is_empty() {
        let mut hops = Vec::new();
        for value in xff {
            let text = std::str::from_utf8(value).map_err(|_| BadForwardedHeader("X-Forwarded-For"))?;
            for part in text.split(',') {
                hops.push(parse_hop(part).ok_or(BadForwardedHeader("X-Forwarded-For"))?);
            }
        }
        // Rightmost first: the hops nearest to us were added by our own proxies.
        return Ok(hops.iter().rev().find(|ip| !is_trusted(ip)).or(hops.first()).copied().unwrap_or(peer_ip));
    }
    if let Some(v) = headers.get("x-real-ip") {
        let text = v.to_str().map_err(|_| BadForwardedHeader("X-Real-IP"))?;
        return parse_hop(text).ok_or(BadForwardedHeader("X-Real-IP"));
    }
    Ok(peer_ip)
}

/// One address from a forwarding header: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn check(peer: &str, headers: &[(&str, &str)], trusted: &[&str], expected: &str) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|s| s.parse().unwrap()).collect();
        let got = match client_ip(peer.parse().unwrap(), &map, &trusted) {
            Ok(ip) => ip.to_string(),
            Err(e) => format!("error {}", e.0),
        };
        assert_eq!(got, expected, "peer {peer} headers {headers:?}");
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        check("127.0.0.1:5000", &[("x-forwarded-for", "10.9.9.5")], &[], "127.0.0.1");
        check("127.0.0.1:5000", &[("x-real-ip", "10.9.9.5")], &[], "127.0.0.1");
        check("127.0.0.1:5000", &[("x-forwarded-for", "garbage")], &[], "127.0.0.1");
        check("192.0.2.1:5000", &[("x-forwarded-for", "10.9.9.5")], &["127.0.0.0/8"], "192.0.2.1");
    }

    #[test]
    fn trusted_proxy_headers_are_read_from_the_right() {
        let t = &["127.0.0.0/8", "10.0.0.0/8"];
        check("127.0.0.1:5000", &[("x-forwarded-for", "198.51.100.7")], t, "198.51.100.7");
        check("127.0.0.1:5000", &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")], t, "198.51.100.7");
        check(
            "127.0.0.1:5000",
            &[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "10.0.0.2")],
            t,
            "6.6.6.6",
        );
        check("127.0.0.1:5000", &[("x-forwarded-for", "10.0.0.3")], t, "10.0.0.3");
        check("127.0.0.1:5000", &[("x-real-ip", "198.51.100.8")], t, "198.51.100.8");
        check("127.0.0.1:5000", &[("x-forwarded-for", "[2001:db8::1]:443")], t, "2001:db8::1");
        check("127.0.0.1:5000", &[], t, "127.0.0.1");
    }

    #[test]
    fn garbage_from_a_trusted_proxy_is_refused() {
        let t = &["127.0.0.0/8"];
        check("127.0.0.1:5000", &[("x-forwarded-for", "not-an-ip")], t, "error X-Forwarded-For");
        check("127.0.0.1:5000", &[("x-forwarded-for", "1.2.3.4, ")], t, "error X-Forwarded-For");
        check("127.0.0.1:5000", &[("x-real-ip", "999.1.1.1")], t, "error X-Real-IP");
    }

    #[test]
    fn mapped_ipv6_peer_is_seen_as_ipv4() {
        check("[::ffff:127.0.0.1]:5000", &[], &[], "127.0.0.1");
    }
}
