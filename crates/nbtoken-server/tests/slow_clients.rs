//! Slow clients cannot starve others (issue 16, item 3): 1,100 connections from one address
//! trickling headers or a body a byte every 2 s, while a valid client from another address
//! keeps a median under 10 ms; a body slower than the minimum rate is cut off.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::harness;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{Backend, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const ATTACKERS: usize = 1_100;

/// A connection to `server` from `source` (any 127.0.0.0/8 address works on Linux).
async fn connect_from(source: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(server).await
}

/// One slow client, reconnecting whenever the server closes it: either request headers or a
/// provision body (the unauthenticated route), a byte every 2 s.
async fn attacker(server: SocketAddr, body: bool, stop: Arc<AtomicBool>, cut: Arc<AtomicUsize>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = connect_from("127.0.0.1".parse().unwrap(), server).await else {
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        };
        let connected = Instant::now();
        let head: &[u8] = if body {
            b"POST /api/users/tokens/provision/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{"
        } else {
            b"GET /api/status/ HTTP/1.1\r\nHost: x\r\n"
        };
        if s.write_all(head).await.is_ok() {
            let mut buf = [0u8; 1024];
            while !stop.load(Ordering::Relaxed) {
                let byte: &[u8] = if body { b" " } else { b"X" };
                if s.write_all(byte).await.is_err() {
                    break;
                }
                // Closed by the server (EOF or an error response) within the next 2 s?
                match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
                    Err(_) => {}
                    Ok(_) => break,
                }
            }
        }
        cut.fetch_add(1, Ordering::Relaxed);
        // A connection that was held is replaced at once, to keep the server's connections
        // taken; one refused at once is retried after a pause (hammering a refusing server is
        // a flood, not this attack, and would only measure the test's own CPU use).
        if connected.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// One request on a new connection from `source`; its status and how long it took.
async fn timed_request(server: SocketAddr, source: IpAddr, auth: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut s = connect_from(source, server).await.unwrap();
    let req =
        format!("GET /api/status/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.unwrap();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&resp);
    (text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_from_one_address_do_not_starve_others() {
    let s = Server::start(Backend::Sqlite).await;
    let stop = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|i| tokio::spawn(attacker(s.addr, i % 2 == 1, stop.clone(), cut.clone())))
        .collect();
    // Let every slow client connect (or be refused) and start trickling.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let source: IpAddr = "127.0.0.2".parse().unwrap();
    let auth = s.admin_bearer();
    let mut times = Vec::new();
    for _ in 0..40 {
        let (status, took) =
            tokio::time::timeout(Duration::from_secs(30), timed_request(s.addr, source, &auth))
                .await
                .unwrap();
        assert_eq!(status, 200);
        times.push(took);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    times.sort();
    let median = times[times.len() / 2];
    eprintln!(
        "valid client under {ATTACKERS} slow connections: median {median:?}, max {:?}; slow connections cut {}",
        times[times.len() - 1],
        cut.load(Ordering::Relaxed)
    );
    assert!(median < Duration::from_millis(10), "median {median:?} under slow clients: {times:?}");
    for a in attackers {
        a.abort();
    }
}

#[tokio::test]
async fn a_body_slower_than_the_minimum_rate_is_cut_off() {
    let s = Server::start(Backend::Sqlite).await;
    let mut sock = connect_from("127.0.0.3".parse().unwrap(), s.addr).await.unwrap();
    sock.write_all(
        b"POST /api/users/tokens/provision/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\"",
    )
    .await
    .unwrap();
    let started = Instant::now();
    // A byte every 500 ms: 2 bytes a second, far under the minimum.
    let mut resp = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        assert!(started.elapsed() < Duration::from_secs(10), "a trickled body was never cut off");
        if sock.write_all(b" ").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(500), sock.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => resp.extend_from_slice(&buf[..n]),
        }
        if resp.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "cut off only after {took:?}");
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    assert!(text.is_empty() || (400..500).contains(&status), "{text}");
    // A client sending its body at a normal pace is not affected.
    let resp = s
        .client
        .post(format!("{}/api/users/tokens/provision/", s.base()))
        .json(&serde_json::json!({"username": "admin", "password": harness::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
}
