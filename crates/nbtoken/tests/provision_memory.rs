//! Issue 16, item 2: a burst of unauthenticated `POST /api/users/tokens/provision/` must not
//! blow up the server's memory. Each password check runs argon2id (19 MiB); before the fix
//! every request ran one at once (200 requests took a server from 108 MB to 4 GB, never given
//! back). Now at most a few run, a short queue waits, and the rest get 429/503 at once.
//!
//! The burst comes from 50 loopback addresses (127.0.0.2–51), so both the per-address limit
//! and the server-wide queue are exercised. Resident memory is read from `/proc/PID/status`.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{curl, curl_json, serve_with};

const PEPPER: &str = "memory-test-pepper-0123456789-0123456789-0123456789-01234";
/// Requests in the burst.
const BURST: usize = 500;
/// Source addresses the burst comes from.
const ADDRESSES: usize = 50;
/// The stated bound: resident memory may grow over its level after one password check by at
/// most 20 MiB per password worker (one per core, at most 8) plus 40 MiB: a few argon2
/// buffers. Before the fix it grew by one 19 MiB buffer per request (1.6 GB for 200).
fn max_growth_kib() -> u64 {
    let workers = std::thread::available_parallelism().map_or(2, usize::from).clamp(1, 8) as u64;
    (workers + 2) * 20 * 1024
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One provision request from `source`; the status and whether `Retry-After` came with it.
fn provision(server: SocketAddr, source: IpAddr, body: &str) -> Result<(u16, bool), String> {
    let mut stream = connect_from(source, server)?;
    let req = format!(
        "POST /api/users/tokens/provision/ HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    stream.write_all(req.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    stream.read_to_end(&mut resp).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status: {text}"))?;
    Ok((status, text.to_ascii_lowercase().contains("\r\nretry-after: ")))
}

/// A blocking connection to `server` whose local address is `source` (any 127.0.0.0/8 address works on Linux).
fn connect_from(source: IpAddr, server: SocketAddr) -> Result<std::net::TcpStream, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket.bind(SocketAddr::new(source, 0)).map_err(|e| format!("bind {source}: {e}"))?;
        let stream = socket.connect(server).await.map_err(|e| format!("connect: {e}"))?;
        let std = stream.into_std().map_err(|e| e.to_string())?;
        std.set_nonblocking(false).map_err(|e| e.to_string())?;
        Ok(std)
    })
}

#[test]
fn a_provision_burst_keeps_resident_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_with(dir.path(), &[("NBTOKEN_PEPPER_1", PEPPER)]);
    let server: SocketAddr = served.addr.parse().unwrap();
    let pid = served.child.id();
    let password = served.first_start.as_ref().expect("first start makes an admin").password.clone();
    // One good provision first: the level to compare with includes one argon2 run.
    let (code, body) = curl_json(
        "POST",
        &format!("http://{server}/api/users/tokens/provision/"),
        None,
        &format!(r#"{{"username":"admin","password":"{password}"}}"#),
    );
    assert_eq!(code, 201, "{body}");
    std::thread::sleep(Duration::from_millis(300));
    let (before, _) = memory(pid);

    let done = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (done, peak) = (done.clone(), peak_rss.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(memory(pid).0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let burst = std::env::var("NBTOKEN_TEST_BURST").ok().and_then(|v| v.parse().ok()).unwrap_or(BURST);
    let started = std::time::Instant::now();
    let clients: Vec<_> = (0..burst)
        .map(|i| {
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % ADDRESSES) as u8));
            let body = format!(r#"{{"username":"nobody-{i}","password":"not-the-password"}}"#);
            std::thread::spawn(move || provision(server, source, &body))
        })
        .collect();
    let results: Vec<Result<(u16, bool), String>> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let (after, hwm) = memory(pid);
    let peak = peak_rss.load(Ordering::Relaxed).max(hwm);

    let mut counts = std::collections::BTreeMap::new();
    for r in &results {
        let key = match r {
            Ok((s, _)) => s.to_string(),
            Err(e) => format!("error: {e}"),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    eprintln!(
        "provision burst of {burst}: {counts:?} in {took:?}; VmRSS {before} KiB before, peak {peak} KiB, {after} KiB after"
    );
    for r in &results {
        let (status, retry_after) =
            r.as_ref().unwrap_or_else(|e| panic!("a request failed: {e}; {counts:?}"));
        assert!(matches!(status, 403 | 429 | 503), "unexpected status {status}: {counts:?}");
        if *status != 403 {
            assert!(retry_after, "{status} without Retry-After");
        }
    }
    assert!(counts.contains_key("503"), "the burst should meet the queue limit: {counts:?}");
    let bound = max_growth_kib();
    assert!(
        peak.saturating_sub(before) < bound,
        "resident memory grew by {} KiB (bound {bound} KiB): {before} -> {peak} KiB",
        peak.saturating_sub(before)
    );
    assert!(after.saturating_sub(before) < bound, "not given back: {before} -> {after} KiB");
    // One address gets only a couple of checks at once, the rest 429 at once.
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 99));
    let one_client: Vec<_> = (0..8)
        .map(|i| {
            let body = format!(r#"{{"username":"nobody-{i}","password":"not-the-password"}}"#);
            std::thread::spawn(move || provision(server, source, &body).unwrap())
        })
        .collect();
    let statuses: Vec<(u16, bool)> = one_client.into_iter().map(|c| c.join().unwrap()).collect();
    let checked = statuses.iter().filter(|(s, _)| *s == 403).count();
    assert!((1..=2).contains(&checked), "{statuses:?}");
    assert!(statuses.iter().all(|(s, r)| *s == 403 || (*s == 429 && *r)), "{statuses:?}");
    // The server still answers, and well.
    let (code, _) = curl(&[&format!("http://{server}/livez")]);
    assert_eq!(code, 200);
}
