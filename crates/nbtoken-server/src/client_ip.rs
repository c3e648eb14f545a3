//! The client address: the socket peer, or what a trusted proxy says it forwarded.
//!
//! NetBox believes `X-Forwarded-For` from anyone (its recorded answers show a
//! spoofed header passing an IP restriction). Here forwarding headers count
//! only when the direct peer is a configured trusted proxy, and only the one
//! header the operator names ([`ClientIpHeader`], `NBTOKEN_CLIENT_IP_HEADER`).
//! Chains (`X-Forwarded-For`, `Forwarded`) are read from the right, skipping
//! trusted proxies; the first other address is the client. A trusted proxy
//! that sends an unusable value gets a 400, never a guess.
//!
//! Unset, the setting keeps the order nbtoken always had: `X-Forwarded-For`
//! if present, else `X-Real-IP`. A proxy that sets only `X-Real-IP` but passes
//! the client's own `X-Forwarded-For` on lets the client choose its address
//! under that default; naming the header closes that.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::{Extensions, HeaderMap, HeaderName, StatusCode};
use ipnet::IpNet;

use crate::error::ApiError;
use crate::AppState;

/// A forwarding header from a trusted proxy that holds no usable address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadForwardedHeader(pub String);

impl std::fmt::Display for BadForwardedHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "The {} header sent by the proxy does not hold a valid IP address.", self.0)
    }
}

/// The header a trusted proxy names the client in (`NBTOKEN_CLIENT_IP_HEADER`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientIpHeader {
    /// Not configured: `X-Forwarded-For` if the proxy sent one, else `X-Real-IP`.
    #[default]
    Default,
    /// `X-Forwarded-For` only, read from the right, skipping trusted proxies.
    XForwardedFor,
    /// RFC 7239 `Forwarded` only: its `for=` values, read from the right, skipping trusted proxies.
    Forwarded,
    /// Another header holding exactly one address (`X-Real-IP`, `CF-Connecting-IP`, `True-Client-IP`…).
    Single(HeaderName),
}

impl ClientIpHeader {
    /// Parses a header name (any case); an empty value is the default.
    pub fn parse(name: &str) -> Result<Self, String> {
        let name = name.trim();
        if name.is_empty() {
            return Ok(Self::Default);
        }
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name (e.g. X-Real-IP)"))?;
        Ok(match header.as_str() {
            "x-forwarded-for" => Self::XForwardedFor,
            "forwarded" => Self::Forwarded,
            "authorization" | "host" | "cookie" => {
                return Err(format!("{name:?} cannot carry the client address"));
            }
            _ => Self::Single(header),
        })
    }

    /// The header's name as documented (`X-Forwarded-For`), or `default`.
    pub fn name(&self) -> &str {
        match self {
            Self::Default => "default",
            Self::XForwardedFor => "X-Forwarded-For",
            Self::Forwarded => "Forwarded",
            Self::Single(h) if h == "x-real-ip" => "X-Real-IP",
            Self::Single(h) => h.as_str(),
        }
    }
}

/// Who is calling: decided once per request by [`resolve`] and kept in the request
/// extensions, where the authentication middleware, forward-auth and the handlers read it.
#[derive(Clone, Debug)]
pub struct Caller {
    peer_trusted: bool,
    client: Result<IpAddr, BadForwardedHeader>,
}

impl Caller {
    /// Decides who sent a request from `peer` with these headers.
    pub fn new(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet], source: &ClientIpHeader) -> Self {
        Self {
            peer_trusted: is_trusted(peer.ip(), trusted),
            client: client_ip(peer, headers, trusted, source),
        }
    }

    /// Whether the direct peer is a trusted proxy (whose forwarding headers are believed).
    pub fn peer_trusted(&self) -> bool {
        self.peer_trusted
    }

    /// The client address, or why a trusted proxy's header names none (answered with a 400
    /// by whoever needs the address; a request that does not is served as usual).
    pub fn client(&self) -> Result<IpAddr, &BadForwardedHeader> {
        self.client.as_ref().copied()
    }
    /// The caller [`resolve`] put on a request and its client address, or the answer that
    /// refuses it: 400 when a trusted proxy's header names no client, 500 when no caller was
    /// resolved (a router driven without its layers). For whoever needs the address.
    pub fn of(extensions: &Extensions) -> Result<(&Caller, IpAddr), ApiError> {
        let caller = extensions.get::<Caller>().ok_or_else(|| {
            ApiError::detail(StatusCode::INTERNAL_SERVER_ERROR, "The client address is unknown.")
        })?;
        let ip = caller.client().map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok((caller, ip))
    }
}

/// The client address of a request, as [`resolve`] decided it (an extractor: a request whose
/// address is unknown is refused as [`Caller::of`] refuses it).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        Caller::of(&parts.extensions).map(|(_, ip)| ClientIp(ip))
    }
}

/// A request map (around every route): resolves each request's [`Caller`] once, from the
/// connection's peer address and the configuration of the router serving it.
pub fn resolve(state: &AppState, mut req: Request) -> Request {
    // Every connection the server accepts carries its peer; without one (a router driven
    // by hand) nothing is inserted, and whoever needs the caller refuses the request.
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        let config = &state.config;
        let caller = Caller::new(peer, req.headers(), &config.trusted_proxies, &config.client_ip_header);
        req.extensions_mut().insert(caller);
    }
    req
}

/// Whether `peer` is one of the configured trusted proxies.
pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = peer.to_canonical();
    trusted.iter().any(|n| n.contains(&ip))
}

/// Works out the client address of a request.
pub fn client_ip(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    source: &ClientIpHeader,
) -> Result<IpAddr, BadForwardedHeader> {
    let peer_ip = peer.ip().to_canonical();
    if !is_trusted(peer_ip, trusted) {
        return Ok(peer_ip);
    }
    let found = match source {
        ClientIpHeader::Default => match x_forwarded_for(headers, trusted)? {
            Some(ip) => Some(ip),
            None => single(headers, &HeaderName::from_static("x-real-ip"), "X-Real-IP")?,
        },
        ClientIpHeader::XForwardedFor => x_forwarded_for(headers, trusted)?,
        ClientIpHeader::Forwarded => forwarded_for(headers, trusted)?,
        ClientIpHeader::Single(h) => single(headers, h, source.name())?,
    };
    Ok(found.unwrap_or(peer_ip))
}

/// The client from a chain of hops: the rightmost one that is not a trusted proxy
/// (the hops nearest to us were added by our own proxies), or the first if all are.
fn from_chain(hops: &[IpAddr], trusted: &[IpNet]) -> Option<IpAddr> {
    hops.iter().rev().find(|ip| !is_trusted(**ip, trusted)).or(hops.first()).copied()
}

fn x_forwarded_for(headers: &HeaderMap, trusted: &[IpNet]) -> Result<Option<IpAddr>, BadForwardedHeader> {
    let bad = || BadForwardedHeader("X-Forwarded-For".to_owned());
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let text = std::str::from_utf8(value.as_bytes()).map_err(|_| bad())?;
        for part in text.split(',') {
            hops.push(parse_hop(part).ok_or_else(bad)?);
        }
    }
    Ok(from_chain(&hops, trusted))
}

fn forwarded_for(headers: &HeaderMap, trusted: &[IpNet]) -> Result<Option<IpAddr>, BadForwardedHeader> {
    let bad = || BadForwardedHeader("Forwarded".to_owned());
    let mut hops = Vec::new();
    for element in forwarded_elements(headers).ok_or_else(bad)? {
        // A hop that names no `for` (a proxy that adds only `proto`) says nothing about the client.
        if let Some(v) = element.iter().find(|(k, _)| k == "for").map(|(_, v)| v) {
            hops.push(parse_hop(v).ok_or_else(bad)?);
        }
    }
    Ok(from_chain(&hops, trusted))
}

/// A header that holds one address; sent twice, one of the two may be the client's own.
fn single(headers: &HeaderMap, name: &HeaderName, shown: &str) -> Result<Option<IpAddr>, BadForwardedHeader> {
    let bad = || BadForwardedHeader(shown.to_owned());
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(bad());
    }
    let text = value.to_str().map_err(|_| bad())?;
    parse_hop(text).map(Some).ok_or_else(bad)
}

/// Every element of the `Forwarded` headers (RFC 7239), left to right, as lowercased
/// parameter names with unquoted values; `None` if any is malformed.
pub fn forwarded_elements(headers: &HeaderMap) -> Option<Vec<Vec<(String, String)>>> {
    let mut elements = Vec::new();
    for value in headers.get_all("forwarded") {
        let text = std::str::from_utf8(value.as_bytes()).ok()?;
        parse_forwarded(text, &mut elements)?;
    }
    Some(elements)
}

/// `for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"` → one list of pairs per element.
fn parse_forwarded(text: &str, out: &mut Vec<Vec<(String, String)>>) -> Option<()> {
    let mut chars = text.chars().peekable();
    let mut element = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(c) = chars.peek().copied().filter(|c| is_tchar(*c)) {
            name.push(c.to_ascii_lowercase());
            chars.next();
        }
        if name.is_empty() || chars.next() != Some('=') {
            return None;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| is_tchar(*c)) {
                value.push(c);
                chars.next();
            }
        }
        element.push((name, value));
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        match chars.next() {
            None => {
                out.push(element);
                return Some(());
            }
            Some(';') => {}
            Some(',') => out.push(std::mem::take(&mut element)),
            Some(_) => return None,
        }
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c) || c == ':' || c == '[' || c == ']'
}

/// One address from a forwarding header: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:443`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().ok().map(|ip| IpAddr::V6(ip).to_canonical());
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn check_with(source: &str, peer: &str, headers: &[(&str, &str)], trusted: &[&str], expected: &str) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|s| s.parse().unwrap()).collect();
        let source = ClientIpHeader::parse(source).unwrap();
        let got = match client_ip(peer.parse().unwrap(), &map, &trusted, &source) {
            Ok(ip) => ip.to_string(),
            Err(e) => format!("error {}", e.0),
        };
        assert_eq!(got, expected, "peer {peer} headers {headers:?} source {source:?}");
    }

    fn check(peer: &str, headers: &[(&str, &str)], trusted: &[&str], expected: &str) {
        check_with("", peer, headers, trusted, expected)
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        for source in ["", "X-Forwarded-For", "X-Real-IP", "Forwarded", "CF-Connecting-IP"] {
            let all = [
                ("x-forwarded-for", "10.9.9.5"),
                ("x-real-ip", "10.9.9.6"),
                ("forwarded", "for=10.9.9.7"),
                ("cf-connecting-ip", "10.9.9.8"),
            ];
            check_with(source, "127.0.0.1:5000", &all, &[], "127.0.0.1");
            check_with(source, "192.0.2.1:5000", &all, &["127.0.0.0/8"], "192.0.2.1");
            check_with(source, "127.0.0.1:5000", &[("x-forwarded-for", "garbage")], &[], "127.0.0.1");
        }
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

    /// The documented order. Unset: `X-Forwarded-For` wins over `X-Real-IP`, as it always
    /// did. Named: that header alone is believed, whatever else the request carries.
    #[test]
    fn the_configured_header_alone_is_believed() {
        let t = &["127.0.0.1/32"];
        // nginx with `proxy_set_header X-Real-IP $remote_addr`, passing the client's own X-Forwarded-For.
        let h = &[("x-real-ip", "198.51.100.8"), ("x-forwarded-for", "6.6.6.6")];
        check_with("", "127.0.0.1:1", h, t, "6.6.6.6");
        check_with("X-Real-IP", "127.0.0.1:1", h, t, "198.51.100.8");
        check_with("x-real-ip", "127.0.0.1:1", h, t, "198.51.100.8");
        check_with("X-Forwarded-For", "127.0.0.1:1", h, t, "6.6.6.6");
        check_with("Forwarded", "127.0.0.1:1", h, t, "127.0.0.1");
        check_with("CF-Connecting-IP", "127.0.0.1:1", h, t, "127.0.0.1");
        let h =
            &[("cf-connecting-ip", "203.0.113.9"), ("x-forwarded-for", "6.6.6.6"), ("x-real-ip", "6.6.6.7")];
        check_with("CF-Connecting-IP", "127.0.0.1:1", h, t, "203.0.113.9");
        // The configured header missing: the proxy itself, not another header.
        check_with("X-Real-IP", "127.0.0.1:1", &[("x-forwarded-for", "6.6.6.6")], t, "127.0.0.1");
    }

    #[test]
    fn forwarded_for_is_read_from_the_right() {
        let t = &["127.0.0.0/8", "10.0.0.0/8"];
        let f = |v: &str, expected: &str| {
            check_with("Forwarded", "127.0.0.1:1", &[("forwarded", v)], t, expected)
        };
        f("for=198.51.100.7;proto=https", "198.51.100.7");
        f("for=6.6.6.6, for=198.51.100.7;proto=https;by=10.0.0.1, for=10.1.1.1", "198.51.100.7");
        f("For=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17");
        f("for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17");
        f("for=\"192.0.2.43:47011\"", "192.0.2.43");
        f("proto=https", "127.0.0.1");
        f("for=unknown", "error Forwarded");
        f("for=_hidden", "error Forwarded");
        f("for=1.2.3.4;", "error Forwarded");
        f("for=\"1.2.3.4", "error Forwarded");
        f("for 1.2.3.4", "error Forwarded");
    }

    #[test]
    fn garbage_from_a_trusted_proxy_is_refused() {
        let t = &["127.0.0.0/8"];
        check("127.0.0.1:5000", &[("x-forwarded-for", "not-an-ip")], t, "error X-Forwarded-For");
        check("127.0.0.1:5000", &[("x-forwarded-for", "1.2.3.4, ")], t, "error X-Forwarded-For");
        check("127.0.0.1:5000", &[("x-real-ip", "999.1.1.1")], t, "error X-Real-IP");
        let twice = &[("x-real-ip", "198.51.100.8"), ("x-real-ip", "6.6.6.6")];
        check_with("X-Real-IP", "127.0.0.1:5000", twice, t, "error X-Real-IP");
        check_with("True-Client-IP", "127.0.0.1:5000", &[("true-client-ip", "x")], t, "error true-client-ip");
    }

    #[test]
    fn header_names_are_checked() {
        assert_eq!(ClientIpHeader::parse(" X-Forwarded-For ").unwrap(), ClientIpHeader::XForwardedFor);
        assert_eq!(ClientIpHeader::parse("FORWARDED").unwrap(), ClientIpHeader::Forwarded);
        assert_eq!(ClientIpHeader::parse("").unwrap(), ClientIpHeader::Default);
        assert_eq!(ClientIpHeader::parse("X-Real-IP").unwrap().name(), "X-Real-IP");
        for bad in ["X Real IP", "x-real-ip:", "Authorization", "Host", "é"] {
            assert!(ClientIpHeader::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mapped_ipv6_peer_is_seen_as_ipv4() {
        check("[::ffff:127.0.0.1]:5000", &[], &[], "127.0.0.1");
    }
}
