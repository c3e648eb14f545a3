//! `/metrics`: the counters move with the right labels, and no secret (nor, unless the operator
//! asks, any token key) ever appears in them.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::harness;

use harness::{Backend, Server, PEPPER, V1_PLAIN};
use nbtoken_store::Store;
use reqwest::Method;
use serde_json::json;

async fn scrape(s: &Server) -> String {
    let resp = s.client.get(format!("{}/metrics", s.base())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    resp.text().await.unwrap()
}

/// The value of one sample, `0` when the series does not exist.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Asserts `series` has moved by exactly `delta` between two scrapes.
fn moved(before: &str, after: &str, series: &str, delta: f64) {
    let (a, b) = (value(before, series), value(after, series));
    assert_eq!(b - a, delta, "{series}: {a} → {b}\n{after}");
}

#[tokio::test]
async fn counters_move_with_the_right_labels() {
    let s = Server::start_with(Backend::Sqlite, |c| {
        c.limits = nbtoken_server::limit::LimitConfig { per_ip_per_minute: 0, per_key_per_minute: 2 }
    })
    .await;
    let read_only = s.create_token(json!({"write_enabled": false})).await;
    let disabled = s.create_token(json!({"enabled": false})).await;
    let fresh = s.create_token(json!({})).await; // never used until the database is gone
    let before = scrape(&s).await;

    // Two successes with the same token: one cache miss at most, then hits.
    assert_eq!(s.admin(Method::GET, "/api/users/tokens/", None).await.0, 200);
    assert_eq!(s.admin(Method::GET, &format!("/api/users/tokens/{}/", read_only.id), None).await.0, 200);
    let v1 = format!("Token {V1_PLAIN}");
    assert_eq!(s.raw(Method::GET, "/api/users/tokens/", Some(v1.as_bytes()), None, &[]).await.0, 200);
    assert_eq!(s.raw(Method::GET, "/api/", Some(&disabled.bearer()), None, &[]).await.0, 403);
    let ro_post =
        s.raw(Method::POST, "/api/users/tokens/", Some(&read_only.bearer()), Some(json!({})), &[]).await;
    assert_eq!(ro_post.0, 403);
    assert_eq!(s.raw(Method::GET, "/api/", Some(b"Bearer nbt_oops"), None, &[]).await.0, 403);
    assert_eq!(s.raw(Method::GET, "/api/", None, None, &[]).await.0, 403);
    assert_eq!(s.raw(Method::GET, "/no/such/path/42", None, None, &[]).await.0, 404);
    // Forward-auth goes through the same path and the same counters.
    let wrong = format!("Bearer nbt_{}.{}", &s.admin_v2[4..16], "w".repeat(40));
    let fwd = |auth: String| {
        let req = s.client.get(format!("{}/auth/forward/app/7", s.base())).header("authorization", auth);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(fwd(wrong.clone()).await, 401);
    assert_eq!(fwd(wrong.clone()).await, 401);
    // The key's third failure: blocked.
    assert_eq!(fwd(wrong.clone()).await, 429);
    let after = scrape(&s).await;

    for (series, delta) in [
        (r#"nbtoken_auth_total{result="ok",version="2"}"#, 2.0),
        (r#"nbtoken_auth_total{result="ok",version="1"}"#, 1.0),
        (r#"nbtoken_auth_total{result="disabled",version="2"}"#, 1.0),
        (r#"nbtoken_auth_total{result="write_denied",version="2"}"#, 1.0),
        (r#"nbtoken_auth_total{result="malformed",version="none"}"#, 1.0),
        (r#"nbtoken_auth_total{result="anonymous",version="none"}"#, 1.0),
        (r#"nbtoken_auth_total{result="invalid",version="2"}"#, 2.0),
        (r#"nbtoken_auth_total{result="rate_limited",version="2"}"#, 1.0),
        ("nbtoken_v1_uses_total", 1.0),
        ("nbtoken_rate_limited_total", 1.0),
        ("nbtoken_verify_seconds_count", 10.0),
        (r#"nbtoken_request_seconds_count{route="/api/users/tokens/"}"#, 3.0),
        (r#"nbtoken_request_seconds_count{route="/api/users/tokens/{id}/"}"#, 1.0),
        (r#"nbtoken_request_seconds_count{route="/auth/forward/{*path}"}"#, 3.0),
        (r#"nbtoken_request_seconds_count{route="unmatched"}"#, 1.0),
        ("nbtoken_store_errors_total", 0.0),
    ] {
        moved(&before, &after, series, delta);
    }
    let lookups = |t: &str| {
        value(t, r#"nbtoken_cache_total{result="hit"}"#) + value(t, r#"nbtoken_cache_total{result="miss"}"#)
    };
    // Every lookup is a hit or a miss; the ones without a well-formed credential look nothing up.
    assert_eq!(lookups(&after) - lookups(&before), 8.0, "{after}");
    assert!(value(&after, r#"nbtoken_cache_total{result="hit"}"#) > 0.0, "{after}");
    // Raw paths never become labels.
    assert!(!after.contains(&format!("/api/users/tokens/{}/", read_only.id)), "{after}");
    assert!(!after.contains("/no/such/path") && !after.contains("/app/7"), "{after}");

    // No secret, and no key, anywhere.
    let mut secrets = vec![PEPPER.to_owned(), V1_PLAIN.to_owned(), s.admin_v2[4..16].to_owned()];
    for t in [&read_only, &disabled, &fresh] {
        secrets.push(t.key.clone());
        secrets.push(t.full[17..].to_owned());
    }
    for secret in &secrets {
        assert!(!after.contains(secret.as_str()), "{secret} in /metrics");
    }

    // Store errors: with the database gone, an uncached lookup and the health check both count.
    // (The block is on the admin's key; this is another.)
    s.store.close().await;
    assert_eq!(s.raw(Method::GET, "/api/", Some(&fresh.bearer()), None, &[]).await.0, 503);
    assert_eq!(s.raw(Method::GET, "/healthz", None, None, &[]).await.0, 503);
    let last = scrape(&s).await;
    moved(&after, &last, "nbtoken_store_errors_total", 2.0);
    moved(&after, &last, r#"nbtoken_auth_total{result="store_error",version="2"}"#, 1.0);
}

#[tokio::test]
async fn token_keys_are_labels_only_when_turned_on() {
    let s = Server::start_with(Backend::Sqlite, |c| c.metrics_token_keys = true).await;
    let disabled = s.create_token(json!({"enabled": false})).await; // the admin's first use
    assert_eq!(s.admin(Method::GET, "/api/", None).await.0, 200);
    assert_eq!(s.raw(Method::GET, "/api/", Some(&disabled.bearer()), None, &[]).await.0, 403);
    let made_up = "Bearer nbt_ZZZZZZZZZZZZ.ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
    assert_eq!(s.raw(Method::GET, "/api/", Some(made_up.as_bytes()), None, &[]).await.0, 403);
    let text = scrape(&s).await;
    let admin_key = &s.admin_v2[4..16];
    assert_eq!(
        value(&text, &format!(r#"nbtoken_auth_total{{result="ok",version="2",key="{admin_key}"}}"#)),
        2.0,
        "{text}"
    );
    let disabled_series =
        format!(r#"nbtoken_auth_total{{result="disabled",version="2",key="{}"}}"#, disabled.key);
    assert_eq!(value(&text, &disabled_series), 1.0, "{text}");
    // A key that does not exist never becomes a label: spraying keys cannot grow the series.
    assert!(!text.contains("ZZZZZZZZZZZZ"), "{text}");
    assert_eq!(value(&text, r#"nbtoken_auth_total{result="invalid",version="2"}"#), 1.0, "{text}");
    // Keys yes, secrets never.
    assert!(!text.contains(&s.admin_v2[17..]) && !text.contains(&disabled.full[17..]), "{text}");
}
