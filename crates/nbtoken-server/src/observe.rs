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
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::error::{RateLimited, StoreFailure};
use crate::AppState;

/// Route label for requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The middleware.
pub async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str).to_owned();
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        route = %route,
    );
    let resp = next.run(req).instrument(span.clone()).await;
    let took = started.elapsed();
    state.metrics.request(&route, took);
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
