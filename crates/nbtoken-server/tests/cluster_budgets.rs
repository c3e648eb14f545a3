//! Failure budgets are cluster-wide on PostgreSQL: two real server instances, each with its own
//! connection pool, on one database schema. Failures counted by the first count against the
//! budget the second enforces, and a client blocked on one is refused by the other before any
//! token is checked. Each instance's own budget still answers first, without the database.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use nbtoken_server::limit::LimitConfig;
use nbtoken_store::{AnyStore, PgStore, Store};
use tokio::sync::oneshot;

const PEPPER: &str = "test-pepper-0123456789-0123456789-0123456789-0123456789";

fn database_url() -> Option<String> {
    nbtoken_testkit::database_url("the cluster-wide failure budgets test")
}

fn peppers() -> nbtoken_core::PepperRing {
    nbtoken_core::PepperRing::new([(
        nbtoken_core::PepperId::new(1).unwrap(),
        nbtoken_core::SecretString::from(PEPPER),
    )])
    .unwrap()
}

/// One instance: its own pool on the shared schema, its own limiter, its own port.
struct Instance {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn instance(url: &str, schema: &str, limits: LimitConfig) -> Instance {
    let store = AnyStore::from(PgStore::connect_with_schema(url, schema).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = nbtoken_server::Config::new(addr, peppers());
    config.limits = limits;
    config.announce = false;
    // Loopback is the proxy: each test client names its address in X-Forwarded-For.
    config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        nbtoken_server::serve(listener, config, store, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Instance { addr, _stop: tx }
}

async fn get(client: &reqwest::Client, i: &Instance, auth: &str, from: &str) -> u16 {
    client
        .get(format!("http://{}/api/status/", i.addr))
        .header("authorization", auth)
        .header("x-forwarded-for", from)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Sends `auth` from `from` until the answer is 429, for at most a few seconds (the
/// instances hear of each other's blocks within a second); returns the last status.
async fn until_refused(client: &reqwest::Client, i: &Instance, auth: &str, from: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = get(client, i, auth, from).await;
        if st == 429 || Instant::now() > deadline {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_instance_sees_the_first_instances_failures() {
    let Some(url) = database_url() else { return };
    let schema =
        format!("nbtoken_budget_{}", nbtoken_core::TokenKey::generate().unwrap().as_str().to_lowercase());
    let setup = PgStore::connect_with_schema(&url, &schema).await.unwrap();
    let peppers = peppers();
    let (_, admin) = crate::harness::ops(&setup, &peppers).bootstrap_admin(None, "").await.unwrap();
    let valid = format!("Bearer {}", admin.token.expose());
    let limits = LimitConfig { per_ip_per_minute: 30, per_key_per_minute: 0 };
    let a = instance(&url, &schema, limits).await;
    let b = instance(&url, &schema, limits).await;
    let client = reqwest::Client::new();
    let wrong = format!("Bearer nbt_Zz9Unknown00.{}", "x".repeat(40));

    // 1. Budgets add up across instances: 20 failures on A, then B refuses once the two
    //    together pass 30, although B has seen only 11 (its own budget alone allows 30).
    let ip = "198.51.100.1";
    for n in 0..20 {
        assert_eq!(get(&client, &a, &wrong, ip).await, 403, "failure {n} on A");
    }
    let mut on_b = 0;
    loop {
        let st = get(&client, &b, &wrong, ip).await;
        if st == 429 {
            break;
        }
        assert_eq!(st, 403);
        on_b += 1;
        assert!(on_b < 30, "B did not count A's failures: {on_b} failures on B alone were answered 403");
        // B's failures reach the shared counters in the background, a round trip after each.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        (10..=14).contains(&on_b),
        "B refused after {on_b} of its own failures (A had 20, the budget is 30)"
    );
    // Blocked before any token is checked, on both instances: even the valid token is refused.
    assert_eq!(get(&client, &b, &valid, ip).await, 429);
    assert_eq!(until_refused(&client, &a, &valid, ip).await, 429, "A did not hear of B's block");
    // Other clients are not affected.
    assert_eq!(get(&client, &a, &valid, "198.51.100.2").await, 200);
    assert_eq!(get(&client, &b, &valid, "198.51.100.2").await, 200);

    // 2. A client that exhausts its budget on A is refused by B on its very next request,
    //    without a single failure there.
    let ip = "198.51.100.3";
    for n in 0..30 {
        assert_eq!(get(&client, &a, &wrong, ip).await, 403, "failure {n} on A");
    }
    assert_eq!(get(&client, &a, &wrong, ip).await, 429, "A's own budget answers first");
    assert_eq!(until_refused(&client, &b, &valid, ip).await, 429, "B did not hear of A's block");

    drop((a, b));
    setup.drop_schema().await.unwrap();
    setup.close().await;
}
