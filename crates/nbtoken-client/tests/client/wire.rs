//! What goes on the wire: headers, refusals, retries, timeouts, redirects.

use std::time::{Duration, Instant};

use nbtoken_client::{Client, ClientError, NewToken, ProvisionOptions, SecretString, TokenProblem};
use tokio::net::TcpListener;

use crate::responder::{Reply, Responder};

const V2: &str = "nbt_eOxiaUBB7417.wTbg8d65KYLMH3bHQ9zULCrxTXiNiug1jIm63wnU";
const V1: &str = "0123456789abcdef0123456789abcdef01234567";
const STATUS: &str = r#"{"netbox-version": "4.6.1"}"#;

#[tokio::test]
async fn header_follows_the_token_version() {
    for (token, expected) in [(V2, format!("Bearer {V2}")), (V1, format!("Token {V1}"))] {
        let r = Responder::start(vec![Reply::json("200 OK", STATUS)]).await;
        Client::builder(&r.base, token).build().unwrap().status().await.unwrap();
        let seen = r.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].request_line, "GET /api/status/ HTTP/1.1");
        assert_eq!(seen[0].header("authorization"), Some(expected.as_str()));
        assert_eq!(seen[0].header("accept"), Some("application/json"));
    }
}

#[tokio::test]
async fn malformed_tokens_are_refused_before_any_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let bad = [
        String::new(),
        format!("Bearer {V2}"),
        format!("Token {V1}"),
        format!("{V2}\n"),
        format!("\"{V2}\""),
        V2.trim_start_matches("nbt_").to_owned(),
        V2[..V2.len() - 1].to_owned(),
        V1[..39].to_owned(),
    ];
    for token in &bad {
        let e = Client::builder(&base, token.as_str()).build().unwrap_err();
        assert!(matches!(e, ClientError::MalformedToken(_)), "{token:?}: {e:?}");
        let msg = e.to_string();
        assert!(msg.contains("nothing was sent"), "{msg}");
        if token.len() > 8 {
            assert!(!msg.contains(token.trim()), "{token:?} echoed: {msg}");
        }
    }
    let e = Client::builder(&base, format!("Bearer {V2}").as_str()).build().unwrap_err();
    assert!(matches!(e, ClientError::MalformedToken(TokenProblem::KeywordIncluded(_))));
    let waited = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(waited.is_err(), "the listener received a connection");
}

#[tokio::test]
async fn get_is_retried_after_retry_after() {
    let r = Responder::start(vec![
        Reply::json("503 Service Unavailable", r#"{"detail": "busy"}"#).with_header("retry-after", "1"),
        Reply::json("200 OK", STATUS),
    ])
    .await;
    let c = Client::builder(&r.base, V2).build().unwrap();
    let st = c.status().await.unwrap();
    assert_eq!(st.netbox_version.as_deref(), Some("4.6.1"));
    let seen = r.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert_eq!(seen[1].header("authorization"), Some(format!("Bearer {V2}").as_str()));
}

#[tokio::test]
async fn retries_stop_at_max_attempts() {
    let busy =
        Reply::json("429 Too Many Requests", r#"{"detail": "slow down"}"#).with_header("retry-after", "0");
    let r = Responder::start(vec![busy]).await;
    let e = Client::builder(&r.base, V2).build().unwrap().status().await.unwrap_err();
    assert_eq!(e, ClientError::Http { status: 429, detail: Some("slow down".into()), hint: None });
    assert_eq!(r.seen().len(), 3, "default: 3 attempts");

    let r =
        Responder::start(vec![Reply::json("503 Service Unavailable", "{}").with_header("retry-after", "0")])
            .await;
    let c = Client::builder(&r.base, V2).max_attempts(1).build().unwrap();
    assert_eq!(c.whoami().await.unwrap_err().status(), Some(503));
    assert_eq!(r.seen().len(), 1);
}

#[tokio::test]
async fn other_errors_are_not_retried() {
    let r =
        Responder::start(vec![Reply::json("500 Internal Server Error", "{}"), Reply::json("200 OK", STATUS)])
            .await;
    let e = Client::builder(&r.base, V2).build().unwrap().status().await.unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert_eq!(r.seen().len(), 1);
}

#[tokio::test]
async fn post_is_never_retried() {
    let unavailable =
        Reply::json("503 Service Unavailable", r#"{"detail": "busy"}"#).with_header("retry-after", "0");
    let r = Responder::start(vec![unavailable.clone(), Reply::json("201 Created", "{}")]).await;
    let c = Client::builder(&r.base, V2).max_attempts(5).build().unwrap();
    let e = c.create_token(&NewToken { user: Some(1), ..Default::default() }).await.unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert_eq!(r.seen().len(), 1, "POST sent more than once");
    assert!(r.seen()[0].request_line.starts_with("POST /api/users/tokens/ "));

    let r = Responder::start(vec![unavailable.clone(), Reply::json("200 OK", "{}")]).await;
    let c = Client::builder(&r.base, V2).max_attempts(5).build().unwrap();
    let e = c.update_token(1, &Default::default()).await.unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert_eq!(r.seen().len(), 1, "PATCH sent more than once");

    let r = Responder::start(vec![unavailable, Reply::json("201 Created", "{}")]).await;
    let pw = SecretString::from("pw");
    let e = Client::provision(&r.base, "admin", &pw, &ProvisionOptions::default()).await.unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert_eq!(r.seen().len(), 1, "provision sent more than once");
    assert_eq!(r.seen()[0].header("authorization"), None, "provision needs no token");
}

#[tokio::test]
async fn delete_is_retried_after_a_hangup() {
    let r = Responder::start(vec![
        Reply::Hangup,
        Reply::Http { status: "204 No Content", headers: vec![], body: String::new() },
    ])
    .await;
    Client::builder(&r.base, V2).build().unwrap().delete_token(5).await.unwrap();
    let seen = r.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.request_line == "DELETE /api/users/tokens/5/ HTTP/1.1"));
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    // Bind and drop, so the port is very likely closed.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let c = Client::builder(&format!("http://{addr}"), V2).max_attempts(2).build().unwrap();
    let e = c.whoami().await.unwrap_err();
    assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
    assert!(!e.to_string().contains("wTbg8d65"), "{e}");
}

#[tokio::test]
async fn request_timeout() {
    let r = Responder::start(vec![Reply::Stall]).await;
    let c = Client::builder(&r.base, V2).timeout(Duration::from_millis(300)).build().unwrap();
    let started = Instant::now();
    let e = c.whoami().await.unwrap_err();
    assert!(matches!(&e, ClientError::Transport(m) if m.contains("timed out")), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "timeouts are not retried");
    assert_eq!(r.seen().len(), 1);
}

#[tokio::test]
async fn redirects_are_reported_not_followed() {
    let r =
        Responder::start(vec![Reply::json("301 Moved Permanently", "")
            .with_header("location", "https://nb.example/api/status/")])
        .await;
    let e = Client::builder(&r.base, V2).build().unwrap().status().await.unwrap_err();
    assert_eq!(e.status(), Some(301));
    assert!(e.detail().unwrap().contains("https://nb.example/api/status/"), "{e}");
    assert_eq!(r.seen().len(), 1);
}

#[tokio::test]
async fn next_links_keep_to_the_configured_host() {
    // The server points `next` at another host; the client keeps its own base.
    let page1 = r#"{"count": 2, "next": "http://evil.example/api/users/users/?limit=1&offset=1", "previous": null,
        "results": [{"id": 1, "username": "a"}]}"#;
    let page2 = r#"{"count": 2, "next": null, "previous": null, "results": [{"id": 2, "username": "b"}]}"#;
    let r = Responder::start(vec![Reply::json("200 OK", page1), Reply::json("200 OK", page2)]).await;
    let c = Client::builder(&r.base, V2).build().unwrap();
    let users = c.list_users(&Default::default()).await.unwrap();
    assert_eq!(users.iter().map(|u| u.id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(r.seen()[1].request_line, "GET /api/users/users/?limit=1&offset=1 HTTP/1.1");
}

#[tokio::test]
async fn created_token_without_secret() {
    // NetBox up to 4.5.9 answers a v2 creation with "token": null.
    let body = r#"{"id": 9, "url": "http://nb/api/users/tokens/9/", "version": 2, "key": "eOxiaUBB7417",
        "user": {"id": 1, "username": "admin"}, "created": "2026-01-02T03:04:05Z", "enabled": true,
        "write_enabled": true, "token": null}"#;
    let r = Responder::start(vec![Reply::json("201 Created", body)]).await;
    let c = Client::builder(&r.base, V2).build().unwrap();
    let e = c.create_token(&NewToken { user: Some(1), ..Default::default() }).await.unwrap_err();
    assert_eq!(e, ClientError::MissingSecret { token_id: 9 });
}

#[tokio::test]
async fn api_version_is_read_from_a_403_too() {
    let r =
        Responder::start(vec![Reply::json("403 Forbidden", r#"{"detail": "Invalid v2 token"}"#)
            .with_header("api-version", "4.5")])
        .await;
    assert_eq!(Client::builder(&r.base, V2).build().unwrap().api_version().await.unwrap(), "4.5");
}
