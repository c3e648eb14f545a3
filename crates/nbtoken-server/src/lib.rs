//! The nbtoken HTTP service: NetBox's token REST API and authentication, on axum.
//!
//! Request flow: [`client_ip`] works out who is calling, [`auth`] parses the
//! `Authorization` header with `nbtoken-core`, fetches the row from the
//! store, lets the core decide, and queues the `last_used` write with
//! [`touch`]; the handlers in [`api`] then answer in NetBox's JSON shapes.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use ipnet::IpNet;
use nbtoken_core::{PepperRing, V1Policy};
use nbtoken_store::AnyStore;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

pub mod api;
pub mod auth;
pub mod client_ip;
pub mod error;
pub mod json;
pub mod service;
pub mod touch;

/// The store the server runs on.
pub type AppStore = AnyStore;

/// The version reported in `API-Version` and `/api/status/` (NetBox's release we match).
pub const API_VERSION: &str = "4.6";

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Server configuration, validated by the caller (the CLI).
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Peppers for v2 tokens.
    pub peppers: PepperRing,
    /// What to do with v1 tokens.
    pub v1_policy: V1Policy,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long a request may take.
    pub request_timeout: Duration,
    /// When v1 tokens stop working, announced in the `Sunset` header under the `warn` policy.
    pub v1_sunset: Option<time::OffsetDateTime>,
}

impl Config {
    /// Defaults for everything but the peppers.
    pub fn new(bind: SocketAddr, peppers: PepperRing) -> Self {
        Self {
            bind,
            peppers,
            v1_policy: V1Policy::default(),
            trusted_proxies: Vec::new(),
            request_timeout: Duration::from_secs(30),
            v1_sunset: None,
        }
    }
}

/// Shared state of the running service.
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// Persistence.
    pub store: AppStore,
    /// Deferred `last_used` / re-hash writes.
    pub touches: touch::Toucher,
}

/// The axum router with every route and layer, for embedding or tests.
pub fn router(state: Arc<AppState>) -> Router {
    let timeout = state.config.request_timeout;
    api::routes(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Binds, prints `listening on http://ADDR` to stderr, and serves until `shutdown` resolves.
/// Pending `last_used` writes are flushed before returning.
pub async fn run(
    config: Config,
    store: AppStore,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
    serve(listener, config, store, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0 themselves).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    store: AppStore,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let (touches, flusher) = touch::Toucher::start(store.clone());
    let state = Arc::new(AppState { config, store, touches });
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    eprintln!("listening on http://{addr}");
    tracing::info!(%addr, "listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    state.touches.close();
    drop(state);
    flusher.await.ok();
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    eprintln!("shutting down");
}
