//! Error bodies never echo what the client sent: a secret-looking value is put in every place a
//! client can put one (a JSON key, a JSON value of each type check, `allowed_ips`, each query
//! parameter, the method, the path, the `Authorization` header, forwarding headers), and no
//! answer — body or headers — carries any ten characters of it. Errors name fields, positions
//! and lengths only (SECURITY.md, "Log leak").

#![allow(clippy::unwrap_used, missing_docs)]

use crate::harness;

on_every_backend!(error_bodies_never_echo_client_values);

use harness::{Backend, Server};
use reqwest::Method;

/// Looks like a v2 secret (40 characters of `[A-Za-z0-9]`).
const SECRET: &str = "Qx7RmW2kTz9LpV4nHs8BcY3dJf6GaE1uKo5XiN0w";
/// Looks like a v2 key.
const KEY: &str = "Vb3Hq8ZtKm2W";

/// Whether any ten consecutive characters of the secret (or the whole key) appear in `text`.
fn leaks(text: &str) -> bool {
    text.contains(KEY) || (0..=SECRET.len() - 10).any(|i| text.contains(&SECRET[i..i + 10]))
}

/// Sends a request and checks its answer: the expected status, and no echo anywhere.
async fn check(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Option<String>,
    status: u16,
) {
    let mut req =
        s.client.request(Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", s.base()));
    let mut has_auth = false;
    for (k, v) in headers {
        has_auth |= k.eq_ignore_ascii_case("authorization");
        req = req.header(*k, v);
    }
    if !has_auth {
        req = req.header("authorization", s.admin_bearer());
    }
    if let Some(b) = body.clone() {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    let got = resp.status().as_u16();
    let mut seen: String = resp
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let text = resp.text().await.unwrap();
    seen.push_str(&text);
    let what = format!("{method} {path} {headers:?} {body:?}");
    assert_eq!(got, status, "{what}: {text}");
    assert!(!leaks(&seen), "the answer to {what} echoes the client's value:\n{seen}");
    // Every error is JSON with something to say.
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
    assert!(v.as_object().is_some_and(|o| !o.is_empty()), "{what}: {text}");
}

async fn error_bodies_never_echo_client_values(b: Backend) {
    let s = Server::start_with(b, |c| c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let token = format!("nbt_{KEY}.{SECRET}");
    let t = s.create_token(serde_json::json!({"description": "target"})).await;
    let one = format!("/api/users/tokens/{}/", t.id);
    let me = "/api/users/users/1/";
    const TOKENS: &str = "/api/users/tokens/";
    const USERS: &str = "/api/users/users/";
    const PROVISION: &str = "/api/users/tokens/provision/";
    let none: &[(&str, String)] = &[];
    // A JSON key: on every route with a body.
    for (method, path) in
        [("POST", TOKENS), ("PATCH", one.as_str()), ("PUT", one.as_str()), ("POST", USERS), ("PATCH", me)]
    {
        for key in [token.clone(), SECRET.to_owned(), format!("{SECRET}_x"), format!("descr{SECRET}")] {
            check(&s, method, path, none, Some(format!(r#"{{"{key}": 1}}"#)), 400).await;
        }
    }
    check(
        &s,
        "POST",
        PROVISION,
        none,
        Some(format!(r#"{{"username": "admin", "password": "x", "{SECRET}": 1}}"#)),
        400,
    )
    .await;
    // JSON values that fail each type check.
    let bodies_400 = [
        format!(r#"{{"allowed_ips": ["{SECRET}"]}}"#),
        format!(r#"{{"allowed_ips": ["10.0.0.0/8", "{token}/24"]}}"#),
        format!(r#"{{"allowed_ips": ["{}"]}}"#, SECRET.repeat(3)),
        format!(r#"{{"allowed_ips": "{SECRET}"}}"#),
        format!(r#"{{"expires": "{SECRET}"}}"#),
        format!(r#"{{"enabled": "{SECRET}"}}"#),
        format!(r#"{{"write_enabled": "{SECRET}"}}"#),
        format!(r#"{{"version": "{SECRET}"}}"#),
        r#"{"version": 1234567890123}"#.to_owned(),
        format!(r#"{{"pepper_id": "{SECRET}"}}"#),
        format!(r#"{{"description": "{}"}}"#, SECRET.repeat(6)),
        format!(r#"{{"description": "{SECRET}\u0000"}}"#),
    ];
    for body in &bodies_400 {
        check(&s, "POST", TOKENS, none, Some(body.clone()), 400).await;
        check(&s, "PATCH", &one, none, Some(body.clone()), 400).await;
    }
    for body in [
        format!(r#"{{"user": "{SECRET}"}}"#),
        format!(r#"{{"user": {{"username": "{SECRET}"}}}}"#),
        r#"{"pepper_id": 31999}"#.to_owned(),
    ] {
        check(&s, "POST", TOKENS, none, Some(body), 400).await;
    }
    // `token` is read-only (NetBox 4.7): ignored, and never repeated in the answer.
    for body in [
        format!(r#"{{"token": "{SECRET}!"}}"#),
        format!(r#"{{"token": "{token}"}}"#),
        format!(r#"{{"version": 1, "token": "{token}"}}"#),
    ] {
        check(&s, "POST", TOKENS, none, Some(body), 201).await;
    }
    check(&s, "PATCH", &one, none, Some(format!(r#"{{"token": "{SECRET}"}}"#)), 200).await;
    // Users.
    for body in [
        format!(r#"{{"username": "{SECRET}!"}}"#),
        format!(r#"{{"username": "{}"}}"#, SECRET.repeat(4)),
        format!(r#"{{"username": "u1", "password": "{}"}}"#, &SECRET[..7]),
        format!(r#"{{"username": "u1", "email": "{}"}}"#, SECRET.repeat(7)),
        format!(r#"{{"username": "u1", "is_superuser": "{SECRET}"}}"#),
    ] {
        check(&s, "POST", USERS, none, Some(body), 400).await;
    }
    check(
        &s,
        "POST",
        PROVISION,
        &[("authorization", String::new())],
        Some(format!(r#"{{"username": "{SECRET}", "password": "{SECRET}"}}"#)),
        403,
    )
    .await;
    check(
        &s,
        "POST",
        PROVISION,
        &[("authorization", String::new())],
        Some(format!(r#"{{"username": "admin", "password": "{SECRET}", "version": "{SECRET}"}}"#)),
        400,
    )
    .await;
    // Broken JSON around a secret.
    for body in [
        format!(r#"{{"description": "{SECRET}"#),
        format!(r#"{{"{SECRET}" 1}}"#),
        format!(r#"{{"description": "{SECRET}\q"}}"#),
        format!(r#"{{"description": {SECRET}}}"#),
        format!(r#"["{SECRET}"]"#),
        format!(r#""{SECRET}""#),
        format!(r#"{{"a": 1}} {SECRET}"#),
    ] {
        check(&s, "POST", TOKENS, none, Some(body), 400).await;
    }
    // Query parameters: each filter, a NUL, an unknown parameter.
    for q in [
        format!("version={SECRET}"),
        format!("id={SECRET}"),
        format!("user_id={SECRET}"),
        format!("pepper_id={SECRET}"),
        format!("enabled={SECRET}"),
        format!("write_enabled={SECRET}"),
        format!("user={SECRET}%00"),
        format!("key={SECRET}%00"),
        format!("{SECRET}=%00"),
        format!("{SECRET}%00=1"),
        format!("version={token}"),
    ] {
        check(&s, "GET", &format!("{TOKENS}?{q}"), none, None, 400).await;
    }
    for q in [format!("id={SECRET}"), format!("is_active={SECRET}"), format!("username={SECRET}%00")] {
        check(&s, "GET", &format!("{USERS}?{q}"), none, None, 400).await;
    }
    // Unknown parameters and odd paging values are ignored, as in NetBox.
    check(
        &s,
        "GET",
        &format!("{TOKENS}?{SECRET}=1&limit={SECRET}&offset={SECRET}&brief={SECRET}"),
        none,
        None,
        200,
    )
    .await;
    // The method and the path.
    check(&s, SECRET, TOKENS, none, None, 405).await;
    check(&s, &SECRET.to_uppercase(), &one, none, None, 405).await;
    check(&s, "GET", &format!("{TOKENS}{SECRET}/"), none, None, 404).await;
    check(&s, "GET", &format!("/api/{SECRET}/"), none, None, 404).await;
    check(&s, "DELETE", &format!("{USERS}{SECRET}/"), none, None, 404).await;
    // Credentials: a wrong token in every shape the header parser refuses or cannot find.
    for auth in [
        format!("Bearer {token}"),
        format!("Token {token}"),
        format!("Bearer Bearer {token}"),
        format!("Bearer {token} extra"),
        format!("Bearer nbt_{SECRET}"),
        format!("Bearer nbt_{KEY}{SECRET}"),
        format!("Bearer {SECRET}"),
        format!("Token {SECRET}x"),
        format!("Bearer nbt_{KEY}.{SECRET}!"),
    ] {
        check(&s, "GET", TOKENS, &[("authorization", auth.clone())], None, 403).await;
        check(&s, "GET", "/auth/forward", &[("authorization", auth)], None, 401).await;
    }
    // Forwarding headers from a trusted proxy (loopback is trusted here).
    for (h, v) in [
        ("x-forwarded-for", SECRET.to_owned()),
        ("x-real-ip", SECRET.to_owned()),
        ("x-forwarded-for", format!("192.0.2.1, {SECRET}")),
    ] {
        let headers = [(h, v)];
        let (_, body) = s
            .raw(
                Method::GET,
                TOKENS,
                Some(s.admin_bearer().as_bytes()),
                None,
                &[(headers[0].0, headers[0].1.as_str())],
            )
            .await;
        assert!(!leaks(&body.to_string()), "{h}: {body}");
    }
}
