//! Forward-auth: one endpoint for nginx `auth_request`, Traefik ForwardAuth,
//! Envoy `ext_authz` (HTTP service) and Caddy `forward_auth`.
//!
//! Before forwarding a request, the proxy sends its `Authorization` header here,
//! with the original method, URI, host and client address in headers of its
//! own. nbtoken authenticates exactly as the API does
//! ([`crate::auth::authenticate`]: failure budgets, v1 policy, cache,
//! `last_used`) and answers `200` with identity headers for the upstream, or
//! `401`/`403`/`429`/`503` with a JSON `detail`, which the proxy returns to the client.
//!
//! What is believed from whom:
//! - the client address: `X-Forwarded-For` / `X-Real-IP` only from trusted
//!   proxies ([`crate::client_ip`]), as everywhere else;
//! - the original method: it can only make the check stricter. A request needs
//!   write permission when its own method (Envoy forwards the original) or any
//!   `X-Forwarded-Method` (Traefik, Caddy) / `X-Original-Method` (nginx, when
//!   configured) value is not GET, HEAD or OPTIONS. A client that sends these
//!   headers itself can refuse its own request, never loosen the check;
//! - the original URI and host only go into the log, and only from trusted proxies.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nbtoken_core::Access;
use tracing::Instrument;

use crate::auth::{authenticate, deprecation_headers, Outcome, Principal};
use crate::client_ip::Caller;
use crate::error::ApiError;
use crate::AppState;

/// The path the proxies call; Envoy appends the original path to it.
pub const PATH: &str = "/auth/forward";

/// The authenticated user's name (UTF-8; usernames hold letters, digits and `@.+-_`).
pub const USER: HeaderName = HeaderName::from_static("x-nbtoken-user");
/// The authenticated user's id.
pub const USER_ID: HeaderName = HeaderName::from_static("x-nbtoken-user-id");
/// The id of the token used.
pub const TOKEN_ID: HeaderName = HeaderName::from_static("x-nbtoken-token-id");
/// `1` or `2`.
pub const TOKEN_VERSION: HeaderName = HeaderName::from_static("x-nbtoken-token-version");
/// `true` or `false`: whether the token may write.
pub const WRITE_ENABLED: HeaderName = HeaderName::from_static("x-nbtoken-write-enabled");

/// Headers that carry the original method.
const METHOD_HEADERS: [&str; 2] = ["x-forwarded-method", "x-original-method"];
/// Headers that carry the original URI, in order of preference.
const URI_HEADERS: [&str; 2] = ["x-forwarded-uri", "x-original-uri"];
/// Headers that carry the original host, in order of preference.
const HOST_HEADERS: [&str; 2] = ["x-forwarded-host", "x-original-host"];

const MSG_NOT_PROVIDED: &str = "Authentication credentials were not provided.";

/// `ANY /auth/forward[/…]`: the forward-auth check.
#[utoipa::path(
    method(get, post, put, patch, delete, head, options, trace),
    path = "/auth/forward",
    tag = "forward-auth",
    description = "Authenticates the `Authorization` header a reverse proxy passes on, as the API does. \
        Any method (also `/auth/forward/` and `/auth/forward/{path}`); the original method \
        (`X-Forwarded-Method`, `X-Original-Method`, or the request's own) decides whether write \
        permission is needed. Refusals are JSON with a `detail`, which the proxy returns to the client.",
    security((), ("tokenAuth" = [])),
    responses(
        (status = 200, description = "Allowed; identity headers for the upstream", headers(
            ("X-Nbtoken-User" = String, description = "The user's name"),
            ("X-Nbtoken-User-Id" = i64, description = "The user's id"),
            ("X-Nbtoken-Token-Id" = i64, description = "The token's id"),
            ("X-Nbtoken-Token-Version" = u8, description = "1 or 2"),
            ("X-Nbtoken-Write-Enabled" = bool, description = "Whether the token may write"),
        )),
        (status = 400, description = "A malformed forwarding header from a trusted proxy", body = crate::api::schema::Detail),
        (status = 401, description = "No credentials, or a token that is not valid", body = crate::api::schema::Detail,
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"nbtoken\"`"))),
        (status = 403, description = "A valid token that may not do this (read-only token, network, v1 policy)", body = crate::api::schema::Detail),
        (status = 429, description = "Too many failed attempts from this client or on this key", body = crate::api::schema::Detail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The token database is unavailable", body = crate::api::schema::Detail),
    )
)]
pub async fn check(State(state): State<Arc<AppState>>, req: Request) -> Response {
    // Read in place: the request's headers are not copied.
    let (method, uri, headers) = (req.method(), req.uri(), req.headers());
    let (caller, client_ip) = match Caller::of(req.extensions()) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let access = original_access(method, headers);
    let trusted = caller.peer_trusted();
    let span = tracing::debug_span!(
        "forward_auth",
        original_method = first(headers, &METHOD_HEADERS).unwrap_or(method.as_str()),
        original_uri = trusted.then(|| original_path(uri, headers)).flatten(),
        original_host = trusted.then(|| first(headers, &HOST_HEADERS)).flatten(),
    );
    match authenticate(&state, client_ip, access, headers).instrument(span).await {
        Ok(Some(p)) => granted(&state, &p),
        Ok(None) => unauthorized(ApiError::detail(StatusCode::UNAUTHORIZED, MSG_NOT_PROVIDED), false),
        Err(refusal) => match refusal.outcome {
            Outcome::IpDenied | Outcome::WriteDenied => {
                refusal.error.with_status(StatusCode::FORBIDDEN).into_response()
            }
            // Their own status: 429 with Retry-After, 503 when the server cannot decide.
            Outcome::RateLimited | Outcome::PeppersMissing | Outcome::StoreError => {
                refusal.error.into_response()
            }
            _ => unauthorized(refusal.error.with_status(StatusCode::UNAUTHORIZED), true),
        },
    }
}

/// What the original request needs: write if the request's own method or any forwarded method writes.
pub fn original_access(method: &Method, headers: &HeaderMap) -> Access {
    let forwarded = METHOD_HEADERS.iter().flat_map(|h| headers.get_all(*h).iter());
    let mut methods = std::iter::once(method.as_str().as_bytes()).chain(forwarded.map(HeaderValue::as_bytes));
    // An unreadable value counts as a write, like any method that is not GET, HEAD or OPTIONS.
    if methods
        .any(|m| Access::from_method(std::str::from_utf8(m.trim_ascii()).unwrap_or("")) == Access::Write)
    {
        Access::Write
    } else {
        Access::Read
    }
}

fn granted(state: &AppState, p: &Principal) -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    // Usernames are letters, digits and `@.+-_`: never a control character, so this cannot fail.
    if let Ok(v) = HeaderValue::from_bytes(p.username().as_bytes()) {
        h.insert(USER, v);
    }
    h.insert(USER_ID, HeaderValue::from(p.user_id));
    h.insert(TOKEN_ID, HeaderValue::from(p.token_id));
    h.insert(TOKEN_VERSION, HeaderValue::from(u16::from(p.version.as_u8())));
    h.insert(WRITE_ENABLED, HeaderValue::from_static(if p.write_enabled { "true" } else { "false" }));
    h.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    deprecation_headers(&state.config, p.version, h);
    resp
}

/// 401 with the challenge RFC 6750 asks for.
fn unauthorized(error: ApiError, invalid_token: bool) -> Response {
    let mut resp = error.into_response();
    let challenge = if invalid_token {
        r#"Bearer realm="nbtoken", error="invalid_token""#
    } else {
        r#"Bearer realm="nbtoken""#
    };
    resp.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    resp
}

/// The first readable value among these headers.
fn first<'a>(headers: &'a HeaderMap, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| headers.get(*n)).and_then(|v| v.to_str().ok())
}

/// The original path, without its query (which may hold anything, secrets included), for the log.
fn original_path(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let raw = match first(headers, &URI_HEADERS) {
        Some(u) => u.to_owned(),
        // Envoy appends the original path to the configured prefix.
        None => uri.path().strip_prefix(PATH).filter(|p| !p.is_empty())?.to_owned(),
    };
    let path = raw.split(['?', '#']).next().unwrap_or("");
    Some(path.chars().take(256).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: &str, headers: &[(&str, &str)], expected: Access) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        let got = original_access(&Method::from_bytes(method.as_bytes()).unwrap(), &map);
        assert_eq!(got, expected, "{method} {headers:?}");
    }

    #[test]
    fn the_original_method_can_only_make_the_check_stricter() {
        check("GET", &[], Access::Read);
        check("HEAD", &[("x-forwarded-method", "OPTIONS")], Access::Read);
        check("GET", &[("x-forwarded-method", "POST")], Access::Write);
        check("GET", &[("x-original-method", "DELETE")], Access::Write);
        check("POST", &[], Access::Write); // Envoy forwards the original method
        check("POST", &[("x-forwarded-method", "GET")], Access::Write);
        check("GET", &[("x-forwarded-method", "GET"), ("x-forwarded-method", "PATCH")], Access::Write);
        check("GET", &[("x-forwarded-method", "get")], Access::Write); // methods are case-sensitive
        check("GET", &[("x-forwarded-method", " GET ")], Access::Read);
    }

    #[test]
    fn logged_paths_lose_their_query() {
        let mut h = HeaderMap::new();
        let uri: Uri = "/auth/forward/api/x?token=abc".parse().unwrap();
        assert_eq!(original_path(&uri, &h).as_deref(), Some("/api/x"));
        h.insert("x-original-uri", HeaderValue::from_static("/app/?secret=1"));
        assert_eq!(original_path(&uri, &h).as_deref(), Some("/app/"));
        assert_eq!(original_path(&"/auth/forward".parse().unwrap(), &HeaderMap::new()), None);
    }
}
