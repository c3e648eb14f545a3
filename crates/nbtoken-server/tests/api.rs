//! The HTTP API over a real socket: NetBox's recorded authentication cases and the token REST API.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::harness;

on_every_backend!(
    failed_attempts_are_rate_limited_per_client,
    failed_attempts_are_rate_limited_per_key,
    password_guessing_at_provision_is_rate_limited,
    netbox_authentication_cases,
    token_state_cases,
    spoofed_forwarding_headers_do_not_pass_ip_restrictions,
    trusted_proxy_forwarding_is_believed_and_garbage_refused,
    read_only_tokens_cannot_write,
    provision_with_good_and_bad_passwords,
    inactive_user_tokens_stop_working,
    token_rest_api_shapes,
    pagination_and_filters,
    bad_input_gets_clear_4xx,
    users_see_only_their_own_tokens,
    api_version_header_and_root,
    status_body_is_netbox_keys_and_the_running_settings,
    v1_policy_deny_refuses_v1_tokens_with_advice,
    hints_travel_beside_the_netbox_detail,
    last_used_is_written_without_waiting,
    last_used_ip_is_recorded,
    every_v1_use_is_counted_for_today,
    v1_policy_warn_announces_deprecation_and_sunset,
    v1_policy_allow_adds_no_headers,
    rest_tokens_without_allowed_ips_read_back_as_an_empty_list,
    provision_answer_has_no_pepper_id,
    description_filter_is_exact_and_takes_several_values,
    weak_passwords_are_refused_on_all_in_netbox_words,
);

use harness::{Backend, Server, V1_PLAIN};
use reqwest::Method;
use serde_json::{json, Value};

/// Sends a request and renders `STATUS detail` (or just `STATUS` when there is no detail).
async fn check(s: &Server, method: &str, path: &str, auth: Option<&[u8]>, expected: &str) {
    let (status, body) = s.raw(Method::from_bytes(method.as_bytes()).unwrap(), path, auth, None, &[]).await;
    let detail = body.get("detail").and_then(Value::as_str).map(|d| format!(" {d}")).unwrap_or_default();
    assert_eq!(
        format!("{status}{detail}"),
        expected,
        "{method} {path} auth {:?}",
        auth.map(String::from_utf8_lossy)
    );
}

const TOKENS: &str = "/api/users/tokens/";
const FORM: &str =
    "Invalid authorization header: Must be in the form \"Bearer <key>.<token>\" or \"Token <token>\"";
const NO_DOT: &str = "Invalid authorization header: Could not parse key from v2 token. Did you mean to use 'Token' instead of 'Bearer'?";

async fn netbox_authentication_cases(b: Backend) {
    let s = Server::start(b).await;
    let admin = s.admin_v2.clone();
    let (key, secret) = admin.strip_prefix("nbt_").unwrap().split_once('.').unwrap();
    let bearer = |v: &str| format!("Bearer {v}").into_bytes();

    check(&s, "GET", TOKENS, None, "403 Authentication credentials were not provided.").await;
    check(&s, "GET", TOKENS, Some(&bearer(&admin)), "200").await;
    check(&s, "GET", TOKENS, Some(format!("Token {V1_PLAIN}").as_bytes()), "200").await;
    check(&s, "GET", TOKENS, Some(&bearer(&format!("nbt_{key}.{}", "x".repeat(40)))), "403 Invalid v2 token")
        .await;
    check(&s, "GET", TOKENS, Some(&bearer(&format!("nbt_AAAAAAAAAAAA.{secret}"))), "403 Invalid v2 token")
        .await;
    check(&s, "GET", TOKENS, Some(&bearer(&format!("nbt_{key}{secret}"))), &format!("403 {NO_DOT}")).await;
    check(&s, "GET", TOKENS, Some(format!("Token {}", "f".repeat(40)).as_bytes()), "403 Invalid v1 token")
        .await;
    check(&s, "GET", TOKENS, Some(b"Bearer"), &format!("403 {FORM}")).await;
    check(&s, "GET", TOKENS, Some(format!("Bearer {admin} extra").as_bytes()), &format!("403 {FORM}")).await;
    check(
        &s,
        "GET",
        TOKENS,
        Some(b"Basic dXNlcjpwYXNz"),
        "403 Authentication credentials were not provided.",
    )
    .await;
    check(&s, "GET", TOKENS, Some(format!("Token {admin}").as_bytes()), "200").await;
    check(&s, "GET", TOKENS, Some(format!("Bearer {V1_PLAIN}").as_bytes()), "200").await;
    check(&s, "GET", TOKENS, Some(format!("bearer {admin}").as_bytes()), "200").await;
    check(&s, "GET", TOKENS, Some(format!("Bearer  {admin}").as_bytes()), "200").await;
    check(&s, "GET", TOKENS, Some(&bearer(&format!("{key}.{secret}"))), "403 Invalid v1 token").await;
    check(&s, "GET", TOKENS, Some(&bearer(&format!("nbt_{key}.nbt_{secret}"))), "403 Invalid v2 token").await;
    check(&s, "GET", TOKENS, Some(&bearer(&format!("{admin}."))), "403 Invalid v2 token").await;
    check(&s, "GET", TOKENS, Some(&bearer(&format!("nbt_{key}."))), "403 Invalid v2 token").await;
    check(&s, "GET", TOKENS, Some(&bearer(&format!("nbt_.{secret}"))), "403 Invalid v2 token").await;
    check(&s, "GET", TOKENS, Some(b"Token"), &format!("403 {FORM}")).await;
    check(&s, "GET", "/api/status/", None, "403 Authentication credentials were not provided.").await;
    check(&s, "GET", "/api/status/", Some(&bearer(&admin)), "200").await;
    check(
        &s,
        "GET",
        "/api/status/",
        Some(&bearer(&format!("nbt_{key}.{}", "y".repeat(40)))),
        "403 Invalid v2 token",
    )
    .await;
    let mut non_utf8 = b"Bearer nbt_".to_vec();
    non_utf8.extend_from_slice(&[0xff, 0xfe, b'.', b'x']);
    check(
        &s,
        "GET",
        TOKENS,
        Some(&non_utf8),
        "403 Invalid authorization header: Token contains invalid characters",
    )
    .await;
    let mut non_utf8_v1 = b"Token ".to_vec();
    non_utf8_v1.extend_from_slice(&[0xc3, 0x28, b'a']);
    check(
        &s,
        "GET",
        TOKENS,
        Some(&non_utf8_v1),
        "403 Invalid authorization header: Token contains invalid characters",
    )
    .await;
}

async fn token_state_cases(b: Backend) {
    let s = Server::start(b).await;
    let disabled = s.create_token(json!({"enabled": false})).await;
    check(&s, "GET", TOKENS, Some(&disabled.bearer()), "403 Token disabled").await;
    let ip_mismatch = s.create_token(json!({"allowed_ips": ["10.0.0.0/8"]})).await;
    check(
        &s,
        "GET",
        TOKENS,
        Some(&ip_mismatch.bearer()),
        "403 Source IP 127.0.0.1 is not permitted to authenticate using this token.",
    )
    .await;
    let loopback = s.create_token(json!({"allowed_ips": ["127.0.0.0/8", "::1/128"]})).await;
    check(&s, "GET", TOKENS, Some(&loopback.bearer()), "200").await;
    let both = s.create_token(json!({"enabled": false, "allowed_ips": ["10.0.0.0/8"]})).await;
    check(
        &s,
        "GET",
        TOKENS,
        Some(&both.bearer()),
        "403 Source IP 127.0.0.1 is not permitted to authenticate using this token.",
    )
    .await;
    let future = s.create_token(json!({"expires": "2099-01-01T00:00:00Z"})).await;
    check(&s, "GET", TOKENS, Some(&future.bearer()), "200").await;
    // Expiring a token: PATCH its expiry into the past (allowed on existing tokens, as in NetBox).
    s.expire(future.id).await;
    check(&s, "GET", TOKENS, Some(&future.bearer()), "403 Token expired").await;
    let disabled_expired = s.create_token(json!({"enabled": false})).await;
    s.expire(disabled_expired.id).await;
    check(&s, "GET", TOKENS, Some(&disabled_expired.bearer()), "403 Token disabled").await;
}

async fn spoofed_forwarding_headers_do_not_pass_ip_restrictions(b: Backend) {
    let s = Server::start(b).await;
    let t = s.create_token(json!({"allowed_ips": ["10.9.9.0/24"]})).await;
    for (h, v) in [("x-forwarded-for", "10.9.9.5"), ("x-real-ip", "10.9.9.5"), ("x-forwarded-for", "garbage")]
    {
        let (status, body) = s.raw(Method::GET, TOKENS, Some(&t.bearer()), None, &[(h, v)]).await;
        assert_eq!(status, 403, "{h}: {v} -> {body}");
        assert_eq!(body["detail"], "Source IP 127.0.0.1 is not permitted to authenticate using this token.");
    }
    // An unrestricted token with a garbage header is fine (NetBox answered 500 here).
    let (status, _) = s
        .raw(Method::GET, TOKENS, Some(s.admin_bearer().as_bytes()), None, &[("x-forwarded-for", "garbage")])
        .await;
    assert_eq!(status, 200);
}

async fn trusted_proxy_forwarding_is_believed_and_garbage_refused(b: Backend) {
    let s = Server::start_with(b, |c| c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    let t = s.create_token(json!({"allowed_ips": ["10.9.9.0/24"]})).await;
    let (status, _) =
        s.raw(Method::GET, TOKENS, Some(&t.bearer()), None, &[("x-forwarded-for", "10.9.9.5")]).await;
    assert_eq!(status, 200);
    let (status, body) =
        s.raw(Method::GET, TOKENS, Some(&t.bearer()), None, &[("x-forwarded-for", "not-an-ip")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("X-Forwarded-For"));
}

async fn read_only_tokens_cannot_write(b: Backend) {
    let s = Server::start(b).await;
    let ro = s.create_token(json!({"write_enabled": false})).await;
    check(&s, "GET", TOKENS, Some(&ro.bearer()), "200").await;
    let denied = "403 You do not have permission to perform this action.";
    check(&s, "POST", TOKENS, Some(&ro.bearer()), denied).await;
    check(&s, "PATCH", &format!("{TOKENS}{}/", ro.id), Some(&ro.bearer()), denied).await;
    check(&s, "DELETE", &format!("{TOKENS}{}/", ro.id), Some(&ro.bearer()), denied).await;
    // Provision authenticates by password, so a read-only token does not block it.
    let (status, body) = s
        .raw(
            Method::POST,
            "/api/users/tokens/provision/",
            Some(&ro.bearer()),
            Some(json!({"username": "admin", "password": "wrong-password"})),
            &[],
        )
        .await;
    assert_eq!((status, body["detail"].as_str()), (403, Some("Invalid username/password")));
}

async fn provision_with_good_and_bad_passwords(b: Backend) {
    let s = Server::start(b).await;
    s.admin(
        Method::POST,
        "/api/users/users/",
        Some(json!({"username": "alice", "password": "Alice-password-1"})),
    )
    .await;
    let prov = |body: Value| s.provision(body);
    let (status, body) =
        prov(json!({"username": "alice", "password": "Alice-password-1", "write_enabled": false})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"], 2);
    assert_eq!(body["write_enabled"], false);
    assert_eq!(body["user"]["username"], "alice");
    let secret = body["token"].as_str().unwrap();
    assert_eq!(secret.len(), 40);
    let full = format!("Bearer nbt_{}.{secret}", body["key"].as_str().unwrap());
    check(&s, "GET", TOKENS, Some(full.as_bytes()), "200").await;
    check(
        &s,
        "POST",
        TOKENS,
        Some(full.as_bytes()),
        "403 You do not have permission to perform this action.",
    )
    .await;
    for bad in [
        json!({"username": "alice", "password": "nope"}),
        json!({"username": "nobody", "password": "Alice-password-1"}),
    ] {
        let (status, body) = prov(bad).await;
        assert_eq!((status, body["detail"].as_str()), (403, Some("Invalid username/password")));
    }
    let (status, body) = prov(json!({"username": "alice"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["password"].is_array());
}

async fn inactive_user_tokens_stop_working(b: Backend) {
    let s = Server::start(b).await;
    let (_, alice) = s.admin(Method::POST, "/api/users/users/", Some(json!({"username": "alice"}))).await;
    let alice_id = alice["id"].as_i64().unwrap();
    let t = s.create_token(json!({"user": alice_id})).await;
    check(&s, "GET", TOKENS, Some(&t.bearer()), "200").await;
    s.admin(Method::PATCH, &format!("/api/users/users/{alice_id}/"), Some(json!({"is_active": false}))).await;
    check(&s, "GET", TOKENS, Some(&t.bearer()), "403 User inactive").await;
    let wrong = format!("Bearer nbt_{}.{}", t.key, "z".repeat(40));
    check(&s, "GET", TOKENS, Some(wrong.as_bytes()), "403 Invalid v2 token").await;
    s.admin(Method::PATCH, &format!("/api/users/users/{alice_id}/"), Some(json!({"is_active": true}))).await;
    check(&s, "GET", TOKENS, Some(&t.bearer()), "200").await;
}

async fn token_rest_api_shapes(b: Backend) {
    let s = Server::start(b).await;
    let (status, created) = s
        .admin(Method::POST, TOKENS, Some(json!({"description": "ci", "allowed_ips": ["10.0.0.0/8"], "expires": "2099-05-01T10:00:00Z"})))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let base = s.base();
    assert_eq!(created["url"], format!("{base}/api/users/tokens/{id}/"));
    assert_eq!(created["display_url"], format!("{base}/users/tokens/{id}/"));
    assert_eq!(created["display"], created["key"]);
    assert_eq!(created["version"], 2);
    assert_eq!(created["description"], "ci");
    assert_eq!(created["expires"], "2099-05-01T10:00:00Z");
    assert_eq!(created["allowed_ips"], json!(["10.0.0.0/8"]));
    assert_eq!(created["pepper_id"], 1);
    assert_eq!(created["user"]["username"], "admin");
    assert_eq!(created["token"].as_str().unwrap().len(), 40);
    for field in [
        "id",
        "url",
        "display_url",
        "display",
        "version",
        "key",
        "user",
        "description",
        "created",
        "expires",
        "last_used",
        "enabled",
        "write_enabled",
        "pepper_id",
        "allowed_ips",
        "token",
    ] {
        assert!(created.get(field).is_some(), "missing {field}");
    }
    // The secret is shown at creation only.
    let (_, one) = s.admin(Method::GET, &format!("{TOKENS}{id}/"), None).await;
    assert_eq!(one["token"], Value::Null, "NetBox 4.7 sends token: null on reads");
    assert_eq!(one["key"], created["key"]);
    let (_, list) = s.admin(Method::GET, TOKENS, None).await;
    assert!(list["results"].as_array().unwrap().iter().all(|t| t["token"].is_null()));
    // PATCH, PUT, DELETE.
    let (st, patched) = s
        .admin(
            Method::PATCH,
            &format!("{TOKENS}{id}/"),
            Some(json!({"description": "changed", "write_enabled": false})),
        )
        .await;
    assert_eq!(
        (st, patched["description"].as_str(), patched["write_enabled"].as_bool()),
        (200, Some("changed"), Some(false))
    );
    let (st, put) =
        s.admin(Method::PUT, &format!("{TOKENS}{id}/"), Some(json!({"description": "put"}))).await;
    // PUT puts back NetBox's REST defaults: `allowed_ips` `[]`.
    assert_eq!(
        (st, put["write_enabled"].as_bool(), put["allowed_ips"].clone()),
        (200, Some(true), json!([]))
    );
    let (st, _) = s.admin(Method::DELETE, &format!("{TOKENS}{id}/"), None).await;
    assert_eq!(st, 204);
    let (st, body) = s.admin(Method::GET, &format!("{TOKENS}{id}/"), None).await;
    assert_eq!((st, body["detail"].as_str()), (404, Some("No Token matches the given query.")));
}

async fn pagination_and_filters(b: Backend) {
    let s = Server::start(b).await;
    for i in 0..5 {
        s.create_token(json!({"description": format!("t{i}"), "enabled": i % 2 == 0})).await;
    }
    let (_, page) = s.admin(Method::GET, &format!("{TOKENS}?limit=2"), None).await;
    assert_eq!(page["count"], 7); // admin's first token + v1 token + five new ones
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert_eq!(page["previous"], Value::Null);
    let next = page["next"].as_str().unwrap().to_owned();
    assert_eq!(next, format!("{}/api/users/tokens/?limit=2&offset=2", s.base()));
    let (_, page2) = s.admin(Method::GET, next.strip_prefix(&s.base()).unwrap(), None).await;
    assert_eq!(page2["previous"].as_str().unwrap(), format!("{}/api/users/tokens/?limit=2", s.base()));
    let (_, last) = s.admin(Method::GET, &format!("{TOKENS}?limit=2&offset=6"), None).await;
    assert_eq!(last["next"], Value::Null);
    assert_eq!(last["results"].as_array().unwrap().len(), 1);
    let (_, disabled) = s.admin(Method::GET, &format!("{TOKENS}?enabled=false"), None).await;
    assert_eq!(disabled["count"], 2);
    let (_, v1) = s.admin(Method::GET, &format!("{TOKENS}?version=1"), None).await;
    assert_eq!(v1["count"], 1);
    assert_eq!(v1["results"][0]["display"], format!("{}{}", "*".repeat(34), &V1_PLAIN[34..]));
    let (_, brief) = s.admin(Method::GET, &format!("{TOKENS}?brief=true&limit=1"), None).await;
    let mut fields: Vec<&str> = brief["results"][0].as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["description", "display", "enabled", "id", "key", "url", "version", "write_enabled"]);
    // As in NetBox, any non-empty value turns brief mode on.
    let (_, brief) = s.admin(Method::GET, &format!("{TOKENS}?brief=0&limit=1"), None).await;
    assert!(brief["results"][0].get("created").is_none());
    // next links carry the filters, keys in order.
    let (_, filtered) = s.admin(Method::GET, &format!("{TOKENS}?version=2&limit=1"), None).await;
    assert_eq!(
        filtered["next"].as_str().unwrap(),
        format!("{}/api/users/tokens/?limit=1&offset=1&version=2", s.base())
    );
    for (q, field) in [("version=9", "version"), ("enabled=maybe", "enabled"), ("user_id=abc", "user_id")] {
        let (st, body) = s.admin(Method::GET, &format!("{TOKENS}?{q}"), None).await;
        assert_eq!(st, 400, "{q}: {body}");
        assert!(body[field].is_array(), "{q}: {body}");
    }
    // Huge and negative paging values are clamped, never an error.
    let (st, body) =
        s.admin(Method::GET, &format!("{TOKENS}?limit=99999999999999999999&offset=-5"), None).await;
    assert_eq!((st, body["count"].as_i64()), (200, Some(7)));
}

async fn bad_input_gets_clear_4xx(b: Backend) {
    let s = Server::start(b).await;
    let cases: Vec<(Method, String, Option<&str>, u16, &str)> = vec![
        (Method::POST, TOKENS.into(), Some("{not json"), 400, "detail"),
        (Method::POST, TOKENS.into(), Some("[1,2]"), 400, "__all__"),
        // An unknown key is not repeated (it may be a pasted secret): `__all__` says which and how long.
        (Method::POST, TOKENS.into(), Some(r#"{"bogus": 1}"#), 400, "__all__"),
        (Method::POST, TOKENS.into(), Some(r#"{"enabled": "perhaps"}"#), 400, "enabled"),
        (Method::POST, TOKENS.into(), Some(r#"{"allowed_ips": ["10.0.0.0/99"]}"#), 400, "allowed_ips"),
        (Method::POST, TOKENS.into(), Some(r#"{"allowed_ips": "10.0.0.0/8"}"#), 400, "allowed_ips"),
        (Method::POST, TOKENS.into(), Some(r#"{"expires": "2001-01-01T00:00:00Z"}"#), 400, "expires"),
        (Method::POST, TOKENS.into(), Some(r#"{"expires": "soon"}"#), 400, "expires"),
        // `token` is read-only (NetBox 4.7): ignored, a value of the server's own returned.
        (Method::POST, TOKENS.into(), Some(r#"{"token": "short"}"#), 201, "token"),
        (Method::POST, TOKENS.into(), Some(r#"{"pepper_id": 7}"#), 400, "pepper_id"),
        (Method::POST, TOKENS.into(), Some(r#"{"version": 3}"#), 400, "version"),
        (Method::POST, TOKENS.into(), Some(r#"{"user": 999}"#), 400, "user"),
        (
            Method::POST,
            TOKENS.into(),
            Some(r#"{"version": 1, "token": "nbt_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#),
            201,
            "token",
        ),
        (Method::GET, format!("{TOKENS}abc/"), None, 404, "detail"),
        (Method::GET, format!("{TOKENS}-1/"), None, 404, "detail"),
        (Method::GET, format!("{TOKENS}99999999999999999999999/"), None, 404, "detail"),
        (Method::GET, "/api/nothing/".into(), None, 404, "detail"),
    ];
    for (method, path, body, status, field) in cases {
        let body_json = body.map(|b| b.to_owned());
        let (st, resp) = s.admin_raw_body(method.clone(), &path, body_json).await;
        assert_eq!(st, status, "{method} {path} {body:?}: {resp}");
        assert!(resp.get(field).is_some(), "{method} {path} {body:?}: {resp}");
    }
    // Oversized bodies are refused before parsing.
    let big = format!(r#"{{"description": "{}"}}"#, "x".repeat(200_000));
    let (st, _) = s.admin_raw_body(Method::POST, TOKENS, Some(big)).await;
    assert_eq!(st, 413);
    // Deeply nested JSON is refused cheaply.
    let deep = format!("{{\"description\": {}{}}}", "[".repeat(5000), "]".repeat(5000));
    let (st, _) = s.admin_raw_body(Method::POST, TOKENS, Some(deep)).await;
    assert_eq!(st, 400);
}

async fn users_see_only_their_own_tokens(b: Backend) {
    let s = Server::start(b).await;
    let (_, alice) = s.admin(Method::POST, "/api/users/users/", Some(json!({"username": "alice"}))).await;
    let (_, bob) = s.admin(Method::POST, "/api/users/users/", Some(json!({"username": "bob"}))).await;
    let alice_t = s.create_token(json!({"user": alice["id"]})).await;
    let bob_t = s.create_token(json!({"user": bob["id"]})).await;
    let (st, list) = s.raw(Method::GET, TOKENS, Some(&alice_t.bearer()), None, &[]).await;
    assert_eq!(st, 200);
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["id"], alice_t.id);
    let (st, _) =
        s.raw(Method::GET, &format!("{TOKENS}{}/", bob_t.id), Some(&alice_t.bearer()), None, &[]).await;
    assert_eq!(st, 404);
    let (st, _) =
        s.raw(Method::POST, TOKENS, Some(&alice_t.bearer()), Some(json!({"user": bob["id"]})), &[]).await;
    assert_eq!(st, 403);
    let (st, _) = s
        .raw(
            Method::POST,
            "/api/users/users/",
            Some(&alice_t.bearer()),
            Some(json!({"username": "eve"})),
            &[],
        )
        .await;
    assert_eq!(st, 403);
    let (st, me) = s.raw(Method::GET, "/api/authentication-check/", Some(&alice_t.bearer()), None, &[]).await;
    assert_eq!((st, me["username"].as_str()), (200, Some("alice")));
}

async fn api_version_header_and_root(b: Backend) {
    let s = Server::start(b).await;
    let resp = s.admin_response(Method::GET, "/api/").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["api-version"], "4.7");
    let resp = s.client.get(format!("{}/healthz", s.base())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s.client.get(format!("{}/livez", s.base())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp =
        s.client.get(format!("{}/api/", s.base())).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
}

/// `/api/status/` is written straight from the configuration (no map built per request):
/// the same bytes as NetBox's keys in `serde_json`'s (sorted) order, with the running settings.
async fn status_body_is_netbox_keys_and_the_running_settings(b: Backend) {
    let s = Server::start_with(b, |c| {
        c.v1_policy = nbtoken_core::V1Policy::Warn;
        c.peppers = nbtoken_core::PepperRing::new([
            (nbtoken_core::PepperId::new(1).unwrap(), harness::PEPPER.into()),
            (
                nbtoken_core::PepperId::new(7).unwrap(),
                "another-pepper-of-at-least-fifty-characters-long-0123".into(),
            ),
        ])
        .unwrap();
    })
    .await;
    let resp = s.admin_response(Method::GET, "/api/status/").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v = env!("CARGO_PKG_VERSION");
    let nb = nbtoken_server::NETBOX_VERSION;
    assert_eq!(
        resp.text().await.unwrap(),
        format!(
            r#"{{"installed_apps":{{}},"nbtoken-version":"{v}","netbox-full-version":"{nb}-nbtoken-{v}","netbox-version":"{nb}","pepper-ids":[1,7],"plugins":{{}},"rq-workers-running":0,"v1-policy":"warn"}}"#
        )
    );
}

async fn v1_policy_deny_refuses_v1_tokens_with_advice(b: Backend) {
    let s = Server::start_with(b, |c| c.v1_policy = nbtoken_core::V1Policy::Deny).await;
    check(
        &s,
        "GET",
        TOKENS,
        Some(format!("Token {V1_PLAIN}").as_bytes()),
        &format!("403 {}", nbtoken_server::auth::MSG_V1_DENIED),
    )
    .await;
    check(&s, "GET", TOKENS, Some(s.admin_bearer().as_bytes()), "200").await;
}

async fn hints_travel_beside_the_netbox_detail(b: Backend) {
    let s = Server::start(b).await;
    let doubled = format!("Bearer {}", s.admin_bearer());
    let (st, body) = s.raw(Method::GET, TOKENS, Some(doubled.as_bytes()), None, &[]).await;
    assert_eq!(st, 403);
    assert_eq!(body["detail"], FORM);
    assert!(body["hint"].as_str().unwrap().contains("keyword appears twice"));
    let secret = s.admin_v2.split_once('.').unwrap().1;
    assert!(!body.to_string().contains(secret));
}

async fn last_used_is_written_without_waiting(b: Backend) {
    let s = Server::start(b).await;
    let t = s.create_token(json!({})).await;
    let (_, before) = s.admin(Method::GET, &format!("{TOKENS}{}/", t.id), None).await;
    assert_eq!(before["last_used"], Value::Null);
    check(&s, "GET", "/api/status/", Some(&t.bearer()), "200").await;
    let mut seen = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, after) = s.admin(Method::GET, &format!("{TOKENS}{}/", t.id), None).await;
        if !after["last_used"].is_null() {
            seen = after["last_used"].clone();
            break;
        }
    }
    assert!(seen.is_string(), "last_used was never written");
}

async fn last_used_ip_is_recorded(b: Backend) {
    let s = Server::start(b).await;
    let (_, list) = s.admin(Method::GET, TOKENS, None).await;
    let v1 = list["results"].as_array().unwrap().iter().find(|t| t["version"] == 1).unwrap().clone();
    let path = format!("{TOKENS}{}/", v1["id"]);
    assert_eq!(v1["last_used_ip"], Value::Null);
    check(&s, "GET", "/api/status/", Some(format!("Token {V1_PLAIN}").as_bytes()), "200").await;
    // Written in batches, off the request path.
    let mut seen = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let (_, after) = s.admin(Method::GET, &path, None).await;
        if !after["last_used_ip"].is_null() {
            assert!(after["last_used"].is_string(), "last_used_ip without last_used: {after}");
            seen = after["last_used_ip"].clone();
            break;
        }
    }
    assert_eq!(seen, "127.0.0.1", "last_used_ip was never written");
    // An nbtoken extension of the full shape, absent from the brief one.
    let (_, brief) = s.admin(Method::GET, &format!("{path}?brief=1"), None).await;
    assert!(brief.get("last_used_ip").is_none());
}

async fn every_v1_use_is_counted_for_today(b: Backend) {
    use nbtoken_store::Store;
    let s = Server::start(b).await;
    let (_, list) = s.admin(Method::GET, TOKENS, None).await;
    let v1 = list["results"].as_array().unwrap().iter().find(|t| t["version"] == 1).unwrap()["id"]
        .as_i64()
        .unwrap();
    const N: u64 = 7;
    // Within a minute these queue one last_used write, but each is a use.
    for _ in 0..N {
        check(&s, "GET", "/api/status/", Some(format!("Token {V1_PLAIN}").as_bytes()), "200").await;
    }
    // Neither a v2 use nor a refused v1 token counts.
    check(&s, "GET", "/api/status/", Some(s.admin_bearer().as_bytes()), "200").await;
    check(&s, "GET", TOKENS, Some(format!("Token {}", "f".repeat(40)).as_bytes()), "403 Invalid v1 token")
        .await;
    let today = time::OffsetDateTime::now_utc().date();
    let counted = || async {
        let days = s.store.v1_uses_per_day(1, None).await.unwrap();
        assert!(days.iter().all(|d| d.day == today), "{days:?}");
        days.iter().map(|d| d.uses).sum::<u64>()
    };
    // Counted in memory and added with the batches, off the request path.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while counted().await < N && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(counted().await, N);
    let of_v1 = s.store.v1_uses_per_day(30, Some(v1)).await.unwrap();
    assert_eq!(of_v1.iter().map(|d| (d.day, d.uses)).collect::<Vec<_>>(), [(today, N)]);
}

async fn v1_policy_warn_announces_deprecation_and_sunset(b: Backend) {
    let s = Server::start_with(b, |c| {
        c.v1_sunset = nbtoken_server::json::parse_timestamp("2027-06-30T00:00:00Z")
    })
    .await;
    let resp = v1_list(&s).await;
    assert_eq!(resp.headers()["deprecation"], "@1767225600");
    assert_eq!(resp.headers()["sunset"], "Wed, 30 Jun 2027 00:00:00 GMT");
    let resp = s.admin_response(Method::GET, TOKENS).await;
    assert!(resp.headers().get("deprecation").is_none() && resp.headers().get("sunset").is_none());
}

/// The token list read with the v1 token: must succeed, with whatever headers the policy adds.
async fn v1_list(s: &Server) -> reqwest::Response {
    let resp = s
        .client
        .get(format!("{}{TOKENS}", s.base()))
        .header("authorization", format!("Token {V1_PLAIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp
}

async fn v1_policy_allow_adds_no_headers(b: Backend) {
    let s = Server::start_with(b, |c| c.v1_policy = nbtoken_core::V1Policy::Allow).await;
    let resp = v1_list(&s).await;
    assert!(resp.headers().get("deprecation").is_none());
}

fn limited(c: &mut nbtoken_server::Config, per_ip: u32, per_key: u32) {
    c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    c.limits = nbtoken_server::limit::LimitConfig { per_ip_per_minute: per_ip, per_key_per_minute: per_key };
}

async fn failed_attempts_are_rate_limited_per_client(b: Backend) {
    let s = Server::start_with(b, |c| limited(c, 3, 0)).await;
    let attacker = [("x-forwarded-for", "198.51.100.66")];
    let user = [("x-forwarded-for", "198.51.100.7")];
    let wrong = format!("Bearer nbt_{}.{}", &s.admin_v2[4..16], "w".repeat(40));
    // The budget is three failures a minute; the fourth blocks.
    for _ in 0..3 {
        assert_eq!(s.raw(Method::GET, TOKENS, Some(wrong.as_bytes()), None, &attacker).await.0, 403);
    }
    assert_eq!(s.raw(Method::GET, TOKENS, Some(wrong.as_bytes()), None, &attacker).await.0, 429);
    // Blocked clients are refused before any token is checked: even a right guess fails.
    let resp = s
        .client
        .get(format!("{}{TOKENS}", s.base()))
        .header("authorization", s.admin_bearer())
        .header("x-forwarded-for", "198.51.100.66")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = resp.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().starts_with("Too many failed authentication attempts"));
    // Another client is not slowed by the attacker's failures.
    let (st, _) = s.raw(Method::GET, TOKENS, Some(s.admin_bearer().as_bytes()), None, &user).await;
    assert_eq!(st, 200);
    // Malformed headers count as failures too.
    let other = [("x-forwarded-for", "198.51.100.99")];
    for _ in 0..3 {
        assert_eq!(s.raw(Method::GET, TOKENS, Some(b"Bearer"), None, &other).await.0, 403);
    }
    assert_eq!(s.raw(Method::GET, TOKENS, Some(b"Bearer"), None, &other).await.0, 429);
}

async fn failed_attempts_are_rate_limited_per_key(b: Backend) {
    let s = Server::start_with(b, |c| limited(c, 0, 2)).await;
    let victim = s.create_token(json!({})).await;
    let wrong = format!("Bearer nbt_{}.{}", victim.key, "q".repeat(40));
    // Two failures a minute on one key, from different clients; the third blocks the key.
    for xff in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(
            s.raw(Method::GET, TOKENS, Some(wrong.as_bytes()), None, &[("x-forwarded-for", xff)]).await.0,
            403
        );
    }
    let third = [("x-forwarded-for", "198.51.100.3")];
    assert_eq!(s.raw(Method::GET, TOKENS, Some(wrong.as_bytes()), None, &third).await.0, 429);
    // The key is protected whoever asks, even with its right secret; other keys are not affected.
    assert_eq!(s.raw(Method::GET, TOKENS, Some(&victim.bearer()), None, &third).await.0, 429);
    assert_eq!(s.raw(Method::GET, TOKENS, Some(s.admin_bearer().as_bytes()), None, &third).await.0, 200);
}

async fn password_guessing_at_provision_is_rate_limited(b: Backend) {
    let s = Server::start_with(b, |c| limited(c, 2, 0)).await;
    let guess = json!({"username": "admin", "password": "not-the-password"});
    let xff = [("x-forwarded-for", "198.51.100.5")];
    for _ in 0..2 {
        let (st, _) =
            s.raw(Method::POST, "/api/users/tokens/provision/", None, Some(guess.clone()), &xff).await;
        assert_eq!(st, 403);
    }
    // The third failure blocks.
    let right = json!({"username": "admin", "password": harness::ADMIN_PASSWORD});
    let (st, _) = s.raw(Method::POST, "/api/users/tokens/provision/", None, Some(guess), &xff).await;
    assert_eq!(st, 429);
    let (st, _) = s.raw(Method::POST, "/api/users/tokens/provision/", None, Some(right.clone()), &xff).await;
    assert_eq!(st, 429, "a blocked client cannot succeed, even with the right password");
    let (st, _) = s.provision(right).await;
    assert_eq!(st, 201);
}

/// NetBox 4.7's `TokenSerializer.allowed_ips` defaults to `[]`: a token made or replaced (PUT)
/// through REST without the field reads back `[]`; a token made elsewhere (here the first
/// admin token, made in the store) keeps `null` through a PATCH that leaves the field alone.
async fn rest_tokens_without_allowed_ips_read_back_as_an_empty_list(b: Backend) {
    let s = Server::start(b).await;
    let (status, made) = s.admin(Method::POST, TOKENS, Some(json!({"description": "plain"}))).await;
    assert_eq!((status, &made["allowed_ips"]), (201, &json!([])), "{made}");
    let one = format!("{TOKENS}{}/", made["id"]);
    assert_eq!(s.admin(Method::GET, &one, None).await.1["allowed_ips"], json!([]));
    let (_, fenced) = s.admin(Method::PATCH, &one, Some(json!({"allowed_ips": ["10.0.0.0/8"]}))).await;
    assert_eq!(fenced["allowed_ips"], json!(["10.0.0.0/8"]));
    let (status, put) = s.admin(Method::PUT, &one, Some(json!({"description": "put"}))).await;
    assert_eq!((status, &put["allowed_ips"]), (200, &json!([])), "{put}");
    let (_, cleared) = s.admin(Method::PATCH, &one, Some(json!({"allowed_ips": null}))).await;
    assert_eq!(cleared["allowed_ips"], Value::Null);

    let (_, list) = s.admin(Method::GET, &format!("{TOKENS}?description="), None).await;
    let first = list["results"].as_array().unwrap().iter().find(|t| t["id"] != made["id"]).unwrap().clone();
    assert_eq!(first["allowed_ips"], Value::Null, "the admin token was made in the store: {first}");
    let admin_one = format!("{TOKENS}{}/", first["id"]);
    let (_, renamed) = s.admin(Method::PATCH, &admin_one, Some(json!({"description": "renamed"}))).await;
    assert_eq!(renamed["allowed_ips"], Value::Null, "{renamed}");
}

/// NetBox's `TokenProvisionSerializer` has no `pepper_id`; the rest of the shape stays.
async fn provision_answer_has_no_pepper_id(b: Backend) {
    let s = Server::start(b).await;
    let user = json!({"username": "pat", "password": "Pat-password-1"});
    assert_eq!(s.admin(Method::POST, "/api/users/users/", Some(user.clone())).await.0, 201);
    let (status, body) = s.provision(user).await;
    assert_eq!(status, 201, "{body}");
    assert!(body.get("pepper_id").is_none(), "{body}");
    assert_eq!(body["allowed_ips"], json!([]));
    assert_eq!(body["token"].as_str().map(str::len), Some(40));
    // A read of the same token still shows its pepper id.
    let (_, read) = s.admin(Method::GET, &format!("{TOKENS}{}/", body["id"]), None).await;
    assert_eq!(read["pepper_id"], 1);
}

/// `?description=` as NetBox's `MultiValueCharFilter`: exact and case-sensitive, values OR'ed,
/// blank values dropped, values trimmed, `null` for a NULL description (no token has one).
async fn description_filter_is_exact_and_takes_several_values(b: Backend) {
    let s = Server::start(b).await;
    for d in ["ro", "RO", "ro runner", "null", "a&b"] {
        assert_eq!(s.admin(Method::POST, TOKENS, Some(json!({"description": d}))).await.0, 201);
    }
    let (_, all) = s.admin(Method::GET, TOKENS, None).await;
    let total = all["count"].as_u64().unwrap();
    let s = &s;
    let descriptions = |query: &str| {
        let path = format!("{TOKENS}?{query}");
        async move {
            let (status, body) = s.admin(Method::GET, &path, None).await;
            assert_eq!(status, 200, "{path}: {body}");
            let mut d: Vec<String> = body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["description"].as_str().unwrap().to_owned())
                .collect();
            d.sort();
            (body["count"].as_u64().unwrap(), d)
        }
    };
    let cases: &[(&str, &[&str])] = &[
        ("description=ro", &["ro"]),
        ("description=RO", &["RO"]),
        ("description=r", &[]),
        ("description=ro&description=ro%20runner&description=absent", &["ro", "ro runner"]),
        ("description=%20ro%20", &["ro"]),
        ("description=&description=RO", &["RO"]),
        ("description=null", &[]),
        ("description=null&description=ro", &["ro"]),
        ("description=a%26b", &["a&b"]),
        ("description=ro&enabled=false", &[]),
    ];
    for (query, expected) in cases {
        let (count, got) = descriptions(query).await;
        assert_eq!(
            (count, got.iter().map(String::as_str).collect::<Vec<_>>()),
            (expected.len() as u64, expected.to_vec()),
            "{query}"
        );
    }
    // A blank value filters nothing.
    assert_eq!(descriptions("description=").await.0, total);
}

/// NetBox 4.7.3's default validators, their messages on `__all__`, on creation and change;
/// a blank password is DRF's field error.
async fn weak_passwords_are_refused_on_all_in_netbox_words(b: Backend) {
    let s = Server::start(b).await;
    let short = "This password is too short. It must contain at least 12 characters.";
    let cases: &[(&str, &[&str])] = &[
        ("abc", &[short, "Password must have at least one numeral."]),
        ("abcdefghijkl", &["Password must have at least one numeral."]),
        ("abcdefghijk1", &["Password must have at least one uppercase letter."]),
        ("ABCDEFGHIJK1", &["Password must have at least one lowercase letter."]),
        ("Abcdefghij1", &[short]),
    ];
    for (i, (pw, messages)) in cases.iter().enumerate() {
        let create = json!({"username": format!("weak{i}"), "password": pw});
        let (status, body) = s.admin(Method::POST, "/api/users/users/", Some(create)).await;
        assert_eq!((status, body), (400, json!({"__all__": messages})), "{pw:?}");
    }
    let (status, body) = s
        .admin(Method::POST, "/api/users/users/", Some(json!({"username": "ok", "password": "Abcdefghijk1"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let one = format!("/api/users/users/{}/", body["id"]);
    let (status, body) = s.admin(Method::PATCH, &one, Some(json!({"password": "abcdefghijk1"}))).await;
    assert_eq!(
        (status, body),
        (400, json!({"__all__": ["Password must have at least one uppercase letter."]}))
    );
    let (status, body) = s.admin(Method::PATCH, &one, Some(json!({"password": "  "}))).await;
    assert_eq!((status, body), (400, json!({"password": ["This field may not be blank."]})));
}
