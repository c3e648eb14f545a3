//! Hostile and malformed input over a real socket: injection-looking strings in every
//! field, filter and path id, bad networks and expiries, bodies that are not JSON objects,
//! odd `Authorization` headers, and racing requests on one token. Every answer is a 4xx
//! (or success) with a JSON body, never a 5xx, and the database stays as created.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::harness;

on_every_backend!(
    injection_looking_input_is_stored_verbatim_or_refused,
    bad_networks_and_expiries_are_400,
    bodies_that_are_not_json_objects_are_400,
    odd_authorization_headers_are_403_or_accepted,
    racing_changes_and_deletes_of_one_token_never_fail_with_5xx,
    racing_creates_with_one_client_value_ignore_it,
);

use std::collections::BTreeSet;
use std::sync::Arc;

use harness::{Backend, Server};
use reqwest::header::HeaderValue;
use reqwest::Method;
use serde_json::{json, Value};

const TOKENS: &str = "/api/users/tokens/";

/// Found by the `token_body` fuzz target (`fuzz/regressions/token_body/negative-year`): `time`
/// took a signed year, so the API accepted an instant it could neither store nor show again.
/// The second input (`offset-past-year-9999`) panicked converting to UTC.
#[test]
fn timestamps_outside_years_1_to_9999_are_refused_not_a_panic() {
    use nbtoken_manage::input::{opt_datetime, parse_object};
    use nbtoken_manage::json::parse_timestamp;
    use nbtoken_server::error::ApiError;

    assert_eq!(parse_timestamp("-2026-01-02T03:04:11.11"), None);
    for raw in
        [&br#"{"expires": "-2026-01-02T03:04:11.11"}"#[..], br#"{"expires": "9999-12-31T23:59:59-01:00"}"#]
    {
        let m = parse_object(raw).unwrap();
        assert_eq!(ApiError::from(opt_datetime(&m, "expires").unwrap_err()).status(), 400);
    }
}

/// One request of a matrix and what must come back.
struct Case {
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    /// Expected status.
    status: u16,
    /// A key the JSON answer must have: `detail`, a field name, or `id` for a success.
    key: &'static str,
}

fn case(
    method: &'static str,
    path: impl Into<String>,
    body: Option<&[u8]>,
    status: u16,
    key: &'static str,
) -> Case {
    Case { method, path: path.into(), body: body.map(<[u8]>::to_vec), status, key }
}

/// A `POST /api/users/tokens/` case with a JSON body.
fn post(body: Value, status: u16, key: &'static str) -> Case {
    case("POST", TOKENS, Some(body.to_string().as_bytes()), status, key)
}

/// Sends a request with raw `Authorization` values (each one a header) and a raw body.
async fn send(s: &Server, method: &str, path: &str, auth: &[Vec<u8>], body: Option<Vec<u8>>) -> (u16, Value) {
    let mut req =
        s.client.request(Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", s.base()));
    for a in auth {
        req = req.header("authorization", HeaderValue::from_bytes(a).unwrap());
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    if status == 204 {
        assert!(bytes.is_empty(), "204 with a body");
        return (status, Value::Null);
    }
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!("{method} {path}: {status} without a JSON body: {:?}", String::from_utf8_lossy(&bytes))
    });
    (status, body)
}

/// Runs a matrix as the admin; returns the answers and records the ids of created tokens.
async fn check(s: &Server, cases: &[Case], created: &mut Vec<i64>) -> Vec<Value> {
    let auth = [s.admin_bearer().into_bytes()];
    let mut answers = Vec::new();
    for c in cases {
        let (status, body) = send(s, c.method, &c.path, &auth, c.body.clone()).await;
        let shown = c.body.as_deref().map(String::from_utf8_lossy);
        assert_eq!(status, c.status, "{} {} {shown:?}: {body}", c.method, c.path);
        assert!(body.is_object() && body.get(c.key).is_some(), "{} {} {shown:?}: {body}", c.method, c.path);
        if status == 201 {
            created.push(body["id"].as_i64().unwrap());
        }
        answers.push(body);
    }
    answers
}

/// The ids the token list shows (one page of up to 1000), checked against its count.
async fn listed_ids(s: &Server) -> BTreeSet<i64> {
    let (status, list) = s.admin(Method::GET, &format!("{TOKENS}?limit=1000"), None).await;
    assert_eq!(status, 200, "{list}");
    let ids: BTreeSet<i64> =
        list["results"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(list["count"].as_u64().unwrap(), ids.len() as u64, "{list}");
    ids
}

/// The harness's two tokens plus the ones created here, and nothing else.
async fn assert_tokens_are(s: &Server, before: &BTreeSet<i64>, created: &[i64]) {
    let mut expected = before.clone();
    expected.extend(created.iter().copied());
    assert_eq!(expected.len(), before.len() + created.len(), "an id was handed out twice");
    assert_eq!(listed_ids(s).await, expected);
}

async fn injection_looking_input_is_stored_verbatim_or_refused(b: Backend) {
    let s = Server::start(b).await;
    let before = listed_ids(&s).await;
    let mut created = Vec::new();

    // Stored exactly as sent, and shown back byte for byte.
    let long = "🦀é\u{0301}".repeat(66); // 198 characters, 594 bytes
    let stored = [
        "'; DROP TABLE users_token; --",
        "../../etc/passwd",
        "%00",
        "\" OR \"\"=\"",
        "$1 \\x00 \\\\ ${jndi:ldap://x} {{7*7}} <script>",
        "\u{202e}\u{200b}\u{feff}",
        long.as_str(),
    ];
    let cases: Vec<Case> = stored.iter().map(|d| post(json!({"description": d}), 201, "id")).collect();
    let answers = check(&s, &cases, &mut created).await;
    for (d, a) in stored.iter().zip(&answers) {
        assert_eq!(a["description"].as_str(), Some(*d));
        let (_, got) = s.admin(Method::GET, &format!("{TOKENS}{}/", a["id"]), None).await;
        assert_eq!(got["description"].as_str(), Some(*d), "round trip");
    }

    let ids = [
        "1;DROP",
        "..%2F..%2F",
        "0",
        "-3",
        "1e3",
        "1%20OR%201=1",
        "%27",
        "0x1",
        "99999999999999999999",
        "%00",
        // Not the canonical form of token 1's id, so not token 1 (a DELETE must not remove it).
        "+1",
        "%2B1",
        "%201",
        "1_0",
    ];
    let mut cases = vec![
        // NUL characters are refused as Django refuses them (PostgreSQL cannot store them).
        post(json!({"description": "a\u{0}b"}), 400, "description"),
        post(json!({"description": "\u{0}"}), 400, "description"),
        post(json!({"description": "🦀".repeat(201)}), 400, "description"),
        post(json!({"description": "x".repeat(50_000)}), 400, "description"),
        post(json!({"user": "' OR 1=1 --"}), 400, "user"),
        post(json!({"user": {"username": "' OR 1=1 --"}}), 400, "user"),
        post(json!({"user": {"username": "a\u{0}"}}), 400, "user"),
        post(json!({"user": "1; DROP TABLE users_token"}), 400, "user"),
        post(json!({"version": "1;DROP"}), 400, "version"),
        post(json!({"pepper_id": "1 OR 1=1"}), 400, "pepper_id"),
        post(json!({"enabled": "1; --"}), 400, "enabled"),
        // `token` is read-only (NetBox 4.7): ignored, a value of the server's own returned.
        post(json!({"token": "'; DROP TABLE users_token; --"}), 201, "token"),
        post(json!({"version": 1, "token": "'; DROP TABLE users_token; --0123456789"}), 201, "token"),
        // An unknown key is refused without being repeated.
        post(json!({"'; DROP TABLE users_token; --": 1}), 400, "__all__"),
        // Filters: refused when typed, matched literally (and so finding nothing) when text.
        case("GET", format!("{TOKENS}?user=%27%20OR%201%3D1%20--"), None, 200, "count"),
        case("GET", format!("{TOKENS}?user=admin%27--"), None, 200, "count"),
        case("GET", format!("{TOKENS}?key=%27"), None, 200, "count"),
        case("GET", format!("{TOKENS}?key=%25"), None, 200, "count"),
        case("GET", format!("{TOKENS}?key=_"), None, 200, "count"),
        case("GET", format!("{TOKENS}?user=%00"), None, 400, "user"),
        case("GET", format!("{TOKENS}?key=a%00b"), None, 400, "key"),
        // A parameter name of the client's own is not repeated in the answer.
        case("GET", format!("{TOKENS}?brief=1&%00=1"), None, 400, "detail"),
        case("GET", "/api/users/users/?username=a%00", None, 400, "username"),
        case("GET", format!("{TOKENS}?user_id=-1"), None, 200, "count"),
        case("GET", format!("{TOKENS}?version=1;DROP"), None, 400, "version"),
        case("GET", format!("{TOKENS}?id=1%20OR%201=1"), None, 400, "id"),
        case("GET", format!("{TOKENS}?id=99999999999999999999"), None, 400, "id"),
        case("GET", format!("{TOKENS}?user_id=1;DROP"), None, 400, "user_id"),
        case("GET", format!("{TOKENS}?enabled=1%20OR%201"), None, 400, "enabled"),
        case("GET", format!("{TOKENS}?pepper_id=1%27"), None, 400, "pepper_id"),
        case("GET", format!("{TOKENS}?limit=-5&offset=abc"), None, 200, "count"),
        case("GET", format!("{TOKENS}?limit=99999999999999999999"), None, 200, "count"),
        case("GET", format!("{TOKENS}?offset=99999999999999999999"), None, 200, "count"),
        case("GET", format!("{TOKENS}?offset=9223372036854775807"), None, 200, "count"),
        case("GET", "/api/users/users/?username=%27%20OR%201%3D1%20--", None, 200, "count"),
        case("GET", "/api/users/users/?id=1%20OR%201=1", None, 400, "id"),
    ];
    for id in ids {
        for method in ["GET", "PATCH", "PUT", "DELETE"] {
            let body = (method == "PATCH" || method == "PUT").then_some(&b"{\"enabled\": false}"[..]);
            cases.push(case(method, format!("{TOKENS}{id}/"), body, 404, "detail"));
        }
        cases.push(case("GET", format!("/api/users/users/{id}/"), None, 404, "detail"));
    }
    let answers = check(&s, &cases, &mut created).await;
    // Text filters matched nothing (and so neither were they read as SQL).
    for (c, a) in cases.iter().zip(&answers) {
        if c.method == "GET" && c.status == 200 && !c.path.contains("limit") && !c.path.contains("offset") {
            assert_eq!(a["count"], 0, "{}: {a}", c.path);
        }
    }
    // The limit and offset garbage fell back to NetBox's defaults.
    let (_, page) = s.admin(Method::GET, &format!("{TOKENS}?limit=-5&offset=abc"), None).await;
    assert!(page["next"].is_null() && page["previous"].is_null(), "{page}");
    let (_, page) = s.admin(Method::GET, &format!("{TOKENS}?offset=9223372036854775807"), None).await;
    assert_eq!(page["results"], json!([]), "{page}");

    // Exact filters on the stored injection string find exactly that token.
    let (_, found) =
        s.admin(Method::GET, &format!("{TOKENS}?id={}&brief=1", answers_id(&s, stored[0]).await), None).await;
    assert_eq!(found["results"][0]["description"].as_str(), Some(stored[0]));

    // Usernames are refused by Django's validator; other user fields are stored verbatim.
    let (st, u) = s
        .admin(Method::POST, "/api/users/users/", Some(json!({"username": "x'; DROP TABLE users; --"})))
        .await;
    assert_eq!((st, u["username"].is_array()), (400, true), "{u}");
    let (st, u) = s
        .admin(
            Method::POST,
            "/api/users/users/",
            Some(json!({"username": "robert", "first_name": stored[0], "last_name": stored[1], "email": "%00"})),
        )
        .await;
    assert_eq!(st, 201, "{u}");
    let (_, got) = s.admin(Method::GET, &format!("/api/users/users/{}/", u["id"]), None).await;
    assert_eq!((got["first_name"].as_str(), got["last_name"].as_str()), (Some(stored[0]), Some(stored[1])));
    for body in [json!({"username": "nul\u{0}"}), json!({"username": "robert2", "first_name": "\u{0}"})] {
        let (st, e) = s.admin(Method::POST, "/api/users/users/", Some(body)).await;
        assert_eq!(st, 400, "{e}");
    }
    let (st, e) = s.provision(json!({"username": "admin\u{0}", "password": "x"})).await;
    assert_eq!((st, e["detail"].as_str()), (403, Some("Invalid username/password")));
    let (_, users) = s.admin(Method::GET, "/api/users/users/", None).await;
    assert_eq!(users["count"], 2, "{users}");

    assert_tokens_are(&s, &before, &created).await;
}

/// The id of the one token with this description.
async fn answers_id(s: &Server, description: &str) -> i64 {
    let (_, list) = s.admin(Method::GET, &format!("{TOKENS}?limit=1000"), None).await;
    let hits: Vec<i64> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["description"] == description)
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(hits.len(), 1, "{description:?}");
    hits[0]
}

async fn bad_networks_and_expiries_are_400(b: Backend) {
    let s = Server::start(b).await;
    let before = listed_ids(&s).await;
    let mut created = Vec::new();
    let hundred: Vec<String> = (0..100).map(|i| format!("10.{i}.0.0/16")).collect();
    let hundred_and_one: Vec<String> = (0..101).map(|i| format!("10.{i}.0.0/16")).collect();
    let cases = [
        post(json!({"allowed_ips": ["10.0.0.0/33"]}), 400, "allowed_ips"),
        post(json!({"allowed_ips": ["::/129"]}), 400, "allowed_ips"),
        post(json!({"allowed_ips": ["1.2.3"]}), 400, "allowed_ips"),
        post(json!({"allowed_ips": ["10.0.0.0/8", ""]}), 400, "allowed_ips"),
        post(json!({"allowed_ips": ["10.0.0.0/8; DROP TABLE users_token"]}), 400, "allowed_ips"),
        post(json!({"allowed_ips": ["10.0.0.0/-1"]}), 400, "allowed_ips"),
        post(json!({"allowed_ips": ["300.0.0.0/8"]}), 400, "allowed_ips"),
        post(json!({"allowed_ips": ["10.0.0.0/8\u{0}"]}), 400, "allowed_ips"),
        post(json!({"allowed_ips": [10]}), 400, "allowed_ips"),
        post(json!({"allowed_ips": [["10.0.0.0/8"]]}), 400, "allowed_ips"),
        post(json!({"allowed_ips": {"a": "10.0.0.0/8"}}), 400, "allowed_ips"),
        post(json!({"allowed_ips": hundred_and_one}), 400, "allowed_ips"),
        post(json!({"expires": "0001-01-01T00:00:00Z"}), 400, "expires"),
        post(json!({"expires": "0000-01-01T00:00:00Z"}), 400, "expires"),
        post(json!({"expires": "-2026-01-02T03:04:11"}), 400, "expires"),
        post(json!({"expires": "+2026-01-02T03:04:11"}), 400, "expires"),
        // Years past 9999 in UTC: refused (this used to panic converting to UTC).
        post(json!({"expires": "9999-12-31T23:59:59-01:00"}), 400, "expires"),
        post(json!({"expires": "10000-01-01T00:00:00Z"}), 400, "expires"),
        post(json!({"expires": "next tuesday"}), 400, "expires"),
        post(json!({"expires": "2030-02-30T00:00:00Z"}), 400, "expires"),
        post(json!({"expires": "2030-01-01T25:00:00Z"}), 400, "expires"),
        post(json!({"expires": "2030-01-01T00:00:00+25:00"}), 400, "expires"),
        post(json!({"expires": "'; DROP TABLE users_token; --"}), 400, "expires"),
        post(json!({"expires": 1_767_225_600}), 400, "expires"),
        post(json!({"expires": true}), 400, "expires"),
        post(json!({"expires": ["2030-01-01T00:00:00Z"]}), 400, "expires"),
        // Accepted.
        post(json!({"allowed_ips": ["10.0.0.0/8", "10.1.0.0/16"]}), 201, "id"),
        post(
            json!({"allowed_ips": ["10.0.0.0/8", "10.0.0.0/8", " 10.0.0.0/8 ", "192.0.2.1", "192.0.2.1/32"]}),
            201,
            "id",
        ),
        post(json!({"allowed_ips": hundred}), 201, "id"),
        post(json!({"expires": "9999-12-31T23:59:59Z"}), 201, "id"),
        post(json!({"expires": "9999-12-31T23:59:59.999999+00:00"}), 201, "id"),
    ];
    let answers = check(&s, &cases, &mut created).await;
    let ok = &answers[answers.len() - 5..];
    // Overlapping networks are kept as given; duplicates once.
    assert_eq!(ok[0]["allowed_ips"], json!(["10.0.0.0/8", "10.1.0.0/16"]));
    assert_eq!(ok[1]["allowed_ips"], json!(["10.0.0.0/8", "192.0.2.1/32"]));
    assert_eq!(ok[2]["allowed_ips"].as_array().unwrap().len(), 100);
    assert_eq!(ok[3]["expires"], "9999-12-31T23:59:59Z");
    assert_eq!(ok[4]["expires"], "9999-12-31T23:59:59.999999Z");
    for a in ok {
        let (_, got) = s.admin(Method::GET, &format!("{TOKENS}{}/", a["id"]), None).await;
        assert_eq!((&got["allowed_ips"], &got["expires"]), (&a["allowed_ips"], &a["expires"]), "round trip");
    }

    // The same values on an existing token: refused alike, never a 5xx.
    let id = ok[0]["id"].as_i64().unwrap();
    let path = format!("{TOKENS}{id}/");
    let patch = |body: Value, status, key| {
        case("PATCH", path.clone(), Some(body.to_string().as_bytes()), status, key)
    };
    let cases = [
        patch(json!({"allowed_ips": ["::/129"]}), 400, "allowed_ips"),
        patch(json!({"allowed_ips": hundred_and_one_nets()}), 400, "allowed_ips"),
        patch(json!({"expires": "-2026-01-02T03:04:11"}), 400, "expires"),
        patch(json!({"expires": "9999-12-31T23:59:59-01:00"}), 400, "expires"),
        patch(json!({"expires": "0000-01-01T00:00:00Z"}), 400, "expires"),
        patch(json!({"expires": 0}), 400, "expires"),
        patch(json!({"description": "a\u{0}"}), 400, "description"),
        patch(
            json!({"expires": "9999-12-31T23:59:59Z", "allowed_ips": ["2001:db8::/32", "2001:db8::/32"]}),
            200,
            "id",
        ),
    ];
    let answers = check(&s, &cases, &mut created).await;
    let last = answers.last().unwrap();
    assert_eq!(
        (&last["expires"], &last["allowed_ips"]),
        (&json!("9999-12-31T23:59:59Z"), &json!(["2001:db8::/32"]))
    );
    // A refused change changed nothing.
    let (_, got) = s.admin(Method::GET, &path, None).await;
    assert_eq!(got["description"], "");

    assert_tokens_are(&s, &before, &created).await;
}

fn hundred_and_one_nets() -> Vec<String> {
    (0..101).map(|i| format!("2001:db8:{i:x}::/48")).collect()
}

async fn bodies_that_are_not_json_objects_are_400(b: Backend) {
    let s = Server::start(b).await;
    let before = listed_ids(&s).await;
    let mut created = Vec::new();
    let raw = |body: &[u8], status, key| case("POST", TOKENS, Some(body), status, key);
    let cases = [
        raw(&[0xff, 0xfe], 400, "detail"),
        raw(&[0xff, 0xfe, b'{', 0, b'}', 0], 400, "detail"),
        raw(b"{\"description\": \"\xff\xfe\"}", 400, "detail"),
        raw(b"{\"description\": \"\xc3\x28\"}", 400, "detail"),
        raw(b"{\"description\": \"\\ud800\"}", 400, "detail"),
        raw(b"\"a string\"", 400, "__all__"),
        raw(b"[]", 400, "__all__"),
        raw(b"[{\"description\": \"x\"}]", 400, "__all__"),
        raw(b"42", 400, "__all__"),
        raw(b"1e999", 400, "detail"),
        raw(b"null", 400, "__all__"),
        raw(b"true", 400, "__all__"),
        // A byte order mark is not JSON (Python's json refuses it too).
        raw(b"\xef\xbb\xbf{\"description\": \"bom\"}", 400, "detail"),
        raw(b"{\"description\": \"x\"} trailing", 400, "detail"),
        raw(b"{\"description\": \"x\",}", 400, "detail"),
        raw(b"{'description': 'x'}", 400, "detail"),
        raw(b"{\"description\": NaN}", 400, "detail"),
        raw(b"\x00", 400, "detail"),
        raw(b"   ", 400, "detail"),
        raw(b"{\"enabled\": 1e999}", 400, "detail"),
        raw(b"{\"version\": 1e2}", 400, "version"),
        raw(b"{\"version\": 18446744073709551616}", 400, "version"),
        raw(b"{\"pepper_id\": -1}", 400, "pepper_id"),
        raw(b"{\"pepper_id\": 99999999999}", 400, "pepper_id"),
        // Duplicate keys: the last one wins, as in Python's json (and so in NetBox).
        raw(b"{\"description\": \"first\", \"description\": \"second\"}", 201, "id"),
        raw(
            b"{\"enabled\": true, \"enabled\": false, \"write_enabled\": \"x\", \"write_enabled\": false}",
            201,
            "id",
        ),
        // An empty body is an empty object: a token with every default.
        raw(b"", 201, "id"),
        case("PATCH", format!("{TOKENS}1/"), Some(&[0xff, 0xfe]), 400, "detail"),
        case("PATCH", format!("{TOKENS}1/"), Some(b"[]"), 400, "__all__"),
        case("PUT", format!("{TOKENS}1/"), Some(b"null"), 400, "__all__"),
        case("POST", "/api/users/tokens/provision/", Some(&[0xff, 0xfe]), 400, "detail"),
        case("POST", "/api/users/tokens/provision/", Some(b"[\"admin\"]"), 400, "__all__"),
        case("POST", "/api/users/users/", Some(b"\"admin\""), 400, "__all__"),
    ];
    let answers = check(&s, &cases, &mut created).await;
    let n = cases.iter().position(|c| c.status == 201).unwrap();
    assert_eq!(answers[n]["description"], "second");
    assert_eq!(
        (&answers[n + 1]["enabled"], &answers[n + 1]["write_enabled"]),
        (&json!(false), &json!(false))
    );
    assert_eq!((&answers[n + 2]["enabled"], &answers[n + 2]["description"]), (&json!(true), &json!("")));
    assert_tokens_are(&s, &before, &created).await;
}

async fn odd_authorization_headers_are_403_or_accepted(b: Backend) {
    let s = Server::start(b).await;
    let before = listed_ids(&s).await;
    let admin = s.admin_v2.clone();
    let bytes = |v: String| v.into_bytes();
    let mut non_utf8 = b"Bearer ".to_vec();
    non_utf8.extend_from_slice(&[0xff, 0xfe, 0x80]);
    let mut non_utf8_token = b"Token ".to_vec();
    non_utf8_token.extend(std::iter::repeat_n(0xe9, 40));
    let cases: Vec<(Vec<Vec<u8>>, u16, &str)> = vec![
        (vec![non_utf8], 403, "detail"),
        (vec![non_utf8_token], 403, "detail"),
        (vec![bytes(format!("Bearer {}", "a".repeat(10 * 1024)))], 403, "detail"),
        (vec![bytes(format!("Token {}", "a".repeat(10 * 1024)))], 403, "detail"),
        (vec![bytes(format!("Bearer nbt_{}", "k".repeat(10_000)))], 403, "detail"),
        (vec![bytes(format!("Bearer nbt_{}.{}", "k".repeat(5_000), "s".repeat(5_000)))], 403, "detail"),
        (vec![bytes(format!("Bearer nbt_'%20OR%201=1.{}", "s".repeat(40)))], 403, "detail"),
        (vec![bytes(format!("Token '; DROP TABLE users_token; --{}", "x".repeat(11)))], 403, "detail"),
        (vec![bytes(format!("Bearer {}{admin}", " ".repeat(1000)))], 200, "count"),
        (vec![bytes(format!("Bearer\t{admin}"))], 200, "count"),
        (vec![bytes(format!("Bearer \t \t{admin}"))], 200, "count"),
        (vec![bytes(format!("Bearer {admin}{}", " ".repeat(1000)))], 200, "count"),
        (vec![bytes(" ".repeat(10 * 1024))], 403, "detail"),
        (vec![bytes(format!("Bearer {admin}")), bytes(format!("Bearer {admin}"))], 403, "hint"),
        (vec![bytes(format!("Bearer {admin}")), bytes("Bearer x".into())], 403, "hint"),
        (vec![bytes(String::new()), bytes(format!("Bearer {admin}"))], 403, "hint"),
    ];
    for (auth, status, key) in &cases {
        let (st, body) = send(&s, "GET", TOKENS, auth, None).await;
        let shown: Vec<String> =
            auth.iter().map(|a| String::from_utf8_lossy(&a[..a.len().min(40)]).into_owned()).collect();
        assert_eq!(st, *status, "{shown:?}: {body}");
        assert!(body.get(*key).is_some(), "{shown:?}: {body}");
        if *key == "hint" {
            assert_eq!(body["hint"], "send exactly one Authorization header");
        }
        // The presented value is never echoed.
        assert!(!body.to_string().contains("kkkkkkkkkk") && !body.to_string().contains("DROP"), "{body}");
    }
    assert_tokens_are(&s, &before, &[]).await;
}

async fn racing_changes_and_deletes_of_one_token_never_fail_with_5xx(b: Backend) {
    let s = Arc::new(Server::start(b).await);
    let before = listed_ids(&s).await;
    let victim = s.create_token(json!({"description": "victim"})).await;
    let bystander = s.create_token(json!({"description": "bystander"})).await;
    let path = format!("{TOKENS}{}/", victim.id);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        for (method, body) in [
            ("PATCH", Some(json!({"enabled": i % 2 == 0}).to_string().into_bytes())),
            ("PUT", Some(json!({"description": format!("put {i}")}).to_string().into_bytes())),
            ("GET", None),
        ] {
            let (s, path) = (s.clone(), path.clone());
            tasks.spawn(async move {
                let auth = [s.admin_bearer().into_bytes()];
                (method, send(&s, method, &path, &auth, body).await)
            });
        }
        if i % 7 == 3 {
            let (s, path) = (s.clone(), path.clone());
            tasks.spawn(async move {
                let auth = [s.admin_bearer().into_bytes()];
                ("DELETE", send(&s, "DELETE", &path, &auth, None).await)
            });
        }
    }
    let mut deleted = 0;
    while let Some(done) = tasks.join_next().await {
        let (method, (status, body)) = done.unwrap();
        match (method, status) {
            ("DELETE", 204) => deleted += 1,
            ("GET" | "PATCH" | "PUT", 200) => assert_eq!(body["id"], victim.id, "{body}"),
            (_, 404) => assert!(body["detail"].is_string(), "{body}"),
            _ => panic!("{method} answered {status}: {body}"),
        }
    }
    assert_eq!(deleted, 1, "exactly one DELETE removes the token");
    let (status, body) = s.admin(Method::GET, &path, None).await;
    assert_eq!(status, 404, "{body}");
    // The other token is untouched.
    let (status, other) = s.admin(Method::GET, &format!("{TOKENS}{}/", bystander.id), None).await;
    assert_eq!(
        (status, other["description"].as_str(), other["enabled"].as_bool()),
        (200, Some("bystander"), Some(true))
    );
    assert_tokens_are(&s, &before, &[bystander.id]).await;

    // Racing PATCHes alone leave one of the values written, in a well-formed record.
    let target = s.create_token(json!({})).await;
    let path = format!("{TOKENS}{}/", target.id);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (s, path) = (s.clone(), path.clone());
        tasks.spawn(async move {
            let auth = [s.admin_bearer().into_bytes()];
            let body =
                json!({"enabled": i % 2 == 0, "description": format!("d{i}")}).to_string().into_bytes();
            send(&s, "PATCH", &path, &auth, Some(body)).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (status, body) = done.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (status, got) = s.admin(Method::GET, &path, None).await;
    assert_eq!(status, 200);
    let d = got["description"].as_str().unwrap();
    let i: u32 = d.strip_prefix('d').unwrap().parse().unwrap();
    assert!(i < 20, "{got}");
    assert!(got["enabled"].is_boolean() && got["key"] == target.key.as_str(), "{got}");
    assert_tokens_are(&s, &before, &[bystander.id, target.id]).await;
}

/// NetBox 4.7 made `token` read-only: twenty racing creates that all send one value make
/// twenty tokens with values of their own, and the client's value opens nothing.
async fn racing_creates_with_one_client_value_ignore_it(b: Backend) {
    let s = Arc::new(Server::start(b).await);
    let before = listed_ids(&s).await;
    let value = "abcdef0123456789abcdef0123456789abcdef01";
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let s = s.clone();
        tasks.spawn(async move {
            let auth = [s.admin_bearer().into_bytes()];
            let body = json!({"version": 1, "token": value}).to_string().into_bytes();
            send(&s, "POST", TOKENS, &auth, Some(body)).await
        });
    }
    let mut created = Vec::new();
    let mut values = std::collections::BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        let (status, body) = done.unwrap();
        assert_eq!(status, 201, "{body}");
        created.push(body["id"].as_i64().unwrap());
        values.insert(body["token"].as_str().unwrap().to_owned());
    }
    assert_eq!(values.len(), 20, "each token has a value of its own");
    assert!(!values.contains(value), "the client's value was stored");
    let (st, _) =
        send(&s, "GET", "/api/authentication-check/", &[format!("Token {value}").into_bytes()], None).await;
    assert_eq!(st, 403);
    assert_tokens_are(&s, &before, &created).await;
}
