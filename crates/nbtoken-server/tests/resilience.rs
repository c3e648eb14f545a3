//! Losing the database: requests get a clear 503 (never a 500, never a stale 200 past the
//! cache TTL), and the server recovers by itself when the database returns.
//!
//! Runs on PostgreSQL (`NBTOKEN_TEST_DATABASE_URL`) behind a TCP proxy the test can cut.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::harness;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{Backend, Server};
use reqwest::Method;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP forwarder to PostgreSQL that can drop every connection and refuse new ones.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let target = target.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(h);
            }
        });
        Proxy { addr, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `postgres://user@host:port/db` → (`host:port`, the URL with `proxy` in its place).
fn via_proxy(url: &str, proxy: SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, rest) =
        rest.split_once('@').map(|(a, r)| (format!("{a}@"), r)).unwrap_or((String::new(), rest));
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:5432") };
    (hostport, format!("{scheme}://{auth}{proxy}/{path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_loss_is_503_and_recovery_is_automatic() {
    let Some(Backend::Postgres(url)) = Backend::postgres() else { return };
    let (target, _) = via_proxy(&url, "127.0.0.1:1".parse().unwrap());
    let proxy = Proxy::start(target).await;
    let (_, proxied) = via_proxy(&url, proxy.addr);
    let s =
        Server::start_with(Backend::Postgres(proxied), |c| c.cache_ttl = Duration::from_millis(1500)).await;
    let t = s.create_token(json!({})).await;
    let bearer = t.bearer();
    assert_eq!(s.raw(Method::GET, "/api/status/", Some(&bearer), None, &[]).await.0, 200);

    proxy.cut();
    // Cutting the database also cuts the change feed, and a lost feed clears the cache
    // (notifications may be missed), so from here on nothing cached is trusted either.
    tokio::time::sleep(Duration::from_millis(1600)).await; // and past the TTL in any case
    let (code, body) = s.raw(Method::GET, "/api/status/", Some(&bearer), None, &[]).await;
    assert_eq!(code, 503, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("unavailable"), "{body}");
    let health = s.client.get(format!("{}/healthz", s.base())).send().await.unwrap();
    assert_eq!(health.status(), 503);
    // Liveness does not depend on the database: the process itself is fine.
    let live = s.client.get(format!("{}/livez", s.base())).send().await.unwrap();
    assert_eq!(live.status(), 200);

    proxy.restore();
    let started = Instant::now();
    loop {
        let (code, _) = s.raw(Method::GET, "/api/status/", Some(&bearer), None, &[]).await;
        if code == 200 {
            break;
        }
        assert_eq!(code, 503, "only 503 while the database comes back");
        assert!(started.elapsed() < Duration::from_secs(20), "no recovery after the database returned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn proxy_url_rewriting() {
    let p: SocketAddr = "127.0.0.1:9999".parse().unwrap();
    assert_eq!(
        via_proxy("postgres://postgres@127.0.0.1:5432/test", p),
        ("127.0.0.1:5432".to_owned(), "postgres://postgres@127.0.0.1:9999/test".to_owned())
    );
    assert_eq!(
        via_proxy("postgresql://db/x", p),
        ("db:5432".to_owned(), "postgresql://127.0.0.1:9999/x".to_owned())
    );
}
