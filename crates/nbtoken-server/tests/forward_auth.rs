//! Forward-auth: the endpoint's contract over a real socket, and a real nginx
//! (`auth_request`) in front of a small upstream.

#![allow(clippy::unwrap_used, missing_docs)]

#[macro_use]
mod harness;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{Backend, Server, V1_PLAIN};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
            let resp = s
                .client
                .head(format!("{}{path}", s.base()))
                .header("authorization", s.admin_bearer())
                .send()
                .await
                .unwrap();
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
    let (st, _) = s
        .admin(
            Method::PATCH,
            &format!("/api/users/tokens/{}/", expired.id),
            Some(json!({"expires": "2020-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(st, 200);
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

// ---- nginx in front of a small upstream ----

/// The Debian package's binary, or `NBTOKEN_TEST_NGINX`. Missing nginx fails the test: CI installs it.
fn nginx_binary() -> PathBuf {
    let candidates = std::env::var_os("NBTOKEN_TEST_NGINX")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"].map(PathBuf::from));
    for c in candidates {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "nginx is not installed, and this test runs a real nginx in front of nbtoken. \
         Install it with `apt-get install nginx-light` (.ci/run does), or point \
         NBTOKEN_TEST_NGINX at an nginx binary built with the auth_request module."
    );
}

/// A tiny HTTP upstream: answers 200 with the request head as its body, and counts requests.
struct Upstream {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    seen.lock().unwrap().push(head.clone());
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{head}",
                        head.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Upstream { addr, heads, task }
    }

    fn count(&self) -> usize {
        self.heads.lock().unwrap().len()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Writes the documented configuration (docs/forward-auth/nginx.conf) into a temporary
    /// directory with the test's addresses, and starts nginx in the foreground.
    fn start(nbtoken: SocketAddr, upstream: SocketAddr) -> Self {
        let binary = nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let conf = nginx_conf(dir.path(), addr, nbtoken, upstream);
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new(&binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let mut n = Nginx { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!("nginx exited with {status}:\n{}", n.error_log());
            }
            assert!(Instant::now() < deadline, "nginx did not start:\n{}", n.error_log());
            std::thread::sleep(Duration::from_millis(50));
        }
        n
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The documented nginx configuration, with this test's paths and addresses in place of the
/// example ones: the test runs exactly what docs/forward-auth/nginx.conf shows.
fn nginx_conf(dir: &Path, listen: SocketAddr, nbtoken: SocketAddr, upstream: SocketAddr) -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/forward-auth/nginx.conf"))
            .unwrap();
    let server = doc
        .replace("listen 80;", &format!("listen {listen};"))
        .replace("127.0.0.1:8080", &nbtoken.to_string())
        .replace("127.0.0.1:9000", &upstream.to_string());
    assert!(
        server.contains(&nbtoken.to_string()) && server.contains(&upstream.to_string()),
        "placeholders moved"
    );
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\n{server}\n}}\n"
    )
}

/// A request through nginx: status, body, headers.
async fn via(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = client.request(Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if method == "POST" {
        req = req.header("content-type", "application/json").body(r#"{"name": "x"}"#);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, resp.text().await.unwrap(), h)
}

#[tokio::test]
async fn nginx_auth_request_end_to_end() {
    let nginx_bin = nginx_binary(); // fail first, and clearly, when nginx is missing
    let s = Server::start_with(Backend::Sqlite, |c| {
        // nginx is the peer; it sends the client's address in X-Forwarded-For.
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.limits = nbtoken_server::limit::LimitConfig { per_ip_per_minute: 0, per_key_per_minute: 2 };
    })
    .await;
    let upstream = Upstream::start().await;
    let nginx = Nginx::start(s.addr, upstream.addr);
    let c = reqwest::Client::new();
    let admin = s.admin_bearer();
    let read_only = s.create_token(json!({"write_enabled": false})).await;
    let ro = format!("Bearer {}", read_only.full);
    let disabled = s.create_token(json!({"enabled": false})).await;
    let expired = s.create_token(json!({})).await;
    s.admin(
        Method::PATCH,
        &format!("/api/users/tokens/{}/", expired.id),
        Some(json!({"expires": "2020-01-01T00:00:00Z"})),
    )
    .await;
    let context = || format!("nginx {}:\n{}", nginx_bin.display(), nginx.error_log());

    // A valid v2 token passes; the upstream sees who it is, and neither the token nor a forged identity.
    let (st, body, _) =
        via(&c, "GET", &nginx.url("/app/items?x=1"), Some(&admin), &[("x-nbtoken-user", "root")]).await;
    assert_eq!(st, 200, "{body}\n{}", context());
    let head = body.to_ascii_lowercase();
    assert!(head.starts_with("get /app/items?x=1 "), "{body}");
    for expected in [
        "x-nbtoken-user: admin\r\n",
        "x-nbtoken-user-id: 1\r\n",
        "x-nbtoken-token-id: 1\r\n",
        "x-nbtoken-token-version: 2\r\n",
        "x-nbtoken-write-enabled: true\r\n",
    ] {
        assert!(head.contains(expected), "upstream did not see {expected:?}:\n{body}");
    }
    assert!(!head.contains("root"), "a client-sent identity header reached the upstream:\n{body}");
    assert!(!body.contains(&s.admin_v2[16..]), "the token reached the upstream:\n{body}");
    assert_eq!(upstream.count(), 1);

    // A read-only token reads, and cannot write.
    let (st, body, _) = via(&c, "GET", &nginx.url("/app/items"), Some(&ro), &[]).await;
    assert_eq!(st, 200, "{body}");
    assert!(body.to_ascii_lowercase().contains("x-nbtoken-write-enabled: false\r\n"), "{body}");
    assert_eq!(upstream.count(), 2);
    let (st, _, _) = via(&c, "POST", &nginx.url("/app/items"), Some(&ro), &[]).await;
    assert_eq!(st, 403, "{}", context());
    // Naming a read method itself does not help.
    let (st, _, _) =
        via(&c, "POST", &nginx.url("/app/items"), Some(&ro), &[("x-forwarded-method", "GET")]).await;
    assert_eq!(st, 403);
    let (st, _, _) =
        via(&c, "DELETE", &nginx.url("/app/items/1"), Some(&ro), &[("x-original-method", "GET")]).await;
    assert_eq!(st, 403);
    // The full token writes.
    let (st, _, _) = via(&c, "POST", &nginx.url("/app/items"), Some(&admin), &[]).await;
    assert_eq!(st, 200);
    assert_eq!(upstream.count(), 3);

    // Refused by nginx, without reaching the upstream.
    let bad = [
        (None, 401),
        (Some("Bearer nbt_AAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB".to_owned()), 401),
        (Some("Bearer nbt_missing-the-dot".to_owned()), 401),
        (Some(format!("Bearer {}", disabled.full)), 401),
        (Some(format!("Bearer {}", expired.full)), 401),
    ];
    for (auth, expected) in bad {
        let (st, _, h) = via(&c, "GET", &nginx.url("/app/items"), auth.as_deref(), &[]).await;
        assert_eq!(st, expected, "{auth:?}\n{}", context());
        assert!(
            h.get("www-authenticate").is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
            "{h:?}"
        );
    }
    assert_eq!(upstream.count(), 3, "a refused request reached the upstream");

    // Past a key's failure budget nginx answers 429 with Retry-After (not a bare 500).
    let victim = s.create_token(json!({})).await;
    let guess = format!("Bearer nbt_{}.{}", victim.key, "g".repeat(40));
    for _ in 0..2 {
        assert_eq!(via(&c, "GET", &nginx.url("/app/"), Some(&guess), &[]).await.0, 401);
    }
    let (st, body, h) = via(&c, "GET", &nginx.url("/app/"), Some(&guess), &[]).await;
    assert_eq!(st, 429, "{body}\n{}", context());
    assert!(h.contains_key("retry-after"), "{h:?}");
    assert!(body.contains("Too many failed authentication attempts"), "{body}");
    assert_eq!(upstream.count(), 3);

    // nbtoken saw the client's address through nginx's X-Forwarded-For (trusted), and recorded the use.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, t) = s.admin(Method::GET, &format!("/api/users/tokens/{}/", read_only.id), None).await;
    assert!(t["last_used"].is_string(), "{t}");
}
