//! The HTTP edge (issue 16, items 4, 9, 10 and 12), over a real socket: the scheme and host
//! of absolute URLs, request ids, errors answered before a handler runs, and which
//! forwarding header names the client.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::harness;

on_every_backend!(
    errors_answered_before_a_handler_are_json_with_a_detail,
    a_broken_request_body_is_json_with_a_detail,
    a_request_timeout_is_json_with_a_detail,
    unsafe_request_ids_are_replaced,
    links_use_the_scheme_and_host_a_trusted_proxy_reports,
    links_ignore_what_an_untrusted_client_claims,
    a_public_url_pins_every_link,
    the_configured_client_ip_header_alone_is_believed,
);

use std::io::{Read, Write};
use std::time::Duration;

use harness::{Backend, Server};
use reqwest::Method;
use serde_json::{json, Value};

const TOKENS: &str = "/api/users/tokens/";

/// A raw HTTP/1.1 exchange (`Connection: close`): the status, lowercased head and body.
async fn exchange(s: &Server, request: String, pause: Option<Duration>) -> (u16, String, String) {
    let addr = s.addr;
    tokio::task::spawn_blocking(move || exchange_blocking(addr, request.as_bytes(), pause)).await.unwrap()
}

fn exchange_blocking(
    addr: std::net::SocketAddr,
    request: &[u8],
    pause: Option<Duration>,
) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(request).unwrap();
    if let Some(p) = pause {
        std::thread::sleep(p);
    }
    let mut resp = Vec::new();
    let _ = stream.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// The JSON `detail` of an answer, failing the test if the body is not JSON with one.
fn detail(head: &str, body: &str) -> String {
    assert!(head.contains("content-type: application/json"), "not JSON:\n{head}\n\n{body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["detail"].as_str().unwrap_or_else(|| panic!("no detail: {body}")).to_owned()
}

async fn errors_answered_before_a_handler_are_json_with_a_detail(b: Backend) {
    let s = Server::start(b).await;
    let auth = s.admin_bearer();
    let big = format!(r#"{{"description": "{}"}}"#, "x".repeat(70 * 1024));
    let cases: Vec<(String, u16, &str)> = vec![
        // The body limit, with and without a token (provision needs none).
        (post(&auth, TOKENS, &big), 413, "Request body too large: the limit is 65536 bytes."),
        (post("", "/api/users/tokens/provision/", &big), 413, "Request body too large: the limit is 65536 bytes."),
        // A path parameter that is not UTF-8 once percent-decoded: axum's text quoted it.
        (
            get(&auth, "/api/users/tokens/%FF%FEsecret-looking/"),
            400,
            "Invalid URL: the path is not valid UTF-8 once percent-decoded.",
        ),
        (
            format!("DELETE /api/users/users/%C0%80/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"),
            400,
            "Invalid URL: the path is not valid UTF-8 once percent-decoded.",
        ),
    ];
    for (request, status, expected) in cases {
        let line = request.lines().next().unwrap().to_owned();
        let (got, head, body) = exchange(&s, request, None).await;
        assert_eq!(got, status, "{line}: {head}\n{body}");
        assert_eq!(detail(&head, &body), expected, "{line}");
        assert!(!body.contains("secret-looking") && !body.contains('\u{fffd}'), "{body}");
    }
}

async fn a_broken_request_body_is_json_with_a_detail(b: Backend) {
    let s = Server::start(b).await;
    // A chunked body whose chunk size is not hexadecimal: hyper cannot read it.
    let request = format!(
        "POST {TOKENS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n",
        s.admin_bearer()
    );
    let (status, head, body) = exchange(&s, request, None).await;
    assert_eq!(status, 400, "{head}\n{body}");
    assert_eq!(detail(&head, &body), "The request body could not be read.");
}

async fn a_request_timeout_is_json_with_a_detail(b: Backend) {
    let s = Server::start_with(b, |c| c.request_timeout = Duration::from_millis(300)).await;
    // Headers promise a body that never comes within the request's time.
    let request = format!(
        "POST {TOKENS} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\nConnection: close\r\n\r\n{{",
        s.admin_bearer()
    );
    let (status, head, body) = exchange(&s, request, Some(Duration::from_millis(800))).await;
    assert_eq!(status, 408, "{head}\n{body}");
    assert_eq!(detail(&head, &body), "The request took too long and was cancelled.");
}

fn get(auth: &str, path: &str) -> String {
    let auth = if auth.is_empty() { String::new() } else { format!("Authorization: {auth}\r\n") };
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")
}

fn post(auth: &str, path: &str, body: &str) -> String {
    let auth = if auth.is_empty() { String::new() } else { format!("Authorization: {auth}\r\n") };
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn unsafe_request_ids_are_replaced(b: Backend) {
    let s = Server::start(b).await;
    let echoed = |ids: &[&str]| {
        let mut req = s.client.get(format!("{}/api/", s.base()));
        for id in ids {
            req = req.header("x-request-id", *id);
        }
        async move {
            let resp = req.send().await.unwrap();
            let all: Vec<String> = resp
                .headers()
                .get_all("x-request-id")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            assert_eq!(all.len(), 1, "{all:?}");
            all[0].clone()
        }
    };
    for kept in ["req-1", "A.b_c-9", "0f8c2a1e-3b7d-4c55-9e0a-1a2b3c4d5e6f", &"k".repeat(128)] {
        assert_eq!(echoed(&[kept]).await, kept);
    }
    let forged =
        r#"x" method=DELETE route="/api/users/tokens/{id}/"}: nbtoken_server::observe: request status=204"#;
    for ids in [&[forged][..], &["a b"], &["Root=1-5759e988"], &[&"k".repeat(129)], &["req-1", "req-2"]] {
        let got = echoed(ids).await;
        assert!(!ids.contains(&got.as_str()), "{ids:?} was kept");
        assert_eq!(got.len(), 36, "a new UUID: {got}");
        assert!(got.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()), "{got}");
    }
}

/// Creates three tokens so that `?limit=1` has a next and a previous page.
async fn three_tokens(s: &Server) {
    for i in 0..3 {
        s.create_token(json!({"description": format!("page {i}")})).await;
    }
}

async fn links(s: &Server, headers: &[(&str, &str)]) -> Value {
    let (status, v) = s
        .raw(
            Method::GET,
            &format!("{TOKENS}?limit=1&offset=1"),
            Some(s.admin_bearer().as_bytes()),
            None,
            headers,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn location(s: &Server, headers: &[(&str, &str)]) -> (String, String) {
    let mut req = s
        .client
        .post(format!("{}{TOKENS}", s.base()))
        .header("authorization", s.admin_bearer())
        .json(&json!({"description": "located"}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let loc = resp.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    (loc, body["url"].as_str().unwrap().to_owned())
}

async fn links_use_the_scheme_and_host_a_trusted_proxy_reports(b: Backend) {
    let s = Server::start_with(b, |c| c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    three_tokens(&s).await;
    let tls = [("x-forwarded-proto", "https"), ("x-forwarded-host", "nb.example:8443")];
    let forwarded = [("forwarded", "for=198.51.100.7;proto=https;host=\"nb.example:8443\"")];
    for headers in [&tls[..], &forwarded[..]] {
        let v = links(&s, headers).await;
        let (next, previous) = (v["next"].as_str().unwrap(), v["previous"].as_str().unwrap());
        assert_eq!(next, "https://nb.example:8443/api/users/tokens/?limit=1&offset=2", "{headers:?}");
        assert_eq!(previous, "https://nb.example:8443/api/users/tokens/?limit=1", "{headers:?}");
        let url = v["results"][0]["url"].as_str().unwrap();
        assert!(url.starts_with("https://nb.example:8443/api/users/tokens/"), "{url}");
        let user_url = v["results"][0]["user"]["url"].as_str().unwrap();
        assert!(user_url.starts_with("https://nb.example:8443/api/users/users/"), "{user_url}");
        let (loc, url) = location(&s, headers).await;
        assert!(loc.starts_with("https://nb.example:8443/api/users/tokens/") && loc == url, "{loc} {url}");
    }
    // With another header named for the client address, only the X-Forwarded-* pair counts, and
    // with `Forwarded` named, only `Forwarded`.
    let s = Server::start_with(Backend::Sqlite, |c| {
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        c.client_ip_header = nbtoken_server::client_ip::ClientIpHeader::parse("Forwarded").unwrap();
    })
    .await;
    three_tokens(&s).await;
    let v = links(&s, &tls).await;
    assert!(v["next"].as_str().unwrap().starts_with(&format!("http://{}/", s.addr)), "{v}");
    let v = links(&s, &forwarded).await;
    assert!(v["next"].as_str().unwrap().starts_with("https://nb.example:8443/"), "{v}");
}

async fn links_ignore_what_an_untrusted_client_claims(b: Backend) {
    let s = Server::start(b).await;
    three_tokens(&s).await;
    let claims = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "proto=https;host=evil.example"),
    ];
    let v = links(&s, &claims).await;
    let prefix = format!("http://{}/api/users/tokens/", s.addr);
    for link in [&v["next"], &v["previous"], &v["results"][0]["url"]] {
        assert!(link.as_str().unwrap().starts_with(&prefix), "{link}");
    }
    let (loc, _) = location(&s, &claims).await;
    assert!(loc.starts_with(&prefix), "{loc}");
}

async fn a_public_url_pins_every_link(b: Backend) {
    let s = Server::start_with(b, |c| {
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        c.public_url =
            Some(nbtoken_server::json::BaseUrl::parse_public("https://tokens.example.com/nb/").unwrap());
    })
    .await;
    three_tokens(&s).await;
    let v = links(&s, &[("x-forwarded-proto", "http"), ("x-forwarded-host", "other.example")]).await;
    assert_eq!(v["next"], "https://tokens.example.com/nb/api/users/tokens/?limit=1&offset=2");
    let (loc, _) = location(&s, &[]).await;
    assert!(loc.starts_with("https://tokens.example.com/nb/api/users/tokens/"), "{loc}");
    let (status, root) = s.admin(Method::GET, "/api/", None).await;
    assert_eq!(status, 200);
    assert_eq!(root["users"], "https://tokens.example.com/nb/api/users/");
}

/// The order of forwarding headers, end to end: a token limited to 10.9.9.0/24, behind a
/// trusted proxy that sets `X-Real-IP` and passes the client's own `X-Forwarded-For` on.
async fn the_configured_client_ip_header_alone_is_believed(b: Backend) {
    use nbtoken_server::client_ip::ClientIpHeader;
    async fn status(s: &Server, bearer: Vec<u8>, headers: Vec<(&str, &str)>) -> u16 {
        s.raw(Method::GET, TOKENS, Some(&bearer), None, &headers).await.0
    }
    let spoof = vec![("x-real-ip", "192.0.2.1"), ("x-forwarded-for", "10.9.9.5")];
    let honest = vec![("x-real-ip", "10.9.9.5"), ("x-forwarded-for", "192.0.2.1")];
    let mut statuses = Vec::new();
    for header in ["", "X-Real-IP", "X-Forwarded-For", "Forwarded"] {
        let s = Server::start_with(b.clone(), |c| {
            c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
            c.client_ip_header = ClientIpHeader::parse(header).unwrap();
        })
        .await;
        let t = s.create_token(json!({"allowed_ips": ["10.9.9.0/24"]})).await;
        let forwarded = vec![("forwarded", "for=10.9.9.5"), ("x-forwarded-for", "192.0.2.1")];
        statuses.push((
            header,
            status(&s, t.bearer(), spoof.clone()).await,
            status(&s, t.bearer(), honest.clone()).await,
            status(&s, t.bearer(), forwarded).await,
        ));
    }
    assert_eq!(
        statuses,
        vec![
            // Unset: X-Forwarded-For first, then X-Real-IP (the documented default).
            ("", 200, 403, 403),
            // X-Real-IP named: the client's X-Forwarded-For is ignored.
            ("X-Real-IP", 403, 200, 403),
            ("X-Forwarded-For", 200, 403, 403),
            ("Forwarded", 403, 403, 200),
        ]
    );
}
