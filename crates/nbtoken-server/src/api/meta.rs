//! `/api/`, `/api/status/`, `/api/authentication-check/`, `/api/users/`, `/healthz`, `/livez` and `/metrics`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nbtoken_store::{Health, Store as _};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

use super::{current_user, Ctx};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::json;
use crate::AppState;

/// `GET /api/`: the API root (pynetbox reads `API-Version` from it).
#[utoipa::path(
    get,
    path = "/api/",
    operation_id = "api_root",
    tag = "api",
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "Links to the API's parts", body = crate::api::schema::ApiRoot),
        crate::api::schema::Refusals,
    )
)]
pub async fn root(_: Principal, ctx: Ctx) -> Json<Value> {
    Json(json!({
        "users": ctx.base.url("/api/users/"),
        "status": ctx.base.url("/api/status/"),
        "authentication-check": ctx.base.url("/api/authentication-check/"),
    }))
}

/// `GET /api/users/`: the app root.
#[utoipa::path(
    get,
    path = "/api/users/",
    operation_id = "users_root",
    tag = "users",
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "Links to tokens and users", body = crate::api::schema::UsersRoot),
        crate::api::schema::Refusals,
    )
)]
pub async fn users_root(_: Principal, ctx: Ctx) -> Json<Value> {
    Json(json!({
        "tokens": ctx.base.url("/api/users/tokens/"),
        "users": ctx.base.url("/api/users/users/"),
    }))
}

/// `GET /api/status/`
#[utoipa::path(
    get,
    path = "/api/status/",
    operation_id = "status_retrieve",
    tag = "api",
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "Versions and settings", body = crate::api::schema::Status),
        crate::api::schema::Refusals,
    )
)]
pub async fn status(State(state): State<Arc<AppState>>, _: Principal) -> Response {
    // It says only what the configuration says: written once per configuration, then shared.
    let body = state.status_body.get_or_init(|| {
        serde_json::to_vec(&StatusBody { config: &state.config }).map(Bytes::from).unwrap_or_default()
    });
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.clone()).into_response()
}

/// The body of `/api/status/`: NetBox's keys (with `installed_apps` spelled as 4.x does),
/// plus nbtoken's own, in the order `serde_json` gives a map (sorted).
pub struct StatusBody<'a> {
    config: &'a crate::Config,
}

impl Serialize for StatusBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// An empty JSON object.
        struct Empty;
        impl Serialize for Empty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_map(Some(0))?.end()
            }
        }
        let config = self.config;
        let mut m = serializer.serialize_map(Some(8))?;
        m.serialize_entry("installed_apps", &Empty)?;
        m.serialize_entry("nbtoken-version", env!("CARGO_PKG_VERSION"))?;
        m.serialize_entry(
            "netbox-full-version",
            &format_args!("{}-nbtoken-{}", crate::NETBOX_VERSION, env!("CARGO_PKG_VERSION")),
        )?;
        m.serialize_entry("netbox-version", crate::NETBOX_VERSION)?;
        m.serialize_entry("pepper-ids", &PepperIds(&config.peppers))?;
        m.serialize_entry("plugins", &Empty)?;
        m.serialize_entry("rq-workers-running", &0)?;
        m.serialize_entry("v1-policy", config.v1_policy.as_str())?;
        m.end()
    }
}

/// The configured pepper ids as a JSON array, lowest first.
struct PepperIds<'a>(&'a nbtoken_core::PepperRing);

impl Serialize for PepperIds<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.ids().map(|p| p.get()))
    }
}

/// `GET /api/authentication-check/`: the authenticated user, serialised.
#[utoipa::path(
    get,
    path = "/api/authentication-check/",
    operation_id = "authentication_check_retrieve",
    tag = "api",
    security(("tokenAuth" = [])),
    responses(
        (status = 200, description = "The authenticated user", body = crate::api::schema::User),
        crate::api::schema::Refusals,
    )
)]
pub async fn authentication_check(
    State(state): State<Arc<AppState>>,
    p: Principal,
    ctx: Ctx,
) -> ApiResult<Json<Value>> {
    let me = current_user(&state, &p).await?;
    Ok(Json(json::user(&ctx.base, &me, false)))
}

/// `GET /livez`: 200 while the process serves requests; touches nothing (liveness probes, benchmarks' baseline).
#[utoipa::path(
    get,
    path = "/livez",
    operation_id = "livez",
    tag = "operations",
    responses(
        (status = 200, description = "The process serves requests", body = crate::api::schema::Health),
    )
)]
pub async fn livez() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /healthz`: 200 when the database answers and (on SQLite) can commit a
/// write; 503 with `detail` and `since` (when the store first found it so)
/// when it cannot. No authentication. The SQLite write probe runs at most
/// every 2 s and a PostgreSQL outage is answered from the store's circuit
/// breaker, so health checks stay cheap.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    summary = "Health: whether the database answers (and on SQLite can write)",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers (and on SQLite can write)", body = crate::api::schema::Health),
        (status = 503, description = "The database is unreachable or cannot write", body = crate::api::schema::Health),
    )
)]
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let (detail, since) = match state.store.health().await {
        Health::Ok => return (StatusCode::OK, Json(json!({"status": "ok"}))).into_response(),
        Health::Unreachable { since } => ("database unreachable", since),
        Health::CannotWrite { since } => ("database cannot write (disk full or read-only)", since),
        // A state a newer store reports: unhealthy, since it is not known to be ok.
        _ => ("database unhealthy", time::OffsetDateTime::now_utc()),
    };
    state.metrics.store_error();
    tracing::warn!(detail, since = %json::timestamp(since), "health check failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "unavailable", "detail": detail, "since": json::timestamp(since)})),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus metrics (OpenMetrics text). No authentication, like `/healthz`:
/// restrict it at the proxy. No value in it is a secret.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus metrics (OpenMetrics text)", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
    )
)]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], state.metrics.encode())
        .into_response()
}
