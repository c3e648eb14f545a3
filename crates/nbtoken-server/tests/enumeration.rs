//! Key existence does not leak through the cache: an existing key with a wrong secret takes the
//! same path as a key no token has (a store read, never an answer from the cache alone), and
//! neither is answered before `REFUSAL_FLOOR`, so the two cost the same (SECURITY.md, "Timing";
//! the timing itself is measured in `bench/timing.sh`: the only clock here is the floor's lower
//! bound, which a timer guarantees).
//!
//! The regression: a row was cached even when the secret was wrong, so from the second attempt
//! on an existing key answered from memory (about 247 µs median) and a missing one from the
//! database (about 310 µs).

#![allow(clippy::unwrap_used, missing_docs)]

use crate::harness;

on_every_backend!(
    a_failed_verification_does_not_warm_the_cache,
    a_wrong_secret_on_a_cached_row_is_confirmed_by_the_store,
    refusals_of_wrong_and_unknown_tokens_are_not_answered_before_the_floor
);

use std::time::Duration;

use harness::{Backend, Server};
use nbtoken_server::limit::LimitConfig;
use reqwest::Method;
use serde_json::json;

fn counter(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

async fn cache_counts(s: &Server) -> (f64, f64) {
    let text = s.client.get(format!("{}/metrics", s.base())).send().await.unwrap().text().await.unwrap();
    (
        counter(&text, r#"nbtoken_cache_total{result="hit"}"#),
        counter(&text, r#"nbtoken_cache_total{result="miss"}"#),
    )
}

fn long_cache_no_limits(c: &mut nbtoken_server::Config) {
    c.cache_ttl = Duration::from_secs(300);
    c.limits = LimitConfig { per_ip_per_minute: 0, per_key_per_minute: 0 };
}

async fn a_failed_verification_does_not_warm_the_cache(b: Backend) {
    let s = Server::start_with(b, long_cache_no_limits).await;
    let t = s.create_token(json!({"description": "target"})).await;
    let wrong = format!("Bearer nbt_{}.{}", t.key, "x".repeat(40));
    let unknown = format!("Bearer nbt_Zz9Unknown00.{}", "x".repeat(40));
    // The same number of cache misses, and no hit, for a key that exists and one that does not.
    for header in [&wrong, &unknown] {
        let before = cache_counts(&s).await;
        for _ in 0..5 {
            let (st, body) = s.raw(Method::GET, "/api/status/", Some(header.as_bytes()), None, &[]).await;
            assert_eq!((st, body["detail"].as_str()), (403, Some("Invalid v2 token")));
        }
        let after = cache_counts(&s).await;
        assert_eq!((after.0 - before.0, after.1 - before.1), (0.0, 5.0), "{header}: (hits, misses)");
    }
    // A successful verification still fills the cache: one miss, then hits.
    let before = cache_counts(&s).await;
    for _ in 0..3 {
        let (st, _) = s.raw(Method::GET, "/api/status/", Some(&t.bearer()), None, &[]).await;
        assert_eq!(st, 200);
    }
    let after = cache_counts(&s).await;
    assert_eq!((after.0 - before.0, after.1 - before.1), (2.0, 1.0), "valid token: (hits, misses)");
    // With the row cached, a wrong secret still reads the store (a miss is not counted for it, but
    // nothing is added to the cache either), and the valid token keeps working from the cache.
    let (st, _) = s.raw(Method::GET, "/api/status/", Some(wrong.as_bytes()), None, &[]).await;
    assert_eq!(st, 403);
    let (st, _) = s.raw(Method::GET, "/api/status/", Some(&t.bearer()), None, &[]).await;
    assert_eq!(st, 200);
}

async fn a_wrong_secret_on_a_cached_row_is_confirmed_by_the_store(b: Backend) {
    let s = Server::start_with(b, long_cache_no_limits).await;
    let t = s.create_token(json!({"description": "target"})).await;
    let (st, _) = s.raw(Method::GET, "/api/status/", Some(&t.bearer()), None, &[]).await;
    assert_eq!(st, 200, "the row is now cached");
    // A new secret written behind the server's back (as the CLI does on SQLite), with no overlap.
    let peppers = harness::peppers();
    let (_, rotated) = harness::ops(&s.store, &peppers)
        .rotate_token(&nbtoken_manage::Actor::Operator, t.id, time::Duration::ZERO)
        .await
        .unwrap();
    let new = format!("Bearer {}", rotated.token.expose());
    // The cached row says the new secret is wrong; a refusal is only ever given after the store
    // has been read, and the store knows the new secret.
    let (st, body) = s.raw(Method::GET, "/api/status/", Some(new.as_bytes()), None, &[]).await;
    assert_eq!(st, 200, "{body}");
    // The fresh row replaced the cached one: the old secret is refused at once.
    let (st, _) = s.raw(Method::GET, "/api/status/", Some(&t.bearer()), None, &[]).await;
    assert_eq!(st, 403);
    let (st, _) = s.raw(Method::GET, "/api/status/", Some(new.as_bytes()), None, &[]).await;
    assert_eq!(st, 200);
}

async fn refusals_of_wrong_and_unknown_tokens_are_not_answered_before_the_floor(b: Backend) {
    let s = Server::start_with(b, long_cache_no_limits).await;
    let t = s.create_token(json!({"description": "target"})).await;
    let wrong = format!("Bearer nbt_{}.{}", t.key, "x".repeat(40));
    let unknown = format!("Bearer nbt_Zz9Unknown00.{}", "x".repeat(40));
    let v1 = format!("Token {}", "z".repeat(40));
    for header in [&wrong, &unknown, &v1, &wrong, &unknown] {
        let started = std::time::Instant::now();
        let (st, _) = s.raw(Method::GET, "/api/status/", Some(header.as_bytes()), None, &[]).await;
        assert_eq!(st, 403);
        let took = started.elapsed();
        assert!(took >= nbtoken_server::auth::REFUSAL_FLOOR, "{header}: answered after {took:?}");
    }
}
