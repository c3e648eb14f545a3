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

/// The client address of a request, as [`crate::client_ip`] decided it; in the request extensions.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub std::net::IpAddr);

/// An authenticated caller, placed in the request extensions.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The user.
    pub user_id: i64,
    /// The user's name (shared: each extractor of the principal copies a pointer, not the name).
    pub username: Arc<str>,
    /// The token used.
    pub token_id: i64,
    /// Its version.
    pub version: TokenVersion,
    /// Whether it may write.
    pub write_enabled: bool,
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
/// (and its [`ClientIp`]) in the extensions, or not at all.
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
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> BoxFuture {
        // The route is called after the decision (an await): the service that was made ready
        // goes with the request, a clone stays for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let access = Access::for_route(req.method().as_str(), req.uri().path());
            let client_ip = match Caller::of(req.extensions()) {
                Ok((_, ip)) => ip,
                Err(e) => return Ok(e.into_response()),
            };
            req.extensions_mut().insert(ClientIp(client_ip));
            match authenticate(&state, client_ip, access, req.headers()).await {
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
        })
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
    let started = Instant::now();
    let mut seen = Seen::default();
    let result = check(state, client_ip, access, headers, &mut seen).await;
    let took = started.elapsed();
    if matches!(&result, Err(r) if r.outcome == Outcome::Invalid) {
        // See REFUSAL_FLOOR. A timer, not work: a waiting refusal costs no CPU.
        tokio::time::sleep_until((started + REFUSAL_FLOOR).into()).await;
    }
    let (outcome, detail) = match &result {
        Ok(Some(_)) => (Outcome::Ok, None),
        Ok(None) => (Outcome::Anonymous, None),
        Err(r) => (r.outcome, r.error.message()),
    };
    state.metrics.auth(outcome, seen.version, seen.key.as_deref(), took);
    let user_id = result.as_ref().ok().and_then(|p| p.as_ref().map(|p| p.user_id));
    tracing::debug!(
        result = outcome.as_str(),
        version = seen.version.map(|v| v.as_u8()),
        token_id = seen.token_id,
        user_id,
        %client_ip,
        access = if access == Access::Write { "write" } else { "read" },
        detail,
        micros = took.as_micros() as u64,
        "authentication decision"
    );
    result
}

/// What was learnt about the credential on the way to a decision, for metrics and the log.
#[derive(Default)]
struct Seen {
    version: Option<TokenVersion>,
    token_id: Option<i64>,
    /// The v2 key of a token that exists.
    key: Option<String>,
}

async fn check(
    state: &AppState,
    client_ip: IpAddr,
    access: Access,
    headers: &HeaderMap,
    seen: &mut Seen,
) -> Result<Option<Principal>, Refusal> {
    let Some(presented) = read_credential(state, client_ip, headers, seen)? else { return Ok(None) };
    let credential = presented.credential();
    seen.version = Some(presented.version());
    let limited_key = presented.budget_key();
    if let Some(wait) = state.limiter.blocked_for(client_ip, limited_key) {
        return Err(Refusal::limited(wait));
    }
    let cache_key = match credential {
        Credential::V1 { plaintext } => Some(CacheKey::v1(plaintext.expose())),
        Credential::V2 { key, .. } => CacheKey::v2(key),
    };
    let found = match cache_key {
        Some(k) => lookup(state, k, read_row(state, credential)).await,
        // A key of the wrong shape cannot exist; skip the lookup but not the HMAC.
        None => Ok(Lookup { record: None, cache_key: None, from_cache: false, generation: 0 }),
    }
    .map_err(|e| Refusal::new(Outcome::StoreError, e))?;
    let now = OffsetDateTime::now_utc();
    let verify = |token: Option<&TokenRecord>| {
        decide(&VerifyInput {
            credential,
            token: token.map(|r| &r.token),
            user_active: token.is_some_and(|r| r.user_active),
            access,
            client_ip: Some(client_ip),
            now,
            peppers: &state.config.peppers,
            // A store that writes no re-hash (NetBox's without NBTOKEN_REHASH=on) is asked for none.
            want_rehash: state.store.rehashes(),
        })
    };
    let mut record = found.record;
    let mut decision = verify(record.as_deref());
    // A refusal costs the same whether the key exists or not (SECURITY.md, "Timing"): it is
    // never answered from the cache alone, and a failed verification never warms the cache.
    // A wrong secret on a cached row is confirmed against the store, as an unknown key is
    // looked up there; a store read that ends in a refusal adds the HMAC that confirmation
    // would have cost. (Negative caching would not do: the cache is shared with the key's
    // owner, so an unknown key's first probe would still be slower than an active key's.)
    if matches!(decision, Err(Denial::InvalidToken(_))) {
        if found.from_cache {
            let generation = state.cache.generation();
            let fresh = read_row(state, credential)
                .await
                .map_err(|e| Refusal::new(Outcome::StoreError, ApiError::from(e)))?
                .map(Arc::new);
            decision = verify(fresh.as_deref());
            if decision.is_ok() {
                // The cached row was stale (a secret rotated elsewhere): keep the fresh one.
                if let (Some(k), Some(r)) = (found.cache_key, &fresh) {
                    state.cache.insert(k, r.clone(), generation);
                }
            }
            record = fresh;
        } else if let Credential::V2 { secret, .. } = credential {
            if let Ok(p) = state.config.peppers.current() {
                std::hint::black_box(p.digest(secret.expose()));
            }
        }
    } else if let (false, Some(k), Some(r)) = (found.from_cache, found.cache_key, &record) {
        state.cache.insert(k, r.clone(), found.generation);
    }
    if let Some(r) = &record {
        seen.token_id = Some(r.token.id);
        // Only a metrics label needs the key, and only when the operator turned those on.
        if let (true, nbtoken_core::StoredCredential::V2 { key, .. }) =
            (state.config.metrics_token_keys, &r.token.credential)
        {
            seen.key = Some(key.as_str().to_owned());
        }
    }
    match decision {
        Ok(v) => {
            if v.version == TokenVersion::V1 {
                state.touches.count_v1_use(v.token_id, now);
            }
            if state.config.v1_policy.warns(v.version) {
                tracing::info!(token_id = v.token_id, user_id = v.user_id, %client_ip, "v1 token used; migrate it to v2");
            }
            let rehash = v.rehash;
            let due = (v.touch_last_used || rehash.is_some())
                && state.touches.due(v.token_id, now, rehash.is_some());
            if due {
                // The digest the request verified: a guarded re-hash replaces only that one.
                let rehash_from = match (&rehash, record.as_deref().map(|r| &r.token.credential)) {
                    (Some(_), Some(nbtoken_core::StoredCredential::V2 { digest, .. })) => {
                        Some(digest.clone())
                    }
                    _ => None,
                };
                // Cut to what a store keeps, so a queue of touches cannot hold huge headers.
                let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| {
                    ua.char_indices()
                        .nth(nbtoken_store::USER_AGENT_MAX)
                        .map_or(ua, |(end, _)| &ua[..end])
                        .to_owned()
                });
                state.touches.queue(Touch {
                    token_id: v.token_id,
                    at: now,
                    ip: Some(client_ip),
                    rehash,
                    rehash_from,
                    user_agent,
                });
            }
            Ok(Some(Principal {
                user_id: v.user_id,
                username: record.as_ref().map_or_else(|| Arc::from(""), |r| Arc::from(r.username.as_str())),
                token_id: v.token_id,
                version: v.version,
                write_enabled: v.write_enabled,
            }))
        }
        Err(denial) => {
            let status = match denial {
                Denial::PeppersMissing => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::FORBIDDEN,
            };
            if matches!(denial, Denial::InvalidToken(_)) {
                // An unknown key is not a token that exists: it must not become a metrics label.
                seen.key = None;
                seen.token_id = None;
                if let Some(wait) = state.limiter.record_failure(client_ip, limited_key) {
                    return Err(Refusal::limited(wait));
                }
            }
            let hint = presented.hint_for(&denial).map(|h| h.to_string());
            Err(Refusal::new(Outcome::of(&denial), ApiError::with_hint(status, denial.detail(), hint)))
        }
    }
}

/// Core's header stage, and the failure budget of the client around it: the credential to
/// look up, `None` for an anonymous request, or the refusal.
fn read_credential(
    state: &AppState,
    client_ip: IpAddr,
    headers: &HeaderMap,
    seen: &mut Seen,
) -> Result<Option<Presented>, Refusal> {
    let values = headers.get_all(header::AUTHORIZATION).iter().map(HeaderValue::as_bytes);
    let decision = read_header(values, state.config.v1_policy);
    if decision.consults_budget() {
        if let Some(wait) = state.limiter.blocked_for(client_ip, None) {
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

/// A token row, and where it came from.
struct Lookup {
    record: Option<Arc<TokenRecord>>,
    /// Where the row is cached (`None`: a v2 key that cannot exist).
    cache_key: Option<CacheKey>,
    from_cache: bool,
    /// The cache generation before the store read (see [`crate::cache`]).
    generation: u64,
}

/// The row from the cache, or else from the store. A row read from the store is not cached
/// here: only once it has verified a credential (see [`check`]).
async fn lookup(
    state: &AppState,
    cache_key: CacheKey,
    fetch: impl std::future::Future<Output = Result<Option<TokenRecord>, StoreError>>,
) -> Result<Lookup, ApiError> {
    if let Some(r) = state.cache.get(&cache_key) {
        state.metrics.cache(true);
        return Ok(Lookup { record: Some(r), cache_key: Some(cache_key), from_cache: true, generation: 0 });
    }
    state.metrics.cache(false);
    let generation = state.cache.generation();
    let record = fetch.await?.map(Arc::new);
    Ok(Lookup { record, cache_key: Some(cache_key), from_cache: false, generation })
}

/// The row `credential` names, read from the store (the cache is [`lookup`]'s business).
async fn read_row(state: &AppState, credential: &Credential) -> Result<Option<TokenRecord>, StoreError> {
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
