//! The nbtoken HTTP service: NetBox's token REST API and authentication, on axum.
//!
//! Request flow: [`client_ip`] works out who is calling, [`auth`] parses the
//! `Authorization` header with `nbtoken-core`, fetches the row from the
//! store, lets the core decide, and queues the `last_used` write with
//! [`touch`]; the handlers in [`api`] then parse the request, call an operation of
//! `nbtoken_manage` (which holds every rule of who may do what, and announces each change to
//! the [`cache`]) and answer in NetBox's JSON shapes.
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
use tower::ServiceBuilder;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

pub mod api;
pub mod auth;
pub mod cache;
pub mod client_ip;
pub mod conn;
pub mod error;
pub mod forward;
pub mod json;
pub mod layer;
pub mod limit;
pub mod metrics;
pub mod observe;
pub mod passwords;
pub mod touch;
pub mod ui;

/// The store the server runs on.
pub type AppStore = AnyStore;

/// The version reported in `API-Version` (NetBox's major.minor, as NetBox 4.7 sends it).
pub const API_VERSION: &str = "4.7";

/// The NetBox release whose API nbtoken matches, reported as `netbox-version` in `/api/status/`.
pub const NETBOX_VERSION: &str = "4.7.3";

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Read buffer for a request head (request line and headers). hyper checks it
/// between reads, so a head past this size plus one read (well under 100 KiB) gets 431.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Default for [`Config::max_connections_per_ip`].
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;

/// Time a request body may take before [`Config::min_body_rate`] applies.
pub const MIN_BODY_RATE_GRACE: Duration = Duration::from_secs(2);

/// Server configuration, validated by the caller (the CLI).
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Peppers for v2 tokens.
    pub peppers: PepperRing,
    /// What to do with v1 tokens.
    pub v1_policy: V1Policy,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The one header a trusted proxy names the client in (`NBTOKEN_CLIENT_IP_HEADER`).
    pub client_ip_header: client_ip::ClientIpHeader,
    /// Scheme, host (and path prefix) of absolute URLs, whatever the request says (`NBTOKEN_PUBLIC_URL`).
    pub public_url: Option<json::BaseUrl>,
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
    /// Which successful requests get an access-log line (refusals, errors and v1 uses always do).
    pub access_log: observe::AccessLog,
    /// Open connections one client address may hold at once; further ones are closed at accept
    /// (0: no cap). Trusted proxies are not counted.
    pub max_connections_per_ip: usize,
    /// Slowest accepted request body, in bytes per second, once [`MIN_BODY_RATE_GRACE`] has passed (0: no floor).
    pub min_body_rate: u64,
    /// How long a finished server waits for requests in flight after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Config {
    /// Defaults for everything but the peppers.
    pub fn new(bind: SocketAddr, peppers: PepperRing) -> Self {
        Self {
            bind,
            peppers,
            v1_policy: V1Policy::default(),
            trusted_proxies: Vec::new(),
            client_ip_header: client_ip::ClientIpHeader::default(),
            public_url: None,
            request_timeout: Duration::from_secs(30),
            v1_sunset: None,
            cache_ttl: Duration::from_secs(5),
            limits: limit::LimitConfig::default(),
            max_connections: 1024,
            header_timeout: Duration::from_secs(5),
            metrics_token_keys: false,
            announce: true,
            access_log: observe::AccessLog::Off,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            min_body_rate: 1024,
            shutdown_grace: Duration::from_secs(10),
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
    pub touches: Arc<touch::Toucher>,
    /// Recently read token rows.
    pub cache: Arc<cache::TokenCache>,
    /// Failed-authentication budgets.
    pub limiter: Arc<limit::FailureLimiter>,
    /// What `/metrics` reports.
    pub metrics: Arc<metrics::Metrics>,
    /// The argon2 workers every password check and hash runs on.
    pub passwords: Arc<passwords::Passwords>,
    /// The web UI's sessions (kept across reloads).
    pub ui: Arc<ui::Sessions>,
    /// The `/api/status/` body, written at its first request (it depends on `config` only).
    pub status_body: std::sync::OnceLock<axum::body::Bytes>,
}

impl AppState {
    /// The operations on users and tokens, on this state's store, peppers and password
    /// workers; their changes reach this process's cache at once.
    pub fn ops(&self) -> nbtoken_manage::Ops<'_, AppStore, passwords::Passwords> {
        nbtoken_manage::Ops {
            store: &self.store,
            peppers: &self.config.peppers,
            v1_policy: self.config.v1_policy,
            passwords: &*self.passwords,
            announce: &*self.cache,
        }
    }

    /// The state after a reload: `config` replaces the configuration; the store, cache,
    /// metrics, write queue and password workers carry on; the failure budgets carry on
    /// unless their limits changed.
    fn reloaded(&self, config: Config) -> Self {
        let limiter = if config.limits == self.config.limits {
            self.limiter.clone()
        } else {
            Arc::new(limit::FailureLimiter::new(config.limits).shared_through(self.store.failure_counts()))
        };
        Self {
            config,
            store: self.store.clone(),
            touches: self.touches.clone(),
            cache: self.cache.clone(),
            limiter,
            metrics: self.metrics.clone(),
            passwords: self.passwords.clone(),
            ui: self.ui.clone(),
            status_body: std::sync::OnceLock::new(),
        }
    }
}

/// The axum router with every route and layer, for embedding or tests.
///
/// Each router takes its layers as one stack ([`ServiceBuilder`]): every `Router::layer` call
/// wraps every route in a boxed service of its own, which each request then clones once per
/// layer outside it, so a chain of calls costs allocations that grow with the square of
/// their number.
pub fn router(state: Arc<AppState>) -> Router {
    let api = api::routes(state.clone());
    per_request(api, &state, true).merge(ui::router(state))
}

/// `router` with the layers each of its routes runs in, outermost first: those of the API
/// (`json_errors`: every error a client sees is JSON) or of the web UI (which answers its
/// errors as pages and adds its own security headers inside these).
pub(crate) fn per_request<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    state: &Arc<AppState>,
    json_errors: bool,
) -> Router<S> {
    let timeout = state.config.request_timeout;
    let for_caller = state.clone();
    router.layer(
        ServiceBuilder::new()
            // Before an id is kept: a client's unsafe `X-Request-ID` is dropped, so a new one is made.
            .map_request(observe::safe_request_id)
            .layer(SetRequestIdLayer::x_request_id(observe::RequestIds))
            .layer(PropagateRequestIdLayer::x_request_id())
            // Outside the timeout and every rejection.
            .option_layer(json_errors.then_some(layer::HookLayer(error::JsonErrors)))
            .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, timeout))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            // Who is calling, decided once for every layer and handler inside.
            .map_request(move |req| client_ip::resolve(&for_caller, req))
            .layer(layer::HookLayer(observe::Track(state.clone()))),
    )
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
    let (_keep, reloads) = tokio::sync::mpsc::channel(1);
    serve_with_reloads(listener, config, store, shutdown, reloads).await
}

/// Like [`serve`], and each configuration received on `reloads` replaces the running one
/// without dropping a connection: peppers, the v1 policy and sunset, trusted proxies, the
/// client-address header, failure limits, the access log and the per-address connection
/// cap take effect for the next request. The listen address, `max_connections`, the header
/// and body deadlines, the shutdown grace and the cache TTL stay as they were at start.
pub async fn serve_with_reloads(
    listener: TcpListener,
    config: Config,
    store: AppStore,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    mut reloads: tokio::sync::mpsc::Receiver<Config>,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let cache = Arc::new(cache::TokenCache::new(config.cache_ttl));
    let follower = tokio::spawn(cache::follow_changes(store.clone(), cache.clone()));
    let metrics = Arc::new(metrics::Metrics::new(config.metrics_token_keys));
    let (touches, flusher) = touch::Toucher::start(store.clone(), cache.clone(), metrics.clone());
    let touches = Arc::new(touches);
    let limiter = Arc::new(limit::FailureLimiter::new(config.limits).shared_through(store.failure_counts()));
    let passwords = Arc::new(passwords::Passwords::start(passwords::PasswordConfig::default()));
    let ui = Arc::new(ui::Sessions::new());
    let state = Arc::new(AppState {
        config,
        store,
        touches,
        cache,
        limiter,
        metrics,
        passwords,
        ui,
        status_body: std::sync::OnceLock::new(),
    });
    // Every request is served by the router of the latest configuration.
    let current = Arc::new(Current {
        state: std::sync::RwLock::new(state.clone()),
        router: std::sync::RwLock::new(router(state.clone())),
    });
    let pruned = current.clone();
    let pruner = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            pruned.state().limiter.prune();
        }
    });
    let per_address =
        conn::PerAddress::new(state.config.max_connections_per_ip, state.config.trusted_proxies.clone());
    let reloading = {
        let (current, per_address) = (current.clone(), per_address.clone());
        tokio::spawn(async move {
            while let Some(config) = reloads.recv().await {
                per_address.reconfigure(config.max_connections_per_ip, config.trusted_proxies.clone());
                let next = Arc::new(current.state().reloaded(config));
                let app = router(next.clone());
                *current.state.write().unwrap_or_else(|p| p.into_inner()) = next;
                *current.router.write().unwrap_or_else(|p| p.into_inner()) = app;
                tracing::info!("configuration reloaded");
            }
        })
    };
    // Said once: as the plain line scripts wait for, or else as a log event (JSON logs).
    if state.config.announce {
        eprintln!("listening on http://{addr}");
    } else {
        tracing::info!(%addr, "listening on http://{addr}");
    }
    accept_loop(listener, current.clone(), per_address, &state.config, shutdown).await;
    follower.abort();
    pruner.abort();
    reloading.abort();
    let _ = pruner.await;
    let _ = reloading.await;
    state.touches.close();
    drop((state, current));
    flusher.await.ok();
    Ok(())
}

/// Accepts connections until `shutdown`, at most `max_connections` at once and
/// `max_connections_per_ip` from one address, each with a deadline for its request headers,
/// a cap on their size and a minimum body rate; then lets open requests finish, for at most
/// `shutdown_grace`.
async fn accept_loop(
    listener: TcpListener,
    current: Arc<Current>,
    per_address: Arc<conn::PerAddress>,
    config: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let min_body_rate = config.min_body_rate;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(config.header_timeout).max_buf_size(MAX_HEAD_BYTES);
    tokio::pin!(shutdown);
    // A permit left over from a connection refused at accept serves the next one.
    let mut spare = None;
    loop {
        let permit = match spare.take() {
            Some(p) => p,
            None => tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = &mut shutdown => break,
            },
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
        // An address holding its share already: closed before a byte is read, so that slow
        // clients from a few addresses cannot take every connection.
        let Some(admitted) = per_address.admit(peer.ip()) else {
            tracing::debug!(%peer, "too many connections from this address; closed");
            drop(stream);
            spare = Some(permit);
            continue;
        };
        let current = current.clone();
        let svc = tower::service_fn(move |req: axum::extract::Request| current.router().oneshot(req));
        let svc = svc.map_request(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req =
                req.map(|b| axum::body::Body::new(conn::MinRate::new(b, min_body_rate, MIN_BODY_RATE_GRACE)));
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            req
        });
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), svc));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop((permit, admitted));
        });
    }
    drop(listener);
    let grace = config.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace = ?grace, "some connections were still open when the shutdown deadline passed");
    }
}

/// The state and router of the latest configuration.
struct Current {
    state: std::sync::RwLock<Arc<AppState>>,
    router: std::sync::RwLock<Router>,
}

impl Current {
    fn state(&self) -> Arc<AppState> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn router(&self) -> Router {
        self.router.read().unwrap_or_else(|p| p.into_inner()).clone()
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
