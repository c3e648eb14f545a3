//! The endpoint's contract over a real socket, without a proxy: what each answer looks like.

use std::time::Duration;

use crate::harness::{Backend, Server, V1_PLAIN};
use reqwest::Method;
use serde_json::{json, Value};

on_every_backend!(
    forward_auth_contract,
    forward_auth_reads_the_client_address_only_from_trusted_proxies,
    forward_auth_keeps_the_v1_policy,
    forward_auth_is_rate_limited,
);

const FORWARD: &str = "/auth/forward";

/// Calls forward-auth and renders the answer as one line: `STATUS detail` on refusal,
/// `200 user=… user_id=… token_id=… version=… write=…` on success.
async fn ask(s: &Server, method: &str, path: &str, auth: Option<&str>, headers: &[(&str, &str)]) -> String {
    let (line, _) = ask_full(s, method, path, auth, headers).await;
    line
}

async fn ask_full(
    s: &Server,
    method: &str,
    path: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
) -> (String, reqwest::header::HeaderMap) {
    let mut req =
        s.client.request(Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", s.base()));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let line = if status == 200 {
        assert!(text.is_empty(), "{text}");
        let get = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        format!(
            "200 user={} user_id={} token_id={} version={} write={}",
            get("x-nbtoken-user"),
            get("x-nbtoken-user-id"),
            get("x-nbtoken-token-id"),
            get("x-nbtoken-token-version"),
            get("x-nbtoken-write-enabled")
        )
    } else {
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        format!("{status} {}", body["detail"].as_str().unwrap())
    };
    (line, h)
}

async fn forward_auth_contract(b: Backend) {
    let s = Server::start(b).await;
    let admin = s.admin_bearer();
    let admin = Some(admin.as_str());
    let read_only = s.create_token(json!({"write_enabled": false})).await;
    let ro = format!("Bearer {}", read_only.full);
    let ro = Some(ro.as_str());
    let ok = "200 user=admin user_id=1 token_id=1 version=2 write=true";
    let ro_ok = format!("200 user=admin user_id=1 token_id={} version=2 write=false", read_only.id);

    // Any method, with or without the original path appended (Envoy appends it).
    for (method, path) in
        [("GET", FORWARD), ("HEAD", FORWARD), ("GET", "/auth/forward/"), ("GET", "/auth/forward/app/x?y=1")]
    {
        if method == "HEAD" {
            let resp = s.admin_response(Method::HEAD, path).await;
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["x-nbtoken-user"], "admin");
        } else {
            assert_eq!(ask(&s, method, path, admin, &[]).await, ok, "{method} {path}");
        }
    }
    assert_eq!(ask(&s, "DELETE", "/auth/forward/app/x", admin, &[]).await, ok);

    // No credentials: 401 with a Bearer challenge; so are bad ones, with NetBox's detail.
    let (line, h) = ask_full(&s, "GET", FORWARD, None, &[]).await;
    assert_eq!(line, "401 Authentication credentials were not provided.");
    assert_eq!(h["www-authenticate"], r#"Bearer realm="nbtoken""#);
    let (line, h) = ask_full(
        &s,
        "GET",
        FORWARD,
        Some("Bearer nbt_AAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"),
        &[],
    )
    .await;
    assert_eq!(line, "401 Invalid v2 token");
    assert_eq!(h["www-authenticate"], r#"Bearer realm="nbtoken", error="invalid_token""#);
    assert_eq!(ask(&s, "GET", FORWARD, Some("Bearer nbt_short"), &[]).await.split(' ').next(), Some("401"));
    let disabled = s.create_token(json!({"enabled": false})).await;
    assert_eq!(
        ask(&s, "GET", FORWARD, Some(&format!("Bearer {}", disabled.full)), &[]).await,
        "401 Token disabled"
    );
    let expired = s.create_token(json!({})).await;
    s.expire(expired.id).await;
    assert_eq!(
        ask(&s, "GET", FORWARD, Some(&format!("Bearer {}", expired.full)), &[]).await,
        "401 Token expired"
    );
    // Another scheme is anonymous, as in the API.
    assert_eq!(
        ask(&s, "GET", FORWARD, Some("Basic YTpi"), &[]).await,
        "401 Authentication credentials were not provided."
    );

    // Write permission follows the ORIGINAL method, from whichever side says "write".
    let denied = "403 You do not have permission to perform this action.";
    assert_eq!(ask(&s, "GET", FORWARD, ro, &[]).await, ro_ok);
    assert_eq!(ask(&s, "GET", FORWARD, ro, &[("x-forwarded-method", "HEAD")]).await, ro_ok);
    assert_eq!(ask(&s, "GET", FORWARD, ro, &[("x-forwarded-method", "POST")]).await, denied); // Traefik, Caddy
    assert_eq!(ask(&s, "GET", FORWARD, ro, &[("x-original-method", "DELETE")]).await, denied); // nginx
    assert_eq!(ask(&s, "PATCH", "/auth/forward/app/1", ro, &[]).await, denied); // Envoy
                                                                                // A client cannot loosen the check by naming a read method itself.
    assert_eq!(ask(&s, "POST", FORWARD, ro, &[("x-forwarded-method", "GET")]).await, denied);
    assert_eq!(ask(&s, "GET", FORWARD, admin, &[("x-forwarded-method", "POST")]).await, ok);

    // The token is never echoed, whatever the outcome.
    let (_, h) = ask_full(&s, "GET", FORWARD, admin, &[]).await;
    let (_, h2) = ask_full(&s, "GET", FORWARD, Some(&format!("Bearer {}", disabled.full)), &[]).await;
    for v in h.values().chain(h2.values()) {
        let v = v.to_str().unwrap();
        assert!(!v.contains(&s.admin_v2[16..]) && !v.contains(&disabled.full[17..]), "{v}");
    }

    // Successful checks are recorded as uses of the token, like API requests.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, t) = s.admin(Method::GET, &format!("/api/users/tokens/{}/", read_only.id), None).await;
    assert!(t["last_used"].is_string(), "{t}");

    // The API route's rules stay where they were.
    let (st, _) = s.raw(Method::GET, "/api/users/tokens/", None, None, &[]).await;
    assert_eq!(st, 403);
}

async fn forward_auth_reads_the_client_address_only_from_trusted_proxies(b: Backend) {
    let s = Server::start_with(b.clone(), |_| {}).await;
    let lan = s.create_token(json!({"allowed_ips": ["10.0.0.0/8"]})).await;
    let bearer = format!("Bearer {}", lan.full);
    let not_permitted = "403 Source IP 127.0.0.1 is not permitted to authenticate using this token.";
    // Untrusted peer: its forwarding headers are ignored.
    assert_eq!(
        ask(&s, "GET", FORWARD, Some(&bearer), &[("x-forwarded-for", "10.1.2.3")]).await,
        not_permitted
    );
    assert_eq!(ask(&s, "GET", FORWARD, Some(&bearer), &[("x-real-ip", "10.1.2.3")]).await, not_permitted);
    drop(s);

    let s = Server::start_with(b, |c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let lan = s.create_token(json!({"allowed_ips": ["10.0.0.0/8"]})).await;
    let bearer = format!("Bearer {}", lan.full);
    let ok = format!("200 user=admin user_id=1 token_id={} version=2 write=true", lan.id);
    assert_eq!(ask(&s, "GET", FORWARD, Some(&bearer), &[("x-forwarded-for", "10.1.2.3")]).await, ok);
    assert_eq!(ask(&s, "GET", FORWARD, Some(&bearer), &[("x-real-ip", "10.1.2.3")]).await, ok);
    assert_eq!(
        ask(&s, "GET", FORWARD, Some(&bearer), &[("x-forwarded-for", "192.0.2.9")]).await,
        "403 Source IP 192.0.2.9 is not permitted to authenticate using this token."
    );
    assert_eq!(
        ask(&s, "GET", FORWARD, Some(&bearer), &[("x-forwarded-for", "garbage")]).await,
        "400 The X-Forwarded-For header sent by the proxy does not hold a valid IP address."
    );
}

async fn forward_auth_keeps_the_v1_policy(b: Backend) {
    let s = Server::start_with(b.clone(), |c| {
        c.v1_sunset = nbtoken_server::json::parse_timestamp("2027-06-30T00:00:00Z")
    })
    .await;
    let v1 = format!("Token {V1_PLAIN}");
    let (line, h) = ask_full(&s, "GET", FORWARD, Some(&v1), &[]).await;
    assert_eq!(line, "200 user=admin user_id=1 token_id=2 version=1 write=true");
    assert_eq!(h["deprecation"], "@1767225600");
    assert_eq!(h["sunset"], "Wed, 30 Jun 2027 00:00:00 GMT");
    let (_, h) = ask_full(&s, "GET", FORWARD, Some(&s.admin_bearer()), &[]).await;
    assert!(h.get("deprecation").is_none());
    drop(s);

    let s = Server::start_with(b, |c| c.v1_policy = nbtoken_core::V1Policy::Deny).await;
    assert_eq!(
        ask(&s, "GET", FORWARD, Some(&v1), &[]).await,
        format!("401 {}", nbtoken_server::auth::MSG_V1_DENIED)
    );
}

async fn forward_auth_is_rate_limited(b: Backend) {
    let s = Server::start_with(b, |c| {
        c.limits = nbtoken_server::limit::LimitConfig { per_ip_per_minute: 2, per_key_per_minute: 0 }
    })
    .await;
    let wrong = format!("Bearer nbt_{}.{}", &s.admin_v2[4..16], "w".repeat(40));
    for _ in 0..2 {
        assert_eq!(ask(&s, "GET", FORWARD, Some(&wrong), &[]).await, "401 Invalid v2 token");
    }
    let (line, h) = ask_full(&s, "GET", FORWARD, Some(&wrong), &[]).await;
    assert!(line.starts_with("429 Too many failed authentication attempts"), "{line}");
    assert!(h.contains_key("retry-after"));
    // Blocked before any token is checked: the right token fails too, on the API as well.
    assert!(ask(&s, "GET", FORWARD, Some(&s.admin_bearer()), &[]).await.starts_with("429 "));
    assert_eq!(s.admin(Method::GET, "/api/users/tokens/", None).await.0, 429);
}
