//! The server on SQLite on a full disk (a real 2 MiB tmpfs): a write answered
//! 2xx survives a restart, a write that did not is 503 (never 500) and is not
//! saved, `/healthz` says the store cannot write while the disk is full, and
//! everything works again by itself once space returns, without a restart.
//!
//! Mounting a tmpfs needs root: without it the test says it is skipped (and
//! fails when `CI` is set).

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::Spawned;
use nbtoken_core::{PepperId, PepperRing, SecretString};
use nbtoken_store::{AnyStore, SqliteStore, Store};
use nbtoken_testkit::{fill, Tmpfs};
use serde_json::{json, Value};

const PEPPER: &str = "disk-full-pepper-0123456789-0123456789-0123456789-0123456789";

fn peppers() -> PepperRing {
    PepperRing::new([(PepperId::new(1).unwrap(), SecretString::from(PEPPER))]).unwrap()
}

/// A server on the database file `db`, in this process, on an ephemeral port.
struct Running {
    base: String,
    store: AnyStore,
    spawned: Spawned,
}

impl Running {
    async fn start(db: &Path) -> Running {
        let store = AnyStore::from(SqliteStore::open_file(db).await.unwrap());
        let spawned = Spawned::start(store.clone(), peppers(), |c| c.announce = false).await;
        Running { base: spawned.base(), store, spawned }
    }

    /// Stops serving and closes the database, as a process exit would.
    async fn stop(self) {
        self.spawned.stop().await;
        self.store.close().await;
    }
}

async fn call(method: reqwest::Method, url: String, auth: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url).header("authorization", auth);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null))
}

async fn healthz(base: &str) -> (u16, Value) {
    call(reqwest::Method::GET, format!("{base}/healthz"), "", None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_answers_503_never_loses_an_acknowledged_write_and_recovers() {
    let Some(fs) = Tmpfs::mount("2m", "the server's full-disk test") else { return };
    let db = fs.path().join("nbtoken.sqlite3");
    let server = Running::start(&db).await;
    let peppers = peppers();
    let (_, admin) = crate::harness::ops(&server.store, &peppers).bootstrap_admin(None, "").await.unwrap();
    let admin = format!("Bearer {}", admin.token.expose());
    let tokens = format!("{}/api/users/tokens/", server.base);
    let create = |description: String| {
        let (tokens, admin) = (tokens.clone(), admin.clone());
        async move {
            call(reqwest::Method::POST, tokens, &admin, Some(json!({"user": 1, "description": description})))
                .await
        }
    };
    let (status, victim) = create("victim".into()).await;
    assert_eq!(status, 201, "{victim}");
    let victim_id = victim["id"].as_i64().unwrap();
    let victim_auth =
        format!("Bearer nbt_{}.{}", victim["key"].as_str().unwrap(), victim["token"].as_str().unwrap());
    assert_eq!(healthz(&server.base).await.0, 200);

    let filler = fill(fs.path());

    let mut acked = vec!["victim".to_owned()];
    let mut refused = Vec::new();
    let padding = "x".repeat(150);
    for i in 0..100 {
        let description = format!("full-{i}-{padding}");
        match create(description.clone()).await {
            (201, _) => acked.push(description),
            (503, body) => {
                assert!(body["detail"].is_string(), "{body}");
                refused.push(description);
            }
            (status, body) => panic!("a create on a full disk answered {status}: {body}"),
        }
    }
    assert!(!refused.is_empty(), "the disk never filled up: the test proves nothing");
    // The write probe runs at most every 2 s: within that, /healthz must say so.
    let deadline = Instant::now() + Duration::from_secs(5);
    let health = loop {
        let (status, health) = healthz(&server.base).await;
        if status == 503 {
            break health;
        }
        assert!(Instant::now() < deadline, "/healthz is still ok on a full disk: {health}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(health["detail"].as_str().unwrap().contains("cannot write"), "{health}");
    assert!(health["since"].is_string(), "{health}");
    let victim_url = format!("{tokens}{victim_id}/");
    let (revoke_status, _) =
        call(reqwest::Method::PATCH, victim_url.clone(), &admin, Some(json!({"enabled": false}))).await;
    assert!(matches!(revoke_status, 200 | 503), "revocation on a full disk answered {revoke_status}");

    // Space returns: the server recovers by itself.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while healthz(&server.base).await.0 != 200 {
        assert!(Instant::now() < deadline, "/healthz still unhealthy 10 s after space returned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..10 {
        let (status, body) = create(format!("after-{i}")).await;
        assert_eq!(status, 201, "create {i} after space returned: {body}");
        acked.push(format!("after-{i}"));
    }
    let (status, body) =
        call(reqwest::Method::PATCH, victim_url, &admin, Some(json!({"enabled": false}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(reqwest::Method::GET, tokens.clone(), &victim_auth, None).await;
    assert_eq!(status, 403, "a revoked token still works");
    eprintln!(
        "full disk: {} creates answered 201, {} answered 503; revocation answered {revoke_status}",
        acked.len() - 11,
        refused.len()
    );

    // Restart: every acknowledged write is there, no refused one.
    server.stop().await;
    let server = Running::start(&db).await;
    let tokens = format!("{}/api/users/tokens/", server.base);
    let (status, list) = call(reqwest::Method::GET, format!("{tokens}?limit=1000"), &admin, None).await;
    assert_eq!(status, 200, "{list}");
    let found: Vec<&str> =
        list["results"].as_array().unwrap().iter().filter_map(|t| t["description"].as_str()).collect();
    for d in &acked {
        assert!(found.contains(&d.as_str()), "a write answered 201 is missing after a restart: {d:.12}…");
    }
    for d in &refused {
        assert!(!found.contains(&d.as_str()), "a write answered 503 was saved: {d:.12}…");
    }
    let (status, _) = call(reqwest::Method::GET, tokens.clone(), &victim_auth, None).await;
    assert_eq!(status, 403, "the revocation did not survive a restart");
    server.stop().await;
}
