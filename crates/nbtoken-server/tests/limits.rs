//! Connection-level limits: slow clients are cut off, the connection cap cannot be
//! pinned by idle sockets, oversized heads get 431, duplicated credentials are refused.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::harness;

use std::time::{Duration, Instant};

use harness::{Backend, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn a_slow_client_is_cut_off() {
    let s = Server::start_with(Backend::Sqlite, |c| c.header_timeout = Duration::from_secs(1)).await;
    let mut sock = TcpStream::connect(s.addr).await.unwrap();
    sock.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n").await.unwrap(); // never finishes its headers
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept a slow client's connection open");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn idle_sockets_cannot_pin_the_connection_cap() {
    let s = Server::start_with(Backend::Sqlite, |c| {
        c.header_timeout = Duration::from_secs(1);
        c.max_connections = 2;
    })
    .await;
    let _idle1 = TcpStream::connect(s.addr).await.unwrap();
    let _idle2 = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let resp =
        s.client.get(format!("{}/livez", s.base())).timeout(Duration::from_secs(10)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // Served once the silent connections timed out, not never.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn oversized_request_heads_get_431() {
    let s = Server::start(Backend::Sqlite).await;
    let big = "a".repeat(100 * 1024);
    let resp = s.client.get(format!("{}/livez", s.base())).header("x-filler", big).send().await.unwrap();
    assert_eq!(resp.status(), 431);
    // The server is fine afterwards.
    assert_eq!(s.client.get(format!("{}/livez", s.base())).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn duplicated_authorization_headers_are_refused() {
    let s = Server::start(Backend::Sqlite).await;
    let resp = s
        .client
        .get(format!("{}/api/users/tokens/", s.base()))
        .header("authorization", s.admin_bearer())
        .header("authorization", s.admin_bearer())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["hint"], "send exactly one Authorization header");
}
