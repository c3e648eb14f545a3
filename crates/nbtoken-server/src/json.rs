//! The HTTP side of NetBox's JSON: absolute URLs from the request, query parameters, and
//! pagination. The shapes of users and tokens (and timestamps) are `nbtoken_manage::json`'s,
//! shared with the CLI, and re-exported here.

use std::collections::BTreeMap;

use axum::http::request::Parts;
use axum::http::HeaderMap;
use nbtoken_store::Page;
use serde_json::{json, Value};

pub use nbtoken_manage::json::{
    nested_user, parse_timestamp, timestamp, token, token_with_secret, user, valid_host, BaseUrl,
};

use crate::error::ApiError;

/// Default page size (NetBox's `PAGINATE_COUNT`).
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page (NetBox's `MAX_PAGE_SIZE`).
pub const MAX_LIMIT: u32 = 1000;

/// The base for a request's absolute URLs, in this order: the operator's
/// `public_url`; else, when the peer is a trusted proxy, the scheme and host it
/// reports ([`forwarded_scheme_and_host`]); else `http://` and the `Host` header.
/// What a client that is not a trusted proxy says about the scheme is never believed.
pub fn base_for_request(
    headers: &HeaderMap,
    peer_trusted: bool,
    config: &crate::Config,
    fallback: &str,
) -> BaseUrl {
    if let Some(pinned) = &config.public_url {
        return pinned.clone();
    }
    let (scheme, forwarded_host) = if peer_trusted {
        forwarded_scheme_and_host(headers, &config.client_ip_header)
    } else {
        (None, None)
    };
    let host = forwarded_host.or_else(|| host_header(headers, "host").map(str::to_owned));
    BaseUrl::new(format!("{}://{}", scheme.unwrap_or("http"), host.as_deref().unwrap_or(fallback)))
}

/// The scheme and host a trusted proxy reports: `X-Forwarded-Proto` / `X-Forwarded-Host`,
/// or `Forwarded`'s `proto=` / `host=`. With `NBTOKEN_CLIENT_IP_HEADER=Forwarded` only
/// `Forwarded` counts, with another header named only the `X-Forwarded-*` pair; unset, the
/// `X-Forwarded-*` pair first, then `Forwarded`. In a list the last value counts (the one
/// the nearest proxy set). Values that are not `http`/`https` or a plain host are ignored.
pub fn forwarded_scheme_and_host(
    headers: &HeaderMap,
    source: &crate::client_ip::ClientIpHeader,
) -> (Option<&'static str>, Option<String>) {
    use crate::client_ip::ClientIpHeader;
    let x_forwarded = || {
        let proto = last_list_value(headers, "x-forwarded-proto").and_then(|p| scheme(&p));
        let host = last_list_value(headers, "x-forwarded-host").filter(|h| valid_host(h));
        (proto, host)
    };
    let forwarded = || {
        let elements = crate::client_ip::forwarded_elements(headers).unwrap_or_default();
        let last = |name: &str| {
            elements.iter().rev().find_map(|e| e.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        };
        (last("proto").and_then(|p| scheme(&p)), last("host").filter(|h| valid_host(h)))
    };
    match source {
        ClientIpHeader::Forwarded => forwarded(),
        ClientIpHeader::Default => {
            let (p, h) = x_forwarded();
            let (fp, fh) = forwarded();
            (p.or(fp), h.or(fh))
        }
        _ => x_forwarded(),
    }
}

fn scheme(value: &str) -> Option<&'static str> {
    match value.trim().to_ascii_lowercase().as_str() {
        "https" => Some("https"),
        "http" => Some("http"),
        _ => None,
    }
}

/// The last comma-separated value of a header (over all its lines), trimmed.
fn last_list_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    value.rsplit(',').next().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn host_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|h| h.to_str().ok()).filter(|h| valid_host(h))
}

/// Every query parameter a handler reads: the only parameter names an error body may repeat.
pub const KNOWN_PARAMETERS: &[&str] = &[
    "brief",
    "description",
    "enabled",
    "id",
    "is_active",
    "key",
    "limit",
    "offset",
    "pepper_id",
    "user",
    "user_id",
    "username",
    "version",
    "write_enabled",
];

/// Query parameters, with repeated keys kept (NetBox filters take several values).
#[derive(Clone, Debug, Default)]
pub struct Query(BTreeMap<String, Vec<String>>);

impl Query {
    /// Parses the request's query string (lenient, as Django is).
    pub fn from_parts(parts: &Parts) -> Result<Self, ApiError> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(q) = parts.uri.query() {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                // A NUL in a filter is a 400, as in django-filter, on every backend
                // (PostgreSQL cannot compare text with one: it would be a 5xx).
                // The error names the parameter only when it is one of ours: a client's own
                // parameter name is a value it sent, and error bodies never echo those.
                if k.contains('\0') || v.contains('\0') {
                    return Err(match KNOWN_PARAMETERS.iter().find(|p| **p == k) {
                        Some(known) => ApiError::field(known, nbtoken_manage::input::MSG_NUL),
                        None => ApiError::bad_request("Null characters are not allowed in query parameters."),
                    });
                }
                map.entry(k.into_owned()).or_default().push(v.into_owned());
            }
        }
        Ok(Self(map))
    }

    /// All values of a key.
    pub fn all(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The last value of a key.
    pub fn last(&self, key: &str) -> Option<&str> {
        self.all(key).last().map(String::as_str)
    }

    /// Every value of an integer filter (`?id=1&id=2`); a value that is not an integer is a 400 naming the key.
    pub fn ints(&self, key: &str) -> Result<Vec<i64>, ApiError> {
        self.all(key)
            .iter()
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    // django-filter's message, which names no value.
                    .map_err(|_| ApiError::field(key, "Enter a number."))
            })
            .collect()
    }

    /// A boolean filter (last value wins): `true`/`1`/`yes` or `false`/`0`/`no`, in any case; anything else is a 400.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.last(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(_) => Err(ApiError::field(key, "Select a valid choice.")),
        }
    }

    /// Keys present.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Brief mode. As in NetBox, any non-empty `brief` value turns it on (even `brief=false`).
    pub fn brief(&self) -> bool {
        self.last("brief").is_some_and(|v| !v.is_empty())
    }

    /// `limit`/`offset` as NetBox reads them: a bad or negative limit means the
    /// default, 0 or over the maximum means the maximum; a bad offset means 0.
    pub fn page(&self) -> Page {
        let limit = match self.last("limit").map(|v| v.trim().parse::<i64>()) {
            Some(Ok(0)) => MAX_LIMIT,
            Some(Ok(n)) if n > 0 => u32::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
            _ => DEFAULT_LIMIT,
        };
        let offset = match self.last("offset").map(|v| v.trim().parse::<i64>()) {
            Some(Ok(n)) if n > 0 => u64::try_from(n).unwrap_or(0),
            _ => 0,
        };
        Page { limit, offset }
    }

    fn encode_with(&self, limit: u32, offset: u64) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, vs) in &self.0 {
            if k == "limit" || k == "offset" {
                continue;
            }
            for v in vs {
                pairs.push((k.clone(), v.clone()));
            }
        }
        pairs.push(("limit".into(), limit.to_string()));
        if offset > 0 {
            pairs.push(("offset".into(), offset.to_string()));
        }
        // DRF re-encodes the query with its keys in order.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
    }
}

/// `{count, next, previous, results}` with NetBox's absolute `next`/`previous` links.
pub fn paginated(
    base: &BaseUrl,
    path: &str,
    query: &Query,
    page: Page,
    count: u64,
    results: Vec<Value>,
) -> Value {
    let limit = u64::from(page.limit);
    let link =
        |offset: u64| Value::String(base.url(&format!("{path}?{}", query.encode_with(page.limit, offset))));
    let next = if page.offset + limit < count { link(page.offset + limit) } else { Value::Null };
    let previous = if page.offset > 0 { link(page.offset.saturating_sub(limit)) } else { Value::Null };
    json!({ "count": count, "next": next, "previous": previous, "results": results })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                axum::http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn base_for(pairs: &[(&str, &str)], trusted: bool, source: &str, public: Option<&str>) -> String {
        let mut config =
            crate::Config::new("127.0.0.1:8080".parse().unwrap(), nbtoken_core::PepperRing::empty());
        config.client_ip_header = crate::client_ip::ClientIpHeader::parse(source).unwrap();
        config.public_url = public.map(|p| BaseUrl::parse_public(p).unwrap());
        base_for_request(&headers(pairs), trusted, &config, "127.0.0.1:8080").url("/api/")
    }

    #[test]
    fn scheme_and_host_come_from_a_trusted_proxy_only() {
        let tls =
            [("host", "backend:8080"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "nb.example")];
        assert_eq!(base_for(&tls, true, "", None), "https://nb.example/api/");
        assert_eq!(base_for(&tls, false, "", None), "http://backend:8080/api/");
        let fwd = [("host", "backend"), ("forwarded", "for=1.2.3.4;proto=https;host=\"nb.example:8443\"")];
        assert_eq!(base_for(&fwd, true, "", None), "https://nb.example:8443/api/");
        assert_eq!(base_for(&fwd, true, "Forwarded", None), "https://nb.example:8443/api/");
        assert_eq!(base_for(&fwd, true, "X-Real-IP", None), "http://backend/api/");
        assert_eq!(base_for(&fwd, false, "", None), "http://backend/api/");
        // The nearest proxy's value is the last one; nonsense is ignored.
        let list = [("host", "b"), ("x-forwarded-proto", "http, https")];
        assert_eq!(base_for(&list, true, "", None), "https://b/api/");
        let odd = [("host", "b"), ("x-forwarded-proto", "javascript"), ("x-forwarded-host", "evil/x")];
        assert_eq!(base_for(&odd, true, "", None), "http://b/api/");
        assert_eq!(base_for(&[], true, "", None), "http://127.0.0.1:8080/api/");
    }

    #[test]
    fn a_public_url_pins_scheme_host_and_prefix() {
        let tls = [("host", "backend"), ("x-forwarded-proto", "http")];
        assert_eq!(
            base_for(&tls, true, "", Some("https://nb.example.com/tokens/")),
            "https://nb.example.com/tokens/api/"
        );
        assert_eq!(
            base_for(&[], false, "", Some("HTTPS://nb.example.com:8443")),
            "https://nb.example.com:8443/api/"
        );
        for bad in [
            "nb.example.com",
            "ftp://x",
            "https://",
            "https://u@x",
            "https://x/?q=1",
            "https://x/#f",
            "https://x y",
        ] {
            assert!(BaseUrl::parse_public(bad).is_err(), "{bad}");
        }
    }
}
