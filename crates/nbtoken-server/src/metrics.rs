//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format.
//!
//! No label carries a secret. A token key is public, but it names a
//! credential, so it becomes a label only when the operator turns on
//! [`crate::Config::metrics_token_keys`], and only for tokens that exist: a
//! client spraying made-up keys cannot grow the set of series.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use nbtoken_core::TokenVersion;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::auth::Outcome;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

/// How many [`Outcome`]s there are (the rows of [`Metrics::auth_series`]).
const OUTCOMES: usize = Outcome::ALL.len();

/// The `version` label by token version (none, 1, 2).
const VERSIONS: [&str; 3] = ["none", "1", "2"];

/// Upper bounds of the latency buckets, in seconds: 50 µs … 1.6 s, doubling (a cached
/// verification takes microseconds, a database round trip milliseconds); then `+Inf`.
const LATENCY_BOUNDS: [f64; 16] = {
    let mut bounds = [0.000_05; 16];
    let mut i = 1;
    while i < bounds.len() {
        bounds[i] = bounds[i - 1] * 2.0;
        i += 1;
    }
    bounds
};

/// A latency histogram that records without a lock: one atomic add for the bucket, one
/// for the sum. (prometheus-client's `Histogram` takes a mutex per observation, which
/// every request and worker thread would share.) The count is the buckets' total, read
/// when the metrics are scraped.
#[derive(Clone, Debug, Default)]
pub struct Latency(Arc<LatencyCounts>);

#[derive(Debug, Default)]
struct LatencyCounts {
    /// Observations per bucket of [`LATENCY_BOUNDS`], then `+Inf`, not cumulative.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Latency {
    /// Records one duration.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket =
            LATENCY_BOUNDS.iter().position(|upper| seconds <= *upper).unwrap_or(LATENCY_BOUNDS.len());
        self.0.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let bounds = LATENCY_BOUNDS.iter().copied().chain(std::iter::once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> =
            bounds.zip(self.0.buckets.iter().map(|b| b.load(Ordering::Relaxed))).collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Every metric of one server instance.
pub struct Metrics {
    registry: Registry,
    auth: Family<Labels, Counter>,
    v1_uses: Counter,
    verify_seconds: Latency,
    request_seconds: Family<Labels, Latency>,
    cache: Family<Labels, Counter>,
    store_errors: Counter,
    rate_limited: Counter,
    last_used_writes: Counter,
    token_keys: bool,
    // Handles to series already created, so the per-request calls neither build label
    // sets nor allocate: by outcome and version (none, 1, 2), by cache result, by route.
    auth_series: [[OnceLock<Counter>; 3]; OUTCOMES],
    cache_series: [OnceLock<Counter>; 2],
    route_series: RwLock<HashMap<String, Latency>>,
}

impl Metrics {
    /// Registers every metric; `token_keys` adds a `key` label to authentication outcomes of existing v2 tokens.
    pub fn new(token_keys: bool) -> Self {
        let mut registry = Registry::with_prefix("nbtoken");
        let auth = Family::<Labels, Counter>::default();
        registry.register(
            "auth",
            "Authentication decisions by result (ok, invalid, disabled, expired, ip_denied, user_inactive, write_denied, malformed, v1_denied, rate_limited, peppers_missing, store_error, anonymous) and token version",
            auth.clone(),
        );
        let v1_uses = Counter::default();
        registry.register("v1_uses", "Successful authentications with a v1 token", v1_uses.clone());
        let verify_seconds = Latency::default();
        registry.register(
            "verify_seconds",
            "Time taken by one authentication decision, token lookup included",
            verify_seconds.clone(),
        );
        let request_seconds = Family::<Labels, Latency>::default();
        registry.register(
            "request_seconds",
            "Time taken to answer a request, by route template",
            request_seconds.clone(),
        );
        let cache = Family::<Labels, Counter>::default();
        registry.register("cache", "Token cache lookups by result (hit, miss)", cache.clone());
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Database operations that failed (unreachable or erroring)",
            store_errors.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429 because a client or key used up its failure budget",
            rate_limited.clone(),
        );
        let last_used_writes = Counter::default();
        registry.register(
            "last_used_writes",
            "Token rows whose last_used (and any re-hash) this instance wrote to the store",
            last_used_writes.clone(),
        );
        Self {
            registry,
            auth,
            v1_uses,
            verify_seconds,
            request_seconds,
            cache,
            store_errors,
            rate_limited,
            last_used_writes,
            token_keys,
            auth_series: Default::default(),
            cache_series: Default::default(),
            route_series: RwLock::new(HashMap::new()),
        }
    }

    /// Counts one authentication decision and how long it took. `key` is the v2 key of a token
    /// that exists; it is used only when token keys are turned on.
    pub fn auth(&self, outcome: Outcome, version: Option<TokenVersion>, key: Option<&str>, took: Duration) {
        let v = version.map_or(0, |v| usize::from(v.as_u8()));
        match (self.token_keys, key) {
            (true, Some(k)) => {
                let labels: Labels = vec![
                    ("result", outcome.as_str().to_owned()),
                    ("version", VERSIONS[v].to_owned()),
                    ("key", k.to_owned()),
                ];
                self.auth.get_or_create(&labels).inc();
            }
            _ => {
                self.auth_series[outcome as usize][v]
                    .get_or_init(|| {
                        let labels: Labels = vec![
                            ("result", outcome.as_str().to_owned()),
                            ("version", VERSIONS[v].to_owned()),
                        ];
                        self.auth.get_or_create(&labels).clone()
                    })
                    .inc();
            }
        }
        self.verify_seconds.observe(took);
        if outcome == Outcome::Ok && version == Some(TokenVersion::V1) {
            self.v1_uses.inc();
        }
    }

    /// Records the latency of one request; `route` is the matched route template, never the raw path.
    pub fn request(&self, route: &str, took: Duration) {
        let known = self.route_series.read().unwrap_or_else(|p| p.into_inner()).get(route).cloned();
        let histogram = known.unwrap_or_else(|| {
            let h = self.request_seconds.get_or_create(&vec![("route", route.to_owned())]).clone();
            self.route_series.write().unwrap_or_else(|p| p.into_inner()).insert(route.to_owned(), h.clone());
            h
        });
        histogram.observe(took);
    }

    /// Counts one token cache lookup.
    pub fn cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache_series[usize::from(hit)]
            .get_or_init(|| self.cache.get_or_create(&vec![("result", result.to_owned())]).clone())
            .inc();
    }

    /// Counts one failed database operation.
    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// Counts one request refused by the failure limiter.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// Counts token rows whose `last_used` was written.
    pub fn last_used_writes(&self, rows: usize) {
        self.last_used_writes.inc_by(u64::try_from(rows).unwrap_or(u64::MAX));
    }

    /// Every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_histograms_read_as_prometheus_clients_own() {
        use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
        let ours = Latency::default();
        let theirs = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        // Below the first bound, on a bound, between bounds, past the last one.
        for micros in [1, 50, 51, 99, 100, 750, 12_345, 1_638_400, 9_000_000] {
            ours.observe(Duration::from_micros(micros));
            theirs.observe(Duration::from_micros(micros).as_secs_f64());
        }
        let text = |metric: Box<dyn FnOnce(&mut Registry)>| {
            let mut registry = Registry::default();
            metric(&mut registry);
            let mut out = String::new();
            encode(&mut out, &registry).unwrap();
            out
        };
        let ours = text(Box::new(move |r| r.register("latency", "Latency", ours)));
        let theirs = text(Box::new(move |r| r.register("latency", "Latency", theirs)));
        // Every line alike but the sum, which theirs adds up in floating point and ours in
        // whole nanoseconds: equal to a nanosecond.
        let (ours_sum, ours_rest): (Vec<&str>, Vec<&str>) =
            ours.lines().partition(|l| l.starts_with("latency_sum "));
        let (theirs_sum, theirs_rest): (Vec<&str>, Vec<&str>) =
            theirs.lines().partition(|l| l.starts_with("latency_sum "));
        assert_eq!(ours_rest, theirs_rest);
        let sum = |lines: &[&str]| lines[0]["latency_sum ".len()..].parse::<f64>().unwrap();
        assert!((sum(&ours_sum) - sum(&theirs_sum)).abs() < 1e-9, "{ours_sum:?} {theirs_sum:?}");
        assert!(
            ours.contains("latency_count 9\n") && ours.contains("latency_bucket{le=\"+Inf\"} 9\n"),
            "{ours}"
        );
    }

    #[test]
    fn keys_are_labels_only_when_turned_on() {
        let off = Metrics::new(false);
        off.auth(Outcome::Ok, Some(TokenVersion::V2), Some("AbCdEfGhIjKl"), Duration::from_micros(80));
        let text = off.encode();
        assert!(text.contains(r#"nbtoken_auth_total{result="ok",version="2"} 1"#), "{text}");
        assert!(!text.contains("AbCdEfGhIjKl"), "{text}");

        let on = Metrics::new(true);
        on.auth(Outcome::Disabled, Some(TokenVersion::V2), Some("AbCdEfGhIjKl"), Duration::from_micros(80));
        on.auth(Outcome::Malformed, None, None, Duration::from_micros(5));
        let text = on.encode();
        assert!(
            text.contains(r#"nbtoken_auth_total{result="disabled",version="2",key="AbCdEfGhIjKl"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"nbtoken_auth_total{result="malformed",version="none"} 1"#), "{text}");
        assert!(text.contains("nbtoken_verify_seconds_count 2"), "{text}");
    }

    #[test]
    fn outcomes_index_their_own_row() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "{o:?}");
        }
        let labels: std::collections::HashSet<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(labels.len(), Outcome::ALL.len());
    }

    #[test]
    fn repeated_series_accumulate() {
        let m = Metrics::new(false);
        for _ in 0..3 {
            m.auth(Outcome::Invalid, Some(TokenVersion::V2), Some("AbCdEfGhIjKl"), Duration::ZERO);
            m.request("/api/status/", Duration::from_micros(70));
            m.cache(true);
        }
        m.request("/api/users/tokens/{id}/", Duration::from_micros(70));
        m.cache(false);
        m.last_used_writes(2);
        let text = m.encode();
        assert!(text.contains(r#"nbtoken_auth_total{result="invalid",version="2"} 3"#), "{text}");
        assert!(text.contains(r#"nbtoken_request_seconds_count{route="/api/status/"} 3"#), "{text}");
        assert!(
            text.contains(r#"nbtoken_request_seconds_count{route="/api/users/tokens/{id}/"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"nbtoken_cache_total{result="hit"} 3"#), "{text}");
        assert!(text.contains(r#"nbtoken_cache_total{result="miss"} 1"#), "{text}");
        assert!(text.contains("nbtoken_last_used_writes_total 2"), "{text}");
    }

    #[test]
    fn v1_uses_count_only_successes() {
        let m = Metrics::new(false);
        m.auth(Outcome::Ok, Some(TokenVersion::V1), None, Duration::ZERO);
        m.auth(Outcome::Invalid, Some(TokenVersion::V1), None, Duration::ZERO);
        m.auth(Outcome::Ok, Some(TokenVersion::V2), None, Duration::ZERO);
        assert!(m.encode().contains("nbtoken_v1_uses_total 1"));
    }
}
