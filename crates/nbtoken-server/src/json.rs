//! NetBox's JSON shapes, written by hand at the edge (core types do not derive `Serialize`).

use std::collections::BTreeMap;

use axum::http::request::Parts;
use axum::http::HeaderMap;
use nbtoken_core::SecretString;
use nbtoken_core::{StoredCredential, TokenVersion};
use nbtoken_store::{Page, TokenRecord, User};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::error::ApiError;

/// Default page size (NetBox's `PAGINATE_COUNT`).
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page (NetBox's `MAX_PAGE_SIZE`).
pub const MAX_LIMIT: u32 = 1000;

/// Scheme and host the client used, for the absolute URLs NetBox returns
/// (`url`, `next`, `previous`, `Location`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl(String);

/// Longest host a request may name for its absolute URLs.
const MAX_HOST_LEN: usize = 255;

impl BaseUrl {
    /// A fixed base such as `http://127.0.0.1:8080`.
    pub fn new(base: impl Into<String>) -> Self {
        Self(base.into().trim_end_matches('/').to_owned())
    }

    /// Parses `NBTOKEN_PUBLIC_URL`: `http://` or `https://`, a host (and port), and an
    /// optional path prefix; no query, fragment or user information.
    pub fn parse_public(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .filter(|(s, _)| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
            .ok_or("expected an http:// or https:// URL, such as https://netbox.example.com")?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !valid_host(host) {
            return Err("expected a host name or address (and port) after the scheme".to_owned());
        }
        if !path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b)) {
            return Err("the path prefix may hold only letters, digits and / - . _ ~ %".to_owned());
        }
        Ok(Self::new(format!("{}://{host}{path}", scheme.to_ascii_lowercase())))
    }

    /// From the `Host` header (only if it looks like a host), else the listening address.
    pub fn from_headers(headers: &HeaderMap, fallback: &str) -> Self {
        Self(format!("http://{}", host_header(headers, "host").unwrap_or(fallback)))
    }

    /// The base for a request's absolute URLs, in this order: the operator's
    /// `public_url`; else, when the peer is a trusted proxy, the scheme and host it
    /// reports ([`forwarded_scheme_and_host`]); else `http://` and the `Host` header.
    /// What a client that is not a trusted proxy says about the scheme is never believed.
    pub fn for_request(
        headers: &HeaderMap,
        peer_trusted: bool,
        config: &crate::Config,
        fallback: &str,
    ) -> Self {
        if let Some(pinned) = &config.public_url {
            return pinned.clone();
        }
        let (scheme, forwarded_host) = if peer_trusted {
            forwarded_scheme_and_host(headers, &config.client_ip_header)
        } else {
            (None, None)
        };
        let host = forwarded_host.or_else(|| host_header(headers, "host").map(str::to_owned));
        Self(format!("{}://{}", scheme.unwrap_or("http"), host.as_deref().unwrap_or(fallback)))
    }

    /// Absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
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

/// A host name or address with an optional port: letters, digits and `-.:[]_`.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= MAX_HOST_LEN
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

/// NetBox's timestamp format: ISO 8601 in UTC with `Z`, microseconds when non-zero.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let micros = t.microsecond();
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micros == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{micros:06}Z")
    }
}

fn opt_timestamp(t: Option<OffsetDateTime>) -> Value {
    t.map(|t| Value::String(timestamp(t))).unwrap_or(Value::Null)
}

/// Parses a timestamp as NetBox accepts it: RFC 3339, or a naive ISO time taken as UTC.
///
/// As in Django, the year is four digits without a sign and the instant falls in years
/// 1–9999 in UTC, so that it can be stored and shown again; `None` otherwise. (`time` reads
/// `-2026` as a year, and converting `9999-12-31T23:59:59-01:00` to UTC would panic.)
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    if !s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let t = parse_any_timestamp(s)?.checked_to_offset(UtcOffset::UTC)?;
    (1..=9999).contains(&t.year()).then_some(t)
}

fn parse_any_timestamp(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let fmts = [
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]"),
    ];
    fmts.iter().find_map(|f| PrimitiveDateTime::parse(s, f).ok()).map(|p| p.assume_utc())
}

/// The nested user shape inside a token.
pub fn nested_user(base: &BaseUrl, id: i64, username: &str) -> Value {
    json!({
        "id": id,
        "url": base.url(&format!("/api/users/users/{id}/")),
        "display": username,
        "username": username,
    })
}

/// A token as NetBox 4.7 serialises it, `token` null (only a creation answer holds the secret).
pub fn token(base: &BaseUrl, r: &TokenRecord, brief: bool) -> Value {
    let t = &r.token;
    let id = t.id;
    let (version, key, pepper_id, display) = match &t.credential {
        StoredCredential::V1 { plaintext } => {
            (TokenVersion::V1, Value::Null, Value::Null, plaintext.partial())
        }
        StoredCredential::V2 { key, pepper_id, .. } => (
            TokenVersion::V2,
            Value::String(key.as_str().to_owned()),
            json!(pepper_id.get()),
            key.as_str().to_owned(),
        ),
    };
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("url".into(), json!(base.url(&format!("/api/users/tokens/{id}/"))));
    if brief {
        // NetBox's brief fields, in its order.
        m.insert("display".into(), json!(display));
        m.insert("version".into(), json!(version.as_u8()));
        m.insert("key".into(), key);
        m.insert("enabled".into(), json!(t.enabled));
        m.insert("write_enabled".into(), json!(t.write_enabled));
        m.insert("description".into(), json!(r.description));
        return Value::Object(m);
    }
    m.insert("display_url".into(), json!(base.url(&format!("/users/tokens/{id}/"))));
    m.insert("display".into(), json!(display));
    m.insert("version".into(), json!(version.as_u8()));
    m.insert("key".into(), key);
    m.insert("user".into(), nested_user(base, t.user_id, &r.username));
    m.insert("description".into(), json!(r.description));
    m.insert("created".into(), json!(timestamp(r.created)));
    m.insert("expires".into(), opt_timestamp(t.expires));
    m.insert("last_used".into(), opt_timestamp(t.last_used));
    // nbtoken extension: the client address of the last recorded use.
    m.insert("last_used_ip".into(), r.last_used_ip.map(|ip| json!(ip.to_string())).unwrap_or(Value::Null));
    m.insert("enabled".into(), json!(t.enabled));
    m.insert("write_enabled".into(), json!(t.write_enabled));
    m.insert("pepper_id".into(), pepper_id);
    // `null` (not set) and `[]` both mean unrestricted; each token reads back as it was stored.
    let ips: Vec<Value> = t.allowed_ips.nets().iter().map(|n| json!(n.to_string())).collect();
    m.insert("allowed_ips".into(), if t.allowed_ips.is_list() { Value::Array(ips) } else { Value::Null });
    // NetBox 4.7 sends the field on every read, null: the secret is never stored, so never shown again.
    m.insert("token".into(), Value::Null);
    Value::Object(m)
}

/// NetBox's user `display`: `username (First Last)` when a name is set.
fn user_display(u: &User) -> String {
    let full = format!("{} {}", u.first_name, u.last_name);
    let full = full.trim();
    if full.is_empty() {
        u.username.clone()
    } else {
        format!("{} ({full})", u.username)
    }
}

/// A token's full JSON with the secret shown once, as NetBox answers a creation: `token`
/// holds the bare secret (v2) or the plaintext (v1).
pub fn token_with_secret(base: &BaseUrl, r: &TokenRecord, secret: &SecretString) -> Value {
    let mut v = token(base, r, false);
    if let Value::Object(o) = &mut v {
        o.insert("token".into(), Value::String(secret.expose().to_owned()));
    }
    v
}

/// A user as NetBox serialises it.
pub fn user(base: &BaseUrl, u: &User, brief: bool) -> Value {
    let id = u.id;
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("url".into(), json!(base.url(&format!("/api/users/users/{id}/"))));
    if brief {
        m.insert("display".into(), json!(user_display(u)));
        m.insert("username".into(), json!(u.username));
        return Value::Object(m);
    }
    m.insert("display_url".into(), json!(base.url(&format!("/users/users/{id}/"))));
    m.insert("display".into(), json!(user_display(u)));
    m.insert("username".into(), json!(u.username));
    m.insert("first_name".into(), json!(u.first_name));
    m.insert("last_name".into(), json!(u.last_name));
    m.insert("email".into(), json!(u.email));
    m.insert("is_active".into(), json!(u.is_active));
    m.insert("is_superuser".into(), json!(u.is_superuser));
    m.insert("date_joined".into(), json!(timestamp(u.date_joined)));
    m.insert("last_login".into(), opt_timestamp(u.last_login));
    m.insert("groups".into(), json!([]));
    m.insert("permissions".into(), json!([]));
    m.insert("can_grant_tokens".into(), json!(u.can_grant_tokens));
    Value::Object(m)
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
                        Some(known) => ApiError::field(known, crate::api::body::MSG_NUL),
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
    use time::macros::datetime;

    use super::*;

    #[test]
    fn timestamps_look_like_django_rest_framework() {
        assert_eq!(timestamp(datetime!(2026-01-02 03:04:05 UTC)), "2026-01-02T03:04:05Z");
        assert_eq!(timestamp(datetime!(2026-01-02 03:04:05.000123 UTC)), "2026-01-02T03:04:05.000123Z");
        assert_eq!(timestamp(datetime!(2026-01-02 03:04:05 +02:00)), "2026-01-02T01:04:05Z");
    }

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
        BaseUrl::for_request(&headers(pairs), trusted, &config, "127.0.0.1:8080").url("/api/")
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

    #[test]
    fn timestamp_parsing() {
        let t = datetime!(2026-01-02 03:04:05 UTC);
        for s in [
            "2026-01-02T03:04:05Z",
            "2026-01-02T05:04:05+02:00",
            "2026-01-02T03:04:05",
            "2026-01-02 03:04:05",
        ] {
            assert_eq!(parse_timestamp(s), Some(t), "{s}");
        }
        assert_eq!(parse_timestamp("tomorrow"), None);
        assert_eq!(parse_timestamp("2026-13-02T03:04:05Z"), None);
        assert_eq!(parse_timestamp("9999-12-31T23:59:59Z"), Some(datetime!(9999-12-31 23:59:59 UTC)));
    }

    #[test]
    fn timestamps_outside_years_1_to_9999_in_utc_are_refused_not_a_panic() {
        // Found by the `token_body` fuzz target: a signed year, and an offset that
        // moves the instant out of range (which used to panic in `to_offset`).
        for s in [
            "-2026-01-02T03:04:11.11",
            "+2026-01-02T03:04:11",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s}");
        }
    }
}
