//! One latency sample per request, and its access-log line, inside a span that carries the request id.
//!
//! `SetRequestIdLayer` (outside this middleware) has already given the request
//! an `X-Request-ID`, the client's own if it sent one, as NetBox does; the span
//! opened here carries it, so every event logged while the request is served
//! (the authentication decision among them) names it. The route is the matched
//! template (`/api/users/tokens/{id}/`), never the raw path, so neither logs
//! nor metrics grow with what clients send. Which requests get an access-log
//! line is [`AccessLog`]'s choice (`NBTOKEN_ACCESS_LOG`): refusals, errors and
//! v1 uses always, other requests only when the operator asks.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::response::Response;
use tower_http::request_id::{MakeRequestId, RequestId};

use crate::error::{RateLimited, StoreFailure};
use crate::layer::Hook;
use crate::AppState;

/// Route label for requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The layer around every route: times the request, opens its span, counts it in the
/// metrics, writes its access-log line when one is due, and puts NetBox's `API-Version`
/// on every `/api/` response (errors included: pynetbox reads it from a 403 too).
#[derive(Clone)]
pub struct Track(pub Arc<AppState>);

/// What [`Track`] learns of a request before it is served.
pub struct Tracked {
    state: Arc<AppState>,
    started: Instant,
    /// `MatchedPath` holds a shared string: cloning it does not copy the route.
    matched: Option<MatchedPath>,
    span: tracing::Span,
    v1: bool,
    api: bool,
}

impl Hook for Track {
    type Ctx = Tracked;

    fn before(&self, req: &mut Request) -> Tracked {
        let started = Instant::now();
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
        // The fields are read (and formatted) only if the span is enabled.
        // Recorded as strings, not `%` Display: the text log quotes and escapes string
        // values (`request_id="…"`), so no value can pass for another field or line.
        // [`safe_request_id`] has already replaced an id that was not safe.
        let span = tracing::info_span!(
            "request",
            request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or(""),
            method = req.method().as_str(),
            route = route,
        );
        Tracked {
            state: self.0.clone(),
            started,
            v1: maybe_v1(req.headers()),
            api: req.uri().path().starts_with("/api/"),
            matched,
            span,
        }
    }

    fn span(ctx: &Tracked) -> Option<tracing::Span> {
        Some(ctx.span.clone())
    }

    async fn after(ctx: Tracked, mut resp: Response) -> Response {
        let took = ctx.started.elapsed();
        let state = &ctx.state;
        state.metrics.request(ctx.matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str), took);
        if resp.extensions().get::<RateLimited>().is_some() {
            state.metrics.rate_limited();
        }
        if resp.extensions().get::<StoreFailure>().is_some() {
            state.metrics.store_error();
        }
        if ctx.api {
            resp.headers_mut().insert("api-version", HeaderValue::from_static(crate::API_VERSION));
        }
        let status = resp.status();
        // Refusals, errors and v1 uses are always written; other requests as the operator chose.
        if status.is_client_error() || status.is_server_error() || ctx.v1 || state.config.access_log.samples()
        {
            ctx.span.in_scope(|| {
                tracing::info!(status = status.as_u16(), micros = took.as_micros() as u64, "request");
            });
        }
        resp
    }
}

/// Which successful requests get an access-log line (`NBTOKEN_ACCESS_LOG`).
///
/// Every refusal (4xx), every error (5xx) and every request carrying a v1 token is
/// logged whatever this says; the choice covers the rest, which at tens of
/// thousands of requests a second would fill a disk in hours.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum AccessLog {
    /// No line for successful requests (the default).
    #[default]
    Off,
    /// One line for every request.
    On,
    /// One line for about this fraction of successful requests (0 < rate < 1), drawn at random.
    Sampled(f64),
}

impl AccessLog {
    /// Parses `off`, `on` (also `0`/`1`, `false`/`true`) or a sampling rate such as `0.01` or `1%`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        let rate = match t.as_str() {
            "off" | "false" | "no" => return Ok(Self::Off),
            "on" | "true" | "yes" => return Ok(Self::On),
            _ => match t.strip_suffix('%') {
                Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
                None => t.parse::<f64>(),
            },
        };
        match rate {
            Ok(0.0) => Ok(Self::Off),
            Ok(1.0) => Ok(Self::On),
            Ok(r) if r > 0.0 && r < 1.0 => Ok(Self::Sampled(r)),
            _ => Err("expected off, on, or a sampling rate between 0 and 1 (0.01 or 1%)".to_owned()),
        }
    }

    /// Whether this (successful) request is logged.
    fn samples(self) -> bool {
        match self {
            Self::Off => false,
            Self::On => true,
            Self::Sampled(rate) => rand::random::<f64>() < rate,
        }
    }
}

/// Whether a request carries what may be a v1 token: an `Authorization` value whose
/// credential does not start with `nbt_` (cheap: no parsing, no allocation). Such
/// requests are always logged, so the operator sees who still uses v1.
fn maybe_v1(headers: &axum::http::HeaderMap) -> bool {
    headers.get(axum::http::header::AUTHORIZATION).is_some_and(|v| {
        let mut parts = v.as_bytes().split(|b| b.is_ascii_whitespace()).filter(|p| !p.is_empty());
        parts.next();
        parts.next().is_some_and(|cred| !cred.starts_with(b"nbt_"))
    })
}

/// Longest client `X-Request-ID` kept (a UUID is 36 characters, a W3C trace id 32).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a client's request id is kept: 1 to [`MAX_REQUEST_ID_LEN`] characters of `[A-Za-z0-9._-]`.
pub fn is_safe_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A request map (outside `SetRequestIdLayer`): drops a client's `X-Request-ID` unless it is
/// one safe value ([`is_safe_request_id`]), so that the request gets a new id instead.
///
/// The id is echoed in the response and written in every log line of the request; a
/// value with spaces, quotes or `=` could make a text log line say what the client wants.
pub fn safe_request_id(mut req: Request) -> Request {
    let ids = req.headers().get_all("x-request-id");
    let mut values = ids.iter();
    let keep = match (values.next(), values.next()) {
        (None, _) => true,
        (Some(v), None) => is_safe_request_id(v.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if !keep {
        tracing::debug!(count = ids.iter().count(), "client X-Request-ID replaced: not a safe id");
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// Gives each request without an `X-Request-ID` a random UUID (version 4), as NetBox does.
///
/// The bytes come from the thread's CSPRNG (seeded from the operating system),
/// not from a system call per request as `uuid`'s generator makes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIds;

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid_v4(rand::random())).ok().map(RequestId::new)
    }
}

/// Formats 16 random bytes as a version-4 UUID (`xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`).
fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_ids_of_safe_characters_are_kept() {
        for ok in ["a", "req-1", "A.b_c-9", "0f8c2a1e-3b7d-4c55-9e0a-1a2b3c4d5e6f", &"x".repeat(128)] {
            assert!(is_safe_request_id(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "x\" method=DELETE",
            "id}: request status=204",
            "r%0a1",
            "Root=1-5759e988",
            "caf\u{e9}",
            &"x".repeat(129),
        ] {
            assert!(!is_safe_request_id(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn request_ids_are_version_4_uuids() {
        assert_eq!(uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        let req = axum::http::Request::new(());
        let a = RequestIds.make_request_id(&req).unwrap();
        let b = RequestIds.make_request_id(&req).unwrap();
        assert_ne!(a.header_value(), b.header_value());
        let text = a.header_value().to_str().unwrap();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
        assert!(text.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }
    #[test]
    fn access_log_choices_parse_and_bad_ones_are_refused() {
        for (text, want) in [
            ("off", AccessLog::Off),
            (" OFF ", AccessLog::Off),
            ("0", AccessLog::Off),
            ("0%", AccessLog::Off),
            ("on", AccessLog::On),
            ("true", AccessLog::On),
            ("1", AccessLog::On),
            ("100%", AccessLog::On),
            ("0.01", AccessLog::Sampled(0.01)),
            ("25%", AccessLog::Sampled(0.25)),
        ] {
            assert_eq!(AccessLog::parse(text), Ok(want), "{text}");
        }
        for bad in ["", "sometimes", "-0.5", "1.5", "150%", "NaN", "inf", "0.5%%"] {
            assert!(AccessLog::parse(bad).is_err(), "{bad}");
        }
        assert!(!AccessLog::Off.samples() && AccessLog::On.samples());
    }

    #[test]
    fn requests_that_may_carry_a_v1_token_are_recognised() {
        let check = |value: Option<&str>, want: bool| {
            let mut h = axum::http::HeaderMap::new();
            if let Some(v) = value {
                h.insert(axum::http::header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            assert_eq!(maybe_v1(&h), want, "{value:?}");
        };
        check(None, false);
        check(Some("Bearer nbt_abcdefABCDEF.secret"), false);
        check(Some("Token nbt_abcdefABCDEF.secret"), false);
        // A v1 value assembled at run time, so no token literal stands in the source.
        let v1 = format!("{}01234567", "0123456789abcdef".repeat(2));
        check(Some(&format!("Token {v1}")), true);
        check(Some(&format!("bearer  {v1}")), true);
        check(Some("Token"), false);
    }
}
