//! The nbtoken HTTP service: NetBox's token REST API and authentication, on axum.
//!
//! Request flow: [`client_ip`] works out who is calling, [`auth`] parses the
//! `Authorization` header with `nbtoken-core`, fetches the row from the
//! store, lets the core decide, and queues the `last_used` write with
//! [`touch`]; the handlers in [`api`] then answer in NetBox's JSON shapes.
//! [`forward`] answers reverse proxies' forward-auth subrequests through the
//! same [`auth::authenticate`]; [`observe`] logs and times every request and
//! [`metrics`] serves the counts at `/metrics`.

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
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

pub mod api;
pub mod auth;
pub mod cache;
pub mod client_ip;
pub mod error;
pub mod forward;
pub mod json;
pub mod limit;
pub mod metrics;
pub mod observe;
pub mod service;
pub mod touch;

/// The store the server runs on.
pub type AppStore = AnyStore;

/// The version reported in `API-Version` and `/api/status/` (NetBox's release we match).
pub const API_VERSION: &str = "4.6";

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Read buffer for a request head (request line and headers). hyper checks it
/// between reads, so a head past this size plus one read (well under 100 KiB) gets 431.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

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
    /// How long a cached token row may be used without asking the database (0: no cache).
    pub cache_ttl: Duration,
    /// Budgets for failed authentication.
    pub limits: limit::LimitConfig,
    /// Open connections served at once; further clients wait to be accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (slow clients are cut off).
    pub header_timeout: Duration,
    /// Label authentication metrics with the v2 key of existing tokens (off: no key appears in `/metrics`).
    pub metrics_token_keys: bool,
    /// Print `listening on http://ADDR` to stderr as plain text, for people and scripts
    /// (off under JSON logs, where the same event is logged as JSON).
    pub announce: bool,
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
            cache_ttl: Duration::from_secs(5),
            limits: limit::LimitConfig::default(),
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            metrics_token_keys: false,
            announce: true,
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
    /// Recently read token rows.
    pub cache: Arc<cache::TokenCache>,
    /// Failed-authentication budgets.
    pub limiter: limit::FailureLimiter,
    /// What `/metrics` reports.
    pub metrics: Arc<metrics::Metrics>,
}

/// The axum router with every route and layer, for embedding or tests.
pub fn router(state: Arc<AppState>) -> Router {
    let timeout = state.config.request_timeout;
    api::routes(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(observe::RequestIds))
}

/// Binds, prints `listening on http://ADDR` to stderr (see [`Config::announce`]), and serves until `shutdown` resolves.
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
    let cache = Arc::new(cache::TokenCache::new(config.cache_ttl));
    let follower = tokio::spawn(cache::follow_changes(store.clone(), cache.clone()));
    let metrics = Arc::new(metrics::Metrics::new(config.metrics_token_keys));
    let (touches, flusher) = touch::Toucher::start(store.clone(), cache.clone(), metrics.clone());
    let limiter = limit::FailureLimiter::new(config.limits);
    let state = Arc::new(AppState { config, store, touches, cache, limiter, metrics });
    let pruned = state.clone();
    let pruner = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            pruned.limiter.prune();
        }
    });
    let app = router(state.clone());
    // Said once: as the plain line scripts wait for, or else as a log event (JSON logs).
    if state.config.announce {
        eprintln!("listening on http://{addr}");
    } else {
        tracing::info!(%addr, "listening on http://{addr}");
    }
    accept_loop(listener, app, &state.config, shutdown).await;
    follower.abort();
    pruner.abort();
    let _ = pruner.await;
    state.touches.close();
    drop(state);
    flusher.await.ok();
    Ok(())
}

/// Accepts connections until `shutdown`, at most `max_connections` at once, each with a
/// deadline for its request headers and a cap on their size; then lets open requests finish.
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    config: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(config.header_timeout).max_buf_size(MAX_HEAD_BYTES);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let svc = app.clone().map_request(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            req
        });
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), svc));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still open 10 s after shutdown began");
    }
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
    tracing::info!("shutting down");
}
