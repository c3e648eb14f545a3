//! `/api/`, `/api/status/`, `/api/authentication-check/`, `/api/users/`, `/healthz`, `/livez` and `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nbtoken_store::Store;
use serde_json::{json, Value};

use super::{current_user, Ctx};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::json;
use crate::AppState;

/// `GET /api/`: the API root (pynetbox reads `API-Version` from it).
pub async fn root(_: Principal, ctx: Ctx) -> Json<Value> {
    Json(json!({
        "users": ctx.base.url("/api/users/"),
        "status": ctx.base.url("/api/status/"),
        "authentication-check": ctx.base.url("/api/authentication-check/"),
    }))
}

/// `GET /api/users/`: the app root.
pub async fn users_root(_: Principal, ctx: Ctx) -> Json<Value> {
    Json(json!({
        "tokens": ctx.base.url("/api/users/tokens/"),
        "users": ctx.base.url("/api/users/users/"),
    }))
}

/// `GET /api/status/`
pub async fn status(State(state): State<Arc<AppState>>, _: Principal) -> Json<Value> {
    let peppers: Vec<u16> = state.config.peppers.ids().map(|p| p.get()).collect();
    // NetBox's keys (with `installed_apps` spelled as 4.x does), plus nbtoken's own.
    Json(json!({
        "netbox-version": format!("{}.0", crate::API_VERSION),
        "netbox-full-version": format!("{}.0-nbtoken-{}", crate::API_VERSION, env!("CARGO_PKG_VERSION")),
        "installed_apps": {},
        "plugins": {},
        "rq-workers-running": 0,
        "nbtoken-version": env!("CARGO_PKG_VERSION"),
        "v1-policy": state.config.v1_policy.as_str(),
        "pepper-ids": peppers,
    }))
}

/// `GET /api/authentication-check/`: the authenticated user, serialised.
pub async fn authentication_check(
    State(state): State<Arc<AppState>>,
    p: Principal,
    ctx: Ctx,
) -> ApiResult<Json<Value>> {
    let me = current_user(&state, &p).await?;
    Ok(Json(json::user(&ctx.base, &me, false)))
}

/// `GET /livez`: 200 while the process serves requests; touches nothing (liveness probes, benchmarks' baseline).
pub async fn livez() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /healthz`: 200 when the database answers, 503 when it does not. No authentication.
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))).into_response(),
        Err(e) => {
            state.metrics.store_error();
            tracing::warn!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "detail": "database unreachable"})),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus metrics (OpenMetrics text). No authentication, like `/healthz`:
/// restrict it at the proxy. No value in it is a secret.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], state.metrics.encode())
        .into_response()
}
