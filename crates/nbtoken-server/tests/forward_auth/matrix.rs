//! One matrix of requests and what must come of them, run once behind each proxy Debian
//! packages (nginx, Caddy, HAProxy), with the documented configuration, a real nbtoken and an
//! application that echoes what reaches it.
//!
//! Each step sends one request from a loopback client through the proxy and checks both ends:
//! what the client got (status, nbtoken's JSON where the proxy relays it, `WWW-Authenticate`,
//! `Retry-After`, the v1 `Deprecation`/`Sunset`) and what the application saw (nothing for a
//! refusal; for a pass, nbtoken's identity headers, never a client's forged ones, and never the
//! token). What each proxy did with each answer is printed as a table (`--nocapture`), the
//! source of the table in docs/forward-auth.md.

use std::net::IpAddr;
use std::time::Duration;

use nbtoken_core::V1Policy;
use nbtoken_server::auth::MSG_V1_DENIED;
use nbtoken_store::Store;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use super::proxies::{Kind, Proxy};
use super::upstream::Upstream;
use crate::harness::{Backend, Server, TestToken, V1_PLAIN};

on_every_backend!(forward_auth_behind_nginx, forward_auth_behind_caddy, forward_auth_behind_haproxy);

async fn forward_auth_behind_nginx(b: Backend) {
    run(Kind::Nginx, b).await;
}

async fn forward_auth_behind_caddy(b: Backend) {
    run(Kind::Caddy, b).await;
}

async fn forward_auth_behind_haproxy(b: Backend) {
    run(Kind::Haproxy, b).await;
}

/// The original request every step sends: path and query must reach the application intact.
const PATH: &str = "/app/items?x=1";
/// The body of every POST, PUT and PATCH: it must reach the application intact.
const BODY: &str = r#"{"name": "x"}"#;

/// A client's attempt to name itself: every identity header, with values nbtoken never sends here.
const FORGED: &[(&str, &str)] = &[
    ("X-Nbtoken-User", "root"),
    ("X-Nbtoken-User-Id", "999"),
    ("X-Nbtoken-Token-Id", "999"),
    ("X-Nbtoken-Token-Version", "7"),
    ("X-Nbtoken-Write-Enabled", "true"),
];
/// A client's attempt to choose its own address.
const FORGED_10: &[(&str, &str)] = &[("X-Forwarded-For", "10.1.2.3"), ("X-Real-IP", "10.1.2.3")];
const FORGED_LO2: &[(&str, &str)] = &[("X-Forwarded-For", "127.0.0.2"), ("X-Real-IP", "127.0.0.2")];
/// A client's attempt to pass a write off as a read.
const FORGED_READ: &[(&str, &str)] = &[("X-Forwarded-Method", "GET"), ("X-Original-Method", "GET")];

const NOT_PROVIDED: &str = "Authentication credentials were not provided.";
const INVALID: &str = "Invalid v2 token";
const NO_WRITE: &str = "You do not have permission to perform this action.";
const DEPRECATION: &str = "@1767225600";
const SUNSET: &str = "Wed, 30 Jun 2027 00:00:00 GMT";

/// Which credential a step sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    None,
    OtherScheme,
    Malformed,
    Admin,
    V1,
    ReadOnly,
    Disabled,
    Expired,
    /// A real key with a wrong secret.
    WrongSecret,
    UnknownKey,
    /// allowed_ips 10.0.0.0/8.
    Lan,
    /// allowed_ips 127.0.0.2/32.
    Loopback2,
    /// The victim's key with a guessed secret, and the victim's real token.
    Guess,
    Victim,
    /// Never used before the database goes away, so never cached.
    Fresh,
}

/// Where the client connects from: 127.0.0.1 is also the proxy's (trusted) address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum From {
    Lo1,
    Lo2,
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    /// The application answers, having seen this identity.
    Pass { token: Tok, write: bool, v1_warning: bool },
    /// nbtoken refuses with this status and a detail starting so; the application sees nothing.
    Refuse { status: u16, detail: &'static str },
    /// nbtoken cannot be asked: some 5xx, and the application sees nothing.
    Down,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    method: &'static str,
    from: From,
    auth: Tok,
    headers: &'static [(&'static str, &'static str)],
    expect: Expect,
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Send(Case),
    /// nbtoken's database goes away (its store is closed: every read fails as when it is down).
    LoseDatabase,
    /// nbtoken stops; the proxy stays.
    StopNbtoken,
}

const fn send(
    name: &'static str,
    method: &'static str,
    auth: Tok,
    headers: &'static [(&'static str, &'static str)],
    expect: Expect,
) -> Step {
    Step::Send(Case { name, method, from: From::Lo1, auth, headers, expect })
}

const fn send_from(
    name: &'static str,
    from: From,
    auth: Tok,
    headers: &'static [(&'static str, &'static str)],
    expect: Expect,
) -> Step {
    Step::Send(Case { name, method: "GET", from, auth, headers, expect })
}

const fn pass(token: Tok, write: bool) -> Expect {
    Expect::Pass { token, write, v1_warning: false }
}

const fn refuse(status: u16, detail: &'static str) -> Expect {
    Expect::Refuse { status, detail }
}

/// The matrix under `NBTOKEN_V1=warn` (with a sunset date), failure budget 2 per key.
const WARN: &[Step] = &[
    send("valid v2 token", "GET", Tok::Admin, &[], pass(Tok::Admin, true)),
    send("valid token, forged identity headers", "GET", Tok::Admin, FORGED, pass(Tok::Admin, true)),
    send("no token, forged identity headers", "GET", Tok::None, FORGED, refuse(401, NOT_PROVIDED)),
    send("no Authorization header", "GET", Tok::None, &[], refuse(401, NOT_PROVIDED)),
    send("another scheme (Basic)", "GET", Tok::OtherScheme, &[], refuse(401, NOT_PROVIDED)),
    send("malformed token", "GET", Tok::Malformed, &[], refuse(401, "Invalid authorization header")),
    send("wrong secret", "GET", Tok::WrongSecret, &[], refuse(401, INVALID)),
    send("unknown key", "GET", Tok::UnknownKey, &[], refuse(401, INVALID)),
    send("disabled token", "GET", Tok::Disabled, &[], refuse(401, "Token disabled")),
    send("expired token", "GET", Tok::Expired, &[], refuse(401, "Token expired")),
    send("read-only token, GET", "GET", Tok::ReadOnly, &[], pass(Tok::ReadOnly, false)),
    send("read-only token, HEAD", "HEAD", Tok::ReadOnly, &[], pass(Tok::ReadOnly, false)),
    send("read-only token, GET, forged identity", "GET", Tok::ReadOnly, FORGED, pass(Tok::ReadOnly, false)),
    send("read-only token, POST", "POST", Tok::ReadOnly, &[], refuse(403, NO_WRITE)),
    send("read-only token, PUT", "PUT", Tok::ReadOnly, &[], refuse(403, NO_WRITE)),
    send("read-only token, PATCH", "PATCH", Tok::ReadOnly, &[], refuse(403, NO_WRITE)),
    send("read-only token, DELETE", "DELETE", Tok::ReadOnly, &[], refuse(403, NO_WRITE)),
    send(
        "read-only token, POST, forged method headers",
        "POST",
        Tok::ReadOnly,
        FORGED_READ,
        refuse(403, NO_WRITE),
    ),
    send(
        "read-only token, DELETE, forged method headers",
        "DELETE",
        Tok::ReadOnly,
        FORGED_READ,
        refuse(403, NO_WRITE),
    ),
    send("full token, POST", "POST", Tok::Admin, &[], pass(Tok::Admin, true)),
    send(
        "full token, DELETE, forged method headers",
        "DELETE",
        Tok::Admin,
        FORGED_READ,
        pass(Tok::Admin, true),
    ),
    send_from(
        "allowed IPs 127.0.0.2/32, client 127.0.0.2",
        From::Lo2,
        Tok::Loopback2,
        &[],
        pass(Tok::Loopback2, true),
    ),
    send_from(
        "allowed IPs 10/8, client 127.0.0.2 forging 10.1.2.3",
        From::Lo2,
        Tok::Lan,
        FORGED_10,
        refuse(403, "Source IP 127.0.0.2 is not permitted to authenticate using this token."),
    ),
    // The client's own address is a trusted proxy's: a proxy that appended to the client's
    // X-Forwarded-For instead of replacing it would let the client choose its address here.
    send_from(
        "allowed IPs 10/8, client 127.0.0.1 (trusted) forging 10.1.2.3",
        From::Lo1,
        Tok::Lan,
        FORGED_10,
        refuse(403, "Source IP 127.0.0.1 is not permitted to authenticate using this token."),
    ),
    send_from(
        "allowed IPs 127.0.0.2/32, client 127.0.0.1 (trusted) forging 127.0.0.2",
        From::Lo1,
        Tok::Loopback2,
        FORGED_LO2,
        refuse(403, "Source IP 127.0.0.1 is not permitted to authenticate using this token."),
    ),
    send(
        "v1 token under warn",
        "GET",
        Tok::V1,
        &[],
        Expect::Pass { token: Tok::V1, write: true, v1_warning: true },
    ),
    send("guessed secret 1", "GET", Tok::Guess, &[], refuse(401, INVALID)),
    send("guessed secret 2", "GET", Tok::Guess, &[], refuse(401, INVALID)),
    send(
        "key past its failure budget",
        "GET",
        Tok::Guess,
        &[],
        refuse(429, "Too many failed authentication attempts"),
    ),
    send(
        "right token, key blocked",
        "GET",
        Tok::Victim,
        &[],
        refuse(429, "Too many failed authentication attempts"),
    ),
    Step::LoseDatabase,
    send("database unreachable", "GET", Tok::Fresh, &[], refuse(503, "The token database is unavailable")),
    Step::StopNbtoken,
    send("nbtoken stopped", "GET", Tok::Admin, &[], Expect::Down),
    send("nbtoken stopped, POST", "POST", Tok::Admin, &[], Expect::Down),
];

/// The same proxy in front of an nbtoken with `NBTOKEN_V1=deny`.
const DENY: &[Step] = &[
    send("v1 token under deny", "GET", Tok::V1, &[], refuse(401, MSG_V1_DENIED)),
    send("v2 token under deny", "GET", Tok::Admin, &[], pass(Tok::Admin, true)),
];

/// The tokens of one nbtoken, by role.
struct Tokens {
    admin: String,
    read_only: TestToken,
    disabled: TestToken,
    expired: TestToken,
    wrong_target: TestToken,
    lan: TestToken,
    loopback2: TestToken,
    victim: TestToken,
    fresh: TestToken,
}

impl Tokens {
    async fn create(s: &Server) -> Tokens {
        let expired = s.create_token(json!({})).await;
        s.expire(expired.id).await;
        Tokens {
            admin: s.admin_v2.clone(),
            read_only: s.create_token(json!({"write_enabled": false})).await,
            disabled: s.create_token(json!({"enabled": false})).await,
            expired,
            wrong_target: s.create_token(json!({})).await,
            lan: s.create_token(json!({"allowed_ips": ["10.0.0.0/8"]})).await,
            loopback2: s.create_token(json!({"allowed_ips": ["127.0.0.2/32"]})).await,
            victim: s.create_token(json!({})).await,
            fresh: s.create_token(json!({})).await,
        }
    }

    fn header(&self, t: Tok) -> Option<String> {
        let bearer = |t: &TestToken| format!("Bearer {}", t.full);
        Some(match t {
            Tok::None => return None,
            Tok::OtherScheme => "Basic YTpi".to_owned(),
            Tok::Malformed => "Bearer nbt_missing-the-dot".to_owned(),
            Tok::Admin => format!("Bearer {}", self.admin),
            Tok::V1 => format!("Token {V1_PLAIN}"),
            Tok::ReadOnly => bearer(&self.read_only),
            Tok::Disabled => bearer(&self.disabled),
            Tok::Expired => bearer(&self.expired),
            Tok::WrongSecret => format!("Bearer nbt_{}.{}", self.wrong_target.key, "w".repeat(40)),
            Tok::UnknownKey => format!("Bearer nbt_AAAAAAAAAAAA.{}", "B".repeat(40)),
            Tok::Lan => bearer(&self.lan),
            Tok::Loopback2 => bearer(&self.loopback2),
            Tok::Guess => format!("Bearer nbt_{}.{}", self.victim.key, "g".repeat(40)),
            Tok::Victim => bearer(&self.victim),
            Tok::Fresh => bearer(&self.fresh),
        })
    }

    /// The token id the application must see (the harness makes the admin's v2 token 1, v1 token 2).
    fn id(&self, t: Tok) -> i64 {
        match t {
            Tok::Admin => 1,
            Tok::V1 => 2,
            Tok::ReadOnly => self.read_only.id,
            Tok::Loopback2 => self.loopback2.id,
            Tok::Victim => self.victim.id,
            Tok::Fresh => self.fresh.id,
            other => panic!("{other:?} never passes"),
        }
    }

    /// Every secret in play, none of which may reach the application.
    fn secrets(&self) -> Vec<String> {
        let mut all = vec![self.admin[16..].to_owned(), V1_PLAIN.to_owned()];
        for t in [&self.read_only, &self.loopback2, &self.victim, &self.fresh] {
            all.push(t.full[17..].to_owned());
        }
        all
    }
}

/// One row of the measured table.
struct Row {
    case: &'static str,
    status: u16,
    body: &'static str,
    headers: Vec<&'static str>,
}

async fn run(kind: Kind, backend: Backend) {
    let Some(binary) = kind.binary() else { return };
    let mut rows = Vec::new();
    for (phase, steps) in [(V1Policy::Warn, WARN), (V1Policy::Deny, DENY)] {
        let server = Server::start_with(backend.clone(), |c| {
            c.v1_policy = phase;
            c.v1_sunset = nbtoken_server::json::parse_timestamp("2027-06-30T00:00:00Z");
            // The proxy is the peer; it names the client in X-Forwarded-For.
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            c.limits = nbtoken_server::limit::LimitConfig { per_ip_per_minute: 0, per_key_per_minute: 2 };
        })
        .await;
        let tokens = Tokens::create(&server).await;
        let upstream = Upstream::start().await;
        let proxy = Proxy::start(kind, &binary, server.addr, upstream.addr);
        let clients = [client("127.0.0.1"), client("127.0.0.2")];
        let mut server = Some(server);
        for step in steps {
            match *step {
                Step::LoseDatabase => server.as_ref().unwrap().store.close().await,
                Step::StopNbtoken => {
                    drop(server.take());
                    // Let the server's connections see the shutdown.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Step::Send(case) => {
                    let client = &clients[usize::from(case.from == From::Lo2)];
                    let row = check(kind, &proxy, client, &upstream, &tokens, &case).await;
                    rows.push(row);
                }
            }
        }
    }
    let mut table = format!(
        "\nforward-auth behind {} (measured):\n| case | status | body | headers |\n|---|---|---|---|\n",
        kind.name()
    );
    for r in rows {
        table.push_str(&format!("| {} | {} | {} | {} |\n", r.case, r.status, r.body, r.headers.join(", ")));
    }
    eprintln!("{table}");
}

fn client(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Sends one case through the proxy and checks what the client and the application saw.
async fn check(
    kind: Kind,
    proxy: &Proxy,
    client: &reqwest::Client,
    upstream: &Upstream,
    tokens: &Tokens,
    case: &Case,
) -> Row {
    let before = upstream.count();
    let mut req = client.request(Method::from_bytes(case.method.as_bytes()).unwrap(), proxy.url(PATH));
    if let Some(a) = tokens.header(case.auth) {
        req = req.header("authorization", a);
    }
    for (k, v) in case.headers {
        req = req.header(*k, *v);
    }
    let with_body = matches!(case.method, "POST" | "PUT" | "PATCH");
    if with_body {
        req = req.header("content-type", "application/json").body(BODY);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{}: {}: {e}", kind.name(), case.name));
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let ctx = || {
        format!("{} / {}: {status} {h:?}\n{text}\n--- proxy log:\n{}", kind.name(), case.name, proxy.log())
    };
    let v1_headers = (header(&h, "deprecation"), header(&h, "sunset"));
    let body;
    match case.expect {
        Expect::Pass { token, write, v1_warning } => {
            assert_eq!(status, 200, "{}", ctx());
            assert_eq!(upstream.count(), before + 1, "{}", ctx());
            let seen = upstream.last().unwrap();
            let line = seen.request_line();
            assert!(line.starts_with(&format!("{} {PATH} ", case.method)), "{line}\n{}", ctx());
            let id = tokens.id(token).to_string();
            let version = if token == Tok::V1 { "1" } else { "2" };
            for (name, value) in [
                ("x-nbtoken-user", "admin"),
                ("x-nbtoken-user-id", "1"),
                ("x-nbtoken-token-id", id.as_str()),
                ("x-nbtoken-token-version", version),
                ("x-nbtoken-write-enabled", if write { "true" } else { "false" }),
            ] {
                assert_eq!(
                    seen.header_values(name),
                    [value],
                    "{name} at the application:\n{}\n{}",
                    seen.head,
                    ctx()
                );
            }
            assert!(
                seen.header_values("authorization").is_empty(),
                "the token reached the application:\n{}",
                seen.head
            );
            for secret in tokens.secrets() {
                assert!(!seen.head.contains(&secret), "a secret reached the application:\n{}", seen.head);
            }
            if with_body {
                assert_eq!(String::from_utf8_lossy(&seen.body), BODY, "{}", ctx());
            }
            if v1_warning {
                assert_eq!(v1_headers, (Some(DEPRECATION.to_owned()), Some(SUNSET.to_owned())), "{}", ctx());
            } else {
                assert_eq!(v1_headers, (None, None), "{}", ctx());
            }
            body = "application's";
        }
        Expect::Refuse { status: expected, detail } => {
            assert_eq!(status, expected, "{}", ctx());
            assert_eq!(upstream.count(), before, "a refused request reached the application\n{}", ctx());
            let challenge = header(&h, "www-authenticate");
            if expected == 401 {
                assert!(challenge.as_deref().is_some_and(|c| c.starts_with("Bearer realm=")), "{}", ctx());
            } else {
                assert_eq!(challenge, None, "{}", ctx());
            }
            if expected == 429 {
                let wait: u64 = header(&h, "retry-after").and_then(|v| v.parse().ok()).unwrap_or(0);
                assert!((1..=60).contains(&wait), "Retry-After: {}", ctx());
            }
            body = classify(kind, &text, Some(detail));
            if case.method != "HEAD" {
                match kind {
                    // nginx drops the check's body; its configuration answers 429 and 503 itself.
                    Kind::Nginx if expected == 429 => {
                        assert_eq!(
                            detail_of(&text).as_deref(),
                            Some("Too many failed authentication attempts."),
                            "{}",
                            ctx()
                        )
                    }
                    Kind::Nginx if expected == 503 => assert_eq!(
                        detail_of(&text).as_deref(),
                        Some("The token service is unavailable; try again shortly."),
                        "{}",
                        ctx()
                    ),
                    Kind::Nginx => {}
                    Kind::Caddy | Kind::Haproxy => assert!(
                        detail_of(&text).is_some_and(|d| d.starts_with(detail)),
                        "nbtoken's detail {detail:?} did not reach the client\n{}",
                        ctx()
                    ),
                }
            }
            assert_eq!(v1_headers, (None, None), "{}", ctx());
        }
        Expect::Down => {
            // As docs/forward-auth.md says: each proxy's own 5xx.
            let documented = match kind {
                Kind::Nginx => 500,
                Kind::Caddy => 502,
                Kind::Haproxy => 503,
            };
            assert_eq!(status, documented, "{}", ctx());
            if kind == Kind::Haproxy && case.method != "HEAD" {
                let d = detail_of(&text);
                assert_eq!(
                    d.as_deref(),
                    Some("The token service is unavailable; try again shortly."),
                    "{}",
                    ctx()
                );
            }
            assert_eq!(upstream.count(), before, "a request reached the application unchecked\n{}", ctx());
            body = classify(kind, &text, None);
        }
    }
    let headers = ["www-authenticate", "retry-after", "deprecation", "sunset"]
        .into_iter()
        .filter(|n| h.contains_key(*n))
        .map(|n| match n {
            "www-authenticate" => "WWW-Authenticate",
            "retry-after" => "Retry-After",
            "deprecation" => "Deprecation",
            _ => "Sunset",
        })
        .collect();
    Row { case: case.name, status, body, headers }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).map(|v| v.to_str().unwrap().to_owned())
}

fn detail_of(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    v["detail"].as_str().map(str::to_owned)
}

/// What kind of body the client got.
fn classify(kind: Kind, text: &str, nbtoken_detail: Option<&str>) -> &'static str {
    match (detail_of(text), nbtoken_detail) {
        _ if text.trim().is_empty() => "empty",
        // nginx never relays the check's body; any JSON is its configuration's.
        (Some(d), Some(n)) if d.starts_with(n) && kind != Kind::Nginx => "nbtoken's JSON",
        (Some(_), _) => "proxy's JSON",
        (None, _) => "proxy's page",
    }
}
