//! One log line and one latency sample per request, inside a span that carries the request id.
//!
//! `SetRequestIdLayer` (outside this middleware) has already given the request
//! an `X-Request-ID`, the client's own if it sent one, as NetBox does; the span
//! opened here carries it, so every event logged while the request is served
//! (the authentication decision among them) names it. The route is the matched
//! template (`/api/users/tokens/{id}/`), never the raw path, so neither logs
//! nor metrics grow with what clients send.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing::Instrument;

use crate::error::{RateLimited, StoreFailure};
use crate::AppState;

/// Route label for requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The middleware.
pub async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // `MatchedPath` holds a shared string: cloning it does not copy the route.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    // The fields are read (and formatted) only if the span is enabled.
    let span = tracing::info_span!(
        "request",
        request_id = %req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or(""),
        method = %req.method(),
        route = %route,
    );
    let resp = next.run(req).instrument(span.clone()).await;
    let took = started.elapsed();
    state.metrics.request(route, took);
    if resp.extensions().get::<RateLimited>().is_some() {
        state.metrics.rate_limited();
    }
    if resp.extensions().get::<StoreFailure>().is_some() {
        state.metrics.store_error();
    }
    span.in_scope(|| {
        tracing::info!(status = resp.status().as_u16(), micros = took.as_micros() as u64, "request");
    });
    resp
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
}
