//! Authentication middleware: core's header stage → failure budgets, cache and store →
//! core's row stage. Every rule is core's ([`nbtoken_core::verify`]); this module does the
//! I/O between the two stages, the timing floor, the `last_used` writes, metrics and logs.
//!
//! Every `/api/` request passes through [`AuthLayer`], and every forward-auth
//! request through [`crate::forward`]; both call [`authenticate`]. A request without
//! credentials continues as anonymous (handlers that need a user refuse it);
//! a request with bad credentials is refused here, whatever the route, as
//! NetBox does. Successful requests queue their `last_used` write (with the
//! client address, stored as `last_used_ip`) and never wait for it.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use nbtoken_core::verify::{read_header, HeaderDecision, HeaderRefusal, Presented};
use nbtoken_core::{decide, Access, Credential, Denial, TokenVersion, VerifyInput};
use nbtoken_store::{Store, StoreError, TokenRecord, Touch};
use time::OffsetDateTime;
use tower::{Layer, Service};

use crate::cache::CacheKey;
use crate::client_ip::Caller;
use crate::error::ApiError;
use crate::layer::BoxFuture;
use crate::AppState;

/// An authenticated caller, placed in the request extensions.
#[derive(Clone)]
pub struct Principal {
    /// The user.
    pub user_id: i64,
    /// The token used.
    pub token_id: i64,
    /// Its version.
    pub version: TokenVersion,
    /// Whether it may write.
    pub write_enabled: bool,
    /// The row that granted it (shared with the cache: each copy of the principal copies a pointer).
    row: Arc<TokenRecord>,
}

impl Principal {
    /// The user's name.
    pub fn username(&self) -> &str {
        &self.row.username
    }
}

/// Who, with which token: the row that granted it stays out of the output.
impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("user_id", &self.user_id)
            .field("username", &self.username())
            .field("token_id", &self.token_id)
            .field("version", &self.version)
            .field("write_enabled", &self.write_enabled)
            .finish()
    }
}

/// Message for v1 tokens under the `deny` policy (core's, named here for the tests that name it).
pub use nbtoken_core::verify::MSG_V1_DENIED;

/// The least time a refusal with `Invalid v1 token` / `Invalid v2 token` takes, counted from
/// the start of the check.
///
/// An existing key with a wrong secret and a key no token has take the same path (a store read,
/// two HMACs; see `check`), but the store still returns a row for one and none for the other,
/// and decoding that row took about 25 µs more through the server, on SQLite and PostgreSQL
/// alike (`bench/timing.sh`): enough to tell them apart over many samples. Answering no sooner
/// than this floor hides that difference, and anything else below it. It is far above a
/// store read on a healthy database and far below what a person notices; a client whose
/// token is refused has no reason to be fast.
pub const REFUSAL_FLOOR: std::time::Duration = std::time::Duration::from_millis(5);

/// RFC 9745 `Deprecation` value for v1 authentication: 2026-01-01T00:00:00Z.
pub const V1_DEPRECATED_SINCE: &str = "@1767225600";

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form `Sunset` takes.
pub fn http_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let day = match t.weekday() {
        time::Weekday::Monday => "Mon",
        time::Weekday::Tuesday => "Tue",
        time::Weekday::Wednesday => "Wed",
        time::Weekday::Thursday => "Thu",
        time::Weekday::Friday => "Fri",
        time::Weekday::Saturday => "Sat",
        time::Weekday::Sunday => "Sun",
    };
    let month = &format!("{:?}", t.month())[..3];
    format!(
        "{day}, {:02} {month} {} {:02}:{:02}:{:02} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// What one authentication attempt came to: the `result` label of `nbtoken_auth_total`,
/// the `result` field of the decision's log line, and what forward-auth's status is chosen by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Authenticated.
    Ok,
    /// No credentials (no `Authorization` header, or another scheme than `Token`/`Bearer`).
    Anonymous,
    /// The header could not be parsed (or was sent twice).
    Malformed,
    /// A v1 token under the `deny` policy.
    V1Denied,
    /// The client or key has used up its failure budget.
    RateLimited,
    /// No token matches.
    Invalid,
    /// The client address is not among the token's allowed networks (or is unknown).
    IpDenied,
    /// The token is disabled.
    Disabled,
    /// The token has expired.
    Expired,
    /// The token's owner is inactive.
    UserInactive,
    /// A write with a read-only token.
    WriteDenied,
    /// v2 tokens cannot be verified: no pepper is configured.
    PeppersMissing,
    /// The token could not be looked up.
    StoreError,
}

impl Outcome {
    /// Every outcome, in declaration order (`ALL[o as usize] == o`).
    pub const ALL: [Outcome; 13] = [
        Outcome::Ok,
        Outcome::Anonymous,
        Outcome::Malformed,
        Outcome::V1Denied,
        Outcome::RateLimited,
        Outcome::Invalid,
        Outcome::IpDenied,
        Outcome::Disabled,
        Outcome::Expired,
        Outcome::UserInactive,
        Outcome::WriteDenied,
        Outcome::PeppersMissing,
        Outcome::StoreError,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Anonymous => "anonymous",
            Outcome::Malformed => "malformed",
            Outcome::V1Denied => "v1_denied",
            Outcome::RateLimited => "rate_limited",
            Outcome::Invalid => "invalid",
            Outcome::IpDenied => "ip_denied",
            Outcome::Disabled => "disabled",
            Outcome::Expired => "expired",
            Outcome::UserInactive => "user_inactive",
            Outcome::WriteDenied => "write_denied",
            Outcome::PeppersMissing => "peppers_missing",
            Outcome::StoreError => "store_error",
        }
    }

    fn of(denial: &Denial) -> Self {
        match denial {
            Denial::InvalidToken(_) => Outcome::Invalid,
            Denial::PeppersMissing => Outcome::PeppersMissing,
            Denial::ClientIpUnknown | Denial::IpNotPermitted(_) => Outcome::IpDenied,
            Denial::Disabled => Outcome::Disabled,
            Denial::Expired => Outcome::Expired,
            Denial::UserInactive => Outcome::UserInactive,
            Denial::WriteNotPermitted => Outcome::WriteDenied,
            // A reason added to the core later is still a refusal.
            _ => Outcome::Invalid,
        }
    }

    fn of_header(refusal: &HeaderRefusal) -> Self {
        match refusal {
            HeaderRefusal::V1Denied { .. } => Outcome::V1Denied,
            // A doubled header, one that cannot be parsed, or a reason added to the core later.
            _ => Outcome::Malformed,
        }
    }
}

/// A refused request: why, and NetBox's answer (status and JSON body).
#[derive(Debug)]
pub struct Refusal {
    /// Why.
    pub outcome: Outcome,
    /// The answer the API gives.
    pub error: ApiError,
}

impl Refusal {
    fn new(outcome: Outcome, error: ApiError) -> Self {
        Self { outcome, error }
    }

    /// The client or the key has used up its failure budget: 429 with `Retry-After`.
    fn limited(wait: std::time::Duration) -> Self {
        Self::new(Outcome::RateLimited, ApiError::too_many_failures(wait))
    }
}

/// The API's route layer: authenticates every `/api/` request, or refuses it.
#[derive(Clone)]
pub struct AuthLayer(pub Arc<AppState>);

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Authenticated<S> {
        Authenticated { state: self.0.clone(), inner }
    }
}

/// A route behind [`AuthLayer`]: the request reaches it anonymous or with its [`Principal`]
/// in the extensions, or not at all.
#[derive(Clone)]
pub struct Authenticated<S> {
    state: Arc<AppState>,
    inner: S,
}

impl<S> Service<Request> for Authenticated<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AuthFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> AuthFuture<S::Future> {
        let client_ip = match Caller::of(req.extensions()) {
            Ok((_, ip)) => ip,
            Err(e) => return AuthFuture::answer(e.into_response()),
        };
        let access = Access::for_route(req.method().as_str(), req.uri().path());
        let state = &self.state;
        match Attempt::begin(state, client_ip, access, req.headers()) {
            // Decided from memory, with nothing to add to the response (every request with a
            // cached v2 token): the route is called here, and its future is the answer's.
            Attempt::Decided(d) if !d.needs_floor() && !d.deprecates(&state.config) => {
                match d.record(state) {
                    Ok(principal) => {
                        if let Some(p) = principal {
                            req.extensions_mut().insert(p);
                        }
                        AuthFuture::Route { future: self.inner.call(req) }
                    }
                    Err(refusal) => AuthFuture::answer(refusal.error.into_response()),
                }
            }
            attempt => {
                // The route is called after an await: the service that was made ready goes
                // with the request, a clone stays for the next one.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let state = state.clone();
                AuthFuture::Boxed {
                    future: Box::pin(async move {
                        match attempt.decided(&state, req.headers()).await.finish(&state).await {
                            Ok(None) => inner.call(req).await,
                            Ok(Some(principal)) => {
                                let version = principal.version;
                                req.extensions_mut().insert(principal);
                                let mut resp = inner.call(req).await?;
                                deprecation_headers(&state.config, version, resp.headers_mut());
                                Ok(resp)
                            }
                            Err(refusal) => Ok(refusal.error.into_response()),
                        }
                    }),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`Authenticated`]: the route's own future, a boxed one (the store was
    /// needed, or a refusal must wait, or the response needs headers), or an answer at hand.
    #[project = AuthFutureProj]
    #[allow(missing_docs)] // the variants say what their one field is
    pub enum AuthFuture<F> {
        /// The route's future.
        Route { #[pin] future: F },
        /// Authentication, then the route.
        Boxed { future: BoxFuture },
        /// Refused at once.
        Answer { #[pin] future: std::future::Ready<Result<Response, Infallible>> },
    }
}

impl<F> AuthFuture<F> {
    fn answer(response: Response) -> Self {
        AuthFuture::Answer { future: std::future::ready(Ok(response)) }
    }
}

impl<F: std::future::Future<Output = Result<Response, Infallible>>> std::future::Future for AuthFuture<F> {
    type Output = Result<Response, Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.project() {
            AuthFutureProj::Route { future } => future.poll(cx),
            AuthFutureProj::Boxed { future } => future.as_mut().poll(cx),
            // Polled again after it answered: an empty 500, never a panic.
            AuthFutureProj::Answer { future } => future.poll(cx),
        }
    }
}

/// Under the `warn` policy, announces on a v1-authenticated response that v1 is deprecated
/// (RFC 9745 `Deprecation`) and, if the operator has set a date, when it stops working (RFC 8594 `Sunset`).
pub fn deprecation_headers(config: &crate::Config, version: TokenVersion, headers: &mut HeaderMap) {
    if !config.v1_policy.warns(version) {
        return;
    }
    headers.insert("deprecation", HeaderValue::from_static(V1_DEPRECATED_SINCE));
    if let Some(v) = config.v1_sunset.and_then(|t| HeaderValue::from_str(&http_date(t)).ok()) {
        headers.insert("sunset", v);
    }
}

/// Authenticates the `Authorization` header of a request from `client_ip` that needs `access`.
///
/// The one authentication path, for the API middleware and forward-auth alike: failure
/// budgets, the v1 policy, the cache, the core's decision and the `last_used` write all
/// happen here. `Ok(None)` is an anonymous request. Each call is counted in the metrics and
/// logged as one line at debug level (never with the token).
pub async fn authenticate(
    state: &AppState,
    client_ip: IpAddr,
    access: Access,
    headers: &HeaderMap,
) -> Result<Option<Principal>, Refusal> {
    Attempt::begin(state, client_ip, access, headers).decided(state, headers).await.finish(state).await
}

/// An authentication under way: decided from memory alone (the header, the failure budgets
/// and a cached row; every request with a cached, valid token), or waiting for the store.
/// [`AuthLayer`] serves a request decided from memory without a future of its own.
enum Attempt {
    Decided(Decided),
    NeedsStore(NeedsStore),
}

/// A decision, not yet counted and logged.
struct Decided {
    result: Result<Option<Principal>, Refusal>,
    about: About,
}

/// What is known of the attempt beside the decision, for the floor, the metrics and the log.
struct About {
    started: Instant,
    /// The time the decision is made for (expiry, `last_used`).
    now: OffsetDateTime,
    client_ip: IpAddr,
    access: Access,
    seen: Seen,
}

/// A credential whose row must be read from the store. (The credential itself is read from
/// the headers again: it is held in place, in the request, which the route receives.)
struct NeedsStore {
    /// Where the row is cached (`None`: a v2 key that cannot exist, so nothing is read).
    cache_key: Option<CacheKey>,
    /// The cached row refused the credential: confirm that against the store.
    confirm: bool,
    about: About,
}

impl Attempt {
    /// Everything that needs no I/O: the header stage, the failure budgets, the cache and, on
    /// a cached row, the decision.
    fn begin(state: &AppState, client_ip: IpAddr, access: Access, headers: &HeaderMap) -> Attempt {
        let (started, now) = (Instant::now(), OffsetDateTime::now_utc());
        let mut about = About { started, now, client_ip, access, seen: Seen::default() };
        let decided = |result, about| Attempt::Decided(Decided { result, about });
        let presented = match read_credential(state, client_ip, headers, &mut about.seen) {
            Ok(Some(p)) => p,
            Ok(None) => return decided(Ok(None), about),
            Err(refusal) => return decided(Err(refusal), about),
        };
        let cache_key = match presented.credential() {
            Credential::V1 { plaintext } => Some(CacheKey::v1(plaintext.expose())),
            Credential::V2 { key, .. } => CacheKey::v2(key),
        };
        let cached = cache_key.as_ref().and_then(|k| {
            let row = state.cache.get(k);
            state.metrics.cache(row.is_some());
            row
        });
        if let Some(row) = cached {
            let decision = verify(state, presented.credential(), Some(&row), &about);
            // A refusal costs the same whether the key exists or not (SECURITY.md, "Timing"): it
            // is never answered from the cache alone. A wrong secret on a cached row is
            // confirmed against the store, as an unknown key is looked up there.
            if !matches!(decision, Err(Denial::InvalidToken(_))) {
                let result =
                    conclude(state, &presented, decision, Some(row), cache_key.as_ref(), headers, &mut about);
                return decided(result, about);
            }
            return Attempt::NeedsStore(NeedsStore { cache_key, confirm: true, about });
        }
        Attempt::NeedsStore(NeedsStore { cache_key, confirm: false, about })
    }

    /// The decision: at hand, or once the store has answered.
    async fn decided(self, state: &AppState, headers: &HeaderMap) -> Decided {
        match self {
            Attempt::Decided(d) => d,
            Attempt::NeedsStore(pending) => pending.decide(state, headers).await,
        }
    }
}

impl NeedsStore {
    /// Reads the row and decides.
    async fn decide(self, state: &AppState, headers: &HeaderMap) -> Decided {
        let NeedsStore { cache_key, confirm, mut about } = self;
        let HeaderDecision::Credential(presented) = authorization(state, headers) else {
            // The headers `begin` read a credential from, read the same way: never happens.
            let error = ApiError::detail(StatusCode::FORBIDDEN, nbtoken_core::header::MSG_WRONG_FORM);
            return Decided { result: Err(Refusal::new(Outcome::Malformed, error)), about };
        };
        let generation = state.cache.generation();
        let row = match &cache_key {
            Some(_) => match read_row(state, presented.credential()).await {
                Ok(row) => row.map(Arc::new),
                Err(e) => {
                    let result = Err(Refusal::new(Outcome::StoreError, ApiError::from(e)));
                    return Decided { result, about };
                }
            },
            None => None,
        };
        let decision = verify(state, presented.credential(), row.as_deref(), &about);
        if matches!(decision, Err(Denial::InvalidToken(_))) {
            // A failed verification never warms the cache; a store read that ends in a refusal
            // adds the HMAC a confirmation would have cost. (Negative caching would not do: the
            // cache is shared with the key's owner, so an unknown key's first probe would still
            // be slower than an active key's.)
            if let (false, Credential::V2 { secret, .. }) = (confirm, *presented.credential()) {
                if let Ok(p) = state.config.peppers.current() {
                    std::hint::black_box(p.digest(secret.expose()));
                }
            }
        } else if let (Some(k), Some(r)) = (&cache_key, &row) {
            // A row read after a cached one refused the credential was stale (a secret rotated
            // elsewhere) and replaces it.
            state.cache.insert(*k, r.clone(), generation);
        }
        let result = conclude(state, &presented, decision, row, cache_key.as_ref(), headers, &mut about);
        Decided { result, about }
    }
}

impl Decided {
    /// Waits out the refusal floor if there is one, then counts and logs the decision.
    async fn finish(self, state: &AppState) -> Result<Option<Principal>, Refusal> {
        if self.needs_floor() {
            // See REFUSAL_FLOOR. A timer, not work: a waiting refusal costs no CPU.
            tokio::time::sleep_until((self.about.started + REFUSAL_FLOOR).into()).await;
        }
        self.record(state)
    }

    /// Whether a granted v1 token's response gets deprecation headers ([`deprecation_headers`]).
    fn deprecates(&self, config: &crate::Config) -> bool {
        matches!(&self.result, Ok(Some(p)) if config.v1_policy.warns(p.version))
    }

    /// Whether the answer must wait for [`REFUSAL_FLOOR`].
    fn needs_floor(&self) -> bool {
        matches!(&self.result, Err(r) if r.outcome == Outcome::Invalid)
    }

    /// Counts the decision in the metrics and logs it as one line at debug level.
    fn record(self, state: &AppState) -> Result<Option<Principal>, Refusal> {
        let Decided { result, about } = self;
        let took = about.started.elapsed();
        let (outcome, detail) = match &result {
            Ok(Some(_)) => (Outcome::Ok, None),
            Ok(None) => (Outcome::Anonymous, None),
            Err(r) => (r.outcome, r.error.message()),
        };
        let seen = &about.seen;
        state.metrics.auth(outcome, seen.version, seen.key.as_deref(), took);
        let user_id = result.as_ref().ok().and_then(|p| p.as_ref().map(|p| p.user_id));
        tracing::debug!(
            result = outcome.as_str(),
            version = seen.version.map(|v| v.as_u8()),
            token_id = seen.token_id,
            user_id,
            client_ip = %about.client_ip,
            access = if about.access == Access::Write { "write" } else { "read" },
            detail,
            micros = took.as_micros() as u64,
            "authentication decision"
        );
        result
    }
}

/// What was learnt about the credential on the way to a decision, for metrics and the log.
#[derive(Default)]
struct Seen {
    version: Option<TokenVersion>,
    token_id: Option<i64>,
    /// The v2 key of a token that exists.
    key: Option<String>,
}

/// Core's row stage for `credential` against `row`.
fn verify(
    state: &AppState,
    credential: &Credential<'_>,
    row: Option<&TokenRecord>,
    about: &About,
) -> Result<nbtoken_core::Verified, Denial> {
    decide(&VerifyInput {
        credential,
        token: row.map(|r| &r.token),
        user_active: row.is_some_and(|r| r.user_active),
        access: about.access,
        client_ip: Some(about.client_ip),
        now: about.now,
        peppers: &state.config.peppers,
        // A store that writes no re-hash (NetBox's without NBTOKEN_REHASH=on) is asked for none.
        want_rehash: state.store.rehashes(),
    })
}

/// The decision's consequences: on success the v1 count, the `last_used` write and the
/// principal; on a refusal the failure budgets and NetBox's answer.
fn conclude(
    state: &AppState,
    presented: &Presented<'_>,
    decision: Result<nbtoken_core::Verified, Denial>,
    row: Option<Arc<TokenRecord>>,
    cache_key: Option<&CacheKey>,
    headers: &HeaderMap,
    about: &mut About,
) -> Result<Option<Principal>, Refusal> {
    let (client_ip, now, seen) = (about.client_ip, about.now, &mut about.seen);
    if let Some(r) = &row {
        seen.token_id = Some(r.token.id);
        // Only a metrics label needs the key, and only when the operator turned those on.
        if let (true, nbtoken_core::StoredCredential::V2 { key, .. }) =
            (state.config.metrics_token_keys, &r.token.credential)
        {
            seen.key = Some(key.as_str().to_owned());
        }
    }
    let (v, row) = match (decision, row) {
        (Ok(v), Some(row)) => (v, row),
        // The core grants nothing without a row.
        (decision, _) => {
            let denial = decision.err().unwrap_or(Denial::InvalidToken(presented.version()));
            let status = match denial {
                Denial::PeppersMissing => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::FORBIDDEN,
            };
            if matches!(denial, Denial::InvalidToken(_)) {
                // An unknown key is not a token that exists: it must not become a metrics label.
                seen.key = None;
                seen.token_id = None;
                if let Some(wait) = state.limiter.record_failure(client_ip, presented.budget_key()) {
                    return Err(Refusal::limited(wait));
                }
            }
            let hint = presented.hint_for(&denial).map(|h| h.to_string());
            return Err(Refusal::new(
                Outcome::of(&denial),
                ApiError::with_hint(status, denial.detail(), hint),
            ));
        }
    };
    if v.version == TokenVersion::V1 {
        state.touches.count_v1_use(v.token_id, now);
    }
    if state.config.v1_policy.warns(v.version) {
        tracing::info!(token_id = v.token_id, user_id = v.user_id, %client_ip, "v1 token used; migrate it to v2");
    }
    let rehash = v.rehash;
    let due = (v.touch_last_used || rehash.is_some()) && state.touches.due(v.token_id, now, rehash.is_some());
    if due {
        // The digest the request verified: a guarded re-hash replaces only that one.
        let rehash_from = match (&rehash, &row.token.credential) {
            (Some(_), nbtoken_core::StoredCredential::V2 { digest, .. }) => Some(digest.clone()),
            _ => None,
        };
        // Cut to what a store keeps, so a queue of touches cannot hold huge headers.
        let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| {
            ua.char_indices().nth(nbtoken_store::USER_AGENT_MAX).map_or(ua, |(end, _)| &ua[..end]).to_owned()
        });
        state.touches.queue(Touch {
            token_id: v.token_id,
            at: now,
            ip: Some(client_ip),
            rehash,
            rehash_from,
            user_agent,
        });
        // The cached row learns the use it queued, so the requests after this one, until the
        // next is due, do not ask the write queue again.
        if let Some(k) = cache_key {
            state.cache.note_used(k, now);
        }
    }
    Ok(Some(Principal {
        user_id: v.user_id,
        token_id: v.token_id,
        version: v.version,
        write_enabled: v.write_enabled,
        row,
    }))
}

/// Core's header stage of a request's `Authorization` headers.
fn authorization<'h>(state: &AppState, headers: &'h HeaderMap) -> HeaderDecision<'h> {
    let values = headers.get_all(header::AUTHORIZATION).iter().map(HeaderValue::as_bytes);
    read_header(values, state.config.v1_policy)
}

/// Core's header stage, and the failure budgets around it (the client's, and a v2 key's): the
/// credential to look up, `None` for an anonymous request, or the refusal.
fn read_credential<'h>(
    state: &AppState,
    client_ip: IpAddr,
    headers: &'h HeaderMap,
    seen: &mut Seen,
) -> Result<Option<Presented<'h>>, Refusal> {
    let decision = authorization(state, headers);
    if let HeaderDecision::Credential(p) = &decision {
        seen.version = Some(p.version());
    }
    if decision.consults_budget() {
        if let Some(wait) = state.limiter.blocked_for(client_ip, decision.budget_key()) {
            return Err(Refusal::limited(wait));
        }
    }
    match decision {
        HeaderDecision::Credential(p) => Ok(Some(p)),
        HeaderDecision::Refused(r) => {
            seen.version = r.version();
            if r.counts_as_failure() {
                tracing::debug!(detail = r.detail(), hint = ?r.hint(), %client_ip, "authorization header refused");
                if let Some(wait) = state.limiter.record_failure(client_ip, None) {
                    return Err(Refusal::limited(wait));
                }
            }
            let error =
                ApiError::with_hint(StatusCode::FORBIDDEN, r.detail(), r.hint().map(|h| h.to_string()));
            Err(Refusal::new(Outcome::of_header(&r), error))
        }
        HeaderDecision::Absent | HeaderDecision::OtherScheme => Ok(None),
    }
}

/// The row `credential` names, read from the store (the cache is [`Attempt::begin`]'s business).
async fn read_row(state: &AppState, credential: &Credential<'_>) -> Result<Option<TokenRecord>, StoreError> {
    match credential {
        Credential::V1 { plaintext } => state.store.token_by_plaintext(plaintext.expose()).await,
        Credential::V2 { key, .. } => state.store.token_by_key(key).await,
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or_else(ApiError::not_authenticated)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(datetime!(1994-11-06 08:49:37 UTC)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(datetime!(2027-06-30 00:00:00 +02:00)), "Tue, 29 Jun 2027 22:00:00 GMT");
    }
}
